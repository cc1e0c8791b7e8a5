-- Who opened the ceremony ("ip:203.0.113.7" for logins, "identity:<id>" for
-- registrations), so each client's unexpired ceremonies can be bounded.
ALTER TABLE ceremonies ADD COLUMN client_key TEXT;
CREATE INDEX ceremonies_client_key ON ceremonies (client_key, expires_at);
