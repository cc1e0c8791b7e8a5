//! What registration and login share: a ceremony is sealed into its id when
//! it starts (nothing stored), opened and checked when it finishes, and its
//! single use is recorded then.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{CeremonyId, IdentityId};
use crate::error::ApiError;
use crate::sealed_ceremony::{Ceremony, CeremonyBody};
use crate::state::AppState;
use crate::store::Consumed;

/// A started ceremony: its id and the options for the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyStarted {
    /// The ceremony's sealed state: opaque, pass it back unchanged.
    #[schema(value_type = String)]
    pub ceremony_id: CeremonyId,
    /// Standard WebAuthn options JSON (base64url fields), for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` or
    /// `parseRequestOptionsFromJSON`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: Value,
}

/// Which ceremony a verify endpoint expects.
#[derive(Debug, Clone, Copy)]
pub enum Expected {
    Login,
    /// A registration, started by this identity.
    Registration(IdentityId),
}

/// Seals the ceremony into its id; it expires after `webauthn.ceremony_ttl`.
pub fn start_ceremony(
    state: &AppState,
    challenge: Vec<u8>,
    body: CeremonyBody,
    public_key: Value,
) -> Result<CeremonyStarted, ApiError> {
    let ttl = chrono::Duration::from_std(state.settings.webauthn.ceremony_ttl)
        .unwrap_or(chrono::Duration::minutes(5));
    let ceremony = Ceremony::new(challenge, state.clock.now() + ttl, body);
    let ceremony_id = state
        .sealer
        .seal(&ceremony)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(CeremonyStarted {
        ceremony_id,
        public_key,
    })
}

/// Opens the ceremony and checks it is the expected kind, for the expected
/// identity, and not expired by this host's clock (a cheap early refusal;
/// the database's clock decides when its use is recorded, see `consume`).
/// Anything that does not open, or is someone else's, is unknown.
#[tracing::instrument(name = "open_ceremony", skip_all)]
pub fn open_ceremony(
    state: &AppState,
    id: &CeremonyId,
    expected: Expected,
) -> Result<Ceremony, ApiError> {
    let ceremony = state
        .sealer
        .open(id)
        .map_err(|_| ApiError::CeremonyNotFound)?;
    let matches = match (&ceremony.body, expected) {
        (CeremonyBody::Login { .. }, Expected::Login) => true,
        (CeremonyBody::Registration { identity, .. }, Expected::Registration(caller)) => {
            *identity == caller
        }
        _ => false,
    };
    if !matches {
        return Err(ApiError::CeremonyNotFound);
    }
    if ceremony.expires_at() < state.clock.now() {
        return Err(ApiError::CeremonyExpired);
    }
    Ok(ceremony)
}

/// Records the ceremony's single use (across every replica); a ceremony
/// used before is unknown, one expired by the database's clock is expired.
pub async fn consume(state: &AppState, ceremony: &Ceremony) -> Result<(), ApiError> {
    match state
        .store
        .consume_ceremony(ceremony.challenge.clone(), ceremony.expires_at())
        .await?
    {
        Consumed::Fresh => Ok(()),
        refused => Err(refused_ceremony(refused)),
    }
}

/// The answer to a ceremony the store would not mark used.
pub fn refused_ceremony(consumed: Consumed) -> ApiError {
    match consumed {
        Consumed::Expired => ApiError::CeremonyExpired,
        Consumed::Fresh | Consumed::Used => ApiError::CeremonyNotFound,
    }
}
