//! Kratos's own passkey method, used the way a browser uses it (browser
//! flows with a cookie jar, which every release's passkey method takes):
//! adding a passkey in Kratos's settings, and signing in with one.

use kratos_passkeys_testkit::kratos_flow::{creation_options, request_options};
use kratos_passkeys_testkit::Authenticator;
use serde_json::{json, Value};

use super::kratos::{csrf_token, session_cookie, Kratos, TestUser};

/// The relying party origin the test Kratos's passkey method accepts
/// (scripts/test), the same as the service's in tests.
pub const ORIGIN: &str = "http://localhost:8080";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn json_of(response: reqwest::Response, step: &str) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    assert!(status < 500, "{step}: {status} {body}");
    (status, body)
}

impl Kratos {
    async fn browser_login_flow(&self, browser: &reqwest::Client) -> Value {
        let url = self.public.join("self-service/login/browser").expect("url");
        let response = browser
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .expect("login flow");
        json_of(response, "login flow").await.1
    }

    /// Adds a passkey to `user` through Kratos's settings flow (after a
    /// password sign-in, so the session is privileged).
    pub async fn add_passkey_in_kratos(&self, user: &TestUser, authenticator: &mut Authenticator) {
        let browser = browser();
        let url = |path: &str| self.public.join(path).expect("url");
        let flow = self.browser_login_flow(&browser).await;
        let (status, body) = json_of(
            browser
                .post(url("self-service/login"))
                .query(&[("flow", flow["id"].as_str().expect("flow id"))])
                .header("Accept", "application/json")
                .json(&json!({"method": "password", "identifier": user.email, "password": user.password, "csrf_token": csrf_token(&flow)}))
                .send()
                .await
                .expect("password login"),
            "password login",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, flow) = json_of(
            browser
                .get(url("self-service/settings/browser"))
                .header("Accept", "application/json")
                .send()
                .await
                .expect("settings flow"),
            "settings flow",
        )
        .await;
        assert_eq!(status, 200, "{flow}");
        let options = creation_options(&flow).expect("passkey creation options");
        let credential = authenticator.register_for_kratos(&options, ORIGIN);
        let (status, body) = json_of(
            browser
                .post(url("self-service/settings"))
                .query(&[("flow", flow["id"].as_str().expect("flow id"))])
                .header("Accept", "application/json")
                .json(&json!({
                    "method": "passkey",
                    "passkey_settings_register": credential.to_string(),
                    "csrf_token": csrf_token(&flow),
                }))
                .send()
                .await
                .expect("passkey settings"),
            "passkey settings",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], "success", "{body}");
    }

    /// Signs in with Kratos's own passkey login (discoverable); the session
    /// cookie when Kratos accepted the passkey, else its status and body.
    pub async fn login_in_kratos(
        &self,
        authenticator: &mut Authenticator,
    ) -> Result<String, (u16, Value)> {
        let browser = browser();
        let url = |path: &str| self.public.join(path).expect("url");
        let flow = self.browser_login_flow(&browser).await;
        let options = request_options(&flow).expect("passkey request options");
        let credential = authenticator.login_for_kratos(&options, ORIGIN);
        let response = browser
            .post(url("self-service/login"))
            .query(&[("flow", flow["id"].as_str().expect("flow id"))])
            .header("Accept", "application/json")
            .json(&json!({
                "method": "passkey",
                "passkey_login": credential.to_string(),
                "csrf_token": csrf_token(&flow),
            }))
            .send()
            .await
            .expect("passkey login");
        let cookie = session_cookie(&response);
        let (status, body) = json_of(response, "passkey login").await;
        match cookie {
            Some(cookie) if status == 200 => Ok(cookie),
            _ => Err((status, body)),
        }
    }
}
