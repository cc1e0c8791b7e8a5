//! The configuration reference (`docs/src/configuration.md`) names every key
//! of the settings. The keys are not listed here by hand: they are read from
//! the settings struct itself, as serde sees it, while `config/base.yaml`
//! (plus a sample of the keys it only shows in comments) is deserialized
//! into it. A field added to `src/configuration.rs` fails this test until
//! the reference documents it.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde::Deserialize;
use serde_json::{json, Value};

use kratos_passkeys::configuration::{EndpointSettings, Settings};

const REFERENCE: &str = include_str!("../../docs/src/configuration.md");

/// Every key path serde was asked for: each struct's declared fields
/// (`fields` of `deserialize_struct`, so fields with a default and fields
/// absent from the input count too), a list's entries as `list[]`.
#[derive(Default)]
struct Keys(RefCell<BTreeSet<String>>);

/// Deserializes a JSON value like `serde_json::Value` does, recording the key
/// paths of every struct it passes through.
struct Recorder<'k> {
    value: Value,
    path: String,
    keys: &'k Keys,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.value.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut keys = self.keys.0.borrow_mut();
        keys.extend(fields.iter().map(|field| join(&self.path, field)));
        drop(keys);
        match self.value {
            Value::Object(map) => visitor.visit_map(Entries {
                entries: map.into_iter(),
                value: None,
                path: self.path,
                keys: self.keys,
            }),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Array(items) => visitor.visit_seq(Items {
                items: items.into_iter(),
                path: format!("{}[]", self.path),
                keys: self.keys,
            }),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.value.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct map identifier ignored_any
    }
}

struct Entries<'k> {
    entries: serde_json::map::IntoIter,
    value: Option<(String, Value)>,
    path: String,
    keys: &'k Keys,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                let parsed = seed.deserialize(Value::String(key.clone()))?;
                self.value = Some((key, value));
                Ok(Some(parsed))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value asked for before its key"))?;
        seed.deserialize(Recorder {
            value,
            path: join(&self.path, &key),
            keys: self.keys,
        })
    }
}

struct Items<'k> {
    items: std::vec::IntoIter<Value>,
    path: String,
    keys: &'k Keys,
}

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = serde_json::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Self::Error> {
        self.items
            .next()
            .map(|value| {
                seed.deserialize(Recorder {
                    value,
                    path: self.path.clone(),
                    keys: self.keys,
                })
            })
            .transpose()
    }
}

fn record<'de, T: Deserialize<'de>>(value: Value, path: &str, keys: &Keys) -> T {
    T::deserialize(Recorder {
        value,
        path: path.to_owned(),
        keys,
    })
    .unwrap_or_else(|error| panic!("the sample does not deserialize at `{path}`: {error}"))
}

/// `config/base.yaml`, with one entry in each list of structs and the keys
/// base.yaml shows only in comments, so that every struct is walked.
fn sample() -> (Value, Value) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/base.yaml");
    let mut value: Value = config::Config::builder()
        .add_source(config::File::from(base))
        .build()
        .and_then(|config| config.try_deserialize())
        .expect("config/base.yaml reads");
    value["webauthn"]["passkey_endpoints"] = json!({
        "enroll": "https://example.com/account/passkeys/new",
        "manage": "https://example.com/account/passkeys",
    });
    value["webauthn"]["android_apps"] = json!([{
        "package_name": "com.example.app",
        "sha256_cert_fingerprints": ["E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"],
    }]);
    let endpoints = json!([{
        "name": "mailer",
        "url": "https://events.example.com/",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "types": ["passkey.registered"],
    }]);
    value["authenticators"]["metadata"] = json!({
        "source": "file:///etc/kratos-passkeys/blob.jwt",
        "trust_root": "/etc/kratos-passkeys/mds-root.pem",
        "refresh_interval": "24h",
        "retry_interval": "1h",
    });
    value["authenticators"]["policy"]["min_certification"] = json!("FIDO_CERTIFIED_L1");
    value["events"]["endpoints"] = endpoints.clone();
    (value, endpoints)
}

/// Every key path of the settings, leaves only (`webauthn` is not one,
/// `webauthn.rp_id` is), and the sample they were read from.
fn settings_keys() -> (BTreeSet<String>, Value) {
    let keys = Keys::default();
    let (value, endpoints) = sample();
    let _: Settings = record(value.clone(), "", &keys);
    // `events.endpoints` is read through an untagged enum (a list, or one
    // JSON string), which buffers its input before serde sees the struct:
    // its entries are walked on their own.
    let _: Vec<EndpointSettings> = record(endpoints, "events.endpoints", &keys);
    let all = keys.0.into_inner();
    let leaves = all
        .iter()
        .filter(|key| {
            !all.iter().any(|other| {
                other.starts_with(&format!("{key}.")) || other.starts_with(&format!("{key}[]."))
            })
        })
        .cloned()
        .collect();
    (leaves, value)
}

/// Whether `path` (dots, `[]` for a list's first entry) names a key of `value`.
fn present(value: &Value, path: &str) -> bool {
    path.split('.')
        .try_fold(value, |value, part| {
            let (key, list) = match part.strip_suffix("[]") {
                Some(key) => (key, true),
                None => (part, false),
            };
            let child = value.get(key)?;
            if list {
                child.get(0)
            } else {
                Some(child)
            }
        })
        .is_some()
}

#[test]
fn the_configuration_reference_names_every_key_of_the_settings() {
    let (keys, _) = settings_keys();
    // A walk that saw nothing would pass below: make sure it saw the struct.
    for known in [
        "public.port",
        "webauthn.passkey_endpoints.enroll",
        "webauthn.android_apps[].package_name",
        "limits.login_per_ip.per_minute",
        "events.endpoints[].secret",
    ] {
        assert!(keys.contains(known), "the walk missed {known}: {keys:?}");
    }
    let missing: Vec<_> = keys
        .iter()
        .filter(|key| !REFERENCE.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/src/configuration.md does not name these settings (as `key`): {missing:?}"
    );
}

#[test]
fn every_key_of_the_settings_is_in_base_yaml_or_the_sample() {
    // What makes the walk above complete: a struct only shows its fields'
    // own fields when the input has it.
    let (keys, value) = settings_keys();
    let absent: Vec<_> = keys.iter().filter(|key| !present(&value, key)).collect();
    assert!(
        absent.is_empty(),
        "add these keys to config/base.yaml (or, if they are optional examples, \
         to the sample in tests/api/docs.rs): {absent:?}"
    );
}
