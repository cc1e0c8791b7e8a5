//! Sealed ceremonies: a ceremony's state travels inside the ceremony id the
//! client holds, encrypted and authenticated (XChaCha20-Poly1305), so
//! starting a ceremony writes nothing and any replica holding the keys can
//! finish it. Only its single use is recorded, at verify
//! (`Store::consume_ceremony`, keyed by the WebAuthn challenge).
//!
//! Keys rotate: the first key seals, every key opens. A ceremony id that
//! does not open with any key (forged, truncated, altered, sealed with a
//! retired key) is simply unknown. The cipher keys are derived from
//! `ceremonies.keys` for this use alone (`ceremony_keys`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{DiscoverableAuthentication, PasskeyRegistration};

use crate::ceremony_keys::{self, KeyError, Purpose};
use crate::domain::{CeremonyId, IdentityId};
use crate::webauthn_policy::Mediation;

/// The first byte of every sealed id: the format, authenticated with it.
/// 2: sealed under a derived key (ids of version 1, sealed under the
/// configured key itself, no longer open).
const VERSION: u8 = 2;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// What a ceremony is for, with the state only that kind needs.
#[derive(Debug, Serialize, Deserialize)]
pub enum CeremonyBody {
    Login {
        state: DiscoverableAuthentication,
        /// Started for a named identity (`allowCredentials` listed).
        identified: bool,
    },
    Registration {
        /// Only this identity may finish it.
        identity: IdentityId,
        passkey_name: Option<String>,
        state: PasskeyRegistration,
        /// A conditional registration (the automatic passkey upgrade) is
        /// verified without the User Present check.
        #[serde(default)]
        mediation: Mediation,
    },
}

/// A ceremony as sealed into its id.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ceremony {
    /// The WebAuthn challenge: random per ceremony, so it names the
    /// ceremony's single use.
    #[serde(with = "serde_bytes")]
    pub challenge: Vec<u8>,
    /// Unix milliseconds.
    expires_at_ms: i64,
    pub body: CeremonyBody,
}

impl Ceremony {
    pub fn new(challenge: Vec<u8>, expires_at: DateTime<Utc>, body: CeremonyBody) -> Self {
        Self {
            challenge,
            expires_at_ms: expires_at.timestamp_millis(),
            body,
        }
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.expires_at_ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the ceremony could not be encoded")]
    Encode(#[source] serde_cbor_2::Error),
    #[error("the ceremony could not be encrypted")]
    Encrypt,
}

/// The ceremony id does not open: unknown, whatever the reason.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the ceremony id does not open with any key")]
pub struct Unopenable;

/// The keys that seal and open ceremonies.
pub struct CeremonySealer {
    /// The first one seals.
    ciphers: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for CeremonySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CeremonySealer({} keys)", self.ciphers.len())
    }
}

impl CeremonySealer {
    /// `keys`: `ceremonies.keys`; the development key is refused when
    /// `refuse_development_key`.
    pub fn new(keys: &[SecretString], refuse_development_key: bool) -> Result<Self, KeyError> {
        let ciphers = ceremony_keys::derive(keys, refuse_development_key, Purpose::Sealing)?
            .iter()
            .map(|key| XChaCha20Poly1305::new(key.bytes().into()))
            .collect();
        Ok(Self { ciphers })
    }

    pub fn seal(&self, ceremony: &Ceremony) -> Result<CeremonyId, SealError> {
        let plaintext = serde_cbor_2::to_vec(ceremony).map_err(SealError::Encode)?;
        let cipher = self.ciphers.first().ok_or(SealError::Encrypt)?;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plaintext,
                    aad: &[VERSION],
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(CeremonyId::new(URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, id: &CeremonyId) -> Result<Ceremony, Unopenable> {
        let raw = URL_SAFE_NO_PAD
            .decode(id.as_str())
            .map_err(|_| Unopenable)?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(Unopenable);
        }
        let nonce = XNonce::from_slice(&raw[1..1 + NONCE_LEN]);
        let (aad, msg) = (&raw[..1], &raw[1 + NONCE_LEN..]);
        let plaintext = self
            .ciphers
            .iter()
            .find_map(|cipher| cipher.decrypt(nonce, Payload { msg, aad }).ok())
            .ok_or(Unopenable)?;
        // Authenticated, so written by us: a body that does not decode is
        // from an older format, and unknown all the same.
        serde_cbor_2::from_slice(&plaintext).map_err(|_| Unopenable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use webauthn_rs::prelude::{Url, WebauthnBuilder};

    use crate::ceremony_keys::{DEVELOPMENT_KEY, KEY_LEN};

    fn key(byte: u8) -> SecretString {
        SecretString::from(STANDARD.encode([byte; KEY_LEN]))
    }

    fn sealer(keys: &[SecretString]) -> CeremonySealer {
        CeremonySealer::new(keys, true).expect("keys")
    }

    fn login_ceremony() -> Ceremony {
        let origin = Url::parse("http://localhost:8080").expect("url");
        let webauthn = WebauthnBuilder::new("localhost", &origin)
            .expect("builder")
            .build()
            .expect("webauthn");
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .expect("starts");
        Ceremony::new(
            options.public_key.challenge.to_vec(),
            Utc::now(),
            CeremonyBody::Login {
                state,
                identified: false,
            },
        )
    }

    #[test]
    fn a_sealed_ceremony_opens_with_the_same_key() {
        let sealer = sealer(&[key(1)]);
        let ceremony = login_ceremony();
        let id = sealer.seal(&ceremony).expect("seals");
        let opened = sealer.open(&id).expect("opens");
        assert_eq!(opened.challenge, ceremony.challenge);
        assert_eq!(opened.expires_at_ms, ceremony.expires_at_ms);
        assert!(matches!(
            opened.body,
            CeremonyBody::Login {
                identified: false,
                ..
            }
        ));
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = sealer(&[key(1)]);
        let rotated = sealer(&[key(2), key(1)]);
        let ceremony = login_ceremony();
        assert!(rotated.open(&old.seal(&ceremony).expect("seals")).is_ok());
        let new_id = rotated.seal(&ceremony).expect("seals");
        assert_eq!(old.open(&new_id).map(|_| ()), Err(Unopenable));
    }

    #[test]
    fn ceremonies_are_sealed_under_a_derived_key_not_the_configured_one() {
        let raw = [1u8; KEY_LEN];
        let cipher = XChaCha20Poly1305::new((&raw).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let plaintext = serde_cbor_2::to_vec(&login_ceremony()).expect("cbor");
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plaintext,
                    aad: &[VERSION],
                },
            )
            .expect("encrypts");
        let id = [&[VERSION][..], &nonce, &sealed].concat();
        let id = CeremonyId::new(URL_SAFE_NO_PAD.encode(id));
        assert_eq!(sealer(&[key(1)]).open(&id).map(|_| ()), Err(Unopenable));
    }

    #[test]
    fn altered_ids_do_not_open() {
        let sealer = sealer(&[key(1)]);
        let id = sealer.seal(&login_ceremony()).expect("seals");
        let raw = URL_SAFE_NO_PAD.decode(id.as_str()).expect("base64");
        for position in [0, 1, 30, raw.len() - 1] {
            let mut flipped = raw.clone();
            flipped[position] ^= 0x01;
            let altered = CeremonyId::new(URL_SAFE_NO_PAD.encode(&flipped));
            assert_eq!(
                sealer.open(&altered).map(|_| ()),
                Err(Unopenable),
                "{position}"
            );
        }
        let truncated = CeremonyId::new(id.as_str()[..id.as_str().len() - 4].to_string());
        assert_eq!(sealer.open(&truncated).map(|_| ()), Err(Unopenable));
        let garbage = CeremonyId::new("not base64 at all!".to_string());
        assert_eq!(sealer.open(&garbage).map(|_| ()), Err(Unopenable));
    }

    #[test]
    fn keys_are_checked() {
        assert!(matches!(
            CeremonySealer::new(&[], false),
            Err(KeyError::NoKeys)
        ));
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        assert!(matches!(
            CeremonySealer::new(&[key(1), short], false),
            Err(KeyError::Invalid { index: 1 })
        ));
        let dev = SecretString::from(DEVELOPMENT_KEY.to_string());
        assert!(CeremonySealer::new(std::slice::from_ref(&dev), false).is_ok());
        assert!(matches!(
            CeremonySealer::new(&[dev], true),
            Err(KeyError::DevelopmentKey { index: 0 })
        ));
    }

    #[test]
    fn keys_never_print() {
        let sealer = sealer(&[key(7)]);
        assert_eq!(format!("{sealer:?}"), "CeremonySealer(1 keys)");
    }
}
