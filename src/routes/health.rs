//! `/health/alive` (the process answers) and `/health/ready` (Postgres and
//! Kratos answer too), on both listeners.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cause_chain::CauseChain;
use crate::state::AppState;

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
    /// What works but is likely misconfigured, e.g. `trusted_proxies`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    warnings: BTreeMap<&'static str, &'static str>,
}

/// Said by `/health/ready` once requests came through an unconfigured proxy.
const PROXY_WARNING: &str = "requests arrive with X-Forwarded-For or Forwarded but http.trusted_proxies is empty: every client looks like one address to the rate limits";

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
        warnings: BTreeMap::new(),
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
    let mut warnings = BTreeMap::new();
    if state.clients.proxy_unconfigured() {
        warnings.insert("trusted_proxies", PROXY_WARNING);
    }
    if errors.is_empty() {
        HttpResponse::Ok().json(HealthStatus {
            status: "ok",
            errors,
            warnings,
        })
    } else {
        HttpResponse::ServiceUnavailable().json(HealthStatus {
            status: "unavailable",
            errors,
            warnings,
        })
    }
}
