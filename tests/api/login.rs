//! Passkey login that ends in a genuine Kratos session.

use std::time::Duration;

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
    // A login Kratos refused to mint for is recorded as `failed`: no session.
    let records = "SELECT count(*) AS count FROM minted_sessions WHERE state <> 'failed'";
    let (before, records_before) = (session_count(app, user.id).await, app.count(records));
    let (got, body) = status_and_json(verify(app, options, credential, "token").await).await;
    assert_error(got, &body, status, id);
    assert_eq!(
        session_count(app, user.id).await,
        before,
        "no session was minted"
    );
    assert_eq!(app.count(records), records_before, "no login was recorded");
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
    assert_eq!(body["identity_id"], user.id.to_string());
    assert!(
        body.get("session").is_none(),
        "the session object is only answered when asked for: {body}"
    );
    let token = body["session_token"].as_str().expect("session token");

    // Kratos accepts the token, and the session is the one a passkey login
    // makes: aal1, through the admin recovery code, from this client.
    let session = app.kratos.session_of_token(token).await;
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

    // The passkey was used, and the session is recorded against it once
    // the service has learnt its id (after the answer).
    let list = app.passkey_list(&Auth::Token(token.to_string())).await;
    assert!(list[0]["last_used_at"].is_string(), "{list}");
    app.eventually_count(
        &format!(
            "SELECT count(*) AS count FROM minted_sessions WHERE kratos_session_id = '{}' AND passkey_id = '{}' AND delivery = 'token' AND state = 'resolved' AND recovery_flow_id IS NOT NULL",
            session["id"].as_str().expect("session id"),
            list[0]["id"].as_str().expect("passkey id"),
        ),
        1,
    )
    .await;
    assert_eq!(
        app.count("SELECT sign_count AS count FROM passkeys"),
        1,
        "counter advanced"
    );
}

#[tokio::test]
async fn a_login_that_asks_gets_the_session_object() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    let (status, body) = app
        .post_json(
            "/passkeys/login/verify",
            &Auth::None,
            &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token", "include_session": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().expect("token");
    let session = &body["session"];
    assert_eq!(session["identity"]["id"], user.id.to_string());
    assert_eq!(session["active"], true);
    assert!(
        !session.to_string().contains(token),
        "the session object carries no token"
    );
    assert_eq!(
        app.kratos.session_of_token(token).await["id"],
        session["id"]
    );
    // Known before the answer, so recorded with it.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM minted_sessions WHERE kratos_session_id = '{}' AND state = 'resolved'",
            session["id"].as_str().expect("id")
        )),
        1
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
    assert_eq!(body["identity_id"], user.id.to_string());
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
    app.advance_clock(app.settings.webauthn.ceremony_ttl + Duration::from_secs(1));
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
    let list = app.passkey_list(&Auth::Token(token)).await;
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
        app.count("SELECT count(*) AS count FROM minted_sessions WHERE state <> 'failed'"),
        0,
        "the login is recorded as one that minted nothing"
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
async fn kratos_admin_unreachable_during_verify_mints_nothing_and_says_so() {
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
    // The assertion was genuine: the authenticator's counter moved, and so
    // does the stored one; the record says that no session came of it.
    assert_eq!(counter(), 1);
    assert_eq!(session_count(&app, user.id).await, before);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM minted_sessions WHERE state = 'failed'"),
        1
    );

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
    for ceremony_id in [json!(""), json!("A".repeat(8193)), json!(5)] {
        let (got, answer) = app
            .post_json(
                "/passkeys/login/verify",
                &Auth::None,
                &json!({"ceremony_id": ceremony_id, "credential": {}}),
            )
            .await;
        assert_error(got, &answer, 400, "malformed_request");
    }
    assert_eq!(
        app.count("SELECT count(*) AS count FROM consumed_ceremonies"),
        0
    );
}

/// The ceremony id, altered by `alter`.
fn with_ceremony_id(options: &Value, alter: impl FnOnce(&str) -> String) -> Value {
    let id = options["ceremony_id"].as_str().expect("ceremony id");
    json!({"ceremony_id": alter(id), "publicKey": options["publicKey"]})
}

#[tokio::test]
async fn forged_truncated_and_altered_ceremony_ids_are_unknown() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    let raw = URL_SAFE_NO_PAD
        .decode(options["ceremony_id"].as_str().expect("id"))
        .expect("base64url");
    let flip = |position: usize| {
        let mut bytes = raw.clone();
        bytes[position] ^= 0x20;
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let forged = URL_SAFE_NO_PAD.encode(vec![1u8; raw.len()]);
    let cases: Vec<(&str, Value)> = vec![
        ("forged", with_ceremony_id(&options, |_| forged.clone())),
        (
            "truncated",
            with_ceremony_id(&options, |id| id[..id.len() / 2].to_string()),
        ),
        (
            "one byte short",
            with_ceremony_id(&options, |id| id[..id.len() - 2].to_string()),
        ),
        (
            "bit flipped in the nonce",
            with_ceremony_id(&options, |_| flip(5)),
        ),
        (
            "bit flipped in the sealed state",
            with_ceremony_id(&options, |_| flip(raw.len() / 2)),
        ),
        (
            "bit flipped in the tag",
            with_ceremony_id(&options, |_| flip(raw.len() - 1)),
        ),
        ("another version", with_ceremony_id(&options, |_| flip(0))),
        (
            "not base64",
            with_ceremony_id(&options, |id| format!("{id}!")),
        ),
        (
            "a uuid",
            with_ceremony_id(&options, |_| Uuid::new_v4().to_string()),
        ),
    ];
    for (what, altered) in cases {
        let before = session_count(&app, user.id).await;
        let (status, body) =
            status_and_json(verify(&app, &altered, &credential, "token").await).await;
        assert_eq!(status, 404, "{what}: {body}");
        assert_error(status, &body, 404, "ceremony_not_found");
        assert_eq!(session_count(&app, user.id).await, before, "{what}");
    }
    assert_eq!(
        app.count("SELECT count(*) AS count FROM consumed_ceremonies"),
        1,
        "only the registration's ceremony was used"
    );
    // The genuine id still works: nothing above touched it.
    let (status, body) = status_and_json(verify(&app, &options, &credential, "token").await).await;
    assert_eq!(status, 200, "{body}");
}

/// Another replica on `app`'s database, with these ceremony keys.
async fn replica_with_keys(app: &TestApp, keys: &[&secrecy::SecretString]) -> TestApp {
    let keys: Vec<secrecy::SecretString> = keys.iter().map(|k| (*k).clone()).collect();
    spawn_app_with(|s| {
        s.database.url = app.settings.database.url.clone();
        s.ceremonies.keys = keys;
    })
    .await
}

fn key(base64: &str) -> secrecy::SecretString {
    secrecy::SecretString::from(base64.to_string())
}

#[tokio::test]
async fn a_ceremony_sealed_with_another_key_is_unknown() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let elsewhere = replica_with_keys(
        &app,
        &[&key("YW5vdGhlciBkZXBsb3ltZW50J3Mgc2VhbGluZyBrZXk=")],
    )
    .await;
    let options = login_options(&elsewhere, json!({})).await;
    let credential = authenticator.login(&options);
    refused(
        &app,
        &user,
        &options,
        &credential,
        404,
        "ceremony_not_found",
    )
    .await;
}

#[tokio::test]
async fn a_retired_key_still_opens_ceremonies_until_it_is_dropped() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let old_key = &app.settings.ceremonies.keys[0];
    let new_key = key("bmV3IGNlcmVtb255IGtleSBmb3Igcm90YXRpb24hISE=");
    // Rotated: a new first key seals, the old one still opens.
    let rotated = replica_with_keys(&app, &[&new_key, old_key]).await;
    let started_before = login_options(&app, json!({})).await;
    let credential = authenticator.login(&started_before);
    let (status, body) =
        status_and_json(verify(&rotated, &started_before, &credential, "token").await).await;
    assert_eq!(status, 200, "{body}");
    // After the rotation is complete, the old key is gone.
    let retired = replica_with_keys(&app, &[&new_key]).await;
    let options = login_options(&app, json!({})).await;
    let credential = authenticator.login(&options);
    refused(
        &retired,
        &user,
        &options,
        &credential,
        404,
        "ceremony_not_found",
    )
    .await;
}

#[tokio::test]
async fn login_options_write_nothing() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    // The same database through a session that refuses every write: if
    // starting a login wrote anything, it would fail.
    let read_only_url = format!(
        "{}?options=-c%20default_transaction_read_only%3Don",
        app.database_url
    );
    let read_only = spawn_app_with(|s| {
        s.database.url = secrecy::SecretString::from(read_only_url);
        s.database.run_migrations_on_start = false;
    })
    .await;
    let tables = "SELECT (SELECT count(*) FROM consumed_ceremonies) + (SELECT count(*) FROM minted_sessions) \
                  + (SELECT count(*) FROM passkeys) + (SELECT count(*) FROM identities) AS count";
    let rows_before = app.count(tables);
    let mut last = Value::Null;
    for i in 0..25 {
        let body = if i % 2 == 0 {
            json!({})
        } else {
            json!({"identifier": user.email})
        };
        let (status, options) = read_only
            .post_json("/passkeys/login/options", &Auth::None, &body)
            .await;
        assert_eq!(status, 200, "{options}");
        last = options;
    }
    assert_eq!(app.count(tables), rows_before);
    // The check can fail: finishing a login does write, and is refused there.
    let credential = authenticator.login(&last);
    let (status, body) =
        status_and_json(verify(&read_only, &last, &credential, "token").await).await;
    assert!(status >= 500, "{status} {body}");
    assert_eq!(app.count(tables), rows_before);
    // The ceremony started on the read-only replica finishes on the other.
    let (status, body) = status_and_json(verify(&app, &last, &credential, "token").await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_failed_attempt_does_not_use_up_the_ceremony_and_a_replay_is_refused() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let good = authenticator.login(&options);
    let mut tampered = good.clone();
    tampered["response"]["signature"] = Value::String(b64(&[0u8; 64]));
    refused(&app, &user, &options, &tampered, 400, "signature_invalid").await;
    // A forged assertion does not use the ceremony up: whoever learnt its
    // id cannot spend it before the person's own assertion arrives.
    let (status, body) = status_and_json(verify(&app, &options, &good, "token").await).await;
    assert_eq!(status, 200, "{body}");
    // Used once, it is refused, the genuine assertion included.
    refused(&app, &user, &options, &good, 404, "ceremony_not_found").await;
}

#[tokio::test]
async fn a_discoverable_login_without_user_handle_is_refused() {
    let app = spawn_app().await;
    let (user, mut authenticator) = user_with_passkey(&app).await;
    let options = login_options(&app, json!({})).await;
    let mut credential = authenticator.login(&options);
    credential["response"]
        .as_object_mut()
        .expect("response")
        .remove("userHandle");
    refused(
        &app,
        &user,
        &options,
        &credential,
        400,
        "user_handle_missing",
    )
    .await;

    // Started for a named account, the credential list already names it.
    let options = login_options(&app, json!({"identifier": user.email})).await;
    let mut credential = authenticator.login(&options);
    credential["response"]
        .as_object_mut()
        .expect("response")
        .remove("userHandle");
    let (status, body) = status_and_json(verify(&app, &options, &credential, "token").await).await;
    assert_eq!(status, 200, "{body}");
}
