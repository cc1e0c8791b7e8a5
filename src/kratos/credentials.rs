//! Kratos's admin API for identities' credentials: reading them page by
//! page, and writing passkey credentials with a JSON patch. Only the
//! migration commands use these; the credential formats themselves are
//! read in `crate::migration::kratos_format`.

use std::collections::BTreeMap;

use reqwest::header::{ACCEPT, LINK};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::{decode, unexpected, KratosClient, KratosError};
use crate::domain::IdentityId;

/// The credential types that can hold passkeys.
const PASSKEY_TYPES: [&str; 2] = ["passkey", "webauthn"];

/// Whether a credential of this type can hold passkeys.
pub fn holds_passkeys(kind: &str) -> bool {
    PASSKEY_TYPES.contains(&kind)
}

/// An identity with its passkey credentials' configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct IdentityCredentials {
    pub id: IdentityId,
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Credential {
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Absent unless asked for with `include_credential`.
    #[serde(default)]
    pub config: Option<Value>,
}

/// The credential types that can be a first factor in Kratos.
const FIRST_FACTOR_TYPES: [&str; 5] = ["password", "oidc", "passkey", "webauthn", "code"];

/// The first factors an identity has in Kratos. A credential's presence is
/// not enough: Kratos (v1.3.1 and later) creates empty `webauthn` and
/// `code` credentials for every identity, so each is judged by its content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FirstFactors {
    pub password: bool,
    pub oidc: bool,
    /// Passwordless WebAuthn or passkey credentials kept by Kratos itself.
    pub kratos_passkeys: bool,
    /// An address a one-time `code` login can be sent to (whether Kratos
    /// lets it sign in is its configuration, not the identity's).
    pub code_address: bool,
}

impl FirstFactors {
    fn of(credentials: &BTreeMap<String, Credential>) -> Self {
        let config = |kind: &str| credentials.get(kind).and_then(|c| c.config.as_ref());
        let non_empty = |value: Option<&Value>| match value {
            Some(Value::Array(items)) => !items.is_empty(),
            Some(Value::Object(map)) => !map.is_empty(),
            Some(Value::String(s)) => !s.is_empty(),
            _ => false,
        };
        let password = config("password")
            .map(|c| {
                non_empty(c.get("hashed_password"))
                    || non_empty(c.get("use_password_migration_hook"))
            })
            .unwrap_or(false);
        let oidc = config("oidc")
            .map(|c| non_empty(c.get("providers")))
            .unwrap_or(false);
        // `webauthn` credentials are a second factor unless passwordless.
        let passwordless = |c: &Value| {
            c.get("credentials")
                .and_then(Value::as_array)
                .is_some_and(|all| {
                    all.iter().any(|one| {
                        one.get("is_passwordless").and_then(Value::as_bool) == Some(true)
                    })
                })
        };
        let kratos_passkeys = config("passkey").is_some_and(|c| non_empty(c.get("credentials")))
            || config("webauthn").is_some_and(passwordless);
        let code_address = credentials.get("code").is_some_and(|c| {
            !c.identifiers.is_empty()
                || c.config
                    .as_ref()
                    .is_some_and(|c| non_empty(c.get("addresses")))
        });
        Self {
            password,
            oidc,
            kratos_passkeys,
            code_address,
        }
    }

    /// Whether the identity can still sign in without this service's
    /// passkeys; `code_login` mirrors Kratos's
    /// `selfservice.methods.code.passwordless_enabled`.
    pub fn any(&self, code_login: bool) -> bool {
        self.password || self.oidc || self.kratos_passkeys || (code_login && self.code_address)
    }
}

/// One page of identities, and the token of the next when there is one.
pub struct IdentityPage {
    pub identities: Vec<IdentityCredentials>,
    pub next_page_token: Option<String>,
}

impl KratosClient {
    /// `GET /admin/identities` with the passkey credentials' configuration,
    /// keyset-paginated (`page_token`, `page_size`; Kratos names the next
    /// page in its `Link` header).
    pub async fn identities_with_passkeys(
        &self,
        page_token: Option<&str>,
        page_size: u32,
    ) -> Result<IdentityPage, KratosError> {
        const OP: &str = "list_identities";
        let _timer = self.metrics.kratos_timer(OP);
        let mut url = self.admin("admin/identities");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("page_size", &page_size.to_string());
            if let Some(token) = page_token {
                query.append_pair("page_token", token);
            }
            for kind in PASSKEY_TYPES {
                query.append_pair("include_credential", kind);
            }
        }
        let response = self.admin_get(OP, url).await?;
        match response.status() {
            StatusCode::OK => {
                let next_page_token = response
                    .headers()
                    .get_all(LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_page_token);
                let identities = response.json().await.map_err(decode(OP))?;
                Ok(IdentityPage {
                    identities,
                    next_page_token,
                })
            }
            status => Err(unexpected(OP, status, response).await),
        }
    }

    /// `GET /admin/identities/{id}` with the passkey credentials'
    /// configuration; `None` when Kratos has no such identity.
    pub async fn identity_with_passkeys(
        &self,
        id: IdentityId,
    ) -> Result<Option<IdentityCredentials>, KratosError> {
        let mut url = self.admin(&format!("admin/identities/{id}"));
        for kind in PASSKEY_TYPES {
            url.query_pairs_mut()
                .append_pair("include_credential", kind);
        }
        self.admin_get_optional("get_identity_credentials", url)
            .await
    }

    /// `GET /admin/identities/{id}` with every first-factor credential's
    /// configuration: what, besides passkeys kept here, the identity can
    /// sign in with. `None` when Kratos has no such identity.
    pub async fn first_factors(&self, id: IdentityId) -> Result<Option<FirstFactors>, KratosError> {
        let mut url = self.admin(&format!("admin/identities/{id}"));
        for kind in FIRST_FACTOR_TYPES {
            url.query_pairs_mut()
                .append_pair("include_credential", kind);
        }
        let identity: Option<IdentityCredentials> = self
            .admin_get_optional("get_identity_first_factors", url)
            .await?;
        Ok(identity.map(|identity| FirstFactors::of(&identity.credentials)))
    }

    /// `PATCH /admin/identities/{id}` with a JSON patch (RFC 6902).
    pub async fn patch_identity(&self, id: IdentityId, patch: &Value) -> Result<(), KratosError> {
        const OP: &str = "patch_identity";
        let _timer = self.metrics.kratos_timer(OP);
        let request = self
            .http
            .patch(self.admin(&format!("admin/identities/{id}")))
            .header(ACCEPT, "application/json")
            .json(patch);
        let response = self.send(OP, request).await?;
        match response.status() {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(KratosError::IdentityNotFound),
            status => Err(unexpected(OP, status, response).await),
        }
    }

    /// The release Kratos reports on `GET /admin/version`.
    pub async fn version(&self) -> Result<String, KratosError> {
        const OP: &str = "version";
        #[derive(Deserialize)]
        struct Version {
            version: String,
        }
        let _timer = self.metrics.kratos_timer(OP);
        let response = self.admin_get(OP, self.admin("admin/version")).await?;
        match response.status() {
            StatusCode::OK => Ok(response
                .json::<Version>()
                .await
                .map_err(decode(OP))?
                .version),
            status => Err(unexpected(OP, status, response).await),
        }
    }
}

/// The `page_token` of a `Link` header's `rel="next"` entry.
pub(super) fn next_page_token(link: &str) -> Option<String> {
    link.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        if !params.split(';').any(|p| p.trim() == "rel=\"next\"") {
            return None;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        let url = url::Url::parse(target)
            .or_else(|_| url::Url::parse("http://kratos.invalid").and_then(|b| b.join(target)))
            .ok()?;
        url.query_pairs()
            .find(|(k, _)| k == "page_token")
            .map(|(_, v)| v.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factors(credentials: Value) -> FirstFactors {
        let credentials: BTreeMap<String, Credential> =
            serde_json::from_value(credentials).expect("credentials");
        FirstFactors::of(&credentials)
    }

    #[test]
    fn empty_credentials_kratos_creates_are_no_first_factor() {
        // v1.3.1 creates these for an identity made without a password.
        let found = factors(serde_json::json!({
            "code": {"type": "code", "identifiers": [], "config": {"addresses": []}},
            "webauthn": {"type": "webauthn", "identifiers": ["a@example.com"], "config": {"user_handle": "kq8g"}},
            "passkey": {"type": "passkey", "identifiers": [], "config": {"credentials": null}},
            "oidc": {"type": "oidc", "identifiers": [], "config": {"providers": []}},
        }));
        assert_eq!(found, FirstFactors::default());
        assert!(!found.any(true));
    }

    #[test]
    fn each_first_factor_counts() {
        let password =
            factors(serde_json::json!({"password": {"config": {"hashed_password": "$2a$04$x"}}}));
        assert!(password.any(false));
        let oidc = factors(
            serde_json::json!({"oidc": {"config": {"providers": [{"provider": "google", "subject": "1"}]}}}),
        );
        assert!(oidc.any(false));
        let second_factor = serde_json::json!({"webauthn": {"config": {"credentials": [{"id": "x", "is_passwordless": false}]}}});
        assert!(!factors(second_factor).any(true));
        let passwordless = serde_json::json!({"webauthn": {"config": {"credentials": [{"id": "x", "is_passwordless": true}]}}});
        assert!(factors(passwordless).any(false));
        let passkey = serde_json::json!({"passkey": {"config": {"credentials": [{"id": "x"}]}}});
        assert!(factors(passkey).any(false));
        let code = factors(
            serde_json::json!({"code": {"identifiers": ["a@example.com"], "config": {"addresses": [{"address": "a@example.com", "channel": "email"}]}}}),
        );
        assert!(!code.any(false));
        assert!(code.any(true));
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let link = "</admin/identities?page_size=2&page_token=00000000-0000-0000-0000-000000000000>; rel=\"first\",</admin/identities?page_size=2&page_token=0b0a4c39-2a1c-4e3c-bb4d-6cb8c05a4b7e>; rel=\"next\"";
        assert_eq!(
            next_page_token(link).as_deref(),
            Some("0b0a4c39-2a1c-4e3c-bb4d-6cb8c05a4b7e")
        );
        let last = "</admin/identities?page_size=2&page_token=00000000-0000-0000-0000-000000000000>; rel=\"first\"";
        assert_eq!(next_page_token(last), None);
        let absolute =
            "<http://127.0.0.1:4434/admin/identities?page_token=abc&page_size=2>; rel=\"next\"";
        assert_eq!(next_page_token(absolute).as_deref(), Some("abc"));
    }
}
