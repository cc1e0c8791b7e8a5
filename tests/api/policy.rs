//! The WebAuthn policy from configuration: each option changes the options
//! sent and what verify accepts.

use serde_json::{json, Value};

use kratos_passkeys::configuration::{Attachment, Hint, ResidentKey, UserVerification};

use crate::helpers::authenticator::as_none_attestation;
use crate::helpers::{spawn_app, spawn_app_with, Authenticator, ORIGIN};

const UV: u8 = 0x04;

/// A registration answered without user verification (a security key
/// without a PIN).
fn unverified(options: &Value) -> Value {
    let mut credential = Authenticator::new().register(options);
    as_none_attestation(&mut credential, |flags| *flags &= !UV);
    credential
}

/// The software passkey is a roaming one and refuses an options' platform
/// attachment; the browser's answer then says what it was.
fn platform_authenticator(options: &Value) -> Value {
    Authenticator::new().register_with(options, ORIGIN, |o| {
        if let Some(selection) = o.authenticator_selection.as_mut() {
            selection.authenticator_attachment = None;
        }
    })
}

#[tokio::test]
async fn user_verification_required_by_default() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(
        app.login_options().await["publicKey"]["userVerification"],
        "required"
    );
    app.refused_registration(
        &auth,
        &options,
        &unverified(&options),
        400,
        "user_verification_missing",
    )
    .await;
}

#[tokio::test]
async fn user_verification_preferred_accepts_an_unverified_authenticator() {
    let app = spawn_app_with(|s| s.webauthn.user_verification = UserVerification::Preferred).await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "preferred"
    );
    assert_eq!(
        app.login_options().await["publicKey"]["userVerification"],
        "preferred"
    );
    let (status, body) = app
        .verify_registration(&auth, &options, &unverified(&options))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn resident_key_required_refuses_a_non_discoverable_credential() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["requireResidentKey"], true);
    let mut credential = Authenticator::new().register(&options);
    credential["extensions"] = json!({"credProps": {"rk": false}});
    app.refused_registration(&auth, &options, &credential, 400, "resident_key_missing")
        .await;
    // Discoverable, or not said: accepted.
    for rk in [json!({"credProps": {"rk": true}}), json!({})] {
        let options = app.registration_options(&auth).await;
        let mut credential = Authenticator::new().register(&options);
        credential["extensions"] = rk;
        assert_eq!(
            app.verify_registration(&auth, &options, &credential)
                .await
                .0,
            201
        );
    }
}

#[tokio::test]
async fn resident_key_preferred_accepts_a_non_discoverable_credential() {
    let app = spawn_app_with(|s| s.webauthn.resident_key = ResidentKey::Preferred).await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "preferred");
    assert_eq!(selection["requireResidentKey"], false);
    let mut credential = Authenticator::new().register(&options);
    credential["extensions"] = json!({"credProps": {"rk": false}});
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn any_attachment_by_default() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    for attachment in ["platform", "cross-platform"] {
        let options = app.registration_options(&auth).await;
        assert!(options["publicKey"]["authenticatorSelection"]
            .get("authenticatorAttachment")
            .is_none());
        let mut credential = Authenticator::new().register(&options);
        credential["authenticatorAttachment"] = json!(attachment);
        assert_eq!(
            app.verify_registration(&auth, &options, &credential)
                .await
                .0,
            201,
            "{attachment}"
        );
    }
}

#[tokio::test]
async fn a_platform_policy_refuses_a_security_key() {
    let app = spawn_app_with(|s| s.webauthn.attachment = Attachment::Platform).await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["authenticatorAttachment"],
        "platform"
    );
    let mut credential = platform_authenticator(&options);
    credential["authenticatorAttachment"] = json!("cross-platform");
    app.refused_registration(&auth, &options, &credential, 400, "attachment_mismatch")
        .await;
    // Without authenticatorAttachment, the transports tell.
    let options = app.registration_options(&auth).await;
    let mut credential = platform_authenticator(&options);
    credential["response"]["transports"] = json!(["usb", "nfc"]);
    app.refused_registration(&auth, &options, &credential, 400, "attachment_mismatch")
        .await;
    let options = app.registration_options(&auth).await;
    let mut credential = platform_authenticator(&options);
    credential["authenticatorAttachment"] = json!("platform");
    credential["response"]["transports"] = json!(["internal", "hybrid"]);
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_cross_platform_policy_refuses_a_platform_authenticator() {
    let app = spawn_app_with(|s| s.webauthn.attachment = Attachment::CrossPlatform).await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["authenticatorAttachment"],
        "cross-platform"
    );
    let mut credential = Authenticator::new().register(&options);
    credential["authenticatorAttachment"] = json!("platform");
    app.refused_registration(&auth, &options, &credential, 400, "attachment_mismatch")
        .await;
    let options = app.registration_options(&auth).await;
    let mut credential = Authenticator::new().register(&options);
    credential["authenticatorAttachment"] = json!("cross-platform");
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn hints_reach_registration_and_login_options() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    assert!(app.registration_options(&auth).await["publicKey"]
        .get("hints")
        .is_none());

    let app = spawn_app_with(|s| s.webauthn.hints = vec![Hint::SecurityKey, Hint::Hybrid]).await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    assert_eq!(
        options["publicKey"]["hints"],
        json!(["security-key", "hybrid"])
    );
    assert_eq!(
        app.login_options().await["publicKey"]["hints"],
        json!(["security-key", "hybrid"])
    );
    // Hints are for the browser's UI: any authenticator still registers.
    let credential = Authenticator::new().register(&options);
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post_json(
            "/passkeys/registration/options",
            &auth,
            &json!({"mediation": "conditional"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["publicKey"].get("hints").is_none(),
        "a conditional registration goes to the password manager"
    );
}

/// A correctly signed UV=0 login: accepted under `preferred`, refused under
/// `required` (the same passkey, the same database).
#[tokio::test]
async fn an_unverified_login_is_accepted_under_preferred_and_refused_under_required() {
    let preferred =
        spawn_app_with(|s| s.webauthn.user_verification = UserVerification::Preferred).await;
    let (_, auth) = preferred.signed_in_user().await;
    let mut authenticator = Authenticator::without_user_verification();
    preferred.register_passkey(&auth, &mut authenticator).await;

    let options = preferred.login_options().await;
    let credential = authenticator.login(&options);
    let flags =
        crate::helpers::authenticator::unb64(&credential["response"]["authenticatorData"])[32];
    assert_eq!(
        flags & UV,
        0,
        "the assertion must not claim user verification"
    );
    let accepted = preferred
        .verify_login(&options, &credential, json!({"session": "token"}))
        .await;
    assert_eq!(accepted.status(), 200);

    let mut settings = preferred.settings.clone();
    settings.webauthn.user_verification = UserVerification::Required;
    let required = crate::helpers::spawn_with_settings(settings).await;
    let options = required.login_options().await;
    let credential = authenticator.login(&options);
    let refused = required
        .verify_login(&options, &credential, json!({"session": "token"}))
        .await;
    let (status, body) = crate::helpers::status_and_json(refused).await;
    crate::helpers::assert_error(status, &body, 400, "user_verification_missing");
}
