DROP INDEX minted_sessions_unfinished;
CREATE INDEX minted_sessions_pending ON minted_sessions (created_at) WHERE state = 'pending';
UPDATE minted_sessions SET passkey_id = NULL
    WHERE passkey_id IS NOT NULL AND passkey_id NOT IN (SELECT id FROM passkeys);
ALTER TABLE minted_sessions ADD CONSTRAINT minted_sessions_passkey_id_fkey
    FOREIGN KEY (passkey_id) REFERENCES passkeys (id) ON DELETE SET NULL;
UPDATE minted_sessions SET state = 'unresolved' WHERE state IN ('minting', 'failed', 'revoked');
UPDATE minted_sessions SET state = 'unresolved', kratos_session_id = NULL
    WHERE state <> 'resolved' AND kratos_session_id IS NOT NULL;
ALTER TABLE minted_sessions DROP CONSTRAINT minted_sessions_resolved_has_id;
ALTER TABLE minted_sessions ADD CONSTRAINT minted_sessions_resolved_has_id
    CHECK ((state = 'resolved') = (kratos_session_id IS NOT NULL));
ALTER TABLE minted_sessions DROP CONSTRAINT minted_sessions_state_check;
ALTER TABLE minted_sessions ADD CONSTRAINT minted_sessions_state_check
    CHECK (state IN ('pending', 'resolved', 'unresolved'));
