//! Everything a request handler needs, shared by both listeners. Routes,
//! extractors and background tasks read it; it knows none of them.

use std::sync::Arc;

use anyhow::Context;

use crate::admin_access::AdminTokens;
use crate::association_files::AssociationFiles;
use crate::authenticator_policy::Authenticators;
use crate::clock::Clock;
use crate::configuration::{AttestationPreference, Environment, Settings};
use crate::events::{self, Endpoint, Events};
use crate::kratos::KratosClient;
use crate::limits::ClientAddresses;
use crate::login_hooks::LoginHooks;
use crate::login_limits::LoginLimits;
use crate::login_marker::LoginMarker;
use crate::login_records::{LoginRecorder, RecorderWorker};
use crate::metrics::Metrics;
use crate::recovery_hook::Notifier;
use crate::related_origins::AcceptedOrigins;
use crate::sealed_ceremony::CeremonySealer;
use crate::store::Store;
use crate::webauthn_policy::Policy;

pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<Clock>,
    pub store: Store,
    pub kratos: KratosClient,
    pub policy: Policy,
    pub sealer: CeremonySealer,
    /// Marks the recovery flows passkey logins redeem.
    pub marker: LoginMarker,
    /// Who may call the admin routes (`admin.api_keys`).
    pub admin_tokens: AdminTokens,
    pub notifier: Notifier,
    pub clients: ClientAddresses,
    pub login_limits: LoginLimits,
    /// Where tests step into a login (none in a running service).
    pub login_hooks: LoginHooks,
    pub login_records: LoginRecorder,
    /// Builds the events the store writes with each change.
    pub events: Events,
    /// Where events are delivered (the delivery worker's, parsed once).
    pub event_endpoints: Arc<Vec<Endpoint>>,
    /// The origins ceremonies may come from (`/.well-known/webauthn`).
    pub origins: AcceptedOrigins,
    /// The well-known files (passkey endpoints, iOS and Android association).
    pub association_files: AssociationFiles,
    /// Attestation, the MDS3 BLOB and the authenticator policy.
    pub authenticators: Authenticators,
    allowed_origins: Vec<String>,
    cors_origins: Vec<String>,
}

impl AppState {
    /// The state, and the worker that completes login records (to be
    /// spawned by whoever serves requests with this state).
    pub fn new(settings: Settings) -> anyhow::Result<(Self, RecorderWorker)> {
        let metrics = Arc::new(Metrics::new().context("registering metrics")?);
        let clock = Arc::new(Clock::default());
        let store = Store::connect_lazy(&settings.database, metrics.clone());
        let kratos = KratosClient::new(&settings.kratos, metrics.clone())
            .context("building the Kratos client")?;
        let association_files = AssociationFiles::build(&settings.webauthn)?;
        // The Android origins accepted at verify are those assetlinks.json grants.
        let origins = AcceptedOrigins::parse(&settings.webauthn)?
            .with_apps(association_files.android_origins());
        let policy = Policy::new(&settings.webauthn, &origins, metrics.clone())
            .map_err(|e| anyhow::anyhow!("invalid WebAuthn settings: {e}"))?;
        let authenticators = Authenticators::new(
            &settings.authenticators,
            settings.webauthn.attestation != AttestationPreference::None,
            &metrics,
        )?;
        let production = settings.environment == Environment::Production;
        let sealer = CeremonySealer::new(&settings.ceremonies.keys, production)?;
        let marker = LoginMarker::new(&settings.ceremonies.keys, production)?;
        let admin_tokens = AdminTokens::new(&settings.admin.api_keys)?;
        let notifier = Notifier::new(&settings.recovery_hook, settings.kratos.request_timeout)?;
        let event_endpoints = Arc::new(
            events::endpoints::parse(&settings.events.endpoints, production)
                .map_err(|e| anyhow::anyhow!("invalid event settings: {e}"))?,
        );
        let events = Events::new(&event_endpoints, settings.events.hold_for);
        let clients =
            ClientAddresses::new(&settings.http, &settings.limits).map_err(anyhow::Error::msg)?;
        let (login_records, worker) =
            LoginRecorder::new(store.clone(), kratos.clone(), metrics.clone());
        let cors_origins: Vec<String> = settings
            .cors
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .collect();
        let mut allowed_origins: Vec<String> = origins.web().collect();
        allowed_origins.extend(cors_origins.iter().cloned());
        let state = Self {
            login_limits: LoginLimits::new(&settings.limits, clock.clone()),
            login_hooks: LoginHooks::default(),
            settings,
            metrics,
            clock,
            store,
            kratos,
            policy,
            sealer,
            marker,
            admin_tokens,
            notifier,
            clients,
            login_records,
            events,
            event_endpoints,
            origins,
            association_files,
            authenticators,
            allowed_origins,
            cors_origins,
        };
        Ok((state, worker))
    }

    /// Origins allowed to make cookie-authenticated state changes: the
    /// WebAuthn origins and the CORS origins.
    pub fn is_allowed_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// Frontend origins that may call the public listener cross-origin.
    pub fn is_cors_origin(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == origin)
    }
}
