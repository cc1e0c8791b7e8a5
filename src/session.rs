//! The caller's Kratos session, validated through Kratos `whoami` on every
//! request that needs one.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, Method};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use url::Url;

use crate::configuration::{IdentitySettings, Settings};
use crate::domain::{IdentityId, KratosSessionId, UserDetails};
use crate::error::ApiError;
use crate::kratos::{KratosError, KratosIdentity, SessionCredential};
use crate::state::AppState;

/// How the caller presented its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    Cookie,
    Token,
}

/// A session Kratos vouched for.
#[derive(Debug, Clone)]
pub struct CallerSession {
    pub session_id: KratosSessionId,
    pub identity: KratosIdentity,
    pub authenticated_at: DateTime<Utc>,
    pub aal: Option<String>,
    pub presented: Presented,
}

impl CallerSession {
    pub fn identity_id(&self) -> IdentityId {
        self.identity.id
    }

    /// The WebAuthn user name and display name Kratos has for the person
    /// now, from the session's traits.
    pub fn user_details(&self, settings: &IdentitySettings) -> UserDetails {
        UserDetails::from_traits(
            self.identity.id,
            &self.identity.traits,
            &settings.name_trait,
            &settings.display_name_trait,
        )
    }

    /// Mirrors Kratos's privileged sessions: adding or removing a passkey
    /// needs a recent sign-in, otherwise the person is sent to Kratos's
    /// re-authentication and back.
    pub fn require_fresh(&self, settings: &Settings) -> Result<(), ApiError> {
        let max_age = chrono::Duration::from_std(settings.sessions.privileged_session_max_age)
            .unwrap_or(chrono::Duration::MAX);
        if Utc::now() - self.authenticated_at <= max_age {
            return Ok(());
        }
        Err(ApiError::SessionRefreshRequired {
            redirect_browser_to: refresh_url(settings).to_string(),
        })
    }
}

/// Kratos's re-authentication: `/self-service/login/browser?refresh=true&return_to=...`.
pub fn refresh_url(settings: &Settings) -> Url {
    let mut url = crate::kratos::join(&settings.kratos.browser_url, "self-service/login/browser");
    url.query_pairs_mut()
        .append_pair("refresh", "true")
        .append_pair("return_to", settings.sessions.refresh_return_to.as_str());
    url
}

/// Kratos's aal2 login for browsers, returning to `sessions.refresh_return_to`:
/// the URL Kratos's `whoami` names (`kratos_redirect`), or Kratos's default
/// when it names none, with `return_to` added when it has none. Every
/// endpoint that meets a pending second factor answers this same URL.
pub fn second_factor_url(settings: &Settings, kratos_redirect: Option<&str>) -> Url {
    let mut url = kratos_redirect
        .and_then(|r| Url::parse(r).ok())
        .unwrap_or_else(|| aal2_login(settings, "browser"));
    if !url.query_pairs().any(|(k, _)| k == "return_to") {
        url.query_pairs_mut()
            .append_pair("return_to", settings.sessions.refresh_return_to.as_str());
    }
    url
}

/// Kratos's aal2 API login, for token clients.
pub fn second_factor_api_url(settings: &Settings) -> Url {
    aal2_login(settings, "api")
}

/// `/self-service/login/{flow}?aal=aal2` where browsers and apps reach Kratos.
fn aal2_login(settings: &Settings, flow: &str) -> Url {
    let mut url = crate::kratos::join(
        &settings.kratos.browser_url,
        &format!("self-service/login/{flow}"),
    );
    url.query_pairs_mut().append_pair("aal", "aal2");
    url
}

/// Only Kratos's session cookie, `X-Session-Token`, or `Authorization: Bearer`
/// is forwarded to Kratos; a token wins over a cookie.
fn credential_from(req: &HttpRequest, cookie_name: &str) -> Option<(SessionCredential, Presented)> {
    let header_value = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(token) = header_value(header::HeaderName::from_static("x-session-token")) {
        return Some((
            SessionCredential::Token(SecretString::from(token.to_string())),
            Presented::Token,
        ));
    }
    if let Some(token) = header_value(header::AUTHORIZATION).and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    }) {
        return Some((
            SessionCredential::Token(SecretString::from(token.trim().to_string())),
            Presented::Token,
        ));
    }
    req.cookie(cookie_name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
        .map(|v| {
            (
                SessionCredential::Cookie(SecretString::from(v)),
                Presented::Cookie,
            )
        })
}

/// Cookies ride along on cross-site requests, so a state change made with a
/// cookie must come from an allowed page.
fn check_origin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::OriginNotAllowed)?;
    if state.is_allowed_origin(origin) {
        Ok(())
    } else {
        Err(ApiError::OriginNotAllowed)
    }
}

impl FromRequest for CallerSession {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("application state is missing"))
            })?;
            let (credential, presented) = credential_from(&req, state.kratos.cookie_name())
                .ok_or(ApiError::SessionRequired)?;
            if presented == Presented::Cookie {
                check_origin(&req, &state)?;
            }
            let (session, _) = state
                .kratos
                .whoami(&credential)
                .await
                .map_err(|e| match e {
                    KratosError::Aal2Required {
                        redirect_browser_to,
                    } => ApiError::Aal2Required {
                        redirect_browser_to: Some(
                            second_factor_url(&state.settings, redirect_browser_to.as_deref())
                                .to_string(),
                        ),
                    },
                    other => other.into(),
                })?;
            Ok(CallerSession {
                session_id: session.id,
                identity: session.identity,
                authenticated_at: session.authenticated_at,
                aal: session.authenticator_assurance_level,
                presented,
            })
        })
    }
}
