//! WebAuthn Level 3 §7.1 ("Registering a New Credential") for the
//! registrations a password manager makes on its own after a password
//! sign-in (`mediation: "conditional"`, the automatic passkey upgrade).
//!
//! webauthn-rs refuses an attestation whose User Present flag is 0, and for
//! a conditional registration the client asks the authenticator for neither
//! presence nor verification, so this path verifies the ceremony itself.
//! Every step of §7.1 applies; only step 15 (User Present) is skipped, as
//! the specification says for conditional mediation. Modal registrations
//! keep going through webauthn-rs. CBOR is parsed with serde_cbor_2 and the
//! COSE key and signature by webauthn-rs-core, so what is stored is the
//! same `Passkey` form as every other passkey.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_cbor_2::Value as Cbor;
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::RegisterPublicKeyCredential;
use webauthn_rs_core::proto::{COSEAlgorithm, COSEKey};

/// What the ceremony's options asked for.
pub struct Expected<'a> {
    pub challenge: &'a [u8],
    pub origins: &'a [Url],
    pub rp_id: &'a str,
    /// `pubKeyCredParams`, in the options' order.
    pub algorithms: &'a [COSEAlgorithm],
    /// The relying party's user verification policy is `required`.
    pub user_verification_required: bool,
    pub conditional: bool,
}

/// The §7.1 step a registration failed, named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepFailed {
    #[error("§7.1 steps 5-6: clientDataJSON is not JSON client data")]
    ClientData,
    #[error("§7.1 step 7: the type is not webauthn.create")]
    Type,
    #[error("§7.1 step 8: the challenge is not this ceremony's")]
    Challenge,
    #[error("§7.1 step 9: the origin is not expected")]
    Origin,
    #[error("§7.1 steps 10-11: made inside a cross-origin frame")]
    CrossOrigin,
    #[error("§7.1 step 13: the attestation object is not CBOR with fmt, authData, attStmt")]
    AttestationObject,
    #[error("§7.1 step 14: the rpIdHash is not the RP id's")]
    RpIdHash,
    #[error("§7.1 step 15: the User Present flag is not set")]
    UserPresence,
    #[error("§7.1 step 16: the User Verified flag is not set")]
    UserVerification,
    #[error("§7.1 step 17: Backup State without Backup Eligible")]
    BackupState,
    #[error("§7.1 step 20: the public key's algorithm was not offered")]
    Algorithm,
    #[error("§7.1 steps 22-23: the attestation statement does not verify")]
    AttestationStatement,
    #[error("§7.1 step 26: the credential id is empty or longer than 1023 bytes")]
    CredentialIdLength,
    #[error("the credential's id is not the attested credential id")]
    CredentialIdMismatch,
}

/// A registration that passed every step: what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    pub credential_id: Vec<u8>,
    /// The credential public key, as the authenticator encoded it (COSE).
    pub cose_key: Vec<u8>,
    pub aaguid: Uuid,
    pub sign_count: u32,
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    type_: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: bool,
    #[serde(rename = "topOrigin", default)]
    top_origin: Option<String>,
}

const CREDENTIAL_ID_MAX: usize = 1023;
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;
const ED: u8 = 0x80;

pub fn verify(
    credential: &RegisterPublicKeyCredential,
    expected: &Expected<'_>,
) -> Result<Attested, StepFailed> {
    let client_data_json = credential.response.client_data_json.as_ref();
    // Steps 5-6: decode and parse the client data.
    let client: ClientData =
        serde_json::from_slice(client_data_json).map_err(|_| StepFailed::ClientData)?;
    // Step 7.
    if client.type_ != "webauthn.create" {
        return Err(StepFailed::Type);
    }
    // Step 8.
    if client.challenge != URL_SAFE_NO_PAD.encode(expected.challenge) {
        return Err(StepFailed::Challenge);
    }
    // Step 9.
    if !expected
        .origins
        .iter()
        .any(|origin| same_origin(origin, &client.origin))
    {
        return Err(StepFailed::Origin);
    }
    // Steps 10-11: this relying party is never embedded cross-origin.
    if client.cross_origin || client.top_origin.is_some() {
        return Err(StepFailed::CrossOrigin);
    }
    // Step 12.
    let hash = Sha256::digest(client_data_json);
    // Step 13.
    let (fmt, auth_data, statement) =
        attestation_object(credential.response.attestation_object.as_ref())?;
    let parsed = AuthData::parse(&auth_data)?;
    // Step 14.
    if parsed.rp_id_hash != Sha256::digest(expected.rp_id.as_bytes()).as_slice() {
        return Err(StepFailed::RpIdHash);
    }
    // Step 15: skipped for conditional mediation only.
    if !expected.conditional && parsed.flags & UP == 0 {
        return Err(StepFailed::UserPresence);
    }
    // Step 16.
    if expected.user_verification_required && parsed.flags & UV == 0 {
        return Err(StepFailed::UserVerification);
    }
    // Step 17.
    if parsed.flags & BE == 0 && parsed.flags & BS != 0 {
        return Err(StepFailed::BackupState);
    }
    // Step 20: the key must parse and use an offered algorithm.
    let key_cbor: Cbor =
        serde_cbor_2::from_slice(&parsed.cose_key).map_err(|_| StepFailed::Algorithm)?;
    let key = COSEKey::try_from(&key_cbor).map_err(|_| StepFailed::Algorithm)?;
    if !expected.algorithms.contains(&key.type_) {
        return Err(StepFailed::Algorithm);
    }
    // Step 21: no extension outputs are required; unrequested ones are
    // ignored, as the specification allows.
    // Steps 22-23: `none`, or `packed` self attestation (what authenticators
    // send when the options ask for no attestation).
    verify_statement(&fmt, &statement, &auth_data, &hash, &key)?;
    // Step 26.
    if parsed.credential_id.is_empty() || parsed.credential_id.len() > CREDENTIAL_ID_MAX {
        return Err(StepFailed::CredentialIdLength);
    }
    if credential.raw_id.as_slice() != parsed.credential_id.as_slice() {
        return Err(StepFailed::CredentialIdMismatch);
    }
    // Step 27 (not registered to anyone) is the store's unique index.
    Ok(Attested {
        credential_id: parsed.credential_id,
        cose_key: parsed.cose_key,
        aaguid: parsed.aaguid,
        sign_count: parsed.sign_count,
        user_verified: parsed.flags & UV != 0,
        backup_eligible: parsed.flags & BE != 0,
        backup_state: parsed.flags & BS != 0,
    })
}

/// A web origin matches by scheme, host and port; an app origin
/// (`android:apk-key-hash:…`) exactly.
fn same_origin(expected: &Url, presented: &str) -> bool {
    match Url::parse(presented) {
        Ok(url) if expected.origin().is_tuple() => url.origin() == expected.origin(),
        Ok(_) => expected.as_str() == presented,
        Err(_) => false,
    }
}

fn attestation_object(bytes: &[u8]) -> Result<(String, Vec<u8>, Cbor), StepFailed> {
    let mut map: BTreeMap<String, Cbor> =
        serde_cbor_2::from_slice(bytes).map_err(|_| StepFailed::AttestationObject)?;
    let fmt = match map.remove("fmt") {
        Some(Cbor::Text(fmt)) => fmt,
        _ => return Err(StepFailed::AttestationObject),
    };
    let auth_data = match map.remove("authData") {
        Some(Cbor::Bytes(data)) => data,
        _ => return Err(StepFailed::AttestationObject),
    };
    let statement = match map.remove("attStmt") {
        Some(statement @ Cbor::Map(_)) => statement,
        _ => return Err(StepFailed::AttestationObject),
    };
    Ok((fmt, auth_data, statement))
}

fn verify_statement(
    fmt: &str,
    statement: &Cbor,
    auth_data: &[u8],
    hash: &[u8],
    key: &COSEKey,
) -> Result<(), StepFailed> {
    let Cbor::Map(fields) = statement else {
        return Err(StepFailed::AttestationStatement);
    };
    match fmt {
        "none" if fields.is_empty() => Ok(()),
        "packed" => {
            let text = |name: &str| fields.get(&Cbor::Text(name.to_string()));
            // A certificate chain is full attestation, which was not asked for.
            if text("x5c").is_some() {
                return Err(StepFailed::AttestationStatement);
            }
            let alg = match text("alg") {
                Some(Cbor::Integer(alg)) => *alg,
                _ => return Err(StepFailed::AttestationStatement),
            };
            let Some(Cbor::Bytes(signature)) = text("sig") else {
                return Err(StepFailed::AttestationStatement);
            };
            if alg != key.type_ as i128 {
                return Err(StepFailed::AttestationStatement);
            }
            let signed: Vec<u8> = [auth_data, hash].concat();
            match key.verify_signature(signature, &signed) {
                Ok(true) => Ok(()),
                _ => Err(StepFailed::AttestationStatement),
            }
        }
        _ => Err(StepFailed::AttestationStatement),
    }
}

/// rpIdHash (32) | flags (1) | signCount (4) | aaguid (16) | idLength (2) |
/// credentialId | credentialPublicKey (COSE) | extensions?
struct AuthData {
    rp_id_hash: Vec<u8>,
    flags: u8,
    sign_count: u32,
    aaguid: Uuid,
    credential_id: Vec<u8>,
    cose_key: Vec<u8>,
}

impl AuthData {
    fn parse(data: &[u8]) -> Result<Self, StepFailed> {
        let malformed = StepFailed::AttestationObject;
        let flags = *data.get(32).ok_or(malformed)?;
        if flags & AT == 0 {
            return Err(malformed);
        }
        let sign_count = u32::from_be_bytes(
            data.get(33..37)
                .ok_or(malformed)?
                .try_into()
                .map_err(|_| malformed)?,
        );
        let aaguid = Uuid::from_slice(data.get(37..53).ok_or(malformed)?).map_err(|_| malformed)?;
        let id_length = usize::from(u16::from_be_bytes(
            data.get(53..55)
                .ok_or(malformed)?
                .try_into()
                .map_err(|_| malformed)?,
        ));
        let credential_id = data.get(55..55 + id_length).ok_or(malformed)?.to_vec();
        // The key is one CBOR item, then the extensions (a map) when the ED
        // flag says so, then nothing: nothing signs a `none` attestation's
        // authenticator data, so it must be exactly what the flags say.
        let rest = data.get(55 + id_length..).ok_or(malformed)?;
        let mut items = serde_cbor_2::Deserializer::from_slice(rest).into_iter::<Cbor>();
        items.next().ok_or(malformed)?.map_err(|_| malformed)?;
        let key_length = items.byte_offset();
        if flags & ED != 0 {
            match items.next() {
                Some(Ok(Cbor::Map(_))) => {}
                _ => return Err(malformed),
            }
        }
        if items.byte_offset() != rest.len() {
            return Err(malformed);
        }
        Ok(Self {
            rp_id_hash: data[..32].to_vec(),
            flags,
            sign_count,
            aaguid,
            credential_id,
            cose_key: rest[..key_length].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! One test per step of §7.1, each with a registration signed by the
    //! software passkey (a packed self attestation, as a browser forwards
    //! it), changed only in what the step checks.
    use super::*;
    use kratos_passkeys_testkit::{
        as_none_attestation, rewrite_auth_data, rewrite_client_data as with_client_data,
        Authenticator,
    };
    use serde_json::{json, Value};

    const ORIGIN: &str = "http://localhost:8080";
    const CHALLENGE: [u8; 32] = [42; 32];

    fn options() -> Value {
        json!({"publicKey": {
            "rp": {"id": "localhost", "name": "test"},
            "user": {"id": "AAECAwQFBgcICQoLDA0ODw", "name": "a@example.com", "displayName": "A"},
            "challenge": URL_SAFE_NO_PAD.encode(CHALLENGE),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
            "attestation": "none",
            "authenticatorSelection": {"residentKey": "required", "requireResidentKey": true, "userVerification": "required"}
        }})
    }

    fn registration() -> Value {
        Authenticator::new().register(&options())
    }

    fn origins() -> Vec<Url> {
        vec![Url::parse(ORIGIN).expect("origin")]
    }

    fn check(credential: &Value, conditional: bool) -> Result<Attested, StepFailed> {
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).expect("credential");
        let origins = origins();
        verify(
            &credential,
            &Expected {
                challenge: &CHALLENGE,
                origins: &origins,
                rp_id: "localhost",
                algorithms: &[COSEAlgorithm::ES256, COSEAlgorithm::RS256],
                user_verification_required: false,
                conditional,
            },
        )
    }

    #[test]
    fn a_software_passkey_registration_passes_every_step() {
        let credential = registration();
        let attested = check(&credential, false).expect("verifies");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&attested.credential_id),
            credential["id"].as_str().expect("id")
        );
        assert!(attested.user_verified);
        // The key is kept as the authenticator encoded it.
        let key: Cbor = serde_cbor_2::from_slice(&attested.cose_key).expect("cose");
        assert!(COSEKey::try_from(&key).is_ok());
    }

    #[test]
    fn steps_5_6_client_data_must_be_json() {
        let mut credential = registration();
        credential["response"]["clientDataJSON"] = json!(URL_SAFE_NO_PAD.encode(b"not json"));
        assert_eq!(check(&credential, true), Err(StepFailed::ClientData));
    }

    #[test]
    fn step_7_type_must_be_webauthn_create() {
        let mut credential = registration();
        with_client_data(&mut credential, |c| c["type"] = json!("webauthn.get"));
        assert_eq!(check(&credential, true), Err(StepFailed::Type));
    }

    #[test]
    fn step_8_challenge_must_be_the_ceremonys() {
        let mut credential = registration();
        with_client_data(&mut credential, |c| {
            c["challenge"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]))
        });
        assert_eq!(check(&credential, true), Err(StepFailed::Challenge));
    }

    #[test]
    fn step_9_origin_must_be_expected() {
        let mut credential = registration();
        with_client_data(&mut credential, |c| {
            c["origin"] = json!("http://localhost:9999")
        });
        assert_eq!(check(&credential, true), Err(StepFailed::Origin));
    }

    #[test]
    fn step_9_app_origins_match_exactly() {
        let app = Url::parse("android:apk-key-hash:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU")
            .expect("app origin");
        assert!(same_origin(&app, app.as_str()));
        assert!(!same_origin(&app, "android:apk-key-hash:other"));
        let web = Url::parse(ORIGIN).expect("origin");
        assert!(same_origin(&web, "http://localhost:8080"));
        assert!(!same_origin(&web, "https://localhost:8080"));
    }

    #[test]
    fn steps_10_11_cross_origin_frames_are_refused() {
        let mut credential = registration();
        with_client_data(&mut credential, |c| c["crossOrigin"] = json!(true));
        assert_eq!(check(&credential, true), Err(StepFailed::CrossOrigin));
        let mut credential = registration();
        with_client_data(&mut credential, |c| {
            c["topOrigin"] = json!("https://elsewhere.example")
        });
        assert_eq!(check(&credential, true), Err(StepFailed::CrossOrigin));
    }

    #[test]
    fn step_13_attestation_object_must_decode() {
        let mut credential = registration();
        credential["response"]["attestationObject"] = json!(URL_SAFE_NO_PAD.encode([0xa0]));
        assert_eq!(check(&credential, true), Err(StepFailed::AttestationObject));
        let mut credential = registration();
        rewrite_auth_data(&mut credential, |data| data.truncate(40));
        assert_eq!(check(&credential, true), Err(StepFailed::AttestationObject));
        // Bytes after the key that the flags do not announce.
        let mut credential = registration();
        as_none_attestation(&mut credential, |_| {});
        rewrite_auth_data(&mut credential, |data| {
            data.extend_from_slice(&[0xde, 0xad])
        });
        assert_eq!(check(&credential, true), Err(StepFailed::AttestationObject));
        // ED announces extensions: a map must follow, and then nothing.
        let mut credential = registration();
        as_none_attestation(&mut credential, |flags| *flags |= ED);
        assert_eq!(check(&credential, true), Err(StepFailed::AttestationObject));
        let mut credential = registration();
        as_none_attestation(&mut credential, |flags| *flags |= ED);
        rewrite_auth_data(&mut credential, |data| {
            data.extend(serde_cbor_2::to_vec(&Cbor::Map(BTreeMap::new())).expect("cbor"))
        });
        assert!(check(&credential, true).is_ok());
    }

    #[test]
    fn step_14_rp_id_hash_must_be_the_rp_ids() {
        let mut credential = registration();
        as_none_attestation(&mut credential, |_| {});
        rewrite_auth_data(&mut credential, |data| {
            data[..32].copy_from_slice(&Sha256::digest(b"example.org"))
        });
        assert_eq!(check(&credential, true), Err(StepFailed::RpIdHash));
    }

    #[test]
    fn step_15_user_presence_is_skipped_only_for_conditional_mediation() {
        let mut credential = registration();
        as_none_attestation(&mut credential, |flags| *flags &= !(UP | UV));
        let attested = check(&credential, true).expect("conditional: UP 0 accepted");
        assert!(!attested.user_verified);
        assert_eq!(check(&credential, false), Err(StepFailed::UserPresence));
    }

    #[test]
    fn step_16_user_verification_when_the_policy_requires_it() {
        let mut credential = registration();
        as_none_attestation(&mut credential, |flags| *flags &= !UV);
        let parsed: RegisterPublicKeyCredential =
            serde_json::from_value(credential).expect("credential");
        let origins = origins();
        let mut expected = Expected {
            challenge: &CHALLENGE,
            origins: &origins,
            rp_id: "localhost",
            algorithms: &[COSEAlgorithm::ES256],
            user_verification_required: true,
            conditional: true,
        };
        assert_eq!(
            verify(&parsed, &expected),
            Err(StepFailed::UserVerification)
        );
        expected.user_verification_required = false;
        assert!(verify(&parsed, &expected).is_ok());
    }

    #[test]
    fn step_17_backup_state_needs_backup_eligibility() {
        let mut credential = registration();
        as_none_attestation(&mut credential, |flags| *flags = (*flags & !BE) | BS);
        assert_eq!(check(&credential, true), Err(StepFailed::BackupState));
        let mut credential = registration();
        as_none_attestation(&mut credential, |flags| *flags |= BE | BS);
        let attested = check(&credential, true).expect("synced passkey");
        assert!(attested.backup_eligible && attested.backup_state);
    }

    #[test]
    fn step_20_algorithm_must_be_offered() {
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(registration()).expect("credential");
        let origins = origins();
        let expected = Expected {
            challenge: &CHALLENGE,
            origins: &origins,
            rp_id: "localhost",
            algorithms: &[COSEAlgorithm::RS256],
            user_verification_required: false,
            conditional: true,
        };
        assert_eq!(verify(&credential, &expected), Err(StepFailed::Algorithm));
    }

    #[test]
    fn steps_22_23_attestation_statement_must_verify() {
        // Packed self attestation signs the flags: changing them breaks it.
        let mut credential = registration();
        rewrite_auth_data(&mut credential, |data| data[32] &= !UP);
        assert_eq!(
            check(&credential, true),
            Err(StepFailed::AttestationStatement)
        );
        // An unknown format, and `none` with a statement, are refused.
        for (fmt, statement) in [
            ("fido-u2f-unknown", BTreeMap::new()),
            (
                "none",
                BTreeMap::from([(Cbor::Text("sig".into()), Cbor::Bytes(vec![1]))]),
            ),
        ] {
            let mut credential = registration();
            let raw = URL_SAFE_NO_PAD
                .decode(
                    credential["response"]["attestationObject"]
                        .as_str()
                        .expect("text"),
                )
                .expect("base64url");
            let mut map: BTreeMap<String, Cbor> = serde_cbor_2::from_slice(&raw).expect("cbor");
            map.insert("fmt".into(), Cbor::Text(fmt.into()));
            map.insert("attStmt".into(), Cbor::Map(statement));
            credential["response"]["attestationObject"] =
                json!(URL_SAFE_NO_PAD.encode(serde_cbor_2::to_vec(&map).expect("cbor")));
            assert_eq!(
                check(&credential, true),
                Err(StepFailed::AttestationStatement),
                "{fmt}"
            );
        }
    }

    #[test]
    fn step_26_credential_id_at_most_1023_bytes() {
        let mut credential = registration();
        as_none_attestation(&mut credential, |_| {});
        let long = vec![9u8; 1024];
        rewrite_auth_data(&mut credential, |data| {
            let old = usize::from(u16::from_be_bytes([data[53], data[54]]));
            let key = data[55 + old..].to_vec();
            data.truncate(53);
            data.extend_from_slice(&(long.len() as u16).to_be_bytes());
            data.extend_from_slice(&long);
            data.extend_from_slice(&key);
        });
        credential["rawId"] = json!(URL_SAFE_NO_PAD.encode(&long));
        assert_eq!(
            check(&credential, true),
            Err(StepFailed::CredentialIdLength)
        );
    }

    #[test]
    fn the_credential_id_must_be_the_attested_one() {
        let mut credential = registration();
        credential["rawId"] = json!(URL_SAFE_NO_PAD.encode([1, 2, 3]));
        assert_eq!(
            check(&credential, true),
            Err(StepFailed::CredentialIdMismatch)
        );
    }
}
