//! Passkeys brought in from elsewhere (Kratos's own credentials): one
//! identity's in one transaction, so an identity is imported whole or not
//! at all, and a dry run is the same transaction rolled back.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde_json::Value;
use uuid::Uuid;

use super::identities::ensure_identity;
use super::outbox::{append, NewEvent};
use super::passkey_row::PasskeyRow;
use super::passkeys::free_default_name;
use super::schema::passkeys;
use super::{Store, StoreError};
use crate::domain::{IdentityId, PasskeyId, PasskeyName};

/// A credential to store as it is, under the identity it belongs to.
#[derive(Debug, Clone)]
pub struct ImportedPasskey {
    pub credential_id: Vec<u8>,
    pub credential: Value,
    pub user_handle: Vec<u8>,
    pub unconfirmed_user_handles: Vec<Vec<u8>>,
    /// The base of its name, numbered when the identity uses it already.
    pub name: PasskeyName,
    pub aaguid: Uuid,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: i64,
    pub created_at: Option<DateTime<Utc>>,
}

/// What importing one identity's credentials did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub imported: usize,
    /// Already here under the same identity (an earlier run).
    pub already_present: usize,
    /// Held here by another identity: left alone.
    pub owned_elsewhere: usize,
}

enum Abort {
    DryRun(ImportOutcome),
    Failed(StoreError),
}

impl From<DieselError> for Abort {
    fn from(error: DieselError) -> Self {
        Abort::Failed(error.into())
    }
}

impl From<StoreError> for Abort {
    fn from(error: StoreError) -> Self {
        Abort::Failed(error)
    }
}

impl Store {
    pub async fn import_passkeys(
        &self,
        identity: IdentityId,
        credentials: Vec<ImportedPasskey>,
        dry_run: bool,
        event: impl Fn(&PasskeyRow) -> NewEvent + Send + 'static,
    ) -> Result<ImportOutcome, StoreError> {
        let outcome = self
            .run("import_passkeys", move |conn| {
                let result = conn.transaction(|conn| {
                    let outcome = import_all(conn, identity, &credentials, &event)?;
                    if dry_run {
                        return Err(Abort::DryRun(outcome));
                    }
                    Ok(outcome)
                });
                match result {
                    Ok(outcome) | Err(Abort::DryRun(outcome)) => Ok(outcome),
                    Err(Abort::Failed(error)) => Err(error),
                }
            })
            .await?;
        if outcome.imported > 0 && !dry_run {
            self.outbox_written();
        }
        Ok(outcome)
    }
}

fn import_all(
    conn: &mut PgConnection,
    identity: IdentityId,
    credentials: &[ImportedPasskey],
    event: &dyn Fn(&PasskeyRow) -> NewEvent,
) -> Result<ImportOutcome, Abort> {
    let mut outcome = ImportOutcome::default();
    if credentials.is_empty() {
        return Ok(outcome);
    }
    ensure_identity(conn, identity)?;
    for credential in credentials {
        let owner: Option<Uuid> = passkeys::table
            .filter(passkeys::credential_id.eq(&credential.credential_id))
            .select(passkeys::identity_id)
            .first(conn)
            .optional()?;
        match owner {
            Some(owner) if owner == identity.as_uuid() => outcome.already_present += 1,
            Some(_) => outcome.owned_elsewhere += 1,
            None => {
                let name = free_default_name(conn, identity, &credential.name)?;
                let row = diesel::insert_into(passkeys::table)
                    .values((
                        passkeys::id.eq(PasskeyId::generate().as_uuid()),
                        passkeys::identity_id.eq(identity.as_uuid()),
                        passkeys::credential_id.eq(&credential.credential_id),
                        passkeys::credential.eq(&credential.credential),
                        passkeys::name.eq(name.as_str()),
                        passkeys::aaguid.eq(credential.aaguid),
                        passkeys::transports.eq(&credential.transports),
                        passkeys::backup_eligible.eq(credential.backup_eligible),
                        passkeys::backup_state.eq(credential.backup_state),
                        passkeys::sign_count.eq(credential.sign_count),
                        passkeys::created_at.eq(credential.created_at.unwrap_or_else(Utc::now)),
                        passkeys::user_handle.eq(&credential.user_handle),
                        passkeys::unconfirmed_user_handles.eq(&credential.unconfirmed_user_handles),
                    ))
                    .returning(PasskeyRow::as_returning())
                    .get_result(conn)?;
                append(conn, &[event(&row)])?;
                outcome.imported += 1;
            }
        }
    }
    Ok(outcome)
}
