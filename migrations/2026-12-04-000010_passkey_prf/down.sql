ALTER TABLE passkeys DROP COLUMN prf_salt;
ALTER TABLE passkeys DROP COLUMN prf_enabled;
