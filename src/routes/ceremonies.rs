//! What registration and login share: ceremonies opened with their state in
//! Postgres, bounded per client, and taken back exactly once.

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{CeremonyId, IdentityId, PasskeyName};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::{CeremonyKind, CeremonyRow, NewCeremony};
use crate::webauthn_policy::Started;

/// A started ceremony: its id and the options for the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyStarted {
    #[schema(value_type = uuid::Uuid)]
    pub ceremony_id: CeremonyId,
    /// Standard WebAuthn options JSON (base64url fields), for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` or
    /// `parseRequestOptionsFromJSON`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: Value,
}

/// Stores a started ceremony for `client_key` and answers its options.
pub async fn open_ceremony(
    state: &AppState,
    kind: CeremonyKind,
    identity: Option<IdentityId>,
    passkey_name: Option<PasskeyName>,
    client_key: String,
    started: Started,
) -> Result<CeremonyStarted, ApiError> {
    let ceremony_id = CeremonyId::generate();
    let ttl = state.settings.webauthn.ceremony_ttl;
    let stored = state
        .store
        .insert_ceremony(
            NewCeremony {
                id: ceremony_id,
                kind,
                identity_id: identity,
                state: started.state,
                passkey_name,
                expires_at: Utc::now()
                    + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5)),
                client_key,
            },
            state.settings.limits.open_ceremonies_per_client,
        )
        .await?;
    if !stored {
        state.metrics.rate_limited("open_ceremonies");
        return Err(ApiError::RateLimited { retry_after: ttl });
    }
    Ok(CeremonyStarted {
        ceremony_id,
        public_key: started.public_key,
    })
}

/// Takes the ceremony (single use) and refuses an expired one.
pub async fn take_ceremony(
    state: &AppState,
    id: CeremonyId,
    kind: CeremonyKind,
    identity: Option<IdentityId>,
) -> Result<CeremonyRow, ApiError> {
    let ceremony = state
        .store
        .take_ceremony(id, kind, identity)
        .await?
        .ok_or(ApiError::CeremonyNotFound)?;
    if ceremony.expires_at < Utc::now() {
        return Err(ApiError::CeremonyExpired);
    }
    Ok(ceremony)
}
