//! The store boundary: Postgres through diesel + r2d2. diesel is synchronous,
//! so every query runs on tokio's blocking pool, never on the async executor.

mod attestations;
mod ceremonies;
mod identities;
mod imports;
mod logins;
mod outbox;
mod passkey_row;
mod passkeys;
mod pool;
pub mod schema;

pub use attestations::{AttestationRow, NewAttestation, StatusAction, StoredBlob};
pub use ceremonies::Consumed;
pub use identities::IdentityRow;
pub use imports::{ImportOutcome, ImportedPasskey};
pub use logins::{
    LoginBegun, LoginCompletion, LoginRecord, LoginStart, MintedSessionRecord, Settled,
};
pub use outbox::{Backlog, DeliveryResult, DeliveryRow, DueDelivery, EventRow, NewEvent};
pub use passkey_row::PasskeyRow;
pub use passkeys::{NewPasskey, NewPasskeyName, Removal};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::Pool;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::configuration::DatabaseSettings;
use crate::metrics::Metrics;

/// Rows a purge deletes per statement: each batch is a short transaction,
/// so a purge of a large backlog never holds locks, bloats WAL in one
/// commit, or keeps a pooled connection for long. A batch names its rows by
/// `ctid`, `= ANY(ARRAY(SELECT ctid ... LIMIT n))`: a TID scan visits just
/// their pages, where a key costs an index descent per row (deeper as the
/// table grows), and `IN (SELECT ...)` lets the planner hash-join against a
/// scan of the whole table. Only rows nobody updates any more are purged
/// (expired marks, settled events), so a `ctid` cannot go stale.
const PURGE_BATCH: i64 = 1000;

/// A duration as a SQL interval, for ages reckoned by the database's clock
/// (`now() - $1::interval`); one too long to express saturates.
fn interval(duration: std::time::Duration) -> diesel::data_types::PgInterval {
    diesel::data_types::PgInterval::from_microseconds(
        i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
    )
}

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<pool::PgManager>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection could be had")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the credential id is already registered")]
    CredentialAlreadyRegistered,
    #[error("the passkey name is already used by this identity")]
    NameTaken,
    #[error("the identity already holds {} passkeys", limit.get())]
    PasskeyLimitReached {
        limit: crate::configuration::PasskeysPerIdentity,
    },
    #[error("database query failed")]
    Query(#[source] DieselError),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("the blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl From<DieselError> for StoreError {
    fn from(error: DieselError) -> Self {
        match &error {
            _ if unavailable(&error) => StoreError::Unavailable(Box::new(error)),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                match info.constraint_name() {
                    Some("passkeys_credential_id_key") => StoreError::CredentialAlreadyRegistered,
                    Some("passkeys_identity_id_name_key") => StoreError::NameTaken,
                    _ => StoreError::Query(error),
                }
            }
            _ => StoreError::Query(error),
        }
    }
}

/// Whether `error` says the database cannot take this query now, rather
/// than that the query is wrong. A read-only transaction (SQLSTATE 25006)
/// means the connection reached a standby, or a primary demoted in a
/// failover; marking it unavailable also retires the connection, so the
/// pool's next one finds the new primary through `target_session_attrs`.
fn unavailable(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        ) => true,
        // A COMMIT lost with its connection fails its rollback too.
        DieselError::RollbackErrorOnCommit { commit_error, .. } => unavailable(commit_error),
        _ => false,
    }
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    pool_size: u32,
    metrics: Arc<Metrics>,
    /// Woken after a transaction that wrote events commits, so this
    /// replica's delivery worker sends them at once.
    outbox: Arc<Notify>,
}

impl Store {
    /// Builds the pool without connecting, so the service starts (and its
    /// readiness reports the fact) while Postgres is down.
    pub fn connect_lazy(settings: &DatabaseSettings, metrics: Arc<Metrics>) -> Self {
        let manager = pool::PgManager::new(settings.url.expose_secret());
        let pool = Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(0))
            .connection_timeout(settings.acquire_timeout)
            .test_on_check_out(false)
            .build_unchecked(manager);
        Self {
            pool,
            pool_size: settings.pool_size,
            metrics,
            outbox: Arc::new(Notify::new()),
        }
    }

    /// The same database through a pool of its own, of `size` connections,
    /// sharing this store's outbox signal: for the delivery worker, whose
    /// transactions stay open while it sends, so requests never wait on it.
    pub fn dedicated(&self, settings: &DatabaseSettings, size: u32) -> Self {
        let own = Self::connect_lazy(
            &DatabaseSettings {
                pool_size: size,
                ..settings.clone()
            },
            self.metrics.clone(),
        );
        Self {
            outbox: self.outbox.clone(),
            ..own
        }
    }

    /// Resolves when events were written since the last call.
    pub async fn outbox_written_since(&self) {
        self.outbox.notified().await
    }

    fn outbox_written(&self) {
        self.outbox.notify_one();
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// Runs `f` with a pooled connection on the blocking pool; `operation`
    /// names it in the metrics.
    /// Runs `delete`, one statement that deletes at most `PURGE_BATCH`
    /// rows, until a batch comes back short: no statement holds locks on
    /// more than a batch however far behind the purge is. The rows deleted.
    async fn purge_in_batches<F>(
        &self,
        operation: &'static str,
        delete: F,
    ) -> Result<usize, StoreError>
    where
        F: Fn(&mut PgConnection) -> QueryResult<usize> + Clone + Send + 'static,
    {
        let mut purged = 0;
        loop {
            let delete = delete.clone();
            let batch = self.run(operation, move |conn| Ok(delete(conn)?)).await?;
            purged += batch;
            if (batch as i64) < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    async fn run<T, F>(&self, operation: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let _timer = self.metrics.store_timer(operation);
        let pool = self.pool.clone();
        // The statement's span covers the wait for a connection too.
        let span = tracing::info_span!(
            "statement",
            otel.name = %format_args!("db {operation}"),
            otel.kind = "client",
            db.system = "postgresql",
            db.operation = operation,
        );
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut tracked = pool
                .get()
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            let result = f(&mut tracked.conn);
            if matches!(result, Err(StoreError::Unavailable(_))) {
                // The connection itself failed: the pool must not hand it out again.
                tracked.broken = true;
            }
            result
        })
        .await
        .map_err(StoreError::Task)?
    }

    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.run("migrate", |conn| {
            conn.run_pending_migrations(MIGRATIONS)
                .map(|applied| applied.iter().map(ToString::to_string).collect())
                .map_err(|e| StoreError::Migration(e.to_string()))
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn database_error(kind: DatabaseErrorKind, message: &'static str) -> StoreError {
        DieselError::DatabaseError(kind, Box::new(Info(message))).into()
    }

    #[test]
    fn a_read_only_transaction_is_unavailable() {
        let error = database_error(
            DatabaseErrorKind::ReadOnlyTransaction,
            "cannot execute INSERT in a read-only transaction",
        );
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(matches!(
            crate::error::ApiError::from(error),
            crate::error::ApiError::DatabaseUnavailable(_)
        ));
    }

    #[test]
    fn a_lost_connection_is_unavailable() {
        for kind in [
            DatabaseErrorKind::ClosedConnection,
            DatabaseErrorKind::UnableToSendCommand,
        ] {
            let error = database_error(kind, "server closed the connection unexpectedly");
            assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        }
    }

    #[test]
    fn a_commit_lost_with_its_connection_is_unavailable() {
        let lost = || {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new(Info("server closed the connection unexpectedly")),
            )
        };
        let error = StoreError::from(DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(lost()),
            commit_error: Box::new(lost()),
        });
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn other_query_errors_stay_query_errors() {
        let error = database_error(DatabaseErrorKind::Unknown, "syntax error");
        assert!(matches!(error, StoreError::Query(_)), "{error:?}");
    }
}
