ALTER TABLE minted_sessions DROP COLUMN passkey_name;
ALTER TABLE minted_sessions DROP COLUMN user_agent;
ALTER TABLE minted_sessions DROP COLUMN client_ip;
DROP TABLE event_deliveries;
DROP TABLE events;
