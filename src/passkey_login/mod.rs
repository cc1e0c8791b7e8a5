//! A passkey login that ends in a genuine Kratos session.
//!
//! Starting one stores nothing (the ceremony is sealed into its id).
//! Finishing one reads the credential, verifies the assertion, then, in one
//! statement, marks the ceremony used, saves what the assertion changed and
//! records the login as `minting`; only then is Kratos asked for a session
//! (an admin recovery code, redeemed by this service). What follows the mint
//! is `accounting`: the session ends recorded with its passkey and event, or
//! revoked, also when the client has gone away.
//!
//! The limits are in `crate::login_limits`: none of them can refuse a
//! correctly signed assertion because of what others sent.

mod accounting;

use std::time::Duration;

use actix_web::web;
use serde::Serialize;
use serde_json::Value;
use tracing::{Instrument, Span};
use utoipa::ToSchema;
use webauthn_rs::prelude::Passkey;

use crate::ceremonies::{
    open_ceremony, refused_ceremony, start_ceremony, CeremonyStarted, Expected,
};
use crate::domain::{
    CeremonyId, IdentityId, LoginIdentifier, LoginRecordId, PasskeyId, SessionDelivery,
};
use crate::error::ApiError;
use crate::events::Refusal;
use crate::kratos::{ClientContext, MintedCredential};
use crate::login_limits::Refused;
use crate::prf::LoginPrf;
use crate::sealed_ceremony::CeremonyBody;
use crate::state::AppState;
use crate::store::{Consumed, LoginBegun, LoginStart, PasskeyRow};
use crate::webauthn_policy::{Assertion, CeremonyFailure};

/// A finished login as the client sent it.
pub struct LoginRequest {
    pub ceremony_id: CeremonyId,
    pub credential: Assertion,
    pub delivery: SessionDelivery,
    /// Also answer the Kratos session object (one more call to Kratos).
    pub include_session: bool,
}

/// A login that went through.
pub struct LoggedIn {
    pub identity: IdentityId,
    pub credential: MintedCredential,
    pub session: Option<Value>,
    pub second_factor: Option<SecondFactor>,
}

/// Where to present the second factor, as Kratos's own login says it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecondFactor {
    /// Browsers: Kratos's aal2 login (`/self-service/login/browser?aal=aal2`),
    /// returning to `sessions.refresh_return_to`. The same URL every other
    /// endpoint answers `session_aal2_required` with.
    pub redirect_browser_to: String,
    /// Token clients: `GET` it with the session token (`X-Session-Token`)
    /// to start Kratos's aal2 API login flow, then submit the second factor
    /// to that flow; the same session is upgraded.
    pub api_login_url: String,
}

/// Starts a login. Without an identifier: a discoverable login (modal or
/// autofill). With one: `allowCredentials` lists that identity's passkeys.
/// An unknown identifier answers exactly like a known one without passkeys,
/// and so does any identifier once Kratos's search budget is spent.
pub async fn start(
    state: &AppState,
    client: &ClientContext,
    identifier: Option<LoginIdentifier>,
    prf: Option<LoginPrf>,
) -> Result<CeremonyStarted, ApiError> {
    limit_request(state, client)?;
    let identified = identifier.is_some();
    let allowed = match identifier {
        Some(identifier) => allowed_credentials(state, &identifier).await?,
        None => Vec::new(),
    };
    let salts: Vec<(Vec<u8>, Vec<u8>)> = allowed
        .iter()
        .filter_map(|row| Some((row.credential_id.clone(), row.prf_salt.clone()?)))
        .collect();
    let allow = allowed
        .into_iter()
        .map(|row| (row.credential_id, row.transports))
        .collect();
    let mut started = state
        .policy
        .start_login(allow)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("starting login: {e}")))?;
    if let Some(prf) = prf {
        prf.write_into(&mut started.public_key, &salts);
    }
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

/// The identity's usable passkeys. Each search costs Kratos an admin
/// identity search: results are reused for a while, and past the budget
/// shared by all clients the login goes on as a discoverable one.
async fn allowed_credentials(
    state: &AppState,
    identifier: &LoginIdentifier,
) -> Result<Vec<PasskeyRow>, ApiError> {
    let identity = match state.login_limits.cached_identity(identifier.as_str()) {
        Some(identity) => identity,
        None if state.login_limits.lookup_allowed() => {
            let identity = state
                .kratos
                .identity_by_identifier(identifier.as_str())
                .await?
                .map(|identity| identity.id);
            state
                .login_limits
                .remember_identity(identifier.as_str(), identity);
            identity
        }
        None => {
            state.metrics.rate_limited("identifier_lookups");
            None
        }
    };
    let Some(identity) = identity else {
        return Ok(Vec::new());
    };
    let rows = state.store.passkeys(identity).await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.flagged_at.is_none())
        .collect())
}

/// Finishes a login. Once verified, the rest runs as a task of its own:
/// a client that goes away (and with it the request) cannot cancel it
/// between Kratos's mint and the record of it.
pub async fn finish(
    state: web::Data<AppState>,
    request: LoginRequest,
    client: ClientContext,
) -> Result<LoggedIn, ApiError> {
    limit_request(&state, &client)?;
    // Before anything is read or used: a client that forgot to strip them
    // can send the same assertion again without.
    if request.credential.prf.outputs_present {
        return Err(ApiError::PrfOutputPresent);
    }
    // The task carries the request's span: its steps stay in the trace.
    let task = actix_web::rt::spawn(
        async move { verify_and_mint(&state, request, &client).await }.instrument(Span::current()),
    );
    task.await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the login task did not finish: {e}")))?
}

#[tracing::instrument(name = "passkey_login.verify_and_mint", skip_all)]
async fn verify_and_mint(
    state: &AppState,
    request: LoginRequest,
    client: &ClientContext,
) -> Result<LoggedIn, ApiError> {
    let address = state.clients.rate_key(client.ip);
    state
        .login_limits
        .before_verify(&address)
        .map_err(|refused| rate_limited(state, refused))?;
    let ceremony = open_ceremony(state, &request.ceremony_id, Expected::Login)?;
    let (challenge, expires_at) = (ceremony.challenge.clone(), ceremony.expires_at());
    let CeremonyBody::Login {
        state: authentication,
        identified,
    } = ceremony.body
    else {
        return Err(ApiError::CeremonyNotFound);
    };
    let credential = &request.credential.credential;
    let row = state
        .store
        .passkey_by_credential_id(credential.get_credential_id().to_vec())
        .await?;
    let Some(row) = row else {
        return Err(failed(state, &address, None, ApiError::CredentialUnknown));
    };
    let identity = IdentityId::new(row.identity_id);
    // The user handle is not signed; it must still name the credential's
    // owner. A discoverable login has nothing else to name the account by,
    // so WebAuthn requires it there.
    let presented_handle = credential.get_user_unique_id();
    let handle_failure = match presented_handle {
        Some(handle) if !answers_to(&row, handle) => Some(CeremonyFailure::UserHandleMismatch),
        None if !identified => Some(CeremonyFailure::UserHandleMissing),
        _ => None,
    };
    if let Some(failure) = handle_failure {
        return Err(failed(state, &address, Some(identity), failure.into()));
    }
    if row.flagged_at.is_some() {
        refused(state, &row, Refusal::CredentialCloned, client).await;
        return Err(ApiError::CredentialCloned);
    }
    // Only a deployment with metadata can have revoked models (a lookup by
    // primary key; none on the default path).
    if state.authenticators.metadata.settings().is_some()
        && state.store.revoked_status(row.id).await?.is_some()
    {
        refused(state, &row, Refusal::AuthenticatorRevoked, client).await;
        return Err(crate::authenticator_policy::Refusal::Revoked.into());
    }
    let mut passkey = stored_passkey(&row)?;
    let result = match state
        .policy
        .finish_login(credential, authentication, &passkey)
    {
        Ok(result) => result,
        Err(CeremonyFailure::CounterRegression) => {
            return Err(counter_regression(state, &row, challenge, expires_at, client).await)
        }
        Err(failure) => return Err(failed(state, &address, Some(identity), failure.into())),
    };
    let changed = passkey.update_credential(&result) == Some(true);
    let record = LoginRecordId::generate();
    let begun = state
        .store
        .begin_login(LoginStart {
            record_id: record,
            passkey_id: PasskeyId::new(row.id),
            challenge,
            expires_at,
            credential: changed
                .then(|| serde_json::to_value(&passkey))
                .transpose()
                .map_err(|e| ApiError::Internal(e.into()))?,
            sign_count: i64::from(result.counter()),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            // An imported passkey with candidate handles learns its own now.
            confirmed_user_handle: presented_handle
                .filter(|_| !row.unconfirmed_user_handles.is_empty())
                .map(<[u8]>::to_vec),
            delivery: request.delivery,
            client_ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            passkey_name: row.name.clone(),
        })
        .await?;
    match begun {
        LoginBegun::Recorded => {}
        LoginBegun::Refused(consumed) => return Err(refused_ceremony(consumed)),
        LoginBegun::PasskeyGone => return Err(ApiError::CredentialUnknown),
    }
    accounting::mint_and_account(state, &request, client, &row, record).await
}

/// A valid signature whose counter is not ahead of the stored one. A replay
/// of a ceremony already used is only that. Otherwise the login is refused,
/// and the passkey is flagged as cloned unless another login with it was
/// recorded within a ceremony's lifetime: logins with one key that race
/// (two tabs, a retry) can arrive out of order, and flagging on a race
/// would lock out the person it protects.
async fn counter_regression(
    state: &AppState,
    row: &PasskeyRow,
    challenge: Vec<u8>,
    expires_at: chrono::DateTime<chrono::Utc>,
    client: &ClientContext,
) -> ApiError {
    match state.store.consume_ceremony(challenge, expires_at).await {
        Ok(Consumed::Fresh) => {}
        Ok(refused) => return refused_ceremony(refused),
        Err(error) => return error.into(),
    }
    let race_window = chrono::Duration::from_std(state.settings.webauthn.ceremony_ttl)
        .unwrap_or(chrono::Duration::minutes(5));
    let racing = row
        .last_used_at
        .is_some_and(|used| state.clock.now() - used < race_window);
    let passkey_id = PasskeyId::new(row.id);
    if racing {
        tracing::warn!(passkey = %passkey_id, identity = %row.identity_id, "signature counter behind the stored one just after another login; refused, not flagged");
        return ApiError::SignatureCounterBehind;
    }
    let (events, client) = (state.events.clone(), client.clone());
    if let Err(error) = state
        .store
        .flag_passkey(passkey_id, move |flagged| {
            vec![
                events.flagged(flagged, &client),
                events.login_refused(flagged, Refusal::CredentialCloned, &client),
            ]
        })
        .await
    {
        return error.into();
    }
    tracing::warn!(passkey = %passkey_id, identity = %row.identity_id, "signature counter went backwards; passkey disabled");
    ApiError::CredentialCloned
}

/// Counts a failed login against its address and identity: past either
/// limit the failure answers 429, else as itself.
fn failed(
    state: &AppState,
    address: &str,
    identity: Option<IdentityId>,
    error: ApiError,
) -> ApiError {
    match state.login_limits.failed(address, identity) {
        Ok(()) => error,
        Err(refused) => rate_limited(state, refused),
    }
}

/// Every login request, per client address.
fn limit_request(state: &AppState, client: &ClientContext) -> Result<(), ApiError> {
    state
        .login_limits
        .request(&state.clients.rate_key(client.ip))
        .map_err(|refused| rate_limited(state, refused))
}

fn rate_limited(state: &AppState, refused: Refused) -> ApiError {
    state.metrics.rate_limited(refused.limit.as_str());
    ApiError::RateLimited {
        retry_after: refused.retry_after.max(Duration::from_millis(1)),
    }
}

/// Records a refusal a security team acts on. The refusal stands even when
/// the event cannot be written (it is logged instead).
async fn refused(state: &AppState, row: &PasskeyRow, refusal: Refusal, client: &ClientContext) {
    let event = state.events.login_refused(row, refusal, client);
    if let Err(error) = state.store.append_events(vec![event]).await {
        tracing::warn!(passkey = %row.id, ?refusal, cause = ?crate::cause_chain::CauseChain(&error), "the refused login's event could not be written");
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
