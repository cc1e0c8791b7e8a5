//! Talks to the real Kratos the way a frontend and an operator would.

use serde_json::{json, Value};
use url::Url;
use uuid::Uuid;

#[derive(Clone)]
pub struct Kratos {
    pub public: Url,
    pub admin: Url,
    http: reqwest::Client,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
}

pub fn new_email() -> String {
    format!("user-{}@example.test", Uuid::new_v4().simple())
}

pub const PASSWORD: &str = "a long test password 9f3k";

impl Kratos {
    pub fn new(public: Url, admin: Url) -> Self {
        Self {
            public,
            admin,
            http: super::client(),
        }
    }

    pub async fn ensure_reachable(&self) {
        let ready = self
            .http
            .get(self.admin.join("admin/health/ready").expect("url"))
            .send()
            .await;
        match ready {
            Ok(r) if r.status().is_success() => {}
            other => panic!(
                "Kratos must be running at {} for the integration tests (scripts/test starts it): {other:?}",
                self.admin
            ),
        }
    }

    /// Creates an identity with a password through the admin API.
    pub async fn create_user(&self) -> TestUser {
        let email = new_email();
        let response = self
            .http
            .post(self.admin.join("admin/identities").expect("url"))
            .json(&json!({
                "schema_id": "default",
                "traits": {"email": email},
                "credentials": {"password": {"config": {"password": PASSWORD}}}
            }))
            .send()
            .await
            .expect("create identity");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("identity");
        TestUser {
            id: Uuid::parse_str(body["id"].as_str().expect("id")).expect("uuid"),
            email,
            password: PASSWORD.to_string(),
        }
    }

    /// Signs in through Kratos's API login flow; returns the session token.
    pub async fn login_token(&self, user: &TestUser) -> String {
        let flow: Value = self
            .http
            .get(self.public.join("self-service/login/api").expect("url"))
            .send()
            .await
            .expect("login flow")
            .json()
            .await
            .expect("flow json");
        let response = self
            .http
            .post(self.public.join("self-service/login").expect("url"))
            .query(&[("flow", flow["id"].as_str().expect("flow id"))])
            .json(
                &json!({"method": "password", "identifier": user.email, "password": user.password}),
            )
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("login json");
        body["session_token"]
            .as_str()
            .expect("session token")
            .to_string()
    }

    /// Signs in through Kratos's browser login flow (with its CSRF cookie);
    /// returns the value of the `ory_kratos_session` cookie.
    pub async fn login_cookie(&self, user: &TestUser) -> String {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let flow: Value = browser
            .get(self.public.join("self-service/login/browser").expect("url"))
            .header("Accept", "application/json")
            .send()
            .await
            .expect("login flow")
            .json()
            .await
            .expect("flow json");
        let csrf = csrf_token(&flow);
        let response = browser
            .post(self.public.join("self-service/login").expect("url"))
            .query(&[("flow", flow["id"].as_str().expect("flow id"))])
            .header("Accept", "application/json")
            .json(&json!({"method": "password", "identifier": user.email, "password": user.password, "csrf_token": csrf}))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 200);
        session_cookie(&response).expect("Kratos set its session cookie")
    }

    /// Registers through Kratos's API registration flow (password); returns
    /// the identity id and the session token registration issued.
    pub async fn register_api(&self, email: &str) -> (Uuid, String) {
        let flow: Value = self
            .http
            .get(
                self.public
                    .join("self-service/registration/api")
                    .expect("url"),
            )
            .send()
            .await
            .expect("registration flow")
            .json()
            .await
            .expect("flow json");
        let response = self
            .http
            .post(self.public.join("self-service/registration").expect("url"))
            .query(&[("flow", flow["id"].as_str().expect("flow id"))])
            .json(&json!({"method": "password", "traits": {"email": email}, "password": PASSWORD}))
            .send()
            .await
            .expect("registration");
        let status = response.status();
        let body: Value = response.json().await.expect("registration json");
        assert_eq!(status, 200, "{body}");
        (
            Uuid::parse_str(body["identity"]["id"].as_str().expect("id")).expect("uuid"),
            body["session_token"].as_str().expect("token").to_string(),
        )
    }

    /// A new API settings flow for the token's identity.
    pub async fn settings_flow(&self, token: &str) -> Value {
        self.http
            .get(self.public.join("self-service/settings/api").expect("url"))
            .header("X-Session-Token", token)
            .send()
            .await
            .expect("settings flow")
            .json()
            .await
            .expect("flow json")
    }

    /// Submits `body` to a settings flow; Kratos must answer 200 with
    /// state `success` (after running its after-settings hooks).
    pub async fn submit_settings(&self, token: &str, flow: &Value, body: Value) {
        let response = self
            .http
            .post(self.public.join("self-service/settings").expect("url"))
            .query(&[("flow", flow["id"].as_str().expect("flow id"))])
            .header("X-Session-Token", token)
            .json(&body)
            .send()
            .await
            .expect("settings");
        let status = response.status();
        let body: Value = response.json().await.expect("settings json");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], "success", "{body}");
    }

    /// Changes the identity's traits through the settings flow's profile
    /// method.
    pub async fn update_traits(&self, token: &str, traits: Value) {
        let flow = self.settings_flow(token).await;
        self.submit_settings(token, &flow, json!({"method": "profile", "traits": traits}))
            .await;
    }

    async fn whoami_with_token(&self, token: &str) -> reqwest::Response {
        self.http
            .get(self.public.join("sessions/whoami").expect("url"))
            .header("X-Session-Token", token)
            .send()
            .await
            .expect("whoami")
    }

    /// Kratos's own `whoami` with a token; the status and the identity id.
    pub async fn whoami_token(&self, token: &str) -> (u16, Option<Uuid>) {
        whoami_answer(self.whoami_with_token(token).await).await
    }

    /// The session Kratos's own `whoami` answers for a token (which must be valid).
    pub async fn session_of_token(&self, token: &str) -> Value {
        let response = self.whoami_with_token(token).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("session json")
    }

    /// Kratos's own `whoami` with the session cookie.
    pub async fn whoami_cookie(&self, cookie: &str) -> (u16, Option<Uuid>) {
        let response = self
            .http
            .get(self.public.join("sessions/whoami").expect("url"))
            .header("Cookie", format!("ory_kratos_session={cookie}"))
            .send()
            .await
            .expect("whoami");
        whoami_answer(response).await
    }

    pub async fn revoke_token(&self, token: &str) {
        let response = self
            .http
            .delete(self.public.join("self-service/logout/api").expect("url"))
            .json(&json!({"session_token": token}))
            .send()
            .await
            .expect("logout");
        assert_eq!(response.status(), 204);
    }

    /// The identity's sessions, active or not, as Kratos's admin API lists them.
    pub async fn sessions(&self, identity: Uuid) -> Vec<Value> {
        let response = self
            .http
            .get(
                self.admin
                    .join(&format!("admin/identities/{identity}/sessions"))
                    .expect("url"),
            )
            .send()
            .await
            .expect("sessions");
        assert_eq!(response.status(), 200);
        response.json().await.expect("sessions json")
    }

    pub async fn set_state(&self, identity: Uuid, state: &str) {
        let response = self
            .http
            .patch(
                self.admin
                    .join(&format!("admin/identities/{identity}"))
                    .expect("url"),
            )
            .json(&json!([{"op": "replace", "path": "/state", "value": state}]))
            .send()
            .await
            .expect("patch identity");
        assert_eq!(response.status(), 200);
    }

    pub async fn delete_identity(&self, identity: Uuid) {
        let response = self
            .http
            .delete(
                self.admin
                    .join(&format!("admin/identities/{identity}"))
                    .expect("url"),
            )
            .send()
            .await
            .expect("delete identity");
        assert_eq!(response.status(), 204);
    }
}

pub fn csrf_token(flow: &Value) -> String {
    flow["ui"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["attributes"]["name"] == "csrf_token")
        .and_then(|n| n["attributes"]["value"].as_str())
        .expect("csrf token")
        .to_string()
}

/// The `ory_kratos_session` value from a response's `Set-Cookie` headers.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("ory_kratos_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

async fn whoami_answer(response: reqwest::Response) -> (u16, Option<Uuid>) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let id = body["identity"]["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok());
    (status, id)
}
