//! The automatic passkey upgrade: `registration/options` with
//! `{"mediation": "conditional"}`, answered by a password manager without
//! User Present or User Verified (WebAuthn Level 3 §7.1), and every other
//! check of §7.1 on that path. The software authenticator signs; the
//! attestation is turned into the `none` one browsers forward, whose flags
//! nothing signs.

use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::authenticator::{
    as_none_attestation, b64, rewrite_auth_data, rewrite_client_data, unb64,
};
use kratos_passkeys::configuration::{Attachment, UserVerification};

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, status_and_json, Auth, Authenticator, TestApp,
};

const UP: u8 = 0x01;
const UV: u8 = 0x04;

async fn conditional_options(app: &TestApp, auth: &Auth) -> Value {
    let (status, options) = app
        .post_json(
            "/passkeys/registration/options",
            auth,
            &json!({"mediation": "conditional"}),
        )
        .await;
    assert_eq!(status, 200, "{options}");
    options
}

/// What a password manager answers a conditional create with: no presence,
/// no verification, no attestation.
fn quiet(authenticator: &mut Authenticator, options: &Value) -> Value {
    let mut credential = authenticator.register(options);
    as_none_attestation(&mut credential, |flags| *flags &= !(UP | UV));
    credential
}

#[tokio::test]
async fn conditional_options_are_what_browsers_accept_for_conditional_create() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = conditional_options(&app, &auth).await;
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["userVerification"], "preferred");
    assert_eq!(selection["residentKey"], "required");
    assert!(selection.get("authenticatorAttachment").is_none());
    assert_eq!(options["publicKey"]["attestation"], "none");

    // Anything but "conditional" (or "modal") is a malformed request.
    let (status, body) = app
        .post_json(
            "/passkeys/registration/options",
            &auth,
            &json!({"mediation": "silent"}),
        )
        .await;
    assert_error(status, &body, 400, "malformed_request");
}

#[tokio::test]
async fn a_conditional_registration_without_presence_or_verification_logs_in_with_verification() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let options = conditional_options(&app, &auth).await;
    let credential = quiet(&mut authenticator, &options);
    let (status, created) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["credential_id"], credential["id"]);
    // Stored like every other passkey: in the list, in webauthn-rs's form.
    let list = app.passkey_list(&auth).await;
    assert_eq!(list[0]["id"], created["id"]);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkeys WHERE credential ? 'cred'"),
        1
    );
    // Its event says the password manager added it, for the "a passkey was
    // added to your account" mail.
    assert_eq!(
        app.count("SELECT count(*) AS count FROM events WHERE type = 'passkey.registered' AND payload->'data'->>'mediation' = 'conditional'"),
        1
    );

    // The login is an ordinary one: verified, signed, minting a session.
    let response = app
        .passkey_login(&mut authenticator, json!({"session": "token"}))
        .await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity_id"], user.id.to_string());
    let token = body["session_token"].as_str().expect("token");
    assert_eq!(
        app.kratos.whoami_token(token).await,
        (200, Some(user.id)),
        "a genuine Kratos session"
    );

    // A login without user verification is refused, though the passkey
    // was made without it.
    let (_, status, body) = login_without_verification(&app, &mut authenticator).await;
    assert_error(status, &body, 400, "user_verification_missing");
}

/// A login whose assertion lacks User Verified: its options and the answer.
async fn login_without_verification(
    app: &TestApp,
    authenticator: &mut Authenticator,
) -> (Value, u16, Value) {
    let options = app.login_options().await;
    let mut assertion = authenticator.login(&options);
    let mut data = unb64(&assertion["response"]["authenticatorData"]);
    data[32] &= !UV;
    assertion["response"]["authenticatorData"] = Value::String(b64(&data));
    let (status, body) =
        status_and_json(app.verify_login(&options, &assertion, json!({})).await).await;
    (options, status, body)
}

#[tokio::test]
async fn the_same_answer_to_a_modal_ceremony_is_refused() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = quiet(&mut Authenticator::new(), &options);
    app.refused_registration(&auth, &options, &credential, 400, "user_presence_missing")
        .await;

    let options = app.registration_options(&auth).await;
    let mut credential = Authenticator::new().register(&options);
    as_none_attestation(&mut credential, |flags| *flags &= !UV);
    app.refused_registration(
        &auth,
        &options,
        &credential,
        400,
        "user_verification_missing",
    )
    .await;
}

#[tokio::test]
async fn a_conditional_ceremony_is_still_single_use_and_the_callers() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let (_, bob) = app.signed_in_user().await;
    let options = conditional_options(&app, &auth).await;
    let credential = quiet(&mut Authenticator::new(), &options);
    app.refused_registration(&bob, &options, &credential, 404, "ceremony_not_found")
        .await;
    assert_eq!(
        app.verify_registration(&auth, &options, &credential)
            .await
            .0,
        201
    );
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_error(status, &body, 404, "ceremony_not_found");
}

/// §7.1's other checks, on the conditional path: each answer is refused
/// with its id and stores nothing.
#[tokio::test]
async fn every_other_check_of_7_1_applies_to_conditional_registrations() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;

    type Change = fn(&mut Value);
    let cases: [(&str, Change, &str); 10] = [
        (
            "origin",
            |c| rewrite_client_data(c, |d| d["origin"] = json!("http://localhost:9999")),
            "origin_mismatch",
        ),
        (
            "challenge",
            |c| rewrite_client_data(c, |d| d["challenge"] = json!(b64(&[7u8; 32]))),
            "challenge_mismatch",
        ),
        (
            "type",
            |c| rewrite_client_data(c, |d| d["type"] = json!("webauthn.get")),
            "credential_invalid",
        ),
        (
            "rpIdHash",
            |c| {
                rewrite_auth_data(c, |data| {
                    data[..32].copy_from_slice(&Sha256::digest(b"example.org"))
                })
            },
            "rp_id_mismatch",
        ),
        (
            "algorithm",
            |c| set_key_algorithm(c, -8),
            "credential_invalid",
        ),
        (
            "credential id length",
            long_credential_id,
            "credential_invalid",
        ),
        (
            "cross-origin frame",
            |c| rewrite_client_data(c, |d| d["crossOrigin"] = json!(true)),
            "origin_mismatch",
        ),
        (
            "backup state without eligibility",
            |c| rewrite_auth_data(c, |data| data[32] = (data[32] & !0x08) | 0x10),
            "credential_invalid",
        ),
        (
            "credential id not the attested one",
            |c| c["rawId"] = json!(b64(&[1, 2, 3])),
            "credential_invalid",
        ),
        (
            "trailing authenticator data",
            |c| rewrite_auth_data(c, |data| data.extend_from_slice(&[0xde, 0xad])),
            "credential_invalid",
        ),
    ];
    for (check, change, id) in cases {
        let options = conditional_options(&app, &auth).await;
        let mut credential = quiet(&mut Authenticator::new(), &options);
        change(&mut credential);
        let (status, body) = app.verify_registration(&auth, &options, &credential).await;
        assert_eq!(
            (status, body["error"]["id"].as_str()),
            (400, Some(id)),
            "{check}: {body}"
        );
    }
    // A packed self attestation signs the flags: clearing User Present
    // after the authenticator signed breaks it.
    let options = conditional_options(&app, &auth).await;
    let mut credential = Authenticator::new().register(&options);
    rewrite_auth_data(&mut credential, |data| data[32] &= !(UP | UV));
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_error(status, &body, 400, "attestation_invalid");
    assert_eq!(app.passkeys_stored(), 0);

    // Step 27: a credential id registered to anyone is refused.
    let options = conditional_options(&app, &auth).await;
    let first = quiet(&mut Authenticator::new(), &options);
    assert_eq!(
        app.verify_registration(&auth, &options, &first).await.0,
        201
    );
    let (_, bob) = app.signed_in_user().await;
    let options = conditional_options(&app, &bob).await;
    let mut again = quiet(&mut Authenticator::new(), &options);
    let id = unb64(&first["rawId"]);
    replace_credential_id(&mut again, &id);
    let (status, body) = app.verify_registration(&bob, &options, &again).await;
    assert_error(status, &body, 409, "credential_already_registered");
    assert_eq!(app.passkeys_stored(), 1);
}

/// Changes the `alg` of the credential public key (COSE label 3).
fn set_key_algorithm(credential: &mut Value, alg: i128) {
    rewrite_auth_data(credential, |data| {
        let length = usize::from(u16::from_be_bytes([data[53], data[54]]));
        let key_start = 55 + length;
        let mut key: std::collections::BTreeMap<Cbor, Cbor> =
            serde_cbor_2::from_slice(&data[key_start..]).expect("cose key");
        key.insert(Cbor::Integer(3), Cbor::Integer(alg));
        data.truncate(key_start);
        data.extend(serde_cbor_2::to_vec(&key).expect("cbor"));
    });
}

fn replace_credential_id(credential: &mut Value, id: &[u8]) {
    rewrite_auth_data(credential, |data| {
        let length = usize::from(u16::from_be_bytes([data[53], data[54]]));
        let key = data[55 + length..].to_vec();
        data.truncate(53);
        data.extend_from_slice(&u16::try_from(id.len()).expect("length").to_be_bytes());
        data.extend_from_slice(id);
        data.extend_from_slice(&key);
    });
    credential["id"] = json!(b64(id));
    credential["rawId"] = json!(b64(id));
}

fn long_credential_id(credential: &mut Value) {
    replace_credential_id(credential, &[9u8; 1024]);
}

/// With `user_verification: preferred` logins ask for `preferred`, yet a
/// passkey the password manager made without verification still needs it:
/// its stored registration policy is `required`.
#[tokio::test]
async fn an_upgraded_passkey_needs_verification_even_where_the_policy_prefers_it() {
    let app = spawn_app_with(|s| s.webauthn.user_verification = UserVerification::Preferred).await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let options = conditional_options(&app, &auth).await;
    let credential = quiet(&mut authenticator, &options);
    assert_eq!(
        app.verify_registration(&auth, &options, &credential)
            .await
            .0,
        201
    );
    let (login, status, body) = login_without_verification(&app, &mut authenticator).await;
    assert_eq!(login["publicKey"]["userVerification"], "preferred");
    assert_error(status, &body, 400, "user_verification_missing");
}

/// A conditional registration asks for no attachment, so the policy's is
/// not held against the password manager's answer (which has already saved
/// the passkey by then).
#[tokio::test]
async fn the_attachment_policy_does_not_refuse_an_upgrade() {
    let app = spawn_app_with(|s| s.webauthn.attachment = Attachment::CrossPlatform).await;
    let (_, auth) = app.signed_in_user().await;
    let options = conditional_options(&app, &auth).await;
    let mut credential = quiet(&mut Authenticator::new(), &options);
    credential["authenticatorAttachment"] = json!("platform");
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
}
