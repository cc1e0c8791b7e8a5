//! `GET /.well-known/webauthn`: the related origins that may use this
//! relying party id (WebAuthn Level 3, related origin requests). Browsers
//! fetch it from `https://{rp_id}/.well-known/webauthn`, so that path of the
//! RP id's own site routes here.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct RelatedOrigins {
    /// Web origins on other domains allowed to use the RP id.
    origins: Vec<String>,
}

/// The related origins (`webauthn.related_origins`).
#[utoipa::path(
    get,
    path = "/.well-known/webauthn",
    tag = "webauthn",
    responses(
        (status = 200, description = "The configured related origins", body = RelatedOrigins),
        (status = 404, description = "`not_found`: no related origins are configured", body = crate::error::ErrorResponse),
    )
)]
pub async fn related_origins(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.origins.related.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::Ok()
        // Browsers cache it like any response; a day keeps a change prompt.
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .json(RelatedOrigins {
            origins: state.origins.well_known(),
        }))
}
