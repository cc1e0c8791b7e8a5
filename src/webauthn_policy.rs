//! WebAuthn policy: the relying party, what the options ask of
//! authenticators, and how verification failures are named.
//!
//! From configuration: user verification (`required` by default, or
//! `preferred`), resident keys (`required` by default, or `preferred`), the
//! authenticator attachment (any by default, `platform`, `cross-platform`)
//! and `hints`. Each is written into the options and checked again at
//! verify, since the options are only a request to the browser. A
//! conditional registration (the automatic passkey upgrade) asks for
//! neither presence nor verification and is verified by
//! `conditional_registration`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, CredentialID, DiscoverableAuthentication,
    Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_core::proto::COSEAlgorithm;
use webauthn_rs_proto::{
    AllowCredentials, AuthenticatorAttachment, AuthenticatorTransport, PublicKeyCredentialHints,
    ResidentKeyRequirement, UserVerificationPolicy,
};

use std::sync::Arc;

use crate::attestation::{self, Attestation};
use crate::conditional_registration::{self, StepFailed};
use crate::configuration::{
    Attachment, AttestationPreference, Hint, ResidentKey, UserVerification, WebauthnSettings,
};
use crate::domain::UserHandle;
use crate::metadata::Blob;
use crate::metrics::Metrics;
use crate::prf::{self, ClientPrf};
use crate::related_origins::AcceptedOrigins;
use crate::stored_credential::{passkey_json, CredentialParts};

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
    #[error("the credential is not discoverable, and the policy requires it")]
    ResidentKeyMissing,
    #[error("the authenticator is not of the attachment the policy allows")]
    AttachmentMismatch,
}

impl From<StepFailed> for CeremonyFailure {
    fn from(step: StepFailed) -> Self {
        match step {
            StepFailed::Origin | StepFailed::CrossOrigin => Self::OriginMismatch,
            StepFailed::Challenge => Self::ChallengeMismatch,
            StepFailed::RpIdHash => Self::RpIdMismatch,
            StepFailed::UserPresence => Self::UserPresenceMissing,
            StepFailed::UserVerification => Self::UserVerificationMissing,
            StepFailed::AttestationStatement => Self::AttestationInvalid,
            StepFailed::ClientData
            | StepFailed::Type
            | StepFailed::AttestationObject
            | StepFailed::BackupState
            | StepFailed::Algorithm
            | StepFailed::CredentialIdLength
            | StepFailed::CredentialIdMismatch => Self::CredentialInvalid,
        }
    }
}

/// How the browser runs a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mediation {
    /// A dialog the person answers.
    #[default]
    Modal,
    /// The password manager creates the passkey on its own, right after a
    /// password sign-in, without a dialog.
    Conditional,
}

/// A new credential with what the browser said about it beside the
/// attestation: `authenticatorAttachment` and the `prf` extension's
/// results (which webauthn-rs's type drops).
#[derive(Debug)]
pub struct NewCredential {
    pub credential: RegisterPublicKeyCredential,
    pub attachment: Option<String>,
    pub prf: ClientPrf,
}

impl<'de> serde::Deserialize<'de> for NewCredential {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let prf = ClientPrf::read(&value);
        let attachment = match value.get("authenticatorAttachment") {
            None | Some(Value::Null) => None,
            Some(Value::String(attachment)) => Some(attachment.clone()),
            Some(_) => {
                return Err(serde::de::Error::custom(
                    "authenticatorAttachment must be a string",
                ))
            }
        };
        let credential = serde_json::from_value(value).map_err(serde::de::Error::custom)?;
        Ok(Self {
            credential,
            attachment,
            prf,
        })
    }
}

/// A login's assertion, with what its client extension results say of PRF
/// (which webauthn-rs's type drops).
#[derive(Debug)]
pub struct Assertion {
    pub credential: PublicKeyCredential,
    pub prf: ClientPrf,
}

impl<'de> serde::Deserialize<'de> for Assertion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let prf = ClientPrf::read(&value);
        let credential = serde_json::from_value(value).map_err(serde::de::Error::custom)?;
        Ok(Self { credential, prf })
    }
}

impl NewCredential {
    /// The transports the browser reported, by their WebAuthn names.
    pub fn transports(&self) -> Vec<String> {
        self.credential
            .response
            .transports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(transport_name)
            .collect()
    }
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
    /// What the attestation proved (always `Unattested` without
    /// `webauthn.attestation` or metadata).
    pub attestation: Attestation,
}

pub struct Policy {
    webauthn: Webauthn,
    metrics: Arc<Metrics>,
    rp_id: String,
    user_verification: UserVerification,
    resident_key: ResidentKey,
    attachment: Attachment,
    hints: Vec<Hint>,
    prf: bool,
    attestation: AttestationPreference,
}

impl Policy {
    pub fn new(
        settings: &WebauthnSettings,
        origins: &AcceptedOrigins,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WebauthnError> {
        let mut all = origins.all();
        let first = all.next().ok_or(WebauthnError::Configuration)?;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, first)?
            .rp_name(&settings.rp_name)
            .timeout(settings.ceremony_ttl);
        for origin in all {
            builder = builder.append_allowed_origin(origin);
        }
        Ok(Self {
            webauthn: builder.build()?,
            metrics,
            rp_id: settings.rp_id.clone(),
            user_verification: settings.user_verification,
            resident_key: settings.resident_key,
            attachment: settings.attachment,
            hints: settings.hints.clone(),
            prf: settings.prf,
            attestation: settings.attestation,
        })
    }

    /// The user verification a ceremony asks for: a conditional
    /// registration cannot ask for any (the client asks the authenticator
    /// for neither presence nor verification).
    fn user_verification_for(&self, mediation: Mediation) -> UserVerificationPolicy {
        match (mediation, self.user_verification) {
            (Mediation::Modal, UserVerification::Required) => UserVerificationPolicy::Required,
            _ => UserVerificationPolicy::Preferred,
        }
    }

    /// Whether the `prf` extension is asked for and PRF salts accepted.
    pub fn prf_enabled(&self) -> bool {
        self.prf
    }

    pub fn start_registration(
        &self,
        user_handle: UserHandle,
        user_name: &str,
        display_name: &str,
        exclude: Vec<Vec<u8>>,
        mediation: Mediation,
    ) -> Result<Started<PasskeyRegistration>, WebauthnError> {
        let exclude: Vec<CredentialID> = exclude;
        let (mut options, state): (CreationChallengeResponse, PasskeyRegistration) =
            self.webauthn.start_passkey_registration(
                user_handle.as_uuid(),
                user_name,
                display_name,
                Some(exclude),
            )?;
        let user_verification = self.user_verification_for(mediation);
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            // webauthn-rs asks for "discouraged"; usernameless login needs
            // the credential to be discoverable on every kind of
            // authenticator. A password manager only makes discoverable ones.
            let required =
                self.resident_key == ResidentKey::Required || mediation == Mediation::Conditional;
            selection.require_resident_key = required;
            selection.resident_key = Some(if required {
                ResidentKeyRequirement::Required
            } else {
                ResidentKeyRequirement::Preferred
            });
            selection.user_verification = user_verification;
            // A conditional registration goes to the password manager the
            // password came from, whatever the policy prefers for dialogs.
            if mediation == Mediation::Modal {
                selection.authenticator_attachment = match self.attachment {
                    Attachment::Any => None,
                    Attachment::Platform => Some(AuthenticatorAttachment::Platform),
                    Attachment::CrossPlatform => Some(AuthenticatorAttachment::CrossPlatform),
                };
            }
        }
        if mediation == Mediation::Modal && !self.hints.is_empty() {
            options.public_key.hints = Some(self.hints.iter().map(proto_hint).collect());
        }
        let mut public_key = to_value(&options.public_key);
        if self.prf {
            prf::ask_at_registration(&mut public_key);
        }
        // A conditional registration goes to a password manager, which
        // gives no attestation: asking would only cost a prompt.
        if mediation == Mediation::Modal && self.attestation != AttestationPreference::None {
            public_key["attestation"] = Value::String(self.attestation.as_str().into());
        }
        Ok(Started {
            public_key,
            challenge: options.public_key.challenge.to_vec(),
            state: with_state_policy(without_exclusions(state), "/rs/policy", user_verification),
        })
    }

    pub fn finish_registration(
        &self,
        new: &NewCredential,
        state: &PasskeyRegistration,
        challenge: &[u8],
        mediation: Mediation,
        metadata: Option<&Blob>,
    ) -> Result<VerifiedRegistration, CeremonyFailure> {
        let _timer = self.metrics.webauthn_timer("finish_registration");
        let credential = &new.credential;
        self.check_selection(new, mediation)?;
        let transports = new.transports();
        if mediation == Mediation::Conditional {
            return self.finish_conditional(credential, challenge, transports);
        }
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
        let attestation = match metadata {
            Some(blob) if self.attestation != AttestationPreference::None => attestation::verify(
                &self.webauthn,
                credential,
                state,
                &passkey,
                auth_data.aaguid,
                blob,
            ),
            _ => Attestation::Unattested,
        };
        if let Attestation::Unverifiable(reason) = &attestation {
            tracing::info!(%reason, aaguid = %auth_data.aaguid, "attestation not verified");
        }
        Ok(VerifiedRegistration {
            attestation,
            credential: to_value(&passkey),
            credential_id: passkey.cred_id().to_vec(),
            aaguid: auth_data.aaguid,
            transports,
            backup_eligible: auth_data.backup_eligible,
            backup_state: auth_data.backup_state,
            sign_count: auth_data.sign_count,
        })
    }

    /// WebAuthn Level 3 §7.1 without the User Present step; stored in the
    /// same form as every other passkey, with user verification required at
    /// every login (the passkey was made without it).
    fn finish_conditional(
        &self,
        credential: &RegisterPublicKeyCredential,
        challenge: &[u8],
        transports: Vec<String>,
    ) -> Result<VerifiedRegistration, CeremonyFailure> {
        let attested = conditional_registration::verify(
            credential,
            &conditional_registration::Expected {
                challenge,
                // Every accepted origin: own, related and apps.
                origins: self.webauthn.get_allowed_origins(),
                rp_id: &self.rp_id,
                algorithms: &COSEAlgorithm::secure_algs(),
                user_verification_required: false,
                conditional: true,
            },
        )
        .map_err(|step| {
            tracing::info!(%step, "conditional registration refused");
            CeremonyFailure::from(step)
        })?;
        let stored = passkey_json(&CredentialParts {
            credential_id: attested.credential_id.clone(),
            cose_key: attested.cose_key,
            sign_count: attested.sign_count,
            backup_eligible: attested.backup_eligible,
            backup_state: attested.backup_state,
        })
        .map_err(|_| CeremonyFailure::CredentialInvalid)?;
        Ok(VerifiedRegistration {
            credential: stored,
            credential_id: attested.credential_id,
            aaguid: attested.aaguid,
            transports,
            backup_eligible: attested.backup_eligible,
            backup_state: attested.backup_state,
            sign_count: attested.sign_count,
            attestation: Attestation::Unattested,
        })
    }

    /// What the options asked of the authenticator and webauthn-rs does not
    /// check: a discoverable credential (the browser's `credProps`) and the
    /// attachment (the browser's `authenticatorAttachment`, else the
    /// transports). Unreported is accepted: older browsers report neither.
    ///
    /// A conditional registration asked for no attachment (it goes to the
    /// password manager the password came from, and that has already saved
    /// the passkey when its answer arrives), so its attachment is not held
    /// against it.
    fn check_selection(
        &self,
        new: &NewCredential,
        mediation: Mediation,
    ) -> Result<(), CeremonyFailure> {
        let credential = &new.credential;
        let discoverable = credential
            .extensions
            .cred_props
            .as_ref()
            .and_then(|props| props.rk);
        if self.resident_key == ResidentKey::Required && discoverable == Some(false) {
            return Err(CeremonyFailure::ResidentKeyMissing);
        }
        let transports = new.transports();
        let platform = match new.attachment.as_deref() {
            Some("platform") => Some(true),
            Some("cross-platform") => Some(false),
            _ if transports.is_empty() => None,
            _ => Some(transports.iter().any(|t| t == "internal")),
        };
        match (mediation, self.attachment, platform) {
            (Mediation::Modal, Attachment::Platform, Some(false))
            | (Mediation::Modal, Attachment::CrossPlatform, Some(true)) => {
                Err(CeremonyFailure::AttachmentMismatch)
            }
            _ => Ok(()),
        }
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
        let user_verification = self.user_verification_for(Mediation::Modal);
        options.public_key.user_verification = user_verification;
        if !self.hints.is_empty() {
            options.public_key.hints = Some(self.hints.iter().map(proto_hint).collect());
        }
        Ok(Started {
            public_key: to_value(&options.public_key),
            challenge: options.public_key.challenge.to_vec(),
            // A passkey registered with verification (or without it, by a
            // conditional registration) still needs it: webauthn-rs keeps
            // each credential's own registration policy.
            state: with_state_policy(state, "/ast/policy", user_verification),
        })
    }

    #[tracing::instrument(name = "webauthn.finish_login", skip_all)]
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

fn proto_hint(hint: &Hint) -> PublicKeyCredentialHints {
    match hint {
        Hint::SecurityKey => PublicKeyCredentialHints::SecurityKey,
        Hint::ClientDevice => PublicKeyCredentialHints::ClientDevice,
        Hint::Hybrid => PublicKeyCredentialHints::Hybrid,
    }
}

/// The ceremony state with the user verification policy its finish
/// enforces. webauthn-rs's passkey ceremonies always require it; the state
/// is plain data (it travels sealed in the ceremony id), so the policy is
/// set there. A state that does not have the field is kept as it is, which
/// keeps "required".
fn with_state_policy<S>(state: S, pointer: &str, policy: UserVerificationPolicy) -> S
where
    S: Serialize + serde::de::DeserializeOwned,
{
    // webauthn-rs's passkey ceremonies already require it: nothing to do on
    // the default path (every login).
    if policy == UserVerificationPolicy::Required {
        return state;
    }
    let Ok(mut value) = serde_json::to_value(&state) else {
        return state;
    };
    let (Some(slot), Ok(policy)) = (value.pointer_mut(pointer), serde_json::to_value(policy))
    else {
        return state;
    };
    *slot = policy;
    serde_json::from_value(value).unwrap_or(state)
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

    fn policy(change: impl FnOnce(&mut WebauthnSettings)) -> Policy {
        let mut settings = WebauthnSettings::for_tests();
        change(&mut settings);
        let origins = AcceptedOrigins::parse(&settings).expect("origins");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        Policy::new(&settings, &origins, metrics).expect("policy")
    }

    fn registration(policy: &Policy, mediation: Mediation) -> Started<PasskeyRegistration> {
        policy
            .start_registration(
                UserHandle::generate(),
                "a@example.com",
                "A",
                vec![vec![1, 2]],
                mediation,
            )
            .expect("starts")
    }

    fn state_policy<S: Serialize>(state: &S, pointer: &str) -> Value {
        serde_json::to_value(state).expect("state")[pointer].clone()
    }

    #[test]
    fn registration_options_require_resident_keys_and_verification() {
        let started = registration(&policy(|_| {}), Mediation::Modal);
        let selection = &started.public_key["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
        assert!(selection.get("authenticatorAttachment").is_none());
        assert!(started.public_key.get("hints").is_none());
        assert_eq!(started.public_key["excludeCredentials"][0]["id"], "AQI");
        assert_eq!(started.public_key["rp"]["id"], "localhost");
        // The browser gets the exclusions; the state the ceremony id carries
        // does not, so it stays small however many passkeys there are.
        let state = serde_json::to_value(&started.state).expect("state");
        assert_eq!(state["rs"]["exclude_credentials"], serde_json::json!([]));
        assert_eq!(state["rs"]["policy"], "required");
        assert!(state["rs"]["challenge"].is_string(), "{state}");
        // The conditional path checks the algorithms webauthn-rs offers.
        let offered: Vec<i64> = started.public_key["pubKeyCredParams"]
            .as_array()
            .expect("params")
            .iter()
            .filter_map(|p| p["alg"].as_i64())
            .collect();
        let secure: Vec<i64> = COSEAlgorithm::secure_algs()
            .into_iter()
            .map(|a| a as i64)
            .collect();
        assert_eq!(offered, secure);
    }

    #[test]
    fn conditional_registration_asks_for_no_verification_and_no_attachment() {
        let policy = policy(|s| {
            s.attachment = Attachment::CrossPlatform;
            s.hints = vec![Hint::SecurityKey];
        });
        let started = registration(&policy, Mediation::Conditional);
        let selection = &started.public_key["authenticatorSelection"];
        assert_eq!(selection["userVerification"], "preferred");
        assert_eq!(selection["residentKey"], "required");
        assert!(selection.get("authenticatorAttachment").is_none());
        assert!(started.public_key.get("hints").is_none());
        assert_eq!(state_policy(&started.state, "rs")["policy"], "preferred");
    }

    #[test]
    fn user_verification_preferred_reaches_options_and_states() {
        let policy = policy(|s| s.user_verification = UserVerification::Preferred);
        let started = registration(&policy, Mediation::Modal);
        assert_eq!(
            started.public_key["authenticatorSelection"]["userVerification"],
            "preferred"
        );
        assert_eq!(state_policy(&started.state, "rs")["policy"], "preferred");
        let login = policy.start_login(Vec::new()).expect("login");
        assert_eq!(login.public_key["userVerification"], "preferred");
        assert_eq!(state_policy(&login.state, "ast")["policy"], "preferred");
        // The default keeps both required.
        let login = super::tests::policy(|_| {})
            .start_login(Vec::new())
            .expect("login");
        assert_eq!(login.public_key["userVerification"], "required");
        assert_eq!(state_policy(&login.state, "ast")["policy"], "required");
    }

    #[test]
    fn resident_key_preferred_reaches_the_options() {
        let started = registration(
            &policy(|s| s.resident_key = ResidentKey::Preferred),
            Mediation::Modal,
        );
        let selection = &started.public_key["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "preferred");
        assert_eq!(selection["requireResidentKey"], false);
    }

    #[test]
    fn attachment_and_hints_reach_the_options() {
        for (attachment, expected) in [
            (Attachment::Platform, "platform"),
            (Attachment::CrossPlatform, "cross-platform"),
        ] {
            let policy = policy(|s| {
                s.attachment = attachment;
                s.hints = vec![Hint::ClientDevice, Hint::Hybrid];
            });
            let started = registration(&policy, Mediation::Modal);
            assert_eq!(
                started.public_key["authenticatorSelection"]["authenticatorAttachment"],
                expected
            );
            assert_eq!(
                started.public_key["hints"],
                serde_json::json!(["client-device", "hybrid"])
            );
            let login = policy.start_login(Vec::new()).expect("login");
            assert_eq!(
                login.public_key["hints"],
                serde_json::json!(["client-device", "hybrid"])
            );
        }
    }
}
