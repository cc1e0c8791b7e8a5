//! Kratos's after-registration `web_hook` (admin listener).

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::domain::IdentityId;
use crate::error::ApiError;
use crate::startup::AppState;

/// The body `kratos/after-registration.jsonnet` renders.
#[derive(Debug, Deserialize)]
pub struct AfterRegistration {
    identity_id: IdentityId,
    #[serde(default)]
    #[allow(dead_code)]
    traits: Value,
}

pub async fn after_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<AfterRegistration>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req)?;
    state.store.record_registration(body.identity_id).await?;
    tracing::info!(identity = %body.identity_id, "after-registration webhook recorded");
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
