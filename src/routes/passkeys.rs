//! `GET /passkeys`, `PATCH /passkeys/{id}`, `DELETE /passkeys/{id}`: the
//! caller's own passkeys. Another identity's passkey answers exactly like one
//! that does not exist.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aaguid::authenticator_name;
use crate::domain::{PasskeyId, PasskeyName};
use crate::error::ApiError;
use crate::session::CallerSession;
use crate::startup::AppState;
use crate::store::PasskeyRow;

/// A passkey as its owner (and support staff) see it: no key material.
#[derive(Debug, Serialize)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub aaguid: Uuid,
    /// The provider's name from the AAGUID, when known.
    pub authenticator: Option<&'static str>,
    pub backup_eligible: bool,
    /// Synced to a cloud account (the passkey survives losing the device).
    pub backup_state: bool,
    pub transports: Vec<String>,
    /// Disabled after its signature counter went backwards (possible clone).
    pub disabled: bool,
}

impl From<PasskeyRow> for PasskeyView {
    fn from(row: PasskeyRow) -> Self {
        Self {
            id: row.id,
            authenticator: authenticator_name(row.aaguid),
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            aaguid: row.aaguid,
            backup_eligible: row.backup_eligible,
            backup_state: row.backup_state,
            transports: row.transports,
            disabled: row.flagged_at.is_some(),
        }
    }
}

pub fn views(rows: Vec<PasskeyRow>) -> Vec<PasskeyView> {
    rows.into_iter().map(PasskeyView::from).collect()
}

pub async fn list(
    state: web::Data<AppState>,
    session: CallerSession,
) -> Result<HttpResponse, ApiError> {
    let rows = state.store.passkeys(session.identity_id()).await?;
    Ok(HttpResponse::Ok().json(views(rows)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    name: String,
}

pub async fn rename(
    state: web::Data<AppState>,
    session: CallerSession,
    path: web::Path<Uuid>,
    body: web::Json<RenameRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = PasskeyName::parse(&body.name)?;
    let row = state
        .store
        .rename_passkey(session.identity_id(), PasskeyId::new(*path), name)
        .await?
        .ok_or(ApiError::PasskeyNotFound)?;
    Ok(HttpResponse::Ok().json(PasskeyView::from(row)))
}

pub async fn remove(
    state: web::Data<AppState>,
    session: CallerSession,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    session.require_fresh(&state.settings)?;
    if state
        .store
        .delete_passkey(session.identity_id(), PasskeyId::new(*path))
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::PasskeyNotFound)
    }
}
