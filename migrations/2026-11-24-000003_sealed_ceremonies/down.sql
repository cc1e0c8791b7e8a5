DROP TABLE consumed_ceremonies;

CREATE TABLE ceremonies (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('registration', 'login')),
    identity_id UUID,
    state JSONB NOT NULL,
    passkey_name TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    client_key TEXT
);
CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
CREATE INDEX ceremonies_client_key ON ceremonies (client_key, expires_at);
