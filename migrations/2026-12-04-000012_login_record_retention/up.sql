-- gc deletes settled login records past gc.login_record_retention, oldest
-- first, in batches: without this index each batch would scan the table.
CREATE INDEX minted_sessions_created ON minted_sessions (created_at);
