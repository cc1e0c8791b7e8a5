//! Test PKI for attestation and the FIDO Metadata Service, made in the
//! tests with rcgen: a BLOB root and signer, attestation roots with their
//! attestation certificates, and MDS3 BLOBs signed as compact JWS.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use uuid::Uuid;

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Test Vendor");
    params.distinguished_name.push(DnType::CountryName, "DE");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Test Vendor");
    params.distinguished_name.push(DnType::CountryName, "DE");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params
}

/// A self-signed root.
pub struct Root {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Root {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        Self {
            issuer: CertifiedIssuer::self_signed(ca_params(name), key).expect("root"),
        }
    }

    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// An attestation certificate for `aaguid` (packed's requirements:
    /// OU "Authenticator Attestation", not a CA, the AAGUID extension).
    pub fn attestation_key(&self, aaguid: Uuid) -> AttestationKey {
        let key = KeyPair::generate().expect("key");
        let mut params = leaf_params("Test Authenticator Attestation");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "Authenticator Attestation");
        // id-fido-gen-ce-aaguid: OCTET STRING of the 16 bytes.
        let mut value = vec![0x04, 0x10];
        value.extend_from_slice(aaguid.as_bytes());
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4],
            value,
        )];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("attestation cert");
        AttestationKey {
            aaguid,
            x5c: vec![cert.der().to_vec()],
            pkcs8: key.serialize_der(),
        }
    }

    /// A BLOB signer under this root.
    pub fn blob_signer(&self) -> BlobSigner {
        let key = KeyPair::generate().expect("key");
        let cert = leaf_params("Test MDS BLOB Signer")
            .signed_by(&key, &self.issuer)
            .expect("signer cert");
        BlobSigner {
            x5c: vec![cert.der().to_vec()],
            pkcs8: key.serialize_der(),
        }
    }
}

/// What an authenticator model signs its attestations with.
pub struct AttestationKey {
    pub aaguid: Uuid,
    pub x5c: Vec<Vec<u8>>,
    pub pkcs8: Vec<u8>,
}

impl AttestationKey {
    /// Makes `credential` an attestation of this model.
    pub fn attest(&self, credential: &mut Value) {
        kratos_passkeys_testkit::authenticator::as_packed_attestation(
            credential,
            *self.aaguid.as_bytes(),
            &self.x5c,
            &self.pkcs8,
        );
    }
}

/// Signs MDS3 BLOBs (ES256, with its certificate in `x5c`).
pub struct BlobSigner {
    x5c: Vec<Vec<u8>>,
    pkcs8: Vec<u8>,
}

impl BlobSigner {
    pub fn sign(&self, payload: &Value) -> String {
        let header = json!({
            "alg": "ES256",
            "typ": "JWT",
            "x5c": self.x5c.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8, &rng)
            .expect("signer key");
        let signature = key.sign(&rng, signing_input.as_bytes()).expect("sign");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

/// A FIDO2 model's BLOB entry.
pub fn entry(aaguid: Uuid, description: &str, root: &Root, statuses: &[&str]) -> Value {
    json!({
        "aaguid": aaguid,
        "metadataStatement": {
            "aaguid": aaguid,
            "description": description,
            "friendlyNames": {"en-US": description},
            "authenticatorVersion": 5,
            "protocolFamily": "fido2",
            "schema": 3,
            "upv": [{"major": 1, "minor": 1}],
            "attestationTypes": ["basic_full"],
            "keyProtection": ["hardware", "secure_element"],
            "matcherProtection": ["on_chip"],
            "tcDisplay": [],
            "attestationRootCertificates": [STANDARD.encode(root.der())],
            "icon": "data:image/png;base64,iVBORw0KGgo=",
        },
        "statusReports": statuses
            .iter()
            .map(|s| json!({"status": s, "effectiveDate": "2024-01-01"}))
            .collect::<Vec<_>>(),
        "timeOfLastStatusChange": "2024-01-01",
    })
}

/// A BLOB payload with serial number `no`, next updated in `days`.
pub fn payload(no: u32, days: i64, entries: Vec<Value>) -> Value {
    let next = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    json!({
        "legalHeader": "Test metadata; not the FIDO Alliance's.",
        "no": no,
        "nextUpdate": next.format("%Y-%m-%d").to_string(),
        "entries": entries,
    })
}

/// A directory of its own for a test's BLOB and trust root files.
pub struct Files {
    pub dir: std::path::PathBuf,
}

impl Files {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("kp-mds-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self { dir }
    }

    pub fn write(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
