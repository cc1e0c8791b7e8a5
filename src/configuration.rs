//! Layered configuration: `config/base.yaml`, then `config/<environment>.yaml`,
//! then `KRATOS_PASSKEYS__SECTION__KEY` environment variables.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub public: ListenerSettings,
    pub admin: AdminSettings,
    pub database: DatabaseSettings,
    pub kratos: KratosSettings,
    pub webauthn: WebauthnSettings,
    pub ceremonies: CeremonySettings,
    pub sessions: SessionSettings,
    pub identity: IdentitySettings,
    pub webhook: WebhookSettings,
    pub recovery_hook: RecoveryHookSettings,
    pub enrollment: EnrollmentSettings,
    pub http: HttpSettings,
    pub cors: CorsSettings,
    pub limits: LimitSettings,
    pub gc: GcSettings,
    pub events: EventSettings,
    /// Absent from older configuration files: tracing stays off.
    #[serde(default)]
    pub tracing: TracingSettings,
    /// Which authenticators may hold passkeys (attestation, metadata, policy).
    #[serde(default)]
    pub authenticators: crate::authenticator_policy::AuthenticatorSettings,
    /// Which environment file was layered in (not read from the files).
    #[serde(skip)]
    pub environment: Environment,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListenerSettings {
    pub host: String,
    pub port: u16,
}

impl ListenerSettings {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The admin listener, and who may call it.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    pub host: String,
    pub port: u16,
    /// Bearer tokens (`Authorization: Bearer <key>`), any one of which
    /// opens every admin route but the health probes and Kratos's web hooks
    /// (those carry `webhook.api_key`). Empty: no token is asked for.
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    /// Production refuses to serve the admin listener beyond loopback
    /// without `api_keys`, unless this says the network alone keeps it
    /// private (as Kratos's own admin API is kept).
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

impl AdminSettings {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub pool_size: u32,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    pub run_migrations_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KratosSettings {
    /// Kratos's public API as this service reaches it.
    pub public_url: Url,
    /// Kratos's public API as browsers reach it (used in redirects).
    pub browser_url: Url,
    pub admin_url: Url,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub session_cookie_name: String,
    /// Kratos's `session.whoami.required_aal`, mirrored: with
    /// `highest_available` (Kratos's default) every passkey login asks
    /// Kratos at once whether the minted session still needs a second
    /// factor, and says where to finish it.
    pub whoami_required_aal: RequiredAal,
}

/// Kratos's `featureRequiredAal` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequiredAal {
    /// A first factor is enough: nobody is ever asked for a second one.
    Aal1,
    /// Whoever has a second factor set up must present it.
    HighestAvailable,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebauthnSettings {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<Url>,
    #[serde(with = "humantime_serde")]
    pub ceremony_ttl: Duration,
    /// Web origins on other registrable domains that use this RP id,
    /// served at `/.well-known/webauthn` (checked by `related_origins`).
    #[serde(default)]
    pub related_origins: Vec<String>,
    /// Native Android apps: `android:apk-key-hash:<base64url SHA-256>`.
    /// Deprecated in favour of `android_apps`, which also fills
    /// `assetlinks.json`; both are accepted at verify.
    #[serde(default)]
    pub app_origins: Vec<String>,
    /// Where password managers send people to enrol and manage passkeys,
    /// served at `/.well-known/passkey-endpoints`.
    #[serde(default)]
    pub passkey_endpoints: PasskeyEndpointSettings,
    /// iOS apps (`TEAMID.bundle.id`) in `apple-app-site-association`.
    #[serde(default)]
    pub apple_app_ids: Vec<String>,
    /// Android apps in `assetlinks.json`; their origins are accepted at verify.
    #[serde(default)]
    pub android_apps: Vec<AndroidAppSettings>,
    #[serde(default)]
    pub user_verification: UserVerification,
    #[serde(default)]
    pub resident_key: ResidentKey,
    #[serde(default)]
    pub attachment: Attachment,
    /// WebAuthn `hints`, most preferred first.
    #[serde(default)]
    pub hints: Vec<Hint>,
    /// Ask new passkeys whether they can evaluate the WebAuthn `prf`
    /// extension, and accept PRF salts in login options.
    #[serde(default = "enabled")]
    pub prf: bool,
    /// The attestation registration asks for: `none` (the default),
    /// `direct` or `enterprise`; the latter two are verified against the
    /// FIDO metadata (`authenticators.metadata`).
    #[serde(default)]
    pub attestation: AttestationPreference,
}

fn enabled() -> bool {
    true
}

/// WebAuthn's attestation conveyance preference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationPreference {
    #[default]
    None,
    Direct,
    Enterprise,
}

impl AttestationPreference {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Direct => "direct",
            Self::Enterprise => "enterprise",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PasskeyEndpointSettings {
    pub enroll: Option<String>,
    pub manage: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AndroidAppSettings {
    pub package_name: String,
    /// SHA-256 of the signing certificates, `AA:BB:...`.
    pub sha256_cert_fingerprints: Vec<String>,
}

/// Whether the authenticator must verify the person (PIN, biometrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerification {
    #[default]
    Required,
    Preferred,
}

/// Whether a new passkey must be discoverable (usernameless and autofill
/// login need it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidentKey {
    #[default]
    Required,
    Preferred,
}

/// Which kind of authenticator may hold new passkeys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attachment {
    #[default]
    Any,
    Platform,
    CrossPlatform,
}

/// A WebAuthn Level 3 hint for the browser's UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hint {
    SecurityKey,
    ClientDevice,
    Hybrid,
}

#[cfg(test)]
impl WebauthnSettings {
    /// The tests' relying party with every policy default.
    pub fn for_tests() -> Self {
        Self {
            rp_id: "localhost".into(),
            rp_name: "test".into(),
            origins: vec![Url::parse("http://localhost:8080").expect("url")],
            ceremony_ttl: Duration::from_secs(300),
            related_origins: Vec::new(),
            app_origins: Vec::new(),
            passkey_endpoints: PasskeyEndpointSettings::default(),
            apple_app_ids: Vec::new(),
            android_apps: Vec::new(),
            user_verification: UserVerification::default(),
            resident_key: ResidentKey::default(),
            attachment: Attachment::default(),
            hints: Vec::new(),
            prf: true,
            attestation: AttestationPreference::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CeremonySettings {
    /// Keys (32 bytes, base64) that seal ceremony state into ceremony ids:
    /// the first seals, every one opens, so a key can be rotated in
    /// without breaking the ceremonies in flight. Replicas share them.
    pub keys: Vec<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    #[serde(with = "humantime_serde")]
    pub privileged_session_max_age: Duration,
    pub refresh_return_to: Url,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdentitySettings {
    pub name_trait: String,
    pub display_name_trait: String,
    /// Mirrors Kratos's `selfservice.methods.code.passwordless_enabled`
    /// (its configuration cannot be read through its API): whether a
    /// one-time code to the identity's address is a way in, so its last
    /// passkey may be removed.
    #[serde(default)]
    pub kratos_code_login: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub header: String,
    pub api_key: SecretString,
}

impl WebhookSettings {
    /// The key in `config/base.yaml` and the development scripts, refused in
    /// production.
    pub const DEVELOPMENT_API_KEY: &'static str = "dev-webhook-key-0123456789";
}

/// What `POST /hooks/kratos/after-recovery` does for a real recovery (one
/// this service did not create to sign someone in with a passkey).
#[derive(Debug, Clone, Deserialize)]
pub struct RecoveryHookSettings {
    /// Receives the hook body's `notify` object, as the team's own
    /// after-recovery web hook did; none: nothing is forwarded.
    #[serde(default)]
    pub notifier_url: Option<Url>,
    /// A header sent with it (for example `Authorization`); empty: none.
    #[serde(default)]
    pub notifier_auth_header: String,
    #[serde(default = "empty_secret")]
    pub notifier_auth_value: SecretString,
    /// Revokes the person's other Kratos sessions, as Kratos's
    /// `revoke_active_sessions` hook would.
    pub revoke_other_sessions: bool,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnrollmentSettings {
    pub offer_existing_identities: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    /// The reverse proxies (CIDRs or addresses) whose forwarded headers
    /// name the client; empty: clients connect directly and forwarded
    /// headers are ignored. Parsed at start-up (`limits::ClientAddresses`).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Which forwarded header the trusted proxies write: `X-Forwarded-For`
    /// (empty means it too) or `Forwarded` (RFC 7239). Only that one is read.
    #[serde(default)]
    pub client_ip_header: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateSettings {
    pub burst: u32,
    pub per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    /// `POST /passkeys/login/options` and `/verify` together, per client IP.
    pub login_per_ip: RateSettings,
    /// IPv6 clients share a per-address limit with their network of this
    /// prefix length (one subscriber usually holds a whole /64).
    #[serde(default = "default_ipv6_prefix_length")]
    pub ipv6_prefix_length: u8,
    /// Failed passkey logins per client IP: past it, that address's logins
    /// are refused before they are verified.
    pub failed_logins_per_ip: RateSettings,
    /// Failed passkey logins per identity: past it, failures answer 429.
    /// Never applied to a correctly signed assertion.
    pub failed_logins_per_identity: RateSettings,
    /// Kratos admin identity searches for identifier logins, all clients
    /// together: past it, an identifier login starts as a discoverable one.
    pub identifier_lookups: RateSettings,
    /// How long an identifier's search result is reused.
    #[serde(with = "humantime_serde")]
    pub identifier_cache_ttl: Duration,
    /// Passkeys one identity may register: past it, registration answers
    /// 409. Bounds what one stolen or scripted session can store, and the
    /// `allowCredentials` list every identifier login sends.
    #[serde(default)]
    pub passkeys_per_identity: PasskeysPerIdentity,
}

/// How many passkeys one identity may register; at least one, so a
/// misconfiguration cannot shut registration off without saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct PasskeysPerIdentity(NonZeroU32);

impl Default for PasskeysPerIdentity {
    fn default() -> Self {
        const FIFTY: NonZeroU32 = match NonZeroU32::new(50) {
            Some(n) => n,
            None => panic!("fifty is not zero"),
        };
        Self(FIFTY)
    }
}

impl PasskeysPerIdentity {
    pub fn new(limit: NonZeroU32) -> Self {
        Self(limit)
    }

    pub fn get(self) -> i64 {
        i64::from(self.0.get())
    }

    /// Whether an identity holding `held` passkeys may add one more.
    pub fn admits_one_more(self, held: i64) -> bool {
        held < self.get()
    }
}

fn default_ipv6_prefix_length() -> u8 {
    64
}

#[derive(Debug, Clone, Deserialize)]
pub struct GcSettings {
    /// How often the single-use marks of expired ceremonies are purged in
    /// the background.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long past its expiry a used ceremony's mark is kept, by the
    /// database's clock: the database clock step (a failover to a host
    /// whose clock is behind) that single use tolerates.
    #[serde(with = "humantime_serde")]
    pub used_ceremony_margin: Duration,
    /// How long a settled login record (which passkey minted which Kratos
    /// session) is kept, from its login, by the database's clock. After it,
    /// `GET /admin/sessions/{id}` no longer names the passkey: keep it
    /// longer than Kratos's `session.lifespan`.
    #[serde(with = "humantime_serde")]
    pub login_record_retention: Duration,
}

/// The outbox of events and their delivery (see `src/events/`).
#[derive(Debug, Clone, Deserialize)]
pub struct EventSettings {
    /// Where events are delivered, signed per Standard Webhooks. A YAML
    /// list, or the same list as JSON in one environment variable
    /// (`KRATOS_PASSKEYS__EVENTS__ENDPOINTS`), since each carries a secret.
    #[serde(deserialize_with = "list_or_json")]
    pub endpoints: Vec<EndpointSettings>,
    /// One delivery attempt, connection included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The pause after the first failed attempt; it doubles with each
    /// failure up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub first_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// An event still undelivered this long after it happened is given up
    /// (`failed`), and the identity's next events go out.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Delivered (or given up) events stay for the audit this long, then
    /// are purged.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often each replica looks for due deliveries (events written by
    /// this replica go out at once).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Deliveries claimed at once (each a different identity or endpoint).
    pub batch_size: u32,
    /// A login event waits this long at most for its Kratos session id
    /// (learnt after the answer); then it goes out without it
    /// (`kratos_session_id: null`), so a process that died cannot hold
    /// back its identity's later events.
    #[serde(with = "humantime_serde")]
    pub hold_for: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// Names the endpoint in metrics and the audit; defaults to the URL's
    /// host. Changing it starts the endpoint's queue afresh.
    #[serde(default)]
    pub name: Option<String>,
    pub url: Url,
    /// `whsec_` and the base64 of 24 to 64 random bytes.
    pub secret: SecretString,
    /// Event types sent to it; empty: all.
    #[serde(default)]
    pub types: Vec<String>,
}

fn list_or_json<'de, D>(deserializer: D) -> Result<Vec<EndpointSettings>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrJson {
        List(Vec<EndpointSettings>),
        Json(String),
    }
    match ListOrJson::deserialize(deserializer)? {
        ListOrJson::List(list) => Ok(list),
        ListOrJson::Json(raw) if raw.trim().is_empty() => Ok(Vec::new()),
        ListOrJson::Json(raw) => serde_json::from_str(&raw).map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
}

/// OpenTelemetry tracing: the spans of each request, exported over
/// OTLP/HTTP (protobuf) to a collector, Jaeger or any OTLP receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TracingSettings {
    /// Off: nothing is exported (log lines still carry a trace id, the
    /// caller's `traceparent` one when it sends one).
    pub enabled: bool,
    /// The receiver's base URL (OTLP/HTTP, usually port 4318); spans are
    /// posted to `<otlp_endpoint>/v1/traces`.
    pub otlp_endpoint: Url,
    /// `service.name` of every span.
    pub service_name: String,
    /// The share of traces this service starts that are recorded. A
    /// caller's `traceparent` decides for the traces it started.
    pub sampling_ratio: SamplingRatio,
}

impl TracingSettings {
    /// Where the OTLP exporter posts spans.
    pub fn traces_url(&self) -> Url {
        let mut url = self.otlp_endpoint.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}/v1/traces"));
        url
    }
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            otlp_endpoint: Url::parse("http://127.0.0.1:4318/").expect("a valid URL"),
            service_name: "kratos-passkeys".into(),
            sampling_ratio: SamplingRatio(1.0),
        }
    }
}

/// A probability: from 0 (none) to 1 (every trace).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct SamplingRatio(f64);

impl SamplingRatio {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for SamplingRatio {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!(
                "tracing.sampling_ratio must be between 0 and 1, not {value}"
            ))
        }
    }
}

/// Which `config/<environment>.yaml` layers over the base file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    #[default]
    Local,
    Production,
}

impl Environment {
    pub fn as_str(&self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Production => "production",
        }
    }
}

impl TryFrom<String> for Environment {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.to_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "production" => Ok(Self::Production),
            other => Err(format!(
                "{other} is not a supported environment; use `local` or `production`"
            )),
        }
    }
}

/// Loads the layered configuration from `dir`.
pub fn load(dir: &Path, environment: Environment) -> Result<Settings, config::ConfigError> {
    config::Config::builder()
        .add_source(config::File::from(dir.join("base.yaml")))
        .add_source(
            config::File::from(dir.join(format!("{}.yaml", environment.as_str()))).required(false),
        )
        .add_source(
            config::Environment::with_prefix("KRATOS_PASSKEYS")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("webauthn.origins")
                .with_list_parse_key("cors.allowed_origins")
                .with_list_parse_key("ceremonies.keys")
                .with_list_parse_key("admin.api_keys")
                .with_list_parse_key("http.trusted_proxies")
                .try_parsing(true),
        )
        .build()?
        .try_deserialize()
        .map(|settings| Settings {
            environment,
            ..settings
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn config_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    #[test]
    fn tracing_is_off_by_default_and_refuses_a_ratio_past_one() {
        let settings = load(&config_dir(), Environment::Local).expect("config loads");
        assert!(!settings.tracing.enabled);
        assert_eq!(
            settings.tracing.traces_url().as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
        let behind_a_path = TracingSettings {
            otlp_endpoint: Url::parse("https://collector.example/otlp").expect("url"),
            ..TracingSettings::default()
        };
        assert_eq!(
            behind_a_path.traces_url().as_str(),
            "https://collector.example/otlp/v1/traces"
        );
        assert!(SamplingRatio::try_from(1.5).is_err());
        assert!(SamplingRatio::try_from(-0.1).is_err());
        assert_eq!(
            SamplingRatio::try_from(0.25).map(SamplingRatio::get),
            Ok(0.25)
        );
    }

    #[test]
    fn base_configuration_loads() {
        let settings = load(&config_dir(), Environment::Local).expect("config loads");
        assert_eq!(settings.public.port, 8080);
        assert_eq!(
            settings.sessions.privileged_session_max_age,
            Duration::from_secs(15 * 60)
        );
        assert_eq!(settings.webauthn.ceremony_ttl, Duration::from_secs(300));
        assert!(!settings.database.url.expose_secret().is_empty());
    }

    #[test]
    fn the_shipped_webhook_key_is_the_development_one() {
        let settings = load(&config_dir(), Environment::Local).expect("config loads");
        assert_eq!(
            settings.webhook.api_key.expose_secret(),
            WebhookSettings::DEVELOPMENT_API_KEY
        );
        assert!(settings.admin.api_keys.is_empty());
        assert!(!settings.admin.allow_unauthenticated);
    }

    #[test]
    fn secrets_do_not_print() {
        let settings = load(&config_dir(), Environment::Local).expect("config loads");
        let printed = format!("{settings:?}");
        assert!(!printed.contains(settings.webhook.api_key.expose_secret()));
        assert!(!printed.contains(settings.database.url.expose_secret()));
        assert!(!printed.contains(settings.ceremonies.keys[0].expose_secret()));
        let with_notifier_key = Settings {
            recovery_hook: RecoveryHookSettings {
                notifier_auth_value: SecretString::from("Bearer notifier-secret-42".to_string()),
                ..settings.recovery_hook.clone()
            },
            ..settings
        };
        assert!(!format!("{with_notifier_key:?}").contains("notifier-secret-42"));
        let with_admin_key = Settings {
            admin: AdminSettings {
                api_keys: vec![SecretString::from("admin-token-secret-42".to_string())],
                ..with_notifier_key.admin.clone()
            },
            ..with_notifier_key
        };
        assert!(!format!("{with_admin_key:?}").contains("admin-token-secret-42"));
    }

    #[test]
    fn event_endpoints_come_from_yaml_or_one_json_variable() {
        let yaml = r#"
endpoints:
  - url: https://hooks.example.com/passkeys
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    types: [passkey.registered]
request_timeout: 10s
first_backoff: 5s
max_backoff: 1h
give_up_after: 72h
retention: 30d
poll_interval: 1s
batch_size: 32
hold_for: 10s
"#;
        let from_yaml: EventSettings = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("yaml");
        assert_eq!(from_yaml.endpoints.len(), 1);
        assert_eq!(from_yaml.endpoints[0].types, ["passkey.registered"]);
        let json = r#"[{"name":"mailer","url":"https://mailer.internal/events","secret":"whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]"#;
        let from_json: EventSettings = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .set_override("endpoints", json)
            .and_then(|b| b.build())
            .and_then(|c| c.try_deserialize())
            .expect("json");
        assert_eq!(from_json.endpoints[0].name.as_deref(), Some("mailer"));
        assert!(!format!("{from_json:?}").contains("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"));
    }

    #[test]
    fn unknown_environment_is_refused() {
        assert!(Environment::try_from("staging".to_string()).is_err());
        assert_eq!(
            Environment::try_from("Production".to_string()),
            Ok(Environment::Production)
        );
    }
}
