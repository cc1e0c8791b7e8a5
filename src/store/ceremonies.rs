//! The single-use marks of finished ceremonies. The ceremonies themselves
//! travel sealed in their ids; only their use is recorded here.
//!
//! Whether a ceremony has expired is decided here, by the database's clock,
//! in the statement that marks it used, and the marks are purged by the same
//! clock: the clocks of the replicas and of `gc` never take part, so a host
//! whose clock is behind cannot accept a ceremony whose mark is gone.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Interval, Timestamptz};

use super::{Store, StoreError};

/// What marking a ceremony used found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Marked now: this is its one use.
    Fresh,
    /// Marked before, by this replica or any other.
    Used,
    /// Past its expiry by the database's clock: not marked, refused.
    Expired,
}

impl Consumed {
    pub(super) fn from_flags(fresh: bool, expired: bool) -> Self {
        match (fresh, expired) {
            (true, _) => Consumed::Fresh,
            (false, true) => Consumed::Expired,
            (false, false) => Consumed::Used,
        }
    }
}

#[derive(QueryableByName)]
struct ConsumedRow {
    #[diesel(sql_type = Bool)]
    fresh: bool,
    #[diesel(sql_type = Bool)]
    expired: bool,
}

impl Store {
    /// Marks the ceremony with this challenge used, in one statement, unless
    /// it expired by the database's clock.
    pub async fn consume_ceremony(
        &self,
        challenge: Vec<u8>,
        expires_at: DateTime<Utc>,
    ) -> Result<Consumed, StoreError> {
        self.run("consume_ceremony", move |conn| {
            let row: ConsumedRow = diesel::sql_query(
                "WITH consumed AS ( \
                   INSERT INTO consumed_ceremonies (challenge, expires_at) \
                   SELECT $1, $2 WHERE $2 > now() \
                   ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM consumed) AS fresh, $2 <= now() AS expired",
            )
            .bind::<Bytea, _>(&challenge)
            .bind::<Timestamptz, _>(expires_at)
            .get_result(conn)?;
            Ok(Consumed::from_flags(row.fresh, row.expired))
        })
        .await
    }

    /// Forgets the marks of ceremonies expired for longer than `margin` by
    /// the database's clock: such a ceremony is refused as expired before its
    /// mark is looked at. The margin covers a database clock that steps back
    /// (a failover to a host whose clock is behind). `PURGE_BATCH` at a
    /// time.
    pub async fn purge_consumed_ceremonies(
        &self,
        margin: std::time::Duration,
    ) -> Result<usize, StoreError> {
        let margin = super::interval(margin);
        self.purge_in_batches("purge_consumed_ceremonies", move |conn| {
            diesel::sql_query(
                "DELETE FROM consumed_ceremonies WHERE ctid = ANY(ARRAY( \
                   SELECT ctid FROM consumed_ceremonies \
                   WHERE expires_at < now() - $1::interval \
                   ORDER BY expires_at LIMIT $2))",
            )
            .bind::<Interval, _>(margin)
            .bind::<BigInt, _>(super::PURGE_BATCH)
            .execute(conn)
        })
        .await
    }
}
