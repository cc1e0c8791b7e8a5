//! Shared by every integration test: spawns the service on port 0 against a
//! fresh Postgres database and the shared real Kratos.

pub mod binary;
pub mod events;
pub mod existing_kratos;
pub mod kratos;
pub mod kratos_own_passkeys;
pub mod mds;

pub use kratos_passkeys_testkit as authenticator;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use kratos_passkeys::configuration::{self, Environment, PasskeysPerIdentity, Settings};
use kratos_passkeys::startup::Application;
use kratos_passkeys::state::AppState;
use secrecy::SecretString;
use serde_json::Value;
use url::Url;
use uuid::Uuid;

pub use authenticator::Authenticator;
pub use kratos::{Kratos, TestUser};

/// Postgres as the tests reach it (a role that may create databases).
pub fn postgres_base_url() -> String {
    std::env::var("KRATOS_PASSKEYS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://kratos_passkeys:kratos_passkeys@127.0.0.1:5432".into())
}

pub fn kratos_public_url() -> Url {
    env_url(
        "KRATOS_PASSKEYS_TEST_KRATOS_PUBLIC",
        "http://127.0.0.1:4533/",
    )
}

pub fn kratos_admin_url() -> Url {
    env_url(
        "KRATOS_PASSKEYS_TEST_KRATOS_ADMIN",
        "http://127.0.0.1:4534/",
    )
}

/// Where the test Kratos posts its after-registration webhook.
pub fn webhook_port() -> u16 {
    std::env::var("KRATOS_PASSKEYS_TEST_WEBHOOK_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18081)
}

/// Held by a test that listens on `webhook_port()`: one at a time, so
/// Kratos's hooks reach the test that caused them.
pub async fn hold_webhook_port() -> tokio::sync::MutexGuard<'static, ()> {
    static PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    PORT.lock().await
}

fn env_url(var: &str, default: &str) -> Url {
    Url::parse(&std::env::var(var).unwrap_or_else(|_| default.into())).expect("valid URL")
}

pub use kratos_passkeys_testkit::authenticator::ORIGIN;

fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            // Kept for the whole run: nothing is exported.
            let telemetry = kratos_passkeys::telemetry::init(
                kratos_passkeys::telemetry::LogFormat::Text,
                &Default::default(),
            )
            .expect("tracing off needs no exporter");
            std::mem::forget(telemetry);
        }
    });
}

/// What the testkit's load loops send through: JSON to `app` as `auth`.
pub fn poster(
    app: Arc<TestApp>,
    auth: Auth,
) -> impl Fn(&'static str, Value) -> futures_util::future::BoxFuture<'static, (u16, Value)> {
    move |path, body| {
        let (app, auth) = (app.clone(), auth.clone());
        Box::pin(async move { app.try_post_json(path, &auth, &body).await })
    }
}

/// A fresh database; its name is returned with its URL.
pub fn create_database() -> (String, String) {
    create_database_on(&postgres_base_url())
}

/// A fresh database on the Postgres at `base` (`postgres://user:pw@host:port`).
pub fn create_database_on(base: &str) -> (String, String) {
    let name = format!("kp_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(&format!("{base}/postgres"))
        .unwrap_or_else(|e| panic!("Postgres must be running at {base} for the integration tests (scripts/test starts it): {e}"));
    diesel::sql_query(format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .expect("create test database");
    (name.clone(), format!("{base}/{name}"))
}

pub fn test_settings(database_url: &str) -> Settings {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = configuration::load(&dir, Environment::Local).expect("configuration");
    settings.public.port = 0;
    settings.admin.port = 0;
    settings.database.url = SecretString::from(database_url.to_string());
    settings.database.run_migrations_on_start = true;
    settings.kratos.public_url = kratos_public_url();
    settings.kratos.admin_url = kratos_admin_url();
    // The key the test Kratos sends with its webhook (scripts/test exports it).
    if let Ok(key) = std::env::var("WEBHOOK_API_KEY") {
        settings.webhook.api_key = SecretString::from(key);
    }
    settings
}

/// `limits.passkeys_per_identity` set to `n`.
pub fn passkey_limit(n: u32) -> PasskeysPerIdentity {
    PasskeysPerIdentity::new(std::num::NonZeroU32::new(n).expect("not zero"))
}

/// The User-Agent the shared request helpers send.
pub const TEST_USER_AGENT: &str = "kratos-passkeys-tests/1.0";

pub struct TestApp {
    pub public: String,
    pub admin: String,
    pub database_url: String,
    pub settings: Settings,
    /// A client that keeps no cookies and follows no redirects.
    pub http: reqwest::Client,
    pub kratos: Kratos,
    /// The in-process service's state (its clock, to move time forward);
    /// none for the real binary run as a process.
    pub state: Option<Arc<AppState>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    init_tracing();
    let (_, database_url) = create_database();
    let mut settings = test_settings(&database_url);
    customise(&mut settings);
    spawn_with_settings(settings).await
}

pub async fn spawn_with_settings(settings: Settings) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("application builds");
    let public = format!("http://127.0.0.1:{}", app.public_port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    let database_url = {
        use secrecy::ExposeSecret;
        settings.database.url.expose_secret().to_string()
    };
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    // The real Kratos, even when the service under test is pointed elsewhere.
    let kratos = Kratos::new(kratos_public_url(), kratos_admin_url());
    kratos.ensure_reachable().await;
    TestApp {
        public,
        admin,
        database_url,
        settings,
        http: client(),
        kratos,
        state: Some(state),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A fresh connection per request: a kept-alive one can be closed by
        // the server just as a test reuses it after a pause.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// How a test presents its Kratos session to the service.
#[derive(Clone, Debug)]
pub enum Auth {
    Token(String),
    Cookie(String),
    None,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &Auth,
    ) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match auth {
            Auth::Token(token) => builder.header("X-Session-Token", token),
            Auth::Cookie(cookie) => builder
                .header("Cookie", format!("ory_kratos_session={cookie}"))
                .header("Origin", ORIGIN),
            Auth::None => builder,
        }
    }

    pub async fn get_json(&self, path: &str, auth: &Auth) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, path, auth)
            .send()
            .await
            .expect("request");
        status_and_json(response).await
    }

    /// The key Kratos's web hooks present.
    pub fn webhook_key(&self) -> String {
        use secrecy::ExposeSecret;
        self.settings.webhook.api_key.expose_secret().to_string()
    }

    /// `GET /passkeys`'s passkeys (the list must answer 200).
    pub async fn passkey_list(&self, auth: &Auth) -> Value {
        let (status, body) = self.get_json("/passkeys", auth).await;
        assert_eq!(status, 200, "{body}");
        body["passkeys"].clone()
    }

    pub async fn post_json(&self, path: &str, auth: &Auth, body: &Value) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::POST, path, auth)
            .json(body)
            .send()
            .await
            .expect("request");
        status_and_json(response).await
    }

    /// Renames `passkey` (a registration's answer) to `name`.
    pub async fn rename_passkey(&self, auth: &Auth, passkey: &Value, name: &str) -> (u16, Value) {
        let id = passkey["id"].as_str().expect("a passkey id");
        let response = self
            .request(reqwest::Method::PATCH, &format!("/passkeys/{id}"), auth)
            .header("User-Agent", TEST_USER_AGENT)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("rename");
        status_and_json(response).await
    }

    /// Removes `passkey` (a registration's answer): the status.
    pub async fn delete_passkey(&self, auth: &Auth, passkey: &Value) -> u16 {
        let id = passkey["id"].as_str().expect("a passkey id");
        self.request(reqwest::Method::DELETE, &format!("/passkeys/{id}"), auth)
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16()
    }

    /// The admin audit of `identity`'s events, with `query` (may be empty).
    pub async fn identity_events(&self, identity: uuid::Uuid, query: &str) -> (u16, Value) {
        let url = self.admin_url(&format!("/admin/identities/{identity}/events?{query}"));
        status_and_json(self.http.get(url).send().await.expect("events")).await
    }

    /// POSTs JSON; a transport failure (the service is gone) is status 0.
    pub async fn try_post_json(&self, path: &str, auth: &Auth, body: &Value) -> (u16, Value) {
        match self
            .request(reqwest::Method::POST, path, auth)
            .json(body)
            .send()
            .await
        {
            Ok(response) => status_and_json(response).await,
            Err(_) => (0, Value::Null),
        }
    }

    /// A new identity with a password, signed in through Kratos's API login flow.
    pub async fn signed_in_user(&self) -> (TestUser, Auth) {
        let user = self.kratos.create_user().await;
        let token = self.kratos.login_token(&user).await;
        (user, Auth::Token(token))
    }

    /// Moves the service's clock forward (ceremony expiry, rate limits).
    pub fn advance_clock(&self, by: Duration) {
        self.state
            .as_ref()
            .expect("an in-process app")
            .clock
            .advance(by);
    }

    /// Waits until `sql` (a count) answers `expected`: for what the service
    /// finishes after answering. Generous, so a loaded machine cannot fail it.
    pub async fn eventually_count(&self, sql: &str, expected: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.count(sql);
            if got == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql} stayed {got}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn db(&self) -> PgConnection {
        PgConnection::establish(&self.database_url).expect("test database")
    }

    /// Counts rows with a raw SQL `SELECT count(*) ...`.
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            count: i64,
        }
        let rows: Vec<Count> = diesel::sql_query(sql)
            .load(&mut self.db())
            .expect("count query");
        rows.first().map(|c| c.count).unwrap_or_default()
    }

    pub async fn registration_options(&self, auth: &Auth) -> Value {
        let (status, options) = self
            .post_json(
                "/passkeys/registration/options",
                auth,
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 200, "{options}");
        options
    }

    pub async fn verify_registration(
        &self,
        auth: &Auth,
        options: &Value,
        credential: &Value,
    ) -> (u16, Value) {
        self.post_json(
            "/passkeys/registration/verify",
            auth,
            &serde_json::json!({"ceremony_id": options["ceremony_id"], "credential": credential}),
        )
        .await
    }

    /// The number of passkeys stored, for everyone.
    pub fn passkeys_stored(&self) -> i64 {
        self.count("SELECT count(*) AS count FROM passkeys")
    }

    /// `POST /passkeys/login/options` for a discoverable login (must
    /// answer 200).
    pub async fn login_options(&self) -> Value {
        let (status, options) = self
            .post_json(
                "/passkeys/login/options",
                &Auth::None,
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 200, "{options}");
        options
    }

    /// `POST /passkeys/login/verify` with `credential` for `options`'
    /// ceremony and `body`'s fields added (`session`, `include_session`),
    /// sent with the tests' User-Agent.
    pub async fn verify_login(
        &self,
        options: &Value,
        credential: &Value,
        body: Value,
    ) -> reqwest::Response {
        let mut request =
            serde_json::json!({"ceremony_id": options["ceremony_id"], "credential": credential});
        for (key, value) in body.as_object().expect("object") {
            request[key] = value.clone();
        }
        self.http
            .post(self.url("/passkeys/login/verify"))
            .header("User-Agent", TEST_USER_AGENT)
            .json(&request)
            .send()
            .await
            .expect("verify")
    }

    /// A passkey login whose client data names `origin` (a related web
    /// origin or an app's), with a token session: the verify answer.
    pub async fn login_from_origin(
        &self,
        authenticator: &mut Authenticator,
        origin: &str,
    ) -> (u16, Value) {
        let options = self.login_options().await;
        let credential = authenticator.login_with(&options, origin, |_| {});
        let body = serde_json::json!({"session": "token"});
        status_and_json(self.verify_login(&options, &credential, body).await).await
    }

    /// A passkey login on `authenticator`: options, then verify with
    /// `body`'s fields added.
    pub async fn passkey_login(
        &self,
        authenticator: &mut Authenticator,
        body: Value,
    ) -> reqwest::Response {
        let options = self.login_options().await;
        let credential = authenticator.login(&options);
        self.verify_login(&options, &credential, body).await
    }

    /// `GET /admin/sessions/{session}`: which passkey login minted it.
    pub async fn minted_session(&self, session: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.admin_url(&format!("/admin/sessions/{session}")))
            .send()
            .await
            .expect("admin sessions");
        status_and_json(response).await
    }

    /// The admin listener's Prometheus text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Registers a passkey on `authenticator` through the service.
    /// Asserts a registration is refused with `id` and stores nothing.
    pub async fn refused_registration(
        &self,
        auth: &Auth,
        options: &Value,
        credential: &Value,
        status: u16,
        id: &str,
    ) {
        let (got, body) = self.verify_registration(auth, options, credential).await;
        assert_error(got, &body, status, id);
        assert_eq!(
            self.passkeys_stored(),
            0,
            "a refused registration stored nothing"
        );
    }

    pub async fn register_passkey(&self, auth: &Auth, authenticator: &mut Authenticator) -> Value {
        let options = self.registration_options(auth).await;
        let credential = authenticator.register(&options);
        let (status, body) = self.verify_registration(auth, &options, &credential).await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// Asserts our error shape and returns the body.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, expected_status: u16, expected_id: &str) {
    assert_eq!(status, expected_status, "unexpected status; body: {body}");
    assert_eq!(
        body["error"]["id"], expected_id,
        "unexpected error id; body: {body}"
    );
    assert_eq!(body["error"]["code"], expected_status, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}
