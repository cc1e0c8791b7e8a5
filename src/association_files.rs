//! The well-known files other software reads about this relying party:
//! `/.well-known/passkey-endpoints` (W3C "A Well-Known URL for Passkey
//! Endpoints": where password managers send people to enrol and manage
//! passkeys), `/.well-known/apple-app-site-association` (iOS
//! `webcredentials`) and `/.well-known/assetlinks.json` (Android
//! `get_login_creds`).
//!
//! Built once at start-up from `webauthn.passkey_endpoints`,
//! `webauthn.apple_app_ids` and `webauthn.android_apps`: a bad entry stops
//! start-up, and the routes and the `well-known` command serve the same
//! bytes. The Android apps' `android:apk-key-hash:` origins come from the
//! same entries, so what verify accepts and what `assetlinks.json` grants
//! cannot disagree.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Serialize, Serializer};
use url::Url;

use crate::configuration::{AndroidAppSettings, PasskeyEndpointSettings, WebauthnSettings};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssociationError {
    #[error("webauthn.passkey_endpoints.{key}: {url:?} must be an absolute https URL (http only for localhost)")]
    NotAnHttpsUrl { key: &'static str, url: String },
    #[error("webauthn.apple_app_ids: {id:?} must be TEAMID.bundle.id (a 10-character team id, a dot, a bundle id)")]
    NotAnAppleAppId { id: String },
    #[error("webauthn.android_apps: {package:?} is not an Android package name (dot-separated segments of letters, digits and _, each starting with a letter)")]
    NotAPackageName { package: String },
    #[error("webauthn.android_apps: {package:?} lists no sha256_cert_fingerprints")]
    NoFingerprint { package: String },
    #[error("webauthn.android_apps: {package:?} fingerprint {fingerprint:?} must be 32 hex bytes separated by colons (AA:BB:...)")]
    NotAFingerprint {
        package: String,
        fingerprint: String,
    },
}

/// Which file: the `well-known` command's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WellKnownFile {
    PasskeyEndpoints,
    AppleAppSiteAssociation,
    Assetlinks,
}

impl WellKnownFile {
    pub fn path(self) -> &'static str {
        match self {
            Self::PasskeyEndpoints => "/.well-known/passkey-endpoints",
            Self::AppleAppSiteAssociation => "/.well-known/apple-app-site-association",
            Self::Assetlinks => "/.well-known/assetlinks.json",
        }
    }
}

/// The files' bytes (none where nothing is configured) and the Android
/// origins derived from `android_apps`.
#[derive(Debug, Clone)]
pub struct AssociationFiles {
    passkey_endpoints: Option<Vec<u8>>,
    apple_app_site_association: Option<Vec<u8>>,
    assetlinks: Option<Vec<u8>>,
    android_origins: Vec<Url>,
}

impl AssociationFiles {
    pub fn build(settings: &WebauthnSettings) -> Result<Self, AssociationError> {
        let endpoints = PasskeyEndpoints::parse(&settings.passkey_endpoints)?;
        let apple = settings
            .apple_app_ids
            .iter()
            .map(|id| AppleAppId::parse(id))
            .collect::<Result<Vec<_>, _>>()?;
        let android = settings
            .android_apps
            .iter()
            .map(AndroidApp::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let android_origins = android
            .iter()
            .flat_map(|app| app.fingerprints.iter().map(Fingerprint::origin))
            .collect();
        Ok(Self {
            passkey_endpoints: (!endpoints.is_empty()).then(|| render(&endpoints)),
            apple_app_site_association: (!apple.is_empty()).then(|| {
                render(&AppleAppSiteAssociation {
                    webcredentials: Apps { apps: apple },
                })
            }),
            assetlinks: (!android.is_empty()).then(|| render(&assetlinks(&android))),
            android_origins,
        })
    }

    /// The file's bytes, or none when it is not configured.
    pub fn get(&self, file: WellKnownFile) -> Option<&[u8]> {
        match file {
            WellKnownFile::PasskeyEndpoints => self.passkey_endpoints.as_deref(),
            WellKnownFile::AppleAppSiteAssociation => self.apple_app_site_association.as_deref(),
            WellKnownFile::Assetlinks => self.assetlinks.as_deref(),
        }
    }

    /// `android:apk-key-hash:<base64url SHA-256>` for every fingerprint in
    /// `assetlinks.json`.
    pub fn android_origins(&self) -> &[Url] {
        &self.android_origins
    }
}

/// Pretty JSON and a final newline: what the documentation shows and the command
/// prints. Serializing these plain structs cannot fail.
fn render(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[derive(Debug, Serialize)]
struct PasskeyEndpoints {
    #[serde(skip_serializing_if = "Option::is_none")]
    enroll: Option<Url>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manage: Option<Url>,
}

impl PasskeyEndpoints {
    fn parse(settings: &PasskeyEndpointSettings) -> Result<Self, AssociationError> {
        Ok(Self {
            enroll: endpoint("enroll", settings.enroll.as_deref())?,
            manage: endpoint("manage", settings.manage.as_deref())?,
        })
    }

    fn is_empty(&self) -> bool {
        self.enroll.is_none() && self.manage.is_none()
    }
}

fn endpoint(key: &'static str, url: Option<&str>) -> Result<Option<Url>, AssociationError> {
    let Some(raw) = url else { return Ok(None) };
    let invalid = || AssociationError::NotAnHttpsUrl {
        key,
        url: raw.to_string(),
    };
    let url = Url::parse(raw).map_err(|_| invalid())?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let secure = url.scheme() == "https" || (url.scheme() == "http" && local);
    if !secure || url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid());
    }
    Ok(Some(url))
}

#[derive(Debug, Serialize)]
struct AppleAppSiteAssociation {
    webcredentials: Apps,
}

#[derive(Debug, Serialize)]
struct Apps {
    apps: Vec<AppleAppId>,
}

/// `TEAMID.bundle.id`: Apple's 10-character team id and a bundle id.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
struct AppleAppId(String);

impl AppleAppId {
    fn parse(id: &str) -> Result<Self, AssociationError> {
        let invalid = || AssociationError::NotAnAppleAppId { id: id.to_string() };
        let (team, bundle) = id.split_once('.').ok_or_else(invalid)?;
        let team_ok = team.len() == 10
            && team
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        let bundle_ok = !bundle.is_empty()
            && bundle.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if team_ok && bundle_ok {
            Ok(Self(id.to_string()))
        } else {
            Err(invalid())
        }
    }
}

#[derive(Debug)]
struct AndroidApp {
    package: String,
    fingerprints: Vec<Fingerprint>,
}

impl AndroidApp {
    fn parse(settings: &AndroidAppSettings) -> Result<Self, AssociationError> {
        let package = settings.package_name.clone();
        if !is_package_name(&package) {
            return Err(AssociationError::NotAPackageName { package });
        }
        if settings.sha256_cert_fingerprints.is_empty() {
            return Err(AssociationError::NoFingerprint { package });
        }
        let fingerprints = settings
            .sha256_cert_fingerprints
            .iter()
            .map(|fingerprint| {
                Fingerprint::parse(fingerprint).ok_or_else(|| AssociationError::NotAFingerprint {
                    package: package.clone(),
                    fingerprint: fingerprint.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            package,
            fingerprints,
        })
    }
}

/// Android's rule: at least two segments, each a letter then letters,
/// digits or underscores.
fn is_package_name(name: &str) -> bool {
    let segments: Vec<&str> = name.split('.').collect();
    segments.len() >= 2
        && segments.iter().all(|segment| {
            let mut chars = segment.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The SHA-256 of an app's signing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// `AA:BB:...` (either case), as `keytool` and the Play Console print it.
    fn parse(text: &str) -> Option<Self> {
        let bytes = text
            .split(':')
            .map(|pair| {
                (pair.len() == 2)
                    .then(|| u8::from_str_radix(pair, 16).ok())
                    .flatten()
            })
            .collect::<Option<Vec<u8>>>()?;
        bytes.try_into().ok().map(Self)
    }

    /// The origin Android gives this app's WebAuthn calls.
    fn origin(&self) -> Url {
        let origin = format!("android:apk-key-hash:{}", URL_SAFE_NO_PAD.encode(self.0));
        // A scheme and an opaque path of base64url characters always parse.
        Url::parse(&origin).unwrap_or_else(|_| unreachable!("{origin}"))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&hex.join(":"))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Serialize)]
struct Statement<'a> {
    relation: [&'static str; 1],
    target: Target<'a>,
}

#[derive(Debug, Serialize)]
struct Target<'a> {
    namespace: &'static str,
    package_name: &'a str,
    sha256_cert_fingerprints: &'a [Fingerprint],
}

/// Only `get_login_creds`: that is what passkeys need. `handle_all_urls`
/// (App Links) would also hand the site's links to the app, a decision
/// about navigation that is not this service's to make.
fn assetlinks(apps: &[AndroidApp]) -> Vec<Statement<'_>> {
    apps.iter()
        .map(|app| Statement {
            relation: ["delegate_permission/common.get_login_creds"],
            target: Target {
                namespace: "android_app",
                package_name: &app.package,
                sha256_cert_fingerprints: &app.fingerprints,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55";

    fn settings() -> WebauthnSettings {
        WebauthnSettings::for_tests()
    }

    #[test]
    fn nothing_configured_serves_nothing() {
        let files = AssociationFiles::build(&settings()).expect("valid");
        for file in [
            WellKnownFile::PasskeyEndpoints,
            WellKnownFile::AppleAppSiteAssociation,
            WellKnownFile::Assetlinks,
        ] {
            assert!(files.get(file).is_none(), "{file:?}");
        }
        assert!(files.android_origins().is_empty());
    }

    #[test]
    fn the_android_origin_is_the_fingerprint_in_base64url() {
        let mut settings = settings();
        settings.android_apps = vec![AndroidAppSettings {
            package_name: "com.example.app".into(),
            sha256_cert_fingerprints: vec![FINGERPRINT.to_lowercase()],
        }];
        let files = AssociationFiles::build(&settings).expect("valid");
        assert_eq!(
            files.android_origins()[0].as_str(),
            "android:apk-key-hash:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        let body = String::from_utf8(
            files
                .get(WellKnownFile::Assetlinks)
                .expect("served")
                .to_vec(),
        )
        .expect("utf-8");
        assert!(body.contains(FINGERPRINT), "{body}");
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        for id in [
            "ABCDE12345",
            "abcde12345.com.example",
            "ABC.com.example",
            "ABCDE12345.",
        ] {
            let error = AppleAppId::parse(id).unwrap_err();
            assert!(error.to_string().contains(id), "{error}");
        }
        for package in ["app", "com..example", "1com.example", "com.exa-mple"] {
            assert!(!is_package_name(package), "{package}");
        }
        for fingerprint in [
            "",
            "AA:BB",
            &FINGERPRINT.replace(':', ""),
            &format!("{FINGERPRINT}:00"),
        ] {
            assert!(Fingerprint::parse(fingerprint).is_none(), "{fingerprint}");
        }
        for url in [
            "http://example.com/passkeys",
            "/passkeys",
            "ftp://example.com",
        ] {
            assert!(endpoint("enroll", Some(url)).is_err(), "{url}");
        }
        assert!(endpoint("enroll", Some("http://localhost:8080/passkeys")).is_ok());
    }
}
