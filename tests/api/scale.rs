//! What does not grow with the data: `gc` purges and checks in bounded
//! batches, and still reaches every row, however many there are.

use std::time::Duration;

use crate::helpers::{spawn_app_with, Authenticator, TestApp};

/// More than two purge batches (`PURGE_BATCH` is 1,000 rows).
const EXPIRED: i64 = 2_500;
/// More than one page of the identity check (`IDENTITY_PAGE` is 1,000).
const UNKNOWN_IDENTITIES: i64 = 1_050;

fn inserted(app: &TestApp, sql: &str) -> i64 {
    app.count(&format!(
        "WITH rows AS ({sql} RETURNING 1) SELECT count(*) AS count FROM rows"
    ))
}

#[tokio::test]
async fn gc_purges_every_expired_mark_and_event_batch_after_batch() {
    // The background sweep would purge first: only the call below runs.
    let app = spawn_app_with(|s| s.gc.interval = Duration::from_secs(3600)).await;
    inserted(
        &app,
        &format!(
            "INSERT INTO consumed_ceremonies (challenge, expires_at) \
             SELECT decode(md5(i || 'old'), 'hex'), now() - interval '2 hours' \
             FROM generate_series(1, {EXPIRED}) i"
        ),
    );
    inserted(
        &app,
        "INSERT INTO consumed_ceremonies (challenge, expires_at) \
         SELECT decode(md5(i || 'live'), 'hex'), now() + interval '5 minutes' \
         FROM generate_series(1, 10) i",
    );
    // Settled past the retention (30 days), each with a delivery the purge
    // takes along; and a few inside it.
    inserted(
        &app,
        &format!(
            "INSERT INTO events (id, type, identity_id, occurred_at, payload, settled_at) \
             SELECT gen_random_uuid(), 'passkey.login', gen_random_uuid(), t, '{{}}', t \
             FROM (SELECT now() - interval '40 days' AS t FROM generate_series(1, {EXPIRED})) old"
        ),
    );
    inserted(
        &app,
        "INSERT INTO events (id, type, identity_id, occurred_at, payload, settled_at) \
         SELECT gen_random_uuid(), 'passkey.login', gen_random_uuid(), now(), '{}', now() \
         FROM generate_series(1, 10)",
    );
    inserted(
        &app,
        "INSERT INTO event_deliveries (event_seq, endpoint, identity_id, state, attempts, delivered_at) \
         SELECT seq, 'gone', identity_id, 'delivered', 1, settled_at FROM events",
    );

    let state = app.state.clone().expect("in process");
    let collected = kratos_passkeys::gc::collect(&state).await.expect("gc");
    assert_eq!(collected.expired_ceremonies, EXPIRED as usize);
    assert_eq!(collected.events_purged, EXPIRED as usize);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM consumed_ceremonies"),
        10,
        "the live marks stay"
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM events"),
        10,
        "the events inside retention stay"
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM event_deliveries"),
        10,
        "the purged events' deliveries went with them"
    );
}

#[tokio::test]
async fn gc_deletes_settled_login_records_past_their_retention_batch_after_batch() {
    let app = spawn_app_with(|s| {
        s.gc.interval = Duration::from_secs(3600);
        s.gc.login_record_retention = Duration::from_secs(60);
    })
    .await;
    let record = |state: &str, session: &str, age: &str, rows: i64| {
        inserted(
            &app,
            &format!(
                "INSERT INTO minted_sessions (id, identity_id, delivery, state, kratos_session_id, created_at) \
                 SELECT gen_random_uuid(), gen_random_uuid(), 'token', '{state}', {session}, now() - interval '{age}' \
                 FROM generate_series(1, {rows})"
            ),
        )
    };
    // Settled before the retention: more than two batches, every settled state.
    record("resolved", "gen_random_uuid()", "2 minutes", EXPIRED);
    for state in ["unresolved", "failed", "revoked"] {
        record(state, "NULL", "2 minutes", 1);
    }
    // Inside the retention, and older ones not settled yet (a login still
    // minting, a session id still being learnt: younger than the five
    // minutes after which gc gives them up).
    record("resolved", "gen_random_uuid()", "30 seconds", 7);
    record("minting", "NULL", "2 minutes", 1);
    record("pending", "NULL", "2 minutes", 1);

    let state = app.state.clone().expect("in process");
    let collected = kratos_passkeys::gc::collect(&state).await.expect("gc");
    assert_eq!(collected.login_records_purged, EXPIRED as usize + 3);
    assert_eq!(
        app.count(
            "SELECT count(*) AS count FROM minted_sessions \
             WHERE (state = 'resolved' AND created_at > now() - interval '1 minute') \
                OR state IN ('minting', 'pending')"
        ),
        9,
        "the records inside the retention and the unsettled ones stay"
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM minted_sessions"),
        9
    );
}

#[tokio::test]
async fn gc_checks_every_identity_page_after_page() {
    let app = spawn_app_with(|s| s.gc.interval = Duration::from_secs(3600)).await;
    let (_, auth) = app.signed_in_user().await;
    app.register_passkey(&auth, &mut Authenticator::new()).await;
    // Identities Kratos never had, more than a page of them.
    inserted(
        &app,
        &format!(
            "INSERT INTO identities (identity_id, user_handle) \
             SELECT gen_random_uuid(), gen_random_uuid() FROM generate_series(1, {UNKNOWN_IDENTITIES})"
        ),
    );

    let state = app.state.clone().expect("in process");
    let collected = kratos_passkeys::gc::collect(&state).await.expect("gc");
    assert_eq!(
        collected.identities_checked,
        UNKNOWN_IDENTITIES as usize + 1
    );
    assert_eq!(collected.identities_purged, UNKNOWN_IDENTITIES as usize);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM identities"),
        1,
        "only the identity Kratos has is left"
    );
    assert_eq!(app.passkeys_stored(), 1);
}
