//! Garbage collection: expired ceremonies (in the background and by
//! `kratos-passkeys gc`), and, on demand, the passkeys of identities Kratos
//! no longer has.

use std::time::Duration;

use actix_web::web;

use crate::error::CauseChain;
use crate::startup::AppState;

/// What one `gc` run removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub expired_ceremonies: usize,
    pub identities_checked: usize,
    pub identities_purged: usize,
    pub passkeys_purged: usize,
}

/// Purges expired ceremonies every `gc.interval` and forgets idle rate-limit
/// buckets, for as long as the application runs.
pub fn spawn_background(state: web::Data<AppState>) {
    let interval = state.settings.gc.interval.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match state.store.purge_expired_ceremonies().await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired ceremonies purged"),
                Err(error) => {
                    tracing::warn!(cause = ?CauseChain(&error), "purging expired ceremonies failed")
                }
            }
            state.login_limiter.prune();
            state.failure_limiter.prune();
        }
    });
}

/// One full collection: expired ceremonies, then every known identity is
/// checked with Kratos and the deleted ones are purged.
pub async fn collect(state: &AppState) -> anyhow::Result<Collected> {
    let mut collected = Collected {
        expired_ceremonies: state.store.purge_expired_ceremonies().await?,
        ..Collected::default()
    };
    for identity in state.store.identity_ids().await? {
        collected.identities_checked += 1;
        if state.kratos.identity(identity).await?.is_none() {
            collected.passkeys_purged += state.store.purge_identity(identity).await?;
            collected.identities_purged += 1;
            tracing::info!(%identity, "identity no longer exists in Kratos; purged");
        }
    }
    Ok(collected)
}
