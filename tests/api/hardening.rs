//! Abuse limits, CORS, garbage collection and metrics.

use std::time::Duration;

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
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let (status, body) = status_and_json(refused).await;
    assert_error(status, &body, 429, "rate_limited");
    // verify shares the budget.
    let (status, body) = app
        .post_json(
            "/passkeys/login/verify",
            &Auth::None,
            &json!({"ceremony_id": uuid::Uuid::new_v4(), "credential": {
            "id": "AA", "rawId": "AA", "type": "public-key",
            "response": {"authenticatorData": "AA", "clientDataJSON": "AA", "signature": "AA"}}}),
        )
        .await;
    assert_error(status, &body, 429, "rate_limited");
    assert_eq!(app.count("SELECT count(*) AS count FROM ceremonies"), 3);
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
    // Another client behind the same proxy has its own budget.
    assert_eq!(
        login_options(&app, Some("203.0.113.9, 198.51.100.2"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM ceremonies WHERE client_key = 'ip:198.51.100.2'"),
        1
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

#[tokio::test]
async fn open_ceremonies_per_client_are_bounded() {
    let app = spawn_app_with(|s| s.limits.open_ceremonies_per_client = 4).await;
    for _ in 0..4 {
        assert_eq!(login_options(&app, None).await.status(), 200);
    }
    let (status, body) = status_and_json(login_options(&app, None).await).await;
    assert_error(status, &body, 429, "rate_limited");
    assert_eq!(
        app.count("SELECT count(*) AS count FROM ceremonies"),
        4,
        "the table did not grow"
    );

    // Expired ones do not count.
    app.count("WITH moved AS (UPDATE ceremonies SET expires_at = now() - interval '1 second' RETURNING 1) SELECT count(*) AS count FROM moved");
    assert_eq!(login_options(&app, None).await.status(), 200);

    // Registrations are bounded per identity the same way.
    let (_, auth) = app.signed_in_user().await;
    for _ in 0..4 {
        assert_eq!(
            app.post_json("/passkeys/registration/options", &auth, &json!({}))
                .await
                .0,
            200
        );
    }
    let (status, body) = app
        .post_json("/passkeys/registration/options", &auth, &json!({}))
        .await;
    assert_error(status, &body, 429, "rate_limited");
}

#[tokio::test]
async fn failed_logins_are_limited_per_identity() {
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
    // Even a correct signature waits now.
    let (status, body) = login_attempt(&app, &mut authenticator, false).await;
    assert_error(status, &body, 429, "rate_limited");
}

async fn login_attempt(
    app: &TestApp,
    authenticator: &mut Authenticator,
    tamper: bool,
) -> (u16, Value) {
    let (_, options) = app
        .post_json("/passkeys/login/options", &Auth::None, &json!({}))
        .await;
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
async fn expired_ceremonies_are_purged_in_the_background() {
    let app = spawn_app_with(|s| s.gc.interval = Duration::from_millis(200)).await;
    assert_eq!(login_options(&app, None).await.status(), 200);
    assert_eq!(login_options(&app, None).await.status(), 200);
    app.count("WITH moved AS (UPDATE ceremonies SET expires_at = now() - interval '1 second' WHERE id = (SELECT id FROM ceremonies LIMIT 1) RETURNING 1) SELECT count(*) AS count FROM moved");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.count("SELECT count(*) AS count FROM ceremonies") != 1
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.count("SELECT count(*) AS count FROM ceremonies"),
        1,
        "only the live one is left"
    );
}

#[tokio::test]
async fn the_gc_command_purges_what_kratos_no_longer_has() {
    let app = spawn_app().await;
    let (gone, gone_auth) = app.signed_in_user().await;
    app.register_passkey(&gone_auth, &mut Authenticator::new())
        .await;
    let (_, kept_auth) = app.signed_in_user().await;
    app.register_passkey(&kept_auth, &mut Authenticator::new())
        .await;
    assert_eq!(login_options(&app, None).await.status(), 200);
    app.count("WITH moved AS (UPDATE ceremonies SET expires_at = now() - interval '1 second' RETURNING 1) SELECT count(*) AS count FROM moved");
    app.kratos.delete_identity(gone.id).await;

    let output = crate::helpers::binary::command(&app.database_url)
        .arg("gc")
        .output()
        .expect("run gc");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("identities_purged: 1") && log.contains("expired_ceremonies: 1"),
        "{log}"
    );
    assert_eq!(
        app.passkeys_stored(),
        1,
        "only the living identity's passkey is left"
    );
    assert_eq!(app.count("SELECT count(*) AS count FROM ceremonies"), 0);
    assert_eq!(
        app.get_json("/passkeys", &kept_auth)
            .await
            .1
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn metrics_count_ceremonies_kratos_calls_and_the_pool() {
    let app = spawn_app().await;
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
        r#"kratos_passkeys_webauthn_duration_seconds_count{operation="finish_login"} 1"#,
        r#"kratos_passkeys_store_duration_seconds_count{operation="record_login"} 1"#,
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
