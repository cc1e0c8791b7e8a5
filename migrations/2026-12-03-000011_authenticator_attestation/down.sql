DROP TABLE authenticator_metadata;
DROP TABLE passkey_attestations;
