ALTER TABLE identities DROP COLUMN display_name;
ALTER TABLE identities DROP COLUMN user_name;
