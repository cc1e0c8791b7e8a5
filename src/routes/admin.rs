//! Support endpoints (admin listener): list and revoke an identity's passkeys.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{IdentityId, PasskeyId};
use crate::error::ApiError;
use crate::events::Actor;
use crate::kratos::ClientContext;
use crate::routes::passkeys::views;
use crate::routes::PasskeyView;
use crate::state::AppState;

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
    Ok(HttpResponse::Ok().json(views(rows)))
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
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`passkey_not_found`, `not_found`", body = crate::error::ErrorResponse),
        (status = 503, description = "`database_unavailable`", body = crate::error::ErrorResponse),
        (status = 401, description = "`admin_unauthorized`: `admin.api_keys` is set and the bearer token is missing or wrong", body = crate::error::ErrorResponse),
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    client: ClientContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (identity, passkey) = path.into_inner();
    let events = state.events.clone();
    if state
        .store
        .delete_passkey(
            IdentityId::new(identity),
            PasskeyId::new(passkey),
            move |row| events.removed(row, Actor::Support, &client),
        )
        .await?
    {
        tracing::info!(%identity, %passkey, "passkey revoked by an administrator");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::PasskeyNotFound)
    }
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
