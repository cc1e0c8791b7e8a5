-- Without the column every passkey answers to its identity's handle, which
-- would lock out every imported passkey: refuse while there are any
-- (export them or remove them first).
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM passkeys p JOIN identities i ON i.identity_id = p.identity_id
        WHERE p.user_handle <> uuid_send(i.user_handle) OR cardinality(p.unconfirmed_user_handles) > 0
    ) THEN
        RAISE EXCEPTION 'passkeys with their own user handle (imported from Kratos) exist; remove them before reverting';
    END IF;
END $$;
ALTER TABLE passkeys DROP COLUMN unconfirmed_user_handles;
ALTER TABLE passkeys DROP CONSTRAINT passkeys_user_handle_length;
ALTER TABLE passkeys DROP COLUMN user_handle;
