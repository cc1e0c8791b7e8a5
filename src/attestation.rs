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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value;
    use url::Url;
    use webauthn_rs::prelude::{AttestationCaListBuilder, WebauthnBuilder};

    use super::*;
    use crate::metadata::Model;
    use crate::webauthn_policy::AuthenticatorData;

    /// A real YubiKey's registration (webauthn-rs-core's test vector) and
    /// the root Yubico publishes for it.
    const VECTOR: &str = include_str!("../testdata/attestation/yubikey-packed.json");
    const YUBICO_ROOT: &str =
        include_str!("../testdata/attestation/yubico-u2f-root-ca-457200631.pem");

    fn blob(aaguid: Uuid, root_for: Uuid) -> Blob {
        let mut roots = AttestationCaListBuilder::new();
        roots
            .insert_device_pem(
                YUBICO_ROOT.as_bytes(),
                root_for,
                "YubiKey".into(),
                Default::default(),
            )
            .expect("root");
        let model = Model {
            aaguid,
            description: "YubiKey".into(),
            icon: None,
            certification: None,
            statuses: Vec::new(),
            status_reports: Value::Null,
            roots: roots.build(),
        };
        Blob {
            no: 1,
            next_update: chrono::NaiveDate::MAX,
            sha256: Vec::new(),
            text: String::new(),
            models: HashMap::from([(aaguid, model)]),
        }
    }

    /// The vector's registration, verified by webauthn-rs as the service's
    /// passkey registration verifies it, with its ceremony state.
    fn registered() -> (
        Webauthn,
        RegisterPublicKeyCredential,
        PasskeyRegistration,
        Passkey,
        Uuid,
    ) {
        let vector: Value = serde_json::from_str(VECTOR).expect("vector");
        let origin = Url::parse(vector["origin"].as_str().expect("origin")).expect("url");
        let webauthn = WebauthnBuilder::new(vector["rp_id"].as_str().expect("rp id"), &origin)
            .expect("builder")
            .build()
            .expect("webauthn");
        let (_, state) = webauthn
            .start_passkey_registration(Uuid::new_v4(), "a", "A", None)
            .expect("start");
        // The ceremony the vector answered: its challenge.
        let mut state = serde_json::to_value(&state).expect("state");
        state["rs"]["challenge"] = vector["challenge"].clone();
        let state: PasskeyRegistration = serde_json::from_value(state).expect("state");
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(vector["credential"].clone()).expect("credential");
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .expect("the vector verifies");
        let aaguid =
            AuthenticatorData::from_attestation_object(&credential.response.attestation_object)
                .expect("authenticator data")
                .aaguid;
        (webauthn, credential, state, passkey, aaguid)
    }

    #[test]
    fn a_real_yubikey_attestation_verifies_against_the_root_the_metadata_lists() {
        let (webauthn, credential, state, passkey, aaguid) = registered();
        assert_eq!(
            verify(
                &webauthn,
                &credential,
                &state,
                &passkey,
                aaguid,
                &blob(aaguid, aaguid)
            ),
            Attestation::Verified {
                format: "packed".into(),
                aaguid,
            }
        );
    }

    #[test]
    fn a_real_yubikey_attestation_is_unverifiable_when_the_root_vouches_for_another_model() {
        let (webauthn, credential, state, passkey, aaguid) = registered();
        let other = Uuid::from_u128(42);
        // The model is listed, but its root is listed only for another AAGUID.
        let mut listed = blob(other, other);
        let model = listed.models.remove(&other).map(|m| Model { aaguid, ..m });
        listed.models.extend(model.map(|m| (aaguid, m)));
        assert!(matches!(
            verify(&webauthn, &credential, &state, &passkey, aaguid, &listed),
            Attestation::Unverifiable(_)
        ));
        // And the model missing from the metadata.
        assert!(matches!(
            verify(
                &webauthn,
                &credential,
                &state,
                &passkey,
                aaguid,
                &blob(other, other)
            ),
            Attestation::Unverifiable(_)
        ));
    }
}
