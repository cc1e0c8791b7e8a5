//! Adding passkeys: `POST /passkeys/registration/options` and `/verify`.

use std::time::Duration;

use serde_json::{json, Value};
use webauthn_rs_proto::UserVerificationPolicy;

use crate::helpers::authenticator::{rewrite_auth_data, unb64};
use crate::helpers::{assert_error, passkey_limit, spawn_app, spawn_app_with, Auth, Authenticator};

#[tokio::test]
async fn register_list_rename_delete() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();

    let options = app.registration_options(&auth).await;
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost");
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert!(public_key["authenticatorSelection"]
        .get("authenticatorAttachment")
        .is_none());
    assert!(public_key["user"]["name"]
        .as_str()
        .unwrap_or_default()
        .ends_with("@example.test"));
    assert_eq!(
        unb64(&public_key["user"]["id"]).len(),
        16,
        "a 16-byte random user handle"
    );

    let credential = authenticator.register(&options);
    let (status, created) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["name"], "Passkey",
        "unknown AAGUID: the generic default name"
    );
    assert_eq!(created["authenticator"], Value::Null);
    assert_eq!(created["backup_eligible"], false);
    assert_eq!(created["last_used_at"], Value::Null);
    assert!(
        created.get("credential").is_none(),
        "no key material in the view"
    );

    let list = app.passkey_list(&auth).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["id"], created["id"]);

    let id = created["id"].as_str().expect("id");
    let renamed = app
        .request(reqwest::Method::PATCH, &format!("/passkeys/{id}"), &auth)
        .json(&json!({"name": "  Work laptop "}))
        .send()
        .await
        .expect("rename");
    let (status, body) = crate::helpers::status_and_json(renamed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Work laptop");

    assert_eq!(app.delete_passkey(&auth, &created).await, 204);
    assert_eq!(app.passkey_list(&auth).await, json!([]));
}

#[tokio::test]
async fn the_user_handle_is_stable_and_existing_passkeys_are_excluded() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let first = app.register_passkey(&auth, &mut authenticator).await;
    let options = app.registration_options(&auth).await;
    let excluded = options["publicKey"]["excludeCredentials"]
        .as_array()
        .expect("list");
    assert_eq!(excluded.len(), 1);
    assert_eq!(
        unb64(&excluded[0]["id"]),
        authenticator.credentials[0].credential_id
    );
    assert_eq!(
        unb64(&options["publicKey"]["user"]["id"]),
        authenticator.credentials[0].user_handle
    );
    assert_ne!(
        authenticator.credentials[0].user_handle,
        user.id.as_bytes().to_vec(),
        "the user handle is never the identity id"
    );
    assert_eq!(first["name"], "Passkey");
}

#[tokio::test]
async fn default_names_are_unique_and_chosen_names_are_kept() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    assert_eq!(
        app.register_passkey(&auth, &mut authenticator).await["name"],
        "Passkey"
    );
    assert_eq!(
        app.register_passkey(&auth, &mut authenticator).await["name"],
        "Passkey 2"
    );

    // A name given with the options...
    let (status, options) = app
        .post_json(
            "/passkeys/registration/options",
            &auth,
            &json!({"name": "Phone"}),
        )
        .await;
    assert_eq!(status, 200);
    let credential = authenticator.register(&options);
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201);
    assert_eq!(body["name"], "Phone");

    // ...and one that is taken is refused.
    let options = app.registration_options(&auth).await;
    let credential = authenticator.register(&options);
    let (status, body) = app
        .post_json(
            "/passkeys/registration/verify",
            &auth,
            &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "name": "Phone"}),
        )
        .await;
    assert_error(status, &body, 409, "passkey_name_taken");
    assert_eq!(app.passkeys_stored(), 3);
}

#[tokio::test]
async fn a_stale_session_must_reauthenticate() {
    let app = spawn_app_with(|s| s.sessions.privileged_session_max_age = Duration::ZERO).await;
    let (_, auth) = app.signed_in_user().await;
    let (status, body) = app
        .post_json("/passkeys/registration/options", &auth, &json!({}))
        .await;
    assert_error(status, &body, 403, "session_refresh_required");
    let redirect = body["redirect_browser_to"].as_str().expect("redirect");
    assert!(
        redirect.starts_with(
            "http://localhost:4433/self-service/login/browser?refresh=true&return_to="
        ),
        "{redirect}"
    );
    assert!(
        redirect.contains("return_to=http%3A%2F%2Flocalhost%3A8080%2F"),
        "{redirect}"
    );
    // Listing still works: only adding and removing need a fresh session.
    assert_eq!(app.get_json("/passkeys", &auth).await.0, 200);
}

#[tokio::test]
async fn deleting_needs_a_fresh_session() {
    let app = spawn_app().await;
    let (user, auth) = app.signed_in_user().await;
    let passkey = app.register_passkey(&auth, &mut Authenticator::new()).await;
    let stale = spawn_app_with(|s| {
        s.sessions.privileged_session_max_age = Duration::ZERO;
        s.database.url = app.settings.database.url.clone();
    })
    .await;
    let path = format!("/passkeys/{}", passkey["id"].as_str().expect("id"));
    // An app's token and a browser's cookie alike are sent to Kratos's
    // re-authentication, and nothing is removed.
    let sessions = [
        Auth::Token(stale.kratos.login_token(&user).await),
        Auth::Cookie(stale.kratos.login_cookie(&user).await),
    ];
    for auth in &sessions {
        let response = stale
            .request(reqwest::Method::DELETE, &path, auth)
            .send()
            .await
            .expect("delete");
        let (status, body) = crate::helpers::status_and_json(response).await;
        assert_error(status, &body, 403, "session_refresh_required");
        let redirect = body["redirect_browser_to"].as_str().expect("redirect");
        assert!(
            redirect.starts_with(
                "http://localhost:4433/self-service/login/browser?refresh=true&return_to="
            ),
            "{auth:?}: {redirect}"
        );
        assert_eq!(app.passkeys_stored(), 1, "{auth:?}");
    }
}

#[tokio::test]
async fn unknown_ceremony() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register(&options);
    let other = json!({"ceremony_id": uuid::Uuid::new_v4(), "publicKey": options["publicKey"]});
    app.refused_registration(&auth, &other, &credential, 404, "ceremony_not_found")
        .await;
}

#[tokio::test]
async fn a_login_ceremony_cannot_finish_a_registration() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register(&options);
    let (status, login) = app
        .post_json("/passkeys/login/options", &Auth::None, &json!({}))
        .await;
    assert_eq!(status, 200, "{login}");
    let swapped = json!({"ceremony_id": login["ceremony_id"], "publicKey": options["publicKey"]});
    app.refused_registration(&auth, &swapped, &credential, 404, "ceremony_not_found")
        .await;
}

#[tokio::test]
async fn a_used_ceremony_cannot_be_replayed() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register(&options);
    assert_eq!(
        app.verify_registration(&auth, &options, &credential)
            .await
            .0,
        201
    );
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_error(status, &body, 404, "ceremony_not_found");
    assert_eq!(app.passkeys_stored(), 1);
}

#[tokio::test]
async fn an_expired_ceremony_is_refused() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register(&options);
    app.advance_clock(app.settings.webauthn.ceremony_ttl + Duration::from_secs(1));
    app.refused_registration(&auth, &options, &credential, 410, "ceremony_expired")
        .await;
}

#[tokio::test]
async fn another_identitys_ceremony_cannot_be_finished() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user().await;
    let (_, bob) = app.signed_in_user().await;
    let options = app.registration_options(&alice).await;
    let credential = Authenticator::new().register(&options);
    app.refused_registration(&bob, &options, &credential, 404, "ceremony_not_found")
        .await;
    // Bob's attempt did not burn Alice's ceremony.
    assert_eq!(
        app.verify_registration(&alice, &options, &credential)
            .await
            .0,
        201
    );
    assert_eq!(app.passkey_list(&bob).await, json!([]));
}

#[tokio::test]
async fn wrong_origin() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register_with(&options, "http://localhost:9999", |_| {});
    app.refused_registration(&auth, &options, &credential, 400, "origin_mismatch")
        .await;
}

#[tokio::test]
async fn wrong_rp_id() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let mut credential = Authenticator::new().register(&options);
    rewrite_auth_data(&mut credential, |auth_data| {
        auth_data[..32].copy_from_slice(&sha256(b"example.org"));
    });
    app.refused_registration(&auth, &options, &credential, 400, "rp_id_mismatch")
        .await;
}

#[tokio::test]
async fn wrong_challenge() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register_with(&options, crate::helpers::ORIGIN, |o| {
        o.challenge = vec![7u8; 32];
    });
    app.refused_registration(&auth, &options, &credential, 400, "challenge_mismatch")
        .await;
}

#[tokio::test]
async fn missing_user_verification() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register_with(&options, crate::helpers::ORIGIN, |o| {
        if let Some(selection) = o.authenticator_selection.as_mut() {
            selection.user_verification = UserVerificationPolicy::Discouraged_DO_NOT_USE;
        }
    });
    app.refused_registration(
        &auth,
        &options,
        &credential,
        400,
        "user_verification_missing",
    )
    .await;
}

#[tokio::test]
async fn tampered_attestation() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let mut credential = Authenticator::new().register(&options);
    let mut bytes = unb64(&credential["response"]["attestationObject"]);
    bytes.truncate(bytes.len() / 2);
    credential["response"]["attestationObject"] =
        Value::String(crate::helpers::authenticator::b64(&bytes));
    app.refused_registration(&auth, &options, &credential, 400, "credential_invalid")
        .await;
}

#[tokio::test]
async fn a_credential_id_registered_to_anyone_is_refused() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user().await;
    let (_, bob) = app.signed_in_user().await;
    app.register_passkey(&alice, &mut Authenticator::new())
        .await;
    let options = app.registration_options(&bob).await;
    let credential = Authenticator::new().register(&options);
    // The attestation is signed, so the collision is planted in the store:
    // Alice's passkey now carries the id Bob's authenticator just made.
    let id = hex(&unb64(&credential["rawId"]));
    app.count(&format!(
        "WITH moved AS (UPDATE passkeys SET credential_id = '\\x{id}' RETURNING 1) SELECT count(*) AS count FROM moved"
    ));
    let (status, body) = app.verify_registration(&bob, &options, &credential).await;
    assert_error(status, &body, 409, "credential_already_registered");
    assert_eq!(app.passkeys_stored(), 1);
    assert_eq!(app.passkey_list(&bob).await, json!([]));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn invalid_names_are_refused_before_anything_happens() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    for bad in ["", "   ", &"x".repeat(65), "tab\there", "nul\u{0}"] {
        let (status, body) = app
            .post_json(
                "/passkeys/registration/options",
                &auth,
                &json!({"name": bad}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_passkey_name");
    }

    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register(&options);
    let (status, body) = app
        .post_json(
            "/passkeys/registration/verify",
            &auth,
            &json!({"ceremony_id": options["ceremony_id"], "credential": credential, "name": "\u{7}"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_passkey_name");
    assert_eq!(app.passkeys_stored(), 0);
    // The ceremony was not used up by the refused name.
    assert_eq!(
        app.verify_registration(&auth, &options, &credential)
            .await
            .0,
        201
    );
}

#[tokio::test]
async fn malformed_bodies_are_refused() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.request(
                reqwest::Method::POST,
                "/passkeys/registration/verify",
                &auth,
            )
            .header("Content-Type", "application/json")
            .body("{not json"),
            400,
            "malformed_request",
        ),
        (
            app.request(
                reqwest::Method::POST,
                "/passkeys/registration/verify",
                &auth,
            )
            .json(&json!({"ceremony_id": options["ceremony_id"], "credential": {"id": 5}})),
            400,
            "malformed_request",
        ),
        (
            app.request(
                reqwest::Method::POST,
                "/passkeys/registration/verify",
                &auth,
            )
            .header("Content-Type", "text/plain")
            .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            app.request(
                reqwest::Method::POST,
                "/passkeys/registration/verify",
                &auth,
            )
            .header("Content-Type", "application/json")
            .body(format!("{{\"padding\": \"{}\"}}", "x".repeat(70_000))),
            413,
            "body_too_large",
        ),
    ];
    for (request, status, id) in cases {
        let (got, body) =
            crate::helpers::status_and_json(request.send().await.expect("send")).await;
        assert_error(got, &body, status, id);
    }
    assert_eq!(app.passkeys_stored(), 0);
    assert_eq!(
        app.count("SELECT count(*) AS count FROM consumed_ceremonies"),
        0,
        "the ceremony is intact"
    );
}

#[tokio::test]
async fn concurrent_verifies_of_one_ceremony_store_one_passkey() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    let options = app.registration_options(&auth).await;
    let credential = Authenticator::new().register(&options);
    let attempts = (0..4).map(|_| app.verify_registration(&auth, &options, &credential));
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == 404 && b["error"]["id"] == "ceremony_not_found")
        .count();
    assert_eq!((created, refused), (1, 3), "{results:?}");
    assert_eq!(app.passkeys_stored(), 1);
}

#[tokio::test]
async fn another_identitys_passkeys_are_invisible() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user().await;
    let (_, bob) = app.signed_in_user().await;
    let passkey = app
        .register_passkey(&alice, &mut Authenticator::new())
        .await;
    let id = passkey["id"].as_str().expect("id");
    let missing = uuid::Uuid::new_v4().to_string();

    assert_eq!(app.passkey_list(&bob).await, json!([]));
    for target in [id, missing.as_str()] {
        let rename = app
            .request(reqwest::Method::PATCH, &format!("/passkeys/{target}"), &bob)
            .json(&json!({"name": "mine now"}))
            .send()
            .await
            .expect("rename");
        let (status, body) = crate::helpers::status_and_json(rename).await;
        assert_error(status, &body, 404, "passkey_not_found");
        let delete = app
            .request(
                reqwest::Method::DELETE,
                &format!("/passkeys/{target}"),
                &bob,
            )
            .send()
            .await
            .expect("delete");
        let (status, body) = crate::helpers::status_and_json(delete).await;
        assert_error(status, &body, 404, "passkey_not_found");
    }
    let list = app.passkey_list(&alice).await;
    assert_eq!(list[0]["name"], "Passkey", "unchanged");
}

#[tokio::test]
async fn cookie_state_changes_need_an_allowed_origin() {
    let app = spawn_app().await;
    let user = app.kratos.create_user().await;
    let cookie = app.kratos.login_cookie(&user).await;
    for origin in [None, Some("http://evil.example")] {
        let mut request = app
            .http
            .post(app.url("/passkeys/registration/options"))
            .header("Cookie", format!("ory_kratos_session={cookie}"))
            .json(&json!({}));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let (status, body) =
            crate::helpers::status_and_json(request.send().await.expect("send")).await;
        assert_error(status, &body, 403, "origin_not_allowed");
    }
    // From the allowed page it works; a token needs no Origin at all.
    assert_eq!(
        app.post_json(
            "/passkeys/registration/options",
            &crate::helpers::Auth::Cookie(cookie),
            &json!({})
        )
        .await
        .0,
        200
    );
    let (_, token) = app.signed_in_user().await;
    assert_eq!(
        app.post_json("/passkeys/registration/options", &token, &json!({}))
            .await
            .0,
        200
    );
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

#[tokio::test]
async fn ceremony_ids_stay_small_however_many_passkeys_there_are() {
    let app = spawn_app_with(|s| s.limits.passkeys_per_identity = passkey_limit(100)).await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let id_length = |options: &Value| options["ceremony_id"].as_str().expect("id").len();
    let first = id_length(&app.registration_options(&auth).await);
    for _ in 0..60 {
        app.register_passkey(&auth, &mut authenticator).await;
    }
    let options = app.registration_options(&auth).await;
    assert_eq!(
        options["publicKey"]["excludeCredentials"]
            .as_array()
            .map(Vec::len),
        Some(60),
        "the browser is told every passkey to exclude"
    );
    // The sealed state does not carry them: its size does not grow (a few
    // bytes of encoding aside).
    assert!(
        id_length(&options) <= first + 16,
        "{} against {first}",
        id_length(&options)
    );
    let credential = authenticator.register(&options);
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
}

fn registered_events(app: &crate::helpers::TestApp) -> i64 {
    app.count("SELECT count(*) AS count FROM events WHERE type = 'passkey.registered'")
}

#[tokio::test]
async fn registration_stops_at_the_passkey_limit_until_one_is_removed() {
    let app = spawn_app_with(|s| s.limits.passkeys_per_identity = passkey_limit(2)).await;
    let (_, auth) = app.signed_in_user().await;
    let first = app.register_passkey(&auth, &mut Authenticator::new()).await;
    app.register_passkey(&auth, &mut Authenticator::new()).await;

    let (status, body) = app
        .post_json("/passkeys/registration/options", &auth, &json!({}))
        .await;
    assert_error(status, &body, 409, "passkey_limit_reached");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 passkeys")),
        "the message names the limit: {body}"
    );
    assert_eq!(app.passkeys_stored(), 2);

    // Another person is not held by it.
    let (_, other) = app.signed_in_user().await;
    app.register_passkey(&other, &mut Authenticator::new())
        .await;

    assert_eq!(app.delete_passkey(&auth, &first).await, 204);
    app.register_passkey(&auth, &mut Authenticator::new()).await;
    assert_eq!(
        app.passkey_list(&auth).await.as_array().map(Vec::len),
        Some(2)
    );
}

/// Finishes every registration at once: inserts into `passkeys` are held
/// back (a table lock in the test's own transaction) until all of them wait
/// on a lock, so whatever they count or name first overlaps whatever the
/// machine's timing. `named`: each with a name of its own.
async fn finish_together(
    app: &crate::helpers::TestApp,
    auth: &Auth,
    finishes: &[(Value, Value)],
    named: bool,
) -> Vec<(u16, Value)> {
    use diesel::connection::SimpleConnection;

    let mut gate = app.db();
    gate.batch_execute("BEGIN; LOCK TABLE passkeys IN SHARE MODE")
        .expect("hold inserts back");
    let verifies = futures_util::future::join_all(finishes.iter().enumerate().map(
        |(index, (options, credential))| {
            let mut body = json!({"ceremony_id": options["ceremony_id"], "credential": credential});
            if named {
                body["name"] = json!(format!("Key {index}"));
            }
            async move {
                app.post_json("/passkeys/registration/verify", auth, &body)
                    .await
            }
        },
    ));
    let open_gate = async {
        app.eventually_count(
            "SELECT count(*) AS count FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            i64::try_from(finishes.len()).expect("a few"),
        )
        .await;
        gate.batch_execute("COMMIT").expect("let inserts go");
    };
    tokio::join!(verifies, open_gate).0
}

/// Opens `n` registrations, each on an authenticator of its own.
async fn opened(app: &crate::helpers::TestApp, auth: &Auth, n: usize) -> Vec<(Value, Value)> {
    let mut finishes = Vec::new();
    for _ in 0..n {
        let options = app.registration_options(auth).await;
        let credential = Authenticator::new().register(&options);
        finishes.push((options, credential));
    }
    finishes
}

/// Options only look; verify counts under the identity's lock. Ceremonies
/// opened while there was room, finished at once, store no more than the
/// limit, and the refused ones leave no row and no event.
#[tokio::test]
async fn registrations_finished_together_cannot_pass_the_passkey_limit() {
    let app = spawn_app_with(|s| s.limits.passkeys_per_identity = passkey_limit(2)).await;
    let (_, auth) = app.signed_in_user().await;
    app.register_passkey(&auth, &mut Authenticator::new()).await;

    let finishes = opened(&app, &auth, 4).await;
    let answers = finish_together(&app, &auth, &finishes, true).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 201).count(),
        1,
        "one of them fits: {statuses:?}"
    );
    for (status, body) in answers.iter().filter(|(status, _)| *status != 201) {
        assert_error(*status, body, 409, "passkey_limit_reached");
    }
    assert_eq!(app.passkeys_stored(), 2);
    assert_eq!(registered_events(&app), 2, "no event for a refused one");
}

/// The same lock numbers default names one after the other: registrations
/// finished at once each get a free name instead of one of them being
/// refused as `passkey_name_taken`.
#[tokio::test]
async fn registrations_finished_together_get_default_names_of_their_own() {
    let app = spawn_app().await;
    let (_, auth) = app.signed_in_user().await;
    app.register_passkey(&auth, &mut Authenticator::new()).await;

    let finishes = opened(&app, &auth, 3).await;
    let answers = finish_together(&app, &auth, &finishes, false).await;
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
    }
    let mut names: Vec<&str> = answers
        .iter()
        .filter_map(|(_, body)| body["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Passkey 2", "Passkey 3", "Passkey 4"]);
}
