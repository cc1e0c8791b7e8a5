//! WebAuthn policy: the relying party, what the options ask of
//! authenticators, and how verification failures are named.
//!
//! User verification is required and resident (discoverable) keys are
//! required, with any attachment (platform, security key, phone via hybrid).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, CredentialID, DiscoverableAuthentication,
    Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::{AllowCredentials, AuthenticatorTransport, ResidentKeyRequirement};

use std::sync::Arc;

use crate::configuration::WebauthnSettings;
use crate::domain::UserHandle;
use crate::metrics::Metrics;

/// Why a ceremony's credential was refused. Each has a stable error id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyFailure {
    #[error("the credential was made for another origin")]
    OriginMismatch,
    #[error("the credential was made for another relying party")]
    RpIdMismatch,
    #[error("the credential answers another challenge")]
    ChallengeMismatch,
    #[error("the authenticator did not verify the user")]
    UserVerificationMissing,
    #[error("the authenticator did not see the user present")]
    UserPresenceMissing,
    #[error("the signature does not verify")]
    SignatureInvalid,
    #[error("the attestation does not verify")]
    AttestationInvalid,
    #[error("the credential is malformed")]
    CredentialInvalid,
    #[error("the user handle does not match the credential's owner")]
    UserHandleMismatch,
    #[error("a discoverable login must carry the user handle")]
    UserHandleMissing,
    #[error("the signature counter went backwards")]
    CounterRegression,
}

impl CeremonyFailure {
    fn from_webauthn(error: &WebauthnError) -> Self {
        use WebauthnError as E;
        match error {
            E::InvalidRPOrigin | E::CredentialCrossOrigin => Self::OriginMismatch,
            E::InvalidRPIDHash => Self::RpIdMismatch,
            E::MismatchedChallenge => Self::ChallengeMismatch,
            E::UserNotVerified => Self::UserVerificationMissing,
            E::UserNotPresent => Self::UserPresenceMissing,
            E::AuthenticationFailure | E::SignatureInvalid => Self::SignatureInvalid,
            E::CredentialPossibleCompromise => Self::CounterRegression,
            // webauthn-rs names its forty-odd attestation failures
            // `Attestation…`; listing them would break with each release.
            other if format!("{other:?}").starts_with("Attestation") => Self::AttestationInvalid,
            _ => Self::CredentialInvalid,
        }
    }
}

/// Options for the browser, the challenge in them, and the state the
/// ceremony's finish needs.
pub struct Started<S> {
    pub public_key: Value,
    pub challenge: Vec<u8>,
    pub state: S,
}

/// A registration that verified, with what the store and the list view need.
pub struct VerifiedRegistration {
    pub credential: Value,
    pub credential_id: Vec<u8>,
    pub aaguid: Uuid,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: u32,
}

pub struct Policy {
    webauthn: Webauthn,
    metrics: Arc<Metrics>,
}

impl Policy {
    pub fn new(settings: &WebauthnSettings, metrics: Arc<Metrics>) -> Result<Self, WebauthnError> {
        let (first, rest) = settings
            .origins
            .split_first()
            .ok_or(WebauthnError::Configuration)?;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, first)?
            .rp_name(&settings.rp_name)
            .timeout(settings.ceremony_ttl);
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        Ok(Self {
            webauthn: builder.build()?,
            metrics,
        })
    }

    pub fn allowed_origins(&self) -> &[Url] {
        self.webauthn.get_allowed_origins()
    }

    pub fn start_registration(
        &self,
        user_handle: UserHandle,
        user_name: &str,
        display_name: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<Started<PasskeyRegistration>, WebauthnError> {
        let exclude: Vec<CredentialID> = exclude;
        let (mut options, state): (CreationChallengeResponse, PasskeyRegistration) =
            self.webauthn.start_passkey_registration(
                user_handle.as_uuid(),
                user_name,
                display_name,
                Some(exclude),
            )?;
        // webauthn-rs asks for "discouraged"; usernameless login needs the
        // credential to be discoverable on every kind of authenticator.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = true;
            selection.resident_key = Some(ResidentKeyRequirement::Required);
        }
        Ok(Started {
            public_key: to_value(&options.public_key),
            challenge: options.public_key.challenge.to_vec(),
            state: without_exclusions(state),
        })
    }

    pub fn finish_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<VerifiedRegistration, CeremonyFailure> {
        let _timer = self.metrics.webauthn_timer("finish_registration");
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, state)
            .map_err(|error| {
                tracing::info!(?error, "registration refused");
                CeremonyFailure::from_webauthn(&error)
            })?;
        let auth_data =
            AuthenticatorData::from_attestation_object(&credential.response.attestation_object)
                .ok_or(CeremonyFailure::CredentialInvalid)?;
        let transports = credential
            .response
            .transports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(transport_name)
            .collect();
        Ok(VerifiedRegistration {
            credential: to_value(&passkey),
            credential_id: passkey.cred_id().to_vec(),
            aaguid: auth_data.aaguid,
            transports,
            backup_eligible: auth_data.backup_eligible,
            backup_state: auth_data.backup_state,
            sign_count: auth_data.sign_count,
        })
    }

    /// A login for any discoverable credential; `allow` narrows it to the
    /// credentials of an identity the person named.
    pub fn start_login(
        &self,
        allow: Vec<(Vec<u8>, Vec<String>)>,
    ) -> Result<Started<DiscoverableAuthentication>, WebauthnError> {
        let (mut options, state): (RequestChallengeResponse, DiscoverableAuthentication) =
            self.webauthn.start_discoverable_authentication()?;
        options.public_key.allow_credentials = allow
            .into_iter()
            .map(|(id, transports)| AllowCredentials {
                type_: "public-key".to_string(),
                id,
                transports: transports_from_names(&transports),
            })
            .collect();
        Ok(Started {
            public_key: to_value(&options.public_key),
            challenge: options.public_key.challenge.to_vec(),
            state,
        })
    }

    pub fn finish_login(
        &self,
        credential: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        passkey: &Passkey,
    ) -> Result<AuthenticationResult, CeremonyFailure> {
        let _timer = self.metrics.webauthn_timer("finish_login");
        self.webauthn
            .finish_discoverable_authentication_v2(credential, state, passkey)
            .map_err(|error| {
                tracing::info!(?error, "login refused");
                CeremonyFailure::from_webauthn(&error)
            })
    }
}

/// The registration state without its list of excluded credentials. The
/// state travels in the ceremony id, and the list grows with every passkey
/// the identity has (past the ceremony id's size limit for someone with
/// dozens); the browser already got the list in `excludeCredentials`, and
/// the store refuses a credential id registered to anyone (409), so finishing
/// needs no copy of it. Should webauthn-rs ever name the field differently,
/// the state is kept whole.
fn without_exclusions(state: PasskeyRegistration) -> PasskeyRegistration {
    let Ok(mut value) = serde_json::to_value(&state) else {
        return state;
    };
    match value
        .pointer_mut("/rs/exclude_credentials")
        .and_then(Value::as_array_mut)
    {
        Some(list) => list.clear(),
        None => return state,
    }
    serde_json::from_value(value).unwrap_or(state)
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Serializing webauthn-rs's own types into JSON cannot fail: they are
    // plain data with string keys.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn transport_name(transport: &AuthenticatorTransport) -> Option<String> {
    serde_json::to_value(transport)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
}

fn transports_from_names(names: &[String]) -> Option<Vec<AuthenticatorTransport>> {
    let parsed: Vec<AuthenticatorTransport> = names
        .iter()
        .filter_map(|n| serde_json::from_value(Value::String(n.clone())).ok())
        .collect();
    (!parsed.is_empty()).then_some(parsed)
}

/// The parts of the authenticator data webauthn-rs does not expose on a
/// `Passkey`: the AAGUID, the backup flags and the first counter value.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthenticatorData {
    pub aaguid: Uuid,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: u32,
}

impl AuthenticatorData {
    const FLAG_BACKUP_ELIGIBLE: u8 = 0x08;
    const FLAG_BACKUP_STATE: u8 = 0x10;
    const FLAG_ATTESTED_CREDENTIAL_DATA: u8 = 0x40;

    pub fn from_attestation_object(attestation_object: &[u8]) -> Option<Self> {
        let map: BTreeMap<String, serde_cbor_2::Value> =
            serde_cbor_2::from_slice(attestation_object).ok()?;
        match map.get("authData")? {
            serde_cbor_2::Value::Bytes(bytes) => Self::parse(bytes),
            _ => None,
        }
    }

    /// rpIdHash (32) | flags (1) | signCount (4) | aaguid (16) | ...
    fn parse(auth_data: &[u8]) -> Option<Self> {
        let flags = *auth_data.get(32)?;
        let sign_count = u32::from_be_bytes(auth_data.get(33..37)?.try_into().ok()?);
        if flags & Self::FLAG_ATTESTED_CREDENTIAL_DATA == 0 {
            return None;
        }
        let aaguid = Uuid::from_slice(auth_data.get(37..53)?).ok()?;
        Some(Self {
            aaguid,
            backup_eligible: flags & Self::FLAG_BACKUP_ELIGIBLE != 0,
            backup_state: flags & Self::FLAG_BACKUP_STATE != 0,
            sign_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_data(flags: u8, count: u32, aaguid: [u8; 16]) -> Vec<u8> {
        let mut data = vec![0u8; 32];
        data.push(flags);
        data.extend_from_slice(&count.to_be_bytes());
        data.extend_from_slice(&aaguid);
        data.extend_from_slice(&[0, 0]);
        data
    }

    #[test]
    fn authenticator_data_is_read() {
        let aaguid = [7u8; 16];
        let parsed =
            AuthenticatorData::parse(&auth_data(0x45 | 0x08 | 0x10, 3, aaguid)).expect("parses");
        assert_eq!(
            parsed,
            AuthenticatorData {
                aaguid: Uuid::from_bytes(aaguid),
                backup_eligible: true,
                backup_state: true,
                sign_count: 3,
            }
        );
    }

    #[test]
    fn authenticator_data_without_credential_is_refused() {
        assert_eq!(AuthenticatorData::parse(&auth_data(0x05, 0, [0; 16])), None);
        assert_eq!(AuthenticatorData::parse(&[0u8; 10]), None);
    }

    #[test]
    fn webauthn_errors_are_named() {
        use CeremonyFailure as F;
        for (error, failure) in [
            (WebauthnError::InvalidRPOrigin, F::OriginMismatch),
            (
                WebauthnError::AttestationStatementSigInvalid,
                F::AttestationInvalid,
            ),
            (
                WebauthnError::CredentialPossibleCompromise,
                F::CounterRegression,
            ),
            (WebauthnError::ParseNOMFailure, F::CredentialInvalid),
        ] {
            assert_eq!(CeremonyFailure::from_webauthn(&error), failure, "{error:?}");
        }
    }

    #[test]
    fn registration_options_require_resident_keys_and_verification() {
        let settings = WebauthnSettings::for_tests();
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let policy = Policy::new(&settings, metrics).expect("policy");
        let started = policy
            .start_registration(
                UserHandle::generate(),
                "a@example.com",
                "A",
                vec![vec![1, 2]],
            )
            .expect("starts");
        let selection = &started.public_key["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(started.public_key["excludeCredentials"][0]["id"], "AQI");
        assert_eq!(started.public_key["rp"]["id"], "localhost");
        // The browser gets the exclusions; the state the ceremony id carries
        // does not, so it stays small however many passkeys there are.
        let state = serde_json::to_value(&started.state).expect("state");
        assert_eq!(state["rs"]["exclude_credentials"], serde_json::json!([]));
        assert!(state["rs"]["challenge"].is_string(), "{state}");
    }
}
