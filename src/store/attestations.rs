//! What registration verified about passkeys' authenticators, and the MDS3
//! BLOB every replica shares.

use chrono::{NaiveDate, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::outbox::{append, NewEvent};
use super::passkey_row::PasskeyRow;
use super::schema::{authenticator_metadata, passkey_attestations, passkeys};
use super::{Store, StoreError};

/// A passkey's verified attestation, as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = passkey_attestations)]
pub struct AttestationRow {
    pub passkey_id: Uuid,
    pub format: String,
    /// The AAGUID as attested (a root the metadata lists for it vouched).
    pub aaguid: Uuid,
    pub description: String,
    pub certification: Option<String>,
    pub metadata_no: i32,
    pub revoked_at: Option<chrono::DateTime<Utc>>,
    pub revoked_status: Option<String>,
    pub acted_status: Option<String>,
}

/// A verified attestation about to be stored with its passkey.
#[derive(Debug, Clone)]
pub struct NewAttestation {
    pub format: String,
    pub aaguid: Uuid,
    pub description: String,
    pub certification: Option<String>,
    pub metadata_no: i32,
}

impl NewAttestation {
    pub(super) fn insert(
        &self,
        conn: &mut PgConnection,
        passkey_id: Uuid,
    ) -> Result<AttestationRow, StoreError> {
        Ok(diesel::insert_into(passkey_attestations::table)
            .values(AttestationRow {
                passkey_id,
                format: self.format.clone(),
                aaguid: self.aaguid,
                description: self.description.clone(),
                certification: self.certification.clone(),
                metadata_no: self.metadata_no,
                revoked_at: None,
                revoked_status: None,
                acted_status: None,
            })
            .returning(AttestationRow::as_returning())
            .get_result(conn)?)
    }
}

/// What a BLOB's status change does to the passkeys of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    /// Their logins are refused from now on.
    Flag,
    /// An event only.
    Warn,
}

/// A stored MDS3 BLOB.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub no: i32,
    pub text: String,
}

impl Store {
    /// The attestations of these passkeys (by primary key).
    pub async fn attestations(
        &self,
        passkey_ids: Vec<Uuid>,
    ) -> Result<Vec<AttestationRow>, StoreError> {
        if passkey_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.run("attestations", move |conn| {
            Ok(passkey_attestations::table
                .filter(passkey_attestations::passkey_id.eq_any(&passkey_ids))
                .select(AttestationRow::as_select())
                .load(conn)?)
        })
        .await
    }

    /// The status a refused model's passkey was revoked for, if it was.
    pub async fn revoked_status(&self, passkey_id: Uuid) -> Result<Option<String>, StoreError> {
        self.run("revoked_status", move |conn| {
            Ok(passkey_attestations::table
                .find(passkey_id)
                .filter(passkey_attestations::revoked_at.is_not_null())
                .select(passkey_attestations::revoked_status)
                .first::<Option<String>>(conn)
                .optional()?
                .map(|status| status.unwrap_or_default()))
        })
        .await
    }

    /// Acts on the passkeys attested as `aaguid` for `status`, once: each
    /// passkey already acted on for this status is left alone, and the row
    /// locks make a second replica's identical refresh a no-op.
    pub async fn act_on_status(
        &self,
        aaguid: Uuid,
        status: String,
        action: StatusAction,
        event: impl Fn(&PasskeyRow, &AttestationRow) -> NewEvent + Send + 'static,
    ) -> Result<usize, StoreError> {
        let acted = self
            .run("act_on_status", move |conn| {
                conn.transaction(|conn| {
                    let pending: Vec<(AttestationRow, PasskeyRow)> = passkey_attestations::table
                        .inner_join(passkeys::table)
                        .filter(passkey_attestations::aaguid.eq(aaguid))
                        .filter(
                            passkey_attestations::acted_status
                                .is_distinct_from(Some(status.as_str())),
                        )
                        .select((AttestationRow::as_select(), PasskeyRow::as_select()))
                        .for_update()
                        .load(conn)?;
                    let mut events = Vec::with_capacity(pending.len());
                    for (attestation, passkey) in &pending {
                        let target = passkey_attestations::table.find(attestation.passkey_id);
                        let updated: AttestationRow = match action {
                            StatusAction::Flag => diesel::update(target)
                                .set((
                                    passkey_attestations::acted_status.eq(&status),
                                    passkey_attestations::revoked_at.eq(Utc::now()),
                                    passkey_attestations::revoked_status.eq(&status),
                                ))
                                .returning(AttestationRow::as_returning())
                                .get_result(conn)?,
                            StatusAction::Warn => diesel::update(target)
                                .set(passkey_attestations::acted_status.eq(&status))
                                .returning(AttestationRow::as_returning())
                                .get_result(conn)?,
                        };
                        events.push(event(passkey, &updated));
                    }
                    append(conn, &events)?;
                    Ok(events.len())
                })
            })
            .await?;
        if acted > 0 {
            self.outbox_written();
        }
        Ok(acted)
    }

    /// The newest stored BLOB.
    pub async fn latest_blob(&self) -> Result<Option<StoredBlob>, StoreError> {
        self.run("latest_blob", move |conn| {
            Ok(authenticator_metadata::table
                .order(authenticator_metadata::no.desc())
                .select((authenticator_metadata::no, authenticator_metadata::blob))
                .first::<(i32, String)>(conn)
                .optional()?
                .map(|(no, text)| StoredBlob { no, text }))
        })
        .await
    }

    /// Keeps a verified BLOB for the other replicas (a serial number already
    /// stored is left as it is), and the older ones are dropped.
    pub async fn store_blob(
        &self,
        no: i32,
        text: String,
        sha256: Vec<u8>,
        next_update: NaiveDate,
    ) -> Result<(), StoreError> {
        self.run("store_blob", move |conn| {
            conn.transaction(|conn| {
                diesel::insert_into(authenticator_metadata::table)
                    .values((
                        authenticator_metadata::no.eq(no),
                        authenticator_metadata::blob.eq(&text),
                        authenticator_metadata::sha256.eq(&sha256),
                        authenticator_metadata::next_update.eq(next_update),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)?;
                diesel::delete(
                    authenticator_metadata::table.filter(authenticator_metadata::no.lt(no)),
                )
                .execute(conn)?;
                Ok(())
            })
        })
        .await
    }
}
