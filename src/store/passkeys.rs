//! Passkeys: stored credentials, their names, and what logins change on them.

use chrono::Utc;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use super::attestations::{AttestationRow, NewAttestation};
use super::identities::{ensure_identity, lock_identity};
use super::outbox::{append, NewEvent};
use super::passkey_row::PasskeyRow;
use super::schema::passkeys;
use super::{Store, StoreError};
use crate::configuration::PasskeysPerIdentity;
use crate::domain::{IdentityId, PasskeyId, PasskeyName};

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
    pub prf_enabled: Option<bool>,
    pub prf_salt: Vec<u8>,
    /// What attestation verified (none: the AAGUID is only a claim).
    pub attestation: Option<NewAttestation>,
}

/// What removing one passkey did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// The identity has no such passkey.
    NotFound,
    /// Refused: it is the identity's last passkey.
    LastPasskey,
}

/// The name a new passkey gets: the person's choice (refused when taken) or
/// a default that is numbered until it is free.
#[derive(Debug, Clone)]
pub enum NewPasskeyName {
    Chosen(PasskeyName),
    Default(PasskeyName),
}

impl Store {
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

    /// The passkey with this credential id (unique across identities).
    pub async fn passkey_by_credential_id(
        &self,
        credential_id: Vec<u8>,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        self.run("passkey_by_credential_id", move |conn| {
            let credential_id: &[u8] = &credential_id;
            Ok(passkeys::table
                .filter(passkeys::credential_id.eq(credential_id))
                .select(PasskeyRow::as_select())
                .first(conn)
                .optional()?)
        })
        .await
    }

    /// The identities that have passkeys, in id order, after `after`.
    pub async fn identities_with_passkeys(
        &self,
        after: Option<IdentityId>,
        limit: i64,
    ) -> Result<Vec<IdentityId>, StoreError> {
        self.run("identities_with_passkeys", move |conn| {
            let mut query = passkeys::table
                .select(passkeys::identity_id)
                .distinct()
                .order(passkeys::identity_id)
                .limit(limit)
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(passkeys::identity_id.gt(after.as_uuid()));
            }
            Ok(query
                .load::<Uuid>(conn)?
                .into_iter()
                .map(IdentityId::new)
                .collect())
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

    /// Stores a verified passkey, with the event `event` makes of it. A
    /// chosen name that is taken is refused; a default name is numbered
    /// ("Passkey 2") until it is free. Refused when the identity already
    /// holds `limit`: its row is locked first, so registrations finishing at
    /// once cannot all pass the count.
    pub async fn insert_passkey(
        &self,
        passkey: NewPasskey,
        name: NewPasskeyName,
        limit: PasskeysPerIdentity,
        event: impl FnOnce(&PasskeyRow, Option<&AttestationRow>) -> NewEvent + Send + 'static,
    ) -> Result<(PasskeyRow, Option<AttestationRow>), StoreError> {
        let row = self
            .run("insert_passkey", move |conn| {
                conn.transaction(|conn| {
                    let owner = ensure_identity(conn, passkey.identity_id)?;
                    lock_identity(conn, passkey.identity_id)?;
                    let held: i64 = passkeys::table
                        .filter(passkeys::identity_id.eq(passkey.identity_id.as_uuid()))
                        .count()
                        .get_result(conn)?;
                    if !limit.admits_one_more(held) {
                        return Err(StoreError::PasskeyLimitReached { limit });
                    }
                    let name = match name {
                        NewPasskeyName::Chosen(name) => name,
                        NewPasskeyName::Default(base) => {
                            free_default_name(conn, passkey.identity_id, &base)?
                        }
                    };
                    let row = diesel::insert_into(passkeys::table)
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
                            passkeys::prf_enabled.eq(passkey.prf_enabled),
                            passkeys::prf_salt.eq(&passkey.prf_salt),
                            // Registered here: the identity's own handle.
                            passkeys::user_handle.eq(owner.user_handle.as_bytes().as_slice()),
                        ))
                        .returning(PasskeyRow::as_returning())
                        .get_result(conn)?;
                    let attestation = passkey
                        .attestation
                        .as_ref()
                        .map(|a| a.insert(conn, row.id))
                        .transpose()?;
                    append(conn, &[event(&row, attestation.as_ref())])?;
                    Ok((row, attestation))
                })
            })
            .await?;
        self.outbox_written();
        Ok(row)
    }

    /// Renames one of the identity's passkeys; `event` gets the renamed row
    /// and the name it had.
    pub async fn rename_passkey(
        &self,
        identity: IdentityId,
        id: PasskeyId,
        name: PasskeyName,
        event: impl FnOnce(&PasskeyRow, &str) -> NewEvent + Send + 'static,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        let renamed = self
            .run("rename_passkey", move |conn| {
                conn.transaction(|conn| {
                    let owned = passkeys::table
                        .find(id.as_uuid())
                        .filter(passkeys::identity_id.eq(identity.as_uuid()));
                    let Some(previous) = owned
                        .select(passkeys::name)
                        .for_update()
                        .first::<String>(conn)
                        .optional()?
                    else {
                        return Ok(None);
                    };
                    let row = diesel::update(owned)
                        .set(passkeys::name.eq(name.as_str()))
                        .returning(PasskeyRow::as_returning())
                        .get_result(conn)?;
                    append(conn, &[event(&row, &previous)])?;
                    Ok(Some(row))
                })
            })
            .await?;
        if renamed.is_some() {
            self.outbox_written();
        }
        Ok(renamed)
    }

    /// Removes one of the identity's passkeys. With `keep_last`, refuses to
    /// remove its last one: the identity's row is locked first, so two
    /// removals of its last two passkeys at once cannot both pass the count.
    pub async fn delete_passkey(
        &self,
        identity: IdentityId,
        id: PasskeyId,
        keep_last: bool,
        event: impl FnOnce(&PasskeyRow) -> NewEvent + Send + 'static,
    ) -> Result<Removal, StoreError> {
        let removal = self
            .run("delete_passkey", move |conn| {
                conn.transaction(|conn| {
                    if keep_last {
                        lock_identity(conn, identity)?;
                        let others: i64 = passkeys::table
                            .filter(passkeys::identity_id.eq(identity.as_uuid()))
                            .filter(passkeys::id.ne(id.as_uuid()))
                            .count()
                            .get_result(conn)?;
                        let owned: i64 = passkeys::table
                            .find(id.as_uuid())
                            .filter(passkeys::identity_id.eq(identity.as_uuid()))
                            .count()
                            .get_result(conn)?;
                        if owned == 1 && others == 0 {
                            return Ok(Removal::LastPasskey);
                        }
                    }
                    let row = diesel::delete(
                        passkeys::table
                            .find(id.as_uuid())
                            .filter(passkeys::identity_id.eq(identity.as_uuid())),
                    )
                    .returning(PasskeyRow::as_returning())
                    .get_result(conn)
                    .optional()?;
                    match row {
                        Some(row) => {
                            append(conn, &[event(&row)])?;
                            Ok(Removal::Removed)
                        }
                        None => Ok(Removal::NotFound),
                    }
                })
            })
            .await?;
        if removal == Removal::Removed {
            self.outbox_written();
        }
        Ok(removal)
    }

    /// Removes all of the identity's passkeys, an event for each.
    pub async fn delete_all_passkeys(
        &self,
        identity: IdentityId,
        event: impl Fn(&PasskeyRow) -> NewEvent + Send + 'static,
    ) -> Result<usize, StoreError> {
        let deleted = self
            .run("delete_all_passkeys", move |conn| {
                conn.transaction(|conn| {
                    let mut rows = diesel::delete(
                        passkeys::table.filter(passkeys::identity_id.eq(identity.as_uuid())),
                    )
                    .returning(PasskeyRow::as_returning())
                    .get_results(conn)?;
                    rows.sort_by_key(|row| (row.created_at, row.id));
                    let new: Vec<NewEvent> = rows.iter().map(&event).collect();
                    append(conn, &new)?;
                    Ok(rows.len())
                })
            })
            .await?;
        if deleted > 0 {
            self.outbox_written();
        }
        Ok(deleted)
    }

    /// Disables a passkey whose counter went backwards, with the events
    /// `events` makes of it (unless it was disabled already).
    pub async fn flag_passkey(
        &self,
        id: PasskeyId,
        events: impl FnOnce(&PasskeyRow) -> Vec<NewEvent> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.run("flag_passkey", move |conn| {
            conn.transaction(|conn| {
                let flagged = diesel::update(
                    passkeys::table
                        .find(id.as_uuid())
                        .filter(passkeys::flagged_at.is_null()),
                )
                .set(passkeys::flagged_at.eq(Utc::now()))
                .returning(PasskeyRow::as_returning())
                .get_result(conn)
                .optional()?;
                if let Some(row) = flagged {
                    append(conn, &events(&row))?;
                }
                Ok(())
            })
        })
        .await?;
        self.outbox_written();
        Ok(())
    }
}

pub(super) fn free_default_name(
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
