//! HTTP routes. Handlers stay thin: they extract, call one named function,
//! and shape the answer.

mod admin;
mod admin_token;
mod audit;
mod authenticators;
mod demo;
mod enrollment;
mod health;
mod hooks;
mod login;
pub mod openapi;
mod passkeys;
mod registration;
mod well_known;

use std::future::{ready, Ready};

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::kratos::ClientContext;
use crate::metrics::{Metrics, Outcome};
use crate::state::AppState;

pub use admin_token::admin_token;
pub use passkeys::PasskeyView;

/// Browsers and apps.
pub fn public(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    cfg.service(resource("/openapi.json").route(web::get().to(openapi::public_document)))
        .service(resource("/").route(web::get().to(demo::index)))
        .service(resource("/demo/").route(web::get().to(demo::index)))
        .service(resource("/demo/demo.js").route(web::get().to(demo::demo_js)))
        .service(resource("/demo/demo.css").route(web::get().to(demo::demo_css)))
        .service(resource("/demo/config.json").route(web::get().to(demo::config)))
        .service(
            resource("/.well-known/webauthn").route(web::get().to(well_known::related_origins)),
        )
        .service(
            resource("/.well-known/passkey-endpoints")
                .route(web::get().to(well_known::passkey_endpoints)),
        )
        .service(
            resource("/.well-known/apple-app-site-association")
                .route(web::get().to(well_known::apple_app_site_association)),
        )
        .service(
            resource("/.well-known/assetlinks.json").route(web::get().to(well_known::assetlinks)),
        )
        // Before /passkeys/{id}, which would otherwise claim it.
        .service(resource("/passkeys/client.js").route(web::get().to(demo::client_js)))
        .service(
            resource("/passkeys/authenticators/{aaguid}/icon/{theme}")
                .route(web::get().to(authenticators::icon)),
        );
    cfg.service(
        resource("/passkeys/registration/options").route(web::post().to(registration::options)),
    )
    .service(resource("/passkeys/registration/verify").route(web::post().to(registration::verify)))
    .service(resource("/passkeys/login/options").route(web::post().to(login::options)))
    .service(resource("/passkeys/login/verify").route(web::post().to(login::verify)))
    .service(resource("/passkeys/enrollment").route(web::get().to(enrollment::status)))
    .service(resource("/passkeys/enrollment/dismiss").route(web::post().to(enrollment::dismiss)))
    .service(resource("/passkeys").route(web::get().to(passkeys::list)))
    .service(
        resource("/passkeys/{id}")
            .route(web::patch().to(passkeys::rename))
            .route(web::delete().to(passkeys::remove)),
    );
}

/// The internal network only: Kratos's webhook and support endpoints
/// (behind `admin_token` when `admin.api_keys` is set).
pub fn admin(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    cfg.service(
        resource("/hooks/kratos/after-registration")
            .route(web::post().to(hooks::after_registration)),
    )
    .service(resource("/hooks/kratos/after-recovery").route(web::post().to(hooks::after_recovery)))
    .service(resource("/hooks/kratos/after-settings").route(web::post().to(hooks::after_settings)))
    .service(
        resource("/admin/identities/{identity_id}/passkeys")
            .route(web::get().to(admin::list))
            .route(web::delete().to(admin::remove_all)),
    )
    .service(
        resource("/admin/identities/{identity_id}/passkeys/{passkey_id}")
            .route(web::delete().to(admin::remove)),
    )
    .service(
        resource("/admin/identities/{identity_id}/events")
            .route(web::get().to(audit::identity_events)),
    )
    .service(
        resource("/admin/sessions/{kratos_session_id}").route(web::get().to(audit::minted_session)),
    )
    .service(resource("/metrics").route(web::get().to(admin::metrics)))
    .service(resource("/openapi.json").route(web::get().to(openapi::admin_document)));
}

/// Counts a ceremony step: `success` when it went through, else a failure
/// with its error id.
fn counted<T>(
    metrics: &Metrics,
    kind: &'static str,
    success: Outcome,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    match &result {
        Ok(_) => metrics.ceremony(kind, success),
        Err(error) => metrics.ceremony(kind, Outcome::Failed(error.id().as_str())),
    }
    result
}

/// The caller's User-Agent and address (from the trusted proxies' header
/// when configured): forwarded to Kratos with a mint, and written into events.
impl FromRequest for ClientContext {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let ip = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| state.clients.client_ip(req));
        ready(Ok(ClientContext {
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            ip,
        }))
    }
}

/// A resource that answers unknown methods with our JSON error.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
