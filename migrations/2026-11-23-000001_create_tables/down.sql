DROP TABLE minted_sessions;
DROP TABLE ceremonies;
DROP TABLE passkeys;
DROP TABLE identities;
