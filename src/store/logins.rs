//! The record of passkey logins: which passkey minted which Kratos session.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use super::outbox::{release, NewEvent};
use super::schema::minted_sessions;
use super::{Store, StoreError};
use crate::domain::{IdentityId, KratosSessionId, LoginRecordId, PasskeyId, SessionDelivery};

/// What a successful passkey login changes on the stored credential, and
/// the record of the session it minted.
#[derive(Debug, Clone)]
pub struct LoginUpdate {
    pub record_id: LoginRecordId,
    pub passkey_id: PasskeyId,
    /// The re-serialized credential when webauthn-rs reported a change.
    pub credential: Option<Value>,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub identity_id: IdentityId,
    pub recovery_flow_id: Uuid,
    /// Known already when the login asked for the session object; else the
    /// record stays `pending` until `resolve_session`.
    pub session_id: Option<KratosSessionId>,
    pub delivery: SessionDelivery,
    /// The user handle an imported passkey turned out to answer to, when it
    /// had unconfirmed candidates.
    pub confirmed_user_handle: Option<Vec<u8>>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub passkey_name: String,
    /// `passkey.login`, with the record's id as its own; held until the
    /// session id is known when it is not yet.
    pub event: NewEvent,
}

/// Which passkey minted a Kratos session, when, and from where.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = minted_sessions)]
pub struct MintedSessionRecord {
    pub id: Uuid,
    pub kratos_session_id: Option<Uuid>,
    pub identity_id: Uuid,
    pub passkey_id: Option<Uuid>,
    pub passkey_name: Option<String>,
    pub delivery: String,
    pub recovery_flow_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A login record as the admin view and the tests read it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = minted_sessions)]
pub struct LoginRecord {
    pub id: Uuid,
    pub kratos_session_id: Option<Uuid>,
    pub identity_id: Uuid,
    pub passkey_id: Option<Uuid>,
    pub delivery: String,
    pub recovery_flow_id: Option<Uuid>,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Saves what a successful login changed, records it, and writes its
    /// event (with its deliveries), in one statement: atomic, and one round
    /// trip on the login's path.
    pub async fn record_login(&self, update: LoginUpdate) -> Result<(), StoreError> {
        use diesel::sql_types::{
            Array, BigInt, Bool, Bytea, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
        };
        let event = update.event;
        self.run("record_login", move |conn| {
            diesel::sql_query(
                "WITH used AS ( \
                   UPDATE passkeys SET credential = COALESCE($2, credential), sign_count = $3, \
                     backup_eligible = $4, backup_state = $5, last_used_at = now(), \
                     user_handle = COALESCE($11, user_handle), \
                     unconfirmed_user_handles = CASE WHEN $11 IS NULL \
                       THEN unconfirmed_user_handles ELSE '{}' END \
                   WHERE id = $1 RETURNING id), \
                 recorded AS ( \
                   INSERT INTO minted_sessions (id, kratos_session_id, identity_id, passkey_id, \
                     delivery, recovery_flow_id, state, client_ip, user_agent, passkey_name) \
                   SELECT $6, $7, $8, id, $9, $10, \
                     CASE WHEN $7::uuid IS NULL THEN 'pending' ELSE 'resolved' END, \
                     $12, $13, $14 FROM used RETURNING id), \
                 ev AS ( \
                   INSERT INTO events (id, type, identity_id, occurred_at, payload, settled_at) \
                   SELECT id, $15, $8, $16, $17, \
                     CASE WHEN cardinality($18::text[]) = 0 THEN $16 END \
                   FROM recorded RETURNING seq) \
                 INSERT INTO event_deliveries (event_seq, endpoint, identity_id, state) \
                 SELECT ev.seq, endpoint, $8, \
                   CASE WHEN $19 THEN 'held' ELSE 'pending' END \
                 FROM ev, unnest($18::text[]) AS endpoint",
            )
            .bind::<SqlUuid, _>(update.passkey_id.as_uuid())
            .bind::<Nullable<Jsonb>, _>(update.credential.as_ref())
            .bind::<BigInt, _>(update.sign_count)
            .bind::<Bool, _>(update.backup_eligible)
            .bind::<Bool, _>(update.backup_state)
            .bind::<SqlUuid, _>(update.record_id.as_uuid())
            .bind::<Nullable<SqlUuid>, _>(update.session_id.map(|s| s.as_uuid()))
            .bind::<SqlUuid, _>(update.identity_id.as_uuid())
            .bind::<Text, _>(update.delivery.as_str())
            .bind::<SqlUuid, _>(update.recovery_flow_id)
            .bind::<Nullable<Bytea>, _>(update.confirmed_user_handle.as_deref())
            .bind::<Nullable<Text>, _>(update.client_ip.as_deref())
            .bind::<Nullable<Text>, _>(update.user_agent.as_deref())
            .bind::<Text, _>(&update.passkey_name)
            .bind::<Text, _>(event.kind)
            .bind::<Timestamptz, _>(event.occurred_at)
            .bind::<Jsonb, _>(&event.payload)
            .bind::<Array<Text>, _>(&event.endpoints)
            .bind::<Bool, _>(event.held)
            .execute(conn)?;
            Ok(())
        })
        .await?;
        self.outbox_written();
        Ok(())
    }

    /// Which passkey login minted the Kratos session `session`, if one did.
    pub async fn minted_session(
        &self,
        session: KratosSessionId,
    ) -> Result<Option<MintedSessionRecord>, StoreError> {
        self.run("minted_session", move |conn| {
            Ok(minted_sessions::table
                .filter(minted_sessions::kratos_session_id.eq(session.as_uuid()))
                .select(MintedSessionRecord::as_select())
                .first(conn)
                .optional()?)
        })
        .await
    }

    /// Fills in the Kratos session id of a pending login record.
    pub async fn resolve_session(
        &self,
        record: LoginRecordId,
        session: KratosSessionId,
    ) -> Result<bool, StoreError> {
        let resolved = self
            .run("resolve_session", move |conn| {
                conn.transaction(|conn| {
                    let updated = diesel::update(
                        minted_sessions::table
                            .find(record.as_uuid())
                            .filter(minted_sessions::state.eq("pending")),
                    )
                    .set((
                        minted_sessions::kratos_session_id.eq(session.as_uuid()),
                        minted_sessions::state.eq("resolved"),
                    ))
                    .execute(conn)?;
                    if updated == 1 {
                        release(conn, record.as_uuid(), Some(session.as_uuid()))?;
                    }
                    Ok(updated == 1)
                })
            })
            .await?;
        self.outbox_written();
        Ok(resolved)
    }

    /// Says that this record's session id will never be known (Kratos
    /// would not tell).
    pub async fn give_up_session(&self, record: LoginRecordId) -> Result<usize, StoreError> {
        let given_up = self
            .run("give_up_session", move |conn| {
                conn.transaction(|conn| {
                    let updated = diesel::update(
                        minted_sessions::table
                            .find(record.as_uuid())
                            .filter(minted_sessions::state.eq("pending")),
                    )
                    .set(minted_sessions::state.eq("unresolved"))
                    .execute(conn)?;
                    if updated == 1 {
                        release(conn, record.as_uuid(), None)?;
                    }
                    Ok(updated)
                })
            })
            .await?;
        self.outbox_written();
        Ok(given_up)
    }

    /// Says the same of every record still pending since before
    /// `pending_before`: the process that minted it stopped first.
    pub async fn give_up_stale_sessions(
        &self,
        pending_before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let given_up = self
            .run("give_up_stale_sessions", move |conn| {
                conn.transaction(|conn| {
                    let records: Vec<Uuid> = diesel::update(
                        minted_sessions::table
                            .filter(minted_sessions::state.eq("pending"))
                            .filter(minted_sessions::created_at.lt(pending_before)),
                    )
                    .set(minted_sessions::state.eq("unresolved"))
                    .returning(minted_sessions::id)
                    .get_results(conn)?;
                    for record in &records {
                        release(conn, *record, None)?;
                    }
                    Ok(records.len())
                })
            })
            .await?;
        if given_up > 0 {
            self.outbox_written();
        }
        Ok(given_up)
    }
}
