//! Attestation, the FIDO Metadata Service and the authenticator policy,
//! against real Kratos and Postgres, with a PKI made here: a BLOB root and
//! signer, and attestation roots whose models the BLOB lists.

use std::time::{Duration, Instant};

use kratos_passkeys::authenticator_policy::{Condition, PolicySettings, RuleSettings};
use kratos_passkeys::configuration::{AttestationPreference, Settings};
use kratos_passkeys::metadata::refresh::{refresh_once, Refreshed};
use kratos_passkeys::metadata::{CertificationLevel, MetadataSettings};
use kratos_passkeys::startup::Application;
use kratos_passkeys::state::AppState;
use serde_json::{json, Value};
use url::Url;
use uuid::Uuid;

use crate::helpers::authenticator::{as_none_attestation, rewrite_auth_data};
use crate::helpers::events::{deliver_to, Behaviour, Delivery, Receiver};
use crate::helpers::mds::{entry, payload, Files, Root};
use crate::helpers::{
    assert_error, create_database, spawn_with_settings, status_and_json, test_settings, Auth,
    Authenticator, TestApp,
};

/// Models in the test BLOB.
const CERTIFIED: Uuid = Uuid::from_u128(0x1111_0000_0000_4000_8000_0000_0000_0001);
const UNCERTIFIED: Uuid = Uuid::from_u128(0x2222_0000_0000_4000_8000_0000_0000_0002);
const DENIED: Uuid = Uuid::from_u128(0x3333_0000_0000_4000_8000_0000_0000_0003);
const REVOKED: Uuid = Uuid::from_u128(0x4444_0000_0000_4000_8000_0000_0000_0004);

/// The test PKI and the files the service reads.
struct Pki {
    blob_root: Root,
    vendor: Root,
    files: Files,
}

impl Pki {
    fn new() -> Self {
        Self {
            blob_root: Root::new("Test MDS Root"),
            vendor: Root::new("Test Vendor Attestation Root"),
            files: Files::new(),
        }
    }

    /// The models, `certified_status` for CERTIFIED's first report.
    fn entries(&self, certified_status: &str) -> Vec<Value> {
        vec![
            entry(
                CERTIFIED,
                "Test Key Certified",
                &self.vendor,
                &["FIDO_CERTIFIED_L1", certified_status],
            ),
            entry(
                UNCERTIFIED,
                "Test Key Uncertified",
                &self.vendor,
                &["NOT_FIDO_CERTIFIED"],
            ),
            entry(
                DENIED,
                "Test Key Denied",
                &self.vendor,
                &["FIDO_CERTIFIED_L2"],
            ),
            entry(
                REVOKED,
                "Test Key Revoked",
                &self.vendor,
                &["FIDO_CERTIFIED_L1", "REVOKED"],
            ),
        ]
    }

    /// Writes `blob` as the source file.
    fn publish(&self, blob: &str) -> Url {
        Url::from_file_path(self.files.write("blob.jwt", blob)).expect("file url")
    }

    fn signed(&self, no: u32, certified_status: &str) -> String {
        self.blob_root
            .blob_signer()
            .sign(&payload(no, 30, self.entries(certified_status)))
    }

    /// Direct attestation against the test BLOB (no=1) and its root.
    fn configure(&self, settings: &mut Settings, source: Url) {
        settings.webauthn.attestation = AttestationPreference::Direct;
        settings.authenticators.metadata = Some(MetadataSettings {
            source,
            trust_root: Some(self.files.write("root.pem", &self.blob_root.pem())),
            refresh_interval: Duration::from_secs(24 * 3600),
            retry_interval: Duration::from_secs(3600),
        });
    }
}

fn policy(change: impl FnOnce(&mut PolicySettings)) -> PolicySettings {
    let mut policy = PolicySettings::default();
    change(&mut policy);
    policy
}

async fn attested_app(pki: &Pki, customise: impl FnOnce(&mut Settings)) -> TestApp {
    let (_, database_url) = create_database();
    let mut settings = test_settings(&database_url);
    let source = pki.publish(&pki.signed(1, "FIDO_CERTIFIED_L1"));
    pki.configure(&mut settings, source);
    customise(&mut settings);
    spawn_with_settings(settings).await
}

fn state(app: &TestApp) -> &AppState {
    app.state.as_deref().expect("an in-process app")
}

/// A registration by `authenticator`, attested as `model` by `root`.
async fn attested_registration(
    app: &TestApp,
    auth: &Auth,
    authenticator: &mut Authenticator,
    root: &Root,
    model: Uuid,
) -> (Value, Value) {
    let options = app.registration_options(auth).await;
    let mut credential = authenticator.register(&options);
    root.attestation_key(model).attest(&mut credential);
    (options, credential)
}

#[tokio::test]
async fn an_allowed_certified_model_registers_and_is_listed_as_attested() {
    let pki = Pki::new();
    let app = attested_app(&pki, |s| {
        s.authenticators.policy = policy(|p| {
            p.allow = vec![CERTIFIED];
            p.min_certification = Some(CertificationLevel::L1);
        });
    })
    .await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    let (options, credential) =
        attested_registration(&app, &auth, &mut authenticator, &pki.vendor, CERTIFIED).await;
    assert_eq!(options["publicKey"]["attestation"], "direct");
    let (status, created) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["attested"], true, "{created}");
    let list = app.passkey_list(&auth).await;
    assert_eq!(list[0]["attested"], true, "{list}");
    assert_eq!(
        list[0]["model"],
        json!({
            "name": "Test Key Certified",
            "trust": "verified",
            "icon": "data:image/png;base64,iVBORw0KGgo=",
            "certification": "FIDO_CERTIFIED_L1",
            "format": "packed",
        })
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkey_attestations WHERE aaguid = '11110000-0000-4000-8000-000000000001' AND metadata_no = 1"),
        1
    );
    // The registered event says so too.
    app.eventually_count(
        "SELECT count(*) AS count FROM events WHERE type = 'passkey.registered' AND payload->'data'->'attestation'->>'attested' = 'true'",
        1,
    )
    .await;
    // And its logins work as any passkey's.
    let response = app.passkey_login(&mut authenticator, json!({})).await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn each_refusal_names_its_reason_and_stores_nothing() {
    let pki = Pki::new();
    let app = attested_app(&pki, |s| {
        s.authenticators.policy = policy(|p| {
            p.deny = vec![DENIED];
            p.min_certification = Some(CertificationLevel::L1);
        });
    })
    .await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    for (model, status, id) in [
        (DENIED, 403, "authenticator_not_allowed"),
        (UNCERTIFIED, 403, "authenticator_not_certified"),
        (REVOKED, 403, "authenticator_revoked"),
    ] {
        let (options, credential) =
            attested_registration(&app, &auth, &mut authenticator, &pki.vendor, model).await;
        app.refused_registration(&auth, &options, &credential, status, id)
            .await;
    }
    // A chain to a root the BLOB does not list, for a model it lists.
    let stranger = Root::new("Unknown Vendor Root");
    let (options, credential) =
        attested_registration(&app, &auth, &mut authenticator, &stranger, CERTIFIED).await;
    app.refused_registration(&auth, &options, &credential, 400, "attestation_invalid")
        .await;
    // `none` attestation, as a password manager gives.
    let options = app.registration_options(&auth).await;
    let mut credential = authenticator.register(&options);
    as_none_attestation(&mut credential, |_| {});
    app.refused_registration(&auth, &options, &credential, 403, "attestation_required")
        .await;
    // The automatic upgrade cannot attest: refused before it starts.
    let (status, body) = app
        .post_json(
            "/passkeys/registration/options",
            &auth,
            &json!({"mediation": "conditional"}),
        )
        .await;
    assert_error(status, &body, 403, "attestation_required");
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkey_attestations"),
        0
    );
}

/// Builds the service with `settings`, expecting it to refuse to start.
async fn start_error(settings: Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("the service started"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn a_blob_that_does_not_verify_stops_the_start_with_its_reason() {
    let pki = Pki::new();
    let good = pki.signed(1, "FIDO_CERTIFIED_L1");
    let other_root = Root::new("Another Root");
    let mut tampered: Vec<&str> = good.split('.').collect();
    let altered_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload(9, 30, pki.entries("FIDO_CERTIFIED_L1")).to_string(),
    );
    tampered[1] = &altered_payload;
    let cases = [
        (
            "bad signature",
            tampered.join("."),
            "signature does not verify",
        ),
        (
            "unknown root",
            other_root
                .blob_signer()
                .sign(&payload(1, 30, pki.entries("FIDO_CERTIFIED_L1"))),
            "does not lead to the configured trust root",
        ),
        (
            "expired nextUpdate",
            pki.blob_root
                .blob_signer()
                .sign(&payload(1, -2, pki.entries("FIDO_CERTIFIED_L1"))),
            "nextUpdate",
        ),
        ("truncated", good[..good.len() / 2].to_string(), "BLOB"),
    ];
    for (case, blob, expected) in cases {
        let (_, database_url) = create_database();
        let mut settings = test_settings(&database_url);
        pki.configure(&mut settings, pki.publish(&blob));
        let error = start_error(settings).await;
        assert!(
            error.contains("no usable MDS3 BLOB") && error.contains(expected),
            "{case}: {error}"
        );
    }
}

fn refreshes(metrics: &str, outcome: &str) -> u64 {
    let prefix = format!("kratos_passkeys_metadata_refreshes_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_refused_refresh_keeps_the_last_good_blob_and_replicas_agree() {
    let pki = Pki::new();
    let app = attested_app(&pki, |_| {}).await;
    let serial = |app: &TestApp| state(app).authenticators.metadata.current().map(|b| b.no);
    assert_eq!(serial(&app), Some(1));
    // A second replica on the same database, whose source lags (still no=1).
    let lagging = Files::new();
    let mut settings = app.settings.clone();
    settings.authenticators.metadata = settings.authenticators.metadata.map(|m| MetadataSettings {
        source: Url::from_file_path(lagging.write("blob.jwt", &pki.signed(1, "FIDO_CERTIFIED_L1")))
            .expect("url"),
        ..m
    });
    let replica = spawn_with_settings(settings).await;

    let newer = pki.signed(2, "FIDO_CERTIFIED_L1");
    let (header, rest) = newer.split_at(newer.len() - 8);
    let refused = [
        ("bad_signature", format!("{header}{}", "AAAAAAAA")),
        (
            "expired",
            pki.blob_root
                .blob_signer()
                .sign(&payload(3, -1, pki.entries("FIDO_CERTIFIED_L1"))),
        ),
        (
            "untrusted_chain",
            Root::new("Another Root").blob_signer().sign(&payload(
                3,
                30,
                pki.entries("FIDO_CERTIFIED_L1"),
            )),
        ),
        ("malformed", newer[..40].to_string()),
    ];
    let _ = rest;
    for (outcome, blob) in refused {
        pki.publish(&blob);
        assert!(refresh_once(state(&app)).await.is_err(), "{outcome}");
        assert_eq!(serial(&app), Some(1), "{outcome}: the last good BLOB stays");
        assert_eq!(refreshes(&app.metrics().await, outcome), 1, "{outcome}");
    }
    pki.publish(&newer);
    assert_eq!(
        refresh_once(state(&app)).await.expect("refresh"),
        Refreshed::Updated
    );
    assert_eq!(serial(&app), Some(2));
    // The lagging replica takes the BLOB the other stored.
    assert_eq!(
        refresh_once(state(&replica)).await.expect("refresh"),
        Refreshed::AdoptedFromPeer
    );
    assert_eq!(serial(&replica), Some(2));
    let (a, b) = (
        state(&app).authenticators.metadata.current().expect("blob"),
        state(&replica)
            .authenticators
            .metadata
            .current()
            .expect("blob"),
    );
    assert_eq!(a.sha256, b.sha256, "the replicas use the same BLOB");
    assert!(app
        .metrics()
        .await
        .contains("kratos_passkeys_metadata_blob_serial 2"));
    assert_eq!(
        app.count("SELECT count(*) AS count FROM authenticator_metadata WHERE no = 2"),
        1
    );
}

/// Waits for an event of `kind` at the receiver.
async fn event_of(receiver: &Receiver, kind: &str) -> Delivery {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(found) = receiver.accepted().into_iter().find(|d| d.kind() == kind) {
            return found;
        }
        assert!(Instant::now() < deadline, "no {kind} event arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An attested passkey of CERTIFIED, and an unattested one claiming the
/// same AAGUID; then a refresh marks CERTIFIED `REVOKED`.
async fn revoked_after_registration(
    on_status_change: kratos_passkeys::authenticator_policy::OnStatusChange,
) -> (TestApp, Receiver, Authenticator, Authenticator, Pki) {
    let pki = Pki::new();
    let receiver = Receiver::start(Behaviour::Accept).await;
    let app = attested_app(&pki, |s| {
        s.authenticators.on_status_change = on_status_change;
        deliver_to(s, &receiver);
    })
    .await;
    let (_, auth) = app.signed_in_user().await;
    let mut attested = Authenticator::new();
    let (options, credential) =
        attested_registration(&app, &auth, &mut attested, &pki.vendor, CERTIFIED).await;
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["attested"], true);
    let (_, other) = app.signed_in_user().await;
    let mut claiming = Authenticator::new();
    let options = app.registration_options(&other).await;
    let mut credential = claiming.register(&options);
    as_none_attestation(&mut credential, |_| {});
    rewrite_auth_data(&mut credential, |data| {
        data[37..53].copy_from_slice(CERTIFIED.as_bytes())
    });
    let (status, body) = app.verify_registration(&other, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["attested"], false);
    assert_eq!(body["aaguid"], CERTIFIED.to_string());

    pki.publish(&pki.signed(2, "REVOKED"));
    assert_eq!(
        refresh_once(state(&app)).await.expect("refresh"),
        Refreshed::Updated
    );
    (app, receiver, attested, claiming, pki)
}

#[tokio::test]
async fn flag_refuses_the_revoked_models_logins_and_says_so() {
    use kratos_passkeys::authenticator_policy::OnStatusChange;
    // The PKI's files stay for the second refresh.
    let (app, receiver, mut attested, mut claiming, _pki) =
        revoked_after_registration(OnStatusChange::Flag).await;
    let flagged = event_of(&receiver, "passkey.flagged").await.payload();
    assert_eq!(
        flagged["data"]["reason"], "authenticator_status",
        "{flagged}"
    );
    assert_eq!(flagged["data"]["status"], "REVOKED");
    assert!(flagged["data"]["status_reports"].is_array(), "{flagged}");
    let response = app.passkey_login(&mut attested, json!({})).await;
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 403, "authenticator_revoked");
    // The unattested passkey that claims the same model is untouched.
    let response = app.passkey_login(&mut claiming, json!({})).await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    // A second refresh of the same BLOB acts no more.
    assert_eq!(
        refresh_once(state(&app)).await.expect("refresh"),
        Refreshed::Unchanged
    );
    assert_eq!(
        app.count("SELECT count(*) AS count FROM events WHERE type = 'passkey.flagged'"),
        1
    );
}

#[tokio::test]
async fn a_replica_started_with_a_revoking_blob_flags_too() {
    let pki = Pki::new();
    let app = attested_app(&pki, |_| {}).await;
    let (_, auth) = app.signed_in_user().await;
    let mut attested = Authenticator::new();
    let (options, credential) =
        attested_registration(&app, &auth, &mut attested, &pki.vendor, CERTIFIED).await;
    let (status, body) = app.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
    // Another replica starts on the same database with a BLOB that revokes
    // the model: it acts at start-up, before any refresh.
    pki.publish(&pki.signed(2, "REVOKED"));
    let replica = spawn_with_settings(app.settings.clone()).await;
    let response = replica.passkey_login(&mut attested, json!({})).await;
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 403, "authenticator_revoked");
    assert_eq!(
        app.count("SELECT count(*) AS count FROM events WHERE type = 'passkey.flagged'"),
        1
    );
}

#[tokio::test]
async fn warn_only_says_so() {
    use kratos_passkeys::authenticator_policy::OnStatusChange;
    let (app, receiver, mut attested, _, _pki) =
        revoked_after_registration(OnStatusChange::Warn).await;
    let warning = event_of(&receiver, "passkey.authenticator_warning")
        .await
        .payload();
    assert_eq!(warning["data"]["status"], "REVOKED", "{warning}");
    let response = app.passkey_login(&mut attested, json!({})).await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.count("SELECT count(*) AS count FROM events WHERE type = 'passkey.flagged'"),
        0
    );
}

/// An identity created with `metadata_public`, signed in.
async fn user_with_metadata(app: &TestApp, metadata_public: Value) -> Auth {
    let email = crate::helpers::kratos::new_email();
    let response = reqwest::Client::new()
        .post(app.kratos.admin.join("admin/identities").expect("url"))
        .json(&json!({
            "schema_id": "default",
            "traits": {"email": email},
            "metadata_public": metadata_public,
            "credentials": {"password": {"config": {"password": crate::helpers::kratos::PASSWORD}}}
        }))
        .send()
        .await
        .expect("create identity");
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}");
    let user = crate::helpers::TestUser {
        id: Uuid::parse_str(body["id"].as_str().expect("id")).expect("uuid"),
        email,
        password: crate::helpers::kratos::PASSWORD.to_string(),
    };
    Auth::Token(app.kratos.login_token(&user).await)
}

#[tokio::test]
async fn admins_need_a_certified_model_while_others_do_not() {
    let pki = Pki::new();
    let app = attested_app(&pki, |s| {
        s.authenticators.rules = vec![RuleSettings {
            when: Condition {
                field: "metadata_public.role".into(),
                equals: json!("admin"),
            },
            policy: policy(|p| p.min_certification = Some(CertificationLevel::L1)),
        }];
    })
    .await;
    let admin = user_with_metadata(&app, json!({"role": "admin"})).await;
    let mut authenticator = Authenticator::new();
    let (options, credential) =
        attested_registration(&app, &admin, &mut authenticator, &pki.vendor, UNCERTIFIED).await;
    app.refused_registration(
        &admin,
        &options,
        &credential,
        403,
        "authenticator_not_certified",
    )
    .await;
    let staff = user_with_metadata(&app, json!({"role": "staff"})).await;
    let (options, credential) =
        attested_registration(&app, &staff, &mut authenticator, &pki.vendor, UNCERTIFIED).await;
    let (status, body) = app.verify_registration(&staff, &options, &credential).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["attested"], true);
    assert_eq!(body["model"]["certification"], Value::Null);
}
