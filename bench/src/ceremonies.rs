//! One virtual user and the ceremonies it performs: its untimed set-up
//! (identity, passkeys), and one timed ceremony per mode.
//!
//! Every HTTP call here is a plain reqwest call against loopback targets; a
//! failure is an `anyhow::Error` whose message carries the step, the HTTP
//! status and the start of the body, so the report can show it.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kratos_passkeys_testkit::kratos_flow::{self, node_value};
use kratos_passkeys_testkit::Authenticator;
use reqwest::header::{ACCEPT, COOKIE, SET_COOKIE};
use serde_json::{json, Value};
use url::Url;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

use crate::Mode;

/// The password of every benchmark identity (set through the admin API).
pub const PASSWORD: &str = "bench password 7d2c-kratos-passkeys";
const USER_AGENT: &str = concat!("kratos-passkeys-bench/", env!("CARGO_PKG_VERSION"));
const SESSION_COOKIE: &str = "ory_kratos_session";

/// Where the load goes. Only loopback addresses are accepted (see `main`).
#[derive(Debug, Clone)]
pub struct Targets {
    pub service: Url,
    /// A second instance of the service with its own database: a build of
    /// an older revision (login-token-baseline) or the current build with
    /// no event endpoint (login-token-no-events).
    pub baseline_service: Url,
    pub kratos_public: Url,
    pub kratos_admin: Url,
    /// A second Kratos, of a v26 release, with its own database
    /// (kratos-native-v26); the service never talks to it.
    pub kratos_v26_public: Url,
    pub kratos_v26_admin: Url,
    /// The page origin the software passkey writes into its client data; it
    /// must be one of the service's and Kratos's allowed WebAuthn origins.
    pub origin: String,
}

/// What the set-up must prepare for the modes of this run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// A passkey registered through kratos-passkeys (login-token, login-cookie).
    pub service_passkey: bool,
    /// A passkey registered through Kratos's own settings flow (kratos-native).
    pub kratos_passkey: bool,
    /// A passkey registered through the second instance
    /// (login-token-baseline, login-token-no-events).
    pub second_passkey: bool,
    /// An identity in the v26 Kratos with a passkey registered through its
    /// own settings flow (kratos-native-v26).
    pub kratos_v26_passkey: bool,
}

impl Needs {
    pub fn of(modes: impl IntoIterator<Item = Mode>) -> Self {
        let mut needs = Needs::default();
        for mode in modes {
            match mode {
                Mode::LoginToken | Mode::LoginCookie => needs.service_passkey = true,
                Mode::KratosNative => needs.kratos_passkey = true,
                Mode::LoginTokenBaseline | Mode::LoginTokenNoEvents => needs.second_passkey = true,
                Mode::KratosNativeV26 => needs.kratos_v26_passkey = true,
                Mode::Register => {}
            }
        }
        needs
    }
}

/// One simulated person: an identity, a password, and up to four software
/// passkeys (one held by kratos-passkeys, one by its second instance, one by
/// Kratos itself, one by the v26 Kratos, where the person has an identity of
/// the same email too). They are separate authenticators because all use
/// the same relying party id and a discoverable login picks the
/// authenticator's newest credential for it.
pub struct VirtualUser {
    pub index: usize,
    /// No cookie store and no redirects: each ceremony carries exactly the
    /// cookies it was given, like a browser with a fresh jar.
    http: reqwest::Client,
    service_passkey: Option<Authenticator>,
    second_passkey: Option<Authenticator>,
    kratos_passkey: Option<Authenticator>,
    kratos_v26_passkey: Option<Authenticator>,
    /// A counter for the register mode's fresh identities.
    registrations: u64,
    run_id: String,
}

pub fn client(cookie_store: bool) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(cookie_store)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building an HTTP client")
}

fn join(base: &Url, path: &str) -> Result<Url> {
    base.join(path)
        .with_context(|| format!("joining {path} to {base}"))
}

/// The body as JSON when the status is the expected one; otherwise an error
/// naming the step, the status and the start of the body.
async fn expect_json(response: reqwest::Response, expected: u16, step: &str) -> Result<Value> {
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .with_context(|| format!("{step}: reading the body"))?;
    if status != expected {
        bail!("{step}: HTTP {status}: {}", truncate(&text, 600));
    }
    serde_json::from_str(&text)
        .with_context(|| format!("{step}: body is not JSON: {}", truncate(&text, 300)))
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `name=value` pairs of a response's `Set-Cookie` headers, as a `Cookie` header.
fn cookies_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

fn sets_session_cookie(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.strip_prefix(SESSION_COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
                .is_some_and(|value| !value.starts_with(';') && !value.is_empty())
        })
}

/// The value of a Kratos flow's UI node by input name.
fn flow_id(flow: &Value) -> Result<&str> {
    flow["id"].as_str().context("the flow has no id")
}

/// Creates an identity with a password through the admin API of the Kratos
/// at `admin`.
pub(crate) async fn create_identity(
    http: &reqwest::Client,
    admin: &Url,
    email: &str,
) -> Result<()> {
    let response = http
        .post(join(admin, "admin/identities")?)
        .json(&json!({
            "schema_id": "default",
            "traits": {"email": email},
            "credentials": {"password": {"config": {"password": PASSWORD}}}
        }))
        .send()
        .await
        .context("create identity: request")?;
    expect_json(response, 201, "create identity").await?;
    Ok(())
}

/// Signs in through the API login flow (password) of the Kratos at
/// `public`; the session token.
pub(crate) async fn api_login(http: &reqwest::Client, public: &Url, email: &str) -> Result<String> {
    let response = http
        .get(join(public, "self-service/login/api")?)
        .send()
        .await
        .context("API login flow: request")?;
    let flow = expect_json(response, 200, "API login flow").await?;
    let response = http
        .post(join(public, "self-service/login")?)
        .query(&[("flow", flow_id(&flow)?)])
        .json(&json!({"method": "password", "identifier": email, "password": PASSWORD}))
        .send()
        .await
        .context("API login: request")?;
    let body = expect_json(response, 200, "API login").await?;
    Ok(body["session_token"]
        .as_str()
        .context("API login answered no session_token")?
        .to_string())
}

/// The ceremony id of an options answer, as the JSON value it is: the
/// service only promises an opaque value to hand back (a UUID in older
/// builds, a sealed string in newer ones), so it is passed through untouched.
pub(crate) fn ceremony_id(options: &Value, step: &str) -> Result<Value> {
    match options.get("ceremony_id") {
        None | Some(Value::Null) => bail!("{step}: the answer has no ceremony_id"),
        Some(id) => Ok(id.clone()),
    }
}

/// Registers a passkey through kratos-passkeys (at `service`: the current
/// instance or the second one) with a session token.
async fn register_through_service(
    http: &reqwest::Client,
    service: &Url,
    t: &Targets,
    token: &str,
    authenticator: &mut Authenticator,
) -> Result<()> {
    let response = http
        .post(join(service, "passkeys/registration/options")?)
        .header("X-Session-Token", token)
        .json(&json!({}))
        .send()
        .await
        .context("registration options: request")?;
    let options = expect_json(response, 200, "registration options").await?;
    serde_json::from_value::<CreationChallengeResponse>(options.clone())
        .context("registration options are not WebAuthn creation options")?;
    let ceremony_id = ceremony_id(&options, "registration options")?;
    let credential = authenticator.register_with(&options, &t.origin, |_| {});
    let response = http
        .post(join(service, "passkeys/registration/verify")?)
        .header("X-Session-Token", token)
        .json(&json!({"ceremony_id": ceremony_id, "credential": credential}))
        .send()
        .await
        .context("registration verify: request")?;
    expect_json(response, 201, "registration verify").await?;
    Ok(())
}

/// A new software authenticator holding one passkey registered through the
/// service at `service` (`what` names it in errors).
async fn new_passkey(
    http: &reqwest::Client,
    service: &Url,
    t: &Targets,
    token: &str,
    index: usize,
    what: &str,
) -> Result<Authenticator> {
    let mut authenticator = Authenticator::new();
    register_through_service(http, service, t, token, &mut authenticator)
        .await
        .with_context(|| format!("virtual user {index}: passkey through {what}"))?;
    Ok(authenticator)
}

/// Registers a passkey through Kratos's own settings flow (browser flow with
/// a cookie jar: password login, then `passkey_settings_register`).
async fn register_through_kratos(
    t: &Targets,
    email: &str,
    authenticator: &mut Authenticator,
) -> Result<()> {
    let browser = client(true)?;
    let response = browser
        .get(join(&t.kratos_public, "self-service/login/browser")?)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .context("browser login flow: request")?;
    let flow = expect_json(response, 200, "browser login flow").await?;
    let csrf = node_value(&flow, "csrf_token").context("login flow without csrf_token")?;
    let response = browser
        .post(join(&t.kratos_public, "self-service/login")?)
        .query(&[("flow", flow_id(&flow)?)])
        .header(ACCEPT, "application/json")
        .json(&json!({"method": "password", "identifier": email, "password": PASSWORD, "csrf_token": csrf}))
        .send()
        .await
        .context("browser password login: request")?;
    expect_json(response, 200, "browser password login").await?;

    let response = browser
        .get(join(&t.kratos_public, "self-service/settings/browser")?)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .context("settings flow: request")?;
    let flow = expect_json(response, 200, "settings flow").await?;
    let csrf = node_value(&flow, "csrf_token").context("settings flow without csrf_token")?;
    let credential = sign_settings_passkey(&flow, t, authenticator)?;
    let response = browser
        .post(join(&t.kratos_public, "self-service/settings")?)
        .query(&[("flow", flow_id(&flow)?)])
        .header(ACCEPT, "application/json")
        .json(&json!({
            "method": "passkey",
            "passkey_settings_register": credential.to_string(),
            "csrf_token": csrf,
        }))
        .send()
        .await
        .context("settings passkey registration: request")?;
    settings_succeeded(response, "settings passkey registration").await
}

/// The new passkey, made by the software authenticator from the creation
/// options in a Kratos settings flow's `passkey_create_data` node.
fn sign_settings_passkey(
    flow: &Value,
    t: &Targets,
    authenticator: &mut Authenticator,
) -> Result<Value> {
    let options = kratos_flow::creation_options(flow).map_err(anyhow::Error::msg)?;
    Ok(authenticator.register_for_kratos(&options, &t.origin))
}

/// A settings flow submission that Kratos answered 200 with state `success`.
async fn settings_succeeded(response: reqwest::Response, step: &str) -> Result<()> {
    let body = expect_json(response, 200, step).await?;
    ensure!(
        body["state"] == "success",
        "{step} ended in state {}",
        body["state"]
    );
    Ok(())
}

/// Registers a passkey through the v26 Kratos's own settings flow, as an API
/// client does it (no cookies, no CSRF token): a fresh identity of the same
/// email there, a password login through its API flow for a session token,
/// then `GET /self-service/settings/api` and `POST /self-service/settings`
/// with `passkey_settings_register`, both with `X-Session-Token`.
async fn register_through_kratos_api(
    http: &reqwest::Client,
    t: &Targets,
    email: &str,
    authenticator: &mut Authenticator,
) -> Result<()> {
    create_identity(http, &t.kratos_v26_admin, email).await?;
    let token = api_login(http, &t.kratos_v26_public, email).await?;
    let response = http
        .get(join(&t.kratos_v26_public, "self-service/settings/api")?)
        .header("X-Session-Token", &token)
        .send()
        .await
        .context("API settings flow: request")?;
    let flow = expect_json(response, 200, "API settings flow").await?;
    let credential = sign_settings_passkey(&flow, t, authenticator)?;
    let response = http
        .post(join(&t.kratos_v26_public, "self-service/settings")?)
        .query(&[("flow", flow_id(&flow)?)])
        .header("X-Session-Token", &token)
        .json(&json!({
            "method": "passkey",
            "passkey_settings_register": credential.to_string(),
        }))
        .send()
        .await
        .context("API settings passkey registration: request")?;
    settings_succeeded(response, "API settings passkey registration").await
}

impl VirtualUser {
    /// The untimed set-up: an identity with a password (admin API), then the
    /// passkeys this run's modes need.
    pub async fn setup(t: &Targets, run_id: &str, index: usize, needs: Needs) -> Result<Self> {
        let http = client(false)?;
        let email = format!("bench-{run_id}-{index}@example.test");
        create_identity(&http, &t.kratos_admin, &email)
            .await
            .with_context(|| format!("virtual user {index}"))?;
        // One Kratos session serves both instances: they validate it with
        // the same Kratos.
        let token = if needs.service_passkey || needs.second_passkey {
            Some(api_login(&http, &t.kratos_public, &email).await?)
        } else {
            None
        };
        let service_passkey = match &token {
            Some(token) if needs.service_passkey => {
                Some(new_passkey(&http, &t.service, t, token, index, "kratos-passkeys").await?)
            }
            _ => None,
        };
        let second_passkey = match &token {
            Some(token) if needs.second_passkey => Some(
                new_passkey(
                    &http,
                    &t.baseline_service,
                    t,
                    token,
                    index,
                    Build::Second.name(),
                )
                .await?,
            ),
            _ => None,
        };
        let kratos_passkey = if needs.kratos_passkey {
            let mut authenticator = Authenticator::new();
            register_through_kratos(t, &email, &mut authenticator)
                .await
                .with_context(|| format!("virtual user {index}: passkey through Kratos"))?;
            Some(authenticator)
        } else {
            None
        };
        let kratos_v26_passkey = if needs.kratos_v26_passkey {
            let mut authenticator = Authenticator::new();
            register_through_kratos_api(&http, t, &email, &mut authenticator)
                .await
                .with_context(|| format!("virtual user {index}: passkey through the v26 Kratos"))?;
            Some(authenticator)
        } else {
            None
        };
        Ok(Self {
            index,
            http,
            service_passkey,
            second_passkey,
            kratos_passkey,
            kratos_v26_passkey,
            registrations: 0,
            run_id: run_id.to_string(),
        })
    }

    /// One ceremony of `mode`; the timed part's duration.
    pub async fn ceremony(&mut self, t: &Targets, mode: Mode) -> Result<Duration> {
        match mode {
            Mode::Register => self.register(t).await,
            Mode::LoginToken => self.service_login(t, Build::Current, Delivery::Token).await,
            Mode::LoginCookie => {
                self.service_login(t, Build::Current, Delivery::Cookie)
                    .await
            }
            Mode::LoginTokenBaseline | Mode::LoginTokenNoEvents => {
                self.service_login(t, Build::Second, Delivery::Token).await
            }
            Mode::KratosNative => self.kratos_login(t).await,
            Mode::KratosNativeV26 => self.kratos_api_login(t).await,
        }
    }

    /// Adding a passkey through kratos-passkeys. Untimed first: a fresh
    /// identity (admin API) signed in through Kratos's API login flow, so
    /// every registration is an identity's first passkey rather than its
    /// hundredth. Timed: options, the authenticator, verify.
    async fn register(&mut self, t: &Targets) -> Result<Duration> {
        self.registrations += 1;
        let email = format!(
            "bench-{}-{}-r{}@example.test",
            self.run_id, self.index, self.registrations
        );
        create_identity(&self.http, &t.kratos_admin, &email).await?;
        let token = api_login(&self.http, &t.kratos_public, &email).await?;
        let mut authenticator = Authenticator::new();
        let started = Instant::now();
        register_through_service(&self.http, &t.service, t, &token, &mut authenticator).await?;
        Ok(started.elapsed())
    }

    /// A discoverable passkey login through kratos-passkeys (the current
    /// instance or the second one), which mints the Kratos session (token
    /// or relayed cookie).
    async fn service_login(
        &mut self,
        t: &Targets,
        build: Build,
        delivery: Delivery,
    ) -> Result<Duration> {
        let (service, authenticator) = match build {
            Build::Current => (&t.service, self.service_passkey.as_mut()),
            Build::Second => (&t.baseline_service, self.second_passkey.as_mut()),
        };
        let authenticator = authenticator
            .with_context(|| format!("this virtual user has no passkey in {}", build.name()))?;
        let started = Instant::now();
        let response = self
            .http
            .post(join(service, "passkeys/login/options")?)
            .json(&json!({}))
            .send()
            .await
            .context("login options: request")?;
        let options = expect_json(response, 200, "login options").await?;
        serde_json::from_value::<RequestChallengeResponse>(options.clone())
            .context("login options are not WebAuthn request options")?;
        let ceremony_id = ceremony_id(&options, "login options")?;
        let credential = authenticator.login_with(&options, &t.origin, |_| {});
        // No `include_session`: the default answer is what is measured
        // (older builds refuse unknown fields anyway).
        let response = self
            .http
            .post(join(service, "passkeys/login/verify")?)
            .json(&json!({
                "ceremony_id": ceremony_id,
                "credential": credential,
                "session": delivery.name(),
            }))
            .send()
            .await
            .context("login verify: request")?;
        let cookie = sets_session_cookie(&response);
        let body = expect_json(response, 200, "login verify").await?;
        let elapsed = started.elapsed();
        check_login_answer(&body, delivery, cookie)?;
        Ok(elapsed)
    }

    /// Kratos v1.3.1's own passkey login, as its browser flow runs it for a
    /// JSON client: fetch the flow (the WebAuthn challenge is the
    /// `passkey_challenge` node's value), sign, submit `method: passkey` with
    /// `passkey_login` and the CSRF token (and the CSRF cookie).
    async fn kratos_login(&mut self, t: &Targets) -> Result<Duration> {
        let authenticator = self
            .kratos_passkey
            .as_mut()
            .context("this virtual user has no passkey in Kratos")?;
        let started = Instant::now();
        let response = self
            .http
            .get(join(&t.kratos_public, "self-service/login/browser")?)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .context("browser login flow: request")?;
        let cookies = cookies_of(&response);
        let flow = expect_json(response, 200, "browser login flow").await?;
        let csrf = node_value(&flow, "csrf_token").context("login flow without csrf_token")?;
        let options = kratos_flow::request_options(&flow).map_err(anyhow::Error::msg)?;
        let credential = authenticator.login_for_kratos(&options, &t.origin);
        let response = self
            .http
            .post(join(&t.kratos_public, "self-service/login")?)
            .query(&[("flow", flow_id(&flow)?)])
            .header(ACCEPT, "application/json")
            .header(COOKIE, cookies)
            .json(&json!({
                "method": "passkey",
                "passkey_login": credential.to_string(),
                "csrf_token": csrf,
            }))
            .send()
            .await
            .context("passkey login: request")?;
        let cookie = sets_session_cookie(&response);
        let body = expect_json(response, 200, "passkey login").await?;
        let elapsed = started.elapsed();
        ensure!(cookie, "Kratos set no {SESSION_COOKIE} cookie");
        ensure!(
            body["session"]["active"] == true,
            "Kratos answered no active session"
        );
        Ok(elapsed)
    }

    /// The v26 Kratos's own passkey login through its API flow, the flow a
    /// JSON client without cookies uses there (v26's passkey strategy takes
    /// API flows; v1.3.1's did not): fetch the flow (the WebAuthn challenge
    /// is the `passkey_challenge` node's value), sign, submit `method:
    /// passkey` with `passkey_login`; no CSRF token or cookie, and Kratos
    /// answers the session token.
    async fn kratos_api_login(&mut self, t: &Targets) -> Result<Duration> {
        let authenticator = self
            .kratos_v26_passkey
            .as_mut()
            .context("this virtual user has no passkey in the v26 Kratos")?;
        let started = Instant::now();
        let response = self
            .http
            .get(join(&t.kratos_v26_public, "self-service/login/api")?)
            .send()
            .await
            .context("API login flow: request")?;
        let flow = expect_json(response, 200, "API login flow").await?;
        let options = kratos_flow::request_options(&flow).map_err(anyhow::Error::msg)?;
        let credential = authenticator.login_for_kratos(&options, &t.origin);
        let response = self
            .http
            .post(join(&t.kratos_v26_public, "self-service/login")?)
            .query(&[("flow", flow_id(&flow)?)])
            .json(&json!({
                "method": "passkey",
                "passkey_login": credential.to_string(),
            }))
            .send()
            .await
            .context("passkey login: request")?;
        let body = expect_json(response, 200, "passkey login").await?;
        let elapsed = started.elapsed();
        check_native_api_answer(&body)?;
        Ok(elapsed)
    }
}

/// Whether a Kratos API login answer hands over a session: a session token
/// and an active session.
fn check_native_api_answer(body: &Value) -> Result<()> {
    ensure!(
        body["session_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "Kratos answered no session_token"
    );
    ensure!(
        body["session"]["active"] == true,
        "Kratos answered no active session"
    );
    Ok(())
}

/// Which instance of the service a login goes to.
#[derive(Debug, Clone, Copy)]
enum Build {
    Current,
    /// The baseline build, or the current one without event endpoints.
    Second,
}

impl Build {
    fn name(self) -> &'static str {
        match self {
            Build::Current => "kratos-passkeys",
            Build::Second => "the second kratos-passkeys instance",
        }
    }
}

/// How the service hands the minted session over (`"session"` in verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Token,
    Cookie,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::Token => "token",
            Delivery::Cookie => "cookie",
        }
    }
}

/// Whether a login verify answer hands over a session. Builds differ in
/// the body: older ones always add Kratos's `session` object, newer ones
/// answer `identity_id` and (token mode) `session_token`, with the `session`
/// only on request. So: token mode needs a `session_token` string, cookie
/// mode Kratos's session `Set-Cookie`, and a `session`, when there is one,
/// must be active.
pub(crate) fn check_login_answer(
    body: &Value,
    delivery: Delivery,
    sets_cookie: bool,
) -> Result<()> {
    match delivery {
        Delivery::Token => ensure!(
            body["session_token"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "login verify answered no session_token"
        ),
        Delivery::Cookie => ensure!(sets_cookie, "login verify set no {SESSION_COOKIE} cookie"),
    }
    match body.get("session") {
        None | Some(Value::Null) => {}
        Some(session) => ensure!(
            session["active"] == true,
            "login verify answered a session that is not active: {}",
            truncate(&session.to_string(), 300)
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kratos_discoverable_options_become_webauthn_rs_options() {
        let raw = r#"{"publicKey":{"challenge":"JCRmGgaIjR_IlGPLy4abneKjQEiXjZIR_AY26OYc_G8","timeout":300000,"rpId":"localhost","userVerification":"preferred"}}"#;
        let options = kratos_flow::request_options_of(raw).unwrap();
        assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
        let parsed: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        assert_eq!(parsed.public_key.rp_id, "localhost");
        assert_eq!(parsed.public_key.challenge.len(), 32);
    }

    #[test]
    fn login_answers_of_both_builds_are_accepted() {
        // The baseline's answer: the session object always, the token in
        // token mode.
        let older = json!({"session_token": "ory_st_x", "session": {"id": "s", "active": true}});
        check_login_answer(&older, Delivery::Token, false).unwrap();
        let older_cookie = json!({"session": {"id": "s", "active": true}});
        check_login_answer(&older_cookie, Delivery::Cookie, true).unwrap();
        // The current answer: no session object unless asked for.
        let newer = json!({"identity_id": "3f2a", "session_token": "ory_st_x"});
        check_login_answer(&newer, Delivery::Token, false).unwrap();
        check_login_answer(&json!({"identity_id": "3f2a"}), Delivery::Cookie, true).unwrap();
        let with_session =
            json!({"identity_id": "3f2a", "session_token": "t", "session": {"active": true}});
        check_login_answer(&with_session, Delivery::Token, false).unwrap();
    }

    #[test]
    fn login_answers_without_a_session_are_refused() {
        let no_token = json!({"identity_id": "3f2a"});
        assert!(check_login_answer(&no_token, Delivery::Token, true).is_err());
        let empty_token = json!({"identity_id": "3f2a", "session_token": ""});
        assert!(check_login_answer(&empty_token, Delivery::Token, false).is_err());
        let not_a_string = json!({"session_token": 7});
        assert!(check_login_answer(&not_a_string, Delivery::Token, false).is_err());
        let no_cookie = json!({"identity_id": "3f2a"});
        assert!(check_login_answer(&no_cookie, Delivery::Cookie, false).is_err());
        let inactive = json!({"session_token": "t", "session": {"active": false}});
        assert!(check_login_answer(&inactive, Delivery::Token, false).is_err());
        let odd = json!({"session_token": "t", "session": "yes"});
        assert!(check_login_answer(&odd, Delivery::Token, false).is_err());
    }

    #[test]
    fn ceremony_ids_pass_through_whatever_their_shape() {
        for id in [
            json!("0f8c2f4e-3b1a-4c55-9a51-8f0e2a9d7c10"),
            json!("v1.Zm9vYmFy-opaque_sealed.c2VhbGVk"),
        ] {
            let options = json!({"ceremony_id": id, "publicKey": {}});
            assert_eq!(ceremony_id(&options, "x").unwrap(), id);
        }
        assert!(ceremony_id(&json!({"publicKey": {}}), "x").is_err());
        assert!(ceremony_id(&json!({"ceremony_id": null}), "x").is_err());
    }

    #[test]
    fn needs_follow_the_modes() {
        let needs = Needs::of([Mode::LoginTokenBaseline, Mode::KratosNative]);
        assert!(needs.second_passkey && needs.kratos_passkey && !needs.service_passkey);
        let needs = Needs::of([Mode::LoginTokenNoEvents]);
        assert!(needs.second_passkey && !needs.service_passkey);
        let needs = Needs::of([Mode::LoginCookie, Mode::Register]);
        assert!(needs.service_passkey && !needs.second_passkey && !needs.kratos_passkey);
        assert!(!needs.kratos_v26_passkey);
        let needs = Needs::of([Mode::KratosNativeV26]);
        assert!(needs.kratos_v26_passkey && !needs.kratos_passkey && !needs.service_passkey);
    }

    #[test]
    fn a_native_api_login_must_answer_a_token_and_an_active_session() {
        let ok = json!({"session_token": "ory_st_x", "session": {"id": "s", "active": true}});
        check_native_api_answer(&ok).unwrap();
        for bad in [
            json!({"session": {"active": true}}),
            json!({"session_token": "", "session": {"active": true}}),
            json!({"session_token": "ory_st_x"}),
            json!({"session_token": "ory_st_x", "session": {"active": false}}),
        ] {
            assert!(check_native_api_answer(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
