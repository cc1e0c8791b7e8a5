-- docker-compose.yml: Kratos's database beside kratos-passkeys's own
-- (scripts/stack creates the same two natively).
CREATE DATABASE kratos OWNER kratos_passkeys;
