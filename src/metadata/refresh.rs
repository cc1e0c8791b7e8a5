//! Keeping the BLOB current: loaded before the service listens (a BLOB
//! that does not verify stops the start with its reason), then looked for
//! again at `nextUpdate` or `refresh_interval`, whichever comes first. A
//! refused BLOB leaves the last good one in use and is counted. Every
//! replica stores what it verified in Postgres and adopts the newest serial
//! number there, so they agree; a new BLOB's refused statuses are acted on
//! for the passkeys attested as those models, once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::web;
use anyhow::Context;
use url::Url;

use super::blob::{self, Blob, BlobError};
use super::Metadata;
use crate::state::AppState;

/// Why a look for a new BLOB failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("fetching the BLOB from {source_url}: {reason}")]
    Fetch { source_url: Url, reason: String },
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("the database: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl RefreshError {
    fn label(&self) -> &'static str {
        match self {
            Self::Fetch { .. } => "fetch_failed",
            Self::Blob(error) => error.as_str(),
            Self::Store(_) => "database_unavailable",
        }
    }
}

/// What a look for a new BLOB did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// A newer BLOB from the source is in use (and stored).
    Updated,
    /// Another replica had stored a newer one; it is in use.
    AdoptedFromPeer,
    Unchanged,
}

impl Refreshed {
    fn label(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::AdoptedFromPeer => "adopted_from_peer",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Loads the BLOB before the service listens: the newer of the stored one
/// and the source's. Neither verifying is a start-up error naming why.
pub async fn load_at_start(state: &AppState) -> anyhow::Result<()> {
    let metadata = &state.authenticators.metadata;
    let Some(settings) = metadata.settings() else {
        return Ok(());
    };
    let stored = match state.store.latest_blob().await {
        Ok(Some(stored)) => blob::verify(&stored.text, metadata.roots(), SystemTime::now())
            .inspect_err(
                |error| tracing::warn!(%error, no = stored.no, "the stored BLOB is not usable"),
            )
            .ok(),
        Ok(None) => None,
        Err(error) => return Err(error).context("reading the stored metadata BLOB"),
    };
    let fetched = fetch_and_verify(metadata, &settings.source).await;
    let chosen = match (fetched, stored) {
        (Ok(fetched), Some(stored)) if stored.no > fetched.no => stored,
        (Ok(fetched), _) => {
            keep_for_replicas(state, &fetched)
                .await
                .context("storing the metadata BLOB")?;
            fetched
        }
        (Err(error), Some(stored)) => {
            tracing::warn!(%error, no = stored.no, "the metadata source is refused; the stored BLOB is used");
            metadata.count(error.label());
            stored
        }
        (Err(error), None) => {
            metadata.count(error.label());
            return Err(anyhow::anyhow!(
                "authenticators.metadata: no usable MDS3 BLOB: {error}"
            ));
        }
    };
    tracing::info!(no = chosen.no, next_update = %chosen.next_update, models = chosen.models.len(), "metadata BLOB in use");
    let chosen = Arc::new(chosen);
    metadata.adopt(chosen.clone());
    // A BLOB first seen at start-up (a restart, a new replica) is acted on
    // like a refreshed one; passkeys already acted on are left alone.
    act_on_statuses(state, &chosen)
        .await
        .context("acting on the metadata BLOB's refused statuses")
}

/// Looks once for a newer BLOB: another replica's first, then the
/// source's. A refused one leaves the BLOB in use as it is.
pub async fn refresh_once(state: &AppState) -> Result<Refreshed, RefreshError> {
    let result = refresh(state).await;
    let metadata = &state.authenticators.metadata;
    match &result {
        Ok(outcome) => metadata.count(outcome.label()),
        Err(error) => {
            tracing::warn!(%error, "metadata refresh refused; the last good BLOB stays in use");
            metadata.count(error.label());
        }
    }
    result
}

async fn refresh(state: &AppState) -> Result<Refreshed, RefreshError> {
    let metadata = &state.authenticators.metadata;
    let Some(settings) = metadata.settings() else {
        return Ok(Refreshed::Unchanged);
    };
    let current = metadata.current().map_or(i32::MIN, |b| b.no);
    let mut outcome = Refreshed::Unchanged;
    if let Some(stored) = state.store.latest_blob().await? {
        if stored.no > current {
            let peer = blob::verify(&stored.text, metadata.roots(), SystemTime::now())?;
            adopt(state, peer).await?;
            outcome = Refreshed::AdoptedFromPeer;
        }
    }
    let fetched = fetch_and_verify(metadata, &settings.source).await?;
    let current = metadata.current().map_or(i32::MIN, |b| b.no);
    if fetched.no > current {
        keep_for_replicas(state, &fetched).await?;
        adopt(state, fetched).await?;
        outcome = Refreshed::Updated;
    } else if fetched.no < current && outcome == Refreshed::Unchanged {
        return Err(BlobError::Older {
            found: fetched.no,
            current,
        }
        .into());
    }
    Ok(outcome)
}

/// Puts `blob` in use, then acts on its refused statuses.
/// Stores a verified BLOB in Postgres, where every replica finds it.
async fn keep_for_replicas(state: &AppState, blob: &Blob) -> Result<(), crate::store::StoreError> {
    state
        .store
        .store_blob(
            blob.no,
            blob.text.clone(),
            blob.sha256.clone(),
            blob.next_update,
        )
        .await
}

async fn adopt(state: &AppState, blob: Blob) -> Result<(), RefreshError> {
    let blob = Arc::new(blob);
    state.authenticators.metadata.adopt(blob.clone());
    tracing::info!(no = blob.no, next_update = %blob.next_update, "metadata BLOB in use");
    act_on_statuses(state, &blob).await
}

/// Each model the default policy now refuses: its attested passkeys are
/// flagged or warned about (`authenticators.on_status_change`), once per
/// status. Unattested passkeys are never touched: their AAGUID is a claim
/// anyone can make.
async fn act_on_statuses(state: &AppState, blob: &Blob) -> Result<(), RefreshError> {
    let authenticators = &state.authenticators;
    let action = authenticators.on_status_change.action();
    for model in blob.models.values() {
        let Some(status) = authenticators.default_policy().refused_status(model) else {
            continue;
        };
        let events = state.events.clone();
        let reports = model.status_reports.clone();
        let status_name = status.to_string();
        let flag = action == crate::store::StatusAction::Flag;
        let acted = state
            .store
            .act_on_status(
                model.aaguid,
                status.to_string(),
                action,
                move |row, attestation| {
                    events.authenticator_status(row, attestation, &status_name, &reports, flag)
                },
            )
            .await?;
        if acted > 0 {
            tracing::warn!(aaguid = %model.aaguid, %status, acted, ?action, "passkeys of a model with a refused status");
        }
    }
    Ok(())
}

async fn fetch_and_verify(metadata: &Metadata, source: &Url) -> Result<Blob, RefreshError> {
    let text = fetch(source).await?;
    Ok(blob::verify(&text, metadata.roots(), SystemTime::now())?)
}

async fn fetch(source: &Url) -> Result<String, RefreshError> {
    let failed = |reason: String| RefreshError::Fetch {
        source_url: source.clone(),
        reason,
    };
    match source.scheme() {
        "file" => {
            let path = source
                .to_file_path()
                .map_err(|()| failed("not a file path".into()))?;
            tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))
        }
        "https" | "http" => {
            let response = reqwest::Client::new()
                .get(source.clone())
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| failed(e.to_string()))?;
            response.text().await.map_err(|e| failed(e.to_string()))
        }
        other => Err(failed(format!("unsupported scheme {other}"))),
    }
}

/// Refreshes in the background for as long as the service runs.
pub fn spawn_background(state: web::Data<AppState>) {
    let Some(settings) = state.authenticators.metadata.settings().cloned() else {
        return;
    };
    tokio::spawn(async move {
        let mut wait = next_wait(&state, settings.refresh_interval);
        loop {
            tokio::time::sleep(wait).await;
            wait = match refresh_once(&state).await {
                Ok(_) => next_wait(&state, settings.refresh_interval),
                Err(_) => settings.retry_interval,
            };
        }
    });
}

/// Until the BLOB's `nextUpdate` (its first moment), at most `interval`.
fn next_wait(state: &AppState, interval: Duration) -> Duration {
    let until_next = state
        .authenticators
        .metadata
        .current()
        .and_then(|b| b.next_update.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc() - chrono::Utc::now())
        .and_then(|d| d.to_std().ok());
    until_next
        .map_or(interval, |d| d.min(interval))
        .max(Duration::from_secs(60))
}
