//! Support endpoints (admin listener): list and revoke an identity's passkeys.

use actix_web::{web, HttpResponse};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{IdentityId, PasskeyId};
use crate::error::ApiError;
use crate::routes::passkeys::views;
use crate::startup::AppState;

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = state
        .metrics
        .render(state.store.pool().state(), state.store.pool_size());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

pub async fn list(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let rows = state.store.passkeys(IdentityId::new(*path)).await?;
    Ok(HttpResponse::Ok().json(views(rows)))
}

pub async fn remove(
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (identity, passkey) = path.into_inner();
    if state
        .store
        .delete_passkey(IdentityId::new(identity), PasskeyId::new(passkey))
        .await?
    {
        tracing::info!(%identity, %passkey, "passkey revoked by an administrator");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::PasskeyNotFound)
    }
}

pub async fn remove_all(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let identity = IdentityId::new(*path);
    let deleted = state.store.delete_all_passkeys(identity).await?;
    tracing::info!(%identity, deleted, "all passkeys revoked by an administrator");
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}
