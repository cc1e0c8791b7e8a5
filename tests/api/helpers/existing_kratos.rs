//! The production-configured Kratos (`kratos/production/kratos.yml`, started
//! by scripts/test): TOTP with `highest_available`, its own session policy
//! and cookie, the HTTP courier, and its after-recovery web hook pointed at
//! the service's admin listener on a fixed port. Tests that use it take
//! `lock()` first: the hook port and the courier port are one per machine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use tokio::sync::MutexGuard;
use url::Url;
use uuid::Uuid;

use super::kratos::{Kratos, TestUser};
use super::{spawn_app_with, TestApp};
use kratos_passkeys::configuration::Settings;

/// Where its after-recovery web hook posts (the service's admin listener).
pub const HOOK_PORT: u16 = 18091;
/// Where its HTTP courier posts the messages it would have mailed.
pub const COURIER_PORT: u16 = 18093;
/// Its session cookie (not Kratos's default name).
pub const COOKIE: &str = "example_session";
/// Its `session.lifespan`.
pub const LIFESPAN: chrono::Duration = chrono::Duration::hours(720);

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test at a time on the fixed ports.
pub async fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().await
}

pub fn public_url() -> Url {
    super::env_url(
        "KRATOS_PASSKEYS_TEST_EXISTING_KRATOS_PUBLIC",
        "http://127.0.0.1:4833/",
    )
}

pub fn admin_url() -> Url {
    super::env_url(
        "KRATOS_PASSKEYS_TEST_EXISTING_KRATOS_ADMIN",
        "http://127.0.0.1:4834/",
    )
}

/// The service in front of it, its admin listener where the hook posts.
pub async fn spawn_app_beside(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let mut app = spawn_app_with(|s| {
        s.admin.port = HOOK_PORT;
        s.kratos.public_url = public_url();
        s.kratos.admin_url = admin_url();
        s.kratos.browser_url = Url::parse("http://localhost:4833/").expect("url");
        s.kratos.session_cookie_name = COOKIE.to_string();
        customise(s);
    })
    .await;
    app.kratos = Kratos::new(public_url(), admin_url());
    app.kratos.ensure_reachable().await;
    app
}

/// A real HTTP receiver that keeps every JSON body posted to it.
#[derive(Clone)]
pub struct Receiver {
    pub url: Url,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A request's `Authorization` header and JSON body.
type Received = (Option<String>, Value);

impl Receiver {
    /// On `port` (0: any free one), for as long as the test runs.
    pub fn start(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let server = HttpServer::new(move || {
            let kept = kept.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let kept = kept.clone();
                async move {
                    let authorization = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    kept.lock().expect("received").push((authorization, value));
                    HttpResponse::Ok().finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self {
            url: Url::parse(&format!("http://127.0.0.1:{port}/notify")).expect("url"),
            received,
        }
    }

    pub fn bodies(&self) -> Vec<Value> {
        let received = self.received.lock().expect("received");
        received.iter().map(|(_, body)| body.clone()).collect()
    }

    pub fn authorizations(&self) -> Vec<Option<String>> {
        let received = self.received.lock().expect("received");
        received.iter().map(|(auth, _)| auth.clone()).collect()
    }

    /// The bodies matching `f`, once there are `n` of them.
    pub async fn wait_for(&self, n: usize, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let found: Vec<Value> = self.bodies().into_iter().filter(|b| f(b)).collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} expected bodies arrived: {:?}",
                found.len(),
                self.bodies()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sets up TOTP for the session's identity through Kratos's settings API
/// flow; returns the secret.
pub async fn set_up_totp(kratos: &Kratos, token: &str) -> String {
    let flow = kratos.settings_flow(token).await;
    let secret = flow["ui"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["attributes"]["id"] == "totp_secret_key")
        .and_then(|n| n["attributes"]["text"]["text"].as_str())
        .unwrap_or_else(|| panic!("no TOTP secret in the settings flow: {flow}"))
        .to_string();
    kratos
        .submit_settings(
            token,
            &flow,
            json!({"method": "totp", "totp_code": totp(&secret)}),
        )
        .await;
    secret
}

/// Finishes Kratos's own aal2 login for a token session with a TOTP code;
/// returns the session Kratos answers.
pub async fn finish_aal2_with_totp(api_login_url: &str, token: &str, secret: &str) -> Value {
    let http = super::client();
    let flow: Value = http
        .get(api_login_url)
        .header("X-Session-Token", token)
        .send()
        .await
        .expect("aal2 login flow")
        .json()
        .await
        .expect("flow json");
    assert_eq!(flow["requested_aal"], "aal2", "{flow}");
    let action = flow["ui"]["action"].as_str().expect("action");
    let response = http
        .post(action)
        .header("X-Session-Token", token)
        .json(&json!({"method": "totp", "totp_code": totp(secret)}))
        .send()
        .await
        .expect("aal2 login");
    let status = response.status();
    let body: Value = response.json().await.expect("aal2 json");
    assert_eq!(status, 200, "{body}");
    body["session"].clone()
}

/// The person's own recovery through Kratos's API recovery flow: the code
/// arrives at the courier receiver, as a mail would. Returns the flow id
/// and the new session token.
pub async fn recover_by_email(
    kratos: &Kratos,
    courier: &Receiver,
    user: &TestUser,
) -> (Uuid, String) {
    let http = super::client();
    let flow: Value = http
        .get(
            kratos
                .public
                .join("self-service/recovery/api")
                .expect("url"),
        )
        .send()
        .await
        .expect("recovery flow")
        .json()
        .await
        .expect("flow json");
    let flow_id = flow["id"].as_str().expect("flow id").to_string();
    let submit = |body: Value| {
        http.post(kratos.public.join("self-service/recovery").expect("url"))
            .query(&[("flow", flow_id.as_str())])
            .json(&body)
            .send()
    };
    let sent = submit(json!({"method": "code", "email": user.email}))
        .await
        .expect("send code");
    assert_eq!(sent.status(), 200, "{:?}", sent.text().await);
    let mail = courier
        .wait_for(1, |m| {
            m["recipient"] == user.email.as_str() && m["recovery_code"].is_string()
        })
        .await;
    let code = mail[0]["recovery_code"].as_str().expect("code");
    let token = redeem(kratos, &flow_id, code).await;
    (Uuid::parse_str(&flow_id).expect("uuid"), token)
}

/// What a support agent does: an admin recovery code, redeemed as the
/// person would redeem the one they were handed.
pub async fn recover_with_support_code(kratos: &Kratos, user: &TestUser) -> (Uuid, String) {
    let http = super::client();
    let created: Value = http
        .post(kratos.admin.join("admin/recovery/code").expect("url"))
        .json(&json!({"identity_id": user.id, "flow_type": "api"}))
        .send()
        .await
        .expect("admin recovery code")
        .json()
        .await
        .expect("code json");
    let link = Url::parse(created["recovery_link"].as_str().expect("link")).expect("url");
    let flow = link
        .query_pairs()
        .find(|(k, _)| k == "flow")
        .map(|(_, v)| v.into_owned())
        .expect("flow id");
    let code = created["recovery_code"].as_str().expect("code");
    let token = redeem(kratos, &flow, code).await;
    (Uuid::parse_str(&flow).expect("uuid"), token)
}

/// Redeems a recovery code in its API flow; the new session's token.
async fn redeem(kratos: &Kratos, flow: &str, code: &str) -> String {
    let redeemed = super::client()
        .post(kratos.public.join("self-service/recovery").expect("url"))
        .query(&[("flow", flow)])
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .expect("redeem code");
    let status = redeemed.status();
    let body: Value = redeemed.json().await.expect("recovery json");
    assert_eq!(status, 200, "{body}");
    body["continue_with"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["action"] == "set_ory_session_token")
        .and_then(|c| c["ory_session_token"].as_str())
        .unwrap_or_else(|| panic!("no session token in {body}"))
        .to_string()
}

/// The identity's active sessions, as Kratos's admin API lists them.
pub async fn active_sessions(kratos: &Kratos, identity: Uuid) -> Vec<Uuid> {
    kratos
        .sessions(identity)
        .await
        .into_iter()
        .filter(|s| s["active"] == true)
        .map(|s| Uuid::parse_str(s["id"].as_str().expect("id")).expect("uuid"))
        .collect()
}

/// This Kratos's session cookie as a response sets it: the whole
/// `Set-Cookie` value.
pub fn set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .map(str::to_string)
}

/// RFC 6238 with Kratos's parameters: SHA-1, 6 digits, 30 s steps.
pub fn totp(secret: &str) -> String {
    let key = base32(secret);
    let step = (chrono::Utc::now().timestamp() / 30) as u64;
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key).expect("key");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let value =
        u32::from_be_bytes(digest[offset..offset + 4].try_into().expect("4 bytes")) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

/// RFC 4648 base32, without padding.
fn base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .expect("base32 digit") as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn totp_matches_rfc_6238_shape() {
    // RFC 4648's test vector: "foobar".
    assert_eq!(base32("MZXW6YTBOI"), b"foobar");
    let code = totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
}
