//! Abuse limits, CORS, garbage collection and metrics.

use std::time::Duration;

use futures_util::StreamExt;
use kratos_passkeys::configuration::RequiredAal;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, status_and_json, Auth, Authenticator, TestApp,
};

async fn login_options(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/passkeys/login/options"))
        .json(&json!({}));
    if let Some(ip) = forwarded_for {
        request = request.header("X-Forwarded-For", ip);
    }
    request.send().await.expect("request")
}

/// The `Retry-After` of a refusal, in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

#[tokio::test]
async fn login_endpoints_are_rate_limited_per_client_ip() {
    let app = spawn_app_with(|s| {
        s.limits.login_per_ip.burst = 3;
        s.limits.login_per_ip.per_minute = 6;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(login_options(&app, None).await.status(), 200);
    }
    let refused = login_options(&app, None).await;
    // One token every 10 s: the real wait, rounded up (a slow machine may
    // have refilled a little of it already).
    let wait = retry_after(&refused);
    assert!((9..=10).contains(&wait), "{wait}");
    let (status, body) = status_and_json(refused).await;
    assert_error(status, &body, 429, "rate_limited");
    // verify shares the budget.
    let (status, body) = app
        .post_json(
            "/passkeys/login/verify",
            &Auth::None,
            &json!({"ceremony_id": "AAAA", "credential": {
            "id": "AA", "rawId": "AA", "type": "public-key",
            "response": {"authenticatorData": "AA", "clientDataJSON": "AA", "signature": "AA"}}}),
        )
        .await;
    assert_error(status, &body, 429, "rate_limited");
    // Once the announced wait is over, the next request passes.
    app.advance_clock(Duration::from_secs(wait));
    assert_eq!(login_options(&app, None).await.status(), 200);
    assert_eq!(login_options(&app, None).await.status(), 429);
}

#[tokio::test]
async fn a_trusted_proxy_header_names_the_client() {
    let app = spawn_app_with(|s| {
        s.limits.login_per_ip.burst = 2;
        s.http.client_ip_header = "X-Forwarded-For".into();
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            login_options(&app, Some("198.51.100.1")).await.status(),
            200
        );
    }
    assert_eq!(
        login_options(&app, Some("198.51.100.1")).await.status(),
        429
    );
    // Another client behind the same proxy has its own budget: the last
    // address, the one our proxy appended, names it.
    for _ in 0..2 {
        assert_eq!(
            login_options(&app, Some("203.0.113.9, 198.51.100.2"))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        login_options(&app, Some("198.51.100.1, 198.51.100.2"))
            .await
            .status(),
        429
    );
    assert!(
        ready_warnings(&app).await.is_null(),
        "a configured header is no warning"
    );

    // Without the setting, the header is ignored: it could be forged.
    let direct = spawn_app_with(|s| s.limits.login_per_ip.burst = 1).await;
    assert_eq!(
        login_options(&direct, Some("198.51.100.1")).await.status(),
        200
    );
    assert_eq!(
        login_options(&direct, Some("198.51.100.77")).await.status(),
        429
    );
}

async fn ready_warnings(app: &TestApp) -> Value {
    let (status, body) = app.get_json("/health/ready", &Auth::None).await;
    assert_eq!(status, 200, "{body}");
    body["warnings"].clone()
}

#[tokio::test]
async fn an_unconfigured_proxy_is_reported_by_readiness() {
    let app = spawn_app().await;
    assert_eq!(login_options(&app, None).await.status(), 200);
    assert!(ready_warnings(&app).await.is_null());
    let forwarded = app
        .http
        .post(app.url("/passkeys/login/options"))
        .header("Forwarded", "for=203.0.113.7")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(forwarded.status(), 200);
    let warnings = ready_warnings(&app).await;
    assert!(
        warnings["client_ip_header"]
            .as_str()
            .is_some_and(|w| w.contains("one address")),
        "{warnings}"
    );
    // On the admin listener too: operators look there.
    let (_, admin) = status_and_json(
        app.http
            .get(app.admin_url("/health/ready"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(admin["warnings"], warnings);
}

#[tokio::test]
async fn unfinished_logins_do_not_lock_out_an_address() {
    // Default limits: sign-in pages that start passkey autofill and are
    // then left (or answered with a password).
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    for _ in 0..25 {
        assert_eq!(login_options(&app, None).await.status(), 200);
    }
    let (status, body) = login_attempt(&app, &mut authenticator, false).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["session_token"].is_string(), "{body}");
}

#[tokio::test]
async fn two_hundred_people_behind_one_address_all_sign_in() {
    const PEOPLE: usize = 200;
    let app = spawn_app().await;
    // Untimed set-up: each person with a passkey (registration is not
    // limited per address).
    let people: Vec<Authenticator> = futures_util::stream::iter(0..PEOPLE)
        .map(|_| async {
            let (_, auth) = app.signed_in_user().await;
            let mut authenticator = Authenticator::new();
            app.register_passkey(&auth, &mut authenticator).await;
            authenticator
        })
        .buffer_unordered(8)
        .collect()
        .await;
    // Within ten minutes of the service's clock, one after the other, each
    // loads the sign-in page (autofill starts a login), then signs in with
    // the passkey (a second login/options for the modal button, and verify).
    let pace = Duration::from_secs(600) / PEOPLE as u32;
    let mut refused = Vec::new();
    for (index, mut authenticator) in people.into_iter().enumerate() {
        assert_eq!(
            login_options(&app, None).await.status(),
            200,
            "person {index}"
        );
        let (status, body) = login_attempt(&app, &mut authenticator, false).await;
        if status != 200 {
            refused.push((index, status, body));
        }
        app.advance_clock(pace);
    }
    assert!(refused.is_empty(), "refused: {refused:?}");
    app.eventually_count(
        "SELECT count(*) AS count FROM minted_sessions WHERE state = 'resolved'",
        PEOPLE as i64,
    )
    .await;
}

#[tokio::test]
async fn a_flood_from_one_address_is_cut_off() {
    let app = spawn_app().await;
    let burst = u64::from(app.settings.limits.login_per_ip.burst);
    let (mut passed, mut refused) = (0u64, 0u64);
    let mut last_refusal = None;
    for _ in 0..burst * 3 {
        let response = login_options(&app, None).await;
        match response.status().as_u16() {
            200 => passed += 1,
            429 => {
                refused += 1;
                last_refusal = Some(response);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let refusal = last_refusal.expect("the flood was cut off");
    // The bucket, plus what refilled while the flood ran (2 a second).
    assert!(passed >= burst, "{passed} passed");
    assert!(refused >= burst / 2, "only {refused} refused");
    let wait = retry_after(&refusal);
    assert_eq!(wait, 1, "one token every half second");
    let (status, body) = status_and_json(refusal).await;
    assert_error(status, &body, 429, "rate_limited");
    app.advance_clock(Duration::from_secs(wait));
    assert_eq!(login_options(&app, None).await.status(), 200);
}

#[tokio::test]
async fn failed_logins_past_the_identity_limit_answer_429_and_a_valid_one_still_passes() {
    let app = spawn_app_with(|s| {
        s.limits.failed_logins_per_identity.burst = 2;
        s.limits.failed_logins_per_identity.per_minute = 1;
    })
    .await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    for _ in 0..2 {
        let (status, body) = login_attempt(&app, &mut authenticator, true).await;
        assert_error(status, &body, 400, "signature_invalid");
    }
    let (status, body) = login_attempt(&app, &mut authenticator, true).await;
    assert_error(status, &body, 429, "rate_limited");
    // A correct signature is never refused by failures, whoever sent them.
    let (status, body) = login_attempt(&app, &mut authenticator, false).await;
    assert_eq!(status, 200, "{body}");
}

/// A passkey login from start to finish (with a tampered signature if
/// asked); the answer of the step that stopped it.
async fn login_attempt(
    app: &TestApp,
    authenticator: &mut Authenticator,
    tamper: bool,
) -> (u16, Value) {
    let (status, options) = app
        .post_json("/passkeys/login/options", &Auth::None, &json!({}))
        .await;
    if status != 200 {
        return (status, options);
    }
    let mut credential = authenticator.login(&options);
    if tamper {
        credential["response"]["signature"] = Value::String("AAAA".into());
    }
    app.post_json(
        "/passkeys/login/verify",
        &Auth::None,
        &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"}),
    )
    .await
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let app =
        spawn_app_with(|s| s.cors.allowed_origins = vec!["https://app.example.test".into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                app.url("/passkeys/registration/options"),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.test")
        .await
        .expect("preflight");
    assert_eq!(allowed.status(), 204);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.test"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .contains("POST"));
    assert!(headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .contains("Content-Type"));

    let refused = preflight("https://evil.example.test")
        .await
        .expect("preflight");
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let (status, body) = status_and_json(refused).await;
    assert_error(status, &body, 403, "origin_not_allowed");

    // Simple requests: the header only for the configured origin.
    for (origin, expected) in [
        ("https://app.example.test", true),
        ("https://evil.example.test", false),
    ] {
        let response = app
            .http
            .get(app.url("/health/alive"))
            .header("Origin", origin)
            .send()
            .await
            .expect("request");
        assert_eq!(
            response
                .headers()
                .contains_key("access-control-allow-origin"),
            expected,
            "{origin}"
        );
        assert!(response.headers()["vary"]
            .to_str()
            .expect("ascii")
            .contains("Origin"));
    }
}

#[tokio::test]
async fn used_ceremony_marks_are_purged_after_expiry() {
    let app = spawn_app_with(|s| s.gc.interval = Duration::from_millis(200)).await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    assert_eq!(login_attempt(&app, &mut authenticator, false).await.0, 200);
    let marks = "SELECT count(*) AS count FROM consumed_ceremonies";
    assert_eq!(app.count(marks), 2, "the registration's and the login's");
    // The service's clock says nothing about when a mark may go: only the
    // database's clock, past the configured margin.
    app.advance_clock(app.settings.webauthn.ceremony_ttl + Duration::from_secs(7200));
    let state = app.state.clone().expect("in process");
    kratos_passkeys::gc::collect(&state).await.expect("gc");
    assert_eq!(
        app.count(marks),
        2,
        "kept: not expired by the database's clock"
    );
    app.count("WITH moved AS (UPDATE consumed_ceremonies SET expires_at = now() - interval '61 minutes' RETURNING 1) SELECT count(*) AS count FROM moved");
    app.eventually_count(marks, 0).await;
}

#[tokio::test]
async fn the_gc_command_purges_what_kratos_no_longer_has() {
    let app = spawn_app().await;
    let (gone, gone_auth) = app.signed_in_user().await;
    app.register_passkey(&gone_auth, &mut Authenticator::new())
        .await;
    let (_, kept_auth) = app.signed_in_user().await;
    let mut kept = Authenticator::new();
    app.register_passkey(&kept_auth, &mut kept).await;
    assert_eq!(login_attempt(&app, &mut kept, false).await.0, 200);
    app.eventually_count(
        "SELECT count(*) AS count FROM minted_sessions WHERE state = 'resolved'",
        1,
    )
    .await;
    // A used ceremony that has expired, and a login record whose process
    // stopped before it learnt the session id.
    app.count("WITH moved AS (UPDATE consumed_ceremonies SET expires_at = now() - interval '2 hours' WHERE challenge = (SELECT challenge FROM consumed_ceremonies LIMIT 1) RETURNING 1) SELECT count(*) AS count FROM moved");
    app.count("WITH moved AS (UPDATE minted_sessions SET state = 'pending', kratos_session_id = NULL, created_at = now() - interval '6 minutes' RETURNING 1) SELECT count(*) AS count FROM moved");
    app.kratos.delete_identity(gone.id).await;

    let output = crate::helpers::binary::command(&app.database_url)
        .arg("gc")
        .output()
        .expect("run gc");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    for expected in [
        "identities_purged: 1",
        "expired_ceremonies: 1",
        "unresolved_logins: 1",
    ] {
        assert!(log.contains(expected), "{expected}: {log}");
    }
    assert_eq!(
        app.passkeys_stored(),
        1,
        "only the living identity's passkey is left"
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM consumed_ceremonies"),
        2,
        "the live marks stay"
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM minted_sessions WHERE state = 'unresolved' AND kratos_session_id IS NULL"),
        1,
        "the record says its session id is unknown"
    );
    assert_eq!(
        app.passkey_list(&kept_auth).await.as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn metrics_count_ceremonies_kratos_calls_and_the_pool() {
    // aal1: the login record is completed after the answer, and counted.
    let app = spawn_app_with(|s| s.kratos.whoami_required_aal = RequiredAal::Aal1).await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    let (_, options) = app
        .post_json("/passkeys/login/options", &Auth::None, &json!({}))
        .await;
    let credential = authenticator.login(&options);
    let (status, _) = app
        .post_json(
            "/passkeys/login/verify",
            &Auth::None,
            &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post_json(
            "/passkeys/login/verify",
            &Auth::None,
            &json!({"ceremony_id": options["ceremony_id"], "credential": credential}),
        )
        .await;
    assert_eq!(status, 404);
    app.eventually_count(
        "SELECT count(*) AS count FROM minted_sessions WHERE state = 'resolved'",
        1,
    )
    .await;

    let response = app
        .http
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = response.text().await.expect("text");
    for line in [
        r#"kratos_passkeys_ceremonies_total{error_id="",kind="registration",outcome="started"} 1"#,
        r#"kratos_passkeys_ceremonies_total{error_id="",kind="registration",outcome="finished"} 1"#,
        r#"kratos_passkeys_ceremonies_total{error_id="",kind="login",outcome="finished"} 1"#,
        r#"kratos_passkeys_ceremonies_total{error_id="ceremony_not_found",kind="login",outcome="failed"} 1"#,
        r#"kratos_passkeys_sessions_minted_total{delivery="token"} 1"#,
        r#"kratos_passkeys_kratos_request_duration_seconds_count{operation="create_recovery_code"} 1"#,
        r#"kratos_passkeys_kratos_request_duration_seconds_count{operation="redeem_recovery_code"} 1"#,
        r#"kratos_passkeys_webauthn_duration_seconds_count{operation="finish_login"} 2"#,
        r#"kratos_passkeys_login_records_total{outcome="resolved"} 1"#,
        r#"kratos_passkeys_store_duration_seconds_count{operation="passkey_by_credential_id"} 2"#,
        // The replay verifies (its counter is not ahead: it is only marked,
        // found used, and refused; nothing is flagged).
        r#"kratos_passkeys_store_duration_seconds_count{operation="begin_login"} 1"#,
        r#"kratos_passkeys_store_duration_seconds_count{operation="complete_login"} 1"#,
        r#"kratos_passkeys_store_duration_seconds_count{operation="consume_ceremony"} 2"#,
        "kratos_passkeys_db_pool_max_connections 8",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(text.contains(r#"kratos_passkeys_db_pool_connections{state="idle"}"#));
    // Not on the public listener.
    assert_eq!(
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("request")
            .status(),
        404
    );
}
