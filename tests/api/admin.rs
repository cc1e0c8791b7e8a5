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
