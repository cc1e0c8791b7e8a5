//! Removing one passkey without locking its owner out: the last passkey of
//! an identity that has no other first factor in Kratos (password, OIDC,
//! Kratos's own passkeys, a `code` login) stays, unless support forces it.

use crate::domain::{IdentityId, PasskeyId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{NewEvent, PasskeyRow, Removal};

/// Whether the removal may leave the identity without a way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastWayIn {
    Keep,
    /// Support's explicit override.
    Force,
}

pub async fn remove_passkey(
    state: &AppState,
    identity: IdentityId,
    passkey: PasskeyId,
    last_way_in: LastWayIn,
    event: impl FnOnce(&PasskeyRow) -> NewEvent + Send + 'static,
) -> Result<(), ApiError> {
    let keep_last = match last_way_in {
        LastWayIn::Force => false,
        // Kratos is read before the transaction: its first factors are not
        // ours to lock, and only this service's passkeys can race here.
        LastWayIn::Keep => !state
            .kratos
            .first_factors(identity)
            .await?
            .is_some_and(|factors| factors.any(state.settings.identity.kratos_code_login)),
    };
    match state
        .store
        .delete_passkey(identity, passkey, keep_last, event)
        .await?
    {
        Removal::Removed => Ok(()),
        Removal::NotFound => Err(ApiError::PasskeyNotFound),
        Removal::LastPasskey => Err(ApiError::LastSignInMethod),
    }
}
