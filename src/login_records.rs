//! Completes the record of each passkey login with the id of the Kratos
//! session it minted. Learning the id costs a `whoami` call that the person
//! signing in need not wait for, so the login records itself as `pending`
//! and hands the session's credential to this worker, which asks Kratos
//! once the answer has gone out. The credential stays in memory only: a
//! record whose process stopped first is marked `unresolved` by the
//! garbage collection, never left pending for good.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Semaphore};

use crate::cause_chain::CauseChain;
use crate::domain::{IdentityId, LoginRecordId};
use crate::kratos::{KratosClient, KratosError, SessionCredential};
use crate::metrics::Metrics;
use crate::store::Store;

/// Records waiting for their session id, at most.
const QUEUE: usize = 4096;
/// `whoami` calls in flight at once.
const CONCURRENCY: usize = 4;
/// Tries per record while Kratos is unavailable, with doubling pauses:
/// 15.5 s of pauses in all, longer than a Kratos restart with its
/// migrations, so a login made just before one still gets its session id.
const TRIES: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// A login record whose session id is still to be learnt.
pub struct PendingSession {
    pub record: LoginRecordId,
    pub identity: IdentityId,
    pub credential: SessionCredential,
    pub minted_at: DateTime<Utc>,
    /// `whoami` already said the session waits for a second factor.
    pub second_factor_pending: bool,
}

/// Hands pending records to the worker.
pub struct LoginRecorder {
    queue: mpsc::Sender<PendingSession>,
    metrics: Arc<Metrics>,
}

/// Completes pending records; spawn it once per process that serves logins.
pub struct RecorderWorker {
    queue: mpsc::Receiver<PendingSession>,
    store: Store,
    kratos: KratosClient,
    metrics: Arc<Metrics>,
}

impl LoginRecorder {
    pub fn new(
        store: Store,
        kratos: KratosClient,
        metrics: Arc<Metrics>,
    ) -> (Self, RecorderWorker) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let recorder = Self {
            queue: sender,
            metrics: metrics.clone(),
        };
        let worker = RecorderWorker {
            queue: receiver,
            store,
            kratos,
            metrics,
        };
        (recorder, worker)
    }

    /// Queues the record's completion. When the queue is full the record
    /// stays pending, and the garbage collection marks it unresolved.
    pub fn complete_later(&self, pending: PendingSession) {
        let record = pending.record;
        if self.queue.try_send(pending).is_err() {
            self.metrics.login_record("dropped");
            tracing::warn!(%record, "the login record queue is full; its session id will stay unknown");
        }
    }
}

impl RecorderWorker {
    pub fn spawn(mut self) {
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(CONCURRENCY));
            while let Some(pending) = self.queue.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (store, kratos, metrics) = (
                    self.store.clone(),
                    self.kratos.clone(),
                    self.metrics.clone(),
                );
                tokio::spawn(async move {
                    let outcome = complete(&store, &kratos, pending).await;
                    metrics.login_record(outcome);
                    drop(permit);
                });
            }
        });
    }
}

/// Learns the session id and saves it; says how it went.
async fn complete(store: &Store, kratos: &KratosClient, pending: PendingSession) -> &'static str {
    let record = pending.record;
    let mut pause = FIRST_PAUSE;
    let mut second_factor_pending = pending.second_factor_pending;
    for attempt in 1..=TRIES {
        let learnt = if second_factor_pending {
            // `whoami` answers 403 until the second factor: the session is
            // found among the identity's own instead.
            match kratos
                .minted_recovery_session(pending.identity, pending.minted_at)
                .await
            {
                Ok(Some(id)) => Ok(id),
                Ok(None) => {
                    tracing::warn!(%record, "the minted session awaiting a second factor is not the only one of its moment; its id stays unknown");
                    return give_up(store, record).await;
                }
                Err(error) => Err(error),
            }
        } else {
            match kratos
                .minted_session(&pending.credential, pending.identity)
                .await
            {
                Err(KratosError::Aal2Required { .. }) => {
                    second_factor_pending = true;
                    continue;
                }
                other => other.map(|(session, _)| session.id),
            }
        };
        let result = match learnt {
            Ok(id) => store
                .resolve_session(record, id)
                .await
                .map(|_| "resolved")
                .map_err(anyhow::Error::new),
            Err(error @ (KratosError::Unavailable { .. } | KratosError::Overloaded { .. })) => {
                Err(anyhow::Error::new(error))
            }
            Err(error @ KratosError::SessionOfAnotherIdentity { .. }) => {
                // The client revoked it already.
                tracing::error!(%record, cause = ?CauseChain(&error), "a minted session was another identity's");
                return give_up(store, record).await;
            }
            Err(error) => {
                // Signed out already, or Kratos will not say: it stays unknown.
                tracing::warn!(%record, cause = ?CauseChain(&error), "the minted session's id could not be learnt");
                return give_up(store, record).await;
            }
        };
        match result {
            Ok(outcome) => return outcome,
            Err(error) if attempt < TRIES => {
                tracing::info!(%record, attempt, cause = ?CauseChain(error.as_ref()), "completing a login record; will retry");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(error) => {
                tracing::warn!(%record, cause = ?CauseChain(error.as_ref()), "completing a login record failed");
            }
        }
    }
    give_up(store, record).await
}

async fn give_up(store: &Store, record: LoginRecordId) -> &'static str {
    if let Err(error) = store.give_up_session(record).await {
        // Still pending: the garbage collection will mark it.
        tracing::warn!(%record, cause = ?CauseChain(&error), "marking a login record unresolved failed");
    }
    "unresolved"
}
