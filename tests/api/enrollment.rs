//! The seed scenario without a browser, Kratos's after-registration webhook,
//! and the post-registration passkey offer.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::kratos::new_email;
use crate::helpers::{
    assert_error, hold_webhook_port, spawn_app, spawn_app_with, webhook_port, Auth, Authenticator,
    TestApp,
};

async fn enrollment(app: &TestApp, auth: &Auth) -> Value {
    let (status, body) = app.get_json("/passkeys/enrollment", auth).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Register with a password through Kratos, then add a passkey at once with
/// the session registration issued: no 403. Kratos really called the
/// webhook, so the passkey was offered.
#[tokio::test]
async fn register_then_add_a_passkey_right_away() {
    // Kratos's webhook goes to a fixed port; only this test listens there.
    let _port = hold_webhook_port().await;
    let app = spawn_app_with(|s| s.admin.port = webhook_port()).await;
    let (identity, token) = app.kratos.register_api(&new_email()).await;
    let auth = Auth::Token(token);

    // The webhook is asynchronous in Kratos (response.ignore), so wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let offer = loop {
        let body = enrollment(&app, &auth).await;
        if body["offer"] == true || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        offer,
        json!({"offer": true, "passkeys": 0}),
        "Kratos called the webhook"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM identities WHERE identity_id = '{identity}' AND registered_at IS NOT NULL"
        )),
        1
    );

    let passkey = app.register_passkey(&auth, &mut Authenticator::new()).await;
    assert_eq!(passkey["name"], "Passkey");
    assert_eq!(
        enrollment(&app, &auth).await,
        json!({"offer": false, "passkeys": 1})
    );
}

#[tokio::test]
async fn skip_for_now_withdraws_the_offer() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    deliver_webhook(
        &app,
        &app.settings.webhook.header.clone(),
        &app.webhook_key(),
        user.id,
    )
    .await;
    assert_eq!(enrollment(&app, &auth).await["offer"], true);
    let (status, _) = app
        .post_json("/passkeys/enrollment/dismiss", &auth, &json!({}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        enrollment(&app, &auth).await,
        json!({"offer": false, "passkeys": 0})
    );
    // Adding a passkey later still works.
    app.register_passkey(&auth, &mut Authenticator::new()).await;
}

#[tokio::test]
async fn identities_without_a_webhook_work_the_same() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    assert_eq!(
        enrollment(&app, &auth).await,
        json!({"offer": false, "passkeys": 0})
    );
    app.register_passkey(&auth, &mut Authenticator::new()).await;
    assert_eq!(
        enrollment(&app, &auth).await,
        json!({"offer": false, "passkeys": 1})
    );

    let offering = spawn_app_with(|s| s.enrollment.offer_existing_identities = true).await;
    let (_, auth) = offering.signed_in_user().await;
    assert_eq!(
        enrollment(&offering, &auth).await,
        json!({"offer": true, "passkeys": 0})
    );
}

async fn deliver_webhook(
    app: &TestApp,
    header: &str,
    key: &str,
    identity: uuid::Uuid,
) -> (u16, Value) {
    let response = app
        .http
        .post(app.admin_url("/hooks/kratos/after-registration"))
        .header(header, key)
        .json(&json!({"identity_id": identity, "traits": {"email": "x@example.test"}}))
        .send()
        .await
        .expect("webhook");
    crate::helpers::status_and_json(response).await
}

#[tokio::test]
async fn the_webhook_needs_its_key() {
    let app = spawn_app().await;
    let identity = uuid::Uuid::new_v4();
    let header = app.settings.webhook.header.clone();
    for (name, key) in [
        (header.as_str(), "wrong"),
        (header.as_str(), ""),
        ("X-Other", app.webhook_key().as_str()),
    ] {
        let (status, body) = deliver_webhook(&app, name, key, identity).await;
        assert_error(status, &body, 401, "webhook_unauthorized");
    }
    assert_eq!(app.count("SELECT count(*) AS count FROM identities"), 0);
}

#[tokio::test]
async fn the_webhook_is_idempotent() {
    let app = spawn_app().await;
    let identity = uuid::Uuid::new_v4();
    let header = app.settings.webhook.header.clone();
    let key = app.webhook_key();
    assert_eq!(deliver_webhook(&app, &header, &key, identity).await.0, 204);
    let first = app.count(&format!(
        "SELECT extract(epoch FROM registered_at)::bigint AS count FROM identities WHERE identity_id = '{identity}'"
    ));
    assert_eq!(deliver_webhook(&app, &header, &key, identity).await.0, 204);
    assert_eq!(app.count("SELECT count(*) AS count FROM identities"), 1);
    let second = app.count(&format!(
        "SELECT extract(epoch FROM registered_at)::bigint AS count FROM identities WHERE identity_id = '{identity}'"
    ));
    assert_eq!(first, second);
}

#[tokio::test]
async fn the_webhook_refuses_bad_bodies() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.admin_url("/hooks/kratos/after-registration"))
        .header(app.settings.webhook.header.as_str(), app.webhook_key())
        .json(&json!({"identity_id": "not-a-uuid"}))
        .send()
        .await
        .expect("webhook");
    let (status, body) = crate::helpers::status_and_json(response).await;
    assert_error(status, &body, 400, "malformed_request");
    assert_eq!(app.count("SELECT count(*) AS count FROM identities"), 0);
}
