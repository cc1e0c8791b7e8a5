//! Every session a passkey login mints is accounted for, and a ceremony is
//! used at most once, whatever the replicas' clocks say.

use std::sync::Arc;
use std::time::Duration;

use kratos_passkeys::login_hooks::LoginStep;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Mutex};

use crate::helpers::authenticator::unb64;
use crate::helpers::{spawn_app_with, status_and_json, Authenticator, TestApp, TestUser};

async fn user_with_passkey(app: &TestApp) -> (TestUser, Authenticator) {
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    (user, authenticator)
}

#[tokio::test]
async fn a_replay_on_a_replica_whose_clock_is_behind_is_refused_after_the_purge() {
    let fast = spawn_app_with(|s| {
        s.webauthn.ceremony_ttl = Duration::from_secs(5);
        s.gc.used_ceremony_margin = Duration::ZERO;
    })
    .await;
    let slow = spawn_app_with(|s| {
        s.database.url = fast.settings.database.url.clone();
        s.webauthn.ceremony_ttl = Duration::from_secs(5);
        s.gc.used_ceremony_margin = Duration::ZERO;
    })
    .await;
    let slow_state = slow.state.clone().expect("in process");
    slow_state.clock.set_behind(Duration::from_secs(600));
    let (user, mut authenticator) = user_with_passkey(&fast).await;
    let before = fast.kratos.sessions(user.id).await.len();

    let options = fast.login_options().await;
    let credential = authenticator.login(&options);
    let (status, body) = status_and_json(
        fast.verify_login(&options, &credential, json!({"session": "token"}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // `gc` on the replica whose clock is right purges the mark once the
    // ceremony has expired.
    let state = fast.state.clone().expect("in process");
    let marks = "SELECT count(*) AS count FROM consumed_ceremonies";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fast.count(marks) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mark was never purged"
        );
        kratos_passkeys::gc::collect(&state).await.expect("gc");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The captured request, replayed where the clock says it has not expired.
    let (status, body) = status_and_json(
        slow.verify_login(&options, &credential, json!({"session": "token"}))
            .await,
    )
    .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["id"], "ceremony_expired");
    assert_eq!(fast.kratos.sessions(user.id).await.len(), before + 1);
    assert_eq!(
        fast.count("SELECT count(*) AS count FROM passkeys WHERE flagged_at IS NOT NULL"),
        0,
        "a replay is not a clone"
    );
}

#[tokio::test]
async fn a_client_that_leaves_after_verify_still_leaves_its_session_recorded() {
    let app = spawn_app_with(|_| {}).await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let state = app.state.clone().expect("in process");
    let (reached_tx, reached_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let hook = Arc::new(Mutex::new(Some((reached_tx, release_rx))));
    state.login_hooks.install(move |step| {
        let hook = hook.clone();
        async move {
            if step != LoginStep::Minted {
                return;
            }
            let taken = hook.lock().await.take();
            if let Some((reached, release)) = taken {
                let _ = reached.send(());
                let _ = release.await;
            }
        }
    });
    let options = app.login_options().await;
    let credential = authenticator.login(&options);
    let request = {
        let http = app.http.clone();
        let url = app.url("/passkeys/login/verify");
        let body = json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"});
        tokio::spawn(async move { http.post(url).json(&body).send().await })
    };
    reached_rx.await.expect("the login reached the mint");
    // The client goes away while Kratos's session exists and nothing but
    // the `minting` record says so.
    request.abort();
    let _ = request.await;
    // A moment for the server to see the connection close: the test passes
    // whether or not it does (the login runs as a task of its own).
    tokio::time::sleep(Duration::from_millis(100)).await;
    release_tx.send(()).expect("release");
    app.eventually_count(
        "SELECT count(*) AS count FROM minted_sessions WHERE state = 'resolved'",
        1,
    )
    .await;
    let session: String = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
        }
        let row: Row = diesel::sql_query(
            "SELECT kratos_session_id::text AS id FROM minted_sessions WHERE state = 'resolved'",
        )
        .get_result(&mut app.db())
        .expect("record");
        row.id
    };
    let (status, minted) = app.minted_session(&session).await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["identity_id"], user.id.to_string());
    let sessions = app.kratos.sessions(user.id).await;
    assert!(
        sessions.iter().any(|s| s["id"] == session.as_str()),
        "the recorded session is Kratos's"
    );
}

#[tokio::test]
async fn a_passkey_removed_during_its_login_still_leaves_a_record_that_names_it() {
    let app = spawn_app_with(|_| {}).await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let passkey = app.register_passkey(&auth, &mut authenticator).await;
    let passkey_id = passkey["id"].as_str().expect("id").to_string();
    let state = app.state.clone().expect("in process");
    let db_url = app.database_url.clone();
    state.login_hooks.install(move |step| {
        let db_url = db_url.clone();
        async move {
            if step == LoginStep::Minted {
                tokio::task::spawn_blocking(move || {
                    use diesel::{Connection, RunQueryDsl};
                    let mut conn = diesel::PgConnection::establish(&db_url).expect("db");
                    diesel::sql_query("DELETE FROM passkeys")
                        .execute(&mut conn)
                        .expect("delete");
                })
                .await
                .expect("deleted");
            }
        }
    });
    let options = app.login_options().await;
    let credential = authenticator.login(&options);
    let (status, body) = status_and_json(
        app.verify_login(
            &options,
            &credential,
            json!({"session": "token", "include_session": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.passkeys_stored(), 0, "removed mid-login");
    let session = body["session"]["id"].as_str().expect("session id");
    let (status, minted) = app.minted_session(session).await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["identity_id"], user.id.to_string());
    assert_eq!(minted["passkey"]["id"], passkey_id.as_str());
    assert!(minted["passkey"]["name"].is_string(), "{minted}");
}

/// The signature counter in an assertion's authenticator data.
fn counter_of(credential: &Value) -> i64 {
    let data = unb64(&credential["response"]["authenticatorData"]);
    i64::from(u32::from_be_bytes([data[33], data[34], data[35], data[36]]))
}

#[tokio::test]
async fn concurrent_logins_with_one_key_leave_the_highest_counter() {
    let app = spawn_app_with(|_| {}).await;
    let (_, mut authenticator) = user_with_passkey(&app).await;
    let mut signed = Vec::new();
    for _ in 0..20 {
        let options = app.login_options().await;
        let credential = authenticator.login(&options);
        signed.push((options, credential));
    }
    let highest = signed.iter().map(|(_, c)| counter_of(c)).max().expect("20");
    assert!(highest >= 20, "the authenticator counts: {highest}");
    // Sent together, highest first, so later arrivals carry lower counters.
    let logins = signed.iter().rev().map(|(options, credential)| {
        app.verify_login(options, credential, json!({"session": "token"}))
    });
    let statuses: Vec<u16> = futures_util::future::join_all(logins)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| [200, 409].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        app.count("SELECT sign_count AS count FROM passkeys"),
        highest,
        "{statuses:?}"
    );
    assert_eq!(
        app.count("SELECT (credential->'cred'->>'counter')::bigint AS count FROM passkeys"),
        highest,
        "the credential webauthn-rs reads holds the same counter"
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkeys WHERE flagged_at IS NOT NULL"),
        0,
        "logins that race are not a clone"
    );
}
