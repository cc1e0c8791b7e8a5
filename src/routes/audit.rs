//! The audit on the admin listener: an identity's events, and which passkey
//! login minted a given Kratos session (so a passkey login can be told
//! apart from an account recovery, which Kratos records alike).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{IdentityId, KratosSessionId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{DeliveryRow, EventRow, MintedSessionRecord};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 250;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 250; 50 when absent.
    #[param(minimum = 1, maximum = 250)]
    page_size: Option<i64>,
    /// `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// One event as it was (or will be) delivered, and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Also the `webhook-id` it is delivered with.
    id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    timestamp: DateTime<Utc>,
    /// The delivered payload's `data`.
    #[schema(value_type = Object)]
    data: Value,
    deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    endpoint: String,
    /// `held` (a login waiting for its session id, `events.hold_for` at
    /// most), `pending`, `delivered`, `failed` (given up) or `abandoned`
    /// (the endpoint was removed from the configuration).
    state: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Newest first.
    events: Vec<EventView>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// An identity's events, newest first (support, security).
#[utoipa::path(
    get,
    path = "/admin/identities/{identity_id}/events",
    tag = "audit",
    security(("admin_token" = [])),
    params(
        ("identity_id" = uuid::Uuid, Path, description = "The Kratos identity id"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of the identity's events, with their deliveries", body = EventPage),
        (status = 400, description = "`malformed_request`: a bad page size or token", body = crate::error::ErrorResponse),
        (status = 404, description = "`not_found`: the id is not a UUID", body = crate::error::ErrorResponse),
        (status = 503, description = "`database_unavailable`", body = crate::error::ErrorResponse),
        (status = 401, description = "`admin_unauthorized`: `admin.api_keys` is set and the bearer token is missing or wrong", body = crate::error::ErrorResponse),
    )
)]
pub async fn identity_events(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, before) = page(&query)?;
    let mut rows = state
        .store
        .identity_events(IdentityId::new(*path), before, limit + 1)
        .await?;
    let next_page_token = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|(row, _)| row.seq.to_string())
    });
    Ok(HttpResponse::Ok().json(EventPage {
        events: rows.into_iter().map(event_view).collect(),
        next_page_token: next_page_token.flatten(),
    }))
}

fn page(query: &PageQuery) -> Result<(i64, Option<i64>), ApiError> {
    let limit = query.page_size.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::MalformedRequest(format!(
            "page_size must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = query
        .page_token
        .as_deref()
        .map(|token| {
            token
                .parse::<i64>()
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or_else(|| ApiError::MalformedRequest("page_token is not one we gave".into()))
        })
        .transpose()?;
    Ok((limit, before))
}

fn event_view((row, deliveries): (EventRow, Vec<DeliveryRow>)) -> EventView {
    EventView {
        id: row.id,
        kind: row.kind,
        timestamp: row.occurred_at,
        data: row.payload.get("data").cloned().unwrap_or(Value::Null),
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                next_attempt_at: matches!(d.state.as_str(), "pending").then_some(d.next_attempt_at),
                endpoint: d.endpoint,
                state: d.state,
                attempts: d.attempts,
                last_error: d.last_error,
                delivered_at: d.delivered_at,
            })
            .collect(),
    }
}

/// Which passkey login minted a Kratos session.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintedSessionView {
    kratos_session_id: Uuid,
    identity_id: Uuid,
    passkey: MintingPasskey,
    /// When the passkey login minted it.
    minted_at: DateTime<Utc>,
    /// `cookie` or `token`.
    session_delivery: String,
    /// The admin recovery flow the service redeemed for it (Kratos records
    /// the session's method as `code_recovery`).
    recovery_flow_id: Option<Uuid>,
    client: ClientView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MintingPasskey {
    /// Absent when the passkey was removed since.
    id: Option<Uuid>,
    /// Its name at the login.
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    ip: Option<String>,
    user_agent: Option<String>,
}

/// Which passkey minted a Kratos session (support, security).
#[utoipa::path(
    get,
    path = "/admin/sessions/{kratos_session_id}",
    tag = "audit",
    security(("admin_token" = [])),
    params(("kratos_session_id" = uuid::Uuid, Path, description = "A Kratos session id")),
    responses(
        (status = 200, description = "The passkey login that minted it: which passkey, when, from where", body = MintedSessionView),
        (status = 404, description = "`session_not_minted`: no passkey login minted it (a real recovery, or another kind of login); `not_found`: the id is not a UUID", body = crate::error::ErrorResponse),
        (status = 503, description = "`database_unavailable`", body = crate::error::ErrorResponse),
        (status = 401, description = "`admin_unauthorized`: `admin.api_keys` is set and the bearer token is missing or wrong", body = crate::error::ErrorResponse),
    )
)]
pub async fn minted_session(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .store
        .minted_session(KratosSessionId::new(*path))
        .await?
        .ok_or(ApiError::SessionNotMinted)?;
    Ok(HttpResponse::Ok().json(minted_view(*path, record)))
}

fn minted_view(session: Uuid, record: MintedSessionRecord) -> MintedSessionView {
    MintedSessionView {
        kratos_session_id: session,
        identity_id: record.identity_id,
        passkey: MintingPasskey {
            id: record.passkey_id,
            name: record.passkey_name,
        },
        minted_at: record.created_at,
        session_delivery: record.delivery,
        recovery_flow_id: record.recovery_flow_id,
        client: ClientView {
            ip: record.client_ip,
            user_agent: record.user_agent,
        },
    }
}
