//! The record of passkey logins: which passkey minted which Kratos session.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

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
    /// Saves what a successful login changed and records it, in one
    /// statement (atomic, and one round trip).
    pub async fn record_login(&self, update: LoginUpdate) -> Result<(), StoreError> {
        use diesel::sql_types::{BigInt, Bool, Bytea, Jsonb, Nullable, Text, Uuid as SqlUuid};
        self.run("record_login", move |conn| {
            diesel::sql_query(
                "WITH used AS ( \
                   UPDATE passkeys SET credential = COALESCE($2, credential), sign_count = $3, \
                     backup_eligible = $4, backup_state = $5, last_used_at = now(), \
                     user_handle = COALESCE($11, user_handle), \
                     unconfirmed_user_handles = CASE WHEN $11 IS NULL \
                       THEN unconfirmed_user_handles ELSE '{}' END \
                   WHERE id = $1 RETURNING id) \
                 INSERT INTO minted_sessions \
                   (id, kratos_session_id, identity_id, passkey_id, delivery, recovery_flow_id, state) \
                 SELECT $6, $7, $8, id, $9, $10, \
                   CASE WHEN $7::uuid IS NULL THEN 'pending' ELSE 'resolved' END FROM used",
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
            .execute(conn)?;
            Ok(())
        })
        .await
    }

    /// Fills in the Kratos session id of a pending login record.
    pub async fn resolve_session(
        &self,
        record: LoginRecordId,
        session: KratosSessionId,
    ) -> Result<bool, StoreError> {
        self.run("resolve_session", move |conn| {
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
            Ok(updated == 1)
        })
        .await
    }

    /// Says that this record's session id will never be known (Kratos
    /// would not tell).
    pub async fn give_up_session(&self, record: LoginRecordId) -> Result<usize, StoreError> {
        self.run("give_up_session", move |conn| {
            Ok(diesel::update(
                minted_sessions::table
                    .find(record.as_uuid())
                    .filter(minted_sessions::state.eq("pending")),
            )
            .set(minted_sessions::state.eq("unresolved"))
            .execute(conn)?)
        })
        .await
    }

    /// Says the same of every record still pending since before
    /// `pending_before`: the process that minted it stopped first.
    pub async fn give_up_stale_sessions(
        &self,
        pending_before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.run("give_up_stale_sessions", move |conn| {
            Ok(diesel::update(
                minted_sessions::table
                    .filter(minted_sessions::state.eq("pending"))
                    .filter(minted_sessions::created_at.lt(pending_before)),
            )
            .set(minted_sessions::state.eq("unresolved"))
            .execute(conn)?)
        })
        .await
    }
}
