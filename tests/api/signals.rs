//! What the browser client tells the person's password manager (the Signal
//! API): the list's relying party, user and credential ids, the names kept
//! current by Kratos's after-settings hook, and `credential_unknown` only for
//! a credential no identity has.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::kratos::new_email;
use crate::helpers::{
    assert_error, hold_webhook_port, spawn_app, spawn_app_with, status_and_json, webhook_port,
    Auth, Authenticator, TestApp,
};

async fn list(app: &TestApp, auth: &Auth) -> Value {
    let (status, body) = app.get_json("/passkeys", auth).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_list_names_the_relying_party_the_user_and_each_credential() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    assert_eq!(
        list(&app, &auth).await,
        json!({"rp_id": "localhost", "user": null, "passkeys": []}),
        "no passkey yet: nothing for a password manager to know"
    );

    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register(&options);
    let (status, created) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["credential_id"], credential["id"]);

    let body = list(&app, &auth).await;
    assert_eq!(body["rp_id"], "localhost");
    assert_eq!(
        body["user"],
        json!({
            // The handle the credential was made with, as the browser got it.
            "id": options["publicKey"]["user"]["id"],
            "name": user.email,
            "display_name": user.email,
        })
    );
    assert_eq!(body["passkeys"][0]["credential_id"], credential["id"]);

    // After the last passkey is removed the user stays, so the client can
    // tell the password manager that none is accepted any more.
    let id = created["id"].as_str().expect("id");
    let removed = app
        .request(reqwest::Method::DELETE, &format!("/passkeys/{id}"), &auth)
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 204);
    let body = list(&app, &auth).await;
    assert_eq!(body["passkeys"], json!([]));
    assert_eq!(body["user"]["id"], options["publicKey"]["user"]["id"]);
}

/// A name changed in Kratos's settings reaches the list through Kratos's real
/// after-settings web hook.
#[tokio::test]
async fn a_name_changed_in_kratos_settings_reaches_the_next_list() {
    // Kratos's web hooks go to a fixed port; only this test (and the other
    // webhook tests, one at a time) listens there.
    let _port = hold_webhook_port().await;
    // The default display name is the `name` trait (email until set).
    let app = spawn_app_with(|s| s.admin.port = webhook_port()).await;
    let email = new_email();
    let (identity, token) = app.kratos.register_api(&email).await;
    let auth = Auth::Token(token.clone());
    let options = app.registration_options(&auth).await;
    assert_eq!(options["publicKey"]["user"]["displayName"], email.as_str());
    let credential = Authenticator::new().register(&options);
    assert_eq!(
        app.verify_registration(&auth, &options, &credential)
            .await
            .0,
        201
    );
    assert_eq!(list(&app, &auth).await["user"]["display_name"], email);

    app.kratos
        .update_traits(&token, json!({"email": email, "name": "Ada Lovelace"}))
        .await;
    // Kratos calls the hook after answering (response.ignore): wait for the
    // stored names to change, with no list call that could change them.
    app.eventually_count(
        &format!(
            "SELECT count(*) AS count FROM identities WHERE identity_id = '{identity}' AND display_name = 'Ada Lovelace' AND user_name = '{email}'"
        ),
        1,
    )
    .await;
    let user = list(&app, &auth).await["user"].clone();
    assert_eq!(user["display_name"], "Ada Lovelace");
    assert_eq!(user["name"], email.as_str());
}

/// Stored names that lag behind Kratos (the hook not wired, or its calls
/// out of order) are corrected by the next list from the session's traits.
#[tokio::test]
async fn the_list_answers_and_keeps_the_names_kratos_has_now() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    app.registration_options(&auth).await;
    app.count(&format!(
        "UPDATE identities SET display_name = 'Old Name' WHERE identity_id = '{}' RETURNING 1::bigint AS count",
        user.id
    ));
    let listed = list(&app, &auth).await["user"].clone();
    assert_eq!(listed["display_name"], user.email.as_str());
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM identities WHERE identity_id = '{}' AND display_name = '{}'",
            user.id, user.email
        )),
        1
    );
}

/// Posts `body` to the after-settings hook with `key`.
async fn after_settings(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.admin_url("/hooks/kratos/after-settings"))
        .header(app.settings.webhook.header.as_str(), key)
        .json(body)
        .send()
        .await
        .expect("hook");
    status_and_json(response).await
}

#[tokio::test]
async fn the_after_settings_hook_is_authenticated_and_ignores_unknown_identities() {
    let app = spawn_app().await;
    let body = json!({"identity_id": Uuid::new_v4(), "traits": {"email": "x@example.com"}});
    let (status, refused) = after_settings(&app, "wrong", &body).await;
    assert_error(status, &refused, 401, "webhook_unauthorized");

    assert_eq!(after_settings(&app, &app.webhook_key(), &body).await.0, 204);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM identities"),
        0,
        "an identity without passkeys is not recorded"
    );

    // Without traits there are no names to record: refused, not blanked.
    for body in [
        json!({"identity_id": "not a uuid", "traits": {}}),
        json!({"identity_id": Uuid::new_v4()}),
    ] {
        let (status, malformed) = after_settings(&app, &app.webhook_key(), &body).await;
        assert_error(status, &malformed, 400, "malformed_request");
    }
}

/// `credential_unknown` (the one answer after which the client calls
/// `signalUnknownCredential`) means no identity has the credential; a
/// credential of another identity than the one named is refused differently.
#[tokio::test]
async fn credential_unknown_only_when_no_identity_has_the_credential() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user().await;
    let mut alices = Authenticator::new();
    let passkey = app.register_passkey(&alice, &mut alices).await;

    // Known, but answering for another person (Bob's user handle): refused,
    // and not as "unknown".
    let (_, bob) = app.signed_in_user().await;
    let bobs = app.registration_options(&bob).await;
    let options = app.login_options().await;
    let mut assertion = alices.login(&options);
    assertion["response"]["userHandle"] = bobs["publicKey"]["user"]["id"].clone();
    let (status, refused) =
        status_and_json(app.verify_login(&options, &assertion, json!({})).await).await;
    assert_error(status, &refused, 400, "user_handle_mismatch");

    // Removed: no identity has it any more.
    let id = passkey["id"].as_str().expect("id");
    let removed = app
        .request(reqwest::Method::DELETE, &format!("/passkeys/{id}"), &alice)
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 204);
    let options = app.login_options().await;
    let assertion = alices.login(&options);
    let (status, refused) =
        status_and_json(app.verify_login(&options, &assertion, json!({})).await).await;
    assert_error(status, &refused, 400, "credential_unknown");
}
