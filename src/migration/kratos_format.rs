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
    /// (the latest passkey's) first.
    Candidates(Vec<Vec<u8>>),
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
    let mut all: Vec<Vec<u8>> = config
        .user_handle
        .iter()
        .cloned()
        .chain(identifiers.iter().map(|i| i.as_bytes().to_vec()))
        .filter(|h| usable(h))
        .collect();
    // The latest stays first; the identifiers repeat it.
    let mut seen = std::collections::HashSet::new();
    all.retain(|h| seen.insert(h.clone()));
    match all.len() {
        0 => Handles::None,
        1 => Handles::Known(all.remove(0)),
        _ => Handles::Candidates(all),
    }
}

fn candidate(credential: &WebauthnCredential, handles: &Handles) -> Result<Candidate, SkipReason> {
    if !credential.is_passwordless {
        return Err(SkipReason::NotPasswordless);
    }
    let (user_handle, unconfirmed_user_handles) = match handles {
        Handles::Known(handle) => (handle.clone(), Vec::new()),
        Handles::Candidates(all) => (all[0].clone(), all.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// P-256's generator point as a COSE ES256 key.
    const KEY: &str = "pQECAyYgASFYIGsX0fLhLEJH+Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWIlggT+NC4v4af5uO5+tKfA+eFivOM1drMV7Oy7ZAaDe/UfU=";

    fn credential(id: &str, passwordless: bool) -> Value {
        json!({
            "id": id, "public_key": KEY, "attestation_type": "none",
            "authenticator": {"aaguid": "6puNZk0BHSE85La0jLV11A==", "sign_count": 3, "clone_warning": false},
            "display_name": "Google Password Manager", "added_at": "2025-01-02T03:04:05Z",
            "is_passwordless": passwordless,
            "flags": {"user_present": true, "user_verified": true, "backup_eligible": true, "backup_state": true}
        })
    }

    fn handle(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn a_kratos_passkey_becomes_a_candidate_with_its_handle() {
        let h = handle('a');
        let config =
            json!({"credentials": [credential("AQID", true)], "user_handle": STANDARD.encode(&h)});
        let (found, skipped) = candidates("passkey", std::slice::from_ref(&h), &config);
        assert!(skipped.is_empty());
        let c = &found[0];
        assert_eq!(c.credential_id, vec![1, 2, 3]);
        assert_eq!(c.user_handle, h.as_bytes());
        assert!(c.unconfirmed_user_handles.is_empty());
        assert_eq!(
            (c.sign_count, c.backup_eligible, c.backup_state),
            (3, true, true)
        );
        assert_eq!(c.aaguid.to_string(), "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4");
        assert_eq!(c.display_name.as_deref(), Some("Google Password Manager"));
    }

    #[test]
    fn several_handles_stay_candidates_with_the_latest_first() {
        let (a, b) = (handle('a'), handle('b'));
        let config = json!({"credentials": [credential("AQID", true), credential("BAUG", true)], "user_handle": STANDARD.encode(&b)});
        let (found, _) = candidates("passkey", &[a.clone(), b.clone()], &config);
        for c in &found {
            assert_eq!(c.user_handle, b.as_bytes());
            assert_eq!(
                c.unconfirmed_user_handles,
                vec![b.as_bytes().to_vec(), a.as_bytes().to_vec()]
            );
        }
    }

    #[test]
    fn second_factors_and_unusable_credentials_are_skipped_with_reasons() {
        let legacy_handle = STANDARD.encode([7u8; 16]);
        let mut bad_key = credential("CQo=", true);
        bad_key["public_key"] = json!(STANDARD.encode([0xff, 0]));
        let config = json!({"credentials": [credential("AQID", false), bad_key, credential("BAUG", true)], "user_handle": legacy_handle});
        let (found, skipped) = candidates("webauthn", &["a@example.org".into()], &config);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].user_handle, vec![7u8; 16]);
        assert_eq!(
            skipped,
            vec![SkipReason::NotPasswordless, SkipReason::UnreadableKey]
        );

        let no_handle = json!({"credentials": [credential("AQID", true)]});
        assert_eq!(
            candidates("webauthn", &[], &no_handle).1,
            vec![SkipReason::NoUsableUserHandle]
        );
        assert_eq!(
            candidates("passkey", &[], &json!({"credentials": "not a list"})).1,
            vec![SkipReason::UnreadableConfig]
        );
    }

    #[test]
    fn exported_credentials_read_back_as_kratos_writes_them() {
        let parts = CredentialParts {
            credential_id: vec![1, 2, 3],
            cose_key: STANDARD.decode(KEY).expect("key"),
            sign_count: 9,
            backup_eligible: true,
            backup_state: true,
        };
        let added = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .expect("time")
            .with_timezone(&Utc);
        let written = kratos_credential(&parts, Uuid::nil(), "Phone", &[], added);
        let value = serde_json::to_value(&written).expect("json");
        assert_eq!(value["id"], "AQID");
        assert_eq!(value["public_key"], KEY);
        assert!(
            value.get("flags").is_none(),
            "Kratos fills the flags in itself"
        );
        let h = handle('z');
        let config = json!({"credentials": [value], "user_handle": STANDARD.encode(&h)});
        let (found, _) = candidates("passkey", &[h], &config);
        assert_eq!(found[0].sign_count, 9);
        assert_eq!(credential_ids(&config), vec![vec![1, 2, 3]]);
    }
}
