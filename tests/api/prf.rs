//! The WebAuthn `prf` extension: registration asks for it and records what
//! the browser says, login options carry salts, and the outputs never reach
//! the service.

use diesel::RunQueryDsl as _;
use serde_json::{json, Value};

use crate::helpers::authenticator::{b64, strip_prf_results, unb64};
use crate::helpers::{assert_error, spawn_app, spawn_app_with, Auth, Authenticator, TestApp};

async fn ask_options(app: &TestApp, body: Value) -> (u16, Value) {
    app.post_json("/passkeys/login/options", &Auth::None, &body)
        .await
}

async fn login_options(app: &TestApp, body: Value) -> Value {
    let (status, options) = ask_options(app, body).await;
    assert_eq!(status, 200, "{options}");
    options
}

#[tokio::test]
async fn registration_asks_for_prf_and_the_list_says_which_passkeys_can() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    assert_eq!(options["publicKey"]["extensions"]["prf"], json!({}));

    let mut with_prf = Authenticator::with_prf();
    let added = app.register_passkey(&auth, &mut with_prf).await;
    assert_eq!(added["prf_enabled"], true, "{added}");
    // Without PRF support the browser answers `enabled: false`.
    let mut without = Authenticator::new();
    let added = app.register_passkey(&auth, &mut without).await;
    assert_eq!(added["prf_enabled"], false, "{added}");
    // A browser that says nothing: unknown.
    let options = app.registration_options(&auth).await;
    let mut silent = Authenticator::new();
    let mut credential = silent.register(&options);
    credential["extensions"]
        .as_object_mut()
        .expect("extensions")
        .remove("prf");
    let (status, added) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["prf_enabled"], Value::Null);

    let list = app.passkey_list(&auth).await;
    let said: Vec<Value> = list
        .as_array()
        .expect("passkeys")
        .iter()
        .map(|p| p["prf_enabled"].clone())
        .collect();
    // Newest first.
    assert_eq!(said, vec![Value::Null, json!(false), json!(true)]);

    let off = spawn_app_with(|s| s.webauthn.prf = false).await;
    let (_, auth) = off.signed_in_user().await;
    let options = off.registration_options(&auth).await;
    assert!(
        options["publicKey"]["extensions"].get("prf").is_none(),
        "{options}"
    );
    let (status, body) = ask_options(&off, json!({"prf": {"eval": {"first": "AQID"}}})).await;
    assert_error(status, &body, 400, "prf_disabled");
}

#[tokio::test]
async fn login_options_carry_the_applications_salts_or_each_passkeys_own() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::with_prf();
    let added = app.register_passkey(&auth, &mut authenticator).await;

    let salt = b64(b"note key v1");
    let second = b64(&[9u8; 64]);
    let options = login_options(
        &app,
        json!({"prf": {"eval": {"first": salt, "second": second}}}),
    )
    .await;
    assert_eq!(
        options["publicKey"]["extensions"]["prf"],
        json!({"eval": {"first": salt, "second": second}})
    );

    // Per-passkey salts: kept by the service, the same at every login.
    let body = json!({"identifier": user.email, "prf": {"by_credential": true}});
    let first = login_options(&app, body.clone()).await;
    let again = login_options(&app, body).await;
    let by_credential = &first["publicKey"]["extensions"]["prf"]["evalByCredential"];
    let own = &by_credential[added["credential_id"].as_str().expect("id")]["first"];
    assert_eq!(unb64(own).len(), 32, "{first}");
    assert_eq!(
        by_credential,
        &again["publicKey"]["extensions"]["prf"]["evalByCredential"]
    );
    assert_eq!(by_credential.as_object().expect("map").len(), 1);

    // The authenticator evaluates the passkey's own salt.
    let credential = authenticator.login(&first);
    let results = &credential["extensions"]["prf"]["results"];
    let secret = authenticator.credentials[0].prf_secret.expect("secret");
    assert_eq!(
        unb64(&results["first"]),
        crate::helpers::authenticator::prf_output(&secret, &unb64(own))
    );

    for (body, status, id) in [
        (
            json!({"prf": {"by_credential": true}}),
            400,
            "prf_needs_identifier",
        ),
        (
            json!({"prf": {"eval": {"first": "no padding=="}}}),
            400,
            "prf_salt_invalid",
        ),
        (
            json!({"prf": {"eval": {"first": ""}}}),
            400,
            "prf_salt_invalid",
        ),
        (
            json!({"prf": {"eval": {"first": b64(&[1u8; 65])}}}),
            400,
            "prf_salt_invalid",
        ),
        (
            json!({"prf": {"eval": {"first": "AQ", "second": "+/"}}}),
            400,
            "prf_salt_invalid",
        ),
        (json!({"prf": {}}), 400, "prf_salt_invalid"),
        (
            json!({"prf": {"eval": {"first": "AQ", "third": "AQ"}}}),
            400,
            "malformed_request",
        ),
    ] {
        let (got, answer) = ask_options(&app, body.clone()).await;
        assert_error(got, &answer, status, id);
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}: {answer}"
        );
    }
}

/// Every row of every table as text, to look for what must not be stored.
fn everything_stored(app: &TestApp) -> String {
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    let mut conn = app.db();
    let tables: Vec<Text> = diesel::sql_query(
        "SELECT table_name::text AS text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .load(&mut conn)
    .expect("tables");
    let mut all = String::new();
    for table in tables {
        let rows: Vec<Text> = diesel::sql_query(format!(
            "SELECT row_to_json(t)::text AS text FROM \"{}\" t",
            table.text
        ))
        .load(&mut conn)
        .expect("rows");
        for row in rows {
            all.push_str(&row.text);
            all.push('\n');
        }
    }
    all
}

#[tokio::test]
async fn credentials_carrying_prf_outputs_are_refused_and_nothing_keeps_them() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::with_prf();

    // A registration whose client reports outputs (as a browser does when
    // `eval` was given at creation) is refused, and stores nothing.
    let options = app.registration_options(&auth).await;
    let mut credential = authenticator.register(&options);
    credential["extensions"]["prf"]["results"] = json!({"first": b64(&[5u8; 32])});
    app.refused_registration(&auth, &options, &credential, 400, "prf_output_present")
        .await;
    // The same ceremony finishes once they are stripped.
    strip_prf_results(&mut credential);
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");

    let options = login_options(
        &app,
        json!({"identifier": user.email, "prf": {"eval": {"first": b64(b"vault")}, "by_credential": true}}),
    )
    .await;
    let mut assertion = authenticator.login(&options);
    let output = assertion["extensions"]["prf"]["results"]["first"]
        .as_str()
        .expect("prf output")
        .to_string();
    let minted = "SELECT count(*) AS count FROM minted_sessions";
    let response = app.verify_login(&options, &assertion, json!({})).await;
    let (status, body) = crate::helpers::status_and_json(response).await;
    assert_error(status, &body, 400, "prf_output_present");
    assert_eq!(app.count(minted), 0, "nothing minted");
    // Also under the browser's own name for them.
    let mut renamed = assertion.clone();
    let results = renamed
        .as_object_mut()
        .expect("object")
        .remove("extensions")
        .expect("extensions");
    renamed["clientExtensionResults"] = results;
    let response = app.verify_login(&options, &renamed, json!({})).await;
    let (status, body) = crate::helpers::status_and_json(response).await;
    assert_error(status, &body, 400, "prf_output_present");

    strip_prf_results(&mut assertion);
    let response = app
        .verify_login(&options, &assertion, json!({"session": "token"}))
        .await;
    let (status, body) = crate::helpers::status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    app.eventually_count(
        "SELECT count(*) AS count FROM minted_sessions WHERE state = 'resolved'",
        1,
    )
    .await;

    let stored = everything_stored(&app);
    let hex: String = unb64(&json!(output))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(stored.contains("prf_salt"), "the dump covers the passkeys");
    assert!(!stored.contains(&output), "a PRF output was stored");
    assert!(!stored.contains(&hex), "a PRF output was stored (hex)");
    assert!(!stored.contains(&b64(&[5u8; 32])));
}
