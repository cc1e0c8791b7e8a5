//! Passkey login over HTTP: `POST /passkeys/login/options`, then
//! `POST /passkeys/login/verify`. The login itself is `crate::passkey_login`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ceremonies::CeremonyStarted;
use crate::domain::{CeremonyId, IdentityId, LoginIdentifier, SessionDelivery};
use crate::error::ApiError;
use crate::kratos::{ClientContext, MintedCredential};
use crate::metrics::Outcome;
use crate::passkey_login::{self, LoginRequest, SecondFactor};
use crate::prf::{LoginPrf, PrfInputsRequest};
use crate::routes::counted;
use crate::state::AppState;
use crate::webauthn_policy::Assertion;

const KIND: &str = "login";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsRequest {
    /// An email: `allowCredentials` then lists that identity's passkeys.
    /// Without it the login is discoverable (usernameless, autofill-ready).
    #[schema(min_length = 1, max_length = 320)]
    #[serde(default)]
    identifier: Option<String>,
    /// Salts for the WebAuthn `prf` extension: `eval` (the application's
    /// own), or `by_credential: true` for the salt this service keeps for
    /// each of the identity's passkeys (needs `identifier`). The outputs
    /// stay in the browser.
    #[serde(default)]
    prf: Option<PrfInputsRequest>,
}

/// Start a passkey login (no session needed; nothing is stored).
#[utoipa::path(
    post,
    path = "/passkeys/login/options",
    tag = "login",
    request_body = OptionsRequest,
    responses(
        (status = 200, description = "Request options and the sealed ceremony id", body = CeremonyStarted),
        (status = 400, description = "`malformed_request`; `prf_salt_invalid`: a PRF salt is not base64url of 1 to 64 bytes, or none was given; `prf_needs_identifier`: `by_credential` without `identifier`; `prf_disabled`: `webauthn.prf` is off", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 429, description = "`rate_limited`: per client IP (`Retry-After` says when the next request passes)", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn options(
    state: web::Data<AppState>,
    client: ClientContext,
    body: web::Json<OptionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = async {
        let identifier = match body.identifier.as_deref() {
            Some(raw) => Some(LoginIdentifier::parse(raw).ok_or_else(|| {
                ApiError::MalformedRequest("identifier must be a non-empty email".into())
            })?),
            None => None,
        };
        let prf = body
            .prf
            .as_ref()
            .map(|prf| LoginPrf::parse(prf, identifier.is_some(), state.policy.prf_enabled()))
            .transpose()?;
        passkey_login::start(&state, &client, identifier, prf).await
    }
    .await;
    let started = counted(&state.metrics, KIND, Outcome::Started, started)?;
    Ok(HttpResponse::Ok().json(started))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The `ceremony_id` that `login/options` answered, unchanged.
    #[schema(value_type = String, min_length = 1, max_length = 8192)]
    ceremony_id: CeremonyId,
    /// What `PublicKeyCredential.toJSON()` produces for the assertion,
    /// without `clientExtensionResults.prf.results` (refused).
    #[schema(value_type = Object)]
    credential: Assertion,
    /// `cookie` (default): Kratos's session cookie is relayed; `token`: the
    /// session token is in the body.
    #[serde(default)]
    session: SessionDelivery,
    /// Also answer the Kratos session object (as `whoami` returns it). It
    /// costs one more call to Kratos before the answer; without it the
    /// client asks Kratos's `whoami` itself when it needs the session.
    #[serde(default)]
    include_session: bool,
}

/// A minted Kratos session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// The Kratos identity that signed in.
    #[schema(value_type = uuid::Uuid)]
    identity_id: IdentityId,
    /// Only with `"session": "token"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
    /// Only with `"include_session": true`: the session as Kratos's
    /// `whoami` returns it (no secrets inside). Absent while a second
    /// factor is pending, or when Kratos could not describe it right then.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    session: Option<Value>,
    /// Only when Kratos wants the person's second factor before the session
    /// is usable (`session.whoami.required_aal: highest_available` and a
    /// second factor set up): the session is issued at aal1 and is
    /// completed in Kratos's own aal2 login, where this says.
    #[serde(skip_serializing_if = "Option::is_none")]
    second_factor: Option<SecondFactor>,
}

/// Finish a passkey login and mint a genuine Kratos session.
#[utoipa::path(
    post,
    path = "/passkeys/login/verify",
    tag = "login",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The Kratos session was minted (cookie mode: with Kratos's `Set-Cookie`); with `second_factor` when Kratos wants one before the session is usable", body = LoginAnswer),
        (status = 400, description = "`malformed_request`, `credential_unknown`, `user_handle_mismatch`, `user_handle_missing`, `origin_mismatch`, `rp_id_mismatch`, `challenge_mismatch`, `user_verification_missing`, `user_presence_missing`, `signature_invalid`, `credential_invalid`, `prf_output_present`: the assertion carries PRF outputs (`clientExtensionResults.prf.results`), which never leave the browser; nothing was minted and the ceremony can be finished without them", body = crate::error::ErrorResponse),
        (status = 403, description = "`credential_cloned`, `identity_inactive`", body = crate::error::ErrorResponse),
        (status = 404, description = "`ceremony_not_found`: unknown, altered, or already used; `identity_not_found`", body = crate::error::ErrorResponse),
        (status = 409, description = "`signature_counter_behind`: the assertion's counter is behind a login made with this passkey moments ago (logins that raced); refused, the passkey is not flagged", body = crate::error::ErrorResponse),
        (status = 410, description = "`ceremony_expired`", body = crate::error::ErrorResponse),
        (status = 413, description = "`body_too_large`", body = crate::error::ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorResponse),
        (status = 429, description = "`rate_limited`: per client IP or failed logins per identity", body = crate::error::ErrorResponse),
        (status = 502, description = "`kratos_error`, `kratos_mint_failed`", body = crate::error::ErrorResponse),
        (status = 503, description = "`kratos_unavailable`, `database_unavailable`", body = crate::error::ErrorResponse),
    )
)]
pub async fn verify(
    state: web::Data<AppState>,
    client: ClientContext,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = LoginRequest {
        ceremony_id: body.ceremony_id,
        credential: body.credential,
        delivery: body.session,
        include_session: body.include_session,
    };
    let logged_in = passkey_login::finish(state.clone(), request, client).await;
    let logged_in = counted(&state.metrics, KIND, Outcome::Finished, logged_in)?;
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    let session_token = match logged_in.credential {
        MintedCredential::Token(token) => Some(token.expose_secret().to_string()),
        MintedCredential::Cookies(cookies) => {
            // Kratos's cookie is relayed unchanged: same name, value and
            // attributes as if Kratos had answered the browser itself.
            for cookie in &cookies {
                response.append_header((header::SET_COOKIE, cookie.as_str()));
            }
            None
        }
    };
    Ok(response.json(LoginAnswer {
        identity_id: logged_in.identity,
        session_token,
        session: logged_in.session,
        second_factor: logged_in.second_factor,
    }))
}
