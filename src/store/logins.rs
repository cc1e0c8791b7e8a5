//! The record of passkey logins: which passkey minted which Kratos session.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use super::ceremonies::Consumed;
use super::outbox::{release, NewEvent};
use super::schema::minted_sessions;
use super::{Store, StoreError};
use crate::domain::{IdentityId, KratosSessionId, LoginRecordId, PasskeyId, SessionDelivery};

/// What a verified passkey login writes before Kratos is asked for a
/// session: the ceremony's single use, what the assertion changed on the
/// passkey, and the login's record, still `minting`.
#[derive(Debug, Clone)]
pub struct LoginStart {
    pub record_id: LoginRecordId,
    pub passkey_id: PasskeyId,
    /// The ceremony's challenge and expiry (the single-use mark).
    pub challenge: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    /// The re-serialized credential when webauthn-rs reported a change.
    pub credential: Option<Value>,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    /// The user handle an imported passkey turned out to answer to, when it
    /// had unconfirmed candidates.
    pub confirmed_user_handle: Option<Vec<u8>>,
    pub delivery: SessionDelivery,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub passkey_name: String,
}

/// What `begin_login` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginBegun {
    /// Marked, saved and recorded: Kratos may be asked now.
    Recorded,
    /// The ceremony was used before or has expired: nothing was written.
    Refused(Consumed),
    /// The passkey was removed since it was read: nothing but the
    /// ceremony's mark was written.
    PasskeyGone,
}

/// What the login learnt from Kratos once the session was minted.
#[derive(Debug, Clone)]
pub struct LoginCompletion {
    pub record_id: LoginRecordId,
    pub identity_id: IdentityId,
    pub recovery_flow_id: Uuid,
    /// Known already when the login asked for the session object; else the
    /// record stays `pending` until `resolve_session`.
    pub session_id: Option<KratosSessionId>,
    /// `passkey.login`, with the record's id as its own; held until the
    /// session id is known when it is not yet.
    pub event: NewEvent,
}

/// How a login record ends when no session of it is left in Kratos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Kratos minted nothing.
    Failed,
    /// Kratos minted a session, and it was revoked.
    Revoked,
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Settled::Failed => "failed",
            Settled::Revoked => "revoked",
        }
    }
}

#[derive(QueryableByName)]
struct BegunRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    fresh: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    expired: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    recorded: bool,
}

#[derive(QueryableByName)]
struct CompletedRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    completed: bool,
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
    /// Marks the ceremony used (unless it was, or has expired by the
    /// database's clock), saves what the assertion changed on the passkey,
    /// and records the login as `minting`, in one statement: a session is
    /// only ever minted for a login recorded first. The stored counter only
    /// moves forward, also when logins with one key race: the credential
    /// is only replaced by one whose counter is not behind.
    pub async fn begin_login(&self, start: LoginStart) -> Result<LoginBegun, StoreError> {
        use diesel::sql_types::{
            BigInt, Bool, Bytea, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
        };
        self.run("begin_login", move |conn| {
            let row: BegunRow = diesel::sql_query(
                "WITH consumed AS ( \
                   INSERT INTO consumed_ceremonies (challenge, expires_at) \
                   SELECT $1, $2 WHERE $2 > now() \
                   ON CONFLICT DO NOTHING RETURNING 1), \
                 used AS ( \
                   UPDATE passkeys SET \
                     credential = CASE WHEN $4 >= sign_count \
                       THEN COALESCE($3, credential) ELSE credential END, \
                     sign_count = GREATEST(sign_count, $4), \
                     backup_eligible = $5, backup_state = $6, last_used_at = now(), \
                     user_handle = COALESCE($7, user_handle), \
                     unconfirmed_user_handles = CASE WHEN $7 IS NULL \
                       THEN unconfirmed_user_handles ELSE '{}' END \
                   WHERE id = $8 AND EXISTS (SELECT 1 FROM consumed) \
                   RETURNING id, identity_id), \
                 recorded AS ( \
                   INSERT INTO minted_sessions (id, identity_id, passkey_id, delivery, state, \
                     client_ip, user_agent, passkey_name) \
                   SELECT $9, identity_id, id, $10, 'minting', $11, $12, $13 FROM used \
                   RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM consumed) AS fresh, $2 <= now() AS expired, \
                   EXISTS (SELECT 1 FROM recorded) AS recorded",
            )
            .bind::<Bytea, _>(&start.challenge)
            .bind::<Timestamptz, _>(start.expires_at)
            .bind::<Nullable<Jsonb>, _>(start.credential.as_ref())
            .bind::<BigInt, _>(start.sign_count)
            .bind::<Bool, _>(start.backup_eligible)
            .bind::<Bool, _>(start.backup_state)
            .bind::<Nullable<Bytea>, _>(start.confirmed_user_handle.as_deref())
            .bind::<SqlUuid, _>(start.passkey_id.as_uuid())
            .bind::<SqlUuid, _>(start.record_id.as_uuid())
            .bind::<Text, _>(start.delivery.as_str())
            .bind::<Nullable<Text>, _>(start.client_ip.as_deref())
            .bind::<Nullable<Text>, _>(start.user_agent.as_deref())
            .bind::<Text, _>(&start.passkey_name)
            .get_result(conn)?;
            Ok(match Consumed::from_flags(row.fresh, row.expired) {
                Consumed::Fresh if row.recorded => LoginBegun::Recorded,
                Consumed::Fresh => LoginBegun::PasskeyGone,
                refused => LoginBegun::Refused(refused),
            })
        })
        .await
    }

    /// Completes a `minting` record once Kratos has minted its session, and
    /// writes its event (with its deliveries), in one statement. False when
    /// the record was settled already (by `gc`, after the process that
    /// minted it had stopped for longer than a login can take).
    pub async fn complete_login(&self, completion: LoginCompletion) -> Result<bool, StoreError> {
        use diesel::sql_types::{Array, Bool, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
        let event = completion.event;
        let completed = self
            .run("complete_login", move |conn| {
                let row: CompletedRow = diesel::sql_query(
                    "WITH recorded AS ( \
                       UPDATE minted_sessions SET recovery_flow_id = $2, kratos_session_id = $3, \
                         state = CASE WHEN $3::uuid IS NULL THEN 'pending' ELSE 'resolved' END \
                       WHERE id = $1 AND state = 'minting' RETURNING id), \
                     ev AS ( \
                       INSERT INTO events (id, type, identity_id, occurred_at, payload, settled_at) \
                       SELECT id, $5, $4, $6, $7, \
                         CASE WHEN cardinality($8::text[]) = 0 THEN $6 END \
                       FROM recorded RETURNING seq), \
                     deliveries AS ( \
                       INSERT INTO event_deliveries (event_seq, endpoint, identity_id, state, next_attempt_at) \
                       SELECT ev.seq, endpoint, $4, CASE WHEN $9 THEN 'held' ELSE 'pending' END, \
                         now() + $10 * interval '1 millisecond' \
                       FROM ev, unnest($8::text[]) AS endpoint RETURNING 1) \
                     SELECT EXISTS (SELECT 1 FROM recorded) AS completed",
                )
                .bind::<SqlUuid, _>(completion.record_id.as_uuid())
                .bind::<SqlUuid, _>(completion.recovery_flow_id)
                .bind::<Nullable<SqlUuid>, _>(completion.session_id.map(|s| s.as_uuid()))
                .bind::<SqlUuid, _>(completion.identity_id.as_uuid())
                .bind::<Text, _>(event.kind)
                .bind::<Timestamptz, _>(event.occurred_at)
                .bind::<Jsonb, _>(&event.payload)
                .bind::<Array<Text>, _>(&event.endpoints)
                .bind::<Bool, _>(event.held.is_some())
                .bind::<diesel::sql_types::BigInt, _>(event.held.map_or(0, super::outbox::millis))
                .get_result(conn)?;
                Ok(row.completed)
            })
            .await?;
        self.outbox_written();
        Ok(completed)
    }

    /// Ends a record that has no session left in Kratos: none was minted,
    /// or the one minted was revoked.
    pub async fn settle_login(
        &self,
        record: LoginRecordId,
        settled: Settled,
        recovery_flow_id: Option<Uuid>,
    ) -> Result<(), StoreError> {
        self.run("settle_login", move |conn| {
            diesel::update(
                minted_sessions::table
                    .find(record.as_uuid())
                    .filter(minted_sessions::state.eq_any(["minting", "pending"])),
            )
            .set((
                minted_sessions::state.eq(settled.as_str()),
                minted_sessions::recovery_flow_id.eq(recovery_flow_id),
            ))
            .execute(conn)?;
            Ok(())
        })
        .await
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
        pending_for: std::time::Duration,
    ) -> Result<usize, StoreError> {
        #[derive(QueryableByName)]
        struct GivenUp {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
        }
        // The database's clock, which wrote `created_at`: a gc host whose
        // clock runs ahead cannot give up a login still minting.
        let pending_for = super::interval(pending_for);
        let given_up = self
            .run("give_up_stale_sessions", move |conn| {
                conn.transaction(|conn| {
                    let records: Vec<Uuid> = diesel::sql_query(
                        "UPDATE minted_sessions SET state = 'unresolved' \
                         WHERE state IN ('minting', 'pending') \
                           AND created_at < now() - $1::interval RETURNING id",
                    )
                    .bind::<diesel::sql_types::Interval, _>(pending_for)
                    .load::<GivenUp>(conn)?
                    .into_iter()
                    .map(|row| row.id)
                    .collect();
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

    /// Deletes settled login records made longer ago than `retention`, by
    /// the database's clock, in batches; a record still `minting` or
    /// `pending` stays until it is settled.
    pub async fn purge_login_records(
        &self,
        retention: std::time::Duration,
    ) -> Result<usize, StoreError> {
        let retention = super::interval(retention);
        self.purge_in_batches("purge_login_records", move |conn| {
            diesel::sql_query(
                "DELETE FROM minted_sessions WHERE ctid = ANY(ARRAY( \
                   SELECT ctid FROM minted_sessions \
                    WHERE created_at < now() - $1::interval \
                      AND state NOT IN ('minting', 'pending') \
                    ORDER BY created_at LIMIT $2))",
            )
            .bind::<diesel::sql_types::Interval, _>(retention)
            .bind::<diesel::sql_types::BigInt, _>(super::PURGE_BATCH)
            .execute(conn)
        })
        .await
    }
}
