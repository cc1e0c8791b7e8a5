//! Marks the Kratos recovery flows this service creates to mint a session,
//! so that Kratos's after-recovery hooks can tell a passkey login from a
//! real account recovery.
//!
//! Kratos runs every `selfservice.flows.recovery.after` hook for the flows
//! the service redeems, and its hooks see only the flow and the identity. A
//! passkey login therefore submits, in the flow's `transient_payload`, an
//! HMAC of the flow id under a key derived from `ceremonies.keys` for this
//! use alone (`ceremony_keys`); Kratos hands it to the
//! after-recovery web hook (`ctx.flow.transient_payload`) without storing
//! it, and the hook endpoint checks it. Anyone may put something in a
//! transient payload, nobody without the keys can put the right thing, and
//! the mark of one flow is worthless for any other.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use uuid::Uuid;

use crate::ceremony_keys::{self, KeyError, Purpose};

type HmacSha256 = Hmac<Sha256>;

/// The `transient_payload` field the mark travels in.
pub const FIELD: &str = "kratos_passkeys_login";
/// What the MAC says: a recovery flow minted for a passkey login.
const LABEL: &[u8] = b"kratos-passkeys recovery flow minted for a passkey login\0";
/// Marks under the derived keys.
const PREFIX: &str = "v2.";
/// Marks made by releases that keyed the MAC with `ceremonies.keys`
/// themselves: still checked (never made), so that during a rolling deploy
/// a login minted by a replica of the previous release is not taken for a
/// recovery by an upgraded one. Drop once no such release runs.
const LEGACY_PREFIX: &str = "v1.";

/// Signs and checks marks. The first key signs, every key checks, as for
/// ceremonies, so rotating the keys never turns a login into a recovery.
pub struct LoginMarker {
    /// One keyed MAC per derived key, cloned for each mark.
    keys: Vec<HmacSha256>,
    /// The same, keyed with the configured keys (`LEGACY_PREFIX`).
    legacy_keys: Vec<HmacSha256>,
}

impl std::fmt::Debug for LoginMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoginMarker({} keys)", self.keys.len())
    }
}

impl LoginMarker {
    pub fn new(keys: &[SecretString], refuse_development_key: bool) -> Result<Self, KeyError> {
        let derived = ceremony_keys::derive(keys, refuse_development_key, Purpose::Marking)?;
        let configured = ceremony_keys::decode_keys(keys, refuse_development_key)?;
        Ok(Self {
            keys: keyed(derived.iter().map(|key| key.bytes()))?,
            legacy_keys: keyed(configured.iter())?,
        })
    }

    /// The mark of recovery flow `flow`.
    pub fn mark(&self, flow: Uuid) -> String {
        let tag = self
            .keys
            .first()
            .map(|key| mac(key, flow).finalize().into_bytes().to_vec())
            .unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether `mark` is this service's mark of `flow` (constant time).
    pub fn is_mark_of(&self, flow: Uuid, mark: &str) -> bool {
        let (keys, tag) = match (mark.strip_prefix(PREFIX), mark.strip_prefix(LEGACY_PREFIX)) {
            (Some(tag), _) => (&self.keys, tag),
            (None, Some(tag)) => (&self.legacy_keys, tag),
            (None, None) => return false,
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        keys.iter()
            .any(|key| mac(key, flow).verify_slice(&tag).is_ok())
    }
}

fn keyed<'k>(
    keys: impl Iterator<Item = &'k [u8; ceremony_keys::KEY_LEN]>,
) -> Result<Vec<HmacSha256>, KeyError> {
    keys.enumerate()
        .map(|(index, key)| {
            <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| KeyError::Invalid { index })
        })
        .collect()
}

fn mac(key: &HmacSha256, flow: Uuid) -> HmacSha256 {
    let mut mac = key.clone();
    mac.update(LABEL);
    mac.update(flow.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(keys: &[&str]) -> LoginMarker {
        let keys: Vec<SecretString> = keys.iter().map(|k| SecretString::from(*k)).collect();
        LoginMarker::new(&keys, false).expect("keys")
    }

    const A: &str = "ZGV2ZWxvcG1lbnQgb25seTogbm90IGEgc2VjcmV0ISE=";
    const B: &str = "YW5vdGhlciBrZXkgb2YgdGhpcnR5LXR3byBieXRlcyE=";

    #[test]
    fn a_mark_checks_for_its_flow_only() {
        let m = marker(&[A]);
        let flow = Uuid::new_v4();
        let mark = m.mark(flow);
        assert!(m.is_mark_of(flow, &mark));
        assert!(!m.is_mark_of(Uuid::new_v4(), &mark));
    }

    #[test]
    fn forged_or_altered_marks_do_not_check() {
        let m = marker(&[A]);
        let flow = Uuid::new_v4();
        let mark = m.mark(flow);
        for forged in [
            String::new(),
            PREFIX.to_string(),
            LEGACY_PREFIX.to_string(),
            "abc".to_string(),
            mark.replacen(PREFIX, "v3.", 1),
            mark.replacen(PREFIX, LEGACY_PREFIX, 1),
            // The last character changed (to one it is not already).
            format!(
                "{}{}",
                &mark[..mark.len() - 1],
                if mark.ends_with('A') { 'B' } else { 'A' }
            ),
            marker(&[B]).mark(flow),
        ] {
            assert!(!m.is_mark_of(flow, &forged), "{forged}");
        }
    }

    #[test]
    fn rotation_keeps_marks_of_the_previous_key() {
        let flow = Uuid::new_v4();
        let old = marker(&[A]).mark(flow);
        assert!(marker(&[B, A]).is_mark_of(flow, &old));
        assert!(!marker(&[B]).is_mark_of(flow, &old));
        let new = marker(&[B, A]).mark(flow);
        assert_eq!(new, marker(&[B]).mark(flow), "the first key marks");
        assert!(!marker(&[A]).is_mark_of(flow, &new));
    }

    /// The mark a release that keyed the MAC with the configured key made.
    fn legacy_mark(key: &str, flow: Uuid) -> String {
        let raw = ceremony_keys::decode_key(key).expect("key");
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&raw).expect("hmac");
        mac.update(LABEL);
        mac.update(flow.as_bytes());
        format!(
            "{LEGACY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn marks_are_made_under_the_derived_key_and_previous_marks_still_check() {
        let flow = Uuid::new_v4();
        let m = marker(&[B, A]);
        let legacy = legacy_mark(A, flow);
        // The MAC key is not the configured key: the same tag under the
        // new prefix does not check.
        assert!(!m.is_mark_of(flow, &legacy.replacen(LEGACY_PREFIX, PREFIX, 1)));
        assert_ne!(
            m.mark(flow),
            legacy_mark(B, flow).replacen(LEGACY_PREFIX, PREFIX, 1)
        );
        // Marks of the previous release check, with every key, for their
        // flow only.
        assert!(m.is_mark_of(flow, &legacy));
        assert!(m.is_mark_of(flow, &legacy_mark(B, flow)));
        assert!(!m.is_mark_of(Uuid::new_v4(), &legacy));
        assert!(!marker(&[B]).is_mark_of(flow, &legacy));
    }
}
