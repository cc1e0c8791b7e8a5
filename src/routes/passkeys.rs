//! `GET /passkeys`, `PATCH /passkeys/{id}`, `DELETE /passkeys/{id}`: the
//! caller's own passkeys. Another identity's passkey answers exactly like one
//! that does not exist.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aaguid::authenticator_name;
use crate::domain::{PasskeyId, PasskeyName};
use crate::error::ApiError;
use crate::events::Actor;
use crate::kratos::ClientContext;
use crate::session::CallerSession;
use crate::state::AppState;
use crate::store::PasskeyRow;

/// A passkey as its owner (and support staff) see it: no key material.
#[derive(Debug, Serialize, ToSchema)]
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

/// The caller's passkeys, newest first.
#[utoipa::path(
    get,
    path = "/passkeys",
    tag = "passkeys",
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's passkeys", body = Vec<PasskeyView>),
        (status = 403, description = "`session_aal2_required`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    session: CallerSession,
) -> Result<HttpResponse, ApiError> {
    let rows = state.store.passkeys(session.identity_id()).await?;
    Ok(HttpResponse::Ok().json(views(rows)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// 1 to 64 characters, no control characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
}

/// Rename one of the caller's passkeys.
#[utoipa::path(
    patch,
    path = "/passkeys/{id}",
    tag = "passkeys",
    params(("id" = uuid::Uuid, Path, description = "The passkey's id")),
    request_body = RenameRequest,
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The renamed passkey", body = PasskeyView),
        (status = 400, description = "`malformed_request`, `invalid_passkey_name`", body = crate::error::ErrorResponse),
        (status = 403, description = "`session_aal2_required`, `origin_not_allowed`", body = crate::error::ErrorResponse),
        (status = 404, description = "`passkey_not_found` (also for another identity's passkey), `not_found`", body = crate::error::ErrorResponse),
        (status = 409, description = "`passkey_name_taken`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn rename(
    state: web::Data<AppState>,
    session: CallerSession,
    client: ClientContext,
    path: web::Path<Uuid>,
    body: web::Json<RenameRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = PasskeyName::parse(&body.name)?;
    let events = state.events.clone();
    let row = state
        .store
        .rename_passkey(
            session.identity_id(),
            PasskeyId::new(*path),
            name,
            move |row, previous| events.renamed(row, previous, &client),
        )
        .await?
        .ok_or(ApiError::PasskeyNotFound)?;
    Ok(HttpResponse::Ok().json(PasskeyView::from(row)))
}

/// Remove one of the caller's passkeys (fresh session required).
#[utoipa::path(
    delete,
    path = "/passkeys/{id}",
    tag = "passkeys",
    params(("id" = uuid::Uuid, Path, description = "The passkey's id")),
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`session_aal2_required`, `session_refresh_required` (with `redirect_browser_to`), `origin_not_allowed`", body = crate::error::ErrorResponse),
        (status = 404, description = "`passkey_not_found` (also for another identity's passkey), `not_found`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    session: CallerSession,
    client: ClientContext,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    session.require_fresh(&state.settings)?;
    let events = state.events.clone();
    if state
        .store
        .delete_passkey(session.identity_id(), PasskeyId::new(*path), move |row| {
            events.removed(row, Actor::Person, &client)
        })
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::PasskeyNotFound)
    }
}
