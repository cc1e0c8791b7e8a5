//! The origins a ceremony may come from: the relying party's own
//! (`webauthn.origins`), related origins on other registrable domains
//! (`webauthn.related_origins`, listed at `/.well-known/webauthn` so browsers
//! let them use the RP id), and native Android apps
//! (`webauthn.android_apps`, derived by `association_files`, and the
//! deprecated `webauthn.app_origins`, `android:apk-key-hash:<base64url
//! SHA-256>`).
//!
//! Checked once at start-up, so a typo is a clear refusal to start rather
//! than logins that fail in some browsers.

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use url::Url;

use crate::configuration::WebauthnSettings;

/// Browsers must accept at least this many registrable-domain labels in
/// `/.well-known/webauthn`, and may ignore origins beyond them (WebAuthn
/// Level 3, §5.11.1): more would work in some browsers only.
pub const MAX_REGISTRABLE_LABELS: usize = 5;

const ANDROID_PREFIX: &str = "android:apk-key-hash:";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("webauthn.related_origins: {origin:?} is not a URL ({reason})")]
    NotAUrl { origin: String, reason: String },
    #[error("webauthn.related_origins: {origin:?} must be an https origin (scheme and host only)")]
    NotAnHttpsOrigin { origin: String },
    #[error("webauthn.related_origins: {origin:?} has no registrable domain, so browsers ignore it (an origin on the RP id's own host belongs in webauthn.origins)")]
    NoRegistrableDomain { origin: String },
    #[error("webauthn.related_origins name {count} registrable domains ({labels}); browsers only have to accept {MAX_REGISTRABLE_LABELS}")]
    TooManyRegistrableDomains { count: usize, labels: String },
    #[error("webauthn.app_origins: {origin:?} must be android:apk-key-hash: followed by the base64url SHA-256 of the app's signing certificate")]
    NotAnAppOrigin { origin: String },
    #[error("webauthn.origins: {origin:?} is not a web origin (an app's origin belongs in webauthn.app_origins)")]
    NotAWebOrigin { origin: String },
}

/// Every origin the WebAuthn policy accepts, by kind.
#[derive(Debug, Clone)]
pub struct AcceptedOrigins {
    pub own: Vec<Url>,
    pub related: Vec<Url>,
    pub apps: Vec<Url>,
}

impl AcceptedOrigins {
    pub fn parse(settings: &WebauthnSettings) -> Result<Self, OriginError> {
        let related = settings
            .related_origins
            .iter()
            .map(|origin| related_origin(origin))
            .collect::<Result<Vec<_>, _>>()?;
        check_label_count(&related)?;
        let apps = settings
            .app_origins
            .iter()
            .map(|origin| app_origin(origin))
            .collect::<Result<Vec<_>, _>>()?;
        // An opaque origin serializes as "null", which must never reach
        // the cookie allow-list (sandboxed frames send `Origin: null`).
        if let Some(url) = settings
            .origins
            .iter()
            .find(|url| !url.origin().is_tuple() || !matches!(url.scheme(), "http" | "https"))
        {
            return Err(OriginError::NotAWebOrigin {
                origin: url.to_string(),
            });
        }
        Ok(Self {
            own: settings.origins.clone(),
            related: related.into_iter().map(|(url, _)| url).collect(),
            apps,
        })
    }

    /// Adds app origins derived elsewhere (`webauthn.android_apps`, by
    /// `association_files`), once each beside `app_origins`.
    pub fn with_apps(mut self, apps: &[Url]) -> Self {
        for app in apps {
            if !self.apps.contains(app) {
                self.apps.push(app.clone());
            }
        }
        self
    }

    pub fn all(&self) -> impl Iterator<Item = &Url> {
        self.own.iter().chain(&self.related).chain(&self.apps)
    }

    /// The web origins (own and related), as browsers send them in `Origin`.
    pub fn web(&self) -> impl Iterator<Item = String> + '_ {
        self.own
            .iter()
            .chain(&self.related)
            .map(|url| url.origin().ascii_serialization())
    }

    /// What `/.well-known/webauthn` lists: the related origins.
    pub fn well_known(&self) -> Vec<String> {
        self.related
            .iter()
            .map(|url| url.origin().ascii_serialization())
            .collect()
    }
}

/// An https origin with a registrable domain, and that domain's label
/// (`example` for `login.example.co.uk`).
fn related_origin(origin: &str) -> Result<(Url, String), OriginError> {
    let url = Url::parse(origin).map_err(|e| OriginError::NotAUrl {
        origin: origin.to_string(),
        reason: e.to_string(),
    })?;
    let bare = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    let host = match url.host() {
        Some(url::Host::Domain(host)) if bare => host.to_string(),
        Some(_) if bare => {
            return Err(OriginError::NoRegistrableDomain {
                origin: origin.to_string(),
            })
        }
        _ => {
            return Err(OriginError::NotAnHttpsOrigin {
                origin: origin.to_string(),
            })
        }
    };
    let label = registrable_label(&host).ok_or_else(|| OriginError::NoRegistrableDomain {
        origin: origin.to_string(),
    })?;
    Ok((url, label))
}

fn registrable_label(host: &str) -> Option<String> {
    let suffix = psl::suffix(host.as_bytes())?;
    // An unknown suffix (`localhost`, `internal`) is not a registrable domain.
    if !suffix.is_known() {
        return None;
    }
    let domain = psl::domain_str(host)?;
    let suffix = std::str::from_utf8(suffix.as_bytes()).ok()?;
    let label = domain.strip_suffix(suffix)?.trim_end_matches('.');
    (!label.is_empty()).then(|| label.to_ascii_lowercase())
}

fn check_label_count(related: &[(Url, String)]) -> Result<(), OriginError> {
    let labels: BTreeSet<&str> = related.iter().map(|(_, label)| label.as_str()).collect();
    if labels.len() > MAX_REGISTRABLE_LABELS {
        return Err(OriginError::TooManyRegistrableDomains {
            count: labels.len(),
            labels: labels.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(())
}

fn app_origin(origin: &str) -> Result<Url, OriginError> {
    let invalid = || OriginError::NotAnAppOrigin {
        origin: origin.to_string(),
    };
    let hash = origin.strip_prefix(ANDROID_PREFIX).ok_or_else(invalid)?;
    match URL_SAFE_NO_PAD.decode(hash) {
        Ok(digest) if digest.len() == 32 => Url::parse(origin).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(related: &[&str], apps: &[&str]) -> WebauthnSettings {
        WebauthnSettings {
            related_origins: related.iter().map(|s| s.to_string()).collect(),
            app_origins: apps.iter().map(|s| s.to_string()).collect(),
            ..WebauthnSettings::for_tests()
        }
    }

    const APP: &str = "android:apk-key-hash:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";

    #[test]
    fn related_and_app_origins_are_accepted() {
        let origins = AcceptedOrigins::parse(&settings(
            &["https://shop.example.co.uk", "https://example.com/"],
            &[APP],
        ))
        .expect("valid");
        assert_eq!(
            origins.well_known(),
            ["https://shop.example.co.uk", "https://example.com"]
        );
        let all: Vec<String> = origins.all().map(Url::to_string).collect();
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(all.contains(&APP.to_string()), "{all:?}");
        // An app origin is not a web origin: never compared with `Origin`.
        assert!(origins.web().all(|o| o.starts_with("http")));
    }

    #[test]
    fn a_related_origin_that_is_not_a_url_is_refused() {
        let error = AcceptedOrigins::parse(&settings(&["shop example com"], &[])).unwrap_err();
        assert!(matches!(error, OriginError::NotAUrl { .. }), "{error}");
        assert!(error.to_string().contains("shop example com"));
    }

    #[test]
    fn a_related_origin_must_be_a_bare_https_origin() {
        for origin in [
            "http://shop.example.com",
            "https://shop.example.com/login",
            "https://shop.example.com/?a=1",
            "https://user@shop.example.com",
            "android:apk-key-hash:abc",
        ] {
            let error = AcceptedOrigins::parse(&settings(&[origin], &[])).unwrap_err();
            assert!(
                matches!(error, OriginError::NotAnHttpsOrigin { .. }),
                "{origin}: {error}"
            );
        }
    }

    #[test]
    fn a_related_origin_needs_a_registrable_domain() {
        for origin in [
            "https://localhost:8443",
            "https://10.0.0.1",
            "https://co.uk",
        ] {
            let error = AcceptedOrigins::parse(&settings(&[origin], &[])).unwrap_err();
            assert!(
                matches!(error, OriginError::NoRegistrableDomain { .. }),
                "{origin}: {error}"
            );
        }
    }

    #[test]
    fn at_most_five_registrable_domain_labels() {
        // example.com and example.co.uk share the label "example".
        let five = [
            "https://a.com",
            "https://b.com",
            "https://c.com",
            "https://d.com",
            "https://example.com",
            "https://example.co.uk",
            "https://www.a.com",
        ];
        AcceptedOrigins::parse(&settings(&five, &[])).expect("five labels");
        let mut six = five.to_vec();
        six.push("https://f.org");
        let error = AcceptedOrigins::parse(&settings(&six, &[])).unwrap_err();
        assert_eq!(
            error,
            OriginError::TooManyRegistrableDomains {
                count: 6,
                labels: "a, b, c, d, example, f".into()
            }
        );
    }

    #[test]
    fn own_origins_must_be_web_origins() {
        let mut settings = settings(&[], &[]);
        settings.origins = vec![Url::parse(APP).expect("url")];
        let error = AcceptedOrigins::parse(&settings).unwrap_err();
        assert!(
            matches!(error, OriginError::NotAWebOrigin { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("webauthn.app_origins"));
    }

    #[test]
    fn app_origins_must_carry_a_sha256() {
        for origin in [
            "android:apk-key-hash:",
            "android:apk-key-hash:not base64!",
            "android:apk-key-hash:AAAA",
            "ios:bundle-id:com.example.app",
            "https://example.com",
        ] {
            let error = AcceptedOrigins::parse(&settings(&[], &[origin])).unwrap_err();
            assert!(
                matches!(error, OriginError::NotAnAppOrigin { .. }),
                "{origin}: {error}"
            );
        }
    }
}
