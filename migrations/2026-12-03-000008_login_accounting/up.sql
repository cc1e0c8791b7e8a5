-- Every Kratos session a passkey login mints is accounted for: the login is
-- recorded as `minting` before Kratos is asked (in the statement that marks
-- the ceremony used), so a process that dies or a client that leaves still
-- leaves a record. After the mint the record is completed (`pending` until
-- the session id is known, then `resolved`), or says that no session came
-- of it (`failed`) or that the session was revoked (`revoked`).
ALTER TABLE minted_sessions DROP CONSTRAINT minted_sessions_state_check;
ALTER TABLE minted_sessions ADD CONSTRAINT minted_sessions_state_check
    CHECK (state IN ('minting', 'pending', 'resolved', 'unresolved', 'failed', 'revoked'));
ALTER TABLE minted_sessions DROP CONSTRAINT minted_sessions_resolved_has_id;
ALTER TABLE minted_sessions ADD CONSTRAINT minted_sessions_resolved_has_id
    CHECK (state <> 'resolved' OR kratos_session_id IS NOT NULL);
-- A record names its passkey as it was, also once the passkey is removed.
ALTER TABLE minted_sessions DROP CONSTRAINT minted_sessions_passkey_id_fkey;
DROP INDEX minted_sessions_pending;
CREATE INDEX minted_sessions_unfinished ON minted_sessions (created_at)
    WHERE state IN ('minting', 'pending');
