//! The delivery worker, one per replica. Each round it claims the due
//! deliveries (the oldest undelivered event of each identity, per
//! endpoint) with their rows locked, sends them concurrently, and saves
//! the outcome in the same transaction. A replica killed mid-round leaves
//! no trace: Postgres rolls its transaction back and releases the locks,
//! and another round sends those events again (at least once).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};

use super::endpoints::Endpoint;
use super::NOTIFIER_ENDPOINT;
use crate::cause_chain::CauseChain;
use crate::configuration::EventSettings;
use crate::metrics::Metrics;
use crate::recovery_hook::Notifier;
use crate::store::{DeliveryResult, DueDelivery, Store};

/// How long a round waits, once woken by a new event, for more to come.
const GATHER: Duration = Duration::from_millis(20);
/// Passes per round: each sends the identities' next events, so one busy
/// identity gets up to this many delivered per round, in order.
const PASSES: usize = 8;

/// When to try again after a failed attempt.
#[derive(Debug, Clone, Copy)]
pub struct RetrySchedule {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl RetrySchedule {
    pub fn new(settings: &EventSettings) -> Self {
        Self {
            first: settings.first_backoff,
            max: settings.max_backoff,
            give_up_after: settings.give_up_after,
        }
    }

    /// The pause after the `failures`-th failure in a row (1, 2, ...):
    /// doubling from `first`, capped at `max`, before jitter.
    pub fn pause(&self, failures: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)));
        doubled.min(self.max)
    }

    /// A quarter of random jitter below `pause`, so that many events
    /// failing together do not come back together.
    fn jittered(&self, failures: u32) -> Duration {
        let pause = self.pause(failures);
        pause.mul_f64(rand::thread_rng().gen_range(0.75..=1.0))
    }

    /// Whether an event this old is given up after another failure.
    pub fn exhausted(&self, age: Duration) -> bool {
        age >= self.give_up_after
    }
}

pub struct DeliveryWorker {
    store: Store,
    endpoints: Arc<Vec<Endpoint>>,
    http: reqwest::Client,
    schedule: RetrySchedule,
    poll_interval: Duration,
    batch_size: i64,
    metrics: Arc<Metrics>,
    /// Sends the recovery notices (`NOTIFIER_ENDPOINT`), when configured.
    notifier: Notifier,
}

impl DeliveryWorker {
    /// `store` should have a pool of its own: a round's transaction stays
    /// open while it sends.
    pub fn new(
        store: Store,
        endpoints: Arc<Vec<Endpoint>>,
        notifier: Notifier,
        settings: &EventSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("kratos-passkeys/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            store,
            endpoints,
            http,
            schedule: RetrySchedule::new(settings),
            poll_interval: settings.poll_interval.max(Duration::from_millis(10)),
            batch_size: i64::from(settings.batch_size.max(1)),
            metrics,
            notifier,
        })
    }

    /// Runs for as long as the application does.
    pub fn spawn(self) {
        let worker = Arc::new(self);
        tokio::spawn(async move {
            loop {
                let claimed = match worker.clone().round().await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(cause = ?CauseChain(&error), "event delivery round failed");
                        0
                    }
                };
                if claimed as i64 >= worker.batch_size {
                    continue;
                }
                tokio::select! {
                    _ = worker.store.outbox_written_since() => {
                        // Under load, events come in runs: a moment's wait
                        // sends a run in one round instead of one each.
                        tokio::time::sleep(GATHER.min(worker.poll_interval)).await;
                    }
                    _ = tokio::time::sleep(worker.poll_interval) => {}
                }
            }
        });
    }

    /// One round: claims, sends and saves; answers how many were claimed.
    async fn round(self: Arc<Self>) -> Result<usize, crate::store::StoreError> {
        let names = configured(&self.endpoints, &self.notifier);
        let runtime = tokio::runtime::Handle::current();
        let worker = self.clone();
        self.store
            .deliver_due(names, self.batch_size, PASSES, move |due| {
                // On the blocking pool, holding the claimed rows' locks.
                runtime.block_on(worker.send_all(due))
            })
            .await
    }

    async fn send_all(&self, due: Vec<DueDelivery>) -> Vec<DeliveryResult> {
        futures_util::future::join_all(due.iter().map(|d| self.send(d))).await
    }

    async fn send(&self, due: &DueDelivery) -> DeliveryResult {
        let outcome = if due.endpoint == NOTIFIER_ENDPOINT {
            // The notifier gets the hook's `notify` object as it came.
            self.notifier.send(due.event_id, &due.payload["data"]).await
        } else if let Some(endpoint) = self.endpoints.iter().find(|e| e.name == due.endpoint) {
            self.attempt(endpoint, due).await
        } else {
            return DeliveryResult::Retry {
                error: "endpoint no longer configured".into(),
                retry_in: self.schedule.max,
            };
        };
        let name = due.endpoint.as_str();
        let result = match outcome {
            Ok(()) => DeliveryResult::Delivered,
            Err(error) => {
                let failures = u32::try_from(due.attempts).unwrap_or(0).saturating_add(1);
                let age = (Utc::now() - due.occurred_at).to_std().unwrap_or_default();
                if self.schedule.exhausted(age) {
                    tracing::error!(event = %due.event_id, endpoint = %name, failures, %error, "event given up");
                    DeliveryResult::GiveUp { error }
                } else {
                    tracing::info!(event = %due.event_id, endpoint = %name, failures, %error, "event delivery failed; will retry");
                    DeliveryResult::Retry {
                        error,
                        retry_in: self.schedule.jittered(failures),
                    }
                }
            }
        };
        let outcome = match &result {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Retry { .. } => "retry",
            DeliveryResult::GiveUp { .. } => "gave_up",
        };
        self.metrics.event_delivery(name, outcome);
        if name == NOTIFIER_ENDPOINT {
            match &result {
                DeliveryResult::Delivered => self.metrics.recovery_hook("notified", 1),
                DeliveryResult::GiveUp { .. } => self.metrics.recovery_hook("notify_failed", 1),
                DeliveryResult::Retry { .. } => {}
            }
        }
        result
    }

    /// One signed POST; any 2xx is a delivery.
    async fn attempt(&self, endpoint: &Endpoint, due: &DueDelivery) -> Result<(), String> {
        let body = serde_json::to_vec(&due.payload).map_err(|e| e.to_string())?;
        let id = due.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = endpoint.key.sign(&id, timestamp, &body)?;
        let response = self
            .http
            .post(endpoint.url.clone())
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "could not connect".to_string()
                } else {
                    "request failed".to_string()
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", status.as_u16()))
        }
    }
}

/// The endpoints this replica delivers to: the configured ones, and the
/// recovery notifier when it has one.
pub fn configured(endpoints: &[Endpoint], notifier: &Notifier) -> Vec<String> {
    let mut names: Vec<String> = endpoints.iter().map(|e| e.name.clone()).collect();
    if notifier.is_configured() {
        names.push(NOTIFIER_ENDPOINT.to_string());
    }
    names
}

/// Settles the deliveries of endpoints no longer configured (`abandoned`),
/// once at start-up, retrying while the database is unavailable.
pub fn abandon_unconfigured(store: Store, configured: Vec<String>, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            match store.abandon_unconfigured(configured.clone()).await {
                Ok(abandoned) => {
                    for (endpoint, count) in abandoned {
                        tracing::warn!(%endpoint, count, "event deliveries abandoned: the endpoint is no longer configured");
                        metrics.event_deliveries_abandoned(
                            &endpoint,
                            u64::try_from(count).unwrap_or(0),
                        );
                    }
                    return;
                }
                Err(error) => {
                    tracing::warn!(cause = ?CauseChain(&error), "settling the deliveries of removed endpoints failed; will retry");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(60));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> RetrySchedule {
        RetrySchedule {
            first: Duration::from_secs(5),
            max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(72 * 3600),
        }
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let schedule = defaults();
        assert_eq!(schedule.pause(1), Duration::from_secs(5));
        assert_eq!(schedule.pause(2), Duration::from_secs(10));
        assert_eq!(schedule.pause(5), Duration::from_secs(80));
        assert_eq!(schedule.pause(11), Duration::from_secs(3600));
        assert_eq!(schedule.pause(400), Duration::from_secs(3600));
        for failures in 1..50 {
            let jittered = schedule.jittered(failures);
            assert!(jittered <= schedule.pause(failures));
            assert!(jittered >= schedule.pause(failures).mul_f64(0.75));
        }
    }

    /// With the defaults, a receiver down for an hour (or a day) still gets
    /// every event: attempts go on, never more than an hour apart, for 72 h.
    #[test]
    fn the_defaults_outlast_a_receiver_down_for_a_day() {
        let schedule = defaults();
        let mut waited = Duration::ZERO;
        let mut failures = 0;
        while !schedule.exhausted(waited) {
            failures += 1;
            let pause = schedule.pause(failures);
            assert!(pause <= Duration::from_secs(3600));
            waited += pause;
        }
        assert!(waited >= Duration::from_secs(72 * 3600));
        assert!(failures > 60, "{failures} attempts");
    }
}
