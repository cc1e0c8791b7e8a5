//! The OpenAPI 3 documents, generated from the handlers' annotations:
//! `/openapi.json` on the public listener (public endpoints) and on the admin
//! listener (admin endpoints).

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, audit, authenticators, enrollment, health, hooks, login, passkeys, registration,
    well_known,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kratos-passkeys public API",
        description = "Passkeys beside Ory Kratos: registration and management for signed-in Kratos users, and passkey login that ends in a genuine Kratos session. Every refusal is an `ErrorResponse` with a stable `error.id`."
    ),
    paths(
        registration::options,
        registration::verify,
        passkeys::list,
        passkeys::rename,
        passkeys::remove,
        authenticators::icon,
        enrollment::status,
        enrollment::dismiss,
        login::options,
        login::verify,
        well_known::related_origins,
        well_known::passkey_endpoints,
        well_known::apple_app_site_association,
        well_known::assetlinks,
        health::alive,
        health::ready,
    ),
    components(schemas(crate::error::ErrorResponse, crate::error::ErrorId)),
    modifiers(&SessionSecurity),
    tags(
        (name = "registration", description = "Adding a passkey (Kratos session required)"),
        (name = "passkeys", description = "The caller's passkeys"),
        (name = "authenticators", description = "Authenticator icons, from the community passkey AAGUID list"),
        (name = "enrollment", description = "The post-registration passkey offer"),
        (name = "login", description = "Passkey login, minting a Kratos session"),
        (name = "webauthn", description = "Related origins, passkey endpoints and native app association files for the relying party id"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct PublicApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kratos-passkeys admin API",
        description = "The internal listener: Kratos's after-registration and after-recovery webhooks, support and audit endpoints, metrics and health."
    ),
    paths(
        hooks::after_registration,
        hooks::after_recovery,
        hooks::after_settings,
        admin::list,
        admin::remove,
        admin::remove_all,
        audit::identity_events,
        audit::minted_session,
        admin::metrics,
        health::alive,
        health::ready,
    ),
    components(schemas(crate::error::ErrorResponse, crate::error::ErrorId)),
    modifiers(&AdminSecurity),
    tags(
        (name = "hooks", description = "Kratos webhooks"),
        (name = "support", description = "Support staff: an identity's passkeys"),
        (name = "audit", description = "An identity's events, and which passkey minted a Kratos session"),
        (name = "operations", description = "Metrics"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct AdminApi;

/// Kratos's own session credentials, forwarded to Kratos's `whoami`.
struct SessionSecurity;

impl Modify for SessionSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Session-Token",
                "A Kratos session token",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A Kratos session token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "ory_kratos_session",
                "Kratos's session cookie; state changes also need an allowed Origin",
            ))),
        );
    }
}

/// Kratos's web hooks carry the webhook key; the other admin routes, but
/// the health probes, a bearer token when `admin.api_keys` is set.
struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "webhook_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Webhook-Key",
                "The webhook API key (header name configurable)",
            ))),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "One of admin.api_keys; asked only when some are configured",
                    ))
                    .build(),
            ),
        );
    }
}

pub async fn public_document() -> HttpResponse {
    HttpResponse::Ok().json(PublicApi::openapi())
}

pub async fn admin_document() -> HttpResponse {
    HttpResponse::Ok().json(AdminApi::openapi())
}
