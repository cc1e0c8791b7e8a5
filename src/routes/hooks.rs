//! Kratos's `web_hook`s (admin listener): after registration, and after
//! recovery (`crate::recovery_hook`).

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::domain::{IdentityId, UserDetails};
use crate::error::ApiError;
use crate::recovery_hook::{self, AfterRecovery};
use crate::state::AppState;

/// The body `kratos/after-registration.jsonnet` and
/// `kratos/after-settings.jsonnet` render: the identity as the flow left it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IdentityHook {
    #[schema(value_type = uuid::Uuid)]
    identity_id: IdentityId,
    /// Required by the after-settings hook, which reads the names from them.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    traits: Option<Value>,
}

/// Kratos's after-registration `web_hook`: the identity was just created.
#[utoipa::path(
    post,
    path = "/hooks/kratos/after-registration",
    tag = "hooks",
    request_body = IdentityHook,
    security(("webhook_key" = [])),
    responses(
        (status = 204, description = "Recorded (idempotent)"),
        (status = 400, description = "`malformed_request`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 401, description = "`webhook_unauthorized`", body = crate::error::ErrorResponse),
        (status = 503, description = "`database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn after_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<IdentityHook>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req)?;
    state.store.record_registration(body.identity_id).await?;
    tracing::info!(identity = %body.identity_id, "after-registration webhook recorded");
    Ok(HttpResponse::NoContent().finish())
}

/// Kratos's after-recovery `web_hook` (`kratos/after-recovery.jsonnet`,
/// `response.ignore: false`): leaves passkey logins alone; for a real
/// recovery, revokes the person's other sessions (when configured) and
/// forwards `notify` to the notifier. A refusal makes Kratos refuse the
/// recovery.
#[utoipa::path(
    post,
    path = "/hooks/kratos/after-recovery",
    tag = "hooks",
    request_body = AfterRecovery,
    security(("webhook_key" = [])),
    responses(
        (status = 204, description = "Done: nothing for a passkey login; for a real recovery, sessions revoked and the notifier's notice written to the outbox"),
        (status = 400, description = "`malformed_request`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 401, description = "`webhook_unauthorized`", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: revoking the sessions failed", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`: revoking the sessions failed; `database_unavailable`: writing the notice failed", body = crate::error::ErrorResponse),
    )
)]
pub async fn after_recovery(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<AfterRecovery>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req)?;
    let hook = recovery_hook::Hook {
        marker: &state.marker,
        kratos: &state.kratos,
        notifier: &state.notifier,
        store: &state.store,
        events: &state.events,
        settings: &state.settings.recovery_hook,
        metrics: &state.metrics,
    };
    recovery_hook::after_recovery(hook, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Kratos's after-settings `web_hook` (profile method): the person may have
/// changed their name. The names their passkeys carry are updated, and the
/// next list answers them, so the browser client can tell the password
/// manager (`signalCurrentUserDetails`). Unknown identities are ignored.
#[utoipa::path(
    post,
    path = "/hooks/kratos/after-settings",
    tag = "hooks",
    request_body = IdentityHook,
    security(("webhook_key" = [])),
    responses(
        (status = 204, description = "Recorded (idempotent)"),
        (status = 400, description = "`malformed_request`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 401, description = "`webhook_unauthorized`", body = crate::error::ErrorResponse),
        (status = 503, description = "`database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn after_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<IdentityHook>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req)?;
    // Without traits there is no name: refused rather than blanked.
    let traits = body.traits.as_ref().ok_or_else(|| {
        ApiError::MalformedRequest("the after-settings body needs the identity's traits".into())
    })?;
    let settings = &state.settings.identity;
    let details = UserDetails::from_traits(
        body.identity_id,
        traits,
        &settings.name_trait,
        &settings.display_name_trait,
    );
    let changed = state
        .store
        .update_details(body.identity_id, details)
        .await?;
    tracing::info!(identity = %body.identity_id, changed, "after-settings webhook recorded");
    Ok(HttpResponse::NoContent().finish())
}

/// Compares the API key header in constant time.
fn authenticate(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let expected = state.settings.webhook.api_key.expose_secret().as_bytes();
    let presented = req
        .headers()
        .get(state.settings.webhook.header.as_str())
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !expected.is_empty() && bool::from(presented.ct_eq(expected)) {
        Ok(())
    } else {
        Err(ApiError::WebhookUnauthorized)
    }
}
