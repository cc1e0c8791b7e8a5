//! Events: one per change or login, written with it, delivered at least
//! once and in order per identity to a real receiver, signed per Standard
//! Webhooks (checked by the `standardwebhooks` package); and the audit.

use std::collections::HashMap;
use std::time::Duration;

use diesel::RunQueryDsl;
use kratos_passkeys::configuration::RequiredAal;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::binary::Served;
use crate::helpers::events::{
    deliver_to, endpoints_json, serve_delivering, verify_independently, wait_settled, Behaviour,
    Delivery, Receiver,
};
use crate::helpers::{
    assert_error, spawn_app_with, spawn_with_settings, status_and_json, Auth, Authenticator,
    TestApp, TEST_USER_AGENT,
};

/// A token-mode passkey login; answers the verify body.
async fn login(
    app: &TestApp,
    authenticator: &mut Authenticator,
    include_session: bool,
) -> (u16, Value) {
    let body = json!({"session": "token", "include_session": include_session});
    status_and_json(app.passkey_login(authenticator, body).await).await
}

/// Every event's (identity, id) in the order they were written.
fn written(app: &TestApp) -> Vec<(String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        identity: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    diesel::sql_query(
        "SELECT identity_id::text AS identity, id::text AS id FROM events ORDER BY seq",
    )
    .load::<Row>(&mut app.db())
    .expect("events")
    .into_iter()
    .map(|r| (r.identity, r.id))
    .collect()
}

/// Every written event arrived, and each identity's arrived in the order
/// they were written.
fn assert_all_in_order(app: &TestApp, got: &[Delivery]) {
    let written = written(app);
    assert_eq!(got.len(), written.len(), "every written event arrived once");
    let mut per_identity: HashMap<&str, Vec<&str>> = HashMap::new();
    for (identity, id) in &written {
        per_identity.entry(identity).or_default().push(id);
    }
    for (identity, ids) in per_identity {
        let arrived: Vec<&str> = got
            .iter()
            .filter(|d| d.payload()["data"]["identity_id"] == identity)
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(arrived, ids, "identity {identity}'s events in order");
    }
}

fn kinds(got: &[Delivery]) -> Vec<String> {
    got.iter().map(Delivery::kind).collect()
}

#[tokio::test]
async fn every_change_and_login_is_one_signed_event_in_order() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let app = spawn_app_with(|s| deliver_to(s, &receiver)).await;
    let (user, auth) = app.signed_in_user().await;
    let mut phone = Authenticator::new();
    let mut laptop = Authenticator::new();

    let first = app.register_passkey(&auth, &mut phone).await;
    let (status, renamed) = app.rename_passkey(&auth, &first, "Phone").await;
    assert_eq!(status, 200, "{renamed}");
    let second = app.register_passkey(&auth, &mut laptop).await;
    // Refused, so rolled back: no event.
    let (status, body) = app.rename_passkey(&auth, &second, "Phone").await;
    assert_error(status, &body, 409, "passkey_name_taken");
    let (status, logged_in) = login(&app, &mut phone, true).await;
    assert_eq!(status, 200, "{logged_in}");
    let minted_session = logged_in["session"]["id"]
        .as_str()
        .expect("session id")
        .to_string();
    let response = app
        .request(
            Method::DELETE,
            &format!("/passkeys/{}", second["id"].as_str().expect("id")),
            &auth,
        )
        .header("User-Agent", TEST_USER_AGENT)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 204);
    let response = app
        .http
        .delete(app.admin_url(&format!(
            "/admin/identities/{}/passkeys/{}",
            user.id,
            first["id"].as_str().expect("id")
        )))
        .header("User-Agent", "support-console/2")
        .send()
        .await
        .expect("admin delete");
    assert_eq!(response.status(), 204);

    let got = receiver.wait_for(6).await;
    // The audit and the metrics below read what the worker committed.
    wait_settled(&app, 6).await;
    assert_eq!(
        kinds(&got),
        [
            "passkey.registered",
            "passkey.renamed",
            "passkey.registered",
            "passkey.login",
            "passkey.removed",
            "passkey.removed"
        ]
    );
    assert_all_in_order(&app, &got);
    let data: Vec<Value> = got.iter().map(|d| d.payload()["data"].clone()).collect();
    for d in &data {
        assert_eq!(d["identity_id"], user.id.to_string());
    }
    assert_eq!(data[0]["passkey"]["id"], first["id"]);
    assert_eq!(data[0]["passkey"]["name"], first["name"]);
    assert_eq!(data[0]["actor"], "person");
    assert!(
        data[0]["passkey"].get("credential").is_none(),
        "{}",
        data[0]
    );
    assert_eq!(data[1]["passkey"]["name"], "Phone");
    assert_eq!(data[1]["previous_name"], first["name"]);
    assert_eq!(data[1]["client"]["user_agent"], TEST_USER_AGENT);
    assert_eq!(data[1]["client"]["ip"], "127.0.0.1");
    assert_eq!(data[2]["passkey"]["id"], second["id"]);
    assert_eq!(data[3]["passkey"]["id"], first["id"]);
    assert_eq!(data[3]["kratos_session_id"], minted_session);
    assert_eq!(data[3]["session_delivery"], "token");
    assert_eq!(data[3]["second_factor_pending"], false);
    assert!(data[3]["recovery_flow_id"].is_string());
    assert_eq!(data[3]["client"]["user_agent"], TEST_USER_AGENT);
    assert_eq!(
        (&data[4]["actor"], &data[4]["passkey"]["id"]),
        (&json!("person"), &second["id"])
    );
    assert_eq!(
        (&data[5]["actor"], &data[5]["passkey"]["id"]),
        (&json!("support"), &first["id"])
    );
    assert_eq!(data[5]["client"]["user_agent"], "support-console/2");
    for delivery in &got {
        let payload = delivery.payload();
        assert!(payload["timestamp"].is_string());
        assert_eq!(
            payload.as_object().map(|o| o.len()),
            Some(3),
            "type, timestamp, data: {payload}"
        );
        assert_eq!(delivery.body.matches("\"type\"").count(), 1);
    }

    // The independent implementation accepts every signature, and refuses
    // a tampered body.
    let verified = verify_independently(&got);
    for (delivery, result) in got.iter().zip(&verified) {
        assert_eq!(result.as_ref().expect("verifies"), &delivery.payload());
    }
    let mut tampered = got[3].clone();
    tampered.body = tampered
        .body
        .replace(&minted_session, &uuid::Uuid::new_v4().to_string());
    let mut wrong_id = got[0].clone();
    wrong_id.id = got[1].id.clone();
    for result in verify_independently(&[tampered, wrong_id]) {
        assert!(result.is_err(), "{result:?}");
    }

    // The audit: newest first, with where each delivery stands.
    let (status, page) = app.identity_events(user.id, "page_size=4").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    let newest_first: Vec<&str> = got.iter().rev().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, newest_first[..4]);
    assert_eq!(page["events"][0]["deliveries"][0]["state"], "delivered");
    assert_eq!(page["events"][0]["data"], data[5]);
    let token = page["next_page_token"].as_str().expect("a next page");
    let (_, rest) = app
        .identity_events(user.id, &format!("page_token={token}"))
        .await;
    let rest: Vec<&str> = rest["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(rest, newest_first[4..]);

    // Bad pages are refused in our shape.
    for query in [
        "page_size=0",
        "page_size=abc",
        "page_token=x",
        "colour=blue",
    ] {
        let (status, body) = app.identity_events(user.id, query).await;
        assert_error(status, &body, 400, "malformed_request");
    }

    // Which passkey minted the session, and a password session: none.
    let (status, minted) = app.minted_session(&minted_session).await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["identity_id"], user.id.to_string());
    assert_eq!(minted["passkey"]["name"], "Phone");
    // Removed since: the record names it as it was.
    assert_eq!(
        minted["passkey"]["id"], data[0]["passkey"]["id"],
        "removed since"
    );
    assert_eq!(minted["client"]["user_agent"], TEST_USER_AGENT);
    assert_eq!(minted["client"]["ip"], "127.0.0.1");
    assert_eq!(minted["session_delivery"], "token");
    let Auth::Token(password_token) = &auth else {
        unreachable!()
    };
    let password_session = app.kratos.session_of_token(password_token).await["id"].clone();
    let (status, body) = app
        .minted_session(password_session.as_str().expect("id"))
        .await;
    assert_error(status, &body, 404, "session_not_minted");

    // Each came once, and nothing is left to deliver.
    assert_eq!(receiver.accepted().len(), 6, "each event delivered once");
    let text = app.metrics().await;
    assert!(
        text.contains("kratos_passkeys_events_undelivered 0"),
        "{text}"
    );
    assert!(text.contains(r#"kratos_passkeys_event_deliveries_total{endpoint="test-receiver",outcome="delivered"} 6"#), "{text}");
}

#[tokio::test]
async fn refusals_flags_and_purges_are_events() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let app = spawn_app_with(|s| deliver_to(s, &receiver)).await;

    // A counter that goes backwards: flagged, refused; refused again later.
    let (cloned, auth) = app.signed_in_user().await;
    let mut copy = Authenticator::new();
    let passkey = app.register_passkey(&auth, &mut copy).await;
    app.count("WITH moved AS (UPDATE passkeys SET sign_count = 100, credential = jsonb_set(credential, '{cred,counter}', '100') RETURNING 1) SELECT count(*) AS count FROM moved");
    for _ in 0..2 {
        let (status, body) = login(&app, &mut copy, false).await;
        assert_error(status, &body, 403, "credential_cloned");
    }
    // A disabled identity.
    let (inactive, auth) = app.signed_in_user().await;
    let mut theirs = Authenticator::new();
    app.register_passkey(&auth, &mut theirs).await;
    app.kratos.set_state(inactive.id, "inactive").await;
    let (status, body) = login(&app, &mut theirs, false).await;
    assert_error(status, &body, 403, "identity_inactive");
    // A deleted identity: everything about it is purged.
    let (deleted, auth) = app.signed_in_user().await;
    let mut gone = Authenticator::new();
    let gone_passkey = app.register_passkey(&auth, &mut gone).await;
    app.kratos.delete_identity(deleted.id).await;
    let (status, body) = login(&app, &mut gone, false).await;
    assert_error(status, &body, 404, "identity_not_found");

    let got = receiver.wait_for(8).await;
    assert_all_in_order(&app, &got);
    let of = |identity: uuid::Uuid| -> Vec<Value> {
        got.iter()
            .map(Delivery::payload)
            .filter(|p| p["data"]["identity_id"] == identity.to_string())
            .collect()
    };
    let cloned_events = of(cloned.id);
    let types: Vec<&str> = cloned_events
        .iter()
        .map(|p| p["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "passkey.registered",
            "passkey.flagged",
            "passkey.login_refused",
            "passkey.login_refused"
        ]
    );
    assert_eq!(cloned_events[1]["data"]["reason"], "counter_regression");
    assert_eq!(cloned_events[1]["data"]["passkey"]["id"], passkey["id"]);
    assert_eq!(cloned_events[2]["data"]["reason"], "credential_cloned");
    assert_eq!(
        cloned_events[3]["data"]["client"]["user_agent"],
        TEST_USER_AGENT
    );
    let inactive_events = of(inactive.id);
    assert_eq!(inactive_events[1]["type"], "passkey.login_refused");
    assert_eq!(inactive_events[1]["data"]["reason"], "identity_inactive");
    let deleted_events = of(deleted.id);
    assert_eq!(deleted_events[1]["type"], "identity.purged");
    assert_eq!(deleted_events[1]["data"]["actor"], "service");
    assert_eq!(
        deleted_events[1]["data"]["passkeys"][0]["id"],
        gone_passkey["id"]
    );
    for result in verify_independently(&got) {
        result.expect("verifies");
    }
}

/// With `whoami_required_aal: aal1` the login learns its session id after
/// the answer: its event waits for it, then goes out with it.
#[tokio::test]
async fn a_login_event_waits_for_the_session_id_learnt_after_the_answer() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let app = spawn_app_with(|s| {
        deliver_to(s, &receiver);
        s.kratos.whoami_required_aal = RequiredAal::Aal1;
    })
    .await;
    let (_, auth) = app.signed_in_user().await;
    let mut phone = Authenticator::new();
    app.register_passkey(&auth, &mut phone).await;
    let (status, body) = login(&app, &mut phone, false).await;
    assert_eq!(status, 200, "{body}");
    let session = app
        .kratos
        .session_of_token(body["session_token"].as_str().expect("token"))
        .await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].kind(), "passkey.login");
    assert_eq!(got[1].payload()["data"]["kratos_session_id"], session["id"]);
    verify_independently(&got[1..])[0]
        .as_ref()
        .expect("verifies");
    let (status, minted) = app
        .minted_session(session["id"].as_str().expect("id"))
        .await;
    assert_eq!(status, 200, "{minted}");
}

/// Several identities, a few changes each.
async fn changes(app: &TestApp, identities: usize, renames: usize) {
    for _ in 0..identities {
        let (_, auth) = app.signed_in_user().await;
        let mut authenticator = Authenticator::new();
        let passkey = app.register_passkey(&auth, &mut authenticator).await;
        for n in 0..renames {
            let (status, body) = app
                .rename_passkey(&auth, &passkey, &format!("Name {n}"))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_until_it_accepts() {
    let receiver = Receiver::start(Behaviour::FailFirst(3)).await;
    let app = spawn_app_with(|s| deliver_to(s, &receiver)).await;
    changes(&app, 2, 2).await;
    let got = receiver.wait_for(6).await;
    assert_all_in_order(&app, &got);
    for delivery in &got {
        let tries = receiver
            .arrivals()
            .iter()
            .filter(|d| d.id == delivery.id)
            .count();
        assert_eq!(tries, 4, "three 500s, then accepted");
    }
    app.eventually_count(
        "SELECT count(*) AS count FROM event_deliveries WHERE state = 'delivered' AND attempts = 4",
        6,
    )
    .await;
    let text = app.metrics().await;
    assert!(
        text.contains(
            r#"kratos_passkeys_event_deliveries_total{endpoint="test-receiver",outcome="retry"} 18"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_receiver_that_times_out_is_retried() {
    let receiver = Receiver::start(Behaviour::Hold(Duration::from_secs(3))).await;
    let app = spawn_app_with(|s| {
        deliver_to(s, &receiver);
        s.events.request_timeout = Duration::from_millis(500);
    })
    .await;
    changes(&app, 1, 0).await;
    receiver.wait_for_arrival().await;
    app.eventually_count(
        "SELECT count(*) AS count FROM event_deliveries WHERE last_error = 'timed out'",
        1,
    )
    .await;
    receiver.behave(Behaviour::Accept);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].kind(), "passkey.registered");
    app.eventually_count(
        "SELECT count(*) AS count FROM event_deliveries WHERE state = 'delivered' AND attempts >= 2",
        1,
    )
    .await;
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_everything_in_order_once_back() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    receiver.down().await;
    let app = spawn_app_with(|s| deliver_to(s, &receiver)).await;
    changes(&app, 2, 2).await;
    // Every event was tried and failed at least twice meanwhile.
    app.eventually_count(
        "SELECT count(*) AS count FROM event_deliveries WHERE state = 'pending' AND attempts >= 2 AND last_error = 'could not connect'",
        2,
    )
    .await;
    let text = app.metrics().await;
    assert!(
        text.contains("kratos_passkeys_events_undelivered 6"),
        "{text}"
    );
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kratos_passkeys_events_oldest_undelivered_age_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("the oldest undelivered age");
    assert!(age > 0.0, "{text}");
    receiver.up();
    let got = receiver.wait_for(6).await;
    assert_all_in_order(&app, &got);
    wait_settled(&app, 6).await;
    app.eventually_count(
        "SELECT count(*) AS count FROM events WHERE settled_at IS NOT NULL",
        6,
    )
    .await;
    assert_eq!(receiver.accepted().len(), 6, "each once");
    let text = app.metrics().await;
    assert!(
        text.contains("kratos_passkeys_events_undelivered 0"),
        "{text}"
    );
}

/// A receiver that refuses one event: it is retried while young, given up
/// once older than `give_up_after` (its age set back in the database, the
/// worker's clock untouched), and the identity's next event, held behind it
/// until then, is delivered.
#[tokio::test]
async fn an_event_given_up_by_age_lets_the_identitys_next_ones_go() {
    let receiver = Receiver::start(Behaviour::Refuse("passkey.registered")).await;
    let app = spawn_app_with(|s| {
        deliver_to(s, &receiver);
        s.events.give_up_after = Duration::from_secs(3600);
    })
    .await;
    changes(&app, 1, 1).await;
    let registered = "SELECT count(*) AS count FROM event_deliveries d JOIN events e \
        ON e.seq = d.event_seq WHERE e.type = 'passkey.registered'";
    // Young: refused and retried, and the rename waits behind it.
    app.eventually_count(
        &format!("{registered} AND d.state = 'pending' AND d.attempts >= 2"),
        1,
    )
    .await;
    assert!(receiver.accepted().is_empty(), "the rename waits its turn");
    assert!(receiver
        .arrivals()
        .iter()
        .all(|d| d.kind() == "passkey.registered"));

    // Two hours old now: the next refusal is its last.
    app.count(
        "WITH aged AS (UPDATE events SET occurred_at = occurred_at - interval '2 hours' \
         WHERE type = 'passkey.registered' RETURNING 1) SELECT count(*) AS count FROM aged",
    );
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].kind(), "passkey.renamed");
    app.eventually_count(&format!("{registered} AND d.state = 'failed'"), 1)
        .await;
    wait_settled(&app, 1).await;
    assert_eq!(
        app.count(&format!("{registered} AND d.attempts >= 3")),
        1,
        "given up on a refusal after retries, not on its first"
    );
    let text = app.metrics().await;
    assert!(text.contains(r#"kratos_passkeys_event_deliveries_total{endpoint="test-receiver",outcome="gave_up"} 1"#), "{text}");
}

#[tokio::test]
async fn two_replicas_never_send_one_event_at_the_same_time() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let first = spawn_app_with(|s| deliver_to(s, &receiver)).await;
    let second = spawn_with_settings(first.settings.clone()).await;
    // Both replicas write events (each wakes its own worker at once).
    tokio::join!(changes(&first, 3, 3), changes(&second, 3, 3));
    let got = receiver.wait_for(24).await;
    assert_all_in_order(&first, &got);
    wait_settled(&first, 24).await;
    assert_eq!(
        receiver.most_at_once(),
        1,
        "no event was being sent twice at once"
    );
    assert_eq!(receiver.accepted().len(), 24, "each event delivered once");
}

/// SIGKILL in the middle of a delivery: the round's transaction dies with
/// the process, and the restarted service sends every committed event.
#[tokio::test]
async fn killed_mid_delivery_every_committed_event_is_delivered_after_restart() {
    let receiver = Receiver::start(Behaviour::Hold(Duration::from_secs(30))).await;
    let (_, database_url) = crate::helpers::create_database();
    let start = || {
        let mut command = serve_delivering(&database_url);
        command
            .env(
                "KRATOS_PASSKEYS__EVENTS__ENDPOINTS",
                endpoints_json(&receiver),
            )
            .env("KRATOS_PASSKEYS__EVENTS__REQUEST_TIMEOUT", "60s");
        Served::start(command, &database_url)
    };
    let (mut served, app) = start().await;
    let (_, auth) = app.signed_in_user().await;
    let mut phone = Authenticator::new();
    let passkey = app.register_passkey(&auth, &mut phone).await;
    // The first delivery is on its way (held by the receiver) ...
    receiver.wait_for_arrival().await;
    // ... while more changes commit, and one is refused (rolled back).
    for name in ["One", "Two"] {
        let (status, body) = app.rename_passkey(&auth, &passkey, name).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app.rename_passkey(&auth, &passkey, &"x".repeat(65)).await;
    assert_error(status, &body, 400, "invalid_passkey_name");
    served.kill();
    assert!(
        receiver.accepted().is_empty(),
        "nothing was acknowledged before the kill"
    );

    receiver.behave(Behaviour::Accept);
    let (mut restarted, _) = start().await;
    let got = receiver.wait_for(3).await;
    restarted.kill();
    assert_eq!(
        kinds(&got),
        ["passkey.registered", "passkey.renamed", "passkey.renamed"]
    );
    assert_all_in_order(&app, &got);
    let first_id = &got[0].id;
    assert!(
        receiver
            .arrivals()
            .iter()
            .filter(|d| &d.id == first_id)
            .count()
            >= 2,
        "the delivery cut off by the kill was sent again"
    );
    for result in verify_independently(&got) {
        result.expect("verifies");
    }
}
