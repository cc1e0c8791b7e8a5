//! Attestation, verified: which authenticator model made a new passkey,
//! according to a root the MDS3 BLOB lists for that model. webauthn-rs does
//! every check (the statement's signature at the ceremony, then the chain
//! and the AAGUID's authority with an attestation CA list); this module
//! only chooses the list and reads the answer.

use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AttestedPasskeyRegistration, Credential, ParsedAttestationData, Passkey, PasskeyRegistration,
    RegisterPublicKeyCredential, Webauthn,
};
use webauthn_rs_core::proto::AttestationMetadata;

use crate::metadata::Blob;

/// What the attestation of a new passkey proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attestation {
    /// `none`, or self attestation: the AAGUID is only a claim.
    Unattested,
    /// A certificate chain was given but leads to no root the BLOB lists for
    /// the claimed model (or the model is not in the BLOB).
    Unverifiable(String),
    /// The chain leads to a root the BLOB lists for this AAGUID.
    Verified {
        /// The statement format (`packed`, `tpm`, ...).
        format: String,
        /// The AAGUID as attested.
        aaguid: Uuid,
    },
}

/// Verifies the chain of a registration webauthn-rs already verified
/// (`passkey`) against the roots `blob` lists for the claimed model.
pub fn verify(
    webauthn: &Webauthn,
    credential: &RegisterPublicKeyCredential,
    state: &PasskeyRegistration,
    passkey: &Passkey,
    claimed: Uuid,
    blob: &Blob,
) -> Attestation {
    let parsed: Credential = passkey.clone().into();
    match parsed.attestation.data {
        ParsedAttestationData::None | ParsedAttestationData::Self_ => {
            return Attestation::Unattested
        }
        ParsedAttestationData::Basic(_)
        | ParsedAttestationData::AttCa(_)
        | ParsedAttestationData::AnonCa(_) => {}
        ParsedAttestationData::ECDAA | ParsedAttestationData::Uncertain => {
            return Attestation::Unverifiable("an attestation type webauthn-rs cannot check".into())
        }
    }
    let format = serde_json::to_value(&parsed.attestation_format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let Some(model) = blob.models.get(&claimed).filter(|m| !m.roots.is_empty()) else {
        return Attestation::Unverifiable(format!(
            "the metadata lists no attestation root for {claimed}"
        ));
    };
    // The ceremony state with the model's roots: webauthn-rs's attested
    // registration, which checks the chain and that the root vouches for
    // this AAGUID. Both halves are plain data.
    let attested: Option<AttestedPasskeyRegistration> =
        serde_json::to_value(state).ok().and_then(|state| {
            serde_json::from_value(json!({ "rs": state["rs"], "ca_list": model.roots })).ok()
        });
    let Some(attested) = attested else {
        return Attestation::Unverifiable("the ceremony state could not carry the roots".into());
    };
    match webauthn.finish_attested_passkey_registration(credential, &attested) {
        Ok(verified) => {
            let aaguid = match &verified.attestation().metadata {
                AttestationMetadata::Packed { aaguid }
                | AttestationMetadata::Tpm { aaguid, .. } => *aaguid,
                // webauthn-rs only passes other formats for a root that
                // vouches for every model, which the BLOB's never do.
                _ => claimed,
            };
            Attestation::Verified { format, aaguid }
        }
        Err(error) => Attestation::Unverifiable(format!("{error:?}")),
    }
}
