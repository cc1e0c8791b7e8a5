//! Related origins (`/.well-known/webauthn`) and native app origins: a
//! login from a configured one succeeds, from any other origin it is
//! refused with `origin_mismatch`, and a bad configuration stops start-up.

use serde_json::{json, Value};

use kratos_passkeys::startup::Application;

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, test_settings, Auth, Authenticator, TestApp,
};

const RELATED: &str = "https://shop.example.com";
const APP: &str = "android:apk-key-hash:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";

async fn spawn_with_related_origins() -> TestApp {
    spawn_app_with(|s| {
        s.webauthn.related_origins = vec![RELATED.into(), "https://example.co.uk".into()];
        s.webauthn.app_origins = vec![APP.into()];
    })
    .await
}

/// Signs for every origin these tests try, as a browser (or Android) would
/// once the origin is vouched for: the service is what must tell them apart.
fn vouching_authenticator() -> Authenticator {
    let mut authenticator = Authenticator::new();
    for origin in [
        RELATED,
        APP,
        "https://evil.example.net",
        "https://shop.example.com:8443",
        "android:apk-key-hash:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        authenticator.vouch_for_origin(origin);
    }
    authenticator
}

#[tokio::test]
async fn the_well_known_document_lists_the_related_origins() {
    let app = spawn_with_related_origins().await;
    let response = app
        .http
        .get(app.url("/.well-known/webauthn"))
        .send()
        .await
        .expect("well-known");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"origins": [RELATED, "https://example.co.uk"]}),
        "web origins only: an app origin is not the browser's business"
    );

    let unconfigured = spawn_app().await;
    let (status, body) = unconfigured
        .get_json("/.well-known/webauthn", &Auth::None)
        .await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn logins_from_a_related_origin_and_an_app_succeed_and_others_are_refused() {
    let app = spawn_with_related_origins().await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = vouching_authenticator();
    app.register_passkey(&auth, &mut authenticator).await;

    for origin in [RELATED, APP] {
        let (status, body) = app.login_from_origin(&mut authenticator, origin).await;
        assert_eq!(status, 200, "{origin}: {body}");
        assert_eq!(body["identity_id"], user.id.to_string(), "{origin}");
        let token = body["session_token"].as_str().expect("token");
        assert_eq!(app.kratos.whoami_token(token).await.0, 200, "{origin}");
    }
    for origin in [
        "https://evil.example.net",
        "https://shop.example.com:8443",
        "android:apk-key-hash:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (status, body) = app.login_from_origin(&mut authenticator, origin).await;
        assert_error(status, &body, 400, "origin_mismatch");
    }

    // Without the configuration, the same origins are refused.
    let plain = spawn_app().await;
    let (_, auth) = plain.signed_in_user().await;
    let mut authenticator = vouching_authenticator();
    plain.register_passkey(&auth, &mut authenticator).await;
    for origin in [RELATED, APP] {
        let (status, body) = plain.login_from_origin(&mut authenticator, origin).await;
        assert_error(status, &body, 400, "origin_mismatch");
    }
}

#[tokio::test]
async fn a_related_origin_registers_too() {
    let app = spawn_with_related_origins().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = vouching_authenticator().register_with(&options, RELATED, |_| {});
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_bad_origin_configuration_stops_start_up_with_a_clear_error() {
    let six: Vec<String> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|label| format!("https://{label}.com"))
        .collect();
    let cases: [(Vec<String>, Vec<String>, &str); 3] = [
        (vec!["shop example com".into()], vec![], "is not a URL"),
        (six, vec![], "6 registrable domains"),
        (
            vec![],
            vec!["android:apk-key-hash:short".into()],
            "android:apk-key-hash:",
        ),
    ];
    for (related, apps, said) in cases {
        let mut settings = test_settings("postgres://unused@127.0.0.1:1/unused");
        settings.webauthn.related_origins = related;
        settings.webauthn.app_origins = apps;
        let error = match Application::build(settings).await {
            Ok(_) => panic!("started with a bad origin configuration"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains(said), "{said:?} not in {error:?}");
    }
}
