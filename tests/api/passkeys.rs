//! `GET /passkeys` and the Kratos session validation every endpoint relies on.

use std::time::Duration;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Auth};

#[tokio::test]
async fn a_valid_token_reaches_the_list() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let (status, body) = app.get_json("/passkeys", &auth).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["passkeys"], serde_json::json!([]));
}

#[tokio::test]
async fn a_bearer_token_reaches_the_list() {
    let app = spawn_app().await;
    let (user, _) = app.signed_in_user().await;
    let token = app.kratos.login_token(&user).await;
    let response = app
        .http
        .get(app.url("/passkeys"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_valid_cookie_reaches_the_list() {
    let app = spawn_app().await;
    let user = app.kratos.create_user().await;
    let cookie = app.kratos.login_cookie(&user).await;
    let (status, body) = app.get_json("/passkeys", &Auth::Cookie(cookie)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["passkeys"], serde_json::json!([]));
}

#[tokio::test]
async fn a_missing_session_is_refused() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/passkeys", &Auth::None).await;
    assert_error(status, &body, 401, "session_required");
}

#[tokio::test]
async fn malformed_sessions_are_refused() {
    let app = spawn_app().await;
    for auth in [
        Auth::Token("not-a-token".into()),
        Auth::Token("ory_st_0000000000000000000000000000000".into()),
        Auth::Cookie("garbage%%%".into()),
    ] {
        let (status, body) = app.get_json("/passkeys", &auth).await;
        assert_error(status, &body, 401, "session_required");
    }
}

#[tokio::test]
async fn a_revoked_session_is_refused() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let Auth::Token(token) = &auth else {
        unreachable!()
    };
    assert_eq!(app.get_json("/passkeys", &auth).await.0, 200);
    app.kratos.revoke_token(token).await;
    let (status, body) = app.get_json("/passkeys", &auth).await;
    assert_error(status, &body, 401, "session_required");
}

#[tokio::test]
async fn kratos_unreachable_is_503() {
    let app = spawn_app_with(|s| {
        s.kratos.public_url = url::Url::parse("http://127.0.0.1:1/").expect("url");
    })
    .await;
    let (status, body) = app
        .get_json("/passkeys", &Auth::Token("ory_st_whatever".into()))
        .await;
    assert_error(status, &body, 503, "kratos_unavailable");
}

/// A listener that accepts connections and never answers: a Kratos that hangs.
async fn hanging_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test]
async fn kratos_timing_out_is_503_within_the_timeout() {
    let port = hanging_server().await;
    let app = spawn_app_with(|s| {
        s.kratos.public_url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
        s.kratos.request_timeout = Duration::from_millis(500);
    })
    .await;
    // Without its timeout the call would hang as long as the server holds
    // the socket; the bound is 20× the timeout, so a loaded machine cannot
    // break it while a hang still fails it.
    let bound = app.settings.kratos.request_timeout * 20;
    let (status, body) = tokio::time::timeout(
        bound,
        app.get_json("/passkeys", &Auth::Token("ory_st_whatever".into())),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer within {bound:?}: the Kratos call hangs"));
    assert_error(status, &body, 503, "kratos_unavailable");
}

// Authenticator icons: the list carries their URLs, the public listener
// serves them, and the all-zero AAGUID (the software authenticator's) gets
// the neutral key.

const GOOGLE_PASSWORD_MANAGER: &str = "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4";

/// The passkeys of a `GET /passkeys` answer, whether it is the list itself
/// or an object holding it.
fn listed(body: &serde_json::Value) -> Vec<serde_json::Value> {
    body.as_array()
        .or_else(|| body["passkeys"].as_array())
        .unwrap_or_else(|| panic!("no passkeys in {body}"))
        .clone()
}

async fn icon(
    app: &crate::helpers::TestApp,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = app.http.get(app.url(path)).send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test]
async fn a_listed_passkey_carries_its_icons_and_an_unknown_one_has_the_neutral_key() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = crate::helpers::Authenticator::new();
    let registered = app.register_passkey(&auth, &mut authenticator).await;
    let aaguid = registered["aaguid"].as_str().expect("aaguid").to_string();
    assert_eq!(
        aaguid,
        uuid::Uuid::nil().to_string(),
        "the software authenticator's"
    );
    let (status, body) = app.get_json("/passkeys", &auth).await;
    assert_eq!(status, 200, "{body}");
    let passkeys = listed(&body);
    assert_eq!(passkeys.len(), 1, "{body}");
    assert_eq!(passkeys[0]["authenticator"], serde_json::Value::Null);
    let light = format!("/passkeys/authenticators/{aaguid}/icon/light");
    let dark = format!("/passkeys/authenticators/{aaguid}/icon/dark");
    assert_eq!(
        passkeys[0]["icon"],
        serde_json::json!({"light": light, "dark": dark})
    );
    assert_eq!(
        registered["icon"], passkeys[0]["icon"],
        "the registration answer too"
    );

    let mut neutral = Vec::new();
    for path in [&light, &dark] {
        let (status, headers, bytes) = icon(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), "image/svg+xml");
        assert_eq!(header(&headers, "cache-control"), "public, max-age=86400");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        let policy = header(&headers, "content-security-policy");
        assert!(
            policy.contains("default-src 'none'") && policy.contains("sandbox"),
            "{policy}"
        );
        let text = String::from_utf8(bytes).expect("an SVG is text");
        assert!(text.starts_with("<svg"), "{text}");
        neutral.push(text);
    }
    assert_ne!(neutral[0], neutral[1], "a key for each background");
    // Any AAGUID the list does not know gets the same neutral key.
    let unknown = uuid::Uuid::new_v4();
    let (status, _, bytes) = icon(
        &app,
        &format!("/passkeys/authenticators/{unknown}/icon/light"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(bytes).expect("text"), neutral[0]);
}

#[tokio::test]
async fn a_known_authenticator_has_its_name_and_icon() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = crate::helpers::Authenticator::new();
    let registered = app.register_passkey(&auth, &mut authenticator).await;
    // The software authenticator's AAGUID is all-zero: the stored passkey
    // is made Google Password Manager's.
    {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE passkeys SET aaguid = '{GOOGLE_PASSWORD_MANAGER}' WHERE id = '{}'",
            registered["id"].as_str().expect("id")
        ))
        .execute(&mut app.db())
        .expect("update");
    }
    let (status, body) = app.get_json("/passkeys", &auth).await;
    assert_eq!(status, 200, "{body}");
    let passkey = &listed(&body)[0];
    assert_eq!(passkey["authenticator"], "Google Password Manager");
    let path = passkey["icon"]["light"].as_str().expect("light icon");
    assert_eq!(
        path,
        format!("/passkeys/authenticators/{GOOGLE_PASSWORD_MANAGER}/icon/light")
    );
    let (status, headers, bytes) = icon(&app, path).await;
    assert_eq!(status, 200);
    let (_, _, neutral) = icon(
        &app,
        &format!("/passkeys/authenticators/{}/icon/light", uuid::Uuid::nil()),
    )
    .await;
    assert_ne!(bytes, neutral, "Google's own icon");
    let expected = kratos_passkeys::aaguid::authenticator_icon(
        GOOGLE_PASSWORD_MANAGER.parse().expect("uuid"),
        kratos_passkeys::aaguid::Theme::Light,
    );
    assert_eq!(header(&headers, "content-type"), expected.content_type);
    assert_eq!(bytes, expected.bytes.as_ref());

    // A PNG one is served as a PNG, without the SVG's policy.
    let png = "50a45b0c-80e7-f944-bf29-f552bfa2e048"; // ACS FIDO Authenticator
    let (status, headers, bytes) =
        icon(&app, &format!("/passkeys/authenticators/{png}/icon/dark")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(bytes.starts_with(b"\x89PNG"));
    assert!(headers.get("content-security-policy").is_none());
}

#[tokio::test]
async fn a_bad_theme_or_aaguid_is_not_found() {
    let app = spawn_app().await;
    for path in [
        format!("/passkeys/authenticators/{GOOGLE_PASSWORD_MANAGER}/icon/purple"),
        format!("/passkeys/authenticators/{GOOGLE_PASSWORD_MANAGER}/icon/Light"),
        "/passkeys/authenticators/not-a-uuid/icon/light".to_string(),
        format!("/passkeys/authenticators/{GOOGLE_PASSWORD_MANAGER}/icon"),
    ] {
        let (status, body) = app.get_json(&path, &Auth::None).await;
        assert_error(status, &body, 404, "not_found");
    }
}

/// An identity with no password: Kratos's admin API makes it with traits
/// alone, and a session is minted for it the way a passkey login does.
async fn passwordless_user(app: &crate::helpers::TestApp) -> (uuid::Uuid, Auth) {
    use kratos_passkeys::domain::{IdentityId, SessionDelivery};
    use kratos_passkeys::kratos::{ClientContext, MintedCredential};
    use secrecy::ExposeSecret;

    let response = app
        .http
        .post(
            crate::helpers::kratos_admin_url()
                .join("admin/identities")
                .expect("url"),
        )
        .json(&serde_json::json!({
            "schema_id": "default",
            "traits": {"email": crate::helpers::kratos::new_email()},
        }))
        .send()
        .await
        .expect("create identity");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("identity");
    let id = uuid::Uuid::parse_str(body["id"].as_str().expect("id")).expect("uuid");
    let state = app.state.as_ref().expect("in-process app");
    let minted = state
        .kratos
        .mint_session(
            IdentityId::new(id),
            SessionDelivery::Token,
            &ClientContext::default(),
            &state.marker,
        )
        .await
        .map_err(|failure| failure.error)
        .expect("session minted");
    let MintedCredential::Token(token) = minted.credential else {
        panic!("a token was asked for");
    };
    (id, Auth::Token(token.expose_secret().to_string()))
}

async fn remove(
    app: &crate::helpers::TestApp,
    auth: &Auth,
    passkey: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let path = format!("/passkeys/{}", passkey["id"].as_str().expect("id"));
    crate::helpers::status_and_json(
        app.request(reqwest::Method::DELETE, &path, auth)
            .send()
            .await
            .expect("delete"),
    )
    .await
}

fn removed_events(app: &crate::helpers::TestApp, identity: uuid::Uuid) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS count FROM events WHERE type = 'passkey.removed' AND identity_id = '{identity}'"
    ))
}

#[tokio::test]
async fn the_last_passkey_of_a_passwordless_identity_is_kept() {
    let app = spawn_app().await;
    let (identity, auth) = passwordless_user(&app).await;
    let mut authenticator = crate::helpers::Authenticator::new();
    let first = app.register_passkey(&auth, &mut authenticator).await;
    let second = app.register_passkey(&auth, &mut authenticator).await;

    // Another passkey remains: the first goes.
    assert_eq!(remove(&app, &auth, &first).await.0, 204);
    // The last one is the only way in left.
    let (status, body) = remove(&app, &auth, &second).await;
    assert_error(status, &body, 409, "last_sign_in_method");
    assert_eq!(listed(&app.passkey_list(&auth).await).len(), 1);
    assert_eq!(removed_events(&app, identity), 1);

    // Support overrides it only when told to, and the removal is an event.
    let path = format!(
        "/admin/identities/{identity}/passkeys/{}",
        second["id"].as_str().expect("id")
    );
    let refused = app
        .http
        .delete(app.admin_url(&path))
        .send()
        .await
        .expect("delete");
    let (status, body) = crate::helpers::status_and_json(refused).await;
    assert_error(status, &body, 409, "last_sign_in_method");
    let forced = app
        .http
        .delete(app.admin_url(&format!("{path}?force=true")))
        .send()
        .await
        .expect("delete");
    assert_eq!(forced.status(), 204);
    assert_eq!(listed(&app.passkey_list(&auth).await).len(), 0);
    assert_eq!(removed_events(&app, identity), 2);
}

#[tokio::test]
async fn with_a_password_in_kratos_the_last_passkey_can_go() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let passkey = app
        .register_passkey(&auth, &mut crate::helpers::Authenticator::new())
        .await;
    assert_eq!(remove(&app, &auth, &passkey).await.0, 204);
    assert_eq!(listed(&app.passkey_list(&auth).await).len(), 0);
    assert_eq!(removed_events(&app, user.id), 1);
}

#[tokio::test]
async fn two_removals_of_the_last_two_passkeys_at_once_keep_one() {
    let app = spawn_app().await;
    let (_, auth) = passwordless_user(&app).await;
    let mut authenticator = crate::helpers::Authenticator::new();
    let first = app.register_passkey(&auth, &mut authenticator).await;
    let second = app.register_passkey(&auth, &mut authenticator).await;
    let (a, b) = tokio::join!(remove(&app, &auth, &first), remove(&app, &auth, &second));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 409]);
    assert_eq!(listed(&app.passkey_list(&auth).await).len(), 1);
}
