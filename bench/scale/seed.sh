# Sourced by scripts/bench-scale: seed_scale DB N fills a migrated
# kratos-passkeys database directly, by COPY, with rows generated on the
# server (COPY (SELECT ...) TO STDOUT piped into COPY ... FROM STDIN):
#
#   N identities, each with one passkey and one resolved login record;
#   5 × N events, delivered to one endpoint and settled inside retention;
#   N used ceremony marks, inside gc's margin;
#
# and, at every scale alike, the fixed work the measured operations do:
#   SCALE_WORK marks and SCALE_WORK events past gc's horizon (what one gc
#   sweep deletes), SCALE_BACKLOG undelivered events of as many identities
#   (what the delivery worker claims).
#
# Ids are md5s of the row number read as uuids, so passkeys, records and
# events point at their identity without a join.

SCALE_WORK=${SCALE_WORK:-1000}
SCALE_BACKLOG=${SCALE_BACKLOG:-64}

# A credential and a payload of the sizes the service writes (~450 and
# ~400 bytes of JSON).
SCALE_CREDENTIAL="jsonb_build_object('cred', jsonb_build_object('cred_id', md5(i || 'c') || md5(i || 'd'), 'cred', jsonb_build_object('type_', 'ES256', 'key', jsonb_build_object('EC_EC2', jsonb_build_object('curve', 'SECP256R1', 'x', md5(i || 'x') || md5(i || 'X'), 'y', md5(i || 'y') || md5(i || 'Y')))), 'counter', 0, 'transports', NULL, 'user_verified', true, 'backup_eligible', true, 'backup_state', true, 'registration_policy', 'required', 'extensions', jsonb_build_object('cred_protect', 'NotRequested', 'hmac_create_secret', 'NotRequested', 'appid', 'NotRequested', 'cred_props', 'Ignored'), 'attestation', jsonb_build_object('data', 'None', 'metadata', 'None'), 'attestation_format', 'none'))"

# seed_marks DB N: N used ceremony marks that gc keeps (they expire an hour
# or two from now, so they stay inside its margin for a whole run, however
# long ago the database was seeded), then the ones one sweep purges.
seed_marks() {
  local db=$1 n=$2
  psql_as_owner "$db" -c "TRUNCATE consumed_ceremonies"
  copy_rows "$db" "consumed_ceremonies (challenge, expires_at)" \
    "SELECT decode(md5(i || 'challenge') || md5(i || 'CHALLENGE'), 'hex'),
       now() + interval '1 hour' + interval '1 hour' * random()
     FROM generate_series(1, $n) i"
  topup_work "$db" "$n"
  psql_as_owner "$db" -c "VACUUM (ANALYZE) consumed_ceremonies" >/dev/null
}

# topup_work DB N: puts back what one gc sweep purges (SCALE_WORK marks
# expired two hours ago, SCALE_WORK events settled past retention, with
# their deliveries), and the undelivered backlog: the service's own gc
# purges the first whenever it starts, and, run without the endpoint, it
# settles the backlog as abandoned.
topup_work() {
  local db=$1 n=$2 work=$SCALE_WORK
  psql_as_owner "$db" -c "INSERT INTO consumed_ceremonies (challenge, expires_at)
      SELECT decode(md5(i || 'old') || md5(i || 'OLD'), 'hex'), now() - interval '2 hours'
      FROM generate_series(1, $work) i ON CONFLICT DO NOTHING" \
    -c "INSERT INTO events (seq, id, type, identity_id, occurred_at, payload, settled_at)
      SELECT i, md5('scale-event-' || i)::uuid, 'passkey.login', $(scale_identity "i % $n + 1"),
        now() - interval '31 days', jsonb_build_object('type', 'passkey.login'), now() - interval '31 days'
      FROM generate_series(1, $work) i ON CONFLICT DO NOTHING" \
    -c "INSERT INTO event_deliveries (event_seq, endpoint, identity_id, state, attempts, delivered_at)
      SELECT seq, 'bench', identity_id, 'delivered', 1, settled_at FROM events WHERE seq <= $work
      ON CONFLICT DO NOTHING" \
    -c "WITH back AS (UPDATE event_deliveries SET state = 'pending', last_error = NULL
        WHERE state = 'abandoned' RETURNING event_seq)
      UPDATE events SET settled_at = NULL WHERE seq IN (SELECT event_seq FROM back)" >/dev/null
}

scale_identity() { echo "md5('scale-identity-' || ($1))::uuid"; }

# copy_rows DB TABLE(COLUMNS) SELECT
copy_rows() {
  local db=$1 target=$2 select=$3
  psql_as_owner "$db" -c "COPY ($select) TO STDOUT" |
    psql_as_owner "$db" -c "COPY $target FROM STDIN"
}

psql_as_owner() {
  local db=$1
  shift
  PGPASSWORD=$PG_PASSWORD psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$db" -v ON_ERROR_STOP=1 -qtA "$@"
}

seed_scale() {
  local db=$1 n=$2 events=$(($2 * 5)) work=$SCALE_WORK backlog=$SCALE_BACKLOG
  local identity payload
  identity=$(scale_identity "i")
  copy_rows "$db" "identities (identity_id, user_handle, registered_at, created_at, user_name, display_name)" \
    "SELECT $identity, md5('scale-handle-' || i)::uuid, now() - interval '60 days' * random(),
       now() - interval '90 days' * random(), 'user' || i || '@example.com', 'User ' || i
     FROM generate_series(1, $n) i"
  copy_rows "$db" "passkeys (id, identity_id, credential_id, credential, name, aaguid, transports, backup_eligible, backup_state, sign_count, created_at, last_used_at, user_handle)" \
    "SELECT md5('scale-passkey-' || i)::uuid, $identity, decode(md5(i || 'c') || md5(i || 'd'), 'hex'),
       $SCALE_CREDENTIAL, 'Passkey', 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd', '{internal,hybrid}',
       true, true, 0, now() - interval '90 days' * random(), now() - interval '1 day' * random(),
       uuid_send(md5('scale-handle-' || i)::uuid)
     FROM generate_series(1, $n) i"
  copy_rows "$db" "minted_sessions (id, kratos_session_id, identity_id, passkey_id, passkey_name, delivery, recovery_flow_id, state, created_at, client_ip, user_agent)" \
    "SELECT md5('scale-record-' || i)::uuid, md5('scale-session-' || i)::uuid, $identity,
       md5('scale-passkey-' || i)::uuid, 'Passkey', 'token', md5('scale-flow-' || i)::uuid, 'resolved',
       now() - interval '30 days' * random(), '203.0.113.7', 'Mozilla/5.0 (X11; Linux x86_64) scale'
     FROM generate_series(1, $n) i"
  # Events: 5 per identity, spread over the retention (30 days), settled a
  # second after they happened; then the ones past retention; then the
  # backlog. seq follows this order, as it would in time.
  payload="jsonb_build_object('type', 'passkey.login', 'timestamp', t, 'data', jsonb_build_object('identity_id', $(scale_identity "i % $n + 1"), 'passkey_id', md5('scale-passkey-' || (i % $n + 1))::uuid, 'passkey_name', 'Passkey', 'kratos_session_id', md5('scale-session-' || i)::uuid, 'delivery', 'token', 'client_ip', '203.0.113.7', 'user_agent', 'Mozilla/5.0 (X11; Linux x86_64) scale'))"
  copy_rows "$db" "events (seq, id, type, identity_id, occurred_at, payload, settled_at)" \
    "SELECT i, md5('scale-event-' || i)::uuid, 'passkey.login', $(scale_identity "i % $n + 1"), t, $payload, t + interval '1 second'
     FROM (SELECT i, now() - interval '31 days' - interval '1 day' * (1 - i::float8 / $work) AS t
           FROM generate_series(1, $work) i) old
     UNION ALL
     SELECT i, md5('scale-event-' || i)::uuid, 'passkey.login', $(scale_identity "i % $n + 1"), t, $payload, t + interval '1 second'
     FROM (SELECT i, now() - interval '29 days' * (1 - (i - $work)::float8 / $events) AS t
           FROM generate_series($work + 1, $work + $events) i) recent
     UNION ALL
     SELECT i, md5('scale-event-' || i)::uuid, 'passkey.login', $(scale_identity "i % $n + 1"), t, $payload, NULL
     FROM (SELECT i, now() AS t FROM generate_series($work + $events + 1, $work + $events + $backlog) i) due"
  psql_as_owner "$db" -c "SELECT setval('events_seq_seq', $((work + events + backlog)))" >/dev/null
  copy_rows "$db" "event_deliveries (event_seq, endpoint, identity_id, state, attempts, next_attempt_at, delivered_at)" \
    "SELECT seq, 'bench', identity_id, CASE WHEN settled_at IS NULL THEN 'pending' ELSE 'delivered' END,
       CASE WHEN settled_at IS NULL THEN 0 ELSE 1 END, occurred_at, settled_at
     FROM events"
  # After the events, which already hold the ones past retention.
  seed_marks "$db" "$n"
  psql_as_owner "$db" -c "VACUUM (ANALYZE) identities, passkeys, minted_sessions, consumed_ceremonies, events, event_deliveries" >/dev/null
}
