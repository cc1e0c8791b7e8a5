//! Support endpoints on the admin listener.

use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, Authenticator};

#[tokio::test]
async fn support_can_list_and_revoke_passkeys() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let first = app.register_passkey(&auth, &mut authenticator).await;
    app.register_passkey(&auth, &mut authenticator).await;
    app.register_passkey(&auth, &mut authenticator).await;
    let (_, other_auth) = app.signed_in_user().await;
    app.register_passkey(&other_auth, &mut Authenticator::new())
        .await;

    let path = format!("/admin/identities/{}/passkeys", user.id);
    let list: Value = app
        .http
        .get(app.admin_url(&path))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(3));

    let one = format!("{path}/{}", first["id"].as_str().expect("id"));
    assert_eq!(
        app.http
            .delete(app.admin_url(&one))
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    let again = app
        .http
        .delete(app.admin_url(&one))
        .send()
        .await
        .expect("delete");
    let (status, body) = crate::helpers::status_and_json(again).await;
    assert_error(status, &body, 404, "passkey_not_found");

    let all = app
        .http
        .delete(app.admin_url(&path))
        .send()
        .await
        .expect("delete all");
    let (status, body) = crate::helpers::status_and_json(all).await;
    assert_eq!((status, body), (200, json!({"deleted": 2})));
    assert_eq!(app.passkey_list(&auth).await, json!([]));
    assert_eq!(
        app.passkeys_stored(),
        1,
        "the other identity's passkey is untouched"
    );
}

#[tokio::test]
async fn admin_endpoints_are_not_on_the_public_listener() {
    let app = spawn_app().await;
    let path = format!("/admin/identities/{}/passkeys", uuid::Uuid::new_v4());
    let response = app.http.get(app.url(&path)).send().await.expect("request");
    assert_eq!(response.status(), 404);
    let response = app
        .http
        .post(app.url("/hooks/kratos/after-registration"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);

    // Revoking is not reachable from the public listener either.
    let (user, auth) = app.signed_in_user().await;
    let passkey = app.register_passkey(&auth, &mut Authenticator::new()).await;
    let all = format!("/admin/identities/{}/passkeys", user.id);
    let one = format!("{all}/{}", passkey["id"].as_str().expect("id"));
    for path in [&all, &one] {
        let response = app
            .http
            .delete(app.url(path))
            .send()
            .await
            .expect("request");
        let (status, body) = crate::helpers::status_and_json(response).await;
        assert_error(status, &body, 404, "not_found");
    }
    assert_eq!(app.passkeys_stored(), 1);
}

#[tokio::test]
async fn revoking_needs_the_passkey_to_be_that_identitys() {
    let app = spawn_app().await;
    let (alice, _) = app.signed_in_user().await;
    let (_, bob_auth) = app.signed_in_user().await;
    let bobs = app
        .register_passkey(&bob_auth, &mut Authenticator::new())
        .await;
    let path = format!(
        "/admin/identities/{}/passkeys/{}",
        alice.id,
        bobs["id"].as_str().expect("id")
    );
    let response = app
        .http
        .delete(app.admin_url(&path))
        .send()
        .await
        .expect("delete");
    let (status, body) = crate::helpers::status_and_json(response).await;
    assert_error(status, &body, 404, "passkey_not_found");
    assert_eq!(app.passkeys_stored(), 1, "Bob's passkey is untouched");
    assert_eq!(
        app.passkey_list(&bob_auth).await.as_array().map(Vec::len),
        Some(1)
    );
}

const ADMIN_KEY: &str = "support-desk-token-0123456789";
const ROTATED_KEY: &str = "next-support-desk-token-abcdef";

/// Sends `method path` to the admin listener with `authorization`, if any.
async fn admin_call(
    app: &crate::helpers::TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = app.http.request(method, app.admin_url(path));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.expect("admin request")
}

#[tokio::test]
async fn the_admin_token_is_required_when_set() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.admin.api_keys = [ADMIN_KEY, ROTATED_KEY]
            .map(|k| secrecy::SecretString::from(k.to_string()))
            .to_vec();
    })
    .await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let first = app.register_passkey(&auth, &mut authenticator).await;
    app.register_passkey(&auth, &mut authenticator).await;
    let response = app
        .passkey_login(
            &mut authenticator,
            json!({"session": "token", "include_session": true}),
        )
        .await;
    let (status, logged_in) = crate::helpers::status_and_json(response).await;
    assert_eq!(status, 200, "{logged_in}");
    let session = logged_in["session"]["id"].as_str().expect("session id");
    // The login's record may be completed after the answer.
    app.eventually_count(
        &format!(
            "SELECT count(*) AS count FROM minted_sessions WHERE kratos_session_id = '{session}'"
        ),
        1,
    )
    .await;

    let passkeys = format!("/admin/identities/{}/passkeys", user.id);
    let one = format!("{passkeys}/{}", first["id"].as_str().expect("id"));
    let events = format!("/admin/identities/{}/events", user.id);
    let minted = format!("/admin/sessions/{session}");
    use reqwest::Method;
    // Each admin route, and what it answers the bearer of the first key,
    // then of the second (a deletion finds nothing left the second time).
    let routes = [
        (Method::GET, passkeys.as_str(), [200, 200]),
        (Method::GET, events.as_str(), [200, 200]),
        (Method::GET, minted.as_str(), [200, 200]),
        (Method::GET, "/metrics", [200, 200]),
        (Method::GET, "/openapi.json", [200, 200]),
        (Method::GET, "/no/such/route", [404, 404]),
        (Method::DELETE, one.as_str(), [204, 404]),
        (Method::DELETE, passkeys.as_str(), [200, 200]),
    ];
    let refused_headers = [
        None,
        Some("Bearer wrong-token-0123456789abcd".to_string()),
        Some(format!("Basic {ADMIN_KEY}")),
        Some(ADMIN_KEY.to_string()),
        Some(format!("Bearer {ADMIN_KEY}x")),
        Some("Bearer ".to_string()),
    ];
    for (method, path, expected) in routes {
        let stored = app.passkeys_stored();
        for header in &refused_headers {
            let response = admin_call(&app, method.clone(), path, header.as_deref()).await;
            assert_eq!(
                response
                    .headers()
                    .get("WWW-Authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{method} {path} with {header:?}"
            );
            let (status, body) = crate::helpers::status_and_json(response).await;
            assert_error(status, &body, 401, "admin_unauthorized");
        }
        assert_eq!(
            app.passkeys_stored(),
            stored,
            "a refused {path} deleted nothing"
        );
        for (key, expected) in [ADMIN_KEY, ROTATED_KEY].into_iter().zip(expected) {
            let bearer = format!("Bearer {key}");
            let response = admin_call(&app, method.clone(), path, Some(&bearer)).await;
            assert_eq!(response.status(), expected, "{method} {path} with {key}");
        }
    }
    assert_eq!(app.passkeys_stored(), 0);

    // Probes and Kratos's web hooks need no bearer token: the hooks carry
    // the webhook key, and are refused without it.
    for probe in ["/health/alive", "/health/ready"] {
        let response = admin_call(&app, Method::GET, probe, None).await;
        assert_eq!(response.status(), 200, "{probe}");
    }
    let hook = |key: Option<String>| {
        let mut request = app
            .http
            .post(app.admin_url("/hooks/kratos/after-registration"))
            .json(&json!({"identity_id": uuid::Uuid::new_v4()}));
        if let Some(key) = key {
            request = request.header("X-Webhook-Key", key);
        }
        request.send()
    };
    assert_eq!(
        hook(Some(app.webhook_key())).await.expect("hook").status(),
        204
    );
    let (status, body) = crate::helpers::status_and_json(hook(None).await.expect("hook")).await;
    assert_error(status, &body, 401, "webhook_unauthorized");
}

#[tokio::test]
async fn without_admin_keys_the_admin_routes_ask_for_no_token() {
    let app = crate::helpers::spawn_app().await;
    let response = admin_call(&app, reqwest::Method::GET, "/metrics", None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("WWW-Authenticate").is_none());
}
