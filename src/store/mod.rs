//! The store boundary: Postgres through diesel + r2d2. diesel is synchronous,
//! so every query runs on tokio's blocking pool, never on the async executor.

mod pool;
pub mod schema;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::Pool;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;

use std::sync::Arc;

use crate::configuration::DatabaseSettings;
use crate::domain::{
    CeremonyId, IdentityId, KratosSessionId, PasskeyId, PasskeyName, SessionDelivery, UserHandle,
};
use crate::metrics::Metrics;
use schema::{ceremonies, identities, passkeys};

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
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => StoreError::Unavailable(Box::new(error)),
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

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = identities)]
pub struct IdentityRow {
    pub identity_id: Uuid,
    pub user_handle: Uuid,
    pub registered_at: Option<DateTime<Utc>>,
    pub enrollment_dismissed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: Uuid,
    pub identity_id: Uuid,
    pub credential_id: Vec<u8>,
    pub credential: Value,
    pub name: String,
    pub aaguid: Uuid,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: i64,
    pub flagged_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A verified credential about to be stored.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub identity_id: IdentityId,
    pub credential_id: Vec<u8>,
    pub credential: Value,
    pub aaguid: Uuid,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: i64,
}

/// The name a new passkey gets: the person's choice (refused when taken) or
/// a default that is numbered until it is free.
#[derive(Debug, Clone)]
pub enum NewPasskeyName {
    Chosen(PasskeyName),
    Default(PasskeyName),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    Registration,
    Login,
}

impl CeremonyKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CeremonyKind::Registration => "registration",
            CeremonyKind::Login => "login",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ceremonies)]
pub struct CeremonyRow {
    pub id: Uuid,
    pub kind: String,
    pub identity_id: Option<Uuid>,
    pub state: Value,
    pub passkey_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub client_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewCeremony {
    pub id: CeremonyId,
    pub kind: CeremonyKind,
    pub identity_id: Option<IdentityId>,
    pub state: Value,
    pub passkey_name: Option<PasskeyName>,
    pub expires_at: DateTime<Utc>,
    /// Who opened it; at most `limit` unexpired ceremonies per client.
    pub client_key: String,
}

/// What a successful passkey login changes on the stored credential.
#[derive(Debug, Clone)]
pub struct LoginUpdate {
    pub passkey_id: PasskeyId,
    /// The re-serialized credential when webauthn-rs reported a change.
    pub credential: Option<Value>,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub identity_id: IdentityId,
    pub session_id: KratosSessionId,
    pub delivery: SessionDelivery,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    pool_size: u32,
    metrics: Arc<Metrics>,
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
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// Runs `f` with a pooled connection on the blocking pool; `operation`
    /// names it in the metrics.
    async fn run<T, F>(&self, operation: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let _timer = self.metrics.store_timer(operation);
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
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

    /// The identity's row, created with a fresh random user handle on first use.
    pub async fn ensure_identity(&self, identity: IdentityId) -> Result<IdentityRow, StoreError> {
        self.run("ensure_identity", move |conn| {
            ensure_identity(conn, identity)
        })
        .await
    }

    pub async fn identity(&self, identity: IdentityId) -> Result<Option<IdentityRow>, StoreError> {
        self.run("identity", move |conn| {
            Ok(identities::table
                .find(identity.as_uuid())
                .select(IdentityRow::as_select())
                .first(conn)
                .optional()?)
        })
        .await
    }

    /// Records Kratos's after-registration webhook; repeating it changes nothing.
    pub async fn record_registration(&self, identity: IdentityId) -> Result<(), StoreError> {
        self.run("record_registration", move |conn| {
            conn.transaction(|conn| {
                ensure_identity(conn, identity)?;
                diesel::update(
                    identities::table
                        .find(identity.as_uuid())
                        .filter(identities::registered_at.is_null()),
                )
                .set(identities::registered_at.eq(Utc::now()))
                .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    pub async fn dismiss_enrollment(&self, identity: IdentityId) -> Result<(), StoreError> {
        self.run("dismiss_enrollment", move |conn| {
            conn.transaction(|conn| {
                ensure_identity(conn, identity)?;
                diesel::update(
                    identities::table
                        .find(identity.as_uuid())
                        .filter(identities::enrollment_dismissed_at.is_null()),
                )
                .set(identities::enrollment_dismissed_at.eq(Utc::now()))
                .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    /// The identity's passkeys, newest first.
    pub async fn passkeys(&self, identity: IdentityId) -> Result<Vec<PasskeyRow>, StoreError> {
        self.run("passkeys", move |conn| {
            Ok(passkeys::table
                .filter(passkeys::identity_id.eq(identity.as_uuid()))
                .order((passkeys::created_at.desc(), passkeys::id.desc()))
                .select(PasskeyRow::as_select())
                .load(conn)?)
        })
        .await
    }

    pub async fn passkey_count(&self, identity: IdentityId) -> Result<i64, StoreError> {
        self.run("passkey_count", move |conn| {
            Ok(passkeys::table
                .filter(passkeys::identity_id.eq(identity.as_uuid()))
                .count()
                .get_result(conn)?)
        })
        .await
    }

    pub async fn credential_ids(&self, identity: IdentityId) -> Result<Vec<Vec<u8>>, StoreError> {
        self.run("credential_ids", move |conn| {
            Ok(passkeys::table
                .filter(passkeys::identity_id.eq(identity.as_uuid()))
                .select(passkeys::credential_id)
                .load(conn)?)
        })
        .await
    }

    /// Stores the ceremony unless its client already holds `limit`
    /// unexpired ones (counted and inserted in one statement); false then.
    pub async fn insert_ceremony(
        &self,
        ceremony: NewCeremony,
        limit: i64,
    ) -> Result<bool, StoreError> {
        use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
        self.run("insert_ceremony", move |conn| {
            let inserted = diesel::sql_query(
                "INSERT INTO ceremonies (id, kind, identity_id, state, passkey_name, expires_at, client_key) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 \
                 WHERE (SELECT count(*) FROM ceremonies WHERE client_key = $7 AND expires_at > now()) < $8",
            )
            .bind::<SqlUuid, _>(ceremony.id.as_uuid())
            .bind::<Text, _>(ceremony.kind.as_str())
            .bind::<Nullable<SqlUuid>, _>(ceremony.identity_id.map(|i| i.as_uuid()))
            .bind::<Jsonb, _>(&ceremony.state)
            .bind::<Nullable<Text>, _>(ceremony.passkey_name.as_ref().map(PasskeyName::as_str))
            .bind::<Timestamptz, _>(ceremony.expires_at)
            .bind::<Text, _>(&ceremony.client_key)
            .bind::<BigInt, _>(limit)
            .execute(conn)?;
            Ok(inserted == 1)
        })
        .await
    }

    /// Every identity the service knows, for garbage collection.
    pub async fn identity_ids(&self) -> Result<Vec<IdentityId>, StoreError> {
        self.run("identity_ids", |conn| {
            Ok(identities::table
                .select(identities::identity_id)
                .load::<Uuid>(conn)?
                .into_iter()
                .map(IdentityId::new)
                .collect())
        })
        .await
    }

    /// Deletes and returns the ceremony in one statement, so of two
    /// concurrent attempts exactly one gets it. A registration ceremony is
    /// only found by the identity that started it.
    pub async fn take_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        identity: Option<IdentityId>,
    ) -> Result<Option<CeremonyRow>, StoreError> {
        self.run("take_ceremony", move |conn| {
            let target = ceremonies::table
                .filter(ceremonies::id.eq(id.as_uuid()))
                .filter(ceremonies::kind.eq(kind.as_str()));
            let taken = match identity {
                Some(identity) => {
                    diesel::delete(target.filter(ceremonies::identity_id.eq(identity.as_uuid())))
                        .returning(CeremonyRow::as_returning())
                        .get_result(conn)
                        .optional()?
                }
                None => diesel::delete(target.filter(ceremonies::identity_id.is_null()))
                    .returning(CeremonyRow::as_returning())
                    .get_result(conn)
                    .optional()?,
            };
            Ok(taken)
        })
        .await
    }

    pub async fn purge_expired_ceremonies(&self) -> Result<usize, StoreError> {
        self.run("purge_expired_ceremonies", |conn| {
            Ok(
                diesel::delete(ceremonies::table.filter(ceremonies::expires_at.lt(Utc::now())))
                    .execute(conn)?,
            )
        })
        .await
    }

    /// Stores a verified passkey. A chosen name that is taken is refused; a
    /// default name is numbered ("Passkey 2") until it is free.
    pub async fn insert_passkey(
        &self,
        passkey: NewPasskey,
        name: NewPasskeyName,
    ) -> Result<PasskeyRow, StoreError> {
        self.run("insert_passkey", move |conn| {
            conn.transaction(|conn| {
                ensure_identity(conn, passkey.identity_id)?;
                let name = match name {
                    NewPasskeyName::Chosen(name) => name,
                    NewPasskeyName::Default(base) => {
                        free_default_name(conn, passkey.identity_id, &base)?
                    }
                };
                Ok(diesel::insert_into(passkeys::table)
                    .values((
                        passkeys::id.eq(PasskeyId::generate().as_uuid()),
                        passkeys::identity_id.eq(passkey.identity_id.as_uuid()),
                        passkeys::credential_id.eq(&passkey.credential_id),
                        passkeys::credential.eq(&passkey.credential),
                        passkeys::name.eq(name.as_str()),
                        passkeys::aaguid.eq(passkey.aaguid),
                        passkeys::transports.eq(&passkey.transports),
                        passkeys::backup_eligible.eq(passkey.backup_eligible),
                        passkeys::backup_state.eq(passkey.backup_state),
                        passkeys::sign_count.eq(passkey.sign_count),
                    ))
                    .returning(PasskeyRow::as_returning())
                    .get_result(conn)?)
            })
        })
        .await
    }

    pub async fn rename_passkey(
        &self,
        identity: IdentityId,
        id: PasskeyId,
        name: PasskeyName,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        self.run("rename_passkey", move |conn| {
            Ok(diesel::update(
                passkeys::table
                    .find(id.as_uuid())
                    .filter(passkeys::identity_id.eq(identity.as_uuid())),
            )
            .set(passkeys::name.eq(name.as_str()))
            .returning(PasskeyRow::as_returning())
            .get_result(conn)
            .optional()?)
        })
        .await
    }

    /// Removes one of the identity's passkeys; false when it has no such passkey.
    pub async fn delete_passkey(
        &self,
        identity: IdentityId,
        id: PasskeyId,
    ) -> Result<bool, StoreError> {
        self.run("delete_passkey", move |conn| {
            let deleted = diesel::delete(
                passkeys::table
                    .find(id.as_uuid())
                    .filter(passkeys::identity_id.eq(identity.as_uuid())),
            )
            .execute(conn)?;
            Ok(deleted == 1)
        })
        .await
    }

    pub async fn delete_all_passkeys(&self, identity: IdentityId) -> Result<usize, StoreError> {
        self.run("delete_all_passkeys", move |conn| {
            Ok(
                diesel::delete(
                    passkeys::table.filter(passkeys::identity_id.eq(identity.as_uuid())),
                )
                .execute(conn)?,
            )
        })
        .await
    }

    /// Forgets everything about an identity Kratos no longer has.
    pub async fn purge_identity(&self, identity: IdentityId) -> Result<usize, StoreError> {
        self.run("purge_identity", move |conn| {
            conn.transaction(|conn| {
                let removed = diesel::delete(
                    passkeys::table.filter(passkeys::identity_id.eq(identity.as_uuid())),
                )
                .execute(conn)?;
                diesel::delete(
                    ceremonies::table.filter(ceremonies::identity_id.eq(identity.as_uuid())),
                )
                .execute(conn)?;
                diesel::delete(identities::table.find(identity.as_uuid())).execute(conn)?;
                Ok(removed)
            })
        })
        .await
    }

    /// The passkey with this WebAuthn credential id and its owner's user handle.
    pub async fn passkey_by_credential_id(
        &self,
        credential_id: Vec<u8>,
    ) -> Result<Option<(PasskeyRow, Uuid)>, StoreError> {
        self.run("passkey_by_credential_id", move |conn| {
            let wanted: &[u8] = &credential_id;
            Ok(passkeys::table
                .inner_join(identities::table)
                .filter(passkeys::credential_id.eq(wanted))
                .select((PasskeyRow::as_select(), identities::user_handle))
                .first(conn)
                .optional()?)
        })
        .await
    }

    pub async fn flag_passkey(&self, id: PasskeyId) -> Result<(), StoreError> {
        self.run("flag_passkey", move |conn| {
            diesel::update(passkeys::table.find(id.as_uuid()))
                .set(passkeys::flagged_at.eq(Utc::now()))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    /// Saves what a successful login changed and which session it minted,
    /// in one statement (atomic, and one round trip instead of four).
    pub async fn record_login(&self, update: LoginUpdate) -> Result<(), StoreError> {
        use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Uuid as SqlUuid};
        self.run("record_login", move |conn| {
            diesel::sql_query(
                "WITH used AS ( \
                   UPDATE passkeys SET credential = COALESCE($2, credential), sign_count = $3, \
                     backup_eligible = $4, backup_state = $5, last_used_at = now() \
                   WHERE id = $1 RETURNING id) \
                 INSERT INTO minted_sessions (kratos_session_id, identity_id, passkey_id, delivery) \
                 SELECT $6, $7, id, $8 FROM used",
            )
            .bind::<SqlUuid, _>(update.passkey_id.as_uuid())
            .bind::<Nullable<Jsonb>, _>(update.credential.as_ref())
            .bind::<BigInt, _>(update.sign_count)
            .bind::<Bool, _>(update.backup_eligible)
            .bind::<Bool, _>(update.backup_state)
            .bind::<SqlUuid, _>(update.session_id.as_uuid())
            .bind::<SqlUuid, _>(update.identity_id.as_uuid())
            .bind::<Text, _>(update.delivery.as_str())
            .execute(conn)?;
            Ok(())
        })
        .await
    }
}

fn ensure_identity(
    conn: &mut PgConnection,
    identity: IdentityId,
) -> Result<IdentityRow, StoreError> {
    let existing = identities::table
        .find(identity.as_uuid())
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()?;
    if let Some(row) = existing {
        return Ok(row);
    }
    diesel::insert_into(identities::table)
        .values((
            identities::identity_id.eq(identity.as_uuid()),
            identities::user_handle.eq(UserHandle::generate().as_uuid()),
        ))
        .on_conflict(identities::identity_id)
        .do_nothing()
        .execute(conn)?;
    Ok(identities::table
        .find(identity.as_uuid())
        .select(IdentityRow::as_select())
        .first(conn)?)
}

fn free_default_name(
    conn: &mut PgConnection,
    identity: IdentityId,
    base: &PasskeyName,
) -> Result<PasskeyName, StoreError> {
    let taken: Vec<String> = passkeys::table
        .filter(passkeys::identity_id.eq(identity.as_uuid()))
        .select(passkeys::name)
        .load(conn)?;
    let is_free = |candidate: &PasskeyName| !taken.iter().any(|t| t == candidate.as_str());
    if is_free(base) {
        return Ok(base.clone());
    }
    // There are fewer passkeys than numbers, so this always finds one.
    let n = (2..)
        .find(|n| is_free(&base.numbered(*n)))
        .unwrap_or(u32::MAX);
    Ok(base.numbered(n))
}
