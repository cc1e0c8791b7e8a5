//! The migrations: they apply, revert completely, and apply again, and the
//! diesel schema matches what they create.

use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use kratos_passkeys::store::schema::{ceremonies, identities, minted_sessions, passkeys};
use kratos_passkeys::store::{CeremonyRow, IdentityRow, PasskeyRow, MIGRATIONS};

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
        ["ceremonies", "identities", "minted_sessions", "passkeys"]
    );
    conn.revert_all_migrations(MIGRATIONS).expect("down");
    assert!(
        tables(&mut conn).is_empty(),
        "down removes everything up created"
    );
    conn.run_pending_migrations(MIGRATIONS).expect("up again");
    assert_eq!(tables(&mut conn).len(), 4);
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
    ceremonies::table
        .select(CeremonyRow::as_select())
        .limit(0)
        .load(&mut conn)
        .expect("ceremonies");
    minted_sessions::table
        .select((
            minted_sessions::kratos_session_id,
            minted_sessions::identity_id,
            minted_sessions::passkey_id,
            minted_sessions::delivery,
            minted_sessions::created_at,
        ))
        .limit(0)
        .load::<(
            uuid::Uuid,
            uuid::Uuid,
            Option<uuid::Uuid>,
            String,
            chrono::DateTime<chrono::Utc>,
        )>(&mut conn)
        .expect("minted_sessions");
}
