//! Passkey login that ends in a genuine Kratos session:
//! `POST /passkeys/login/options`, then `POST /passkeys/login/verify`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential};

use crate::domain::{CeremonyId, IdentityId, LoginIdentifier, PasskeyId, SessionDelivery};
use crate::error::ApiError;
use crate::kratos::{ClientContext, KratosError, MintedCredential, MintedSession};
use crate::limits::client_ip;
use crate::metrics::Outcome;
use crate::routes::ceremonies::{open_ceremony, take_ceremony, CeremonyStarted};
use crate::routes::counted;
use crate::startup::AppState;
use crate::store::{CeremonyKind, LoginUpdate, PasskeyRow};
use crate::webauthn_policy::CeremonyFailure;

const KIND: &str = "login";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsRequest {
    /// An email: `allowCredentials` then lists that identity's passkeys.
    /// Without it the login is discoverable (usernameless, autofill-ready).
    #[schema(min_length = 1, max_length = 320)]
    #[serde(default)]
    identifier: Option<String>,
}

/// Start a passkey login (no session needed).
#[utoipa::path(
    post,
    path = "/passkeys/login/options",
    tag = "login",
    request_body = OptionsRequest,
    responses(
        (status = 200, description = "Request options and the ceremony id", body = CeremonyStarted),
        (status = 400, description = "`malformed_request`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 429, description = "`rate_limited`: per client IP, or too many open ceremonies", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn options(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<OptionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = client_context(&state, &req);
    let started = async {
        limit_client(&state, &client)?;
        let identifier = match body.identifier.as_deref() {
            Some(raw) => Some(LoginIdentifier::parse(raw).ok_or_else(|| {
                ApiError::MalformedRequest("identifier must be a non-empty email".into())
            })?),
            None => None,
        };
        start_login(&state, identifier, client_key(&client)).await
    }
    .await;
    let started = counted(&state.metrics, KIND, Outcome::Started, started)?;
    Ok(HttpResponse::Ok().json(started))
}

/// Without an identifier: a discoverable login (modal or autofill). With
/// one: `allowCredentials` lists that identity's passkeys. An unknown
/// identifier answers exactly like a known one without passkeys.
async fn start_login(
    state: &AppState,
    identifier: Option<LoginIdentifier>,
    client_key: String,
) -> Result<CeremonyStarted, ApiError> {
    let allow = match identifier {
        Some(identifier) => allowed_credentials(state, &identifier).await?,
        None => Vec::new(),
    };
    let started = state
        .policy
        .start_login(allow)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("starting login: {e}")))?;
    open_ceremony(state, CeremonyKind::Login, None, None, client_key, started).await
}

async fn allowed_credentials(
    state: &AppState,
    identifier: &LoginIdentifier,
) -> Result<Vec<(Vec<u8>, Vec<String>)>, ApiError> {
    let Some(identity) = state
        .kratos
        .identity_by_identifier(identifier.as_str())
        .await?
    else {
        return Ok(Vec::new());
    };
    let rows = state.store.passkeys(identity.id).await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.flagged_at.is_none())
        .map(|row| (row.credential_id, row.transports))
        .collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[schema(value_type = uuid::Uuid)]
    ceremony_id: CeremonyId,
    /// What `PublicKeyCredential.toJSON()` produces for the assertion.
    #[schema(value_type = Object)]
    credential: PublicKeyCredential,
    /// `cookie` (default): Kratos's session cookie is relayed; `token`: the
    /// session token is in the body.
    #[serde(default)]
    session: SessionDelivery,
}

/// A minted Kratos session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// Only with `"session": "token"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
    /// The session as Kratos's `whoami` returns it (no secrets inside).
    #[schema(value_type = Object)]
    session: Value,
}

/// Finish a passkey login and mint a genuine Kratos session.
#[utoipa::path(
    post,
    path = "/passkeys/login/verify",
    tag = "login",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The Kratos session (cookie mode: with Kratos's `Set-Cookie`)", body = LoginAnswer),
        (status = 400, description = "`malformed_request`, `credential_unknown`, `user_handle_mismatch`, `origin_mismatch`, `rp_id_mismatch`, `challenge_mismatch`, `user_verification_missing`, `user_presence_missing`, `signature_invalid`, `credential_invalid`", body = crate::error::ErrorResponse),
        (status = 403, description = "`credential_cloned`, `identity_inactive`", body = crate::error::ErrorResponse),
        (status = 404, description = "`ceremony_not_found`, `identity_not_found`", body = crate::error::ErrorResponse),
        (status = 410, description = "`ceremony_expired`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 429, description = "`rate_limited`: per client IP or failed logins per identity", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`, `kratos_mint_failed`", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let client = client_context(&state, &req);
    let minted = async {
        limit_client(&state, &client)?;
        finish_login(
            &state,
            body.ceremony_id,
            &body.credential,
            body.session,
            &client,
        )
        .await
    }
    .await;
    let minted = counted(&state.metrics, KIND, Outcome::Finished, minted)?;
    state.metrics.session_minted(body.session.as_str());
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    let session_token = match minted.credential {
        MintedCredential::Token(token) => Some(token.expose_secret().to_string()),
        MintedCredential::Cookies(cookies) => {
            // Kratos's cookie is relayed unchanged: same name, value and
            // attributes as if Kratos had answered the browser itself.
            for cookie in &cookies {
                response.append_header((header::SET_COOKIE, cookie.as_str()));
            }
            None
        }
    };
    Ok(response.json(LoginAnswer {
        session_token,
        session: minted.session,
    }))
}

fn client_context(state: &AppState, req: &HttpRequest) -> ClientContext {
    ClientContext {
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ip: client_ip(req, state.settings.http.client_ip_header()),
    }
}

fn client_key(client: &ClientContext) -> String {
    match client.ip {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_string(),
    }
}

/// The unauthenticated endpoints are rate limited per client IP.
fn limit_client(state: &AppState, client: &ClientContext) -> Result<(), ApiError> {
    state
        .login_limiter
        .take(&client_key(client))
        .map_err(|retry_after| {
            state.metrics.rate_limited("login_per_ip");
            ApiError::RateLimited { retry_after }
        })
}

async fn finish_login(
    state: &AppState,
    ceremony_id: CeremonyId,
    credential: &PublicKeyCredential,
    delivery: SessionDelivery,
    client: &ClientContext,
) -> Result<MintedSession, ApiError> {
    let ceremony = take_ceremony(state, ceremony_id, CeremonyKind::Login, None).await?;
    let (row, user_handle) = state
        .store
        .passkey_by_credential_id(credential.get_credential_id().to_vec())
        .await?
        .ok_or(ApiError::CredentialUnknown)?;
    // The user handle is not signed; it must still name the credential's owner.
    if let Some(handle) = credential.get_user_unique_id() {
        if handle != user_handle.as_bytes() {
            return Err(CeremonyFailure::UserHandleMismatch.into());
        }
    }
    let passkey_id = PasskeyId::new(row.id);
    let identity = IdentityId::new(row.identity_id);
    let failures_key = identity.to_string();
    state
        .failure_limiter
        .check(&failures_key)
        .map_err(|retry_after| {
            state.metrics.rate_limited("failed_logins_per_identity");
            ApiError::RateLimited { retry_after }
        })?;
    if row.flagged_at.is_some() {
        return Err(ApiError::CredentialCloned);
    }
    let mut passkey = stored_passkey(&row)?;
    let verified = state
        .policy
        .finish_login(credential, ceremony.state, &passkey)
        .map_err(|e| ApiError::Internal(e.into()))?;
    if verified.is_err() {
        // Counts against the identity, whoever tried: a failed signature.
        let _ = state.failure_limiter.take(&failures_key);
    }
    let result = match verified {
        Ok(result) => result,
        Err(CeremonyFailure::CounterRegression) => {
            state.store.flag_passkey(passkey_id).await?;
            tracing::warn!(passkey = %passkey_id, identity = %identity, "signature counter went backwards; passkey disabled");
            return Err(ApiError::CredentialCloned);
        }
        Err(failure) => return Err(failure.into()),
    };
    let minted = match state.kratos.mint_session(identity, delivery, client).await {
        Ok(minted) => minted,
        Err(KratosError::IdentityNotFound) => {
            let purged = state.store.purge_identity(identity).await?;
            tracing::info!(identity = %identity, purged, "identity no longer exists in Kratos; passkeys purged");
            return Err(ApiError::IdentityNotFound);
        }
        Err(KratosError::IdentityDisabled) => return Err(ApiError::IdentityInactive),
        Err(error) => return Err(mint_error(error)),
    };
    let changed = passkey.update_credential(&result) == Some(true);
    state
        .store
        .record_login(LoginUpdate {
            passkey_id,
            credential: changed
                .then(|| serde_json::to_value(&passkey))
                .transpose()
                .map_err(|e| ApiError::Internal(e.into()))?,
            sign_count: i64::from(result.counter()),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            identity_id: identity,
            session_id: minted.session_id,
            delivery,
        })
        .await?;
    tracing::info!(identity = %identity, passkey = %passkey_id, session = %minted.session_id, delivery = delivery.as_str(), "passkey login minted a Kratos session");
    Ok(minted)
}

fn stored_passkey(row: &PasskeyRow) -> Result<Passkey, ApiError> {
    serde_json::from_value(row.credential.clone()).map_err(|e| {
        ApiError::Internal(
            anyhow::Error::new(e).context(format!("stored passkey {} is unreadable", row.id)),
        )
    })
}

fn mint_error(error: KratosError) -> ApiError {
    match error {
        KratosError::Unavailable { .. } | KratosError::Overloaded { .. } => {
            ApiError::KratosUnavailable(error)
        }
        other => ApiError::KratosMintFailed(other),
    }
}
