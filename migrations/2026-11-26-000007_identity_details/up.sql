-- The names a person's passkeys were made with, kept current by Kratos's
-- after-settings hook, so the list can tell the person's password manager
-- (the Signal API's signalCurrentUserDetails) when they change.
ALTER TABLE identities ADD COLUMN user_name TEXT;
ALTER TABLE identities ADD COLUMN display_name TEXT;
