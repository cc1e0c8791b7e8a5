//! The login's limits as an attacker meets them: nobody can keep a person
//! with a valid passkey out, and abusive load is still shed.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, spawn_app_with, status_and_json, Auth, Authenticator, TestApp, TestUser,
    TEST_USER_AGENT,
};

/// A client whose requests come from `ip` (any address of 127.0.0.0/8 is
/// this machine's): another person as the service sees them.
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn post(app: &TestApp, client: &reqwest::Client, path: &str, body: &Value) -> (u16, Value) {
    let response = client
        .post(app.url(path))
        .header("User-Agent", TEST_USER_AGENT)
        .json(body)
        .send()
        .await
        .expect("request");
    status_and_json(response).await
}

/// A person with a passkey, and the authenticator that holds it.
async fn victim(app: &TestApp) -> (TestUser, Authenticator, Value) {
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let passkey = app.register_passkey(&auth, &mut authenticator).await;
    (user, authenticator, passkey)
}

/// What an attacker who knows only the victim's email sends: an identifier
/// login whose assertion names one of the victim's credential ids, carries
/// no user handle, and is signed by the attacker's own key.
async fn forged_verify(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    attacker: &mut Authenticator,
) -> (u16, Value) {
    let (status, options) = post(
        app,
        client,
        "/passkeys/login/options",
        &json!({"identifier": email}),
    )
    .await;
    if status != 200 {
        return (status, options);
    }
    let allowed = options["publicKey"]["allowCredentials"]
        .as_array()
        .expect("allowCredentials")
        .clone();
    let victim_credential = allowed.first().expect("the victim's credential ids")["id"].clone();
    let mut unrestricted = options.clone();
    unrestricted["publicKey"]["allowCredentials"] = json!([]);
    let mut credential = attacker.login(&unrestricted);
    credential["id"] = victim_credential.clone();
    credential["rawId"] = victim_credential;
    credential["response"]
        .as_object_mut()
        .expect("response")
        .remove("userHandle");
    post(
        app,
        client,
        "/passkeys/login/verify",
        &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"}),
    )
    .await
}

/// The victim's own passkey login from `client`.
async fn genuine_login(
    app: &TestApp,
    client: &reqwest::Client,
    authenticator: &mut Authenticator,
) -> (u16, Value) {
    let (status, options) = post(app, client, "/passkeys/login/options", &json!({})).await;
    assert_eq!(status, 200, "{options}");
    let credential = authenticator.login(&options);
    post(
        app,
        client,
        "/passkeys/login/verify",
        &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"}),
    )
    .await
}

/// An attacker with their own passkey (of another identity).
async fn attacker(app: &TestApp) -> Authenticator {
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    authenticator
}

fn retry_after(body_status: u16, headers_wait: Option<u64>) -> Duration {
    assert_eq!(body_status, 429);
    Duration::from_secs(headers_wait.expect("Retry-After"))
}

#[tokio::test]
async fn fifty_forged_verifies_cannot_keep_the_owner_out() {
    let app = spawn_app_with(|_| {}).await;
    let (user, mut owner, _) = victim(&app).await;
    let mut forger = attacker(&app).await;
    let attacker_client = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let (mut refused_as_forged, mut shed) = (0, 0);
    for _ in 0..50 {
        let (status, body) = forged_verify(&app, &attacker_client, &user.email, &mut forger).await;
        match status {
            400 => {
                assert_error(status, &body, 400, "signature_invalid");
                refused_as_forged += 1;
            }
            429 => {
                assert_error(status, &body, 429, "rate_limited");
                shed += 1;
            }
            other => panic!("a forged assertion answered {other}: {body}"),
        }
    }
    assert!(
        refused_as_forged > 0 && shed > 0,
        "{refused_as_forged} refused, {shed} shed"
    );
    let sessions_before = app.kratos.sessions(user.id).await.len();

    // The owner, from another address: in at once.
    let owner_client = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let (status, body) = genuine_login(&app, &owner_client, &mut owner).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity_id"], user.id.to_string());
    assert_eq!(
        app.kratos.sessions(user.id).await.len(),
        sessions_before + 1
    );

    // From the attacker's own address (a shared NAT): refused only until
    // the address's Retry-After has passed on the service's clock.
    let response = attacker_client
        .post(app.url("/passkeys/login/options"))
        .json(&json!({}))
        .send()
        .await
        .expect("options");
    assert_eq!(response.status(), 200);
    let options: Value = response.json().await.expect("json");
    let credential = owner.login(&options);
    let response = attacker_client
        .post(app.url("/passkeys/login/verify"))
        .json(&json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"}))
        .send()
        .await
        .expect("verify");
    let wait = response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let wait = retry_after(response.status().as_u16(), wait);
    app.advance_clock(wait);
    let (status, body) = genuine_login(&app, &attacker_client, &mut owner).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.kratos.sessions(user.id).await.len(),
        sessions_before + 2
    );
}

#[tokio::test]
async fn the_owner_passes_however_many_failures_their_identity_has() {
    // Many addresses, each under its own failure limit, together far past
    // the identity's: the owner's correct signature still passes.
    let app = spawn_app_with(|_| {}).await;
    let (user, mut owner, _) = victim(&app).await;
    let mut forger = attacker(&app).await;
    let mut identity_limited = 0;
    for last in 10..22u8 {
        let client = client_from(Ipv4Addr::new(127, 0, 1, last));
        for _ in 0..3 {
            let (status, body) = forged_verify(&app, &client, &user.email, &mut forger).await;
            if status == 429 {
                identity_limited += 1;
            } else {
                assert_error(status, &body, 400, "signature_invalid");
            }
        }
    }
    assert!(
        identity_limited > 0,
        "36 failures pass the identity's limit of 10"
    );
    let (status, body) =
        genuine_login(&app, &client_from(Ipv4Addr::new(127, 0, 0, 3)), &mut owner).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_flood_of_forged_verifies_is_shed_at_the_documented_rate() {
    // The address's limit alone (the identity's is measured above).
    let app = spawn_app_with(|s| s.limits.failed_logins_per_identity.burst = 1_000).await;
    let failures = app.settings.limits.failed_logins_per_ip.clone();
    let (user, _, _) = victim(&app).await;
    let mut forger = attacker(&app).await;
    let client = client_from(Ipv4Addr::new(127, 0, 2, 1));
    // Until the first refusal: the burst.
    let passed = failures_until_shed(&app, &client, &user.email, &mut forger, failures.burst).await;
    assert!(
        (failures.burst..=failures.burst + 1).contains(&passed),
        "{passed} failures passed, burst {}",
        failures.burst
    );
    // A minute later on the service's clock: per_minute more.
    app.advance_clock(Duration::from_secs(60));
    let passed =
        failures_until_shed(&app, &client, &user.email, &mut forger, failures.per_minute).await;
    assert!(
        (failures.per_minute..=failures.per_minute + 1).contains(&passed),
        "{passed} failures passed in a minute, {} a minute documented",
        failures.per_minute
    );
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"kratos_passkeys_rate_limited_total{limit="failed_logins_per_ip"}"#
        ),
        2,
        "two refusals: one after each run of failures"
    );
}

/// Forged verifies from `client` until the first 429; how many were
/// answered as failures before it (never far past `expected`).
async fn failures_until_shed(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    forger: &mut Authenticator,
    expected: u32,
) -> u32 {
    let mut passed = 0;
    loop {
        let (status, body) = forged_verify(app, client, email, forger).await;
        if status == 429 {
            assert_error(status, &body, 429, "rate_limited");
            return passed;
        }
        passed += 1;
        assert!(passed <= expected + 1, "never shed: {body}");
    }
}

/// A sample's value in Prometheus text (0 when absent).
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn kratos_searches(metrics: &str) -> u64 {
    sample(
        metrics,
        r#"kratos_passkeys_kratos_request_duration_seconds_count{operation="find_identity"}"#,
    )
}

#[tokio::test]
async fn identifier_logins_cost_kratos_a_bounded_number_of_searches() {
    let app = spawn_app_with(|s| {
        s.limits.login_per_ip.burst = 10_000;
        s.limits.identifier_lookups.burst = 5;
        s.limits.identifier_lookups.per_minute = 10;
    })
    .await;
    let (user, mut owner, passkey) = victim(&app).await;
    // One identifier asked again and again: one search.
    for _ in 0..10 {
        let (status, options) = app
            .post_json(
                "/passkeys/login/options",
                &Auth::None,
                &json!({"identifier": user.email}),
            )
            .await;
        assert_eq!(status, 200, "{options}");
        assert_eq!(
            options["publicKey"]["allowCredentials"][0]["id"], passkey["credential_id"],
            "{options}"
        );
    }
    assert_eq!(kratos_searches(&app.metrics().await), 1);
    // 40 other identifiers at once: the budget (4 left of the burst), then
    // answers that cost Kratos nothing and still let anyone with a
    // discoverable passkey in.
    for i in 0..40 {
        let (status, options) = app
            .post_json(
                "/passkeys/login/options",
                &Auth::None,
                &json!({"identifier": format!("nobody-{i}@example.test")}),
            )
            .await;
        assert_eq!(status, 200, "{options}");
    }
    let searches = kratos_searches(&app.metrics().await);
    assert!((5..=6).contains(&searches), "{searches} searches");
    assert!(
        sample(
            &app.metrics().await,
            r#"kratos_passkeys_rate_limited_total{limit="identifier_lookups"}"#
        ) >= 34,
        "every identifier past the budget is counted"
    );
    // Past the budget an identifier login is a discoverable one.
    let (status, options) = app
        .post_json(
            "/passkeys/login/options",
            &Auth::None,
            &json!({"identifier": "someone-else@example.test"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    let credential = owner.login(&options);
    let (status, body) = status_and_json(
        app.verify_login(&options, &credential, json!({"session": "token"}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
