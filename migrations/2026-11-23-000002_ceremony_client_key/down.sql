DROP INDEX ceremonies_client_key;
ALTER TABLE ceremonies DROP COLUMN client_key;
