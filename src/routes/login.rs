//! Passkey login that ends in a genuine Kratos session:
//! `POST /passkeys/login/options`, then `POST /passkeys/login/verify`.
//!
//! Starting a login stores nothing (the ceremony is sealed into its id).
//! Finishing one costs, besides the WebAuthn check, one statement to mark
//! the ceremony used and find the credential, Kratos's mint (create and
//! redeem a recovery code) and one statement to record it.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential};

use crate::cause_chain::CauseChain;
use crate::configuration::RequiredAal;
use crate::domain::{
    CeremonyId, IdentityId, KratosSessionId, LoginIdentifier, LoginRecordId, PasskeyId,
    SessionDelivery,
};
use crate::error::ApiError;
use crate::events::{Minted, Refusal};
use crate::kratos::{ClientContext, KratosError, MintedCredential, SessionCredential};
use crate::login_records::PendingSession;
use crate::metrics::Outcome;
use crate::routes::ceremonies::{open_ceremony, start_ceremony, CeremonyStarted, Expected};
use crate::routes::counted;
use crate::sealed_ceremony::CeremonyBody;
use crate::session::{second_factor_api_url, second_factor_url};
use crate::state::AppState;
use crate::store::{LoginUpdate, PasskeyRow};
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

/// Start a passkey login (no session needed; nothing is stored).
#[utoipa::path(
    post,
    path = "/passkeys/login/options",
    tag = "login",
    request_body = OptionsRequest,
    responses(
        (status = 200, description = "Request options and the sealed ceremony id", body = CeremonyStarted),
        (status = 400, description = "`malformed_request`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 429, description = "`rate_limited`: per client IP (`Retry-After` says when the next request passes)", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn options(
    state: web::Data<AppState>,
    client: ClientContext,
    body: web::Json<OptionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = async {
        limit_client(&state, &client)?;
        let identifier = match body.identifier.as_deref() {
            Some(raw) => Some(LoginIdentifier::parse(raw).ok_or_else(|| {
                ApiError::MalformedRequest("identifier must be a non-empty email".into())
            })?),
            None => None,
        };
        start_login(&state, identifier).await
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
) -> Result<CeremonyStarted, ApiError> {
    let identified = identifier.is_some();
    let allow = match identifier {
        Some(identifier) => allowed_credentials(state, &identifier).await?,
        None => Vec::new(),
    };
    let started = state
        .policy
        .start_login(allow)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("starting login: {e}")))?;
    start_ceremony(
        state,
        started.challenge,
        CeremonyBody::Login {
            state: started.state,
            identified,
        },
        started.public_key,
    )
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
    /// The `ceremony_id` that `login/options` answered, unchanged.
    #[schema(value_type = String, min_length = 1, max_length = 8192)]
    ceremony_id: CeremonyId,
    /// What `PublicKeyCredential.toJSON()` produces for the assertion.
    #[schema(value_type = Object)]
    credential: PublicKeyCredential,
    /// `cookie` (default): Kratos's session cookie is relayed; `token`: the
    /// session token is in the body.
    #[serde(default)]
    session: SessionDelivery,
    /// Also answer the Kratos session object (as `whoami` returns it). It
    /// costs one more call to Kratos before the answer; without it the
    /// client asks Kratos's `whoami` itself when it needs the session.
    #[serde(default)]
    include_session: bool,
}

/// A minted Kratos session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// The Kratos identity that signed in.
    #[schema(value_type = uuid::Uuid)]
    identity_id: IdentityId,
    /// Only with `"session": "token"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
    /// Only with `"include_session": true`: the session as Kratos's
    /// `whoami` returns it (no secrets inside). Absent while a second
    /// factor is pending, or when Kratos could not describe it right then.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    session: Option<Value>,
    /// Only when Kratos wants the person's second factor before the session
    /// is usable (`session.whoami.required_aal: highest_available` and a
    /// second factor set up): the session is issued at aal1 and is
    /// completed in Kratos's own aal2 login, where this says.
    #[serde(skip_serializing_if = "Option::is_none")]
    second_factor: Option<SecondFactor>,
}

/// Where to present the second factor, as Kratos's own login says it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecondFactor {
    /// Browsers: Kratos's aal2 login (`/self-service/login/browser?aal=aal2`),
    /// returning to `sessions.refresh_return_to`. The same URL every other
    /// endpoint answers `session_aal2_required` with.
    redirect_browser_to: String,
    /// Token clients: `GET` it with the session token (`X-Session-Token`)
    /// to start Kratos's aal2 API login flow, then submit the second factor
    /// to that flow; the same session is upgraded.
    api_login_url: String,
}

/// Finish a passkey login and mint a genuine Kratos session.
#[utoipa::path(
    post,
    path = "/passkeys/login/verify",
    tag = "login",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The Kratos session was minted (cookie mode: with Kratos's `Set-Cookie`); with `second_factor` when Kratos wants one before the session is usable", body = LoginAnswer),
        (status = 400, description = "`malformed_request`, `credential_unknown`, `user_handle_mismatch`, `user_handle_missing`, `origin_mismatch`, `rp_id_mismatch`, `challenge_mismatch`, `user_verification_missing`, `user_presence_missing`, `signature_invalid`, `credential_invalid`", body = crate::error::ErrorResponse),
        (status = 403, description = "`credential_cloned`, `identity_inactive`", body = crate::error::ErrorResponse),
        (status = 404, description = "`ceremony_not_found`: unknown, altered, or already used; `identity_not_found`", body = crate::error::ErrorResponse),
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
    client: ClientContext,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let delivery = body.session;
    let logged_in = async {
        limit_client(&state, &client)?;
        finish_login(&state, &body, &client).await
    }
    .await;
    let logged_in = counted(&state.metrics, KIND, Outcome::Finished, logged_in)?;
    state.metrics.session_minted(delivery.as_str());
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    let session_token = match logged_in.credential {
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
        identity_id: logged_in.identity,
        session_token,
        session: logged_in.session,
        second_factor: logged_in.second_factor,
    }))
}

/// The unauthenticated endpoints are rate limited per client IP.
fn limit_client(state: &AppState, client: &ClientContext) -> Result<(), ApiError> {
    let key = state.clients.rate_key(client.ip);
    state.login_limiter.take(&key).map_err(|retry_after| {
        state.metrics.rate_limited("login_per_ip");
        ApiError::RateLimited { retry_after }
    })
}

/// A login that went through.
struct LoggedIn {
    identity: IdentityId,
    credential: MintedCredential,
    session: Option<Value>,
    second_factor: Option<SecondFactor>,
}

async fn finish_login(
    state: &AppState,
    request: &VerifyRequest,
    client: &ClientContext,
) -> Result<LoggedIn, ApiError> {
    let credential = &request.credential;
    let ceremony = open_ceremony(state, &request.ceremony_id, Expected::Login)?;
    let expires_at = ceremony.expires_at();
    let CeremonyBody::Login {
        state: authentication,
        identified,
    } = ceremony.body
    else {
        return Err(ApiError::CeremonyNotFound);
    };
    // Marking the ceremony used and finding the credential: one statement.
    let found = state
        .store
        .consume_login_ceremony(
            ceremony.challenge,
            expires_at,
            credential.get_credential_id().to_vec(),
        )
        .await?;
    if !found.fresh {
        return Err(ApiError::CeremonyNotFound);
    }
    let row = found.credential.ok_or(ApiError::CredentialUnknown)?;
    // The user handle is not signed; it must still name the credential's
    // owner. A discoverable login has nothing else to name the account by,
    // so WebAuthn requires it there.
    let presented_handle = credential.get_user_unique_id();
    match presented_handle {
        Some(handle) if !answers_to(&row, handle) => {
            return Err(CeremonyFailure::UserHandleMismatch.into())
        }
        None if !identified => return Err(CeremonyFailure::UserHandleMissing.into()),
        _ => {}
    }
    // An imported passkey with candidate handles learns its own now.
    let confirmed_user_handle = presented_handle
        .filter(|_| !row.unconfirmed_user_handles.is_empty())
        .map(<[u8]>::to_vec);
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
        refused(state, &row, Refusal::CredentialCloned, client).await;
        return Err(ApiError::CredentialCloned);
    }
    let mut passkey = stored_passkey(&row)?;
    let verified = state
        .policy
        .finish_login(credential, authentication, &passkey);
    if verified.is_err() {
        // Counts against the identity, whoever tried: a failed signature.
        let _ = state.failure_limiter.take(&failures_key);
    }
    let result = match verified {
        Ok(result) => result,
        Err(CeremonyFailure::CounterRegression) => {
            let (events, client) = (state.events.clone(), client.clone());
            state
                .store
                .flag_passkey(passkey_id, move |flagged| {
                    vec![
                        events.flagged(flagged, &client),
                        events.login_refused(flagged, Refusal::CredentialCloned, &client),
                    ]
                })
                .await?;
            tracing::warn!(passkey = %passkey_id, identity = %identity, "signature counter went backwards; passkey disabled");
            return Err(ApiError::CredentialCloned);
        }
        Err(failure) => return Err(failure.into()),
    };
    let minted_at = chrono::Utc::now();
    let minted = match state
        .kratos
        .mint_session(identity, request.session, client, &state.marker)
        .await
    {
        Ok(minted) => minted,
        Err(KratosError::IdentityNotFound) => {
            let events = state.events.clone();
            let purged = state
                .store
                .purge_identity(identity, move |removed| {
                    events.identity_purged(identity, removed)
                })
                .await?;
            tracing::info!(identity = %identity, purged, "identity no longer exists in Kratos; passkeys purged");
            return Err(ApiError::IdentityNotFound);
        }
        Err(KratosError::IdentityDisabled) => {
            refused(state, &row, Refusal::IdentityInactive, client).await;
            return Err(ApiError::IdentityInactive);
        }
        Err(error) => return Err(mint_error(error)),
    };
    let presented = state.kratos.presented(&minted.credential).ok_or_else(|| {
        mint_error(KratosError::Protocol {
            operation: "redeem_recovery_code",
            detail: "no session cookie".into(),
        })
    })?;
    // From here on the session exists and is the person's: it is handed
    // out whatever Kratos says next, never left behind.
    let described = if request.include_session
        || state.settings.kratos.whoami_required_aal == RequiredAal::HighestAvailable
    {
        describe(state, &presented, identity).await?
    } else {
        Described::Later
    };
    let changed = passkey.update_credential(&result) == Some(true);
    let record_id = LoginRecordId::generate();
    let second_factor_pending = matches!(described, Described::SecondFactorPending { .. });
    let event = state.events.login(
        &row,
        &Minted {
            record: record_id,
            session_id: described.session_id(),
            delivery: request.session,
            recovery_flow_id: minted.recovery_flow_id,
            second_factor_pending,
        },
        client,
    );
    state
        .store
        .record_login(LoginUpdate {
            record_id,
            passkey_id,
            credential: changed
                .then(|| serde_json::to_value(&passkey))
                .transpose()
                .map_err(|e| ApiError::Internal(e.into()))?,
            sign_count: i64::from(result.counter()),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            identity_id: identity,
            recovery_flow_id: minted.recovery_flow_id,
            session_id: described.session_id(),
            delivery: request.session,
            confirmed_user_handle,
            client_ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            passkey_name: row.name.clone(),
            event,
        })
        .await?;
    if described.session_id().is_none() {
        state.login_records.complete_later(PendingSession {
            record: record_id,
            identity,
            credential: presented,
            minted_at,
            second_factor_pending,
        });
    }
    tracing::info!(identity = %identity, passkey = %passkey_id, record = %record_id, recovery_flow = %minted.recovery_flow_id, delivery = request.session.as_str(), second_factor_pending, "passkey login minted a Kratos session");
    let (session, second_factor) = match described {
        Described::Session { raw, .. } => (request.include_session.then_some(raw), None),
        Described::SecondFactorPending {
            redirect_browser_to,
        } => (
            None,
            Some(SecondFactor {
                redirect_browser_to,
                api_login_url: second_factor_api_url(&state.settings).to_string(),
            }),
        ),
        Described::Later => (None, None),
    };
    Ok(LoggedIn {
        identity,
        credential: minted.credential,
        session,
        second_factor,
    })
}

/// What Kratos's `whoami` said of a session just minted.
enum Described {
    /// The session as `whoami` answers it.
    Session { id: KratosSessionId, raw: Value },
    /// Kratos wants the person's second factor before the session is
    /// usable (`session.whoami.required_aal: highest_available`).
    SecondFactorPending { redirect_browser_to: String },
    /// Not asked, or Kratos did not answer now: the login record learns
    /// the session's id after the answer has gone out.
    Later,
}

impl Described {
    fn session_id(&self) -> Option<KratosSessionId> {
        match self {
            Described::Session { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// Asks `whoami` about the minted session. Only a session of another
/// identity (revoked at once) fails the login: anything else Kratos says
/// leaves the person with the session Kratos issued.
async fn describe(
    state: &AppState,
    presented: &SessionCredential,
    identity: IdentityId,
) -> Result<Described, ApiError> {
    match state.kratos.minted_session(presented, identity).await {
        Ok((session, raw)) => match serde_json::from_slice(&raw) {
            Ok(raw) => Ok(Described::Session {
                id: session.id,
                raw,
            }),
            Err(error) => {
                tracing::warn!(identity = %identity, %error, "Kratos's whoami answer is not JSON");
                Ok(Described::Later)
            }
        },
        Err(KratosError::Aal2Required {
            redirect_browser_to,
        }) => Ok(Described::SecondFactorPending {
            redirect_browser_to: second_factor_url(&state.settings, redirect_browser_to.as_deref())
                .to_string(),
        }),
        Err(error @ KratosError::SessionOfAnotherIdentity { .. }) => Err(mint_error(error)),
        Err(error) => {
            tracing::warn!(identity = %identity, cause = ?CauseChain(&error), "the minted session could not be described now");
            Ok(Described::Later)
        }
    }
}

/// Records a refusal a security team acts on. The refusal stands even when
/// the event cannot be written (it is logged instead).
async fn refused(state: &AppState, row: &PasskeyRow, refusal: Refusal, client: &ClientContext) {
    let event = state.events.login_refused(row, refusal, client);
    if let Err(error) = state.store.append_events(vec![event]).await {
        tracing::warn!(passkey = %row.id, ?refusal, cause = ?CauseChain(&error), "the refused login's event could not be written");
    }
}

/// Whether `handle` is the passkey's user handle, or one of the candidates
/// of an imported passkey whose own handle is not known yet.
fn answers_to(row: &PasskeyRow, handle: &[u8]) -> bool {
    row.user_handle == handle || row.unconfirmed_user_handles.iter().any(|h| h == handle)
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
