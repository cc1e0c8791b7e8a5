//! Human names for authenticator AAGUIDs, from the list shipped in
//! `data/aaguids.json`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use uuid::Uuid;

use crate::domain::PasskeyName;

#[derive(Deserialize)]
struct ProviderList {
    providers: HashMap<Uuid, String>,
}

fn providers() -> &'static HashMap<Uuid, String> {
    static PROVIDERS: OnceLock<HashMap<Uuid, String>> = OnceLock::new();
    PROVIDERS.get_or_init(|| {
        // The file is part of the binary; a unit test keeps it parseable.
        serde_json::from_str::<ProviderList>(include_str!("../data/aaguids.json"))
            .map(|list| list.providers)
            .unwrap_or_default()
    })
}

/// The provider's name, or `None` for an unknown (or all-zero) AAGUID.
pub fn authenticator_name(aaguid: Uuid) -> Option<&'static str> {
    providers().get(&aaguid).map(String::as_str)
}

/// The name a passkey gets when nobody chose one: its authenticator's,
/// else "Passkey".
pub fn default_passkey_name(aaguid: Uuid) -> PasskeyName {
    authenticator_name(aaguid)
        .and_then(|n| PasskeyName::parse(n).ok())
        .unwrap_or_else(PasskeyName::generic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_list_parses() {
        let list: ProviderList =
            serde_json::from_str(include_str!("../data/aaguids.json")).expect("valid list");
        assert!(list.providers.len() >= 20);
    }

    #[test]
    fn known_and_unknown_aaguids() {
        let google = Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").expect("uuid");
        assert_eq!(authenticator_name(google), Some("Google Password Manager"));
        assert_eq!(authenticator_name(Uuid::nil()), None);
    }

    #[test]
    fn default_names() {
        assert_eq!(default_passkey_name(Uuid::nil()).as_str(), "Passkey");
        let google = Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").expect("uuid");
        assert_eq!(
            default_passkey_name(google).as_str(),
            "Google Password Manager"
        );
    }
}
