//! The single-use marks of finished ceremonies. The ceremonies themselves
//! travel sealed in their ids; only their use is recorded here.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Bytea, Timestamptz};

use super::schema::consumed_ceremonies;
use super::{PasskeyRow, Store, StoreError};

#[derive(QueryableByName)]
struct ConsumedAndFound {
    #[diesel(sql_type = Bool)]
    fresh: bool,
    #[diesel(embed)]
    passkey: Option<PasskeyRow>,
}

/// What finishing a login learns in its first statement.
pub struct LoginCeremony {
    /// False when the ceremony was used before.
    pub fresh: bool,
    /// The passkey with the assertion's credential id (with the user handle
    /// it answers to).
    pub credential: Option<PasskeyRow>,
}

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

    /// `consume_ceremony` and the lookup of the credential by id, in one
    /// statement: a login's only round trip before the signature check.
    pub async fn consume_login_ceremony(
        &self,
        challenge: Vec<u8>,
        expires_at: DateTime<Utc>,
        credential_id: Vec<u8>,
    ) -> Result<LoginCeremony, StoreError> {
        self.run("consume_login_ceremony", move |conn| {
            let row: ConsumedAndFound = diesel::sql_query(
                "WITH consumed AS ( \
                   INSERT INTO consumed_ceremonies (challenge, expires_at) VALUES ($1, $2) \
                   ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM consumed) AS fresh, p.* \
                 FROM (SELECT 1) AS one \
                 LEFT JOIN passkeys p ON p.credential_id = $3",
            )
            .bind::<Bytea, _>(&challenge)
            .bind::<Timestamptz, _>(expires_at)
            .bind::<Bytea, _>(&credential_id)
            .get_result(conn)?;
            Ok(LoginCeremony {
                fresh: row.fresh,
                credential: row.passkey,
            })
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
