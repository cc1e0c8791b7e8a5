//! Standard Webhooks signatures (<https://www.standardwebhooks.com>):
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//! under the endpoint's `whsec_` secret. The signing is the specification
//! authors' own crate (`standardwebhooks`); this module only checks the
//! secret's shape at start-up and keeps it out of every printout.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use standardwebhooks::Webhook;

const PREFIX: &str = "whsec_";
/// The spec's secrets are 24 to 64 random bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// An endpoint's signing key; never printed.
pub struct SigningKey(Webhook);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>`.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("the secret must start with {PREFIX}"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "the secret after whsec_ must be base64".to_string())?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(format!(
                "the secret must hold {} to {} bytes, not {}",
                KEY_BYTES.start(),
                KEY_BYTES.end(),
                key.len()
            ));
        }
        Webhook::from_bytes(key)
            .map(Self)
            .map_err(|_| "the secret is not a signing key".to_string())
    }

    /// The `webhook-signature` header value for one attempt (the body is
    /// the event's JSON, so UTF-8, as the crate requires).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
        self.0
            .sign(id, timestamp, body)
            .map_err(|e| format!("signing failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example the Standard Webhooks libraries test themselves with.
    #[test]
    fn signs_like_the_specification_example() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
            .expect("signs"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        assert!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningKey::parse("whsec_not base64!").is_err());
        assert!(SigningKey::parse("whsec_c2hvcnQ=").is_err());
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
    }
}
