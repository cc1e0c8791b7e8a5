//! Support endpoints (admin listener): list and revoke an identity's passkeys.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{IdentityId, PasskeyId};
use crate::error::ApiError;
use crate::events::Actor;
use crate::kratos::ClientContext;
use crate::passkey_removal::{remove_passkey, LastWayIn};
use crate::routes::passkeys::attested_views;
use crate::routes::PasskeyView;
use crate::state::AppState;

/// `DELETE /admin/identities/{identity_id}/passkeys/{passkey_id}`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Remove it even when it is the identity's last way to sign in.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: usize,
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "`admin_unauthorized`: `admin.api_keys` is set and the bearer token is missing or wrong", body = crate::error::ErrorResponse),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The outbox's backlog is read now; without the database it keeps its
    // last value (readiness reports the database).
    if let Ok(backlog) = state.store.outbox_backlog().await {
        let age = backlog
            .oldest
            .map(|oldest| (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        state.metrics.outbox_backlog(backlog.undelivered, age);
    }
    let body = state
        .metrics
        .render(state.store.pool().state(), state.store.pool_size());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

/// An identity's passkeys (support).
#[utoipa::path(
    get,
    path = "/admin/identities/{identity_id}/passkeys",
    tag = "support",
    security(("admin_token" = [])),
    params(("identity_id" = uuid::Uuid, Path, description = "The Kratos identity id")),
    responses(
        (status = 200, description = "The identity's passkeys", body = Vec<PasskeyView>),
        (status = 404, description = "`not_found`: the id is not a UUID", body = crate::error::ErrorResponse),
        (status = 503, description = "`database_unavailable`", body = crate::error::ErrorResponse),
        (status = 401, description = "`admin_unauthorized`: `admin.api_keys` is set and the bearer token is missing or wrong", body = crate::error::ErrorResponse),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let rows = state.store.passkeys(IdentityId::new(*path)).await?;
    Ok(HttpResponse::Ok().json(attested_views(&state, rows).await?))
}

/// Revoke one of an identity's passkeys (support).
#[utoipa::path(
    delete,
    path = "/admin/identities/{identity_id}/passkeys/{passkey_id}",
    tag = "support",
    security(("admin_token" = [])),
    params(
        ("identity_id" = uuid::Uuid, Path, description = "The Kratos identity id"),
        ("passkey_id" = uuid::Uuid, Path, description = "The passkey's id"),
        RemoveQuery,
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "`malformed_request`: `force` is not `true` or `false`", body = crate::error::ErrorResponse),
        (status = 404, description = "`passkey_not_found`, `not_found`", body = crate::error::ErrorResponse),
        (status = 409, description = "`last_sign_in_method`: the identity's last way in (see `DELETE /passkeys/{id}`); `force=true` removes it all the same", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
        (status = 401, description = "`admin_unauthorized`: `admin.api_keys` is set and the bearer token is missing or wrong", body = crate::error::ErrorResponse),
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    client: ClientContext,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<RemoveQuery>,
) -> Result<HttpResponse, ApiError> {
    let (identity, passkey) = path.into_inner();
    let last_way_in = if query.force {
        LastWayIn::Force
    } else {
        LastWayIn::Keep
    };
    let events = state.events.clone();
    remove_passkey(
        &state,
        IdentityId::new(identity),
        PasskeyId::new(passkey),
        last_way_in,
        move |row| events.removed(row, Actor::Support, &client),
    )
    .await?;
    tracing::info!(%identity, %passkey, force = query.force, "passkey revoked by an administrator");
    Ok(HttpResponse::NoContent().finish())
}

/// Revoke all of an identity's passkeys (support).
#[utoipa::path(
    delete,
    path = "/admin/identities/{identity_id}/passkeys",
    tag = "support",
    security(("admin_token" = [])),
    params(("identity_id" = uuid::Uuid, Path, description = "The Kratos identity id")),
    responses(
        (status = 200, description = "How many were revoked", body = Deleted),
        (status = 404, description = "`not_found`: the id is not a UUID", body = crate::error::ErrorResponse),
        (status = 503, description = "`database_unavailable`", body = crate::error::ErrorResponse),
        (status = 401, description = "`admin_unauthorized`: `admin.api_keys` is set and the bearer token is missing or wrong", body = crate::error::ErrorResponse),
    )
)]
pub async fn remove_all(
    state: web::Data<AppState>,
    client: ClientContext,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let identity = IdentityId::new(*path);
    let events = state.events.clone();
    let deleted = state
        .store
        .delete_all_passkeys(identity, move |row| {
            events.removed(row, Actor::Support, &client)
        })
        .await?;
    tracing::info!(%identity, deleted, "all passkeys revoked by an administrator");
    Ok(HttpResponse::Ok().json(Deleted { deleted }))
}
