-- A passkey login is recorded when Kratos has issued its session; the
-- Kratos session id is filled in just after the answer has gone out (it
-- costs a whoami call that the login no longer waits for). A record whose
-- session id could not be learnt says so instead of staying pending.
ALTER TABLE minted_sessions DROP CONSTRAINT minted_sessions_pkey;
ALTER TABLE minted_sessions ADD COLUMN id UUID NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE minted_sessions ADD PRIMARY KEY (id);
ALTER TABLE minted_sessions ALTER COLUMN kratos_session_id DROP NOT NULL;
ALTER TABLE minted_sessions ADD CONSTRAINT minted_sessions_kratos_session_id_key UNIQUE (kratos_session_id);
-- The admin recovery flow that minted it.
ALTER TABLE minted_sessions ADD COLUMN recovery_flow_id UUID;
ALTER TABLE minted_sessions ADD COLUMN state TEXT NOT NULL DEFAULT 'resolved'
    CHECK (state IN ('pending', 'resolved', 'unresolved'));
ALTER TABLE minted_sessions ALTER COLUMN state DROP DEFAULT;
ALTER TABLE minted_sessions ADD CONSTRAINT minted_sessions_resolved_has_id
    CHECK ((state = 'resolved') = (kratos_session_id IS NOT NULL));
CREATE INDEX minted_sessions_pending ON minted_sessions (created_at) WHERE state = 'pending';
