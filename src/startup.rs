//! Builds the application from settings and binds its two listeners: the
//! public one (browsers and apps) and the admin one (internal network only),
//! like Kratos. Tests bind both on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, App, HttpRequest, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::admin_access;
use crate::configuration::{Environment, Settings};
use crate::error::ApiError;
use crate::events::delivery::{self, DeliveryWorker};
use crate::routes;
use crate::state::AppState;

pub struct Application {
    public_port: u16,
    admin_port: u16,
    public: Server,
    admin: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Binds the listeners named in `settings` (port 0 picks a free one).
    /// Production refuses development keys and an admin listener beyond
    /// loopback that nothing protects, before anything listens.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.environment == Environment::Production {
            admin_access::refuse_in_production(&settings)?;
        }
        let public = TcpListener::bind(settings.public.address()).with_context(|| {
            format!("binding the public listener {}", settings.public.address())
        })?;
        let admin = TcpListener::bind(settings.admin.address())
            .with_context(|| format!("binding the admin listener {}", settings.admin.address()))?;
        let (state, login_records) = AppState::new(settings)?;
        let state = web::Data::new(state);
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
        crate::metadata::refresh::load_at_start(&state).await?;
        crate::metadata::refresh::spawn_background(state.clone());
        crate::gc::spawn_background(state.clone());
        login_records.spawn();
        let configured = delivery::configured(&state.event_endpoints, &state.notifier);
        delivery::abandon_unconfigured(
            state.store.clone(),
            configured.clone(),
            state.metrics.clone(),
        );
        if !configured.is_empty() {
            // A pool of its own: a delivery round holds its connection
            // while it sends.
            let store = state.store.dedicated(&state.settings.database, 1);
            DeliveryWorker::new(
                store,
                state.event_endpoints.clone(),
                state.notifier.clone(),
                &state.settings.events,
                state.metrics.clone(),
            )?
            .spawn();
        }
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
                .wrap(actix_web::middleware::from_fn(routes::admin_token))
                .wrap(TracingLogger::default())
                .app_data(admin_state.clone())
                .app_data(json_config(limit))
                .app_data(path_config())
                .app_data(query_config())
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

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error: QueryPayloadError, _req| {
        ApiError::MalformedRequest(error.to_string()).into()
    })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_error: PathError, _req| ApiError::NotFound.into())
}
