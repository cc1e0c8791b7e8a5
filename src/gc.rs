//! Garbage collection: the single-use marks of expired ceremonies, login
//! records that will never learn their session id, and events and login
//! records past their retention (in the background and by `kratos-passkeys gc`), and, on
//! demand, the passkeys of identities Kratos no longer has.

use std::time::Duration;

use actix_web::web;

use crate::cause_chain::CauseChain;
use crate::state::AppState;

/// What one `gc` run removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub expired_ceremonies: usize,
    pub unresolved_logins: usize,
    pub identities_checked: usize,
    pub identities_purged: usize,
    pub passkeys_purged: usize,
    pub events_purged: usize,
    pub login_records_purged: usize,
}

/// A login record still pending after this long lost its worker (the
/// process stopped, or its queue was full): its session id stays unknown.
const PENDING_FOR_GOOD: Duration = Duration::from_secs(300);

/// Identities read per statement by the check against Kratos.
const IDENTITY_PAGE: i64 = 1000;

/// Purges the marks of expired ceremonies and settles abandoned login
/// records every `gc.interval`, and forgets idle rate-limit buckets, for as
/// long as the application runs.
pub fn spawn_background(state: web::Data<AppState>) {
    let interval = state.settings.gc.interval.max(Duration::from_secs(1));
    tokio::spawn(async move {
        // The first sweep one interval after start, not at once: a test (or
        // an operator) that sets a long interval gets no sweep behind its back.
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match sweep(&state).await {
                Ok(Swept {
                    ceremonies: 0,
                    unresolved: 0,
                    events: 0,
                    login_records: 0,
                }) => {}
                Ok(swept) => {
                    tracing::debug!(
                        ?swept,
                        "ceremony marks, events and login records purged, login records settled"
                    )
                }
                Err(error) => {
                    tracing::warn!(cause = ?CauseChain(&error), "garbage collection failed")
                }
            }
            state.login_limits.prune();
        }
    });
}

#[derive(Debug)]
struct Swept {
    ceremonies: usize,
    unresolved: usize,
    events: usize,
    login_records: usize,
}

/// The marks of expired ceremonies, login records pending for good, and
/// events and login records past their retention.
async fn sweep(state: &AppState) -> Result<Swept, crate::store::StoreError> {
    let now = state.clock.now();
    let ceremonies = state
        .store
        .purge_consumed_ceremonies(state.settings.gc.used_ceremony_margin)
        .await?;
    let unresolved = state.store.give_up_stale_sessions(PENDING_FOR_GOOD).await?;
    if unresolved > 0 {
        tracing::warn!(
            unresolved,
            "login records whose session id will stay unknown"
        );
    }
    let retention = chrono::Duration::from_std(state.settings.events.retention)
        .unwrap_or(chrono::Duration::MAX);
    let events = state
        .store
        .purge_settled_events(now.checked_sub_signed(retention).unwrap_or(now))
        .await?;
    let login_records = state
        .store
        .purge_login_records(state.settings.gc.login_record_retention)
        .await?;
    Ok(Swept {
        ceremonies,
        unresolved,
        events,
        login_records,
    })
}

/// One full collection: the sweep, then every known identity is checked
/// with Kratos and the deleted ones are purged.
pub async fn collect(state: &AppState) -> anyhow::Result<Collected> {
    let swept = sweep(state).await?;
    let mut collected = Collected {
        expired_ceremonies: swept.ceremonies,
        unresolved_logins: swept.unresolved,
        events_purged: swept.events,
        login_records_purged: swept.login_records,
        ..Collected::default()
    };
    let mut after = None;
    loop {
        let page = state.store.identity_ids(after, IDENTITY_PAGE).await?;
        for &identity in &page {
            collected.identities_checked += 1;
            if state.kratos.identity(identity).await?.is_none() {
                let events = state.events.clone();
                collected.passkeys_purged += state
                    .store
                    .purge_identity(identity, move |removed| {
                        events.identity_purged(identity, removed)
                    })
                    .await?;
                collected.identities_purged += 1;
                tracing::info!(%identity, "identity no longer exists in Kratos; purged");
            }
        }
        match page.last() {
            Some(&last) if page.len() as i64 == IDENTITY_PAGE => after = Some(last),
            _ => return Ok(collected),
        }
    }
}
