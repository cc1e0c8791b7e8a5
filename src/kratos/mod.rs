//! The Kratos boundary: a thin typed client for the few Kratos calls this
//! service depends on. It reads only the fields the service needs and maps
//! every HTTP status explicitly (see docs/src/architecture.md, "Why a thin
//! typed Kratos client", for why this is not ory-kratos-client).

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, COOKIE, SET_COOKIE, USER_AGENT};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;
use url::Url;
use uuid::Uuid;

use std::sync::Arc;

use crate::configuration::KratosSettings;
use crate::domain::{IdentityId, KratosSessionId, SessionDelivery};
use crate::login_marker::{self, LoginMarker};
use crate::metrics::Metrics;

pub mod credentials;
pub mod sessions;

#[derive(Debug, thiserror::Error)]
pub enum KratosError {
    #[error("Kratos could not be reached for {operation}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("Kratos answered {status} to {operation}")]
    Overloaded {
        operation: &'static str,
        status: StatusCode,
    },
    #[error("Kratos does not recognise the session")]
    Unauthorized,
    #[error("Kratos has no such identity")]
    IdentityNotFound,
    #[error("Kratos refused to issue a session: the identity is disabled")]
    IdentityDisabled,
    #[error("Kratos requires a second factor for this session")]
    Aal2Required { redirect_browser_to: Option<String> },
    #[error("Kratos answered {status} to {operation}: {detail}")]
    UnexpectedStatus {
        operation: &'static str,
        status: StatusCode,
        detail: String,
    },
    #[error("Kratos's answer to {operation} could not be read")]
    Decode {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("Kratos issued session {session} for identity {owner}, not the one that logged in")]
    SessionOfAnotherIdentity {
        session: KratosSessionId,
        owner: IdentityId,
    },
    #[error("Kratos's answer to {operation} is not what minting needs: {detail}")]
    Protocol {
        operation: &'static str,
        detail: String,
    },
}

/// How the caller proved its Kratos session.
#[derive(Clone)]
pub enum SessionCredential {
    /// The value of Kratos's session cookie.
    Cookie(SecretString),
    /// A session token (`X-Session-Token` or `Authorization: Bearer`).
    Token(SecretString),
}

impl std::fmt::Debug for SessionCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionCredential::Cookie(_) => f.write_str("Cookie([redacted])"),
            SessionCredential::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

/// What `whoami` tells us about a session.
#[derive(Debug, Clone, Deserialize)]
pub struct KratosSession {
    pub id: KratosSessionId,
    #[serde(default)]
    pub active: bool,
    pub authenticated_at: DateTime<Utc>,
    #[serde(default)]
    pub authenticator_assurance_level: Option<String>,
    pub identity: KratosIdentity,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KratosIdentity {
    pub id: IdentityId,
    #[serde(default)]
    pub traits: Value,
    /// What the operator set on the identity (per-group authenticator rules).
    #[serde(default)]
    pub metadata_public: Value,
}

/// The browser's details, forwarded so the minted session's device is right.
#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
}

/// A freshly minted Kratos session: the credential that carries it, and the
/// admin recovery flow that issued it. Its id takes a `whoami` to learn
/// (`minted_session`), which the login does not wait for.
pub struct MintedSession {
    pub recovery_flow_id: Uuid,
    pub credential: MintedCredential,
}

/// A mint that did not hand back a session.
#[derive(Debug)]
pub struct MintFailure {
    pub error: KratosError,
    /// The admin recovery flow, when its code was created.
    pub recovery_flow_id: Option<Uuid>,
    /// Kratos may have issued a session all the same: the redemption was
    /// sent and no refusal came back (the answer was lost, unreadable, or
    /// carried neither a token nor a cookie).
    pub session_may_exist: bool,
}

pub enum MintedCredential {
    Token(SecretString),
    /// `Set-Cookie` header values exactly as Kratos sent them.
    Cookies(Vec<String>),
}

#[derive(Clone)]
pub struct KratosClient {
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    public_url: Url,
    admin_url: Url,
    cookie_name: String,
}

#[derive(Deserialize)]
struct RecoveryCodeResponse {
    recovery_link: Url,
    recovery_code: SecretString,
}

#[derive(Deserialize)]
struct RecoveryFlowResponse {
    state: Option<String>,
    #[serde(default)]
    continue_with: Vec<Value>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    redirect_browser_to: Option<String>,
}

impl KratosClient {
    pub fn new(settings: &KratosSettings, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // Kratos's answers are relayed (cookies) or read; never followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            metrics,
            http,
            public_url: settings.public_url.clone(),
            admin_url: settings.admin_url.clone(),
            cookie_name: settings.session_cookie_name.clone(),
        })
    }

    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    fn public(&self, path: &str) -> Url {
        join(&self.public_url, path)
    }

    fn admin(&self, path: &str) -> Url {
        join(&self.admin_url, path)
    }

    /// `GET /sessions/whoami` with only the caller's session credential:
    /// the fields the service reads, and the whole answer as Kratos sent it
    /// (parsed only by the callers that relay it).
    pub async fn whoami(
        &self,
        credential: &SessionCredential,
    ) -> Result<(KratosSession, Vec<u8>), KratosError> {
        const OP: &str = "whoami";
        let _timer = self.metrics.kratos_timer(OP);
        let mut request = self
            .http
            .get(self.public("sessions/whoami"))
            .header(ACCEPT, "application/json");
        request = match credential {
            SessionCredential::Cookie(value) => request.header(
                COOKIE,
                format!("{}={}", self.cookie_name, value.expose_secret()),
            ),
            SessionCredential::Token(token) => {
                request.header("X-Session-Token", token.expose_secret())
            }
        };
        let response = self.send(OP, request).await?;
        match response.status() {
            StatusCode::OK => {
                let raw = response.bytes().await.map_err(decode(OP))?.to_vec();
                // Only the fields it names: the rest of the answer is skipped.
                let session: KratosSession =
                    serde_json::from_slice(&raw).map_err(|e| KratosError::Protocol {
                        operation: OP,
                        detail: e.to_string(),
                    })?;
                if !session.active {
                    return Err(KratosError::Unauthorized);
                }
                Ok((session, raw))
            }
            StatusCode::UNAUTHORIZED => Err(KratosError::Unauthorized),
            StatusCode::FORBIDDEN => {
                let envelope: Option<ErrorEnvelope> = response.json().await.ok();
                Err(KratosError::Aal2Required {
                    redirect_browser_to: envelope.and_then(|e| e.redirect_browser_to),
                })
            }
            status => Err(unexpected(OP, status, response).await),
        }
    }

    /// `GET /admin/identities/{id}`; `None` when Kratos has no such identity.
    pub async fn identity(&self, id: IdentityId) -> Result<Option<KratosIdentity>, KratosError> {
        self.admin_get_optional(
            "get_identity",
            self.admin(&format!("admin/identities/{id}")),
        )
        .await
    }

    /// An admin API `GET` of one object; `None` on 404.
    async fn admin_get_optional<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        url: Url,
    ) -> Result<Option<T>, KratosError> {
        let _timer = self.metrics.kratos_timer(operation);
        let response = self.admin_get(operation, url).await?;
        match response.status() {
            StatusCode::OK => Ok(Some(response.json().await.map_err(decode(operation))?)),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(unexpected(operation, status, response).await),
        }
    }

    /// Sends an admin API `GET` for JSON; the caller reads the answer (and
    /// times the whole call).
    async fn admin_get(
        &self,
        operation: &'static str,
        url: Url,
    ) -> Result<reqwest::Response, KratosError> {
        self.send(
            operation,
            self.http.get(url).header(ACCEPT, "application/json"),
        )
        .await
    }

    /// Finds the identity whose credentials use `identifier` (an email).
    pub async fn identity_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<KratosIdentity>, KratosError> {
        const OP: &str = "find_identity";
        let _timer = self.metrics.kratos_timer(OP);
        let mut url = self.admin("admin/identities");
        url.query_pairs_mut()
            .append_pair("credentials_identifier", identifier);
        let response = self.admin_get(OP, url).await?;
        match response.status() {
            StatusCode::OK => {
                let mut found: Vec<KratosIdentity> = response.json().await.map_err(decode(OP))?;
                Ok(if found.len() == 1 { found.pop() } else { None })
            }
            status => Err(unexpected(OP, status, response).await),
        }
    }

    /// Mints a genuine Kratos session for `identity`: an admin-created
    /// recovery code, redeemed by this service against Kratos's public
    /// recovery endpoint (see DESIGN.md, "Minting a Kratos session").
    /// Kratos itself refuses deleted (`IdentityNotFound`) and disabled
    /// (`IdentityDisabled`) identities, so no separate check is needed.
    /// The redemption carries the flow's mark, so the after-recovery hooks
    /// can tell this login from a real recovery (`crate::login_marker`).
    #[tracing::instrument(name = "mint_session", skip_all)]
    pub async fn mint_session(
        &self,
        identity: IdentityId,
        delivery: SessionDelivery,
        client: &ClientContext,
        marker: &LoginMarker,
    ) -> Result<MintedSession, MintFailure> {
        let (recovery_flow_id, code) = self
            .create_recovery_code(identity, delivery)
            .await
            .map_err(|error| MintFailure {
                error,
                recovery_flow_id: None,
                session_may_exist: false,
            })?;
        let credential = self
            .redeem_recovery_code(
                recovery_flow_id,
                &code,
                &marker.mark(recovery_flow_id),
                client,
            )
            .await
            .map_err(|error| MintFailure {
                session_may_exist: redemption_may_have_minted(&error),
                recovery_flow_id: Some(recovery_flow_id),
                error,
            })?;
        Ok(MintedSession {
            recovery_flow_id,
            credential,
        })
    }

    /// The credential a minted session is presented with to `whoami`.
    pub fn presented(&self, credential: &MintedCredential) -> Option<SessionCredential> {
        match credential {
            MintedCredential::Token(token) => Some(SessionCredential::Token(token.clone())),
            MintedCredential::Cookies(cookies) => self
                .session_cookie_value(cookies)
                .map(SessionCredential::Cookie),
        }
    }

    /// The minted session as `whoami` answers it, checked to belong to
    /// `identity`. One that does not (never expected of Kratos) is revoked
    /// before the error is answered: it must not stay usable.
    pub async fn minted_session(
        &self,
        credential: &SessionCredential,
        identity: IdentityId,
    ) -> Result<(KratosSession, Vec<u8>), KratosError> {
        let (session, raw) = self.whoami(credential).await?;
        if session.identity.id != identity {
            if let Err(error) = self.revoke_session(session.id).await {
                tracing::error!(session = %session.id, cause = ?crate::cause_chain::CauseChain(&error), "revoking a session of another identity failed");
            }
            return Err(KratosError::SessionOfAnotherIdentity {
                session: session.id,
                owner: session.identity.id,
            });
        }
        Ok((session, raw))
    }

    /// `DELETE /admin/sessions/{id}`: revokes a session.
    pub async fn revoke_session(&self, id: KratosSessionId) -> Result<(), KratosError> {
        const OP: &str = "revoke_session";
        let _timer = self.metrics.kratos_timer(OP);
        let request = self
            .http
            .delete(self.admin(&format!("admin/sessions/{id}")));
        let response = self.send(OP, request).await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            status => Err(unexpected(OP, status, response).await),
        }
    }

    async fn create_recovery_code(
        &self,
        identity: IdentityId,
        delivery: SessionDelivery,
    ) -> Result<(Uuid, SecretString), KratosError> {
        const OP: &str = "create_recovery_code";
        let _timer = self.metrics.kratos_timer(OP);
        let flow_type = match delivery {
            SessionDelivery::Cookie => "browser",
            SessionDelivery::Token => "api",
        };
        let request = self
            .http
            .post(self.admin("admin/recovery/code"))
            .header(ACCEPT, "application/json")
            .json(&serde_json::json!({
                "identity_id": identity,
                "expires_in": "30s",
                "flow_type": flow_type,
            }));
        let response = self.send(OP, request).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                let body: RecoveryCodeResponse = response.json().await.map_err(decode(OP))?;
                let flow_id = body
                    .recovery_link
                    .query_pairs()
                    .find(|(k, _)| k == "flow")
                    .and_then(|(_, v)| Uuid::parse_str(&v).ok())
                    .ok_or_else(|| KratosError::Protocol {
                        operation: OP,
                        detail: "recovery_link has no flow id".into(),
                    })?;
                Ok((flow_id, body.recovery_code))
            }
            StatusCode::NOT_FOUND => Err(KratosError::IdentityNotFound),
            status => Err(unexpected(OP, status, response).await),
        }
    }

    async fn redeem_recovery_code(
        &self,
        flow_id: Uuid,
        code: &SecretString,
        mark: &str,
        client: &ClientContext,
    ) -> Result<MintedCredential, KratosError> {
        const OP: &str = "redeem_recovery_code";
        let _timer = self.metrics.kratos_timer(OP);
        let mut url = self.public("self-service/recovery");
        url.query_pairs_mut()
            .append_pair("flow", &flow_id.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(ua) = client
            .user_agent
            .as_deref()
            .and_then(|ua| HeaderValue::from_str(ua).ok())
        {
            headers.insert(USER_AGENT, ua);
        }
        if let Some(ip) = client.ip {
            if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
                headers.insert("X-Forwarded-For", value);
            }
        }
        let request = self
            .http
            .post(url)
            .headers(headers)
            .json(&serde_json::json!({
                "method": "code",
                "code": code.expose_secret(),
                "transient_payload": { login_marker::FIELD: mark },
            }));
        let response = self.send(OP, request).await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            // A code this service just created is valid: Kratos (v1.3.1 to
            // v26.2.0) refuses to activate a session for a disabled
            // identity with 401.
            return Err(KratosError::IdentityDisabled);
        }
        if status != StatusCode::OK {
            let body = response.json::<Value>().await.ok();
            // Kratos's development branch after v26.2.0 refuses it with
            // 400 and the error id `identity_disabled` instead.
            if status == StatusCode::BAD_REQUEST
                && error_id(body.as_ref()) == Some("identity_disabled")
            {
                return Err(KratosError::IdentityDisabled);
            }
            return Err(unexpected_body(OP, status, body));
        }
        let cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| self.is_session_cookie(v))
            .map(str::to_string)
            .collect();
        let body: RecoveryFlowResponse = response.json().await.map_err(decode(OP))?;
        if body.state.as_deref() != Some("passed_challenge") {
            return Err(KratosError::Protocol {
                operation: OP,
                detail: format!("flow state is {:?}, not passed_challenge", body.state),
            });
        }
        let token = body.continue_with.iter().find_map(|item| {
            (item.get("action")?.as_str()? == "set_ory_session_token")
                .then(|| item.get("ory_session_token")?.as_str())
                .flatten()
                .map(|t| SecretString::from(t.to_string()))
        });
        match (token, cookies.is_empty()) {
            (Some(token), _) => Ok(MintedCredential::Token(token)),
            (None, false) => Ok(MintedCredential::Cookies(cookies)),
            (None, true) => Err(KratosError::Protocol {
                operation: OP,
                detail: "neither a session token nor a session cookie came back".into(),
            }),
        }
    }

    fn is_session_cookie(&self, value: &str) -> bool {
        value
            .split_once('=')
            .is_some_and(|(name, _)| name.trim() == self.cookie_name)
    }

    fn session_cookie_value(&self, cookies: &[String]) -> Option<SecretString> {
        cookies.iter().find_map(|c| {
            let (_, rest) = c.split_once('=')?;
            let value = rest.split(';').next()?.trim();
            (!value.is_empty()).then(|| SecretString::from(value.to_string()))
        })
    }

    /// Sends one call to Kratos in a client span named for `operation`,
    /// carrying that span's W3C trace context: Kratos's own spans for the
    /// call (when it traces) join the caller's trace as its children.
    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, KratosError> {
        let span = tracing::info_span!(
            "kratos",
            otel.name = %format_args!("kratos {operation}"),
            otel.kind = "client",
            kratos.operation = operation,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let request = request.headers(crate::telemetry::trace_headers(&span));
        let result = request.send().instrument(span.clone()).await;
        match &result {
            Ok(response) => span.record("http.response.status_code", response.status().as_u16()),
            Err(_) => span.record("otel.status_code", "ERROR"),
        };
        result.map_err(unavailable(operation))
    }

    /// Kratos's own readiness, through the admin API.
    pub async fn ready(&self) -> Result<(), KratosError> {
        const OP: &str = "health";
        let _timer = self.metrics.kratos_timer(OP);
        let request = self.http.get(self.admin("admin/health/ready"));
        let response = self.send(OP, request).await?;
        match response.status() {
            StatusCode::OK => Ok(()),
            status => Err(unexpected(OP, status, response).await),
        }
    }
}

/// `path` under `base`, keeping any path prefix `base` has (`https://example.org/.ory`).
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}/{path}"));
    url
}

/// Whether a failed redemption may still have left a session in Kratos:
/// only a refusal Kratos answered, or a connection never made, says not.
fn redemption_may_have_minted(error: &KratosError) -> bool {
    match error {
        KratosError::Unavailable { source, .. } => !source.is_connect(),
        KratosError::Decode { .. } | KratosError::Protocol { .. } => true,
        _ => false,
    }
}

fn unavailable(operation: &'static str) -> impl FnOnce(reqwest::Error) -> KratosError {
    move |source| KratosError::Unavailable { operation, source }
}

fn decode(operation: &'static str) -> impl FnOnce(reqwest::Error) -> KratosError {
    move |source| {
        if source.is_timeout() {
            KratosError::Unavailable { operation, source }
        } else {
            KratosError::Decode { operation, source }
        }
    }
}

/// Reads at most a short excerpt of an unexpected answer, for the logs.
/// Kratos's error bodies carry ids and reasons, never the secrets we sent.
async fn unexpected(
    operation: &'static str,
    status: StatusCode,
    response: reqwest::Response,
) -> KratosError {
    unexpected_body(operation, status, response.json::<Value>().await.ok())
}

/// Kratos's error id (`error.id`) in an answer's body.
fn error_id(body: Option<&Value>) -> Option<&str> {
    body?.get("error")?.get("id")?.as_str()
}

fn unexpected_body(
    operation: &'static str,
    status: StatusCode,
    body: Option<Value>,
) -> KratosError {
    let detail = match body {
        Some(body) => body
            .get("error")
            .map(|e| {
                format!(
                    "{} {}",
                    e.get("id").and_then(Value::as_str).unwrap_or(""),
                    e.get("reason")
                        .or_else(|| e.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                )
            })
            .unwrap_or_else(|| "no error object".to_string()),
        None => "unreadable body".to_string(),
    };
    if matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    ) {
        return KratosError::Overloaded { operation, status };
    }
    KratosError::UnexpectedStatus {
        operation,
        status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_id_is_read_from_the_error_object() {
        let body = serde_json::json!({"error": {"id": "identity_disabled", "code": 400}});
        assert_eq!(error_id(Some(&body)), Some("identity_disabled"));
        assert_eq!(error_id(Some(&serde_json::json!({"error": {}}))), None);
        assert_eq!(error_id(None), None);
    }

    #[test]
    fn join_keeps_base_paths() {
        let base = Url::parse("http://kratos:4433/").expect("url");
        assert_eq!(
            join(&base, "sessions/whoami").as_str(),
            "http://kratos:4433/sessions/whoami"
        );
        let prefixed = Url::parse("https://example.org/.ory").expect("url");
        assert_eq!(
            join(&prefixed, "sessions/whoami").as_str(),
            "https://example.org/.ory/sessions/whoami"
        );
    }

    #[test]
    fn credentials_do_not_print() {
        let credential = SessionCredential::Token(SecretString::from("ory_st_secret".to_string()));
        assert!(!format!("{credential:?}").contains("ory_st_secret"));
    }
}
