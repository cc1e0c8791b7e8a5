//! Postgres failover under load, run by `scripts/failover-check`, which
//! starts a primary and a synchronous hot standby and sets
//! `KRATOS_PASSKEYS_TEST_FAILOVER_PRIMARY`/`_STANDBY`/`_SCRIPT`. A target of
//! its own (`test = false` in Cargo.toml) so plain `cargo test` never runs
//! it without the clusters; run without them, it fails rather than skips.

#[allow(dead_code, unused_imports)]
#[path = "api/helpers/mod.rs"]
mod helpers;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kratos_passkeys_testkit::load::{self, summary, Kind, Tally, Worker};

use helpers::{
    create_database_on, passkey_limit, poster, spawn_with_settings, test_settings, Authenticator,
};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is unset: run this test through scripts/failover-check"))
}

/// `scripts/failover-check kill|promote`, off the async task so the load
/// beside it keeps going.
async fn cluster(action: &'static str) {
    let script = env("KRATOS_PASSKEYS_TEST_FAILOVER_SCRIPT");
    let status = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args([&script, action])
            .stdout(Stdio::null())
            .status()
    })
    .await
    .expect("join")
    .expect("run scripts/failover-check");
    assert!(status.success(), "scripts/failover-check {action} failed");
}

/// Waits until `done` holds, up to `limit`.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_and_standby_promoted_under_load() {
    let primary = env("KRATOS_PASSKEYS_TEST_FAILOVER_PRIMARY");
    let standby = env("KRATOS_PASSKEYS_TEST_FAILOVER_STANDBY");
    let (name, _) = create_database_on(&primary);
    let standby_host = standby.rsplit('@').next().expect("host:port");
    // The production DSN: both hosts, and only a writable one will do, so a
    // standby that is still read-only is refused at connect time.
    let dsn = format!(
        "{primary},{standby_host}/{name}?target_session_attrs={}&connect_timeout=2",
        std::env::var("KRATOS_PASSKEYS_TEST_FAILOVER_SESSION_ATTRS")
            .unwrap_or_else(|_| "read-write".into())
    );
    eprintln!("failover: the service's DSN is {dsn}");
    let mut settings = test_settings(&dsn);
    settings.database.acquire_timeout = Duration::from_millis(500);
    settings.limits.login_per_ip.burst = 1_000_000;
    settings.limits.login_per_ip.per_minute = 1_000_000;
    // Two people register back to back for as long as the failover takes.
    settings.limits.passkeys_per_identity = passkey_limit(u32::MAX);
    let app = Arc::new(spawn_with_settings(settings).await);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = |index| Worker {
        index,
        tally: tally.clone(),
        stop: stop.clone(),
        pause: Duration::ZERO,
    };
    let mut load = Vec::new();
    for index in 0..2 {
        let (_, auth) = app.signed_in_user().await;
        load.push(tokio::spawn(load::registrations(
            poster(app.clone(), auth),
            worker(index),
        )));
    }
    for index in 2..4 {
        let (_, auth) = app.signed_in_user().await;
        let mut authenticator = Authenticator::new();
        let passkey = app.register_passkey(&auth, &mut authenticator).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        load.push(tokio::spawn(load::logins(
            poster(app.clone(), auth),
            authenticator,
            passkey,
            worker(index),
        )));
    }
    let started = Instant::now();
    until(Duration::from_secs(60), "load before the kill", || {
        let t = tally.lock().expect("tally");
        t.succeeded_since(started, Kind::Registration) >= 10
            && t.succeeded_since(started, Kind::Login) >= 10
    })
    .await;

    let killed = Instant::now();
    cluster("kill").await;
    // Requests meet a dead primary and a read-only standby for a while.
    until(Duration::from_secs(30), "a 503 after the kill", || {
        tally
            .lock()
            .expect("tally")
            .outcomes
            .iter()
            .any(|o| o.at >= killed && o.status == 503)
    })
    .await;
    cluster("promote").await;
    let promoted = Instant::now();
    until(
        Duration::from_secs(60),
        "registrations and logins on the new primary",
        || {
            let t = tally.lock().expect("tally");
            t.succeeded_since(promoted, Kind::Registration) >= 10
                && t.succeeded_since(promoted, Kind::Login) >= 10
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }

    let tally = tally.lock().expect("tally");
    let mut outcomes = tally.outcomes.clone();
    outcomes.sort_by_key(|o| o.at);
    eprintln!(
        "failover: before the kill {:?}; after it {:?}",
        summary(outcomes.iter().filter(|o| o.done < killed)),
        summary(outcomes.iter().filter(|o| o.done >= killed)),
    );
    for o in &outcomes {
        assert!(
            o.succeeded()
                || (o.status == 503 && o.error_id.as_deref() == Some("database_unavailable")),
            "every request succeeds or answers 503 database_unavailable: {o:?}"
        );
    }
    // The longest run of 503s, in request order: from the first one's start
    // to the next success's start.
    let (mut longest, mut longest_count, mut run): (Duration, usize, Option<(Instant, usize)>) =
        (Duration::ZERO, 0, None);
    for o in &outcomes {
        if o.status == 503 {
            let (from, count) = run.unwrap_or((o.at, 0));
            run = Some((from, count + 1));
        } else if let Some((from, count)) = run.take() {
            if o.at - from > longest {
                (longest, longest_count) = (o.at - from, count);
            }
        }
    }
    assert!(run.is_none(), "the load ended on 503s");
    assert!(longest_count > 0, "the switch was seen");
    let last_503 = outcomes
        .iter()
        .filter(|o| o.status == 503)
        .map(|o| o.at)
        .max()
        .expect("503");
    assert!(
        outcomes
            .iter()
            .filter(|o| o.at > last_503)
            .all(|o| o.succeeded()),
        "recovered by itself"
    );

    // Everything acknowledged before the kill is on the new primary.
    let acknowledged = |kind: Kind| -> BTreeMap<String, i64> {
        let mut ids = BTreeMap::new();
        for o in outcomes
            .iter()
            .filter(|o| o.kind == kind && o.done < killed)
        {
            if let Some(id) = &o.passkey {
                *ids.entry(id.clone()).or_insert(0) += 1;
            }
        }
        ids
    };
    let registered = acknowledged(Kind::Registration);
    let logged_in = acknowledged(Kind::Login);
    let mut passkeys_found = 0;
    let mut events_found = 0;
    for id in registered.keys() {
        passkeys_found += app.count(&format!(
            "SELECT count(*) AS count FROM passkeys WHERE id = '{id}'"
        ));
        events_found += app.count(&format!(
            "SELECT count(*) AS count FROM events WHERE type = 'passkey.registered' \
             AND payload::text LIKE '%{id}%'"
        ));
    }
    // Logins went on after the kill, so a passkey may have more login
    // events than were acknowledged before it: each acknowledged one must
    // be there, extra ones are not counted.
    for (id, acked) in &logged_in {
        let stored = app.count(&format!(
            "SELECT count(*) AS count FROM events WHERE type = 'passkey.login' \
             AND payload::text LIKE '%{id}%'"
        ));
        events_found += stored.min(*acked);
    }
    let passkeys_before = registered.len() as i64;
    let events_before = passkeys_before + logged_in.values().sum::<i64>();
    eprintln!(
        "failover: passkeys acknowledged before the kill {passkeys_before}, found after {passkeys_found}; \
         events acknowledged before the kill {events_before} ({passkeys_before} passkey.registered, {} passkey.login), found after {events_found}; \
         longest stretch of 503s {longest:?} ({longest_count} requests); \
         first success {:?} after the promotion",
        events_before - passkeys_before,
        outcomes
            .iter()
            .find(|o| o.at >= promoted && o.succeeded())
            .map(|o| o.done - promoted),
    );
    assert_eq!(
        passkeys_found, passkeys_before,
        "passkeys lost in the failover"
    );
    assert_eq!(events_found, events_before, "events lost in the failover");
}
