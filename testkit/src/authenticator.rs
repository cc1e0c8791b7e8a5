//! A software passkey that makes real ES256 attestations and assertions
//! (webauthn-authenticator-rs's SoftPasskey), wrapped so it can do a
//! discoverable login: SoftPasskey refuses `requireResidentKey`, signs only
//! for a non-empty `allowCredentials`, and returns no user handle. The
//! wrapper remembers (rp id, credential id, user handle) at registration and
//! fills those in. The user handle is not signed, so verification is
//! unaffected.

use serde_json::Value;
use url::Url;
use webauthn_authenticator_rs::prelude::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::AuthenticatorBackend as _;
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential,
    PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions,
    RegisterPublicKeyCredential, RequestChallengeResponse, ResidentKeyRequirement,
};

/// The demo page's origin, the default relying-party origin in tests.
pub const ORIGIN: &str = "http://localhost:8080";

#[derive(Clone)]
pub struct Remembered {
    pub rp_id: String,
    pub credential_id: Vec<u8>,
    pub user_handle: Vec<u8>,
    /// The credential's `hmac-secret` key, when it was made with PRF.
    pub prf_secret: Option<[u8; 32]>,
}

pub struct Authenticator {
    soft: SoftPasskey,
    pub credentials: Vec<Remembered>,
    vouched_origins: Vec<Url>,
    /// False: it cannot verify the user and answers every request without.
    verifies_user: bool,
    /// Answers the `prf` extension.
    prf: bool,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    pub fn new() -> Self {
        Self {
            // `true`: it claims user verification, which passkeys require.
            soft: SoftPasskey::new(true),
            credentials: Vec::new(),
            vouched_origins: Vec::new(),
            verifies_user: true,
            prf: false,
        }
    }

    /// An authenticator that supports the `prf` extension (`hmac-secret`).
    pub fn with_prf() -> Self {
        Self {
            prf: true,
            ..Self::new()
        }
    }

    /// An authenticator that never verifies the user: it signs with UV=0
    /// (a security key without a PIN), so its assertions stay valid.
    pub fn without_user_verification() -> Self {
        Self {
            soft: SoftPasskey::new(false),
            verifies_user: false,
            ..Self::new()
        }
    }

    pub fn register(&mut self, options: &Value) -> Value {
        self.register_with(options, ORIGIN, |_| {})
    }

    /// Registers from our `{ceremony_id, publicKey}` answer. `tweak` changes
    /// what the authenticator is told (to make bad attestations), `origin` is
    /// the page origin the client data claims.
    pub fn register_with(
        &mut self,
        options: &Value,
        origin: &str,
        tweak: impl FnOnce(&mut PublicKeyCredentialCreationOptions),
    ) -> Value {
        let mut ccr: CreationChallengeResponse =
            serde_json::from_value(options.clone()).expect("creation options");
        if let Some(selection) = ccr.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = false;
            selection.resident_key = Some(ResidentKeyRequirement::Discouraged);
        }
        tweak(&mut ccr.public_key);
        let rp_id = ccr.public_key.rp.id.clone();
        let user_handle = ccr.public_key.user.id.to_vec();
        let origin = Url::parse(origin).expect("origin");
        let credential: RegisterPublicKeyCredential = if self.vouched_origins.contains(&origin) {
            self.soft.perform_register(origin, ccr.public_key, 60_000)
        } else {
            self.soft.do_registration(origin, ccr)
        }
        .expect("software passkey registers");
        let asked_prf = options["publicKey"]["extensions"].get("prf").is_some();
        let prf_secret = (self.prf && asked_prf).then(rand::random::<[u8; 32]>);
        self.credentials.push(Remembered {
            rp_id,
            credential_id: credential.raw_id.to_vec(),
            user_handle,
            prf_secret,
        });
        let mut json = serde_json::to_value(&credential).expect("credential json");
        if asked_prf {
            // What a browser reports: whether the authenticator can do it.
            client_extension_results(&mut json).insert(
                "prf".into(),
                serde_json::json!({"enabled": prf_secret.is_some()}),
            );
        }
        json
    }

    pub fn login(&mut self, options: &Value) -> Value {
        self.login_with(options, ORIGIN, |_| {})
    }

    /// Signs a login from our `{ceremony_id, publicKey}` answer, as a
    /// discoverable credential would (with its user handle).
    pub fn login_with(
        &mut self,
        options: &Value,
        origin: &str,
        tweak: impl FnOnce(&mut PublicKeyCredentialRequestOptions),
    ) -> Value {
        let credential = self.assertion(options, origin, tweak);
        let mut json = serde_json::to_value(&credential).expect("assertion json");
        let prf = &options["publicKey"]["extensions"]["prf"];
        let secret = self
            .credentials
            .iter()
            .find(|c| c.credential_id == credential.raw_id)
            .and_then(|c| c.prf_secret);
        if let (false, Some(secret)) = (prf.is_null(), secret) {
            let inputs = prf["evalByCredential"]
                .get(b64(&credential.raw_id))
                .unwrap_or(&prf["eval"]);
            let mut results = serde_json::Map::new();
            for which in ["first", "second"] {
                if let Some(salt) = inputs.get(which) {
                    results.insert(
                        which.into(),
                        Value::String(b64(&prf_output(&secret, &unb64(salt)))),
                    );
                }
            }
            let mut prf_result = serde_json::Map::new();
            if !results.is_empty() {
                prf_result.insert("results".into(), Value::Object(results));
            }
            client_extension_results(&mut json).insert("prf".into(), Value::Object(prf_result));
        }
        json
    }

    pub fn assertion(
        &mut self,
        options: &Value,
        origin: &str,
        tweak: impl FnOnce(&mut PublicKeyCredentialRequestOptions),
    ) -> PublicKeyCredential {
        let mut rcr: RequestChallengeResponse =
            serde_json::from_value(options.clone()).expect("request options");
        let remembered = self
            .credentials
            .iter()
            .rev()
            .find(|c| {
                c.rp_id == rcr.public_key.rp_id
                    && (rcr.public_key.allow_credentials.is_empty()
                        || rcr
                            .public_key
                            .allow_credentials
                            .iter()
                            .any(|a| a.id.as_slice() == c.credential_id.as_slice()))
            })
            .expect("a credential for this relying party");
        let user_handle = remembered.user_handle.clone();
        rcr.public_key.allow_credentials = vec![AllowCredentials {
            type_: "public-key".into(),
            id: remembered.credential_id.clone(),
            transports: None,
        }];
        if !self.verifies_user {
            // The browser passes `preferred` on; the software passkey only
            // signs without verification when not asked for it.
            rcr.public_key.user_verification =
                webauthn_rs_proto::UserVerificationPolicy::Discouraged_DO_NOT_USE;
        }
        tweak(&mut rcr.public_key);
        let origin = Url::parse(origin).expect("origin");
        let mut credential = if self.vouched_origins.contains(&origin) {
            self.soft.perform_auth(origin, rcr.public_key, 60_000)
        } else {
            self.soft.do_authentication(origin, rcr)
        }
        .expect("software passkey signs");
        credential.response.user_handle = Some(user_handle);
        credential
    }

    /// Signs for `origin` though the RP id is not its domain, as a browser
    /// does for a related origin it found in the RP id's
    /// `/.well-known/webauthn`, and Android for an app its asset links name
    /// (`android:apk-key-hash:`): the client's own origin check is skipped.
    pub fn vouch_for_origin(&mut self, origin: &str) {
        self.vouched_origins
            .push(Url::parse(origin).expect("origin"));
    }
}

/// The PRF output for `salt` as a browser computes it over `hmac-secret`.
pub fn prf_output(secret: &[u8; 32], salt: &[u8]) -> [u8; 32] {
    use hmac::Mac as _;
    use sha2::Digest as _;
    let mut hashed = sha2::Sha256::new();
    hashed.update(b"WebAuthn PRF\x00");
    hashed.update(salt);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(&hashed.finalize());
    mac.finalize().into_bytes().into()
}

/// The credential's client extension results: webauthn-rs's JSON names
/// them `extensions` (a browser's `toJSON()` says `clientExtensionResults`;
/// the service takes either).
fn client_extension_results(credential: &mut Value) -> &mut serde_json::Map<String, Value> {
    let object = credential.as_object_mut().expect("credential object");
    let results = object
        .entry("extensions")
        .or_insert_with(|| serde_json::json!({}));
    if !results.is_object() {
        *results = serde_json::json!({});
    }
    results.as_object_mut().expect("object")
}

/// What the client package does before sending a credential: the PRF
/// outputs stay in the browser.
pub fn strip_prf_results(credential: &mut Value) {
    for key in ["clientExtensionResults", "extensions"] {
        if let Some(prf) = credential
            .get_mut(key)
            .and_then(|results| results.get_mut("prf"))
            .and_then(Value::as_object_mut)
        {
            prf.remove("results");
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(value: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.as_str().expect("base64url string"))
        .expect("base64url")
}

/// Rewrites the authenticator data inside a registration's attestation
/// object, to make a registration the server must refuse.
pub fn rewrite_auth_data(credential: &mut Value, f: impl FnOnce(&mut Vec<u8>)) {
    use serde_cbor_2::Value as Cbor;
    let bytes = unb64(&credential["response"]["attestationObject"]);
    let mut map: std::collections::BTreeMap<Cbor, Cbor> =
        serde_cbor_2::from_slice(&bytes).expect("attestation object");
    match map.get_mut(&Cbor::Text("authData".into())) {
        Some(Cbor::Bytes(auth_data)) => f(auth_data),
        _ => panic!("attestation object without authData"),
    }
    let encoded = serde_cbor_2::to_vec(&map).expect("encode");
    credential["response"]["attestationObject"] = Value::String(b64(&encoded));
}

/// What a browser forwards for `attestation: "none"`: the attestation
/// statement replaced by a `none` one, so nothing signs the authenticator
/// data and `flags` can set what a password manager would (a conditional
/// registration has neither User Present nor User Verified).
pub fn as_none_attestation(credential: &mut Value, flags: impl FnOnce(&mut u8)) {
    use serde_cbor_2::Value as Cbor;
    rewrite_auth_data(credential, |auth_data| flags(&mut auth_data[32]));
    let bytes = unb64(&credential["response"]["attestationObject"]);
    let mut map: std::collections::BTreeMap<Cbor, Cbor> =
        serde_cbor_2::from_slice(&bytes).expect("attestation object");
    map.insert(Cbor::Text("fmt".into()), Cbor::Text("none".into()));
    map.insert(
        Cbor::Text("attStmt".into()),
        Cbor::Map(std::collections::BTreeMap::new()),
    );
    let encoded = serde_cbor_2::to_vec(&map).expect("encode");
    credential["response"]["attestationObject"] = Value::String(b64(&encoded));
}

/// Rewrites the client data JSON of a registration or a login.
pub fn rewrite_client_data(credential: &mut Value, f: impl FnOnce(&mut Value)) {
    let raw = unb64(&credential["response"]["clientDataJSON"]);
    let mut client: Value = serde_json::from_slice(&raw).expect("client data");
    f(&mut client);
    credential["response"]["clientDataJSON"] =
        Value::String(b64(&serde_json::to_vec(&client).expect("json")));
}

/// Turns a registration into one from an attested authenticator model:
/// `aaguid` in the authenticator data, and a `packed` statement signed by
/// the attestation key (`pkcs8`, P-256) with its chain `x5c` (leaf first),
/// as a security key with a vendor certificate makes it.
pub fn as_packed_attestation(
    credential: &mut Value,
    aaguid: [u8; 16],
    x5c: &[Vec<u8>],
    pkcs8: &[u8],
) {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use serde_cbor_2::Value as Cbor;
    rewrite_auth_data(credential, |auth_data| {
        auth_data[37..53].copy_from_slice(&aaguid)
    });
    let bytes = unb64(&credential["response"]["attestationObject"]);
    let mut map: std::collections::BTreeMap<Cbor, Cbor> =
        serde_cbor_2::from_slice(&bytes).expect("attestation object");
    let auth_data = match map.get(&Cbor::Text("authData".into())) {
        Some(Cbor::Bytes(auth_data)) => auth_data.clone(),
        _ => panic!("attestation object without authData"),
    };
    let client_data = unb64(&credential["response"]["clientDataJSON"]);
    let client_data_hash = ring::digest::digest(&ring::digest::SHA256, &client_data);
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
        .expect("attestation key");
    let signed: Vec<u8> = auth_data
        .iter()
        .chain(client_data_hash.as_ref())
        .copied()
        .collect();
    let sig = key.sign(&rng, &signed).expect("sign");
    let mut statement = std::collections::BTreeMap::new();
    statement.insert(Cbor::Text("alg".into()), Cbor::Integer(-7));
    statement.insert(Cbor::Text("sig".into()), Cbor::Bytes(sig.as_ref().to_vec()));
    statement.insert(
        Cbor::Text("x5c".into()),
        Cbor::Array(x5c.iter().map(|c| Cbor::Bytes(c.clone())).collect()),
    );
    map.insert(Cbor::Text("fmt".into()), Cbor::Text("packed".into()));
    map.insert(Cbor::Text("attStmt".into()), Cbor::Map(statement));
    let encoded = serde_cbor_2::to_vec(&map).expect("encode");
    credential["response"]["attestationObject"] = Value::String(b64(&encoded));
}
