//! The FIDO Metadata Service (MDS3): the verified BLOB in use, where it
//! comes from, and its metrics. `blob` verifies one, `refresh` keeps it
//! current and shared through Postgres.

pub mod blob;
pub mod refresh;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use compact_jwt::crypto::Certificate;
use prometheus::{Gauge, IntCounterVec, IntGauge, Opts};
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

pub use blob::{Blob, BlobError, CertificationLevel, Model};

use crate::metrics::Metrics;

/// `authenticators.metadata`.
#[derive(Debug, Clone, Deserialize)]
pub struct MetadataSettings {
    /// `file:///path/blob.jwt` or `https://mds3.fidoalliance.org/`.
    pub source: Url,
    /// A PEM file with the roots the BLOB must chain to; the FIDO MDS roots
    /// when unset.
    #[serde(default)]
    pub trust_root: Option<PathBuf>,
    /// How often to look for a newer BLOB, at the latest; a BLOB's
    /// `nextUpdate` brings the next look forward.
    #[serde(with = "humantime_serde", default = "default_refresh_interval")]
    pub refresh_interval: Duration,
    /// How long to wait after a failed refresh.
    #[serde(with = "humantime_serde", default = "default_retry_interval")]
    pub retry_interval: Duration,
}

fn default_refresh_interval() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_retry_interval() -> Duration {
    Duration::from_secs(3600)
}

/// The BLOB in use (none when `authenticators.metadata` is unset), shared
/// by requests and the refresh task.
pub struct Metadata {
    settings: Option<MetadataSettings>,
    roots: Vec<Certificate>,
    current: RwLock<Option<Arc<Blob>>>,
    metrics: MetadataMetrics,
}

impl Metadata {
    pub fn new(settings: Option<MetadataSettings>, metrics: &Metrics) -> anyhow::Result<Self> {
        let pem = match settings.as_ref().and_then(|s| s.trust_root.as_ref()) {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("reading the metadata trust root {}: {e}", path.display())
            })?,
            None => blob::FIDO_MDS_ROOT_PEM.to_string(),
        };
        let roots = blob::trust_roots(&pem)
            .map_err(|e| anyhow::anyhow!("the metadata trust root does not parse: {e}"))?;
        Ok(Self {
            settings,
            roots,
            current: RwLock::new(None),
            metrics: MetadataMetrics::new(metrics)?,
        })
    }

    pub fn settings(&self) -> Option<&MetadataSettings> {
        self.settings.as_ref()
    }

    pub fn roots(&self) -> &[Certificate] {
        &self.roots
    }

    /// The BLOB in use.
    pub fn current(&self) -> Option<Arc<Blob>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The model the BLOB in use describes under `aaguid`.
    pub fn model(&self, aaguid: Uuid) -> Option<Model> {
        self.current()
            .and_then(|blob| blob.models.get(&aaguid).cloned())
    }

    fn adopt(&self, blob: Arc<Blob>) {
        self.metrics.serial.set(i64::from(blob.no));
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(blob);
        self.metrics.adopted_at.set(now_seconds());
    }

    pub(crate) fn count(&self, outcome: &str) {
        self.metrics.refreshes.with_label_values(&[outcome]).inc();
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

struct MetadataMetrics {
    refreshes: IntCounterVec,
    serial: IntGauge,
    /// When the BLOB in use was adopted (its age: `time() - this`).
    adopted_at: Gauge,
}

impl MetadataMetrics {
    fn new(metrics: &Metrics) -> Result<Self, prometheus::Error> {
        let refreshes = IntCounterVec::new(
            Opts::new(
                "metadata_refreshes_total",
                "Looks for a new MDS3 BLOB by outcome: updated, unchanged, adopted_from_peer, or why the BLOB was refused (kept the last good one)",
            ),
            &["outcome"],
        )?;
        let serial = IntGauge::new(
            "metadata_blob_serial",
            "The serial number (no) of the MDS3 BLOB in use",
        )?;
        let adopted_at = Gauge::new(
            "metadata_blob_adopted_timestamp_seconds",
            "When the MDS3 BLOB in use was adopted (its age is time() minus this)",
        )?;
        // Present from the start, at 0: a dashboard's rate and an alert's
        // increase then see the first refresh rather than a missing series.
        for outcome in ["updated", "unchanged", "adopted_from_peer", "fetch_failed"] {
            refreshes.with_label_values(&[outcome]);
        }
        metrics.register(Box::new(refreshes.clone()))?;
        metrics.register(Box::new(serial.clone()))?;
        metrics.register(Box::new(adopted_at.clone()))?;
        Ok(Self {
            refreshes,
            serial,
            adopted_at,
        })
    }
}
