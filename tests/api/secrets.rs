//! Secrets never reach the logs: a full registration and login (both session
//! deliveries) and a webhook call, against the real binary with debug
//! logging, then the captured logs are searched for every secret involved.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use kratos_passkeys::ceremony_keys::{decode_key, DEVELOPMENT_KEY};
use kratos_passkeys::configuration::{Environment, Settings, WebhookSettings};
use kratos_passkeys::startup::Application;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::kratos::session_cookie;
use crate::helpers::{
    assert_error, binary, create_database, kratos_admin_url, status_and_json, test_settings, Auth,
    Authenticator,
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
    let webhook_key = "test-webhook-key-that-must-not-leak-7d1e";
    let mut command = binary::serve(&database_url);
    command
        .env("RUST_LOG", "debug")
        .env(
            "KRATOS_PASSKEYS__KRATOS__ADMIN_URL",
            format!("http://127.0.0.1:{proxy}/"),
        )
        .env("KRATOS_PASSKEYS__WEBHOOK__API_KEY", webhook_key);
    let (mut served, mut app) = binary::Served::start(command, &database_url).await;
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

    served.kill();
    let logs = served.log();
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
    // Recovery codes are short digits: no line may carry one as a field
    // (the spans of the calls that create and redeem one are named after
    // them, `kratos create_recovery_code`, and that is all).
    for field in ["recovery_code=", "\"recovery_code\"", "recovery_code:"] {
        assert!(
            !logs.contains(field),
            "a recovery code field ({field}) is in the logs"
        );
    }
}

/// Keys of this deployment's own, unlike the development ones.
const OWN_CEREMONY_KEY: &str = "b3VyIG93biBjZXJlbW9ueSBrZXksIDMyIGJ5dGVzISE=";
const OWN_WEBHOOK_KEY: &str = "our-own-webhook-key-5f0c2b9e";
const ADMIN_KEY: &str = "operations-admin-token-42b7e1";

/// The test settings in production, with keys of its own and the admin
/// listener on loopback: what each test then spoils is the only refusal.
fn production_settings() -> Settings {
    let (_, database_url) = create_database();
    let mut settings = test_settings(&database_url);
    settings.environment = Environment::Production;
    settings.ceremonies.keys = vec![SecretString::from(OWN_CEREMONY_KEY.to_string())];
    settings.webhook.api_key = SecretString::from(OWN_WEBHOOK_KEY.to_string());
    settings.admin.host = "127.0.0.1".into();
    settings
}

/// The start-up error, all of its causes.
async fn refusal(settings: Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("the service started"),
        Err(error) => format!("{error:#}"),
    }
}

async fn starts(settings: Settings) {
    if let Err(error) = Application::build(settings).await {
        panic!("the service refused to start: {error:#}");
    }
}

#[tokio::test]
async fn production_refuses_the_development_ceremony_key_in_every_spelling() {
    starts(production_settings()).await;
    let bytes = decode_key(DEVELOPMENT_KEY).expect("the development key decodes");
    let mut spellings: Vec<String> = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .map(|engine| engine.encode(bytes))
        .collect();
    spellings.push(format!("  {DEVELOPMENT_KEY}\n"));
    assert!(spellings.contains(&DEVELOPMENT_KEY.to_string()));
    assert!(spellings.contains(&DEVELOPMENT_KEY.trim_end_matches('=').to_string()));
    for spelling in spellings {
        // First, or second behind a key of our own: either is refused.
        for keys in [
            vec![spelling.clone()],
            vec![OWN_CEREMONY_KEY.to_string(), spelling.clone()],
        ] {
            let at = keys.len() - 1;
            let mut settings = production_settings();
            settings.ceremonies.keys = keys.into_iter().map(SecretString::from).collect();
            let error = refusal(settings).await;
            assert!(
                error.contains(&format!("ceremonies.keys[{at}] is the development key")),
                "{spelling:?}: {error}"
            );
            assert!(!error.contains(&spelling), "the error quotes the key");
        }
    }
}

#[tokio::test]
async fn production_refuses_the_development_webhook_key() {
    for key in [
        WebhookSettings::DEVELOPMENT_API_KEY.to_string(),
        format!("{}\n", WebhookSettings::DEVELOPMENT_API_KEY),
    ] {
        let mut settings = production_settings();
        settings.webhook.api_key = SecretString::from(key);
        let error = refusal(settings).await;
        assert!(
            error.contains("webhook.api_key is the development key"),
            "{error}"
        );
    }
    // Outside production it is what the development stack runs with.
    let mut local = production_settings();
    local.environment = Environment::Local;
    local.webhook.api_key = SecretString::from(WebhookSettings::DEVELOPMENT_API_KEY.to_string());
    starts(local).await;
}

#[tokio::test]
async fn production_refuses_an_unprotected_admin_listener_beyond_loopback() {
    let exposed = || {
        let mut settings = production_settings();
        settings.admin.host = "0.0.0.0".into();
        settings
    };
    let error = refusal(exposed()).await;
    assert!(
        error.contains("admin listener would listen on 0.0.0.0")
            && error.contains("admin.api_keys")
            && error.contains("admin.allow_unauthenticated"),
        "{error}"
    );
    // Each way out: a token, or the network's word for it.
    let mut with_token = exposed();
    with_token.admin.api_keys = vec![SecretString::from(ADMIN_KEY.to_string())];
    starts(with_token).await;
    let mut network = exposed();
    network.admin.allow_unauthenticated = true;
    starts(network).await;
    // Outside production nothing is asked.
    let mut local = exposed();
    local.environment = Environment::Local;
    starts(local).await;
}

/// Waits for the process to exit (it must, within 20 s) and answers what
/// it wrote.
async fn exits_refusing(mut command: std::process::Command) -> String {
    let log = std::env::temp_dir().join(format!(
        "kratos-passkeys-refusal-{}.log",
        uuid::Uuid::new_v4()
    ));
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = command
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("start the service");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the service did not refuse to start");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let output = std::fs::read_to_string(&log).expect("log");
    let _ = std::fs::remove_file(&log);
    assert!(!status.success(), "{output}");
    output
}

/// The binary itself, configured through the environment as a deployment
/// is: each refusal is a clear start-up error, and admin.api_keys comes
/// through a comma-separated variable.
#[tokio::test]
async fn the_binary_refuses_development_keys_and_an_open_admin_listener_in_production() {
    let (_, database_url) = create_database();
    let production = |ceremony_key: &str, webhook_key: &str| {
        let mut command = binary::serve(&database_url);
        command
            .env("KRATOS_PASSKEYS_ENVIRONMENT", "production")
            .env("KRATOS_PASSKEYS__CEREMONIES__KEYS", ceremony_key)
            .env("KRATOS_PASSKEYS__WEBHOOK__API_KEY", webhook_key);
        command
    };
    let on_loopback = |mut command: std::process::Command| {
        command.env("KRATOS_PASSKEYS__ADMIN__HOST", "127.0.0.1");
        command
    };
    let unpadded = DEVELOPMENT_KEY.trim_end_matches('=');
    let output = exits_refusing(on_loopback(production(unpadded, OWN_WEBHOOK_KEY))).await;
    assert!(
        output.contains("ceremonies.keys[0] is the development key"),
        "{output}"
    );
    let output = exits_refusing(on_loopback(production(
        OWN_CEREMONY_KEY,
        WebhookSettings::DEVELOPMENT_API_KEY,
    )))
    .await;
    assert!(
        output.contains("webhook.api_key is the development key"),
        "{output}"
    );
    // config/production.yaml listens on every interface.
    let output = exits_refusing(production(OWN_CEREMONY_KEY, OWN_WEBHOOK_KEY)).await;
    assert!(
        output.contains("admin listener would listen on 0.0.0.0"),
        "{output}"
    );

    let rotated = "next-operations-admin-token-9d";
    let mut command = production(OWN_CEREMONY_KEY, OWN_WEBHOOK_KEY);
    command.env(
        "KRATOS_PASSKEYS__ADMIN__API_KEYS",
        format!("{ADMIN_KEY},{rotated}"),
    );
    let (mut served, app) = binary::Served::start(command, &database_url).await;
    let metrics = |bearer: Option<&str>| {
        let mut request = app.http.get(app.admin_url("/metrics"));
        if let Some(key) = bearer {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let (status, body) = status_and_json(metrics(None).await.expect("metrics")).await;
    assert_error(status, &body, 401, "admin_unauthorized");
    for key in [ADMIN_KEY, rotated] {
        assert_eq!(metrics(Some(key)).await.expect("metrics").status(), 200);
    }
    served.kill();
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
