//! The HTTP error boundary: every refusal the service answers, each mapped
//! once to a status and a stable id. The body shape follows Kratos's own:
//! `{"error": {"id", "code", "status", "reason", "message"}, "redirect_browser_to"?}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::PasskeyNameError;
use crate::kratos::KratosError;
use crate::store::StoreError;
use crate::webauthn_policy::CeremonyFailure;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid Kratos session is required")]
    SessionRequired,
    #[error("Kratos requires a higher authenticator assurance level")]
    Aal2Required { redirect_browser_to: Option<String> },
    #[error("the session is too old for this action; sign in again")]
    SessionRefreshRequired { redirect_browser_to: String },
    #[error("the request's Origin is not allowed")]
    OriginNotAllowed,
    #[error("the request body is not valid: {0}")]
    MalformedRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("invalid passkey name: {0}")]
    InvalidPasskeyName(#[from] PasskeyNameError),
    #[error("the ceremony does not exist, was already used, or belongs to someone else")]
    CeremonyNotFound,
    #[error("the ceremony expired; start again")]
    CeremonyExpired,
    #[error("{0}")]
    Ceremony(#[from] CeremonyFailure),
    #[error("this credential is already registered")]
    CredentialAlreadyRegistered,
    #[error("a passkey with this name already exists")]
    PasskeyNameTaken,
    #[error("no such passkey")]
    PasskeyNotFound,
    #[error("this passkey is not registered")]
    CredentialUnknown,
    #[error(
        "this passkey's signature counter went backwards; it may have been cloned and is disabled"
    )]
    CredentialCloned,
    #[error("this account is disabled")]
    IdentityInactive,
    #[error("this account no longer exists")]
    IdentityNotFound,
    #[error("the webhook API key is missing or wrong")]
    WebhookUnauthorized,
    #[error("too many requests; try again in {} s", retry_after_secs(*.retry_after))]
    RateLimited { retry_after: std::time::Duration },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("Kratos is unavailable; try again shortly")]
    KratosUnavailable(#[source] KratosError),
    #[error("Kratos answered unexpectedly")]
    KratosFailed(#[source] KratosError),
    #[error("Kratos did not issue a session")]
    KratosMintFailed(#[source] KratosError),
    #[error("the database is unavailable; try again shortly")]
    DatabaseUnavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The stable id clients branch on.
    pub fn id(&self) -> &'static str {
        match self {
            ApiError::SessionRequired => "session_required",
            ApiError::Aal2Required { .. } => "session_aal2_required",
            ApiError::SessionRefreshRequired { .. } => "session_refresh_required",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::MalformedRequest(_) => "malformed_request",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::InvalidPasskeyName(_) => "invalid_passkey_name",
            ApiError::CeremonyNotFound => "ceremony_not_found",
            ApiError::CeremonyExpired => "ceremony_expired",
            ApiError::Ceremony(failure) => failure.id(),
            ApiError::CredentialAlreadyRegistered => "credential_already_registered",
            ApiError::PasskeyNameTaken => "passkey_name_taken",
            ApiError::PasskeyNotFound => "passkey_not_found",
            ApiError::CredentialUnknown => "credential_unknown",
            ApiError::CredentialCloned => "credential_cloned",
            ApiError::IdentityInactive => "identity_inactive",
            ApiError::IdentityNotFound => "identity_not_found",
            ApiError::WebhookUnauthorized => "webhook_unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::KratosUnavailable(_) => "kratos_unavailable",
            ApiError::KratosFailed(_) => "kratos_error",
            ApiError::KratosMintFailed(_) => "kratos_mint_failed",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn redirect_browser_to(&self) -> Option<&str> {
        match self {
            ApiError::Aal2Required {
                redirect_browser_to,
            } => redirect_browser_to.as_deref(),
            ApiError::SessionRefreshRequired {
                redirect_browser_to,
            } => Some(redirect_browser_to),
            _ => None,
        }
    }

    /// What the caller may read: internals never leak.
    fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "An internal error occurred.".to_string(),
            ApiError::KratosFailed(_) | ApiError::KratosMintFailed(_) => {
                format!("{self}. The cause was logged.")
            }
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::DatabaseUnavailable(error),
            StoreError::CredentialAlreadyRegistered => ApiError::CredentialAlreadyRegistered,
            StoreError::NameTaken => ApiError::PasskeyNameTaken,
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<KratosError> for ApiError {
    fn from(error: KratosError) -> Self {
        match error {
            KratosError::Unavailable { .. } | KratosError::Overloaded { .. } => {
                ApiError::KratosUnavailable(error)
            }
            KratosError::Unauthorized => ApiError::SessionRequired,
            KratosError::Aal2Required {
                ref redirect_browser_to,
            } => ApiError::Aal2Required {
                redirect_browser_to: redirect_browser_to.clone(),
            },
            other => ApiError::KratosFailed(other),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_browser_to: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    id: &'a str,
    code: u16,
    status: &'a str,
    reason: String,
    message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::SessionRequired | ApiError::WebhookUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Aal2Required { .. }
            | ApiError::SessionRefreshRequired { .. }
            | ApiError::OriginNotAllowed
            | ApiError::CredentialCloned
            | ApiError::IdentityInactive => StatusCode::FORBIDDEN,
            ApiError::MalformedRequest(_)
            | ApiError::InvalidPasskeyName(_)
            | ApiError::Ceremony(_)
            | ApiError::CredentialUnknown => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::CeremonyNotFound
            | ApiError::PasskeyNotFound
            | ApiError::IdentityNotFound
            | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::CeremonyExpired => StatusCode::GONE,
            ApiError::CredentialAlreadyRegistered | ApiError::PasskeyNameTaken => {
                StatusCode::CONFLICT
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::KratosUnavailable(_) | ApiError::DatabaseUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::KratosFailed(_) | ApiError::KratosMintFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error.id = self.id(), error.cause_chain = ?CauseChain(self), "request failed");
        } else {
            tracing::info!(error.id = self.id(), error.message = %self, "request refused");
        }
        let message = self.public_message();
        let body = ErrorBody {
            error: ErrorDetail {
                id: self.id(),
                code: status.as_u16(),
                status: status.canonical_reason().unwrap_or("Error"),
                reason: message.clone(),
                message: &message,
            },
            redirect_browser_to: self.redirect_browser_to(),
        };
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::RateLimited { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs(*retry_after)));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, 1));
            }
            _ => {}
        }
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        response.json(body)
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` carries.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// Formats an error with every `source()` below it, for the logs.
pub struct CauseChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Debug for CauseChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut current = self.0.source();
        while let Some(cause) = current {
            write!(f, ": {cause}")?;
            current = cause.source();
        }
        Ok(())
    }
}
