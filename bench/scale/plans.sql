-- The query plans of the statements whose cost must not grow with the data,
-- as the service sends them (the same SQL as src/store, prepared with
-- parameters), each EXPLAIN (ANALYZE, BUFFERS)'d inside a transaction that
-- is rolled back, so the database stays as seeded. psql variables: n (the
-- scale; a seeded passkey and identity are picked in its middle).
\set ON_ERROR_STOP 1
\pset pager off
SELECT md5('scale-passkey-' || (:n / 2))::uuid AS passkey,
       md5('scale-identity-' || (:n / 2))::uuid AS identity,
       gen_random_uuid() AS record \gset

-- src/store/logins.rs Store::begin_login
PREPARE begin_login (bytea, timestamptz, jsonb, bigint, bool, bool, bytea, uuid, uuid, text, text, text, text) AS
WITH consumed AS (
  INSERT INTO consumed_ceremonies (challenge, expires_at)
  SELECT $1, $2 WHERE $2 > now()
  ON CONFLICT DO NOTHING RETURNING 1),
used AS (
  UPDATE passkeys SET
    credential = CASE WHEN $4 >= sign_count THEN COALESCE($3, credential) ELSE credential END,
    sign_count = GREATEST(sign_count, $4),
    backup_eligible = $5, backup_state = $6, last_used_at = now(),
    user_handle = COALESCE($7, user_handle),
    unconfirmed_user_handles = CASE WHEN $7 IS NULL THEN unconfirmed_user_handles ELSE '{}' END
  WHERE id = $8 AND EXISTS (SELECT 1 FROM consumed)
  RETURNING id, identity_id),
recorded AS (
  INSERT INTO minted_sessions (id, identity_id, passkey_id, delivery, state, client_ip, user_agent, passkey_name)
  SELECT $9, identity_id, id, $10, 'minting', $11, $12, $13 FROM used
  RETURNING 1)
SELECT EXISTS (SELECT 1 FROM consumed) AS fresh, $2 <= now() AS expired,
  EXISTS (SELECT 1 FROM recorded) AS recorded;

-- src/store/logins.rs Store::complete_login
PREPARE complete_login (uuid, uuid, uuid, uuid, text, timestamptz, jsonb, text[], bool, bigint) AS
WITH recorded AS (
  UPDATE minted_sessions SET recovery_flow_id = $2, kratos_session_id = $3,
    state = CASE WHEN $3::uuid IS NULL THEN 'pending' ELSE 'resolved' END
  WHERE id = $1 AND state = 'minting' RETURNING id),
ev AS (
  INSERT INTO events (id, type, identity_id, occurred_at, payload, settled_at)
  SELECT id, $5, $4, $6, $7, CASE WHEN cardinality($8::text[]) = 0 THEN $6 END
  FROM recorded RETURNING seq),
deliveries AS (
  INSERT INTO event_deliveries (event_seq, endpoint, identity_id, state, next_attempt_at)
  SELECT ev.seq, endpoint, $4, CASE WHEN $9 THEN 'held' ELSE 'pending' END,
    now() + $10 * interval '1 millisecond'
  FROM ev, unnest($8::text[]) AS endpoint RETURNING 1)
SELECT EXISTS (SELECT 1 FROM recorded) AS completed;

-- src/store/outbox.rs claim_due
PREPARE claim_due (text[], bigint) AS
WITH due AS (
  SELECT d.event_seq, d.endpoint, d.attempts FROM event_deliveries d
  WHERE d.state = 'pending' AND d.next_attempt_at <= now()
    AND d.endpoint = ANY($1)
    AND d.event_seq = (SELECT min(b.event_seq) FROM event_deliveries b
      WHERE b.endpoint = d.endpoint AND b.identity_id = d.identity_id
        AND b.state IN ('held', 'pending'))
  ORDER BY d.event_seq LIMIT $2
  FOR UPDATE OF d SKIP LOCKED)
SELECT due.event_seq, due.endpoint, due.attempts, e.id AS event_id, e.occurred_at, e.payload
FROM due JOIN events e ON e.seq = due.event_seq
ORDER BY due.event_seq;

\echo '### begin_login'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
EXECUTE begin_login (decode(md5(random()::text) || md5(random()::text), 'hex'), now() + interval '5 minutes',
  NULL, 1, true, true, NULL, :'passkey', :'record', 'token', '203.0.113.7', 'scale', 'Passkey');
\echo '### complete_login'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
EXECUTE complete_login (:'record', gen_random_uuid(), gen_random_uuid(), :'identity', 'passkey.login', now(),
  '{"type": "passkey.login", "data": {}}', '{bench}', false, 0);
ROLLBACK;

\echo '### claim_due'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE claim_due ('{bench}', 32);
ROLLBACK;

-- The rest of what the comparison measures.
\echo '### list (src/store/passkeys.rs Store::passkeys)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT * FROM passkeys WHERE identity_id = :'identity' ORDER BY created_at DESC, id DESC;

\echo '### events page (src/store/outbox.rs Store::identity_events: the page, then its deliveries)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT seq, id, type, identity_id, occurred_at, payload, settled_at FROM events
WHERE identity_id = :'identity' ORDER BY seq DESC LIMIT 51;
SELECT array_agg(seq) AS seqs FROM (SELECT seq FROM events WHERE identity_id = :'identity' ORDER BY seq DESC LIMIT 51) page \gset
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT * FROM event_deliveries WHERE event_seq = ANY(:'seqs'::bigint[]) ORDER BY event_seq, endpoint;

\echo '### gc: purge of expired ceremony marks, one batch (src/store/ceremonies.rs)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
DELETE FROM consumed_ceremonies WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM consumed_ceremonies WHERE expires_at < now() - interval '1 hour'
  ORDER BY expires_at LIMIT 1000));
ROLLBACK;

\echo '### gc: login records pending for good (src/store/logins.rs give_up_stale_sessions)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
UPDATE minted_sessions SET state = 'unresolved'
WHERE state IN ('minting', 'pending') AND created_at < now() - interval '300 seconds' RETURNING id;
ROLLBACK;

\echo '### gc: purge of events past retention, one batch, with their deliveries (src/store/outbox.rs)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
DELETE FROM events WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM events WHERE settled_at < now() - interval '30 days' ORDER BY settled_at LIMIT 1000));
ROLLBACK;

\echo '### gc: one page of the identity check (src/store/identities.rs identity_ids)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT identity_id FROM identities WHERE identity_id > :'identity' ORDER BY identity_id LIMIT 1000;

\echo '### backlog gauge (src/store/outbox.rs outbox_backlog, every /metrics scrape)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT count(*) AS undelivered, min(e.occurred_at) AS oldest
FROM event_deliveries d JOIN events e ON e.seq = d.event_seq
WHERE d.state IN ('held', 'pending');
