-- What registration verified about a passkey's authenticator. A passkey
-- without a row here was registered without verified attestation (its
-- AAGUID is only a claim).
CREATE TABLE passkey_attestations (
    passkey_id UUID PRIMARY KEY REFERENCES passkeys (id) ON DELETE CASCADE,
    -- The attestation statement format (packed, tpm, ...).
    format TEXT NOT NULL,
    -- The AAGUID as attested: vouched for by a root the metadata lists for it.
    aaguid UUID NOT NULL,
    -- The metadata entry's description and certification level, then.
    description TEXT NOT NULL,
    certification TEXT,
    -- The serial number (`no`) of the BLOB that vouched for it.
    metadata_no INT NOT NULL,
    -- Set when a later BLOB gave the model a refused status and
    -- `authenticators.on_status_change` is `flag`: logins are refused.
    revoked_at TIMESTAMPTZ,
    revoked_status TEXT,
    -- The last status this passkey was acted on for (flag or warn), so a
    -- refresh acts once per status, on one replica.
    acted_status TEXT
);
-- A refresh finds the passkeys of a model that changed status.
CREATE INDEX passkey_attestations_aaguid ON passkey_attestations (aaguid);

-- The last good MDS3 BLOB, shared by every replica: each adopts the newest
-- serial number it finds here or fetches.
CREATE TABLE authenticator_metadata (
    no INT PRIMARY KEY,
    blob TEXT NOT NULL,
    sha256 BYTEA NOT NULL,
    next_update DATE NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
