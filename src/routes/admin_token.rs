//! The admin listener's bearer token (`admin.api_keys`), asked of every
//! route but the open ones below. Default deny: a route added later is
//! guarded unless listed here.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::error::ApiError;
use crate::state::AppState;

/// Probes (orchestrators send no token, and these say only up or down),
/// and Kratos's web hooks, which authenticate with `webhook.api_key`:
/// Kratos's `web_hook` sends one credential, and the narrower one is kept
/// for it. Exact paths, so no spelling of another route slips through.
const OPEN: [&str; 5] = [
    "/health/alive",
    "/health/ready",
    "/hooks/kratos/after-registration",
    "/hooks/kratos/after-recovery",
    "/hooks/kratos/after-settings",
];

pub async fn admin_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let admitted = OPEN.contains(&req.path())
        || req.app_data::<web::Data<AppState>>().is_some_and(|state| {
            state.admin_tokens.admits(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(|value| value.as_bytes()),
            )
        });
    if !admitted {
        return Ok(req.into_response(ApiError::AdminUnauthorized.error_response()));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
