//! Beside a Kratos configured for production (`kratos/production/kratos.yml`):
//! second factors with `highest_available`, recovery hooks that must not
//! fire on passkey logins, and the team's own session policy.

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::existing_kratos::{
    active_sessions, finish_aal2_with_totp, lock, recover_by_email, recover_with_support_code,
    set_cookie, set_up_totp, spawn_app_beside, Receiver, COOKIE, COURIER_PORT, LIFESPAN,
};
use crate::helpers::{assert_error, status_and_json, Auth, Authenticator, TestApp, TestUser};

/// A person with a password and a passkey registered through the service.
async fn person_with_passkey(app: &TestApp) -> (TestUser, String, Authenticator) {
    let user = app.kratos.create_user().await;
    let token = app.kratos.login_token(&user).await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&Auth::Token(token.clone()), &mut authenticator)
        .await;
    (user, token, authenticator)
}

/// A cookie-mode login asking for the session object: Kratos's whole
/// `Set-Cookie` for its session, and the answer.
async fn cookie_login(app: &TestApp, authenticator: &mut Authenticator) -> (String, Value) {
    let response = app
        .passkey_login(
            authenticator,
            json!({"session": "cookie", "include_session": true}),
        )
        .await;
    let cookie = set_cookie(&response).expect("Kratos's session cookie");
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    (cookie, body)
}

fn resolved_records_of(session: &str) -> String {
    format!("SELECT count(*) AS count FROM minted_sessions WHERE state = 'resolved' AND kratos_session_id = '{session}'")
}

#[tokio::test]
async fn a_person_with_totp_gets_the_session_and_finishes_in_kratos() {
    let _ports = lock().await;
    let app = spawn_app_beside(|_| {}).await;
    let (user, setup_token, mut authenticator) = person_with_passkey(&app).await;
    let secret = set_up_totp(&app.kratos, &setup_token).await;
    app.kratos.revoke_token(&setup_token).await;
    assert!(active_sessions(&app.kratos, user.id).await.is_empty());

    let response = app
        .passkey_login(&mut authenticator, json!({"session": "token"}))
        .await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().expect("token").to_string();
    let redirect = body["second_factor"]["redirect_browser_to"]
        .as_str()
        .expect("redirect");
    assert!(
        redirect.starts_with("http://localhost:4833/self-service/login/browser?aal=aal2"),
        "{redirect}"
    );
    assert!(redirect.contains("return_to="), "{redirect}");
    let api_login_url = body["second_factor"]["api_login_url"]
        .as_str()
        .expect("api login url");
    assert_eq!(
        api_login_url,
        "http://localhost:4833/self-service/login/api?aal=aal2"
    );

    // Until the second factor, Kratos and every endpoint of the service say
    // where to finish, with the same URL.
    assert_eq!(app.kratos.whoami_token(&token).await.0, 403);
    let (status, refused) = app.get_json("/passkeys", &Auth::Token(token.clone())).await;
    assert_error(status, &refused, 403, "session_aal2_required");
    assert_eq!(refused["redirect_browser_to"], redirect);
    let (status, refused) = app
        .post_json(
            "/passkeys/registration/options",
            &Auth::Token(token.clone()),
            &json!({}),
        )
        .await;
    assert_error(status, &refused, 403, "session_aal2_required");
    assert_eq!(refused["redirect_browser_to"], redirect);

    // Kratos's own aal2 login, with a code from the secret (through the
    // public URL this test reaches).
    let api_login_url = api_login_url.replace("http://localhost:4833/", app.kratos.public.as_str());
    let upgraded = finish_aal2_with_totp(&api_login_url, &token, &secret).await;
    assert_eq!(upgraded["authenticator_assurance_level"], "aal2");
    let session = app.kratos.session_of_token(&token).await;
    assert_eq!(session["authenticator_assurance_level"], "aal2");
    let session_id = session["id"].as_str().expect("id");

    // Exactly one session exists, and it is the one the person holds.
    assert_eq!(
        active_sessions(&app.kratos, user.id).await,
        vec![Uuid::parse_str(session_id).expect("uuid")]
    );
    // The login record names it (learnt from Kratos's session list, as
    // whoami could not name it before the second factor).
    app.eventually_count(&resolved_records_of(session_id), 1)
        .await;
    let (status, list) = app.get_json("/passkeys", &Auth::Token(token)).await;
    assert_eq!(status, 200, "{list}");
}

#[tokio::test]
async fn a_browser_gets_kratos_cookie_and_the_aal2_redirect() {
    let _ports = lock().await;
    let app = spawn_app_beside(|_| {}).await;
    let (user, setup_token, mut authenticator) = person_with_passkey(&app).await;
    set_up_totp(&app.kratos, &setup_token).await;
    app.kratos.revoke_token(&setup_token).await;

    let (cookie, body) = cookie_login(&app, &mut authenticator).await;
    assert!(body["second_factor"]["redirect_browser_to"]
        .as_str()
        .expect("redirect")
        .contains("aal=aal2"));
    // No session object to describe yet, no token in cookie mode.
    assert!(body.get("session").is_none(), "{body}");
    assert!(body.get("session_token").is_none(), "{body}");
    let value = cookie
        .strip_prefix(&format!("{COOKIE}="))
        .and_then(|c| c.split(';').next())
        .expect("value");
    let response = app
        .http
        .get(app.url("/passkeys"))
        .header("Cookie", format!("{COOKIE}={value}"))
        .send()
        .await
        .expect("list");
    let (status, refused) = status_and_json(response).await;
    assert_error(status, &refused, 403, "session_aal2_required");
    assert_eq!(
        refused["redirect_browser_to"],
        body["second_factor"]["redirect_browser_to"]
    );
    assert_eq!(active_sessions(&app.kratos, user.id).await.len(), 1);
}

#[tokio::test]
async fn the_minted_session_follows_the_teams_session_policy() {
    let _ports = lock().await;
    let app = spawn_app_beside(|_| {}).await;
    let (_, _, mut authenticator) = person_with_passkey(&app).await;
    let (cookie, body) = cookie_login(&app, &mut authenticator).await;
    assert!(body.get("second_factor").is_none(), "{body}");
    // Kratos's lifespan (720h), not the project's own configuration's.
    let at = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(body["session"][k].as_str().expect(k)).expect("time")
    };
    assert_eq!(
        at("expires_at") - at("authenticated_at"),
        LIFESPAN,
        "{body}"
    );
    // Kratos's cookie, relayed as Kratos set it: persistent for the lifespan.
    let max_age: i64 = cookie
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .expect("seconds");
    assert!(
        (LIFESPAN.num_seconds() - 60..=LIFESPAN.num_seconds()).contains(&max_age),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn the_notifier_hears_of_real_recoveries_only() {
    let _ports = lock().await;
    let courier = Receiver::start(COURIER_PORT);
    let notifier = Receiver::start(0);
    let notifier_url = notifier.url.clone();
    let app = spawn_app_beside(move |s| {
        s.recovery_hook.notifier_url = Some(notifier_url);
        s.recovery_hook.notifier_auth_header = "Authorization".into();
        s.recovery_hook.notifier_auth_value = "Bearer notifier-key".to_string().into();
    })
    .await;
    let (user, _, mut authenticator) = person_with_passkey(&app).await;
    let about = |b: &Value| b["identity_id"] == user.id.to_string();

    let response = app
        .passkey_login(&mut authenticator, json!({"session": "token"}))
        .await;
    assert_eq!(response.status(), 200);
    // Kratos called the hook, which recognised the passkey login.
    assert_eq!(hook_count(&app, "passkey_login").await, 1);

    let (own_flow, _) = recover_by_email(&app.kratos, &courier, &user).await;
    let (support_flow, _) = recover_with_support_code(&app.kratos, &user).await;
    let notified = notifier.wait_for(2, about).await;
    let flows: Vec<&str> = notified
        .iter()
        .map(|b| b["recovery_flow_id"].as_str().expect("flow"))
        .collect();
    assert!(
        flows.contains(&own_flow.to_string().as_str()),
        "{notified:?}"
    );
    assert!(
        flows.contains(&support_flow.to_string().as_str()),
        "{notified:?}"
    );
    assert_eq!(notified[0]["event"], "account_recovered");
    assert_eq!(notified[0]["email"], user.email.as_str());
    // The passkey login was never forwarded: two recoveries, two notices.
    assert_eq!(hook_count(&app, "recovery").await, 2);
    assert_eq!(
        notifier.bodies().into_iter().filter(|b| about(b)).count(),
        2
    );
    assert!(notifier
        .authorizations()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer notifier-key")));
    assert_eq!(hook_count(&app, "passkey_login").await, 1);
}

#[tokio::test]
async fn a_real_recovery_signs_out_everywhere_a_passkey_login_does_not() {
    let _ports = lock().await;
    let courier = Receiver::start(COURIER_PORT);
    let app = spawn_app_beside(|s| s.recovery_hook.revoke_other_sessions = true).await;
    let (user, first, mut authenticator) = person_with_passkey(&app).await;
    let second = app.kratos.login_token(&user).await;

    let response = app
        .passkey_login(&mut authenticator, json!({"session": "token"}))
        .await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let passkey_token = body["session_token"].as_str().expect("token").to_string();
    // Every session still active after a passkey login.
    assert_eq!(active_sessions(&app.kratos, user.id).await.len(), 3);
    for token in [&first, &second, &passkey_token] {
        assert_eq!(app.kratos.whoami_token(token).await.0, 200);
    }

    let (_, recovered) = recover_by_email(&app.kratos, &courier, &user).await;
    let active = active_sessions(&app.kratos, user.id).await;
    assert_eq!(active.len(), 1, "{active:?}");
    let session = app.kratos.session_of_token(&recovered).await;
    assert_eq!(session["id"], active[0].to_string());
    for token in [&first, &second, &passkey_token] {
        assert_eq!(app.kratos.whoami_token(token).await.0, 401);
    }
    assert_eq!(hook_count(&app, "sessions_revoked").await, 3);
}

#[tokio::test]
async fn the_hook_wants_its_key_and_a_mark_of_that_very_flow() {
    let _ports = lock().await;
    let notifier = Receiver::start(0);
    let notifier_url = notifier.url.clone();
    let app = spawn_app_beside(move |s| s.recovery_hook.notifier_url = Some(notifier_url)).await;
    let hook = app.admin_url("/hooks/kratos/after-recovery");
    let identity = Uuid::new_v4();
    let body = |flow: Uuid, mark: Value| json!({"flow_id": flow, "identity_id": identity, "passkey_login": mark, "notify": {"identity_id": identity, "flow": flow}});

    let response = app
        .http
        .post(&hook)
        .json(&body(Uuid::new_v4(), Value::Null))
        .send()
        .await
        .expect("hook");
    let (status, refused) = status_and_json(response).await;
    assert_error(status, &refused, 401, "webhook_unauthorized");

    // With the key: the hook's answer to one flow and mark.
    let call = |flow: Uuid, mark: Value| {
        app.http
            .post(&hook)
            .header(
                "X-Webhook-Key",
                app.settings.webhook.api_key.expose_secret(),
            )
            .json(&body(flow, mark))
            .send()
    };
    // A mark copied from another flow, or made up, is a real recovery.
    let state = app.state.as_ref().expect("in-process");
    let other = state.marker.mark(Uuid::new_v4());
    for mark in [json!(other), json!("v1.forged")] {
        let flow = Uuid::new_v4();
        let response = call(flow, mark).await.expect("hook");
        assert_eq!(response.status(), 204);
        notifier
            .wait_for(1, |b| b["flow"] == flow.to_string())
            .await;
    }
    // Its own mark: nothing forwarded.
    let flow = Uuid::new_v4();
    let response = call(flow, json!(state.marker.mark(flow)))
        .await
        .expect("hook");
    assert_eq!(response.status(), 204);
    assert_eq!(hook_count(&app, "passkey_login").await, 1);
    assert_eq!(hook_count(&app, "recovery").await, 2);
}

/// `recovery_hook_total{outcome}` from the service's metrics.
async fn hook_count(app: &TestApp, outcome: &str) -> u64 {
    let text = app.metrics().await;
    let prefix = format!("kratos_passkeys_recovery_hook_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("count"))
        .unwrap_or(0)
}
