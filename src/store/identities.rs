//! Identities the service knows: their WebAuthn user handle and the
//! enrollment offer's state.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use uuid::Uuid;

use super::outbox::{append, NewEvent};
use super::passkey_row::PasskeyRow;
use super::schema::{identities, passkeys};
use super::{Store, StoreError};
use crate::domain::{IdentityId, UserDetails, UserHandle};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = identities)]
pub struct IdentityRow {
    pub identity_id: Uuid,
    pub user_handle: Uuid,
    pub registered_at: Option<DateTime<Utc>>,
    pub enrollment_dismissed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The names the person's passkeys know them by (see `UserDetails`).
    pub user_name: Option<String>,
    pub display_name: Option<String>,
}

impl Store {
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

    /// The identity's row (created on first use) with `details` recorded as
    /// its current names.
    pub async fn identity_with_details(
        &self,
        identity: IdentityId,
        details: UserDetails,
    ) -> Result<IdentityRow, StoreError> {
        self.run("identity_with_details", move |conn| {
            conn.transaction(|conn| {
                let row = ensure_identity(conn, identity)?;
                match record_details(conn, identity, &details)? {
                    Some(updated) => Ok(updated),
                    None => Ok(row),
                }
            })
        })
        .await
    }

    /// Records the identity's new names (Kratos's after-settings hook). An
    /// identity the service does not know has no passkey to tell about
    /// them: nothing is created. True when the names changed.
    pub async fn update_details(
        &self,
        identity: IdentityId,
        details: UserDetails,
    ) -> Result<bool, StoreError> {
        self.run("update_details", move |conn| {
            Ok(record_details(conn, identity, &details)?.is_some())
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

    /// The identities the service knows, in id order, after `after`, for
    /// garbage collection: a page at a time, by the primary key, so memory
    /// and each statement stay the same however many there are.
    pub async fn identity_ids(
        &self,
        after: Option<IdentityId>,
        limit: i64,
    ) -> Result<Vec<IdentityId>, StoreError> {
        self.run("identity_ids", move |conn| {
            let mut query = identities::table
                .select(identities::identity_id)
                .order(identities::identity_id)
                .limit(limit)
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(identities::identity_id.gt(after.as_uuid()));
            }
            Ok(query
                .load::<Uuid>(conn)?
                .into_iter()
                .map(IdentityId::new)
                .collect())
        })
        .await
    }

    /// Forgets everything about an identity Kratos no longer has; `event`
    /// reports it with the passkeys removed (when there was anything).
    pub async fn purge_identity(
        &self,
        identity: IdentityId,
        event: impl FnOnce(&[PasskeyRow]) -> NewEvent + Send + 'static,
    ) -> Result<usize, StoreError> {
        let removed = self
            .run("purge_identity", move |conn| {
                conn.transaction(|conn| {
                    let removed = diesel::delete(
                        passkeys::table.filter(passkeys::identity_id.eq(identity.as_uuid())),
                    )
                    .returning(PasskeyRow::as_returning())
                    .get_results(conn)?;
                    let known =
                        diesel::delete(identities::table.find(identity.as_uuid())).execute(conn)?;
                    if known > 0 || !removed.is_empty() {
                        append(conn, &[event(&removed)])?;
                    }
                    Ok(removed.len())
                })
            })
            .await?;
        self.outbox_written();
        Ok(removed)
    }
}

/// Writes the names when they differ from the stored ones; the updated row,
/// or `None` when nothing changed (or the identity is unknown).
fn record_details(
    conn: &mut PgConnection,
    identity: IdentityId,
    details: &UserDetails,
) -> Result<Option<IdentityRow>, StoreError> {
    Ok(diesel::update(
        identities::table.find(identity.as_uuid()).filter(
            identities::user_name
                .is_distinct_from(&details.name)
                .or(identities::display_name.is_distinct_from(&details.display_name)),
        ),
    )
    .set((
        identities::user_name.eq(&details.name),
        identities::display_name.eq(&details.display_name),
    ))
    .returning(IdentityRow::as_returning())
    .get_result(conn)
    .optional()?)
}

/// Locks `identity`'s row until the transaction ends: counts of its
/// passkeys taken after it hold for writes made under it (at most the
/// limit, never the last one removed twice).
pub(super) fn lock_identity(
    conn: &mut PgConnection,
    identity: IdentityId,
) -> Result<(), StoreError> {
    identities::table
        .find(identity.as_uuid())
        .select(identities::identity_id)
        .for_update()
        .first::<Uuid>(conn)
        .optional()?;
    Ok(())
}

pub(super) fn ensure_identity(
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
