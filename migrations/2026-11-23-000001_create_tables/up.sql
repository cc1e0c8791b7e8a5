-- Each Kratos identity that uses passkeys gets a random WebAuthn user handle
-- (never the identity id or the email).
CREATE TABLE identities (
    identity_id UUID PRIMARY KEY,
    user_handle UUID NOT NULL UNIQUE,
    -- Set by Kratos's after-registration webhook.
    registered_at TIMESTAMPTZ,
    -- "Skip for now" on the post-registration passkey offer.
    enrollment_dismissed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE passkeys (
    id UUID PRIMARY KEY,
    identity_id UUID NOT NULL REFERENCES identities (identity_id) ON DELETE CASCADE,
    -- Globally unique: one credential belongs to one identity.
    credential_id BYTEA NOT NULL UNIQUE,
    -- The serialized webauthn-rs Passkey (public key, counter, flags).
    credential JSONB NOT NULL,
    name TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    aaguid UUID NOT NULL,
    transports TEXT[] NOT NULL DEFAULT '{}',
    backup_eligible BOOLEAN NOT NULL,
    backup_state BOOLEAN NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    -- Set when the signature counter went backwards (possible clone).
    flagged_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    UNIQUE (identity_id, name)
);
CREATE INDEX passkeys_identity_created ON passkeys (identity_id, created_at DESC);

-- Registration and login ceremonies in progress; consumed by an atomic
-- DELETE ... RETURNING so each is single use.
CREATE TABLE ceremonies (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('registration', 'login')),
    -- The identity a registration belongs to; NULL for logins.
    identity_id UUID,
    state JSONB NOT NULL,
    passkey_name TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);

-- Which passkey minted which Kratos session.
CREATE TABLE minted_sessions (
    kratos_session_id UUID PRIMARY KEY,
    identity_id UUID NOT NULL,
    passkey_id UUID REFERENCES passkeys (id) ON DELETE SET NULL,
    delivery TEXT NOT NULL CHECK (delivery IN ('cookie', 'token')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX minted_sessions_identity ON minted_sessions (identity_id);
