//! Secrets never reach the logs: a full registration and login (both session
//! deliveries) and a webhook call, against the real binary with debug
//! logging, then the captured logs are searched for every secret involved.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::helpers::kratos::session_cookie;
use crate::helpers::{
    binary, create_database, kratos_admin_url, status_and_json, Auth, Authenticator,
};

/// Forwards to Kratos's admin API and remembers every answer, so the test
/// learns the recovery codes the service received.
async fn recording_proxy(seen: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let seen = seen.clone();
            async move {
                let url = format!(
                    "{}{}",
                    kratos_admin_url().as_str().trim_end_matches('/'),
                    req.uri()
                );
                let answer = reqwest::Client::new()
                    .request(req.method().as_str().parse().expect("method"), url)
                    .header("Content-Type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await
                    .expect("Kratos admin");
                let status = answer.status().as_u16();
                let text = answer.text().await.expect("body");
                seen.lock().expect("seen").push(text.clone());
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
                    .content_type("application/json")
                    .body(text)
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    port
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = recording_proxy(seen.clone()).await;
    let (_, database_url) = create_database();
    let log_path = std::env::temp_dir().join(format!(
        "kratos-passkeys-secrets-{}.log",
        uuid::Uuid::new_v4()
    ));
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let (public, admin) = (binary::free_port(), binary::free_port());
    let webhook_key = "test-webhook-key-that-must-not-leak-7d1e";
    let mut child = binary::serve(&database_url, public, admin)
        .env("RUST_LOG", "debug")
        .env(
            "KRATOS_PASSKEYS__KRATOS__ADMIN_URL",
            format!("http://127.0.0.1:{proxy}/"),
        )
        .env("KRATOS_PASSKEYS__WEBHOOK__API_KEY", webhook_key)
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .expect("start the service");
    let mut app = binary::ready(&database_url, public, admin).await;
    app.settings.webhook.api_key = webhook_key.to_string().into();
    let kratos = app.kratos.clone();
    // The webhook, with its key.
    let hook = app
        .http
        .post(app.admin_url("/hooks/kratos/after-registration"))
        .header("X-Webhook-Key", webhook_key)
        .json(&json!({"identity_id": uuid::Uuid::new_v4(), "traits": {}}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(hook.status(), 204);

    // Registration with a token session, listing with a cookie session.
    let user = kratos.create_user().await;
    let user_token = kratos.login_token(&user).await;
    let user_cookie = kratos.login_cookie(&user).await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&Auth::Token(user_token.clone()), &mut authenticator)
        .await;
    assert_eq!(
        app.get_json("/passkeys", &Auth::Cookie(user_cookie.clone()))
            .await
            .0,
        200
    );

    // Logins in both deliveries.
    let mut minted = Vec::new();
    for delivery in ["token", "cookie"] {
        let (_, options) = app
            .post_json("/passkeys/login/options", &Auth::None, &json!({}))
            .await;
        let credential = authenticator.login(&options);
        let response = app
            .http
            .post(app.url("/passkeys/login/verify"))
            .json(&json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": delivery}))
            .send()
            .await
            .expect("verify");
        if let Some(cookie) = session_cookie(&response) {
            minted.push(cookie);
        }
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 200, "{body}");
        if let Some(token) = body["session_token"].as_str() {
            minted.push(token.to_string());
        }
    }
    assert_eq!(minted.len(), 2, "a token and a cookie were minted");

    child.kill().expect("stop");
    let _ = child.wait();
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    let _ = std::fs::remove_file(&log_path);
    let codes: Vec<String> = seen
        .lock()
        .expect("seen")
        .iter()
        .filter_map(|body| serde_json::from_str::<Value>(body).ok())
        .filter_map(|body| body["recovery_code"].as_str().map(str::to_string))
        .collect();
    assert_eq!(codes.len(), 2, "two recovery codes were issued");

    assert!(logs.lines().count() > 20, "debug logging was on:\n{logs}");
    assert!(logs.contains("passkey login minted a Kratos session"));
    let mut secrets = vec![
        ("the webhook key", webhook_key.to_string()),
        ("the caller's session token", user_token),
        ("the caller's session cookie", user_cookie),
    ];
    secrets.extend(minted.into_iter().map(|m| ("a minted session", m)));
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret.as_str()), "{what} is in the logs");
    }
    for code in &codes {
        assert!(
            !contains_number(&logs, code),
            "a recovery code is in the logs"
        );
    }
    // Recovery codes are short digits: make sure no line mentions one at all.
    assert!(
        !logs.contains("recovery_code"),
        "a recovery code field is in the logs"
    );
}

/// Whether `number` stands alone in `text` (not inside a longer number or a
/// timestamp's fraction of a second).
fn contains_number(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + number.len()..].chars().next();
        let joined = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        !joined(before) && !joined(after)
    })
}

#[test]
fn numbers_are_matched_alone() {
    assert!(contains_number("code=405452 sent", "405452"));
    assert!(!contains_number("at 19:04:16.405452Z", "405452"));
    assert!(!contains_number("id 1405452", "405452"));
}
