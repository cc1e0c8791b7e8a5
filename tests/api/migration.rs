//! `import-kratos` and `export-kratos` against the real Kratos with its own
//! passkey method: passkeys Kratos registered sign in here, and passkeys
//! registered here sign in with Kratos's own login where its admin API
//! takes them.

use kratos_passkeys::domain::IdentityId;
use kratos_passkeys::migration::export::{
    accepts_credential_patches, export_to_kratos, ExportSummary,
};
use kratos_passkeys::migration::import::{import_from_kratos, ImportSummary};
use kratos_passkeys::migration::{MigrationError, Options, Progress};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::authenticator::b64;
use crate::helpers::{
    assert_error, binary, passkey_limit, spawn_app, spawn_app_with, status_and_json, Auth,
    Authenticator, TestApp, TestUser,
};

/// A run for one identity.
fn only(identity: Uuid, dry_run: bool) -> Options {
    Options {
        dry_run,
        identity: Some(IdentityId::new(identity)),
    }
}

async fn try_import(
    app: &TestApp,
    identity: Uuid,
    dry_run: bool,
) -> Result<ImportSummary, MigrationError> {
    let state = app.state.as_ref().expect("in-process app");
    import_from_kratos(
        &state.kratos,
        &state.store,
        &state.events,
        only(identity, dry_run),
        &Progress::hidden(),
    )
    .await
}

async fn import(app: &TestApp, identity: Uuid, dry_run: bool) -> ImportSummary {
    try_import(app, identity, dry_run).await.expect("import")
}

async fn export(
    app: &TestApp,
    identity: Uuid,
    dry_run: bool,
) -> Result<ExportSummary, MigrationError> {
    let state = app.state.as_ref().expect("in-process app");
    export_to_kratos(
        &state.kratos,
        &state.store,
        &state.events,
        only(identity, dry_run),
        &Progress::hidden(),
    )
    .await
}

/// The release the test Kratos reports.
async fn kratos_version(app: &TestApp) -> String {
    let state = app.state.as_ref().expect("in-process app");
    state.kratos.version().await.expect("Kratos version")
}

/// On a Kratos that discards credential patches (v1.3.1), export refuses
/// before writing anything, naming the release and why.
async fn assert_export_refused(app: &TestApp, identity: Uuid, version: &str) {
    let refused = export(app, identity, false).await.expect_err("refused");
    let message = refused.to_string();
    assert!(
        matches!(&refused, MigrationError::ExportUnsupported { version: named } if named == version),
        "{message}"
    );
    assert!(message.contains(version), "{message}");
    assert!(message.contains("identity/handler.go:901"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(events_of(app, "passkey.exported"), 0, "nothing exported");
}

/// A Kratos user with `count` passkeys added through Kratos's own settings,
/// one authenticator each.
async fn user_with_kratos_passkeys(app: &TestApp, count: usize) -> (TestUser, Vec<Authenticator>) {
    let user = app.kratos.create_user().await;
    let mut authenticators = Vec::new();
    for _ in 0..count {
        let mut authenticator = Authenticator::new();
        app.kratos
            .add_passkey_in_kratos(&user, &mut authenticator)
            .await;
        authenticators.push(authenticator);
    }
    (user, authenticators)
}

/// A discoverable login through the service: its answer.
async fn login_here(app: &TestApp, authenticator: &mut Authenticator, body: Value) -> (u16, Value) {
    let (status, options) = app
        .post_json("/passkeys/login/options", &Auth::None, &body)
        .await;
    assert_eq!(status, 200, "{options}");
    let credential = authenticator.login(&options);
    login_with(app, &options, &credential).await
}

async fn login_with(app: &TestApp, options: &Value, credential: &Value) -> (u16, Value) {
    app.post_json(
        "/passkeys/login/verify",
        &Auth::None,
        &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"}),
    )
    .await
}

/// Signs in here and checks Kratos accepts the minted session as `user`'s.
async fn signs_in_here(
    app: &TestApp,
    authenticator: &mut Authenticator,
    user: &TestUser,
    body: Value,
) {
    let (status, answer) = login_here(app, authenticator, body).await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["session_token"].as_str().expect("token");
    assert_eq!(app.kratos.whoami_token(token).await, (200, Some(user.id)));
}

fn row_counts(app: &TestApp) -> (i64, i64) {
    (
        app.passkeys_stored(),
        app.count("SELECT count(*) AS count FROM identities"),
    )
}

#[tokio::test]
async fn a_passkey_kratos_registered_signs_in_here_after_import() {
    let app = spawn_app().await;
    let (user, mut authenticators) = user_with_kratos_passkeys(&app, 1).await;
    let authenticator = &mut authenticators[0];

    let dry = import(&app, user.id, true).await;
    assert_eq!((dry.imported, dry.skipped_total()), (1, 0), "{dry}");
    assert_eq!(row_counts(&app), (0, 0), "a dry run writes nothing");
    assert_eq!(events_of(&app, "passkey.imported"), 0, "nor any event");

    let summary = import(&app, user.id, false).await;
    assert_eq!(
        (
            summary.identities_scanned,
            summary.imported,
            summary.already_present
        ),
        (1, 1, 0),
        "{summary}"
    );
    let kratos_handle = authenticator.credentials[0].user_handle.clone();
    assert_eq!(kratos_handle.len(), 64, "Kratos's own 64-character handle");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM passkeys WHERE identity_id = '{}' AND user_handle = '\\x{}'::bytea AND cardinality(unconfirmed_user_handles) = 0",
            user.id,
            hex(&kratos_handle)
        )),
        1,
        "stored under the same identity with Kratos's user handle"
    );

    // Discoverable, then by identifier, then again: the counter moves on
    // from Kratos's and never looks cloned.
    signs_in_here(&app, authenticator, &user, json!({})).await;
    signs_in_here(
        &app,
        authenticator,
        &user,
        json!({"identifier": user.email}),
    )
    .await;
    signs_in_here(&app, authenticator, &user, json!({})).await;
    assert_eq!(
        app.count(
            "SELECT count(*) AS count FROM passkeys WHERE flagged_at IS NULL AND sign_count > 0"
        ),
        1
    );

    let again = import(&app, user.id, false).await;
    assert_eq!((again.imported, again.already_present), (0, 1), "{again}");
    assert!(again.to_string().ends_with("nothing to import"), "{again}");
    assert_eq!(row_counts(&app), (1, 1));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM events e JOIN passkeys p ON p.id::text = e.payload->'data'->'passkey'->>'id' \
             WHERE e.type = 'passkey.imported' AND e.identity_id = '{}' AND e.payload->'data'->>'actor' = 'service'",
            user.id
        )),
        1,
        "one event for the one passkey imported"
    );
}

fn events_of(app: &TestApp, kind: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS count FROM events WHERE type = '{kind}'"
    ))
}

/// The sign counter Kratos holds for the identity's one passkey credential.
async fn sign_count_in_kratos(app: &TestApp, identity: Uuid) -> i64 {
    let url = app
        .kratos
        .admin
        .join(&format!(
            "admin/identities/{identity}?include_credential=passkey"
        ))
        .expect("url");
    let (status, body) = status_and_json(
        crate::helpers::client()
            .get(url)
            .send()
            .await
            .expect("identity"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["credentials"]["passkey"]["config"]["credentials"][0]["authenticator"]["sign_count"]
        .as_i64()
        .unwrap_or_else(|| panic!("a sign count in {body}"))
}

/// Kratos's development branch (after v26.2.0) stores the counter its own
/// logins see; the releases keep the registration's. Import takes what
/// Kratos holds, so the counter never moves back, and the next login here
/// goes on from it.
#[tokio::test]
async fn import_takes_the_sign_counter_kratos_holds() {
    let app = spawn_app().await;
    let (user, mut authenticators) = user_with_kratos_passkeys(&app, 1).await;
    for _ in 0..2 {
        app.kratos
            .login_in_kratos(&mut authenticators[0])
            .await
            .expect("Kratos's own passkey login");
    }
    let in_kratos = sign_count_in_kratos(&app, user.id).await;
    if kratos_version(&app).await.starts_with("master-") {
        assert!(
            in_kratos >= 2,
            "Kratos stored its logins' counter: {in_kratos}"
        );
    }
    import(&app, user.id, false).await;
    assert_eq!(
        app.count("SELECT max(sign_count)::bigint AS count FROM passkeys"),
        in_kratos,
        "the counter Kratos holds"
    );
    signs_in_here(&app, &mut authenticators[0], &user, json!({})).await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM passkeys WHERE flagged_at IS NULL AND sign_count > {in_kratos}"
        )),
        1,
        "moved on from Kratos's counter, not flagged"
    );
}

#[tokio::test]
async fn imported_and_native_passkeys_of_one_identity_both_sign_in_and_handles_stay_owned() {
    let app = spawn_app().await;
    let (user, mut imported) = user_with_kratos_passkeys(&app, 1).await;
    import(&app, user.id, false).await;
    let token = app.kratos.login_token(&user).await;
    let mut native = Authenticator::new();
    app.register_passkey(&Auth::Token(token), &mut native).await;
    assert_eq!(app.passkeys_stored(), 2);

    signs_in_here(&app, &mut imported[0], &user, json!({})).await;
    signs_in_here(&app, &mut native, &user, json!({})).await;

    // Another identity's user handle on this identity's passkey is refused,
    // whichever kind the handle is.
    let (other, mut other_authenticators) = user_with_kratos_passkeys(&app, 1).await;
    import(&app, other.id, false).await;
    let other_handle = other_authenticators[0].credentials[0].user_handle.clone();
    for authenticator in [&mut imported[0], &mut native] {
        let (_, options) = app
            .post_json("/passkeys/login/options", &Auth::None, &json!({}))
            .await;
        let mut credential = authenticator.login(&options);
        credential["response"]["userHandle"] = json!(b64(&other_handle));
        let (status, body) = login_with(&app, &options, &credential).await;
        assert_error(status, &body, 400, "user_handle_mismatch");
    }
    signs_in_here(&app, &mut other_authenticators[0], &other, json!({})).await;
}

#[tokio::test]
async fn several_kratos_passkeys_learn_their_own_handle_at_first_login() {
    let app = spawn_app().await;
    // Kratos gives each passkey added in its settings a new handle and keeps
    // them all on the identity, without saying which is whose.
    let (user, mut authenticators) = user_with_kratos_passkeys(&app, 2).await;
    let summary = import(&app, user.id, false).await;
    assert_eq!(summary.imported, 2, "{summary}");
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkeys WHERE cardinality(unconfirmed_user_handles) = 2"),
        2
    );
    for authenticator in authenticators.iter_mut() {
        signs_in_here(&app, authenticator, &user, json!({})).await;
    }
    // Each now answers to its own handle only.
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkeys WHERE cardinality(unconfirmed_user_handles) = 0"),
        2
    );
    let first_handle = authenticators[0].credentials[0].user_handle.clone();
    let (_, options) = app
        .post_json("/passkeys/login/options", &Auth::None, &json!({}))
        .await;
    let mut credential = authenticators[1].login(&options);
    credential["response"]["userHandle"] = json!(b64(&first_handle));
    let (status, body) = login_with(&app, &options, &credential).await;
    assert_error(status, &body, 400, "user_handle_mismatch");
}

#[tokio::test]
async fn a_passkey_registered_here_signs_in_with_kratos_after_export_where_kratos_takes_it() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    let version = kratos_version(&app).await;

    if !accepts_credential_patches(&version) {
        assert_export_refused(&app, user.id, &version).await;
        assert!(
            app.kratos
                .login_in_kratos(&mut authenticator)
                .await
                .is_err(),
            "Kratos does not know the passkey"
        );
        return;
    }

    assert!(app
        .kratos
        .login_in_kratos(&mut authenticator)
        .await
        .is_err());
    let dry = export(&app, user.id, true).await.expect("dry run");
    assert_eq!(dry.exported, 1, "{dry}");
    assert_eq!(events_of(&app, "passkey.exported"), 0);
    assert!(
        app.kratos
            .login_in_kratos(&mut authenticator)
            .await
            .is_err(),
        "a dry run writes nothing"
    );
    let summary = export(&app, user.id, false).await.expect("export");
    assert_eq!(
        (summary.exported, summary.already_in_kratos),
        (1, 0),
        "{summary}"
    );
    let cookie = app
        .kratos
        .login_in_kratos(&mut authenticator)
        .await
        .expect("Kratos's own passkey login accepts the exported passkey");
    assert_eq!(
        app.kratos.whoami_cookie(&cookie).await,
        (200, Some(user.id))
    );

    assert_eq!(events_of(&app, "passkey.exported"), 1);
    let again = export(&app, user.id, false).await.expect("export again");
    assert_eq!((again.exported, again.already_in_kratos), (0, 1), "{again}");
    assert_eq!(
        events_of(&app, "passkey.exported"),
        1,
        "nothing new exported"
    );
    // And it still signs in here.
    signs_in_here(&app, &mut authenticator, &user, json!({})).await;
}

#[tokio::test]
async fn an_imported_passkey_exports_back_as_kratos_had_it() {
    let app = spawn_app().await;
    let (user, mut authenticators) = user_with_kratos_passkeys(&app, 1).await;
    import(&app, user.id, false).await;
    let version = kratos_version(&app).await;
    if !accepts_credential_patches(&version) {
        assert_export_refused(&app, user.id, &version).await;
        return;
    }
    // Kratos still holds it: nothing to write.
    let summary = export(&app, user.id, false).await.expect("export");
    assert_eq!(
        (summary.exported, summary.already_in_kratos),
        (0, 1),
        "{summary}"
    );
    app.kratos
        .login_in_kratos(&mut authenticators[0])
        .await
        .expect("still Kratos's passkey");
}

#[tokio::test]
async fn an_imported_passkey_gone_from_kratos_is_exported_back_under_its_kratos_handle() {
    let app = spawn_app().await;
    let (user, mut authenticators) = user_with_kratos_passkeys(&app, 1).await;
    import(&app, user.id, false).await;
    let version = kratos_version(&app).await;
    if !accepts_credential_patches(&version) {
        assert_export_refused(&app, user.id, &version).await;
        return;
    }
    // The team moved off Kratos's passkeys: Kratos no longer has it.
    let response = crate::helpers::client()
        .patch(
            app.kratos
                .admin
                .join(&format!("admin/identities/{}", user.id))
                .expect("url"),
        )
        .json(&json!([{"op": "remove", "path": "/credentials/passkey"}]))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    assert!(app
        .kratos
        .login_in_kratos(&mut authenticators[0])
        .await
        .is_err());

    // Kratos's own text handle goes back as a `passkey` identifier.
    let summary = export(&app, user.id, false).await.expect("export");
    assert_eq!(summary.exported, 1, "{summary}");
    let cookie = app
        .kratos
        .login_in_kratos(&mut authenticators[0])
        .await
        .expect("Kratos's own passkey login accepts it again");
    assert_eq!(
        app.kratos.whoami_cookie(&cookie).await,
        (200, Some(user.id))
    );
}

#[tokio::test]
async fn the_commands_walk_every_identity_and_print_one_summary_line() {
    let app = spawn_app().await;
    let (user, _) = user_with_kratos_passkeys(&app, 1).await;

    // Every identity in Kratos, page by page; a dry run writes nothing.
    let output = binary::command(&app.database_url)
        .args(["import-kratos", "--dry-run"])
        .output()
        .expect("run import-kratos");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with("import-kratos (dry run, nothing written): "),
        "{stdout}"
    );
    let scanned: usize = lines[0]
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("identities scanned");
    assert!(scanned >= 1, "{stdout}");
    assert_eq!(row_counts(&app), (0, 0), "a dry run writes nothing");

    let output = binary::command(&app.database_url)
        .args(["import-kratos", "--identity", &user.id.to_string()])
        .output()
        .expect("run import-kratos");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.trim(),
        "import-kratos: 1 identities scanned, 1 credentials imported, 0 already present, 0 skipped"
    );

    let unknown = Uuid::new_v4();
    let output = binary::command(&app.database_url)
        .args(["import-kratos", "--identity", &unknown.to_string()])
        .output()
        .expect("run import-kratos");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("Kratos has no identity {unknown}")),
        "{stderr}"
    );
    assert_eq!(row_counts(&app), (1, 1));
}

#[tokio::test]
async fn a_credential_another_identity_holds_here_is_skipped_with_its_reason() {
    let app = spawn_app().await;
    let (user, mut authenticators) = user_with_kratos_passkeys(&app, 1).await;
    // The same credential id is already someone else's here.
    let other = Uuid::new_v4();
    let id = authenticators[0].credentials[0].credential_id.clone();
    app.count(&format!(
        "WITH i AS (INSERT INTO identities (identity_id, user_handle) VALUES ('{other}', gen_random_uuid())), \
         p AS (INSERT INTO passkeys (id, identity_id, credential_id, credential, name, aaguid, backup_eligible, backup_state, user_handle) \
           VALUES (gen_random_uuid(), '{other}', '\\x{}'::bytea, '{{}}', 'Taken', gen_random_uuid(), false, false, '\\x00'::bytea) RETURNING 1) \
         SELECT count(*) AS count FROM p",
        hex(&id)
    ));
    let summary = import(&app, user.id, false).await;
    assert_eq!(summary.imported, 0, "{summary}");
    assert!(
        summary
            .to_string()
            .contains("1 skipped (1 credential id owned by another identity)"),
        "{summary}"
    );
    let (status, body) = login_here(&app, &mut authenticators[0], json!({})).await;
    assert_error(status, &body, 400, "user_handle_mismatch");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn unknown_identities_and_bad_input_are_refused_without_writes() {
    let app = spawn_app().await;
    let result = try_import(&app, Uuid::new_v4(), false).await;
    assert!(matches!(result, Err(MigrationError::IdentityNotFound(_))));
    assert_eq!(row_counts(&app), (0, 0));
    let (status, body) = status_and_json(
        app.http
            .get(app.url("/health/alive"))
            .send()
            .await
            .expect("alive"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_import_past_the_passkey_limit_keeps_every_passkey_and_registration_waits() {
    let app = spawn_app_with(|s| {
        s.limits.passkeys_per_identity = passkey_limit(2);
    })
    .await;
    let (user, mut authenticators) = user_with_kratos_passkeys(&app, 3).await;
    let summary = import(&app, user.id, false).await;
    assert_eq!(summary.imported, 3, "{summary}");
    for authenticator in authenticators.iter_mut() {
        signs_in_here(&app, authenticator, &user, json!({})).await;
    }

    let auth = Auth::Token(app.kratos.login_token(&user).await);
    let (status, body) = app
        .post_json("/passkeys/registration/options", &auth, &json!({}))
        .await;
    assert_error(status, &body, 409, "passkey_limit_reached");
    assert_eq!(app.passkeys_stored(), 3);
}
