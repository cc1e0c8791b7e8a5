//! Passkey login that ends in a genuine Kratos session.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::authenticator::{b64, unb64};
use crate::helpers::kratos::session_cookie;
use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, status_and_json, Auth, Authenticator, TestApp,
    TestUser, ORIGIN,
};

/// A user with one registered passkey on `authenticator`.
async fn user_with_passkey(app: &TestApp) -> (TestUser, Authenticator) {
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    (user, authenticator)
}

async fn login_options(app: &TestApp, body: Value) -> Value {
    let (status, options) = app
        .post_json("/passkeys/login/options", &Auth::None, &body)
        .await;
    assert_eq!(status, 200, "{options}");
    options
}

async fn verify(
    app: &TestApp,
    options: &Value,
    credential: &Value,
    session: &str,
) -> reqwest::Response {
    app.http
        .post(app.url("/passkeys/login/verify"))
        .header("User-Agent", "kratos-passkeys-tests/1.0")
        .json(&json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": session}))
        .send()
        .await
        .expect("verify")
}

async fn session_count(app: &TestApp, identity: Uuid) -> usize {
    app.kratos.sessions(identity).await.len()
}

/// Asserts a refused login: status, error id, and no Kratos session minted.
async fn refused(
    app: &TestApp,
    user: &TestUser,
    options: &Value,
    credential: &Value,
    status: u16,
    id: &str,
) {
    let before = session_count(app, user.id).await;
    let (got, body) = status_and_json(verify(app, options, credential, "token").await).await;
    assert_error(got, &body, status, id);
    assert_eq!(
        session_count(app, user.id).await,
        before,
        "no session was minted"
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM minted_sessions"),
        0
    );
}

#[tokio::test]
async fn discoverable_login_mints_a_token_kratos_accepts() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(options["publicKey"]["rpId"], "localhost");

    let credential = authenticator.login(&options);
    assert!(credential["response"]["userHandle"].is_string());
    let response = verify(&app, &options, &credential, "token").await;
    assert!(
        session_cookie(&response).is_none(),
        "token mode sets no cookie"
    );
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().expect("session token");
    assert_eq!(app.kratos.whoami_token(token).await, (200, Some(user.id)));

    let session = &body["session"];
    assert_eq!(session["identity"]["id"], user.id.to_string());
    assert_eq!(session["authenticator_assurance_level"], "aal1");
    assert_eq!(
        session["authentication_methods"][0]["method"],
        "code_recovery"
    );
    assert_eq!(
        session["devices"][0]["user_agent"],
        "kratos-passkeys-tests/1.0"
    );
    assert_eq!(session["devices"][0]["ip_address"], "127.0.0.1");
    assert!(
        !session.to_string().contains(token),
        "the session object carries no token"
    );

    // The passkey was used, and the session is recorded against it.
    let (_, list) = app
        .get_json("/passkeys", &Auth::Token(token.to_string()))
        .await;
    assert!(list[0]["last_used_at"].is_string(), "{list}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM minted_sessions WHERE kratos_session_id = '{}' AND passkey_id = '{}' AND delivery = 'token'",
            session["id"].as_str().expect("session id"),
            list[0]["id"].as_str().expect("passkey id"),
        )),
        1
    );
    assert_eq!(
        app.count("SELECT sign_count AS count FROM passkeys"),
        1,
        "counter advanced"
    );
}

#[tokio::test]
async fn cookie_login_relays_kratos_cookie() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    let response = app
        .http
        .post(app.url("/passkeys/login/verify"))
        .json(&json!({"ceremony_id": options["ceremony_id"], "credential": credential}))
        .send()
        .await
        .expect("verify");
    assert_eq!(response.status(), 200);
    let set_cookie: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    assert_eq!(
        set_cookie.len(),
        1,
        "only Kratos's session cookie is relayed: {set_cookie:?}"
    );
    assert!(
        set_cookie[0].contains("HttpOnly") && set_cookie[0].contains("Path=/"),
        "{set_cookie:?}"
    );
    let cookie = session_cookie(&response).expect("session cookie");
    let body: Value = response.json().await.expect("json");
    assert!(body.get("session_token").is_none());
    assert_eq!(body["session"]["identity"]["id"], user.id.to_string());
    assert_eq!(
        app.kratos.whoami_cookie(&cookie).await,
        (200, Some(user.id))
    );
    // The relayed cookie also works with the service itself.
    assert_eq!(
        app.get_json("/passkeys", &Auth::Cookie(cookie)).await.0,
        200
    );
}

#[tokio::test]
async fn login_by_identifier_lists_that_identitys_passkeys() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({"identifier": user.email.to_uppercase()})).await;
    let allowed = options["publicKey"]["allowCredentials"]
        .as_array()
        .expect("list");
    assert_eq!(allowed.len(), 1);
    assert_eq!(
        unb64(&allowed[0]["id"]),
        authenticator.credentials[0].credential_id
    );

    let credential = authenticator.login(&options);
    let (status, body) = status_and_json(verify(&app, &options, &credential, "token").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.kratos
            .whoami_token(body["session_token"].as_str().expect("token"))
            .await,
        (200, Some(user.id))
    );
}

#[tokio::test]
async fn an_unknown_identifier_looks_like_a_known_one_without_passkeys() {
    let app = spawn_app().await;
    let (user, _) = app.signed_in_user().await;
    let known = login_options(&app, json!({"identifier": user.email})).await;
    let unknown = login_options(&app, json!({"identifier": "nobody@example.test"})).await;
    for options in [&known, &unknown] {
        let keys: Vec<&String> = options.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["ceremony_id", "publicKey"]);
        assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    }
    let shape = |o: &Value| {
        let mut keys: Vec<String> = o["publicKey"]
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(shape(&known), shape(&unknown));
}

#[tokio::test]
async fn unknown_ceremony() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    let other = json!({"ceremony_id": Uuid::new_v4()});
    refused(&app, &user, &other, &credential, 404, "ceremony_not_found").await;
}

#[tokio::test]
async fn expired_ceremony() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    app.count("WITH moved AS (UPDATE ceremonies SET expires_at = now() - interval '1 second' RETURNING 1) SELECT count(*) AS count FROM moved");
    refused(&app, &user, &options, &credential, 410, "ceremony_expired").await;
}

#[tokio::test]
async fn replayed_ceremony() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    assert_eq!(
        verify(&app, &options, &credential, "token").await.status(),
        200
    );
    let before = session_count(&app, user.id).await;
    let (status, body) = status_and_json(verify(&app, &options, &credential, "token").await).await;
    assert_error(status, &body, 404, "ceremony_not_found");
    assert_eq!(session_count(&app, user.id).await, before);
}

#[tokio::test]
async fn unknown_credential() {
    let app = spawn_app().await;
    let (user, _) = user_with_passkey(&app).await;
    // A passkey registered with another deployment (another database).
    let elsewhere = spawn_app().await;
    let (_, stranger) = user_with_passkey(&elsewhere).await;
    let mut stranger = stranger;
    let options = login_options(&app, json!({})).await;
    let credential = stranger.login(&options);
    refused(
        &app,
        &user,
        &options,
        &credential,
        400,
        "credential_unknown",
    )
    .await;
}

#[tokio::test]
async fn a_signature_by_another_key() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let (_, mut other) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let mut credential = authenticator.login(&options);
    let forged = other.login(&options);
    credential["response"]["signature"] = forged["response"]["signature"].clone();
    refused(&app, &user, &options, &credential, 400, "signature_invalid").await;
}

#[tokio::test]
async fn wrong_origin() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login_with(&options, "http://localhost:9999", |_| {});
    refused(&app, &user, &options, &credential, 400, "origin_mismatch").await;
}

#[tokio::test]
async fn wrong_rp_id() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let mut credential = authenticator.login(&options);
    let mut auth_data = unb64(&credential["response"]["authenticatorData"]);
    auth_data[0] ^= 0xff;
    credential["response"]["authenticatorData"] = Value::String(b64(&auth_data));
    refused(&app, &user, &options, &credential, 400, "rp_id_mismatch").await;
}

#[tokio::test]
async fn tampered_authenticator_data() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let mut credential = authenticator.login(&options);
    let mut auth_data = unb64(&credential["response"]["authenticatorData"]);
    auth_data[36] ^= 0x01; // the last byte of the signature counter
    credential["response"]["authenticatorData"] = Value::String(b64(&auth_data));
    refused(&app, &user, &options, &credential, 400, "signature_invalid").await;
}

#[tokio::test]
async fn missing_user_verification() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login_with(&options, ORIGIN, |o| {
        o.user_verification = webauthn_rs_proto::UserVerificationPolicy::Discouraged_DO_NOT_USE;
    });
    refused(
        &app,
        &user,
        &options,
        &credential,
        400,
        "user_verification_missing",
    )
    .await;
}

#[tokio::test]
async fn a_user_handle_of_someone_else() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let (_, other) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let mut credential = authenticator.login(&options);
    credential["response"]["userHandle"] = Value::String(b64(&other.credentials[0].user_handle));
    refused(
        &app,
        &user,
        &options,
        &credential,
        400,
        "user_handle_mismatch",
    )
    .await;
}

#[tokio::test]
async fn a_counter_that_goes_backwards_disables_the_passkey() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    // Another copy of the key has signed 100 times already.
    app.count("WITH moved AS (UPDATE passkeys SET sign_count = 100, credential = jsonb_set(credential, '{cred,counter}', '100') RETURNING 1) SELECT count(*) AS count FROM moved");
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    refused(&app, &user, &options, &credential, 403, "credential_cloned").await;
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkeys WHERE flagged_at IS NOT NULL"),
        1
    );

    // Disabled for good, even with a counter that moves forward again.
    app.count("WITH moved AS (UPDATE passkeys SET sign_count = 0, credential = jsonb_set(credential, '{cred,counter}', '0') RETURNING 1) SELECT count(*) AS count FROM moved");
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    refused(&app, &user, &options, &credential, 403, "credential_cloned").await;
    let token = app.kratos.login_token(&user).await;
    let (_, list) = app.get_json("/passkeys", &Auth::Token(token)).await;
    assert_eq!(list[0]["disabled"], true);
}

#[tokio::test]
async fn an_inactive_identity_cannot_log_in() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    app.kratos.set_state(user.id, "inactive").await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    refused(&app, &user, &options, &credential, 403, "identity_inactive").await;
    assert_eq!(
        app.passkeys_stored(),
        1,
        "an inactive identity keeps its passkeys"
    );
}

#[tokio::test]
async fn a_deleted_identity_loses_its_passkeys() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    app.kratos.delete_identity(user.id).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    let (status, body) = status_and_json(verify(&app, &options, &credential, "token").await).await;
    assert_error(status, &body, 404, "identity_not_found");
    assert_eq!(app.passkeys_stored(), 0, "purged");
    assert_eq!(app.count("SELECT count(*) AS count FROM identities"), 0);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM minted_sessions"),
        0
    );
}

#[tokio::test]
async fn concurrent_verifies_mint_one_session() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let before = session_count(&app, user.id).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    let attempts = (0..4).map(|_| verify(&app, &options, &credential, "token"));
    let responses = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(session_count(&app, user.id).await, before + 1);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM minted_sessions"),
        1
    );
}

#[tokio::test]
async fn kratos_admin_unreachable_during_verify_changes_nothing() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let broken = spawn_app_with(|s| {
        s.database.url = app.settings.database.url.clone();
        s.kratos.admin_url = url::Url::parse("http://127.0.0.1:1/").expect("url");
    })
    .await;
    let counter = || app.count("SELECT sign_count AS count FROM passkeys");
    assert_eq!(counter(), 0);
    let options = login_options(&broken, json!({})).await;
    let credential = authenticator.login(&options);
    let before = session_count(&app, user.id).await;
    let (status, body) =
        status_and_json(verify(&broken, &options, &credential, "token").await).await;
    assert_error(status, &body, 503, "kratos_unavailable");
    assert_eq!(counter(), 0, "the stored counter did not move");
    assert_eq!(session_count(&app, user.id).await, before);

    // The person simply tries again.
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    let (status, body) = status_and_json(verify(&app, &options, &credential, "token").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counter(), 2);
}

#[tokio::test]
async fn bad_login_bodies_are_refused() {
    let app = spawn_app().await;
    for (body, status, id) in [
        (json!({"identifier": ""}), 400, "malformed_request"),
        (json!({"identifier": 5}), 400, "malformed_request"),
        (json!({"unexpected": true}), 400, "malformed_request"),
    ] {
        let (got, answer) = app
            .post_json("/passkeys/login/options", &Auth::None, &body)
            .await;
        assert_error(got, &answer, status, id);
    }
    let (got, answer) = app
        .post_json(
            "/passkeys/login/verify",
            &Auth::None,
            &json!({"ceremony_id": Uuid::new_v4(), "credential": {}, "session": "carrier-pigeon"}),
        )
        .await;
    assert_error(got, &answer, 400, "malformed_request");
    assert_eq!(app.count("SELECT count(*) AS count FROM ceremonies"), 0);
}
