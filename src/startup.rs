//! Builds the application from settings and binds its two listeners: the
//! public one (browsers and apps) and the admin one (internal network only),
//! like Kratos. Tests bind both on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::{web, App, HttpRequest, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::configuration::Settings;
use crate::error::ApiError;
use crate::kratos::KratosClient;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::routes;
use crate::store::Store;
use crate::webauthn_policy::Policy;

/// Everything a request handler needs, shared by both listeners.
pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub kratos: KratosClient,
    pub policy: Policy,
    pub login_limiter: RateLimiter,
    pub failure_limiter: RateLimiter,
    allowed_origins: Vec<String>,
    cors_origins: Vec<String>,
}

impl AppState {
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new().context("registering metrics")?);
        let store = Store::connect_lazy(&settings.database, metrics.clone());
        let kratos = KratosClient::new(&settings.kratos, metrics.clone())
            .context("building the Kratos client")?;
        let policy = Policy::new(&settings.webauthn, metrics.clone())
            .map_err(|e| anyhow::anyhow!("invalid WebAuthn settings: {e}"))?;
        let cors_origins: Vec<String> = settings
            .cors
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .collect();
        let mut allowed_origins: Vec<String> = settings
            .webauthn
            .origins
            .iter()
            .map(|o| o.origin().ascii_serialization())
            .collect();
        allowed_origins.extend(cors_origins.iter().cloned());
        Ok(Self {
            login_limiter: RateLimiter::new(&settings.limits.login_per_ip),
            failure_limiter: RateLimiter::new(&settings.limits.failed_logins_per_identity),
            settings,
            metrics,
            store,
            kratos,
            policy,
            allowed_origins,
            cors_origins,
        })
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

pub struct Application {
    public_port: u16,
    admin_port: u16,
    public: Server,
    admin: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Binds the listeners named in `settings` (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let public = TcpListener::bind(settings.public.address()).with_context(|| {
            format!("binding the public listener {}", settings.public.address())
        })?;
        let admin = TcpListener::bind(settings.admin.address())
            .with_context(|| format!("binding the admin listener {}", settings.admin.address()))?;
        let state = web::Data::new(AppState::new(settings)?);
        if state.settings.database.run_migrations_on_start {
            let applied = state
                .store
                .migrate()
                .await
                .context("applying database migrations")?;
            if !applied.is_empty() {
                tracing::info!(?applied, "applied migrations");
            }
        }
        crate::gc::spawn_background(state.clone());
        Self::with_listeners(state, public, admin)
    }

    fn with_listeners(
        state: web::Data<AppState>,
        public: TcpListener,
        admin: TcpListener,
    ) -> anyhow::Result<Self> {
        let public_port = public.local_addr()?.port();
        let admin_port = admin.local_addr()?.port();
        let limit = state.settings.http.max_body_bytes;

        let public_state = state.clone();
        let public_server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(crate::cors::cors))
                .wrap(TracingLogger::default())
                .app_data(public_state.clone())
                .app_data(json_config(limit))
                .app_data(path_config())
                .configure(routes::public)
                .default_service(web::to(routes::not_found))
        })
        .listen(public)?
        .run();

        let admin_state = state.clone();
        let admin_server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(admin_state.clone())
                .app_data(json_config(limit))
                .app_data(path_config())
                .configure(routes::admin)
                .default_service(web::to(routes::not_found))
        })
        .listen(admin)?
        .run();

        Ok(Self {
            public_port,
            admin_port,
            public: public_server,
            admin: admin_server,
            state,
        })
    }

    pub fn public_port(&self) -> u16 {
        self.public_port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }

    /// Serves until either listener stops (SIGINT/SIGTERM stop both).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (public, admin) = futures_util::future::join(self.public, self.admin).await;
        public.and(admin)
    }
}

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .error_handler(|error, _req: &HttpRequest| json_error(error).into())
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::BodyTooLarge { limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => ApiError::MalformedRequest(e.to_string()),
        other => ApiError::MalformedRequest(other.to_string()),
    }
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_error: PathError, _req| ApiError::NotFound.into())
}
