-- The outbox: every passkey change and login is an event, written in the
-- same transaction as the change, so an event exists if and only if the
-- change committed. `seq` orders them (per identity, for delivery).
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    type TEXT NOT NULL,
    identity_id UUID NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    -- The Standard Webhooks payload, exactly as it is delivered.
    payload JSONB NOT NULL,
    -- Set once every delivery is done (or at once without endpoints): the
    -- event is purged `events.retention` after it.
    settled_at TIMESTAMPTZ
);
CREATE INDEX events_identity ON events (identity_id, seq DESC);
CREATE INDEX events_settled ON events (settled_at) WHERE settled_at IS NOT NULL;

-- One row per event and configured endpoint that wants its type. `held`:
-- a login event waiting for its Kratos session id (see minted_sessions).
CREATE TABLE event_deliveries (
    event_seq BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    endpoint TEXT NOT NULL,
    -- Copied from the event: delivery is in order per identity and endpoint.
    identity_id UUID NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('held', 'pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT,
    delivered_at TIMESTAMPTZ,
    PRIMARY KEY (event_seq, endpoint)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at, event_seq)
    WHERE state = 'pending';
CREATE INDEX event_deliveries_queue ON event_deliveries (endpoint, identity_id, event_seq)
    WHERE state IN ('held', 'pending');

-- Where a passkey login came from, and the passkey's name then, for
-- GET /admin/sessions/{id} (the passkey itself may be removed later).
ALTER TABLE minted_sessions ADD COLUMN client_ip TEXT;
ALTER TABLE minted_sessions ADD COLUMN user_agent TEXT;
ALTER TABLE minted_sessions ADD COLUMN passkey_name TEXT;
