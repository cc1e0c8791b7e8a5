//! `/health/alive` (the process answers) and `/health/ready` (Postgres and
//! Kratos answer too), on both listeners.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::CauseChain;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/alive", web::get().to(alive))
        .route("/health/ready", web::get().to(ready));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// What is down: `database`, `kratos`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    errors: BTreeMap<&'static str, &'static str>,
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/health/alive",
    tag = "health",
    responses((status = 200, description = "Alive", body = HealthStatus))
)]
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus {
        status: "ok",
        errors: BTreeMap::new(),
    })
}

/// Postgres and Kratos answer.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "Not ready; `errors` names what is down", body = HealthStatus),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (database, kratos) =
        futures_util::future::join(state.store.ping(), state.kratos.ready()).await;
    let mut errors = BTreeMap::new();
    if let Err(error) = database {
        tracing::warn!(cause = ?CauseChain(&error), "readiness: database");
        errors.insert("database", "unavailable");
    }
    if let Err(error) = kratos {
        tracing::warn!(cause = ?CauseChain(&error), "readiness: kratos");
        errors.insert("kratos", "unavailable");
    }
    if errors.is_empty() {
        HttpResponse::Ok().json(HealthStatus {
            status: "ok",
            errors,
        })
    } else {
        HttpResponse::ServiceUnavailable().json(HealthStatus {
            status: "unavailable",
            errors,
        })
    }
}
