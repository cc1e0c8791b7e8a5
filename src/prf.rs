//! The WebAuthn `prf` extension: a secret only the authenticator can
//! compute from a salt, which applications use for end-to-end encryption
//! keys. This service asks for it and hands out salts; it never receives
//! the outputs (a credential that carries them is refused, so a client that
//! forgot to strip them learns it at once and nothing is minted).
//!
//! Salts travel in the options as base64url, the form
//! `PublicKeyCredential.parseRequestOptionsFromJSON` takes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// A salt is at least one byte; 64 is plenty for a label or a random value
/// (the browser hashes it before the authenticator sees it).
pub const MAX_SALT_BYTES: usize = 64;
/// The per-passkey salts this service makes.
pub const STORED_SALT_BYTES: usize = 32;

/// Why the `prf` of a login's options request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrfInputError {
    #[error("prf.{field}: {reason}")]
    SaltInvalid { field: &'static str, reason: String },
    #[error("prf.by_credential needs an identifier: WebAuthn only evaluates per-credential salts for the listed credentials (allowCredentials)")]
    NeedsIdentifier,
    #[error("the prf extension is turned off (webauthn.prf: false)")]
    Disabled,
}

/// The `prf` of `POST /passkeys/login/options`, as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrfInputsRequest {
    /// Salts the application chose, for whichever passkey answers.
    #[serde(default)]
    eval: Option<PrfValuesRequest>,
    /// `true`: each of the identity's passkeys is asked with the salt this
    /// service keeps for it (`evalByCredential`); needs `identifier`.
    #[serde(default)]
    by_credential: bool,
}

/// One or two salts, base64url without padding.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrfValuesRequest {
    #[schema(min_length = 2, max_length = 86)]
    first: String,
    #[serde(default)]
    #[schema(min_length = 2, max_length = 86)]
    second: Option<String>,
}

/// A salt: 1 to `MAX_SALT_BYTES` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salt(Vec<u8>);

impl Salt {
    fn parse(field: &'static str, raw: &str) -> Result<Self, PrfInputError> {
        let invalid = |reason: String| PrfInputError::SaltInvalid { field, reason };
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| invalid("not base64url without padding".into()))?;
        if bytes.is_empty() || bytes.len() > MAX_SALT_BYTES {
            return Err(invalid(format!(
                "{} bytes; a salt has 1 to {MAX_SALT_BYTES}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }

    /// A new random salt for a passkey.
    pub fn generate() -> Vec<u8> {
        let mut salt = vec![0u8; STORED_SALT_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        salt
    }

    fn encoded(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrfValues {
    first: Salt,
    second: Option<Salt>,
}

impl PrfValues {
    fn to_json(&self) -> Value {
        let mut values = json!({ "first": self.first.encoded() });
        if let Some(second) = &self.second {
            values["second"] = Value::String(second.encoded());
        }
        values
    }
}

/// What a login asks the authenticator to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPrf {
    eval: Option<PrfValues>,
    by_credential: bool,
}

impl LoginPrf {
    /// `identified`: the request names an identity, so the options list its
    /// credentials (where `evalByCredential` can apply).
    pub fn parse(
        request: &PrfInputsRequest,
        identified: bool,
        enabled: bool,
    ) -> Result<Self, PrfInputError> {
        if !enabled {
            return Err(PrfInputError::Disabled);
        }
        if request.by_credential && !identified {
            return Err(PrfInputError::NeedsIdentifier);
        }
        let eval = request
            .eval
            .as_ref()
            .map(|values| {
                Ok::<_, PrfInputError>(PrfValues {
                    first: Salt::parse("eval.first", &values.first)?,
                    second: values
                        .second
                        .as_deref()
                        .map(|s| Salt::parse("eval.second", s))
                        .transpose()?,
                })
            })
            .transpose()?;
        if eval.is_none() && !request.by_credential {
            return Err(PrfInputError::SaltInvalid {
                field: "eval",
                reason: "missing: give eval.first, or by_credential: true".into(),
            });
        }
        Ok(Self {
            eval,
            by_credential: request.by_credential,
        })
    }

    pub fn by_credential(&self) -> bool {
        self.by_credential
    }

    /// Writes `extensions.prf` into request options. `stored` are the
    /// listed credentials' own salts (credential id, salt); passkeys
    /// without one (imported) fall back to `eval`, if given.
    pub fn write_into(&self, public_key: &mut Value, stored: &[(Vec<u8>, Vec<u8>)]) {
        let mut prf = Map::new();
        if let Some(eval) = &self.eval {
            prf.insert("eval".into(), eval.to_json());
        }
        if self.by_credential && !stored.is_empty() {
            let by_credential: Map<String, Value> = stored
                .iter()
                .map(|(id, salt)| {
                    (
                        URL_SAFE_NO_PAD.encode(id),
                        json!({ "first": URL_SAFE_NO_PAD.encode(salt) }),
                    )
                })
                .collect();
            prf.insert("evalByCredential".into(), Value::Object(by_credential));
        }
        set_extension(public_key, Value::Object(prf));
    }
}

/// Registration options ask whether the new credential can do PRF
/// (`clientExtensionResults.prf.enabled` answers).
pub fn ask_at_registration(public_key: &mut Value) {
    set_extension(public_key, json!({}));
}

fn set_extension(public_key: &mut Value, prf: Value) {
    let Some(options) = public_key.as_object_mut() else {
        return;
    };
    let extensions = options
        .entry("extensions")
        .or_insert_with(|| Value::Object(Map::new()));
    if !extensions.is_object() {
        *extensions = Value::Object(Map::new());
    }
    if let Some(extensions) = extensions.as_object_mut() {
        extensions.insert("prf".into(), prf);
    }
}

/// What a credential's (unsigned) client extension results say of PRF.
/// webauthn-rs does not know the extension and drops it, so it is read
/// from the JSON before webauthn-rs parses the credential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientPrf {
    /// `prf.enabled` at registration; `None` when the browser said nothing.
    pub enabled: Option<bool>,
    /// `prf.results` is there: outputs the service must never receive.
    pub outputs_present: bool,
}

impl ClientPrf {
    pub fn read(credential: &Value) -> Self {
        let prf = ["clientExtensionResults", "extensions"]
            .iter()
            .find_map(|key| credential.get(key)?.get("prf"));
        let Some(prf) = prf else {
            return Self::default();
        };
        Self {
            enabled: prf.get("enabled").and_then(Value::as_bool),
            outputs_present: prf.get("results").is_some_and(|r| !r.is_null()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> PrfInputsRequest {
        serde_json::from_value(value).expect("request")
    }

    #[test]
    fn salts_are_base64url_of_one_to_64_bytes() {
        let ok = LoginPrf::parse(
            &request(json!({"eval": {"first": "AQID", "second": "BAU"}})),
            false,
            true,
        )
        .expect("parses");
        let mut options = json!({"challenge": "x"});
        ok.write_into(&mut options, &[]);
        assert_eq!(
            options["extensions"]["prf"],
            json!({"eval": {"first": "AQID", "second": "BAU"}})
        );
        for (body, field) in [
            (json!({"eval": {"first": "not base64!"}}), "eval.first"),
            (json!({"eval": {"first": ""}}), "eval.first"),
            (json!({"eval": {"first": "AQID=="}}), "eval.first"),
            (
                json!({"eval": {"first": URL_SAFE_NO_PAD.encode([0u8; 65])}}),
                "eval.first",
            ),
            (
                json!({"eval": {"first": "AQ", "second": "%%"}}),
                "eval.second",
            ),
            (json!({}), "eval"),
        ] {
            match LoginPrf::parse(&request(body.clone()), true, true) {
                Err(PrfInputError::SaltInvalid { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let max = URL_SAFE_NO_PAD.encode([7u8; 64]);
        assert!(LoginPrf::parse(&request(json!({"eval": {"first": max}})), false, true).is_ok());
    }

    #[test]
    fn per_credential_salts_need_an_identifier_and_the_setting() {
        let body = request(json!({"by_credential": true}));
        assert_eq!(
            LoginPrf::parse(&body, false, true),
            Err(PrfInputError::NeedsIdentifier)
        );
        assert_eq!(
            LoginPrf::parse(&body, true, false),
            Err(PrfInputError::Disabled)
        );
        let prf = LoginPrf::parse(&body, true, true).expect("parses");
        let mut options = json!({"extensions": null});
        prf.write_into(&mut options, &[(vec![1, 2], vec![3; 32])]);
        assert_eq!(
            options["extensions"]["prf"]["evalByCredential"]["AQI"]["first"],
            URL_SAFE_NO_PAD.encode([3u8; 32])
        );
        // No listed credential with a salt: no evalByCredential, which
        // browsers refuse beside an empty allowCredentials.
        let mut options = json!({});
        prf.write_into(&mut options, &[]);
        assert_eq!(options["extensions"]["prf"], json!({}));
    }

    #[test]
    fn client_results_are_read_from_either_name() {
        let enabled =
            ClientPrf::read(&json!({"clientExtensionResults": {"prf": {"enabled": true}}}));
        assert_eq!(enabled.enabled, Some(true));
        assert!(!enabled.outputs_present);
        let outputs =
            ClientPrf::read(&json!({"extensions": {"prf": {"results": {"first": "AAAA"}}}}));
        assert!(outputs.outputs_present);
        assert_eq!(ClientPrf::read(&json!({})), ClientPrf::default());
    }
}
