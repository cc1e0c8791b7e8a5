//! A FIDO Metadata Service (MDS3) BLOB: a compact JWS whose `x5c` chain
//! must lead to the configured trust root, and whose payload fido-mds
//! parses. fido-mds verifies the signature itself but only against the
//! FIDO roots it hard-codes, so the JWS is verified here (compact_jwt, from
//! the same project) and fido-mds is given the payload alone.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::SystemTime;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::NaiveDate;
use compact_jwt::crypto::{Certificate, DecodePem, JwsX509VerifierBuilder};
use compact_jwt::{JwsCompact, JwsVerifier};
use fido_mds::mds::{AuthenticatorStatus, FidoMds as RawBlob};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use webauthn_rs::prelude::{AttestationCaList, AttestationCaListBuilder};

/// The FIDO Alliance's MDS3 root (GlobalSign Root CA - R3), the default
/// trust root: the same certificate fido-mds trusts.
pub const FIDO_MDS_ROOT_PEM: &str = include_str!("fido-mds-root.pem");

/// Why a BLOB was not taken. The metric label is `as_str`.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the BLOB is not a compact JWS (truncated or not a BLOB): {0}")]
    Malformed(String),
    #[error("the BLOB carries no x5c certificate chain")]
    NoChain,
    #[error("the BLOB's x5c chain does not lead to the configured trust root")]
    UntrustedChain,
    #[error("the BLOB's signature does not verify")]
    BadSignature,
    #[error("the BLOB's payload is not MDS3 metadata: {0}")]
    Payload(String),
    #[error("the BLOB's nextUpdate ({0}) has passed")]
    Expired(NaiveDate),
    #[error("the BLOB's serial number {found} is older than the one in use ({current})")]
    Older { found: i32, current: i32 },
}

impl BlobError {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::NoChain | Self::UntrustedChain => "untrusted_chain",
            Self::BadSignature => "bad_signature",
            Self::Payload(_) => "bad_payload",
            Self::Expired(_) => "expired",
            Self::Older { .. } => "older",
        }
    }
}

/// FIDO certification levels, lowest first (`FIDO_CERTIFIED` is L1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
pub enum CertificationLevel {
    #[serde(rename = "FIDO_CERTIFIED_L1")]
    L1,
    #[serde(rename = "FIDO_CERTIFIED_L1plus")]
    L1Plus,
    #[serde(rename = "FIDO_CERTIFIED_L2")]
    L2,
    #[serde(rename = "FIDO_CERTIFIED_L2plus")]
    L2Plus,
    #[serde(rename = "FIDO_CERTIFIED_L3")]
    L3,
    #[serde(rename = "FIDO_CERTIFIED_L3plus")]
    L3Plus,
}

impl CertificationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "FIDO_CERTIFIED_L1",
            Self::L1Plus => "FIDO_CERTIFIED_L1plus",
            Self::L2 => "FIDO_CERTIFIED_L2",
            Self::L2Plus => "FIDO_CERTIFIED_L2plus",
            Self::L3 => "FIDO_CERTIFIED_L3",
            Self::L3Plus => "FIDO_CERTIFIED_L3plus",
        }
    }

    fn of(status: &AuthenticatorStatus) -> Option<Self> {
        use AuthenticatorStatus as S;
        Some(match status {
            S::FidoCertified | S::FidoCertifiedL1 => Self::L1,
            S::FidoCertifiedL1Plus => Self::L1Plus,
            S::FidoCertifiedL2 => Self::L2,
            S::FidoCertifiedL2Plus => Self::L2Plus,
            S::FidoCertifiedL3 => Self::L3,
            S::FidoCertifiedL3Plus => Self::L3Plus,
            _ => return None,
        })
    }
}

/// One authenticator model (a FIDO2 entry, by AAGUID).
#[derive(Debug, Clone)]
pub struct Model {
    pub aaguid: Uuid,
    pub description: String,
    /// A `data:` URL, as the metadata statement gives it.
    pub icon: Option<String>,
    /// The highest level any of its status reports certifies.
    pub certification: Option<CertificationLevel>,
    /// Every status its reports name (`REVOKED`, `FIDO_CERTIFIED_L2`, ...).
    pub statuses: Vec<String>,
    /// The status reports as the BLOB gives them (for events).
    pub status_reports: Value,
    /// The roots its attestations chain to, with only this model allowed
    /// under each: a root several models share vouches for each separately.
    pub roots: AttestationCaList,
}

/// A BLOB whose signature, chain and dates verified.
#[derive(Debug, Clone)]
pub struct Blob {
    pub no: i32,
    pub next_update: NaiveDate,
    pub sha256: Vec<u8>,
    /// The compact JWS as it came, for other replicas.
    pub text: String,
    pub models: HashMap<Uuid, Model>,
}

/// Parses the PEM certificates the BLOB must chain to.
pub fn trust_roots(pem: &str) -> Result<Vec<Certificate>, String> {
    let blocks: Vec<&str> = pem
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .collect();
    if blocks.is_empty() {
        return Err("no PEM certificate found".into());
    }
    blocks
        .into_iter()
        .map(|block| Certificate::from_pem(block.trim().as_bytes()).map_err(|e| format!("{e:?}")))
        .collect()
}

/// Verifies `text` against `roots` at `now`, and reads its FIDO2 models.
pub fn verify(text: &str, roots: &[Certificate], now: SystemTime) -> Result<Blob, BlobError> {
    let text = text.trim();
    let jws = JwsCompact::from_str(&jose_signature_as_der(text))
        .map_err(|e| BlobError::Malformed(format!("{e:?}")))?;
    let (leaf, chain) = jws
        .get_x5c_chain()
        .map_err(|e| BlobError::Malformed(format!("x5c: {e:?}")))?
        .ok_or(BlobError::NoChain)?;
    let verifier = roots
        .iter()
        .fold(JwsX509VerifierBuilder::new(&leaf, &chain), |b, root| {
            b.add_trust_root(root.clone())
        })
        .build(now)
        .map_err(|_| BlobError::UntrustedChain)?;
    let released = verifier.verify(&jws).map_err(|_| BlobError::BadSignature)?;
    let raw: RawBlob = released
        .from_json()
        .map_err(|e| BlobError::Payload(e.to_string()))?;
    let next_update = NaiveDate::parse_from_str(&raw.next_update, "%Y-%m-%d")
        .map_err(|e| BlobError::Payload(format!("nextUpdate {:?}: {e}", raw.next_update)))?;
    let today = chrono::DateTime::<chrono::Utc>::from(now).date_naive();
    if next_update < today {
        return Err(BlobError::Expired(next_update));
    }
    let no = i32::try_from(raw.no).map_err(|_| BlobError::Payload("no out of range".into()))?;
    Ok(Blob {
        no,
        next_update,
        sha256: Sha256::digest(text.as_bytes()).to_vec(),
        text: text.to_string(),
        models: models(raw),
    })
}

fn models(raw: RawBlob) -> HashMap<Uuid, Model> {
    raw.entries
        .into_iter()
        .filter_map(|entry| {
            // FIDO2 authenticators are named by AAGUID; UAF and U2F ones
            // (AAID, key identifiers) cannot hold a passkey here.
            let aaguid = entry.aaguid.or(entry.metadata_statement.aaguid)?;
            let statement = entry.metadata_statement;
            let statuses: Vec<String> = entry
                .status_reports
                .iter()
                .filter_map(|r| serde_json::to_value(&r.status).ok())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let certification = entry
                .status_reports
                .iter()
                .filter_map(|r| CertificationLevel::of(&r.status))
                .max();
            let mut builder = AttestationCaListBuilder::new();
            for root in &statement.attestation_root_certificates {
                // A root the statement cannot give as DER vouches for nothing.
                let Ok(der) = STANDARD.decode(root.trim()) else {
                    continue;
                };
                if builder
                    .insert_device_der(
                        &der,
                        aaguid,
                        statement.description.clone(),
                        Default::default(),
                    )
                    .is_err()
                {
                    tracing::warn!(%aaguid, "an attestation root in the BLOB does not parse");
                }
            }
            let icon = statement
                .icon
                .as_ref()
                .and_then(Value::as_str)
                .map(str::to_string);
            Some((
                aaguid,
                Model {
                    aaguid,
                    description: statement.description,
                    icon,
                    certification,
                    statuses,
                    status_reports: serde_json::to_value(&entry.status_reports)
                        .unwrap_or(Value::Null),
                    roots: builder.build(),
                },
            ))
        })
        .collect()
}

/// JOSE signs ES256 as r‖s (64 bytes); compact_jwt's x5c verifier reads an
/// ECDSA signature as DER. The FIDO BLOB is RS256, which both read alike;
/// an ES256 BLOB (a private deployment's) is made readable here.
fn jose_signature_as_der(text: &str) -> String {
    let mut parts = text.splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return text.to_string();
    };
    let es256 = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .is_some_and(|h| h["alg"] == "ES256");
    let raw = URL_SAFE_NO_PAD.decode(signature).ok();
    match raw {
        Some(raw) if es256 && raw.len() == 64 => {
            match crypto_glue::ecdsa_p256::EcdsaP256Signature::from_slice(&raw) {
                Ok(sig) => format!(
                    "{header}.{payload}.{}",
                    URL_SAFE_NO_PAD.encode(sig.to_der().as_bytes())
                ),
                Err(_) => text.to_string(),
            }
        }
        _ => text.to_string(),
    }
}
