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

/// The test client connects from loopback: it plays the trusted proxy.
fn behind_loopback_proxy(s: &mut kratos_passkeys::configuration::Settings) {
    s.http.trusted_proxies = vec!["127.0.0.0/8".into(), "::1/128".into()];
}

/// `login/options` with the forwarded headers given, one line each.
async fn options_through(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/passkeys/login/options"))
        .json(&json!({}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

/// A passkey login (token mode) whose two requests carry `headers`.
async fn login_through(
    app: &TestApp,
    authenticator: &mut Authenticator,
    headers: &[(&str, &str)],
) -> Value {
    let (status, options) = status_and_json(options_through(app, headers).await).await;
    assert_eq!(status, 200, "{options}");
    let credential = authenticator.login(&options);
    let mut request = app.http.post(app.url("/passkeys/login/verify")).json(
        &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"}),
    );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (status, body) = status_and_json(request.send().await.expect("verify")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The minted session's device address, as Kratos stored it, and the login
/// record's, once the record is complete.
async fn addresses_of_login(app: &TestApp, body: &Value) -> (Value, String) {
    let token = body["session_token"].as_str().expect("session token");
    let session = app.kratos.session_of_token(token).await;
    let session_id = session["id"].as_str().expect("session id");
    app.eventually_count(
        &format!(
            "SELECT count(*) AS count FROM minted_sessions WHERE kratos_session_id = '{session_id}' AND state = 'resolved'"
        ),
        1,
    )
    .await;
    use diesel::RunQueryDsl;
    let recorded = diesel::sql_query(format!(
        "SELECT client_ip FROM minted_sessions WHERE kratos_session_id = '{session_id}'"
    ))
    .get_result::<ClientIp>(&mut app.db())
    .expect("login record")
    .client_ip
    .expect("a client address");
    (session["devices"][0]["ip_address"].clone(), recorded)
}

#[derive(diesel::QueryableByName)]
struct ClientIp {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    client_ip: Option<String>,
}

#[tokio::test]
async fn a_forged_first_forwarded_line_is_not_the_client() {
    let app = spawn_app_with(|s| {
        behind_loopback_proxy(s);
        s.limits.login_per_ip.burst = 3;
        s.limits.login_per_ip.per_minute = 0;
    })
    .await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    // The client sent a line of its own; the proxy appended another (two
    // header instances, as HAProxy's `option forwardfor` does).
    let through_proxy = |forged: &'static str, real: &'static str| {
        [("X-Forwarded-For", forged), ("X-Forwarded-For", real)]
    };
    let body = login_through(
        &app,
        &mut authenticator,
        &through_proxy("198.51.100.1", "203.0.113.9"),
    )
    .await;
    let (device, recorded) = addresses_of_login(&app, &body).await;
    assert_eq!(device, "203.0.113.9", "Kratos's session device");
    assert_eq!(recorded, "203.0.113.9", "the login record");

    // The login took two of 203.0.113.9's three requests; forging other
    // first lines does not buy more.
    assert_eq!(
        options_through(&app, &through_proxy("198.51.100.2", "203.0.113.9"))
            .await
            .status(),
        200
    );
    for forged in ["198.51.100.3", "198.51.100.4, 192.0.2.1", "2001:db8::5"] {
        let refused = options_through(&app, &through_proxy(forged, "203.0.113.9")).await;
        assert_eq!(refused.status(), 429, "forged {forged}");
    }
    // Another client behind the same proxy has its own budget.
    assert_eq!(
        options_through(&app, &through_proxy("203.0.113.9", "203.0.113.10"))
            .await
            .status(),
        200
    );
    assert!(
        ready_warnings(&app).await.is_null(),
        "configured proxies are no warning"
    );
}

#[tokio::test]
async fn forwarded_for_names_the_client() {
    let app = spawn_app_with(|s| {
        behind_loopback_proxy(s);
        s.http.client_ip_header = "Forwarded".into();
        s.limits.login_per_ip.burst = 3;
        s.limits.login_per_ip.per_minute = 0;
    })
    .await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    let forwarded = |forged: &'static str, real: &'static str| {
        [
            ("Forwarded", forged),
            ("Forwarded", real),
            // Not the header the proxies write: ignored.
            ("X-Forwarded-For", "192.0.2.200"),
        ]
    };
    let body = login_through(
        &app,
        &mut authenticator,
        &forwarded(
            "for=198.51.100.1",
            r#"for="[2001:db8:cafe::17]:4711";proto=https"#,
        ),
    )
    .await;
    let (device, recorded) = addresses_of_login(&app, &body).await;
    assert_eq!(device, "2001:db8:cafe::17", "the full address, not its /64");
    assert_eq!(recorded, "2001:db8:cafe::17");
    // Its /64 has one request left, whatever the address in it.
    assert_eq!(
        options_through(
            &app,
            &forwarded("for=unknown", r#"for="[2001:db8:cafe::99]""#)
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        options_through(
            &app,
            &forwarded("for=198.51.100.2", r#"for="[2001:db8:cafe:0:1:2:3:4]:80""#)
        )
        .await
        .status(),
        429
    );
    // Another /64 is another client.
    assert_eq!(
        options_through(
            &app,
            &forwarded("for=198.51.100.2", r#"for="[2001:db8:cafe:1::17]""#)
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn the_addresses_of_one_ipv6_network_share_a_limit() {
    let app = spawn_app_with(|s| {
        behind_loopback_proxy(s);
        s.limits.login_per_ip.burst = 100;
        s.limits.login_per_ip.per_minute = 0;
    })
    .await;
    let (mut passed, mut refused) = (0, 0);
    for i in 0..200u32 {
        let address = format!(
            "2001:db8:1:2:{:x}:{:x}::{:x}",
            (i * 7919) & 0xffff,
            i ^ 0x5a5a,
            i + 1
        );
        match options_through(&app, &[("X-Forwarded-For", &address)])
            .await
            .status()
            .as_u16()
        {
            200 => passed += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((passed, refused), (100, 100), "200 addresses, one bucket");
    assert_eq!(
        options_through(&app, &[("X-Forwarded-For", "2001:db8:1:3::1")])
            .await
            .status(),
        200,
        "the next /64 has its own"
    );
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_headers_are_ignored() {
    for trusted in [vec![], vec!["10.0.0.0/8".to_string()]] {
        let app = spawn_app_with(|s| {
            s.http.trusted_proxies = trusted.clone();
            s.limits.login_per_ip.burst = 1;
        })
        .await;
        assert_eq!(
            options_through(&app, &[("X-Forwarded-For", "198.51.100.1")])
                .await
                .status(),
            200
        );
        for header in [
            ("X-Forwarded-For", "198.51.100.77"),
            ("Forwarded", "for=198.51.100.78"),
        ] {
            assert_eq!(
                options_through(&app, &[header]).await.status(),
                429,
                "{trusted:?}: {header:?} named the peer's bucket"
            );
        }
    }
}

#[tokio::test]
async fn a_header_setting_without_trusted_proxies_refuses_to_start() {
    let mut settings = crate::helpers::test_settings("postgres://unused@127.0.0.1:1/unused");
    settings.http.client_ip_header = "X-Forwarded-For".into();
    let error = match kratos_passkeys::startup::Application::build(settings).await {
        Ok(_) => panic!("started while trusting a header from anyone"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("http.trusted_proxies"), "{error}");
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
        warnings["trusted_proxies"]
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
