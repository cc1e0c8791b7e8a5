//! Adding a passkey for a signed-in Kratos user:
//! `POST /passkeys/registration/options`, then `POST /passkeys/registration/verify`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::aaguid::default_passkey_name;
use crate::authenticator_policy::Refusal;
use crate::ceremonies::{consume, open_ceremony, start_ceremony, CeremonyStarted, Expected};
use crate::domain::{CeremonyId, PasskeyName};
use crate::error::ApiError;
use crate::kratos::ClientContext;
use crate::metrics::Outcome;
use crate::routes::{counted, PasskeyView};
use crate::sealed_ceremony::CeremonyBody;
use crate::session::CallerSession;
use crate::state::AppState;
use crate::store::{NewPasskey, NewPasskeyName};
use crate::webauthn_policy::{Mediation, NewCredential};

const KIND: &str = "registration";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsRequest {
    /// The passkey's name, kept until the ceremony finishes.
    #[schema(min_length = 1, max_length = 64)]
    #[serde(default)]
    name: Option<String>,
    /// `conditional`: the automatic passkey upgrade right after a password
    /// sign-in (`navigator.credentials.create({mediation: "conditional"})`),
    /// which the password manager answers without a dialog.
    #[schema(value_type = Option<String>, example = "conditional")]
    #[serde(default)]
    mediation: Option<Mediation>,
}

/// Start adding a passkey (Kratos session required, and fresh).
#[utoipa::path(
    post,
    path = "/passkeys/registration/options",
    tag = "registration",
    request_body = OptionsRequest,
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Creation options and the ceremony id", body = CeremonyStarted),
        (status = 400, description = "`malformed_request`, `invalid_passkey_name`", body = crate::error::ErrorResponse),
        (status = 403, description = "`session_aal2_required`, `session_refresh_required` (with `redirect_browser_to`), `origin_not_allowed`, `attestation_required` (a conditional registration under a policy that needs attestation)", body = crate::error::ErrorResponse),
        (status = 409, description = "`passkey_limit_reached`: the identity already holds `limits.passkeys_per_identity` passkeys; remove one to add another", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn options(
    state: web::Data<AppState>,
    session: CallerSession,
    body: web::Json<OptionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = async {
        session.require_fresh(&state.settings)?;
        let name = body.name.as_deref().map(PasskeyName::parse).transpose()?;
        let mediation = body.mediation.unwrap_or_default();
        start_registration(&state, &session, name, mediation).await
    }
    .await;
    let started = counted(&state.metrics, KIND, Outcome::Started, started)?;
    Ok(HttpResponse::Ok().json(started))
}

async fn start_registration(
    state: &AppState,
    session: &CallerSession,
    name: Option<PasskeyName>,
    mediation: Mediation,
) -> Result<CeremonyStarted, ApiError> {
    let identity = session.identity_id();
    // Password managers give no attestation: the automatic upgrade cannot
    // meet a policy that needs it, so it is refused before it starts.
    if mediation == Mediation::Conditional
        && state
            .authenticators
            .policy_for(&session.identity)
            .requires_attestation()
    {
        return Err(Refusal::AttestationRequired.into());
    }
    let details = session.user_details(&state.settings.identity);
    let row = state
        .store
        .identity_with_details(identity, details.clone())
        .await?;
    let exclude = state.store.credential_ids(identity).await?;
    // Refused before the person touches their authenticator; verify counts
    // again under a lock, so ceremonies opened together cannot pass it.
    let limit = state.settings.limits.passkeys_per_identity;
    if !limit.admits_one_more(i64::try_from(exclude.len()).unwrap_or(i64::MAX)) {
        return Err(ApiError::PasskeyLimitReached { limit });
    }
    let started = state
        .policy
        .start_registration(
            crate::domain::UserHandle::new(row.user_handle),
            &details.name,
            &details.display_name,
            exclude,
            mediation,
        )
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("starting registration: {e}")))?;
    start_ceremony(
        state,
        started.challenge,
        CeremonyBody::Registration {
            identity,
            passkey_name: name.map(|n| n.as_str().to_string()),
            state: started.state,
            mediation,
        },
        started.public_key,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The `ceremony_id` that `registration/options` answered, unchanged.
    #[schema(value_type = String, min_length = 1, max_length = 8192)]
    ceremony_id: CeremonyId,
    /// What `PublicKeyCredential.toJSON()` produces for the new credential,
    /// without `clientExtensionResults.prf.results` (refused).
    #[schema(value_type = Object)]
    credential: NewCredential,
    /// Overrides the name given with the options.
    #[schema(min_length = 1, max_length = 64)]
    #[serde(default)]
    name: Option<String>,
}

/// Finish adding a passkey: verify the attestation and store it.
#[utoipa::path(
    post,
    path = "/passkeys/registration/verify",
    tag = "registration",
    request_body = VerifyRequest,
    security(("session_token" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The stored passkey", body = PasskeyView),
        (status = 400, description = "`malformed_request`, `invalid_passkey_name`, `origin_mismatch`, `rp_id_mismatch`, `challenge_mismatch`, `user_verification_missing`, `user_presence_missing`, `resident_key_missing`, `attachment_mismatch`, `signature_invalid`, `attestation_invalid`, `credential_invalid`, `prf_output_present`: the credential carries PRF outputs (`clientExtensionResults.prf.results`), which never leave the browser; nothing was stored and the ceremony can be finished without them", body = crate::error::ErrorResponse),
        (status = 403, description = "`session_aal2_required`, `session_refresh_required` (with `redirect_browser_to`), `origin_not_allowed`, `authenticator_not_allowed`, `authenticator_not_certified`, `authenticator_revoked`, `attestation_required` (the authenticator policy)", body = crate::error::ErrorResponse),
        (status = 404, description = "`ceremony_not_found`: unknown, altered, used, or another identity's", body = crate::error::ErrorResponse),
        (status = 409, description = "`credential_already_registered`, `passkey_name_taken`, `passkey_limit_reached`: the identity holds `limits.passkeys_per_identity` passkeys (counted again here, so ceremonies opened together cannot pass it); nothing was stored", body = crate::error::ErrorResponse),
        (status = 410, description = "`ceremony_expired`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 401, description = "`session_required`: no valid Kratos session", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`: Kratos answered unexpectedly", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn verify(
    state: web::Data<AppState>,
    session: CallerSession,
    client: ClientContext,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let view = async {
        let name = body.name.as_deref().map(PasskeyName::parse).transpose()?;
        finish_registration(
            &state,
            &session,
            &body.ceremony_id,
            &body.credential,
            name,
            client,
        )
        .await
    }
    .await;
    let view = counted(&state.metrics, KIND, Outcome::Finished, view)?;
    Ok(HttpResponse::Created().json(view))
}

async fn finish_registration(
    state: &AppState,
    session: &CallerSession,
    ceremony_id: &CeremonyId,
    credential: &NewCredential,
    name: Option<PasskeyName>,
    client: ClientContext,
) -> Result<PasskeyView, ApiError> {
    let identity = session.identity_id();
    // Before the ceremony is used: a client that forgot to strip them can
    // send the same credential again without.
    if credential.prf.outputs_present {
        return Err(ApiError::PrfOutputPresent);
    }
    let ceremony = open_ceremony(state, ceremony_id, Expected::Registration(identity))?;
    consume(state, &ceremony).await?;
    let CeremonyBody::Registration {
        passkey_name,
        state: registration,
        mediation,
        ..
    } = ceremony.body
    else {
        return Err(ApiError::CeremonyNotFound);
    };
    let chosen = name.or_else(|| {
        passkey_name
            .as_deref()
            .and_then(|n| PasskeyName::parse(n).ok())
    });
    let blob = state.authenticators.metadata.current();
    let verified = state.policy.finish_registration(
        credential,
        &registration,
        &ceremony.challenge,
        mediation,
        blob.as_deref(),
    )?;
    let attestation = state.authenticators.admit(
        &session.identity,
        verified.aaguid,
        &verified.attestation,
        blob.as_deref(),
    )?;
    let name = match chosen {
        Some(name) => NewPasskeyName::Chosen(name),
        None => NewPasskeyName::Default(default_passkey_name(verified.aaguid)),
    };
    let events = state.events.clone();
    let row = state
        .store
        .insert_passkey(
            NewPasskey {
                identity_id: identity,
                credential_id: verified.credential_id,
                credential: verified.credential,
                aaguid: verified.aaguid,
                transports: verified.transports,
                backup_eligible: verified.backup_eligible,
                backup_state: verified.backup_state,
                sign_count: i64::from(verified.sign_count),
                prf_enabled: credential.prf.enabled,
                prf_salt: crate::prf::Salt::generate(),
                attestation,
            },
            name,
            state.settings.limits.passkeys_per_identity,
            move |row, attestation| events.registered(row, attestation, mediation, &client),
        )
        .await?;
    let (row, attestation) = row;
    tracing::info!(identity = %identity, passkey = %row.id, attested = attestation.is_some(), "passkey registered");
    let icon = attestation
        .as_ref()
        .and_then(|a| state.authenticators.metadata.model(a.aaguid))
        .and_then(|m| m.icon);
    Ok(PasskeyView::with_attestation(
        row,
        attestation.as_ref(),
        icon,
    ))
}
