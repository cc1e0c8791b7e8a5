//! Domain types, built once at the edge so the rest of the code can trust them.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_newtype!(
    /// A Kratos identity id.
    IdentityId
);
uuid_newtype!(
    /// The id of a stored passkey (ours, not the WebAuthn credential id).
    PasskeyId
);
uuid_newtype!(
    /// The record of one passkey login (see `store::LoginUpdate`).
    LoginRecordId
);
uuid_newtype!(
    /// The random WebAuthn user handle of an identity: never the identity id
    /// or the email, so authenticators learn nothing about the account.
    UserHandle
);
uuid_newtype!(
    /// A Kratos session id.
    KratosSessionId
);

impl LoginRecordId {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }
}

/// A ceremony id as the client holds it: the ceremony's sealed state,
/// opaque to the client. Only its length is checked here; opening it is
/// `sealed_ceremony`'s job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CeremonyId(String);

impl CeremonyId {
    /// Far more than any sealed ceremony needs, so opening one stays cheap.
    pub const MAX_CHARS: usize = 8192;

    pub fn new(sealed: String) -> Self {
        Self(sealed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CeremonyId {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        if raw.is_empty() || raw.len() > Self::MAX_CHARS {
            return Err(format!(
                "ceremony_id must be 1 to {} characters",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(raw))
    }
}

impl From<CeremonyId> for String {
    fn from(id: CeremonyId) -> Self {
        id.0
    }
}

impl PasskeyId {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }
}

impl UserHandle {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }
}

/// A person-chosen passkey name: trimmed, 1 to 64 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PasskeyName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyNameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {max} characters")]
    TooLong { max: usize },
    #[error("the name contains control characters")]
    ControlCharacters,
}

impl PasskeyName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, PasskeyNameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PasskeyNameError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(PasskeyNameError::TooLong {
                max: Self::MAX_CHARS,
            });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(PasskeyNameError::ControlCharacters);
        }
        Ok(Self(trimmed.to_string()))
    }

    /// "Passkey": the name of a passkey from an unknown provider.
    pub fn generic() -> Self {
        Self("Passkey".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name to use when `self` is taken: "Passkey" becomes "Passkey 2",
    /// "Passkey 3", ... (cut so the suffix always fits).
    pub fn numbered(&self, n: u32) -> Self {
        let suffix = format!(" {n}");
        let room = Self::MAX_CHARS - suffix.chars().count();
        let base: String = self.0.chars().take(room).collect();
        Self(format!("{}{suffix}", base.trim_end()))
    }
}

impl fmt::Display for PasskeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the caller of a passkey login wants its Kratos session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionDelivery {
    /// A browser-type flow; Kratos's session cookie is relayed.
    #[default]
    Cookie,
    /// An API-type flow; the session token is in the body.
    Token,
}

impl SessionDelivery {
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionDelivery::Cookie => "cookie",
            SessionDelivery::Token => "token",
        }
    }
}

/// An identifier typed into a login form, normalised the way Kratos
/// normalises email identifiers (trimmed, lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginIdentifier(String);

impl LoginIdentifier {
    pub const MAX_CHARS: usize = 320;

    pub fn parse(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty()
            || trimmed.chars().count() > Self::MAX_CHARS
            || trimmed.chars().any(char::is_control)
        {
            return None;
        }
        Some(Self(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The names a WebAuthn credential carries for its person (`user.name`,
/// `user.displayName`), read from the Kratos identity's traits by the
/// configured paths (`email`, `name.first`); the name falls back to the
/// identity id, the display name to the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserDetails {
    pub name: String,
    pub display_name: String,
}

impl UserDetails {
    pub fn from_traits(
        identity: IdentityId,
        traits: &serde_json::Value,
        name_path: &str,
        display_name_path: &str,
    ) -> Self {
        let name = trait_string(traits, name_path).unwrap_or_else(|| identity.to_string());
        let display_name = trait_string(traits, display_name_path).unwrap_or_else(|| name.clone());
        Self { name, display_name }
    }
}

/// Reads a string trait by dot path.
fn trait_string(traits: &serde_json::Value, path: &str) -> Option<String> {
    path.split('.')
        .try_fold(traits, |value, key| value.get(key))
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_details_are_read_from_traits_by_path() {
        let id = IdentityId::new(Uuid::nil());
        let traits = serde_json::json!({"email": "a@example.com", "name": {"first": "Ada"}});
        let details = UserDetails::from_traits(id, &traits, "email", "name.first");
        assert_eq!(details.name, "a@example.com");
        assert_eq!(details.display_name, "Ada");
        let details = UserDetails::from_traits(id, &traits, "email", "name.last");
        assert_eq!(details.display_name, "a@example.com");
        let details = UserDetails::from_traits(id, &serde_json::json!({}), "email", "name");
        assert_eq!(details.name, id.to_string());
        assert_eq!(details.display_name, id.to_string());
    }

    #[test]
    fn names_are_trimmed() {
        assert_eq!(
            PasskeyName::parse("  Work laptop ").map(|n| n.to_string()),
            Ok("Work laptop".to_string())
        );
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(PasskeyName::parse(""), Err(PasskeyNameError::Empty));
        assert_eq!(PasskeyName::parse(" \t "), Err(PasskeyNameError::Empty));
    }

    #[test]
    fn long_names_are_refused_by_characters_not_bytes() {
        assert!(PasskeyName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(
            PasskeyName::parse(&"é".repeat(65)),
            Err(PasskeyNameError::TooLong { max: 64 })
        );
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            PasskeyName::parse("a\u{0}b"),
            Err(PasskeyNameError::ControlCharacters)
        );
        assert_eq!(
            PasskeyName::parse("line\nbreak"),
            Err(PasskeyNameError::ControlCharacters)
        );
    }

    #[test]
    fn numbered_names_fit() {
        let name = PasskeyName::parse(&"x".repeat(64)).expect("valid");
        let numbered = name.numbered(12);
        assert_eq!(numbered.as_str().chars().count(), 64);
        assert!(numbered.as_str().ends_with(" 12"));
        assert_eq!(
            PasskeyName::parse("Passkey")
                .expect("valid")
                .numbered(2)
                .as_str(),
            "Passkey 2"
        );
    }

    #[test]
    fn identifiers_are_normalised() {
        assert_eq!(
            LoginIdentifier::parse(" Ada@Example.COM ").map(|i| i.as_str().to_string()),
            Some("ada@example.com".to_string())
        );
        assert_eq!(LoginIdentifier::parse("  "), None);
    }
}
