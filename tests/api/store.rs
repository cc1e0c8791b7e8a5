//! The migrations: they apply, revert completely, and apply again, and the
//! diesel schema matches what they create.

use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use kratos_passkeys::store::schema::{
    authenticator_metadata, consumed_ceremonies, event_deliveries, events, identities,
    minted_sessions, passkey_attestations, passkeys,
};
use kratos_passkeys::store::{
    AttestationRow, DeliveryRow, EventRow, IdentityRow, LoginRecord, MintedSessionRecord,
    PasskeyRow, MIGRATIONS,
};

use crate::helpers::create_database;

fn tables(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
    }
    let mut names: Vec<String> = diesel::sql_query(
        "SELECT table_name::text AS table_name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .load::<Table>(conn)
    .expect("tables")
    .into_iter()
    .map(|t| t.table_name)
    .collect();
    names.sort();
    names
}

#[test]
fn migrations_are_reversible() {
    let (_, url) = create_database();
    let mut conn = PgConnection::establish(&url).expect("connect");
    conn.run_pending_migrations(MIGRATIONS).expect("up");
    assert_eq!(
        tables(&mut conn),
        [
            "authenticator_metadata",
            "consumed_ceremonies",
            "event_deliveries",
            "events",
            "identities",
            "minted_sessions",
            "passkey_attestations",
            "passkeys"
        ]
    );
    conn.revert_all_migrations(MIGRATIONS).expect("down");
    assert!(
        tables(&mut conn).is_empty(),
        "down removes everything up created"
    );
    conn.run_pending_migrations(MIGRATIONS).expect("up again");
    assert_eq!(tables(&mut conn).len(), 8);
}

#[test]
fn the_schema_matches_the_migrations() {
    let (_, url) = create_database();
    let mut conn = PgConnection::establish(&url).expect("connect");
    conn.run_pending_migrations(MIGRATIONS).expect("up");
    // Every column diesel knows, selected by name and type.
    identities::table
        .select(IdentityRow::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("identities");
    passkeys::table
        .select(PasskeyRow::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("passkeys");
    consumed_ceremonies::table
        .select((
            consumed_ceremonies::challenge,
            consumed_ceremonies::expires_at,
        ))
        .limit(0)
        .load::<(Vec<u8>, chrono::DateTime<chrono::Utc>)>(&mut conn)
        .expect("consumed_ceremonies");
    passkey_attestations::table
        .select(AttestationRow::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("passkey_attestations");
    authenticator_metadata::table
        .select((
            authenticator_metadata::no,
            authenticator_metadata::blob,
            authenticator_metadata::sha256,
            authenticator_metadata::next_update,
            authenticator_metadata::stored_at,
        ))
        .limit(0)
        .load::<(
            i32,
            String,
            Vec<u8>,
            chrono::NaiveDate,
            chrono::DateTime<chrono::Utc>,
        )>(&mut conn)
        .expect("authenticator_metadata");
    minted_sessions::table
        .select(LoginRecord::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("minted_sessions");
    minted_sessions::table
        .select(MintedSessionRecord::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("minted_sessions, as the audit reads them");
    events::table
        .select(EventRow::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("events");
    event_deliveries::table
        .select(DeliveryRow::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("event_deliveries");
}

const SESSION_RECORDS: &str = "2026-11-24-000004";

/// Reverts the newest migrations down to and including `version`.
fn revert_through(conn: &mut PgConnection, version: &str) {
    loop {
        let reverted = conn.revert_last_migration(MIGRATIONS).expect("down");
        if reverted.to_string().replace('-', "") == version.replace('-', "") {
            return;
        }
    }
}

#[test]
fn recorded_logins_survive_the_session_record_migration_both_ways() {
    let (_, url) = create_database();
    let mut conn = PgConnection::establish(&url).expect("connect");
    conn.run_pending_migrations(MIGRATIONS).expect("up");
    revert_through(&mut conn, SESSION_RECORDS);
    let identity = uuid::Uuid::new_v4();
    diesel::sql_query(format!(
        "INSERT INTO minted_sessions (kratos_session_id, identity_id, delivery) \
         VALUES ('{}', '{identity}', 'token')",
        uuid::Uuid::new_v4()
    ))
    .execute(&mut conn)
    .expect("a login recorded before");
    conn.run_pending_migrations(MIGRATIONS).expect("up again");
    let records: Vec<LoginRecord> = minted_sessions::table
        .select(LoginRecord::as_select())
        .load(&mut conn)
        .expect("records");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, "resolved");
    assert!(records[0].kratos_session_id.is_some());
    // A pending record cannot be kept by the older schema; a resolved one is.
    diesel::sql_query(format!(
        "INSERT INTO minted_sessions (identity_id, delivery, state) VALUES ('{identity}', 'cookie', 'pending')"
    ))
    .execute(&mut conn)
    .expect("a pending record");
    revert_through(&mut conn, SESSION_RECORDS);
    assert_eq!(
        minted_sessions::table
            .count()
            .get_result::<i64>(&mut conn)
            .expect("count"),
        1
    );
}
