//! The HTTP error boundary: every refusal the service answers, each mapped
//! once to a status and a stable id. The body shape follows Kratos's own:
//! `{"error": {"id", "code", "status", "reason", "message"}, "redirect_browser_to"?}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::authenticator_policy::Refusal;
use crate::cause_chain::CauseChain;
use crate::domain::PasskeyNameError;
use crate::kratos::KratosError;
use crate::store::StoreError;
use crate::webauthn_policy::CeremonyFailure;

/// Every stable error id the service answers with; clients branch on these.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorId {
    SessionRequired,
    SessionAal2Required,
    SessionRefreshRequired,
    OriginNotAllowed,
    MalformedRequest,
    BodyTooLarge,
    UnsupportedMediaType,
    InvalidPasskeyName,
    PrfSaltInvalid,
    PrfNeedsIdentifier,
    PrfDisabled,
    PrfOutputPresent,
    CeremonyNotFound,
    CeremonyExpired,
    OriginMismatch,
    RpIdMismatch,
    ChallengeMismatch,
    UserVerificationMissing,
    UserPresenceMissing,
    ResidentKeyMissing,
    AttachmentMismatch,
    SignatureInvalid,
    AttestationInvalid,
    AttestationRequired,
    AuthenticatorNotAllowed,
    AuthenticatorNotCertified,
    AuthenticatorRevoked,
    CredentialInvalid,
    UserHandleMismatch,
    UserHandleMissing,
    CredentialAlreadyRegistered,
    PasskeyNameTaken,
    PasskeyLimitReached,
    PasskeyNotFound,
    LastSignInMethod,
    CredentialUnknown,
    CredentialCloned,
    SignatureCounterBehind,
    IdentityInactive,
    IdentityNotFound,
    SessionNotMinted,
    WebhookUnauthorized,
    AdminUnauthorized,
    RateLimited,
    NotFound,
    MethodNotAllowed,
    KratosUnavailable,
    KratosError,
    KratosMintFailed,
    DatabaseUnavailable,
    InternalError,
}

impl ErrorId {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The HTTP status every refusal with this id answers with.
    pub fn status(self) -> StatusCode {
        use ErrorId as E;
        match self {
            E::SessionRequired | E::WebhookUnauthorized | E::AdminUnauthorized => {
                StatusCode::UNAUTHORIZED
            }
            E::SessionAal2Required
            | E::SessionRefreshRequired
            | E::OriginNotAllowed
            | E::CredentialCloned
            | E::AttestationRequired
            | E::AuthenticatorNotAllowed
            | E::AuthenticatorNotCertified
            | E::AuthenticatorRevoked
            | E::IdentityInactive => StatusCode::FORBIDDEN,
            E::MalformedRequest
            | E::InvalidPasskeyName
            | E::PrfSaltInvalid
            | E::PrfNeedsIdentifier
            | E::PrfDisabled
            | E::PrfOutputPresent
            | E::OriginMismatch
            | E::RpIdMismatch
            | E::ChallengeMismatch
            | E::UserVerificationMissing
            | E::UserPresenceMissing
            | E::ResidentKeyMissing
            | E::AttachmentMismatch
            | E::SignatureInvalid
            | E::AttestationInvalid
            | E::CredentialInvalid
            | E::UserHandleMismatch
            | E::UserHandleMissing
            | E::CredentialUnknown => StatusCode::BAD_REQUEST,
            E::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            E::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            E::CeremonyNotFound
            | E::PasskeyNotFound
            | E::IdentityNotFound
            | E::SessionNotMinted
            | E::NotFound => StatusCode::NOT_FOUND,
            E::CeremonyExpired => StatusCode::GONE,
            E::CredentialAlreadyRegistered
            | E::PasskeyNameTaken
            | E::PasskeyLimitReached
            | E::SignatureCounterBehind
            | E::LastSignInMethod => StatusCode::CONFLICT,
            E::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            E::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            E::KratosUnavailable | E::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            E::KratosError | E::KratosMintFailed => StatusCode::BAD_GATEWAY,
            E::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<CeremonyFailure> for ErrorId {
    fn from(failure: CeremonyFailure) -> Self {
        match failure {
            CeremonyFailure::OriginMismatch => ErrorId::OriginMismatch,
            CeremonyFailure::RpIdMismatch => ErrorId::RpIdMismatch,
            CeremonyFailure::ChallengeMismatch => ErrorId::ChallengeMismatch,
            CeremonyFailure::UserVerificationMissing => ErrorId::UserVerificationMissing,
            CeremonyFailure::UserPresenceMissing => ErrorId::UserPresenceMissing,
            CeremonyFailure::SignatureInvalid => ErrorId::SignatureInvalid,
            CeremonyFailure::AttestationInvalid => ErrorId::AttestationInvalid,
            CeremonyFailure::CredentialInvalid => ErrorId::CredentialInvalid,
            CeremonyFailure::UserHandleMismatch => ErrorId::UserHandleMismatch,
            CeremonyFailure::UserHandleMissing => ErrorId::UserHandleMissing,
            CeremonyFailure::CounterRegression => ErrorId::CredentialCloned,
            CeremonyFailure::ResidentKeyMissing => ErrorId::ResidentKeyMissing,
            CeremonyFailure::AttachmentMismatch => ErrorId::AttachmentMismatch,
        }
    }
}

impl From<Refusal> for ErrorId {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotAllowed => ErrorId::AuthenticatorNotAllowed,
            Refusal::NotCertified => ErrorId::AuthenticatorNotCertified,
            Refusal::Revoked => ErrorId::AuthenticatorRevoked,
            Refusal::AttestationInvalid => ErrorId::AttestationInvalid,
            Refusal::AttestationRequired => ErrorId::AttestationRequired,
        }
    }
}

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
    #[error("{0}")]
    PrfInput(#[from] crate::prf::PrfInputError),
    #[error("the credential carries PRF outputs (clientExtensionResults.prf.results); they never leave the browser: remove them and send it again")]
    PrfOutputPresent,
    #[error("the ceremony does not exist, was already used, or belongs to someone else")]
    CeremonyNotFound,
    #[error("the ceremony expired; start again")]
    CeremonyExpired,
    #[error("{0}")]
    Ceremony(#[from] CeremonyFailure),
    #[error("{0}")]
    Authenticator(#[from] Refusal),
    #[error("this credential is already registered")]
    CredentialAlreadyRegistered,
    #[error("a passkey with this name already exists")]
    PasskeyNameTaken,
    #[error("this account already has {} passkeys, the most it may hold; remove one to add another", limit.get())]
    PasskeyLimitReached {
        limit: crate::configuration::PasskeysPerIdentity,
    },
    #[error("no such passkey")]
    PasskeyNotFound,
    #[error("this is the account's last way to sign in; add a password or another passkey first")]
    LastSignInMethod,
    #[error("this passkey is not registered")]
    CredentialUnknown,
    #[error(
        "this passkey's signature counter went backwards; it may have been cloned and is disabled"
    )]
    CredentialCloned,
    #[error("this passkey's signature counter is behind a login made with it moments ago; sign in again")]
    SignatureCounterBehind,
    #[error("this account is disabled")]
    IdentityInactive,
    #[error("this account no longer exists")]
    IdentityNotFound,
    #[error("no passkey login minted this Kratos session (a recovery, or another kind of login)")]
    SessionNotMinted,
    #[error("the webhook API key is missing or wrong")]
    WebhookUnauthorized,
    #[error("the admin API needs Authorization: Bearer with one of admin.api_keys")]
    AdminUnauthorized,
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
    pub fn id(&self) -> ErrorId {
        match self {
            ApiError::SessionRequired => ErrorId::SessionRequired,
            ApiError::Aal2Required { .. } => ErrorId::SessionAal2Required,
            ApiError::SessionRefreshRequired { .. } => ErrorId::SessionRefreshRequired,
            ApiError::OriginNotAllowed => ErrorId::OriginNotAllowed,
            ApiError::MalformedRequest(_) => ErrorId::MalformedRequest,
            ApiError::BodyTooLarge { .. } => ErrorId::BodyTooLarge,
            ApiError::UnsupportedMediaType => ErrorId::UnsupportedMediaType,
            ApiError::InvalidPasskeyName(_) => ErrorId::InvalidPasskeyName,
            ApiError::PrfInput(error) => match error {
                crate::prf::PrfInputError::SaltInvalid { .. } => ErrorId::PrfSaltInvalid,
                crate::prf::PrfInputError::NeedsIdentifier => ErrorId::PrfNeedsIdentifier,
                crate::prf::PrfInputError::Disabled => ErrorId::PrfDisabled,
            },
            ApiError::PrfOutputPresent => ErrorId::PrfOutputPresent,
            ApiError::CeremonyNotFound => ErrorId::CeremonyNotFound,
            ApiError::CeremonyExpired => ErrorId::CeremonyExpired,
            ApiError::Ceremony(failure) => ErrorId::from(*failure),
            ApiError::Authenticator(refusal) => ErrorId::from(*refusal),
            ApiError::CredentialAlreadyRegistered => ErrorId::CredentialAlreadyRegistered,
            ApiError::PasskeyNameTaken => ErrorId::PasskeyNameTaken,
            ApiError::PasskeyLimitReached { .. } => ErrorId::PasskeyLimitReached,
            ApiError::PasskeyNotFound => ErrorId::PasskeyNotFound,
            ApiError::LastSignInMethod => ErrorId::LastSignInMethod,
            ApiError::CredentialUnknown => ErrorId::CredentialUnknown,
            ApiError::CredentialCloned => ErrorId::CredentialCloned,
            ApiError::SignatureCounterBehind => ErrorId::SignatureCounterBehind,
            ApiError::IdentityInactive => ErrorId::IdentityInactive,
            ApiError::IdentityNotFound => ErrorId::IdentityNotFound,
            ApiError::SessionNotMinted => ErrorId::SessionNotMinted,
            ApiError::WebhookUnauthorized => ErrorId::WebhookUnauthorized,
            ApiError::AdminUnauthorized => ErrorId::AdminUnauthorized,
            ApiError::RateLimited { .. } => ErrorId::RateLimited,
            ApiError::NotFound => ErrorId::NotFound,
            ApiError::MethodNotAllowed => ErrorId::MethodNotAllowed,
            ApiError::KratosUnavailable(_) => ErrorId::KratosUnavailable,
            ApiError::KratosFailed(_) => ErrorId::KratosError,
            ApiError::KratosMintFailed(_) => ErrorId::KratosMintFailed,
            ApiError::DatabaseUnavailable(_) => ErrorId::DatabaseUnavailable,
            ApiError::Internal(_) => ErrorId::InternalError,
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

impl From<crate::recovery_hook::RecoveryHookError> for ApiError {
    fn from(error: crate::recovery_hook::RecoveryHookError) -> Self {
        use crate::recovery_hook::RecoveryHookError;
        match error {
            RecoveryHookError::Kratos(error) => error.into(),
            RecoveryHookError::Store(error) => error.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::DatabaseUnavailable(error),
            StoreError::CredentialAlreadyRegistered => ApiError::CredentialAlreadyRegistered,
            StoreError::NameTaken => ApiError::PasskeyNameTaken,
            StoreError::PasskeyLimitReached { limit } => ApiError::PasskeyLimitReached { limit },
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

/// The body of every refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
    /// Where the browser must go (Kratos's re-authentication or second factor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_browser_to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub id: ErrorId,
    /// The HTTP status code.
    pub code: u16,
    /// The HTTP status text.
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.id().status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error.id = self.id().as_str(), error.cause_chain = ?CauseChain(self), "request failed");
        } else {
            tracing::info!(error.id = self.id().as_str(), error.message = %self, "request refused");
        }
        let message = self.public_message();
        let body = ErrorResponse {
            error: ErrorDetail {
                id: self.id(),
                code: status.as_u16(),
                status: status.canonical_reason().unwrap_or("Error").to_string(),
                reason: message.clone(),
                message,
            },
            redirect_browser_to: self.redirect_browser_to().map(str::to_string),
        };
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::RateLimited { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs(*retry_after)));
            }
            ApiError::AdminUnauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceremony_failures_have_stable_ids() {
        for (failure, id) in [
            (CeremonyFailure::OriginMismatch, "origin_mismatch"),
            (CeremonyFailure::AttestationInvalid, "attestation_invalid"),
            (CeremonyFailure::CounterRegression, "credential_cloned"),
            (CeremonyFailure::UserHandleMissing, "user_handle_missing"),
        ] {
            assert_eq!(ErrorId::from(failure).as_str(), id);
        }
    }
}
