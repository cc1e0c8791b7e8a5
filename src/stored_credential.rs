//! The stored form of a passkey (webauthn-rs's `Passkey`, serialised into
//! `passkeys.credential`) built from raw WebAuthn parts, and the raw parts
//! read back: what moving credentials in and out of Kratos needs, where a
//! credential is a COSE public key, an id and a counter rather than a
//! ceremony webauthn-rs ran.

use std::collections::BTreeMap;

use serde_cbor_2::Value as Cbor;
use serde_json::Value;
use webauthn_rs::prelude::{Credential, Passkey};
use webauthn_rs_core::proto::{
    AttestationFormat, COSEKey, COSEKeyType, ECDSACurve, EDDSACurve, ParsedAttestation,
    RegisteredExtensions, UserVerificationPolicy,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialFormError {
    #[error("the public key is not a COSE key webauthn-rs can use")]
    UnreadableKey,
    #[error("the credential id is empty or longer than 1023 bytes")]
    CredentialIdLength,
    #[error("the stored passkey is unreadable")]
    UnreadablePasskey,
}

/// What a credential is, independent of the server that registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialParts {
    pub credential_id: Vec<u8>,
    /// The credential public key, COSE-encoded (as in the attested
    /// credential data).
    pub cose_key: Vec<u8>,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

/// The webauthn-rs passkey for these parts, as JSON for `passkeys.credential`.
/// The credential counts as user-verified: it is only used for logins that
/// require user verification.
pub fn passkey_json(parts: &CredentialParts) -> Result<Value, CredentialFormError> {
    if parts.credential_id.is_empty() || parts.credential_id.len() > 1023 {
        return Err(CredentialFormError::CredentialIdLength);
    }
    let cbor: Cbor = serde_cbor_2::from_slice(&parts.cose_key)
        .map_err(|_| CredentialFormError::UnreadableKey)?;
    let key = COSEKey::try_from(&cbor).map_err(|_| CredentialFormError::UnreadableKey)?;
    let credential = Credential {
        cred_id: parts.credential_id.clone(),
        cred: key,
        counter: parts.sign_count,
        transports: None,
        user_verified: true,
        backup_eligible: parts.backup_eligible,
        backup_state: parts.backup_state,
        registration_policy: UserVerificationPolicy::Required,
        extensions: RegisteredExtensions::none(),
        attestation: ParsedAttestation::default(),
        attestation_format: AttestationFormat::None,
    };
    serde_json::to_value(Passkey::from(credential))
        .map_err(|_| CredentialFormError::UnreadablePasskey)
}

/// The raw parts of a stored passkey (`passkeys.credential`), its public
/// key COSE-encoded again.
pub fn parts_of(stored: &Value) -> Result<CredentialParts, CredentialFormError> {
    let passkey: Passkey = serde_json::from_value(stored.clone())
        .map_err(|_| CredentialFormError::UnreadablePasskey)?;
    let credential = Credential::from(passkey);
    let cose_key = serde_cbor_2::to_vec(&cose_map(&credential.cred)?)
        .map_err(|_| CredentialFormError::UnreadableKey)?;
    Ok(CredentialParts {
        credential_id: credential.cred_id,
        cose_key,
        sign_count: credential.counter,
        backup_eligible: credential.backup_eligible,
        backup_state: credential.backup_state,
    })
}

/// RFC 9053's map for the key types WebAuthn uses: kty (1), alg (3) and
/// the type's parameters (-1, -2, -3).
fn cose_map(key: &COSEKey) -> Result<Cbor, CredentialFormError> {
    let int = |n: i128| Cbor::Integer(n);
    let mut map = BTreeMap::new();
    // COSEAlgorithm is `repr(i32)` with the IANA values.
    map.insert(int(3), int(i128::from(key.type_ as i32)));
    match &key.key {
        COSEKeyType::EC_EC2(ec) => {
            let curve = match ec.curve {
                ECDSACurve::SECP256R1 => 1,
                ECDSACurve::SECP384R1 => 2,
                ECDSACurve::SECP521R1 => 3,
            };
            map.insert(int(1), int(2));
            map.insert(int(-1), int(curve));
            map.insert(int(-2), Cbor::Bytes(ec.x.clone()));
            map.insert(int(-3), Cbor::Bytes(ec.y.clone()));
        }
        COSEKeyType::EC_OKP(okp) => {
            let curve = match okp.curve {
                EDDSACurve::ED25519 => 6,
                EDDSACurve::ED448 => 7,
            };
            map.insert(int(1), int(1));
            map.insert(int(-1), int(curve));
            map.insert(int(-2), Cbor::Bytes(okp.x.clone()));
        }
        COSEKeyType::RSA(rsa) => {
            map.insert(int(1), int(3));
            map.insert(int(-1), Cbor::Bytes(rsa.n.clone()));
            map.insert(int(-2), Cbor::Bytes(rsa.e.to_vec()));
        }
    }
    Ok(Cbor::Map(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use webauthn_rs_core::proto::COSEAlgorithm;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// An ES256 key as authenticators encode it (P-256's generator point,
    /// a valid public key).
    fn es256_key() -> Vec<u8> {
        let mut map = BTreeMap::new();
        map.insert(Cbor::Integer(1), Cbor::Integer(2));
        map.insert(Cbor::Integer(3), Cbor::Integer(-7));
        map.insert(Cbor::Integer(-1), Cbor::Integer(1));
        map.insert(
            Cbor::Integer(-2),
            Cbor::Bytes(hex(
                "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            )),
        );
        map.insert(
            Cbor::Integer(-3),
            Cbor::Bytes(hex(
                "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
            )),
        );
        serde_cbor_2::to_vec(&Cbor::Map(map)).expect("cbor")
    }

    fn parts() -> CredentialParts {
        CredentialParts {
            credential_id: vec![1, 2, 3, 4],
            cose_key: es256_key(),
            sign_count: 17,
            backup_eligible: true,
            backup_state: false,
        }
    }

    #[test]
    fn parts_survive_the_round_trip() {
        let stored = passkey_json(&parts()).expect("stored");
        assert_eq!(parts_of(&stored).expect("parts"), parts());
    }

    #[test]
    fn the_stored_form_is_a_webauthn_rs_passkey() {
        let stored = passkey_json(&parts()).expect("stored");
        let passkey: Passkey = serde_json::from_value(stored).expect("a passkey");
        assert_eq!(passkey.cred_id().as_slice(), &[1, 2, 3, 4]);
        assert_eq!(*passkey.cred_algorithm(), COSEAlgorithm::ES256);
    }

    #[test]
    fn a_key_that_is_not_cose_is_refused() {
        let mut bad = parts();
        bad.cose_key = vec![0xff, 0x00];
        assert_eq!(passkey_json(&bad), Err(CredentialFormError::UnreadableKey));
        let mut unknown_algorithm = parts();
        unknown_algorithm.cose_key = {
            let mut map = BTreeMap::new();
            map.insert(Cbor::Integer(1), Cbor::Integer(2));
            map.insert(Cbor::Integer(3), Cbor::Integer(-9999));
            serde_cbor_2::to_vec(&Cbor::Map(map)).expect("cbor")
        };
        assert_eq!(
            passkey_json(&unknown_algorithm),
            Err(CredentialFormError::UnreadableKey)
        );
    }

    #[test]
    fn credential_ids_follow_webauthns_length_limits() {
        let mut empty = parts();
        empty.credential_id.clear();
        assert_eq!(
            passkey_json(&empty),
            Err(CredentialFormError::CredentialIdLength)
        );
        let mut long = parts();
        long.credential_id = vec![0; 1024];
        assert_eq!(
            passkey_json(&long),
            Err(CredentialFormError::CredentialIdLength)
        );
    }
}
