DROP INDEX minted_sessions_created;
