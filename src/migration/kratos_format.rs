//! Kratos's own WebAuthn credential configuration (`identity.
//! CredentialsWebAuthnConfig`, the same in v1.3.1, v25.4.0 and v26.2.0),
//! read into candidates for the passkeys table and written from its rows.
//!
//! Binary fields are Go `[]byte`: standard, padded base64. A `passkey`
//! credential's identifiers are its user handles as strings (Kratos makes
//! 64 alphanumeric characters for each passkey added); a `webauthn`
//! credential has one `user_handle` in its configuration.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::stored_credential::{passkey_json, CredentialFormError, CredentialParts};

/// Why a credential Kratos holds is not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// A `webauthn` credential registered as a second factor.
    NotPasswordless,
    /// Its public key is not a COSE key webauthn-rs can verify with.
    UnreadableKey,
    /// Its credential id is empty or longer than WebAuthn allows.
    InvalidCredentialId,
    /// Kratos recorded no user handle it answers to, or one longer than
    /// WebAuthn's 64 bytes.
    NoUsableUserHandle,
    /// Kratos's configuration for the credential is not the format above.
    UnreadableConfig,
    /// Another identity here holds the same credential id.
    OwnedByAnotherIdentity,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotPasswordless => "not passwordless",
            SkipReason::UnreadableKey => "unreadable key",
            SkipReason::InvalidCredentialId => "invalid credential id",
            SkipReason::NoUsableUserHandle => "no usable user handle",
            SkipReason::UnreadableConfig => "unreadable configuration",
            SkipReason::OwnedByAnotherIdentity => "credential id owned by another identity",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebauthnConfig {
    #[serde(default)]
    pub credentials: Vec<WebauthnCredential>,
    #[serde(default, with = "std_b64_opt", skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebauthnCredential {
    #[serde(with = "std_b64")]
    pub id: Vec<u8>,
    #[serde(with = "std_b64")]
    pub public_key: Vec<u8>,
    #[serde(default)]
    pub attestation_type: String,
    #[serde(default)]
    pub authenticator: Authenticator,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub added_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_passwordless: bool,
    /// Absent on credentials older than Kratos v1.1 (and left out on
    /// export: Kratos fills it from the first login's authenticator data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Flags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Authenticator {
    #[serde(default, with = "std_b64_opt")]
    pub aaguid: Option<Vec<u8>>,
    #[serde(default)]
    pub sign_count: u32,
    #[serde(default)]
    pub clone_warning: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Flags {
    #[serde(default)]
    pub user_present: bool,
    #[serde(default)]
    pub user_verified: bool,
    #[serde(default)]
    pub backup_eligible: bool,
    #[serde(default)]
    pub backup_state: bool,
}

/// A credential of Kratos's, in the passkeys table's terms.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub credential_id: Vec<u8>,
    /// The webauthn-rs passkey (`passkeys.credential`).
    pub credential: Value,
    pub user_handle: Vec<u8>,
    pub unconfirmed_user_handles: Vec<Vec<u8>>,
    /// Kratos's name for it (its authenticator's, from the AAGUID), if any.
    pub display_name: Option<String>,
    pub aaguid: Uuid,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: u32,
    pub created_at: Option<DateTime<Utc>>,
}

/// The credentials of one identity's `passkey` or `webauthn` credential:
/// candidates, and the reasons the others are left.
pub fn candidates(
    kind: &str,
    identifiers: &[String],
    config: &Value,
) -> (Vec<Candidate>, Vec<SkipReason>) {
    let config: WebauthnConfig = match serde_json::from_value(config.clone()) {
        Ok(config) => config,
        Err(_) => return (Vec::new(), vec![SkipReason::UnreadableConfig]),
    };
    let handles = user_handles(kind, identifiers, &config);
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for credential in &config.credentials {
        match candidate(credential, &handles) {
            Ok(candidate) => found.push(candidate),
            Err(reason) => skipped.push(reason),
        }
    }
    (found, skipped)
}

/// Which user handles the identity's credentials answer to: for `passkey`,
/// one identifier per passkey ever added (removing a passkey leaves its
/// identifier); for `webauthn`, the configuration's one handle.
enum Handles {
    /// The one handle every credential answers to.
    Known(Vec<u8>),
    /// Several, without a record of which is whose: the configuration's
    /// (the latest passkey's) first, then every other.
    Candidates(Vec<u8>, Vec<Vec<u8>>),
    None,
}

fn user_handles(kind: &str, identifiers: &[String], config: &WebauthnConfig) -> Handles {
    let usable = |handle: &[u8]| !handle.is_empty() && handle.len() <= 64;
    if kind == "webauthn" {
        return match &config.user_handle {
            Some(handle) if usable(handle) => Handles::Known(handle.clone()),
            _ => Handles::None,
        };
    }
    let mut all: Vec<Vec<u8>> = identifiers
        .iter()
        .map(|i| i.as_bytes().to_vec())
        .filter(|h| usable(h))
        .collect();
    all.dedup();
    let latest = config.user_handle.clone().filter(|h| usable(h));
    match (latest, all.len()) {
        (None, 0) => Handles::None,
        (Some(latest), 0) => Handles::Known(latest),
        (None, 1) => Handles::Known(all.remove(0)),
        (Some(latest), 1) if all[0] == latest => Handles::Known(latest),
        (Some(latest), _) => {
            all.retain(|h| *h != latest);
            Handles::Candidates(latest, all)
        }
        (None, _) => {
            let first = all.remove(0);
            Handles::Candidates(first, all)
        }
    }
}

fn candidate(credential: &WebauthnCredential, handles: &Handles) -> Result<Candidate, SkipReason> {
    if !credential.is_passwordless {
        return Err(SkipReason::NotPasswordless);
    }
    let (user_handle, unconfirmed_user_handles) = match handles {
        Handles::Known(handle) => (handle.clone(), Vec::new()),
        Handles::Candidates(first, others) => {
            let mut all = vec![first.clone()];
            all.extend(others.iter().cloned());
            (first.clone(), all)
        }
        Handles::None => return Err(SkipReason::NoUsableUserHandle),
    };
    let flags = credential.flags.clone().unwrap_or_default();
    let parts = CredentialParts {
        credential_id: credential.id.clone(),
        cose_key: credential.public_key.clone(),
        sign_count: credential.authenticator.sign_count,
        backup_eligible: flags.backup_eligible,
        backup_state: flags.backup_state,
    };
    let stored = passkey_json(&parts).map_err(|e| match e {
        CredentialFormError::CredentialIdLength => SkipReason::InvalidCredentialId,
        CredentialFormError::UnreadableKey | CredentialFormError::UnreadablePasskey => {
            SkipReason::UnreadableKey
        }
    })?;
    let aaguid = credential
        .authenticator
        .aaguid
        .as_deref()
        .and_then(|b| Uuid::from_slice(b).ok())
        .unwrap_or(Uuid::nil());
    Ok(Candidate {
        credential_id: credential.id.clone(),
        credential: stored,
        user_handle,
        unconfirmed_user_handles,
        display_name: Some(credential.display_name.trim().to_string()).filter(|n| !n.is_empty()),
        aaguid,
        transports: credential.transport.clone().unwrap_or_default(),
        backup_eligible: flags.backup_eligible,
        backup_state: flags.backup_state,
        sign_count: credential.authenticator.sign_count,
        created_at: credential.added_at,
    })
}

/// A passkey of ours as Kratos stores a WebAuthn credential.
pub fn kratos_credential(
    parts: &CredentialParts,
    aaguid: Uuid,
    display_name: &str,
    transports: &[String],
    added_at: DateTime<Utc>,
) -> WebauthnCredential {
    WebauthnCredential {
        id: parts.credential_id.clone(),
        public_key: parts.cose_key.clone(),
        attestation_type: "none".to_string(),
        authenticator: Authenticator {
            aaguid: Some(aaguid.as_bytes().to_vec()),
            sign_count: parts.sign_count,
            clone_warning: false,
        },
        display_name: display_name.to_string(),
        added_at: Some(added_at),
        is_passwordless: true,
        flags: None,
        transport: (!transports.is_empty()).then(|| transports.to_vec()),
    }
}

/// The credential ids of an identity's `passkey` or `webauthn` credential,
/// whatever else of it is readable.
pub fn credential_ids(config: &Value) -> Vec<Vec<u8>> {
    config
        .get("credentials")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| c.get("id").and_then(Value::as_str))
                .filter_map(|id| STANDARD.decode(id).ok())
                .collect()
        })
        .unwrap_or_default()
}

mod std_b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

mod std_b64_opt {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => STANDARD
                .decode(text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
