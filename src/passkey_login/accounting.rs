//! After the login is recorded as `minting`: Kratos's mint, and what makes
//! every session it issues accounted for. The session ends recorded with its
//! passkey and its event, or revoked in Kratos; never neither. Where neither
//! can be done at once (the database and Kratos both gone), the `minting`
//! record stays, and `gc` marks it `unresolved`: a passkey login that may
//! have minted a session whose id is unknown, never taken for a recovery.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{refused, LoggedIn, LoginRequest, SecondFactor};
use crate::cause_chain::CauseChain;
use crate::configuration::RequiredAal;
use crate::domain::{IdentityId, KratosSessionId, LoginRecordId};
use crate::error::ApiError;
use crate::events::{Minted, Refusal};
use crate::kratos::{ClientContext, KratosError, MintFailure, SessionCredential};
use crate::login_hooks::LoginStep;
use crate::login_records::PendingSession;
use crate::session::{second_factor_api_url, second_factor_url};
use crate::state::AppState;
use crate::store::{LoginCompletion, PasskeyRow, Settled};

/// Tries to settle a record whose session was revoked while the database
/// was unavailable, with doubling pauses from the first.
const SETTLE_TRIES: u32 = 8;
const SETTLE_FIRST_PAUSE: Duration = Duration::from_millis(250);

#[tracing::instrument(name = "passkey_login.mint_and_account", skip_all)]
pub(super) async fn mint_and_account(
    state: &AppState,
    request: &LoginRequest,
    client: &ClientContext,
    row: &PasskeyRow,
    record: LoginRecordId,
) -> Result<LoggedIn, ApiError> {
    let identity = IdentityId::new(row.identity_id);
    let minted_at = state.clock.now();
    let minted = match state
        .kratos
        .mint_session(identity, request.delivery, client, &state.marker)
        .await
    {
        Ok(minted) => minted,
        Err(failure) => {
            return Err(mint_failed(state, row, record, client, failure, minted_at).await)
        }
    };
    state.login_hooks.reached(LoginStep::Minted).await;
    let flow = minted.recovery_flow_id;
    let Some(presented) = state.kratos.presented(&minted.credential) else {
        let error = KratosError::Protocol {
            operation: "redeem_recovery_code",
            detail: "no session cookie".into(),
        };
        revoke_unrecorded(state, identity, None, None, record, Some(flow), minted_at).await;
        return Err(mint_error(error));
    };
    let described = if request.include_session
        || state.settings.kratos.whoami_required_aal == RequiredAal::HighestAvailable
    {
        match describe(state, &presented, identity).await {
            Ok(described) => described,
            Err(error) => {
                // A session of another identity: revoked by the client already.
                settle(state, record, Settled::Revoked, Some(flow)).await;
                return Err(error);
            }
        }
    } else {
        Described::Later
    };
    let second_factor_pending = matches!(described, Described::SecondFactorPending { .. });
    let event = state.events.login(
        row,
        &Minted {
            record,
            session_id: described.session_id(),
            delivery: request.delivery,
            recovery_flow_id: flow,
            second_factor_pending,
        },
        client,
    );
    let completion = LoginCompletion {
        record_id: record,
        identity_id: identity,
        recovery_flow_id: flow,
        session_id: described.session_id(),
        event,
    };
    match state.store.complete_login(completion).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(%record, "the login record was settled before its session was recorded; it stays unresolved")
        }
        Err(error) => {
            tracing::error!(%record, cause = ?CauseChain(&error), "a minted session could not be recorded; revoking it");
            revoke_unrecorded(
                state,
                identity,
                Some(&presented),
                described.session_id(),
                record,
                Some(flow),
                minted_at,
            )
            .await;
            return Err(error.into());
        }
    }
    if described.session_id().is_none() {
        state.login_records.complete_later(PendingSession {
            record,
            identity,
            credential: presented,
            minted_at,
            second_factor_pending,
        });
    }
    state.metrics.session_minted(request.delivery.as_str());
    tracing::info!(%identity, passkey = %row.id, %record, recovery_flow = %flow, delivery = request.delivery.as_str(), second_factor_pending, "passkey login minted a Kratos session");
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

/// Kratos did not hand back a session: the record says why, after any
/// session Kratos may have issued all the same is revoked.
async fn mint_failed(
    state: &AppState,
    row: &PasskeyRow,
    record: LoginRecordId,
    client: &ClientContext,
    failure: MintFailure,
    minted_at: DateTime<Utc>,
) -> ApiError {
    let identity = IdentityId::new(row.identity_id);
    let flow = failure.recovery_flow_id;
    match failure.error {
        KratosError::IdentityNotFound => {
            settle(state, record, Settled::Failed, flow).await;
            let events = state.events.clone();
            match state
                .store
                .purge_identity(identity, move |removed| {
                    events.identity_purged(identity, removed)
                })
                .await
            {
                Ok(purged) => {
                    tracing::info!(%identity, purged, "identity no longer exists in Kratos; passkeys purged");
                    ApiError::IdentityNotFound
                }
                Err(error) => error.into(),
            }
        }
        KratosError::IdentityDisabled => {
            settle(state, record, Settled::Failed, flow).await;
            refused(state, row, Refusal::IdentityInactive, client).await;
            ApiError::IdentityInactive
        }
        error if failure.session_may_exist => {
            tracing::warn!(%record, cause = ?CauseChain(&error), "the mint failed after its redemption was sent; revoking any session it issued");
            revoke_unrecorded(state, identity, None, None, record, flow, minted_at).await;
            mint_error(error)
        }
        error => {
            settle(state, record, Settled::Failed, flow).await;
            mint_error(error)
        }
    }
}

/// Revokes a session that will not be recorded, found by what is known of
/// it, and settles its record. What cannot be done now is logged; the
/// record then stays `minting` until `gc` marks it unresolved.
async fn revoke_unrecorded(
    state: &AppState,
    identity: IdentityId,
    presented: Option<&SessionCredential>,
    known: Option<KratosSessionId>,
    record: LoginRecordId,
    flow: Option<uuid::Uuid>,
    minted_at: DateTime<Utc>,
) {
    let found = match known {
        Some(id) => Ok(Some(id)),
        None => find_minted(state, identity, presented, minted_at).await,
    };
    let settled = match found {
        Ok(Some(session)) => match state.kratos.revoke_session(session).await {
            Ok(()) => {
                tracing::warn!(%record, %session, "a minted session that could not be recorded was revoked");
                Settled::Revoked
            }
            Err(error) => {
                tracing::error!(%record, %session, cause = ?CauseChain(&error), "a minted session could be neither recorded nor revoked");
                return;
            }
        },
        Ok(None) => Settled::Failed,
        Err(error) => {
            tracing::error!(%record, cause = ?CauseChain(&error), "a session that may have been minted could not be looked for");
            return;
        }
    };
    settle_eventually(state, record, settled, flow).await;
}

/// The minted session's id: from `whoami` with its credential, else the
/// identity's one session issued by a recovery code at that moment.
async fn find_minted(
    state: &AppState,
    identity: IdentityId,
    presented: Option<&SessionCredential>,
    minted_at: DateTime<Utc>,
) -> Result<Option<KratosSessionId>, KratosError> {
    if let Some(credential) = presented {
        if let Ok((session, _)) = state.kratos.minted_session(credential, identity).await {
            return Ok(Some(session.id));
        }
    }
    state
        .kratos
        .minted_recovery_session(identity, minted_at)
        .await
}

async fn settle(
    state: &AppState,
    record: LoginRecordId,
    settled: Settled,
    flow: Option<uuid::Uuid>,
) {
    if let Err(error) = state.store.settle_login(record, settled, flow).await {
        tracing::warn!(%record, ?settled, cause = ?CauseChain(&error), "settling a login record failed; gc will mark it unresolved");
    }
}

/// `settle`, retried while the database is away (the request has its
/// answer already; this only makes the record say what happened).
async fn settle_eventually(
    state: &AppState,
    record: LoginRecordId,
    settled: Settled,
    flow: Option<uuid::Uuid>,
) {
    if state
        .store
        .settle_login(record, settled, flow)
        .await
        .is_ok()
    {
        return;
    }
    let store = state.store.clone();
    actix_web::rt::spawn(async move {
        let mut pause = SETTLE_FIRST_PAUSE;
        for _ in 0..SETTLE_TRIES {
            tokio::time::sleep(pause).await;
            if store.settle_login(record, settled, flow).await.is_ok() {
                return;
            }
            pause *= 2;
        }
        tracing::warn!(%record, ?settled, "settling a login record kept failing; gc will mark it unresolved");
    });
}

/// What Kratos's `whoami` said of a session just minted.
enum Described {
    /// The session as `whoami` answers it.
    Session {
        id: KratosSessionId,
        raw: serde_json::Value,
    },
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
                tracing::warn!(%identity, %error, "Kratos's whoami answer is not JSON");
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
            tracing::warn!(%identity, cause = ?CauseChain(&error), "the minted session could not be described now");
            Ok(Described::Later)
        }
    }
}

fn mint_error(error: KratosError) -> ApiError {
    match error {
        KratosError::Unavailable { .. } | KratosError::Overloaded { .. } => {
            ApiError::KratosUnavailable(error)
        }
        other => ApiError::KratosMintFailed(other),
    }
}
