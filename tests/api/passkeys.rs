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
