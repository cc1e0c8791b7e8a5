//! `GET /passkeys`, `PATCH /passkeys/{id}`, `DELETE /passkeys/{id}`: the
//! caller's own passkeys. Another identity's passkey answers exactly like one
//! that does not exist.

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aaguid::authenticator_name;
use crate::domain::{PasskeyId, PasskeyName};
use crate::error::ApiError;
use crate::events::Actor;
use crate::kratos::ClientContext;
use crate::passkey_removal::{remove_passkey, LastWayIn};
use crate::session::CallerSession;
use crate::state::AppState;
use crate::store::{AttestationRow, IdentityRow, PasskeyRow};

/// A passkey as its owner (and support staff) see it: no key material.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    /// The WebAuthn credential id, base64url without padding (what the
    /// Signal API's `allAcceptedCredentialIds` lists).
    pub credential_id: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub aaguid: Uuid,
    /// The provider's name from the AAGUID, when known.
    pub authenticator: Option<&'static str>,
    /// The provider's icon URLs (a neutral key when it is unknown).
    pub icon: super::authenticators::AuthenticatorIcon,
    pub backup_eligible: bool,
    /// Synced to a cloud account (the passkey survives losing the device).
    pub backup_state: bool,
    pub transports: Vec<String>,
    /// Disabled after its signature counter went backwards (possible clone),
    /// or its attested model got a refused status (`revoked_status`).
    pub disabled: bool,
    /// Whether it can derive secrets with the WebAuthn `prf` extension (end
    /// to end encryption keys), as the browser said when it was added;
    /// `null` when the browser did not say.
    pub prf_enabled: Option<bool>,
    /// Whether registration verified the authenticator's attestation.
    pub attested: bool,
    /// The authenticator model, and how far its name can be trusted.
    pub model: ModelView,
    /// The refused status (`REVOKED`, ...) its model got after registration,
    /// when `authenticators.on_status_change` is `flag`.
    pub revoked_status: Option<String>,
}

/// The model a passkey was made by. `verified`: attestation proved it, and
/// the name is the FIDO metadata's description; `claimed`: the AAGUID is
/// the authenticator's own word, named from the community AAGUID list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub name: Option<String>,
    /// `verified` or `claimed`.
    #[schema(example = "verified")]
    pub trust: &'static str,
    /// A `data:` URL from the metadata (verified models only).
    pub icon: Option<String>,
    /// The FIDO certification level when it was attested.
    pub certification: Option<String>,
    /// The attestation statement format (verified models only).
    pub format: Option<String>,
}

impl PasskeyView {
    /// The view of a passkey with what registration verified about its
    /// authenticator; `icon` is the model's icon in the BLOB in use.
    pub fn with_attestation(
        row: PasskeyRow,
        attestation: Option<&AttestationRow>,
        icon: Option<String>,
    ) -> Self {
        let mut view = Self::from(row);
        if let Some(a) = attestation {
            view.attested = true;
            view.disabled |= a.revoked_at.is_some();
            view.revoked_status = a.revoked_status.clone();
            view.model = ModelView {
                name: Some(a.description.clone()),
                trust: "verified",
                icon,
                certification: a.certification.clone(),
                format: Some(a.format.clone()),
            };
        }
        view
    }
}

/// The views of `rows`, with their attestations.
pub async fn attested_views(
    state: &AppState,
    rows: Vec<PasskeyRow>,
) -> Result<Vec<PasskeyView>, ApiError> {
    let attestations = state
        .store
        .attestations(rows.iter().map(|r| r.id).collect())
        .await?;
    let metadata = &state.authenticators.metadata;
    Ok(rows
        .into_iter()
        .map(|row| {
            let attestation = attestations.iter().find(|a| a.passkey_id == row.id);
            let icon = attestation
                .and_then(|a| metadata.model(a.aaguid))
                .and_then(|m| m.icon);
            PasskeyView::with_attestation(row, attestation, icon)
        })
        .collect())
}

impl From<PasskeyRow> for PasskeyView {
    fn from(row: PasskeyRow) -> Self {
        Self {
            attested: false,
            model: ModelView {
                name: authenticator_name(row.aaguid).map(str::to_string),
                trust: "claimed",
                icon: None,
                certification: None,
                format: None,
            },
            revoked_status: None,
            id: row.id,
            credential_id: URL_SAFE_NO_PAD.encode(&row.credential_id),
            authenticator: authenticator_name(row.aaguid),
            icon: super::authenticators::AuthenticatorIcon::of(row.aaguid),
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            aaguid: row.aaguid,
            backup_eligible: row.backup_eligible,
            backup_state: row.backup_state,
            transports: row.transports,
            disabled: row.flagged_at.is_some(),
            prf_enabled: row.prf_enabled,
        }
    }
}

/// The caller's passkeys and what their password manager should know.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// The relying party id every passkey here belongs to.
    pub rp_id: String,
    /// The person as the passkeys know them; `null` before their first
    /// passkey.
    pub user: Option<PasskeyUser>,
    /// Newest first.
    pub passkeys: Vec<PasskeyView>,
}

/// The WebAuthn user of the caller's passkeys, for the Signal API
/// (`signalAllAcceptedCredentials`, `signalCurrentUserDetails`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyUser {
    /// The WebAuthn user handle, base64url without padding.
    pub id: String,
    /// The current name (Kratos's after-settings hook keeps it current).
    pub name: String,
    pub display_name: String,
}

/// The caller's passkeys, newest first, with their relying party and user.
#[utoipa::path(
    get,
    path = "/passkeys",
    tag = "passkeys",
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's passkeys", body = PasskeyList),
        (status = 403, description = "`session_aal2_required`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    session: CallerSession,
) -> Result<HttpResponse, ApiError> {
    let identity = session.identity_id();
    let (row, passkeys) = futures_util::future::try_join(
        state.store.identity(identity),
        state.store.passkeys(identity),
    )
    .await?;
    let user = match row {
        Some(row) => Some(current_user(&state, &session, row).await?),
        None => None,
    };
    Ok(HttpResponse::Ok().json(PasskeyList {
        rp_id: state.settings.webauthn.rp_id.clone(),
        user,
        passkeys: attested_views(&state, passkeys).await?,
    }))
}

/// The person's names as Kratos has them now (the session's traits). The
/// after-settings hook records a change as it happens; should its calls
/// arrive out of order, or the hook not be wired, the list corrects the
/// stored names here (a write only when they differ).
async fn current_user(
    state: &AppState,
    session: &CallerSession,
    row: IdentityRow,
) -> Result<PasskeyUser, ApiError> {
    let current = session.user_details(&state.settings.identity);
    let stored = (row.user_name.as_deref(), row.display_name.as_deref());
    if stored
        != (
            Some(current.name.as_str()),
            Some(current.display_name.as_str()),
        )
    {
        state
            .store
            .update_details(session.identity_id(), current.clone())
            .await?;
    }
    Ok(PasskeyUser {
        id: URL_SAFE_NO_PAD.encode(row.user_handle.as_bytes()),
        name: current.name,
        display_name: current.display_name,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// 1 to 64 characters, no control characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
}

/// Rename one of the caller's passkeys.
#[utoipa::path(
    patch,
    path = "/passkeys/{id}",
    tag = "passkeys",
    params(("id" = uuid::Uuid, Path, description = "The passkey's id")),
    request_body = RenameRequest,
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The renamed passkey", body = PasskeyView),
        (status = 400, description = "`malformed_request`, `invalid_passkey_name`", body = crate::error::ErrorResponse),
        (status = 403, description = "`session_aal2_required`, `origin_not_allowed`", body = crate::error::ErrorResponse),
        (status = 404, description = "`passkey_not_found` (also for another identity's passkey), `not_found`", body = crate::error::ErrorResponse),
        (status = 409, description = "`passkey_name_taken`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn rename(
    state: web::Data<AppState>,
    session: CallerSession,
    client: ClientContext,
    path: web::Path<Uuid>,
    body: web::Json<RenameRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = PasskeyName::parse(&body.name)?;
    let events = state.events.clone();
    let row = state
        .store
        .rename_passkey(
            session.identity_id(),
            PasskeyId::new(*path),
            name,
            move |row, previous| events.renamed(row, previous, &client),
        )
        .await?
        .ok_or(ApiError::PasskeyNotFound)?;
    Ok(HttpResponse::Ok().json(PasskeyView::from(row)))
}

/// Remove one of the caller's passkeys (fresh session required).
#[utoipa::path(
    delete,
    path = "/passkeys/{id}",
    tag = "passkeys",
    params(("id" = uuid::Uuid, Path, description = "The passkey's id")),
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`session_aal2_required`, `session_refresh_required` (with `redirect_browser_to`), `origin_not_allowed`", body = crate::error::ErrorResponse),
        (status = 404, description = "`passkey_not_found` (also for another identity's passkey), `not_found`", body = crate::error::ErrorResponse),
        (status = 409, description = "`last_sign_in_method`: the identity's last passkey, and Kratos has no password, OIDC, passwordless WebAuthn/passkey or (with `identity.kratos_code_login`) code login for it; it is kept", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    session: CallerSession,
    client: ClientContext,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    session.require_fresh(&state.settings)?;
    let events = state.events.clone();
    remove_passkey(
        &state,
        session.identity_id(),
        PasskeyId::new(*path),
        LastWayIn::Keep,
        move |row| events.removed(row, Actor::Person, &client),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
