//! Kratos's own passkey method as its self-service flows carry it: the
//! WebAuthn options in a flow's UI nodes, in the shape the software
//! authenticator takes, and the authenticator's answers to them.

use serde_json::{json, Value};
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredentialCreationOptions, RequestChallengeResponse,
    UserVerificationPolicy,
};

use crate::Authenticator;

/// The value of the flow's UI node named `name`.
pub fn node_value<'a>(flow: &'a Value, name: &str) -> Option<&'a str> {
    flow["ui"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["attributes"]["name"] == name)?["attributes"]["value"]
        .as_str()
}

/// A settings flow's passkey creation options (`passkey_create_data`).
pub fn creation_options(flow: &Value) -> Result<Value, String> {
    let raw = node_value(flow, "passkey_create_data")
        .ok_or("settings flow without passkey_create_data: is Kratos's passkey method enabled?")?;
    let options: Value =
        serde_json::from_str(raw).map_err(|e| format!("passkey_create_data is not JSON: {e}"))?;
    serde_json::from_value::<CreationChallengeResponse>(options.clone())
        .map_err(|e| format!("passkey_create_data is not WebAuthn creation options: {e}"))?;
    Ok(options)
}

/// A login flow's passkey request options (`passkey_challenge`, go-webauthn's
/// assertion options) in the shape webauthn-rs-proto reads: a discoverable
/// login omits `allowCredentials`, which webauthn-rs-proto requires.
pub fn request_options(flow: &Value) -> Result<Value, String> {
    let raw = node_value(flow, "passkey_challenge")
        .ok_or("login flow without passkey_challenge: is Kratos's passkey method enabled?")?;
    request_options_of(raw)
}

pub fn request_options_of(raw: &str) -> Result<Value, String> {
    let mut options: Value =
        serde_json::from_str(raw).map_err(|e| format!("passkey_challenge is not JSON: {e}"))?;
    let object = options
        .as_object_mut()
        .ok_or("passkey_challenge is not an object")?;
    object.remove("mediation");
    let public_key = object
        .get_mut("publicKey")
        .and_then(Value::as_object_mut)
        .ok_or("passkey_challenge has no publicKey")?;
    public_key
        .entry("allowCredentials")
        .or_insert_with(|| json!([]));
    public_key
        .entry("userVerification")
        .or_insert_with(|| json!("preferred"));
    serde_json::from_value::<RequestChallengeResponse>(options.clone())
        .map_err(|e| format!("passkey_challenge is not WebAuthn request options: {e}"))?;
    Ok(options)
}

impl Authenticator {
    /// A new passkey for Kratos's creation options. Kratos asks for a
    /// platform authenticator with user verification preferred; the
    /// software passkey refuses "platform", and verifies the user like
    /// every real passkey.
    pub fn register_for_kratos(&mut self, options: &Value, origin: &str) -> Value {
        self.register_with(
            options,
            origin,
            |o: &mut PublicKeyCredentialCreationOptions| {
                if let Some(selection) = o.authenticator_selection.as_mut() {
                    selection.authenticator_attachment = None;
                    selection.user_verification = UserVerificationPolicy::Required;
                }
            },
        )
    }

    /// An assertion for Kratos's request options, with user verification.
    pub fn login_for_kratos(&mut self, options: &Value, origin: &str) -> Value {
        self.login_with(options, origin, |o| {
            o.user_verification = UserVerificationPolicy::Required;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_values_are_found_by_name() {
        let flow = json!({"ui": {"nodes": [
            {"attributes": {"name": "csrf_token", "value": "abc"}},
            {"attributes": {"name": "passkey_challenge", "value": "{}"}}
        ]}});
        assert_eq!(node_value(&flow, "csrf_token"), Some("abc"));
        assert_eq!(node_value(&flow, "missing"), None);
    }
}
