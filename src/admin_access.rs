//! Who may call the admin listener: a bearer token from `admin.api_keys`
//! for the support, audit and metrics routes, `webhook.api_key` for
//! Kratos's web hooks. And what production refuses to serve: development
//! keys, and an admin listener beyond loopback that nothing protects.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::configuration::{Settings, WebhookSettings};

/// Shorter tokens could be guessed by anyone who reaches the listener.
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("admin.api_keys[{index}] is shorter than {MIN_KEY_LEN} characters (make one with `openssl rand -base64 32`)")]
    ShortKey { index: usize },
    #[error("webhook.api_key is the development key shipped in config/base.yaml; set a key of your own (KRATOS_PASSKEYS__WEBHOOK__API_KEY) in production, and the same in Kratos's web_hook auth")]
    DevelopmentWebhookKey,
    #[error("the admin listener would listen on {host}, beyond this host, and admin.api_keys is empty: set admin.api_keys (KRATOS_PASSKEYS__ADMIN__API_KEYS; callers send Authorization: Bearer <key>), or, if only your network can reach it (as with Kratos's own admin API), set admin.allow_unauthenticated: true")]
    UnprotectedAdmin { host: String },
}

/// The admin bearer tokens, kept as SHA-256 digests so that comparing them
/// takes the same time whatever the length presented.
pub struct AdminTokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminTokens({} keys)", self.digests.len())
    }
}

impl AdminTokens {
    pub fn new(keys: &[SecretString]) -> Result<Self, AccessError> {
        let digests = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let key = key.expose_secret().trim();
                if key.chars().count() < MIN_KEY_LEN {
                    return Err(AccessError::ShortKey { index });
                }
                Ok(digest(key.as_bytes()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { digests })
    }

    /// Whether any token is asked for at all.
    pub fn required(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether an `Authorization` header value opens the admin routes:
    /// always when no token is configured, else `Bearer <one of the keys>`.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        if !self.required() {
            return true;
        }
        let Some(token) = authorization.and_then(bearer_token) else {
            return false;
        };
        let presented = digest(token);
        // Every key is compared, so the time taken says nothing of which.
        let matched = self
            .digests
            .iter()
            .fold(Choice::from(0), |found, key| found | key.ct_eq(&presented));
        bool::from(matched)
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    let (scheme, token) = value.split_at_checked(SCHEME.len())?;
    let token = token.trim_ascii();
    (scheme.eq_ignore_ascii_case(SCHEME) && !token.is_empty()).then_some(token)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What `serve` refuses in production, checked before anything listens.
pub fn refuse_in_production(settings: &Settings) -> Result<(), AccessError> {
    let webhook_key = settings.webhook.api_key.expose_secret().trim();
    if webhook_key == WebhookSettings::DEVELOPMENT_API_KEY {
        return Err(AccessError::DevelopmentWebhookKey);
    }
    let admin = &settings.admin;
    if !is_loopback(&admin.host) && admin.api_keys.is_empty() && !admin.allow_unauthenticated {
        return Err(AccessError::UnprotectedAdmin {
            host: admin.host.clone(),
        });
    }
    Ok(())
}

/// Only addresses that never leave this host; a name other than
/// `localhost` may resolve anywhere, so it counts as beyond it.
fn is_loopback(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::{self, Environment};

    fn tokens(keys: &[&str]) -> AdminTokens {
        let keys: Vec<SecretString> = keys.iter().map(|k| SecretString::from(*k)).collect();
        AdminTokens::new(&keys).expect("keys")
    }

    const A: &str = "first-admin-token-0123456789";
    const B: &str = "second-admin-token-abcdefghij";

    #[test]
    fn without_keys_everyone_is_admitted() {
        let open = tokens(&[]);
        assert!(!open.required());
        assert!(open.admits(None));
        assert!(open.admits(Some(b"Bearer anything")));
    }

    #[test]
    fn with_keys_only_a_bearer_of_one_is_admitted() {
        let guarded = tokens(&[A, B]);
        assert!(guarded.required());
        for admitted in [
            format!("Bearer {A}"),
            format!("Bearer {B}"),
            format!("bearer {B}"),
            format!("BEARER  {A} "),
        ] {
            assert!(guarded.admits(Some(admitted.as_bytes())), "{admitted}");
        }
        for refused in [
            String::new(),
            "Bearer".to_string(),
            "Bearer ".to_string(),
            A.to_string(),
            format!("Basic {A}"),
            format!("Bearer {A}x"),
            format!("Bearer {}", &A[..A.len() - 1]),
            "Bearer wrong-token-0123456789".to_string(),
        ] {
            assert!(!guarded.admits(Some(refused.as_bytes())), "{refused}");
        }
        assert!(!guarded.admits(None));
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        let short = [SecretString::from("short".to_string())];
        assert!(matches!(
            AdminTokens::new(&short),
            Err(AccessError::ShortKey { index: 0 })
        ));
        assert_eq!(format!("{:?}", tokens(&[A])), "AdminTokens(1 keys)");
    }

    #[test]
    fn loopback_is_told_from_the_rest() {
        for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "10.0.0.5", "admin.internal", ""] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    fn production() -> Settings {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut settings = configuration::load(&dir, Environment::Production).expect("config");
        settings.webhook.api_key = SecretString::from("a-webhook-key-of-our-own".to_string());
        settings
    }

    #[test]
    fn production_refuses_an_unprotected_admin_listener_beyond_loopback() {
        let settings = production();
        assert_eq!(settings.admin.host, "0.0.0.0", "config/production.yaml");
        assert!(matches!(
            refuse_in_production(&settings),
            Err(AccessError::UnprotectedAdmin { .. })
        ));
        let mut tokens = settings.clone();
        tokens.admin.api_keys = vec![SecretString::from(A.to_string())];
        assert!(refuse_in_production(&tokens).is_ok());
        let mut network = settings.clone();
        network.admin.allow_unauthenticated = true;
        assert!(refuse_in_production(&network).is_ok());
        let mut loopback = settings;
        loopback.admin.host = "127.0.0.1".into();
        assert!(refuse_in_production(&loopback).is_ok());
    }

    #[test]
    fn production_refuses_the_development_webhook_key() {
        let mut settings = production();
        settings.admin.allow_unauthenticated = true;
        for key in [
            WebhookSettings::DEVELOPMENT_API_KEY.to_string(),
            format!(" {}\n", WebhookSettings::DEVELOPMENT_API_KEY),
        ] {
            settings.webhook.api_key = SecretString::from(key);
            assert!(matches!(
                refuse_in_production(&settings),
                Err(AccessError::DevelopmentWebhookKey)
            ));
        }
    }
}
