//! The single-use marks of finished ceremonies. The ceremonies themselves
//! travel sealed in their ids; only their use is recorded here.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::consumed_ceremonies;
use super::{Store, StoreError};

impl Store {
    /// Marks the ceremony with this challenge used, in one statement; false
    /// when it was used already (by this replica or any other).
    pub async fn consume_ceremony(
        &self,
        challenge: Vec<u8>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run("consume_ceremony", move |conn| {
            let inserted = diesel::insert_into(consumed_ceremonies::table)
                .values((
                    consumed_ceremonies::challenge.eq(&challenge),
                    consumed_ceremonies::expires_at.eq(expires_at),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            Ok(inserted == 1)
        })
        .await
    }

    /// Forgets the marks of ceremonies that have expired anyway: an expired
    /// ceremony is refused before its mark is looked at.
    pub async fn purge_consumed_ceremonies(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.run("purge_consumed_ceremonies", move |conn| {
            Ok(diesel::delete(
                consumed_ceremonies::table.filter(consumed_ceremonies::expires_at.lt(now)),
            )
            .execute(conn)?)
        })
        .await
    }
}
