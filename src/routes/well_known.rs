//! `GET /.well-known/webauthn`: the related origins that may use this
//! relying party id (WebAuthn Level 3, related origin requests). Browsers
//! fetch it from `https://{rp_id}/.well-known/webauthn`, so that path of the
//! RP id's own site routes here. Beside it, the files built by
//! `association_files`, served byte for byte.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::association_files::WellKnownFile;
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

/// Where to enrol and manage passkeys (`webauthn.passkey_endpoints`), as
/// the W3C "A Well-Known URL for Passkey Endpoints" draft shapes it.
#[utoipa::path(
    get,
    path = "/.well-known/passkey-endpoints",
    tag = "webauthn",
    responses(
        (status = 200, description = "`{\"enroll\": url, \"manage\": url}` (each only when configured)", content_type = "application/json", body = Object),
        (status = 404, description = "`not_found`: no passkey endpoints are configured", body = crate::error::ErrorResponse),
    )
)]
pub async fn passkey_endpoints(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    serve(&state, WellKnownFile::PasskeyEndpoints)
}

/// iOS `webcredentials` (`webauthn.apple_app_ids`).
#[utoipa::path(
    get,
    path = "/.well-known/apple-app-site-association",
    tag = "webauthn",
    responses(
        (status = 200, description = "`{\"webcredentials\": {\"apps\": [...]}}`", content_type = "application/json", body = Object),
        (status = 404, description = "`not_found`: no Apple app ids are configured", body = crate::error::ErrorResponse),
    )
)]
pub async fn apple_app_site_association(
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    serve(&state, WellKnownFile::AppleAppSiteAssociation)
}

/// Android Digital Asset Links granting `get_login_creds`
/// (`webauthn.android_apps`).
#[utoipa::path(
    get,
    path = "/.well-known/assetlinks.json",
    tag = "webauthn",
    responses(
        (status = 200, description = "One `delegate_permission/common.get_login_creds` statement per app", content_type = "application/json", body = Object),
        (status = 404, description = "`not_found`: no Android apps are configured", body = crate::error::ErrorResponse),
    )
)]
pub async fn assetlinks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    serve(&state, WellKnownFile::Assetlinks)
}

/// The bytes built at start-up, as they are.
fn serve(state: &AppState, file: WellKnownFile) -> Result<HttpResponse, ApiError> {
    let bytes = state
        .association_files
        .get(file)
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(bytes.to_vec()))
}
