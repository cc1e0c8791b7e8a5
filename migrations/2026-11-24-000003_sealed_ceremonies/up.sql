-- Ceremonies travel sealed in their ids (see src/sealed_ceremony.rs): the
-- server keeps only the single-use marks of the ones that were finished.
DROP TABLE ceremonies;

CREATE TABLE consumed_ceremonies (
    -- The ceremony's WebAuthn challenge: random, and unique per ceremony.
    challenge BYTEA PRIMARY KEY,
    -- When the ceremony would have expired; the mark is purged after it.
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX consumed_ceremonies_expires_at ON consumed_ceremonies (expires_at);
