-- The WebAuthn user handle belongs to each credential, not to the identity:
-- a passkey imported from Kratos keeps the handle Kratos gave it (any length
-- WebAuthn allows), beside the identity's own 16-byte handle for the
-- passkeys registered here.
ALTER TABLE passkeys ADD COLUMN user_handle BYTEA;
UPDATE passkeys p SET user_handle = uuid_send(i.user_handle)
    FROM identities i WHERE i.identity_id = p.identity_id;
ALTER TABLE passkeys ALTER COLUMN user_handle SET NOT NULL;
ALTER TABLE passkeys ADD CONSTRAINT passkeys_user_handle_length
    CHECK (octet_length(user_handle) BETWEEN 1 AND 64);
-- Kratos gives each passkey added in its settings a new handle and keeps
-- them all on the identity, but not which credential has which. A passkey
-- imported from an identity with several keeps them all here until its
-- first login names its own (and moves it into user_handle).
ALTER TABLE passkeys ADD COLUMN unconfirmed_user_handles BYTEA[] NOT NULL DEFAULT '{}';
