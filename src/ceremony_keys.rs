//! `ceremonies.keys`: the configured secrets, decoded, and the subkeys
//! derived from each. Sealing ceremonies (XChaCha20-Poly1305) and marking
//! recovery flows (HMAC-SHA256) each get a key of their own, derived with
//! HKDF-SHA256 under a distinct label, so no key ever serves two
//! primitives. Every secret yields one subkey per use, in the configured
//! order: the first seals and marks, every one opens and checks, so
//! rotation works as before.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const KEY_LEN: usize = 32;

/// The key in `config/base.yaml` (in any base64 spelling, refused in
/// production).
pub const DEVELOPMENT_KEY: &str = "ZGV2ZWxvcG1lbnQgb25seTogbm90IGEgc2VjcmV0ISE=";

/// What a derived key is for: its HKDF `info`. Changing a label turns every
/// ceremony id or mark made under the old one into an unknown one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `sealed_ceremony`: XChaCha20-Poly1305 keys.
    Sealing,
    /// `login_marker`: HMAC-SHA256 keys.
    Marking,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Sealing => b"kratos-passkeys v2 ceremony sealing (XChaCha20-Poly1305)",
            Purpose::Marking => b"kratos-passkeys v2 recovery flow login mark (HMAC-SHA256)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("ceremonies.keys is empty: at least one key is needed to seal ceremonies")]
    NoKeys,
    #[error("ceremonies.keys[{index}] is not base64 for {KEY_LEN} bytes (make one with `openssl rand -base64 32`)")]
    Invalid { index: usize },
    #[error("ceremonies.keys[{index}] is the development key shipped in config/base.yaml (in some base64 spelling); set a key of your own in production")]
    DevelopmentKey { index: usize },
}

/// A derived key; never printed.
pub struct Subkey([u8; KEY_LEN]);

impl Subkey {
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Subkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subkey(..)")
    }
}

/// One subkey for `purpose` per configured key, first key first.
pub fn derive(
    keys: &[SecretString],
    refuse_development_key: bool,
    purpose: Purpose,
) -> Result<Vec<Subkey>, KeyError> {
    decode_keys(keys, refuse_development_key)?
        .iter()
        .enumerate()
        .map(|(index, secret)| derive_one(secret, purpose).ok_or(KeyError::Invalid { index }))
        .collect()
}

/// The configured keys as bytes, first key first. Only `derive` and the
/// check of marks made before keys were derived read them.
pub(crate) fn decode_keys(
    keys: &[SecretString],
    refuse_development_key: bool,
) -> Result<Vec<[u8; KEY_LEN]>, KeyError> {
    if keys.is_empty() {
        return Err(KeyError::NoKeys);
    }
    let development = decode_key(DEVELOPMENT_KEY);
    keys.iter()
        .enumerate()
        .map(|(index, key)| {
            let bytes = decode_key(key.expose_secret()).ok_or(KeyError::Invalid { index })?;
            // Bytes, not strings: any other spelling of the development key
            // is the same key.
            let is_development = development
                .as_ref()
                .is_some_and(|dev| bool::from(dev.ct_eq(&bytes)));
            if refuse_development_key && is_development {
                return Err(KeyError::DevelopmentKey { index });
            }
            Ok(bytes)
        })
        .collect()
}

/// Standard or URL-safe base64, padded or not (what `openssl rand -base64`
/// prints, and what survives URLs and env files that drop `=`).
pub fn decode_key(key: &str) -> Option<[u8; KEY_LEN]> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let key = key.trim();
    [
        GeneralPurpose::new(&alphabet::STANDARD, config),
        GeneralPurpose::new(&alphabet::URL_SAFE, config),
    ]
    .iter()
    .find_map(|engine| engine.decode(key).ok())
    .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
}

/// None only past HKDF's output limit (255 blocks), which 32 bytes never
/// reach.
fn derive_one(secret: &[u8; KEY_LEN], purpose: Purpose) -> Option<Subkey> {
    // The secrets are uniformly random already: no salt is needed.
    let hkdf = Hkdf::<Sha256>::new(None, secret);
    let mut out = [0u8; KEY_LEN];
    hkdf.expand(purpose.label(), &mut out).ok()?;
    Some(Subkey(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    /// Every base64 spelling of `bytes`.
    fn spellings(bytes: &[u8]) -> Vec<String> {
        [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .map(|engine| engine.encode(bytes))
            .collect()
    }

    #[test]
    fn every_spelling_of_the_development_key_is_refused_when_asked() {
        let dev = decode_key(DEVELOPMENT_KEY).expect("the development key decodes");
        // A key whose base64 has `+` and `/`, so that the URL-safe spelling
        // differs from the standard one.
        let mut edgy = dev;
        edgy[0] = 0xfb;
        edgy[1] = 0xff;
        for bytes in [dev, edgy] {
            for spelling in spellings(&bytes) {
                assert_eq!(decode_key(&spelling), Some(bytes), "{spelling}");
                assert_eq!(
                    decode_key(&format!(" {spelling}\n")),
                    Some(bytes),
                    "{spelling}"
                );
            }
        }
        for spelling in spellings(&dev) {
            let refused = decode_keys(&[secret(&spelling)], true);
            assert!(
                matches!(refused, Err(KeyError::DevelopmentKey { index: 0 })),
                "{spelling}"
            );
            assert!(decode_keys(&[secret(&spelling)], false).is_ok());
        }
        let other = STANDARD_NO_PAD.encode([9u8; KEY_LEN]);
        assert!(matches!(
            decode_keys(&[secret(&other), secret(DEVELOPMENT_KEY)], true),
            Err(KeyError::DevelopmentKey { index: 1 })
        ));
        assert!(decode_keys(&[secret(&other)], true).is_ok());
    }

    #[test]
    fn keys_of_the_wrong_size_or_not_base64_are_invalid() {
        for bad in [
            STANDARD.encode([1u8; 16]),
            STANDARD.encode([1u8; 33]),
            "not base64 at all!".to_string(),
            String::new(),
        ] {
            assert!(
                matches!(
                    decode_keys(&[secret(&bad)], false),
                    Err(KeyError::Invalid { index: 0 })
                ),
                "{bad}"
            );
        }
        assert!(matches!(decode_keys(&[], false), Err(KeyError::NoKeys)));
    }

    #[test]
    fn sealing_and_marking_keys_differ_and_neither_is_the_secret() {
        let raw = [7u8; KEY_LEN];
        let keys = [secret(&STANDARD.encode(raw))];
        let sealing = derive(&keys, false, Purpose::Sealing).expect("derives");
        let marking = derive(&keys, false, Purpose::Marking).expect("derives");
        assert_ne!(sealing[0].bytes(), marking[0].bytes());
        assert_ne!(sealing[0].bytes(), &raw);
        assert_ne!(marking[0].bytes(), &raw);
        // Deterministic: every replica derives the same subkeys, whatever
        // spelling it was given.
        let again = derive(
            &[secret(&URL_SAFE_NO_PAD.encode(raw))],
            false,
            Purpose::Sealing,
        )
        .expect("derives");
        assert_eq!(sealing[0].bytes(), again[0].bytes());
        assert_eq!(format!("{:?}", sealing[0]), "Subkey(..)");
    }

    #[test]
    fn the_shipped_configuration_holds_the_development_key() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let settings = crate::configuration::load(&dir, crate::configuration::Environment::Local)
            .expect("config loads");
        assert!(matches!(
            decode_keys(&settings.ceremonies.keys, true),
            Err(KeyError::DevelopmentKey { index: 0 })
        ));
    }
}
