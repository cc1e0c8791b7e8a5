//! Faults against the real components: Postgres restarted and Kratos
//! stopped while requests flow, two replicas sharing one database, and the
//! service killed mid-load. The first two use instances of their own
//! (scripts/fault), so stopping them never disturbs the other tests.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kratos_passkeys_testkit::load::{self, summary, Tally, Worker};
use serde_json::{json, Value};
use url::Url;

use crate::helpers::binary::{self, Served};
use crate::helpers::{
    assert_error, create_database, create_database_on, passkey_limit, poster, spawn_app,
    spawn_app_with, spawn_with_settings, status_and_json, test_settings, Auth, Authenticator,
    Kratos, TestApp,
};

fn fault(component: &str, action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fault");
    let status = Command::new("bash")
        .args([script, component, action])
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/fault");
    assert!(
        status.success(),
        "scripts/fault {component} {action} failed"
    );
}

/// Runs `scripts/fault` off the async task, so the load beside it keeps going.
async fn fault_async(component: &'static str, action: &'static str) {
    tokio::task::spawn_blocking(move || fault(component, action))
        .await
        .expect("scripts/fault");
}

/// `limits.passkeys_per_identity` for the apps `users_registering` loads.
const UNLIMITED_PASSKEYS: u32 = u32::MAX;

/// Held by the tests that stop the faults cluster: one at a time.
static FAULT_POSTGRES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn fault_postgres() -> String {
    std::env::var("KRATOS_PASSKEYS_TEST_FAULT_POSTGRES")
        .unwrap_or_else(|_| "postgres://kratos_passkeys:kratos_passkeys@127.0.0.1:5433".into())
}

fn fault_kratos() -> (Url, Url) {
    (
        Url::parse("http://127.0.0.1:4733/").expect("url"),
        Url::parse("http://127.0.0.1:4734/").expect("url"),
    )
}

/// Waits until the tally shows `what` (60 s at most, then fails).
async fn until(tally: &Mutex<Tally>, what: &str, done: impl Fn(&Tally) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&tally.lock().expect("tally")) {
        assert!(Instant::now() < deadline, "waited 60 s for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `users` signed-in people registering passkeys side by side, until
/// `stop`; each loop's index in the tally is its person's in the answer.
/// The app must not limit passkeys per identity below what the load makes
/// (`UNLIMITED_PASSKEYS`): a slow fault lets each person register hundreds.
async fn users_registering(
    app: &Arc<TestApp>,
    users: usize,
    tally: &Arc<Mutex<Tally>>,
    stop: &Arc<AtomicBool>,
) -> (impl std::future::Future<Output = Vec<()>>, Vec<Auth>) {
    let mut sessions = Vec::new();
    for _ in 0..users {
        sessions.push(app.signed_in_user().await.1);
    }
    let load = futures_util::future::join_all(sessions.iter().enumerate().map(|(index, auth)| {
        let worker = Worker {
            index,
            tally: tally.clone(),
            stop: stop.clone(),
            pause: Duration::from_millis(20),
        };
        load::registrations(poster(app.clone(), auth.clone()), worker)
    }));
    (load, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_while_requests_flow() {
    let _cluster = FAULT_POSTGRES.lock().await;
    let (_, database_url) = create_database_on(&fault_postgres());
    let mut settings = test_settings(&database_url);
    settings.database.acquire_timeout = Duration::from_millis(500);
    settings.limits.passkeys_per_identity = passkey_limit(UNLIMITED_PASSKEYS);
    let app = Arc::new(spawn_with_settings(settings).await);
    let (tally, stop) = (
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(AtomicBool::new(false)),
    );
    // The load and the outage run side by side in this task.
    let (load, _) = users_registering(&app, 3, &tally, &stop).await;
    let outage = async {
        // Conditions, not pauses: the load is under way, readiness has seen
        // the outage, and so has the load, before Postgres comes back.
        until(&tally, "five requests before the outage", |t| {
            t.outcomes.iter().filter(|o| o.succeeded()).count() >= 5
        })
        .await;
        let outage_start = Instant::now();
        fault_async("postgres", "stop").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = loop {
            let ready = app
                .http
                .get(app.url("/health/ready"))
                .send()
                .await
                .expect("ready");
            let ready = status_and_json(ready).await;
            if ready.0 != 200 || Instant::now() > deadline {
                break ready;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        until(&tally, "a 503 during the outage", |t| {
            t.outcomes
                .iter()
                .any(|o| o.at >= outage_start && o.status == 503)
        })
        .await;
        fault_async("postgres", "start").await;
        let outage_end = Instant::now();
        // Keep the load on until ten requests in a row have succeeded since
        // the restart (bounded: a service that never recovers fails below).
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let streak = {
                let tally = tally.lock().expect("tally");
                let mut after: Vec<&load::Outcome> = tally
                    .outcomes
                    .iter()
                    .filter(|o| o.at >= outage_end)
                    .collect();
                after.sort_by_key(|o| o.at);
                after.iter().rev().take_while(|o| o.succeeded()).count()
            };
            if streak >= 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        (outage_start, outage_end, ready)
    };
    let (_, (outage_start, outage_end, (ready_status, ready_body))) = tokio::join!(load, outage);

    assert_eq!(ready_status, 503, "{ready_body}");
    assert_eq!(ready_body["errors"]["database"], "unavailable");
    let tally = tally.lock().expect("tally");
    let during: Vec<&load::Outcome> = tally
        .outcomes
        .iter()
        .filter(|o| o.at >= outage_start && o.at < outage_end)
        .collect();
    // Recovered: from the last failure after the restart on, every request
    // succeeds. The failures in between are the pool finding its broken
    // connections, each answered 503, never a hang or a 500.
    let settled = tally
        .outcomes
        .iter()
        .filter(|o| o.at >= outage_end && !o.succeeded())
        .inspect(|o| {
            assert_eq!(o.error_id.as_deref(), Some("database_unavailable"), "{o:?}");
        })
        .map(|o| o.at)
        .max()
        .unwrap_or(outage_end);
    assert!(
        settled - outage_end < Duration::from_secs(30),
        "recovered by itself: the last failure came {:?} after the restart",
        settled - outage_end
    );
    let after: Vec<&load::Outcome> = tally.outcomes.iter().filter(|o| o.at > settled).collect();
    eprintln!(
        "postgres outage: {} requests during ({:?}), {} after ({:?}), {} before",
        during.len(),
        summary(during.iter().copied()),
        after.len(),
        summary(after.iter().copied()),
        tally
            .outcomes
            .iter()
            .filter(|o| o.at < outage_start)
            .count(),
    );
    assert!(!during.is_empty());
    for o in &during {
        assert!(
            matches!(o.status, 200 | 201 | 503),
            "during the outage: {o:?}"
        );
        if o.status == 503 {
            assert_eq!(o.error_id.as_deref(), Some("database_unavailable"), "{o:?}");
            // No hang: the pool waits at most its acquire timeout (500 ms);
            // 20× that leaves room for a loaded machine, not for a hang.
            assert!(o.took() < Duration::from_secs(10), "no hang: {o:?}");
        }
    }
    assert!(
        during.iter().any(|o| o.status == 503),
        "the outage was seen"
    );
    assert!(
        after.len() >= 10 && after.iter().all(|o| o.succeeded()),
        "recovered by itself: {:?}",
        summary(after.iter().copied())
    );
    // Every passkey that answered 201 is there, and nothing else.
    let created = tally.created();
    assert_eq!(app.passkeys_stored() as usize, created.len());
    for (_, id) in &created {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS count FROM passkeys WHERE id = '{id}'"
            )),
            1
        );
    }
}

#[tokio::test]
async fn kratos_stopped_and_started() {
    let (public, admin) = fault_kratos();
    let app = spawn_app_with(|s| {
        s.kratos.public_url = public.clone();
        s.kratos.admin_url = admin.clone();
        s.kratos.request_timeout = Duration::from_secs(2);
    })
    .await;
    let kratos = Kratos::new(public, admin);
    kratos.ensure_reachable().await;
    let user = kratos.create_user().await;
    let auth = Auth::Token(kratos.login_token(&user).await);
    assert_eq!(app.get_json("/passkeys", &auth).await.0, 200);

    fault("kratos", "stop");
    let mut during = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let (status, body) = app.get_json("/passkeys", &auth).await;
        during.push((status, body["error"]["id"].clone(), started.elapsed()));
    }
    let ready = app
        .http
        .get(app.admin_url("/health/ready"))
        .send()
        .await
        .expect("ready");
    let (ready_status, ready_body) = status_and_json(ready).await;
    fault("kratos", "start");
    let (after, _) = app.get_json("/passkeys", &auth).await;
    let ready_after = app
        .http
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("ready")
        .status();

    eprintln!("kratos outage: {during:?}");
    for (status, id, took) in &during {
        assert_eq!((*status, id.as_str()), (503, Some("kratos_unavailable")));
        // A stopped Kratos refuses connections at once; 10 s leaves room for
        // a loaded machine, not for a hang until a TCP timeout.
        assert!(*took < Duration::from_secs(10), "{took:?}");
    }
    assert_eq!(ready_status, 503);
    assert_eq!(ready_body["errors"]["kratos"], "unavailable");
    assert_eq!(after, 200, "the same session works again");
    assert_eq!(ready_after, 200);
}

#[tokio::test]
async fn two_replicas_share_one_database() {
    let a = spawn_app().await;
    let b = spawn_app_with(|s| s.database.url = a.settings.database.url.clone()).await;
    let (user, auth) = a.signed_in_user().await;
    let mut authenticator = Authenticator::new();

    // A registration started on A finishes on B.
    let options = a.registration_options(&auth).await;
    let credential = authenticator.register(&options);
    let (status, body) = b.verify_registration(&auth, &options, &credential).await;
    assert_eq!(status, 201, "{body}");

    // A login started on B, finished on both at once by several racers
    // each: exactly one wins, every other is told the ceremony is used, and
    // Kratos issued exactly one session.
    let (_, options) = b
        .post_json("/passkeys/login/options", &Auth::None, &json!({}))
        .await;
    let assertion = authenticator.login(&options);
    let body =
        json!({"ceremony_id": options["ceremony_id"], "credential": assertion, "session": "token"});
    let identity = user.id;
    let sessions_before = a.kratos.sessions(identity).await.len();
    let racers = (0..6).map(|i| {
        let replica = if i % 2 == 0 { &a } else { &b };
        replica.post_json("/passkeys/login/verify", &Auth::None, &body)
    });
    let answers = futures_util::future::join_all(racers).await;
    let won = answers.iter().filter(|(s, _)| *s == 200).count();
    let used = answers
        .iter()
        .filter(|(s, b)| *s == 404 && b["error"]["id"] == "ceremony_not_found")
        .count();
    assert_eq!((won, used), (1, 5), "{answers:?}");
    assert_eq!(a.kratos.sessions(identity).await.len(), sessions_before + 1);
    assert_eq!(a.count("SELECT count(*) AS count FROM minted_sessions"), 1);

    // A replica with other keys cannot open the ceremonies of these two.
    let stranger = spawn_app_with(|s| {
        s.database.url = a.settings.database.url.clone();
        s.ceremonies.keys = vec![secrecy::SecretString::from(
            "c3RyYW5nZXIga2V5OiAzMiBieXRlcyBleGFjdGx5ISE=".to_string(),
        )];
    })
    .await;
    let (_, options) = a
        .post_json("/passkeys/login/options", &Auth::None, &json!({}))
        .await;
    let assertion = authenticator.login(&options);
    let (status, body) = stranger
        .post_json(
            "/passkeys/login/verify",
            &Auth::None,
            &json!({"ceremony_id": options["ceremony_id"], "credential": assertion, "session": "token"}),
        )
        .await;
    assert_error(status, &body, 404, "ceremony_not_found");
    assert_eq!(a.kratos.sessions(identity).await.len(), sessions_before + 1);
}

#[tokio::test]
async fn killed_mid_load_loses_no_acknowledged_passkey() {
    let (_, database_url) = create_database();
    let start = || {
        let mut serve = binary::serve(&database_url);
        serve.env(
            "KRATOS_PASSKEYS__LIMITS__PASSKEYS_PER_IDENTITY",
            UNLIMITED_PASSKEYS.to_string(),
        );
        Served::start(serve, &database_url)
    };
    let (mut served, app) = start().await;
    let app = Arc::new(app);
    let (tally, stop) = (
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(AtomicBool::new(false)),
    );
    let (load, sessions) = users_registering(&app, 4, &tally, &stop).await;
    // Kill it once some registrations went through, with others in flight.
    let kill = async {
        until(&tally, "five registrations before the kill", |t| {
            t.created().len() >= 5
        })
        .await;
        served.kill();
        let killed_at = Instant::now();
        // The load runs on until a request sent after the kill was answered
        // by nothing.
        until(
            &tally,
            "a request after the kill answered by nothing",
            |t| {
                t.outcomes
                    .iter()
                    .any(|o| o.at >= killed_at && o.status == 0)
            },
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        killed_at
    };
    let (_, killed_at) = tokio::join!(load, kill);
    let (created, outcomes) = {
        let tally = tally.lock().expect("tally");
        let created: Vec<String> = tally.created().into_iter().map(|(_, id)| id).collect();
        let outcomes: Vec<(Instant, u16)> =
            tally.outcomes.iter().map(|o| (o.at, o.status)).collect();
        (created, outcomes)
    };
    let owners: Vec<(String, Auth)> = tally
        .lock()
        .expect("tally")
        .created()
        .into_iter()
        .map(|(worker, id)| (id, sessions[worker].clone()))
        .collect();
    // Cut off: in flight when the process died, or sent while it was gone.
    let cut_off = outcomes.iter().filter(|(_, status)| *status == 0).count();
    let after_kill = outcomes.iter().filter(|(at, _)| *at >= killed_at).count();
    eprintln!(
        "SIGKILL: {} passkeys acknowledged with 201 before the kill, {cut_off} requests cut off, {after_kill} sent after it",
        created.len()
    );
    assert!(created.len() >= 5);
    assert!(
        after_kill >= 1 && cut_off >= after_kill,
        "the load ran on after the kill, and everything sent then failed: {outcomes:?}"
    );
    // Before the kill nothing failed but by being cut off.
    assert!(
        outcomes
            .iter()
            .all(|(_, status)| matches!(status, 0 | 200 | 201)),
        "{outcomes:?}"
    );

    // On ports of its own: the requests below reach the restarted process.
    let (mut restarted, app) = start().await;
    for id in &created {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS count FROM passkeys WHERE id = '{id}'"
            )),
            1,
            "acknowledged passkey {id} survived"
        );
    }
    // Nothing half-written: every stored passkey has its identity row.
    assert_eq!(
        app.count("SELECT count(*) AS count FROM passkeys p LEFT JOIN identities i USING (identity_id) WHERE i.identity_id IS NULL"),
        0
    );
    // And the restarted service lists each survivor to the person who added it.
    for (id, auth) in &owners {
        let (status, list) = app.get_json("/passkeys", auth).await;
        assert_eq!(status, 200, "{list}");
        assert!(
            list["passkeys"]
                .as_array()
                .expect("list")
                .iter()
                .any(|p| p["id"].as_str() == Some(id.as_str())),
            "passkey {id} is listed after the restart: {list}"
        );
    }
    restarted.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_lost_between_mint_and_record_leaves_no_session_behind() {
    let _cluster = FAULT_POSTGRES.lock().await;
    let (_, database_url) = create_database_on(&fault_postgres());
    let mut settings = test_settings(&database_url);
    settings.database.acquire_timeout = Duration::from_millis(500);
    let app = spawn_with_settings(settings).await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    let active = |sessions: Vec<Value>| sessions.iter().filter(|s| s["active"] == true).count();
    let before = active(app.kratos.sessions(user.id).await);
    let state = app.state.clone().expect("in process");
    state.login_hooks.install(|step| async move {
        if step == kratos_passkeys::login_hooks::LoginStep::Minted {
            fault_async("postgres", "stop").await;
        }
    });
    let options = app.login_options().await;
    let credential = authenticator.login(&options);
    let (status, body) = status_and_json(
        app.verify_login(&options, &credential, json!({"session": "token"}))
            .await,
    )
    .await;
    fault_async("postgres", "start").await;
    assert_error(status, &body, 503, "database_unavailable");
    assert_eq!(
        active(app.kratos.sessions(user.id).await),
        before,
        "the session minted just before the database went away was revoked"
    );
    // Once the database is back, the record says so.
    app.eventually_count(
        "SELECT count(*) AS count FROM minted_sessions WHERE state = 'revoked'",
        1,
    )
    .await;
}

/// A stand-in for Kratos's public API that relays everything to the real
/// one but drops `Set-Cookie` from the recovery flow's answers: Kratos has
/// issued the session, and its cookie never arrives.
async fn kratos_losing_the_session_cookie() -> Url {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    async fn relay(req: HttpRequest, body: web::Bytes) -> HttpResponse {
        let target = crate::helpers::kratos_public_url()
            .join(
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/"),
            )
            .expect("url");
        let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("method");
        let mut forwarded = reqwest::Client::new()
            .request(method, target)
            .body(body.to_vec());
        for (name, value) in req.headers() {
            if name != "host" {
                forwarded = forwarded.header(name.as_str(), value.as_bytes());
            }
        }
        let answer = forwarded.send().await.expect("Kratos answers");
        let strip = req.path().starts_with("/self-service/recovery");
        let mut response = HttpResponse::build(
            actix_web::http::StatusCode::from_u16(answer.status().as_u16()).expect("status"),
        );
        for (name, value) in answer.headers() {
            let skipped = ["content-length", "transfer-encoding", "connection"];
            if (strip && name == "set-cookie") || skipped.contains(&name.as_str()) {
                continue;
            }
            response.append_header((name.as_str(), value.as_bytes()));
        }
        response.body(answer.bytes().await.expect("body"))
    }
    let server = HttpServer::new(|| App::new().default_service(web::to(relay)))
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url")
}

#[tokio::test]
async fn a_session_whose_cookie_never_arrives_is_revoked() {
    let proxy = kratos_losing_the_session_cookie().await;
    let app = spawn_app_with(|s| s.kratos.public_url = proxy).await;
    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    let active = |sessions: Vec<Value>| sessions.iter().filter(|s| s["active"] == true).count();
    let before = active(app.kratos.sessions(user.id).await);
    let options = app.login_options().await;
    let credential = authenticator.login(&options);
    let (status, body) = status_and_json(
        app.verify_login(&options, &credential, json!({"session": "cookie"}))
            .await,
    )
    .await;
    assert_error(status, &body, 502, "kratos_mint_failed");
    assert_eq!(
        active(app.kratos.sessions(user.id).await),
        before,
        "the session Kratos issued without its cookie was revoked"
    );
    app.eventually_count(
        "SELECT count(*) AS count FROM minted_sessions WHERE state = 'revoked'",
        1,
    )
    .await;
}
