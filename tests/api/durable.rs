//! Side effects that outlive the process: a recovery notice survives a
//! SIGKILL, a removed endpoint's deliveries are settled, and a held login
//! event whose process died stops holding back its identity's events.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::RunQueryDsl;
use kratos_passkeys::domain::{IdentityId, KratosSessionId, LoginRecordId};
use kratos_passkeys::store::NewEvent;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::binary::Served;
use crate::helpers::events::{deliver_to, serve_delivering, wait_settled, Behaviour, Receiver};
use crate::helpers::{spawn_app_with, spawn_with_settings, Auth, Authenticator, TestApp};

const NOTICES: &str = "SELECT count(*) AS count FROM event_deliveries \
    WHERE endpoint = 'recovery_hook.notifier'";

/// Renames `passkey`, which must succeed.
async fn rename(app: &TestApp, auth: &Auth, passkey: &Value, name: &str) {
    let (status, body) = app.rename_passkey(auth, passkey, name).await;
    assert_eq!(status, 200, "{body}");
}

/// A real recovery's notice is written before the hook answers Kratos; the
/// process is killed while the notifier holds the first attempt; the
/// restarted service sends it, and the notifier accepts it exactly once.
#[tokio::test]
async fn a_recovery_notice_cut_off_by_a_kill_arrives_once_after_restart() {
    let notifier = Receiver::start(Behaviour::Hold(Duration::from_secs(30))).await;
    let (_, database_url) = crate::helpers::create_database();
    let start = || {
        let mut command = serve_delivering(&database_url);
        command
            .env(
                "KRATOS_PASSKEYS__RECOVERY_HOOK__NOTIFIER_URL",
                notifier.url().as_str(),
            )
            .env(
                "KRATOS_PASSKEYS__RECOVERY_HOOK__NOTIFIER_AUTH_HEADER",
                "Authorization",
            )
            .env(
                "KRATOS_PASSKEYS__RECOVERY_HOOK__NOTIFIER_AUTH_VALUE",
                "Bearer notifier-key",
            )
            .env(
                "KRATOS_PASSKEYS__RECOVERY_HOOK__REVOKE_OTHER_SESSIONS",
                "true",
            );
        Served::start(command, &database_url)
    };
    let (mut served, app) = start().await;
    let (user, auth) = app.signed_in_user().await;
    let Auth::Token(token) = &auth else {
        panic!("a token session")
    };
    let flow = Uuid::new_v4();
    let notify = json!({"event": "account_recovered", "identity_id": user.id, "flow": flow});
    let response = app
        .http
        .post(app.admin_url("/hooks/kratos/after-recovery"))
        .header(
            "X-Webhook-Key",
            app.settings.webhook.api_key.expose_secret(),
        )
        .json(&json!({"flow_id": flow, "identity_id": user.id, "notify": notify}))
        .send()
        .await
        .expect("hook");
    assert_eq!(response.status(), 204);
    // A real recovery: the person's other sessions are gone.
    assert_eq!(app.kratos.whoami_token(token).await.0, 401);

    // The notice is on its way (held by the notifier) when the process dies.
    let first = notifier.wait_for_arrival().await;
    served.kill();
    assert!(
        notifier.accepted().is_empty(),
        "nothing acknowledged before the kill"
    );
    assert_eq!(
        app.count(&format!("{NOTICES} AND state = 'pending'")),
        1,
        "the notice survives the kill"
    );

    notifier.behave(Behaviour::Accept);
    let (mut restarted, _) = start().await;
    let got = notifier.wait_for(1).await;
    app.eventually_count(&format!("{NOTICES} AND state = 'delivered'"), 1)
        .await;
    restarted.kill();
    assert_eq!(got[0].payload(), notify, "the notify object, unchanged");
    assert_eq!(got[0].id, first.id, "one notice, one idempotency key");
    assert_eq!(notifier.accepted().len(), 1, "accepted exactly once");
    assert!(
        notifier.arrivals().len() >= 2,
        "the attempt cut off by the kill was made again"
    );
}

/// An endpoint removed from the configuration: its undelivered rows are
/// settled `abandoned` when the service starts, leave the backlog, show in
/// the audit, count once in metrics and are purged by retention.
#[tokio::test]
async fn a_removed_endpoints_deliveries_are_abandoned_at_start_up() {
    let receiver = Receiver::start(Behaviour::FailFirst(usize::MAX)).await;
    let app = spawn_app_with(|s| {
        deliver_to(s, &receiver);
        s.events.first_backoff = Duration::from_secs(3600);
    })
    .await;
    let (user, auth) = app.signed_in_user().await;
    let mut phone = Authenticator::new();
    let passkey = app.register_passkey(&auth, &mut phone).await;
    rename(&app, &auth, &passkey, "Renamed").await;
    app.eventually_count(
        "SELECT count(*) AS count FROM event_deliveries WHERE state = 'pending' AND attempts = 1",
        1,
    )
    .await;
    let text = app.metrics().await;
    assert!(
        text.contains("kratos_passkeys_events_undelivered 2"),
        "{text}"
    );

    let mut settings = app.settings.clone();
    settings.events.endpoints.clear();
    let restarted = spawn_with_settings(settings).await;
    restarted
        .eventually_count(
            "SELECT count(*) AS count FROM event_deliveries WHERE state = 'abandoned'",
            2,
        )
        .await;
    let text = restarted.metrics().await;
    assert!(
        text.contains("kratos_passkeys_events_undelivered 0"),
        "{text}"
    );
    assert!(
        text.contains(r#"kratos_passkeys_event_deliveries_total{endpoint="test-receiver",outcome="abandoned"} 2"#),
        "{text}"
    );
    let (status, page) = restarted.identity_events(user.id, "").await;
    assert_eq!(status, 200, "{page}");
    let states: Vec<&Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["deliveries"][0]["state"])
        .collect();
    assert_eq!(states, [&json!("abandoned"), &json!("abandoned")], "{page}");
    let store = &restarted.state.as_ref().expect("in-process").store;
    let purged = store
        .purge_settled_events(Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("purge");
    assert_eq!(purged, 2, "settled, so retention purges them");
}

/// A login event written `held` whose process died before learning the
/// session id: at the end of `events.hold_for` it goes out without it, and
/// the identity's next event follows.
#[tokio::test]
async fn a_held_event_of_a_dead_process_stops_blocking_after_hold_for() {
    const HOLD: Duration = Duration::from_secs(1);
    let receiver = Receiver::start(Behaviour::Accept).await;
    let app = spawn_app_with(|s| {
        deliver_to(s, &receiver);
        s.events.hold_for = HOLD;
        s.events.poll_interval = Duration::from_millis(100);
    })
    .await;
    let (user, auth) = app.signed_in_user().await;
    let mut phone = Authenticator::new();
    let passkey = app.register_passkey(&auth, &mut phone).await;
    receiver.wait_for(1).await;

    // Written as a login writes it, with its pending record, and never
    // released: the process that would have learnt the session id died.
    let state = app.state.as_ref().expect("in-process");
    let record = Uuid::new_v4();
    diesel::sql_query(
        "INSERT INTO minted_sessions (id, identity_id, delivery, state) \
         VALUES ($1, $2, 'token', 'pending')",
    )
    .bind::<diesel::sql_types::Uuid, _>(record)
    .bind::<diesel::sql_types::Uuid, _>(user.id)
    .execute(&mut app.db())
    .expect("login record");
    let now = Utc::now();
    let held = NewEvent {
        id: record,
        kind: "passkey.login",
        identity_id: IdentityId::new(user.id),
        occurred_at: now,
        payload: json!({
            "type": "passkey.login",
            "timestamp": now.to_rfc3339(),
            "data": {"identity_id": user.id, "kratos_session_id": null},
        }),
        endpoints: vec!["test-receiver".into()],
        held: Some(HOLD),
    };
    let written = Instant::now();
    state
        .store
        .append_events(vec![held])
        .await
        .expect("held event");
    rename(&app, &auth, &passkey, "After").await;

    let got = receiver.wait_for(3).await;
    let waited = written.elapsed();
    let kinds: Vec<String> = got.iter().map(|d| d.kind()).collect();
    assert_eq!(
        kinds,
        ["passkey.registered", "passkey.login", "passkey.renamed"]
    );
    assert_eq!(got[1].payload()["data"]["kratos_session_id"], Value::Null);
    assert!(waited >= HOLD, "held for {waited:?}");
    // The bound, plus a few worker rounds of slack.
    assert!(
        waited < HOLD + Duration::from_secs(2),
        "released after {waited:?}"
    );
    wait_settled(&app, 3).await;
    assert_eq!(receiver.accepted().len(), 3, "each sent once");

    // The session id learnt after the hold ended is not sent again: the
    // event stays as it was delivered, and only the next change follows.
    let resolved = state
        .store
        .resolve_session(
            LoginRecordId::new(record),
            KratosSessionId::new(Uuid::new_v4()),
        )
        .await
        .expect("resolve");
    assert!(resolved, "the record learnt its session id");
    rename(&app, &auth, &passkey, "Later").await;
    let got = receiver.wait_for(4).await;
    assert_eq!(got[3].kind(), "passkey.renamed");
    wait_settled(&app, 4).await;
    assert_eq!(
        receiver.accepted().len(),
        4,
        "the login event was not re-sent"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM events WHERE id = '{record}' \
             AND payload->'data'->'kratos_session_id' = 'null'::jsonb"
        )),
        1,
        "the audit shows the event as it was delivered"
    );
}
