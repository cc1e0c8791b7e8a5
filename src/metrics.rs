//! Prometheus metrics, served as text on the admin listener's `/metrics`.
//! One registry per application, so tests that run several apps in one
//! process never share counters.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets from 0.5 ms to 10 s: WebAuthn and Postgres sit at the
/// low end, Kratos calls in the middle, timeouts at the top.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    ceremonies: IntCounterVec,
    kratos_duration: HistogramVec,
    store_duration: HistogramVec,
    webauthn_duration: HistogramVec,
    sessions_minted: IntCounterVec,
    rate_limited: IntCounterVec,
    login_records: IntCounterVec,
    recovery_hooks: IntCounterVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    event_deliveries: IntCounterVec,
    events_undelivered: IntGauge,
    events_oldest_undelivered: prometheus::Gauge,
}

#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Started,
    Finished,
    Failed(&'static str),
}

impl Metrics {
    /// Registers a module's own collectors (the metadata's) in this
    /// application's registry.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("kratos_passkeys".into()), None)?;
        let ceremonies = IntCounterVec::new(
            Opts::new(
                "ceremonies_total",
                "WebAuthn ceremonies by kind (registration, login) and outcome (started, finished, failed), with the error id of failures",
            ),
            &["kind", "outcome", "error_id"],
        )?;
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
                &["operation"],
            )
        };
        let kratos_duration = histogram(
            "kratos_request_duration_seconds",
            "Duration of calls to Kratos by operation",
        )?;
        let store_duration = histogram(
            "store_duration_seconds",
            "Duration of store operations by name, including the wait for a pooled connection",
        )?;
        let webauthn_duration = histogram(
            "webauthn_duration_seconds",
            "Duration of WebAuthn verification by operation",
        )?;
        let sessions_minted = IntCounterVec::new(
            Opts::new(
                "sessions_minted_total",
                "Kratos sessions minted after a passkey login",
            ),
            &["delivery"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new("rate_limited_total", "Requests refused with 429, by limit"),
            &["limit"],
        )?;
        let login_records = IntCounterVec::new(
            Opts::new(
                "login_records_total",
                "Login records completed after the answer: resolved (session id known), unresolved (it never will be), dropped (queue full)",
            ),
            &["outcome"],
        )?;
        let recovery_hooks = IntCounterVec::new(
            Opts::new(
                "recovery_hook_total",
                "Kratos after-recovery hook calls and what followed: passkey_login (left alone), recovery (a real one), notified / notify_failed (forwarded to the notifier or given up), sessions_revoked (sessions signed out)",
            ),
            &["outcome"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Postgres pool connections by state"),
            &["state"],
        )?;
        let pool_max = IntGauge::new("db_pool_max_connections", "Postgres pool size")?;
        let event_deliveries = IntCounterVec::new(
            Opts::new(
                "event_deliveries_total",
                "Event delivery attempts by endpoint and outcome: delivered, retry (failed, will try again), gave_up; and abandoned (the endpoint was removed, counted at start-up)",
            ),
            &["endpoint", "outcome"],
        )?;
        let events_undelivered = IntGauge::new(
            "events_undelivered",
            "Event deliveries not yet made (the backlog), all endpoints",
        )?;
        let events_oldest_undelivered = prometheus::Gauge::new(
            "events_oldest_undelivered_age_seconds",
            "Age of the oldest event not yet delivered everywhere; 0 when none",
        )?;
        // Known label values start at 0: an alert's increase() then sees the
        // first refusal or failure, and dashboards show the series before it.
        for limit in [
            "login_per_ip",
            "failed_logins_per_ip",
            "failed_logins_per_identity",
            "identifier_lookups",
        ] {
            rate_limited.with_label_values(&[limit]);
        }
        for outcome in [
            "passkey_login",
            "recovery",
            "notified",
            "notify_failed",
            "sessions_revoked",
        ] {
            recovery_hooks.with_label_values(&[outcome]);
        }
        for outcome in ["resolved", "unresolved", "dropped"] {
            login_records.with_label_values(&[outcome]);
        }
        registry.register(Box::new(ceremonies.clone()))?;
        registry.register(Box::new(kratos_duration.clone()))?;
        registry.register(Box::new(store_duration.clone()))?;
        registry.register(Box::new(webauthn_duration.clone()))?;
        registry.register(Box::new(sessions_minted.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(login_records.clone()))?;
        registry.register(Box::new(recovery_hooks.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(event_deliveries.clone()))?;
        registry.register(Box::new(events_undelivered.clone()))?;
        registry.register(Box::new(events_oldest_undelivered.clone()))?;
        Ok(Self {
            registry,
            ceremonies,
            kratos_duration,
            store_duration,
            webauthn_duration,
            sessions_minted,
            rate_limited,
            login_records,
            recovery_hooks,
            pool_connections,
            pool_max,
            event_deliveries,
            events_undelivered,
            events_oldest_undelivered,
        })
    }

    pub fn ceremony(&self, kind: &str, outcome: Outcome) {
        let (outcome, error_id) = match outcome {
            Outcome::Started => ("started", ""),
            Outcome::Finished => ("finished", ""),
            Outcome::Failed(id) => ("failed", id),
        };
        self.ceremonies
            .with_label_values(&[kind, outcome, error_id])
            .inc();
    }

    pub fn kratos_timer(&self, operation: &str) -> prometheus::HistogramTimer {
        self.kratos_duration
            .with_label_values(&[operation])
            .start_timer()
    }

    pub fn store_timer(&self, operation: &str) -> prometheus::HistogramTimer {
        self.store_duration
            .with_label_values(&[operation])
            .start_timer()
    }

    pub fn webauthn_timer(&self, operation: &str) -> prometheus::HistogramTimer {
        self.webauthn_duration
            .with_label_values(&[operation])
            .start_timer()
    }

    pub fn session_minted(&self, delivery: &str) {
        self.sessions_minted.with_label_values(&[delivery]).inc();
    }

    pub fn login_record(&self, outcome: &str) {
        self.login_records.with_label_values(&[outcome]).inc();
    }

    pub fn recovery_hook(&self, outcome: &str, by: u64) {
        self.recovery_hooks.with_label_values(&[outcome]).inc_by(by);
    }

    pub fn event_delivery(&self, endpoint: &str, outcome: &str) {
        self.event_deliveries
            .with_label_values(&[endpoint, outcome])
            .inc();
    }

    /// Deliveries settled as `abandoned` (their endpoint was removed).
    pub fn event_deliveries_abandoned(&self, endpoint: &str, count: u64) {
        self.event_deliveries
            .with_label_values(&[endpoint, "abandoned"])
            .inc_by(count);
    }

    /// The outbox's backlog, read from the database just before rendering.
    pub fn outbox_backlog(&self, undelivered: i64, oldest_age_seconds: f64) {
        self.events_undelivered.set(undelivered);
        self.events_oldest_undelivered.set(oldest_age_seconds);
    }

    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }

    /// The text exposition, with the pool's state read now.
    pub fn render(&self, pool: diesel::r2d2::State, pool_max: u32) -> String {
        self.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle_connections));
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(pool.connections - pool.idle_connections));
        self.pool_max.set(i64::from(pool_max));
        let mut buffer = Vec::new();
        // Encoding metrics we registered ourselves into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
