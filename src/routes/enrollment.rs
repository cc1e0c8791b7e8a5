//! The post-registration passkey offer: `GET /passkeys/enrollment` and
//! `POST /passkeys/enrollment/dismiss` ("Skip for now").

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::session::CallerSession;
use crate::state::AppState;
use crate::store::IdentityRow;

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentStatus {
    /// Whether to offer setting up a passkey now.
    pub offer: bool,
    pub passkeys: i64,
}

/// Should the frontend offer a passkey now?
#[utoipa::path(
    get,
    path = "/passkeys/enrollment",
    tag = "enrollment",
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The offer", body = EnrollmentStatus),
        (status = 403, description = "`session_aal2_required`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn status(
    state: web::Data<AppState>,
    session: CallerSession,
) -> Result<HttpResponse, ApiError> {
    let identity = session.identity_id();
    let (row, passkeys) = futures_util::future::try_join(
        state.store.identity(identity),
        state.store.passkey_count(identity),
    )
    .await?;
    let offer = should_offer(
        row.as_ref(),
        passkeys,
        state.settings.enrollment.offer_existing_identities,
    );
    Ok(HttpResponse::Ok().json(EnrollmentStatus { offer, passkeys }))
}

/// Offer a passkey to someone without one who has not said "Skip for now":
/// people who just registered (Kratos's webhook told us), and, when
/// configured, everyone else too.
fn should_offer(row: Option<&IdentityRow>, passkeys: i64, offer_existing: bool) -> bool {
    if passkeys > 0 {
        return false;
    }
    match row {
        Some(row) if row.enrollment_dismissed_at.is_some() => false,
        Some(row) if row.registered_at.is_some() => true,
        _ => offer_existing,
    }
}

/// "Skip for now": stop offering a passkey.
#[utoipa::path(
    post,
    path = "/passkeys/enrollment/dismiss",
    tag = "enrollment",
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Recorded"),
        (status = 403, description = "`session_aal2_required`, `origin_not_allowed`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn dismiss(
    state: web::Data<AppState>,
    session: CallerSession,
) -> Result<HttpResponse, ApiError> {
    state
        .store
        .dismiss_enrollment(session.identity_id())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn row(registered: bool, dismissed: bool) -> IdentityRow {
        IdentityRow {
            identity_id: Uuid::new_v4(),
            user_handle: Uuid::new_v4(),
            registered_at: registered.then(Utc::now),
            enrollment_dismissed_at: dismissed.then(Utc::now),
            created_at: Utc::now(),
            user_name: None,
            display_name: None,
        }
    }

    #[test]
    fn offer_rules() {
        assert!(should_offer(Some(&row(true, false)), 0, false));
        assert!(!should_offer(Some(&row(true, false)), 1, false));
        assert!(!should_offer(Some(&row(true, true)), 0, true));
        assert!(!should_offer(Some(&row(false, false)), 0, false));
        assert!(!should_offer(None, 0, false));
        assert!(should_offer(None, 0, true));
    }
}
