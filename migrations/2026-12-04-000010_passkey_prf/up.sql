-- Whether the browser said the credential can evaluate the WebAuthn `prf`
-- extension (`clientExtensionResults.prf.enabled`): NULL when it said
-- nothing (older browsers, imported passkeys). The salt is the one this
-- service hands out for the passkey in `evalByCredential`; NULL for
-- passkeys registered before it existed or imported.
ALTER TABLE passkeys ADD COLUMN prf_enabled boolean;
ALTER TABLE passkeys ADD COLUMN prf_salt bytea;
