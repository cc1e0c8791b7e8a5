//! The configured event endpoints, checked at start-up: a clear error for
//! a bad URL, secret, type or a name used twice.

use std::collections::HashSet;
use std::str::FromStr;

use secrecy::ExposeSecret;
use url::Url;

use super::signature::SigningKey;
use super::EventKind;
use crate::configuration::EndpointSettings;

#[derive(Debug)]
pub struct Endpoint {
    /// Names the endpoint's queue, its metrics and its audit rows.
    pub name: String,
    pub url: Url,
    pub key: SigningKey,
    /// None: every type.
    pub types: Option<HashSet<EventKind>>,
}

/// Parses the endpoints; `production` refuses plain HTTP.
pub fn parse(settings: &[EndpointSettings], production: bool) -> Result<Vec<Endpoint>, String> {
    let mut names = HashSet::new();
    settings
        .iter()
        .enumerate()
        .map(|(index, endpoint)| {
            let at = format!("events.endpoints[{index}]");
            let url = endpoint.url.clone();
            match url.scheme() {
                "https" => {}
                "http" if !production => {}
                other => {
                    return Err(format!(
                        "{at}.url: {other}:// is not allowed; use https:// (http:// only outside production)"
                    ))
                }
            }
            let name = match &endpoint.name {
                Some(name) if !name.trim().is_empty() => name.trim().to_string(),
                _ => url
                    .host_str()
                    .map(|host| match url.port() {
                        Some(port) => format!("{host}:{port}"),
                        None => host.to_string(),
                    })
                    .ok_or_else(|| format!("{at}.url has no host"))?,
            };
            if name == super::NOTIFIER_ENDPOINT {
                return Err(format!("{at}: the name {name} is the recovery notifier's; choose another"));
            }
            if !names.insert(name.clone()) {
                return Err(format!("{at}: the name {name} is used twice; give each endpoint its own `name`"));
            }
            let key = SigningKey::parse(endpoint.secret.expose_secret())
                .map_err(|e| format!("{at}.secret: {e}"))?;
            let types = if endpoint.types.is_empty() {
                None
            } else {
                Some(
                    endpoint
                        .types
                        .iter()
                        .map(|t| {
                            EventKind::from_str(t)
                                .map_err(|_| format!("{at}.types: {t} is not an event type"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            };
            Ok(Endpoint {
                name,
                url,
                key,
                types,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn endpoint(url: &str, name: Option<&str>, types: &[&str]) -> EndpointSettings {
        EndpointSettings {
            name: name.map(str::to_string),
            url: Url::parse(url).expect("url"),
            secret: SecretString::from(SECRET.to_string()),
            types: types.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn names_default_to_the_host() {
        let parsed = parse(
            &[
                endpoint("https://hooks.example.com/p", None, &[]),
                endpoint("http://127.0.0.1:9000/", None, &["passkey.login"]),
            ],
            false,
        )
        .expect("valid");
        assert_eq!(parsed[0].name, "hooks.example.com");
        assert_eq!(parsed[1].name, "127.0.0.1:9000");
        assert_eq!(parsed[1].types, Some([EventKind::PasskeyLogin].into()));
    }

    #[test]
    fn bad_endpoints_are_refused_with_where_and_why() {
        let unknown = parse(
            &[endpoint("https://a.example/", None, &["passkey.made"])],
            false,
        );
        assert!(unknown
            .unwrap_err()
            .contains("events.endpoints[0].types: passkey.made"));
        let twice = parse(
            &[
                endpoint("https://a.example/1", None, &[]),
                endpoint("https://a.example/2", None, &[]),
            ],
            false,
        );
        assert!(twice.unwrap_err().contains("used twice"));
        let reserved = parse(
            &[endpoint(
                "https://a.example/",
                Some(crate::events::NOTIFIER_ENDPOINT),
                &[],
            )],
            false,
        );
        assert!(reserved.unwrap_err().contains("the recovery notifier's"));
        let plain = parse(&[endpoint("http://a.example/", None, &[])], true);
        assert!(plain.unwrap_err().contains("https://"));
        let mut bad_secret = endpoint("https://a.example/", None, &[]);
        bad_secret.secret = SecretString::from("hunter2".to_string());
        assert!(parse(&[bad_secret], false).unwrap_err().contains("secret"));
    }
}
