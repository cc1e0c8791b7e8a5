//! `/health/alive` (the process answers) and `/health/ready` (Postgres and
//! Kratos answer too), on both listeners.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::CauseChain;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/alive", web::get().to(alive))
        .route("/health/ready", web::get().to(ready));
}

async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (database, kratos) =
        futures_util::future::join(state.store.ping(), state.kratos.ready()).await;
    let mut errors = serde_json::Map::new();
    if let Err(error) = database {
        tracing::warn!(cause = ?CauseChain(&error), "readiness: database");
        errors.insert("database".into(), json!("unavailable"));
    }
    if let Err(error) = kratos {
        tracing::warn!(cause = ?CauseChain(&error), "readiness: kratos");
        errors.insert("kratos".into(), json!("unavailable"));
    }
    if errors.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "errors": errors }))
    }
}
