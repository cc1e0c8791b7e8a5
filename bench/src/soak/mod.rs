//! `kratos-passkeys-bench soak`: mixed traffic against two replicas for as
//! long as asked, with faults inside the run, then checks that nothing the
//! service acknowledged was lost and that nothing grew without bound.
//!
//! The load is paced (an open rate, not as fast as possible): a soak
//! measures whether the service stays well at a steady, realistic load,
//! not how much it can take. `scripts/soak` starts the stack and names the
//! command that injects each fault.

mod charts;
mod checks;
mod ops;
mod record;
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use url::Url;

use crate::receiver::Receiver;
use ops::{Acknowledged, Op, Replicas, SoakUser, Targets};
use record::{Db, FaultWindow, Proc, Sample, Visit};

#[derive(Debug, Parser)]
#[command(name = "kratos-passkeys-bench soak")]
pub struct SoakCli {
    /// How long the load runs: seconds, or with a unit (90s, 2m, 1h).
    #[arg(long, value_parser = parse_duration)]
    duration: Duration,
    /// Visits per second over all users (about half of the measured
    /// capacity; see BENCHMARKS.md).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Concurrent virtual users.
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// The replicas' public listeners.
    #[arg(long, value_delimiter = ',', required = true)]
    replicas: Vec<Url>,
    /// Files holding each replica's pid (read at every sample: a restarted
    /// replica has a new one), in the order of --replicas.
    #[arg(long, value_delimiter = ',')]
    pid_files: Vec<PathBuf>,
    #[arg(long)]
    kratos_public: Url,
    #[arg(long)]
    kratos_admin: Url,
    /// The page origin the software passkeys sign for.
    #[arg(long)]
    origin: String,
    /// The service's database (psql reads table sizes and the end state).
    #[arg(long)]
    database_url: String,
    /// Be the event endpoint here (loopback).
    #[arg(long)]
    events_receiver: SocketAddr,
    /// `NAME@FRACTION`: run `--fault-command NAME` at that fraction of the
    /// duration (e.g. postgres-restart@0.25). Repeatable.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<(String, f64)>,
    /// The program that injects a fault, given its name; it returns once
    /// the fault is over (the process restarted).
    #[arg(long)]
    fault_command: Option<PathBuf>,
    /// Seconds after a fault command returns that still count as its
    /// window (pools reconnecting, the balancer noticing a replica).
    #[arg(long, default_value_t = 10.0)]
    fault_grace: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Seconds of a process's life before its RSS counts as warmed up.
    #[arg(long, default_value_t = 30.0)]
    warmup: f64,
    /// The service's settings the bounds are checked against (seconds).
    #[arg(long)]
    gc_interval: f64,
    #[arg(long)]
    used_ceremony_margin: f64,
    #[arg(long)]
    event_retention: f64,
    #[arg(long)]
    login_record_retention: f64,
    /// Seconds to wait after the load for the event backlog to empty and
    /// the login records to settle.
    #[arg(long, default_value_t = 90.0)]
    drain: f64,
    /// Where the report, its charts and the JSON go.
    #[arg(long)]
    out: PathBuf,
    /// The command that ran this soak, for the report.
    #[arg(long, default_value = "")]
    command: String,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text}: not a duration"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text}: unit must be s, m or h")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("{text}: must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_fault(text: &str) -> Result<(String, f64), String> {
    let (name, at) = text
        .split_once('@')
        .ok_or_else(|| format!("{text}: expected NAME@FRACTION"))?;
    let at: f64 = at
        .parse()
        .map_err(|_| format!("{text}: the fraction is not a number"))?;
    if !(0.0..1.0).contains(&at) || name.is_empty() {
        return Err(format!(
            "{text}: expected NAME@FRACTION with 0 <= FRACTION < 1"
        ));
    }
    Ok((name.to_string(), at))
}

/// What the run shares between its tasks.
struct Shared {
    started: Instant,
    visits: Mutex<Vec<Visit>>,
    registered: Mutex<HashSet<String>>,
    deleted: Mutex<HashSet<String>>,
    /// Passkeys whose delete failed: it may or may not have happened.
    uncertain: Mutex<HashSet<String>>,
    logins: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// A small deterministic generator for the mix (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

async fn drive_user(
    mut user: SoakUser,
    targets: Arc<Targets>,
    shared: Arc<Shared>,
    period: Duration,
    until: Instant,
) {
    let mut rng =
        Rng(0x9E37_79B9_7F4A_7C15 ^ (user.index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    // Users start spread over one period, not all at once.
    let mut next = Instant::now() + period.mul_f64(user.index as f64 % 97.0 / 97.0);
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        let op = user.effective(Op::pick(rng.next()));
        let at = shared.now();
        let started = Instant::now();
        let (result, replica) = user.visit(&targets, op).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(id) = user.take_uncertain() {
            lock(&shared.uncertain).insert(id);
        }
        let error = match result {
            Ok(Acknowledged::Registered(id)) => {
                lock(&shared.registered).insert(id);
                None
            }
            Ok(Acknowledged::Deleted(id)) => {
                lock(&shared.deleted).insert(id);
                None
            }
            Ok(Acknowledged::LoggedIn) => {
                shared
                    .logins
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            }
            Ok(Acknowledged::Nothing) => None,
            Err(failure) => Some(failure.label()),
        };
        lock(&shared.visits).push(Visit {
            at,
            op,
            latency_ms,
            error,
            replica,
        });
        next += period;
        // Behind by more than a period (a stall): skip, no burst after it.
        let now = Instant::now();
        if next + period < now {
            next = now;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The balancer's health check: a replica that answers /health/alive takes
/// traffic again.
async fn health_checks(targets: Arc<Targets>, until: Instant) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
    {
        Ok(http) => http,
        Err(_) => return,
    };
    while Instant::now() < until {
        for (i, base) in targets.replicas.public.iter().enumerate() {
            let Ok(url) = base.join("health/alive") else {
                continue;
            };
            let up = http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            targets.replicas.mark(i, up);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run_faults(
    cli: &SoakCli,
    shared: Arc<Shared>,
    windows: Arc<Mutex<Vec<FaultWindow>>>,
) -> Result<()> {
    let mut faults = cli.faults.clone();
    faults.sort_by(|a, b| a.1.total_cmp(&b.1));
    let Some(command) = cli.fault_command.clone() else {
        if faults.is_empty() {
            return Ok(());
        }
        bail!("--fault needs --fault-command");
    };
    for (name, fraction) in faults {
        let at = cli.duration.as_secs_f64() * fraction;
        let wait = at - shared.now();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        let start = shared.now();
        let start_epoch = epoch_now();
        eprintln!("kratos-passkeys-bench soak: {start:.0} s: fault {name}");
        let command = command.clone();
        let arg = name.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&command)
                .arg("fault")
                .arg(&arg)
                .stdin(std::process::Stdio::null())
                .output()
        })
        .await
        .context("the fault command panicked")?
        .with_context(|| format!("running the fault command for {name}"))?;
        let end = shared.now();
        let ok = output.status.success();
        if !ok {
            eprintln!(
                "kratos-passkeys-bench soak: fault {name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        eprintln!(
            "kratos-passkeys-bench soak: {end:.0} s: fault {name} over ({:.1} s)",
            end - start
        );
        lock(&windows).push(FaultWindow {
            name,
            start,
            end,
            grace_end: end + cli.fault_grace,
            ok,
            start_epoch,
            grace_end_epoch: epoch_now() + cli.fault_grace,
        });
    }
    Ok(())
}

fn epoch_now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

/// One process's RSS (MiB) and open descriptors, from /proc.
fn proc_of(pid_file: &PathBuf) -> Option<Proc> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Proc {
        pid,
        rss_mib: rss_kib / 1024.0,
        fds,
    })
}

/// Every event and login record the database held, each as last read.
#[derive(Clone, Default)]
struct Seen {
    events: Arc<Mutex<HashMap<String, String>>>,
    logins: Arc<Mutex<HashMap<String, record::LoginRecord>>>,
}

impl Seen {
    async fn read(&self, db: &Db) {
        if let Ok(recent) = db.recent_events().await {
            lock(&self.events).extend(recent);
        }
        if let Ok(recent) = db.recent_logins().await {
            lock(&self.logins).extend(recent);
        }
    }
}

async fn sampler(
    cli: &SoakCli,
    db: Db,
    shared: Arc<Shared>,
    until: Instant,
    seen: Seen,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let interval = Duration::from_secs_f64(cli.interval);
    let mut next = Instant::now();
    loop {
        let at = shared.now();
        let procs = cli.pid_files.iter().map(proc_of).collect();
        let tables = db.tables().await.ok();
        // Events and login records are read while they are young:
        // retention purges them.
        seen.read(&db).await;
        let done = lock(&shared.visits).len();
        eprintln!(
            "kratos-passkeys-bench soak: {at:>5.0} s: {done} visits{}",
            tables
                .as_ref()
                .map(|t: &record::Tables| format!(
                    ", {} ceremony marks, {} events, {} undelivered",
                    t.consumed_ceremonies, t.events, t.undelivered
                ))
                .unwrap_or_else(|| ", database unreachable".into())
        );
        samples.push(Sample { at, procs, tables });
        next += interval;
        if next > until {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    samples
}

pub async fn run(cli: SoakCli) -> Result<bool> {
    if cli.replicas.len() != cli.pid_files.len() {
        bail!("--pid-files must name one file per replica");
    }
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    let db = Db::new(
        cli.database_url.clone(),
        cli.used_ceremony_margin + 2.0 * cli.gc_interval + 5.0,
        cli.event_retention + 2.0 * cli.gc_interval + 5.0,
        cli.login_record_retention + 2.0 * cli.gc_interval + 5.0,
    );
    db.tables()
        .await
        .context("reading the service's tables (is psql installed, is the database up?)")?;
    let receiver = Receiver::start(cli.events_receiver).await?;
    let targets = Arc::new(Targets {
        replicas: Replicas::new(cli.replicas.clone()),
        kratos_public: cli.kratos_public.clone(),
        kratos_admin: cli.kratos_admin.clone(),
        origin: cli.origin.clone(),
    });

    eprintln!("kratos-passkeys-bench soak: set-up of {} users", cli.users);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut tasks = Vec::new();
    for index in 0..cli.users {
        let targets = targets.clone();
        let run_id = run_id.clone();
        tasks.push(tokio::spawn(async move {
            SoakUser::setup(&targets, &run_id, index).await
        }));
    }
    let mut users = Vec::new();
    for task in tasks {
        users.push(task.await.context("set-up panicked")??);
    }
    let shared = Arc::new(Shared {
        started: Instant::now(),
        visits: Mutex::new(Vec::new()),
        registered: Mutex::new(users.iter().map(|u| u.primary_id().to_string()).collect()),
        deleted: Mutex::new(HashSet::new()),
        uncertain: Mutex::new(HashSet::new()),
        logins: Default::default(),
    });
    let started_utc = chrono::Utc::now();
    let until = shared.started + cli.duration;
    eprintln!(
        "kratos-passkeys-bench soak: {} s at {} visits/s",
        cli.duration.as_secs(),
        cli.rate
    );

    let period = Duration::from_secs_f64(cli.users as f64 / cli.rate);
    let mut drivers = Vec::new();
    for user in users {
        drivers.push(tokio::spawn(drive_user(
            user,
            targets.clone(),
            shared.clone(),
            period,
            until,
        )));
    }
    tokio::spawn(health_checks(
        targets.clone(),
        until + Duration::from_secs(5),
    ));
    let windows = Arc::new(Mutex::new(Vec::new()));
    let seen = Seen::default();
    let (samples, faults) = tokio::join!(
        sampler(&cli, db.clone(), shared.clone(), until, seen.clone()),
        run_faults(&cli, shared.clone(), windows.clone()),
    );
    faults?;
    for driver in drivers {
        driver.await.context("a virtual user panicked")?;
    }
    let load_s = shared.now();
    eprintln!("kratos-passkeys-bench soak: load over after {load_s:.0} s; draining");

    // After the load: the backlog empties, the login records settle.
    let drained_by = Instant::now() + Duration::from_secs_f64(cli.drain);
    let mut drained = false;
    let mut drained_at: Option<Instant> = None;
    while Instant::now() < drained_by {
        seen.read(&db).await;
        if let Ok(t) = db.tables().await {
            if t.undelivered == 0 {
                drained = true;
                let since = *drained_at.get_or_insert_with(Instant::now);
                // A record minting when its replica was killed stays so
                // until gc gives it up (minutes): the check judges it, the
                // drain does not wait for it.
                if t.logins_unfinished == 0 || since.elapsed() > Duration::from_secs(10) {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_s = shared.now() - load_s;
    let end = db.end_state().await.context("reading the end state")?;
    lock(&seen.events).extend(end.events.clone());
    lock(&seen.logins).extend(end.logins.clone());
    let logins: Vec<record::LoginRecord> = lock(&seen.logins).values().cloned().collect();

    let windows = lock(&windows).clone();
    let visits = std::mem::take(&mut *lock(&shared.visits));
    let input = checks::Input {
        duration_s: cli.duration.as_secs_f64(),
        windows: &windows,
        visits: &visits,
        samples: &samples,
        registered: &lock(&shared.registered).clone(),
        deleted: &lock(&shared.deleted).clone(),
        uncertain: &lock(&shared.uncertain).clone(),
        acknowledged_logins: shared.logins.load(std::sync::atomic::Ordering::Relaxed),
        present: &end.passkeys,
        events_written: &lock(&seen.events).clone(),
        arrivals: &receiver.arrivals(),
        started: shared.started,
        logins: &logins,
        drained,
        warmup_s: cli.warmup,
        bounds: checks::Bounds {
            gc_interval_s: cli.gc_interval,
            used_ceremony_margin_s: cli.used_ceremony_margin,
            event_retention_s: cli.event_retention,
            login_record_retention_s: cli.login_record_retention,
        },
        faults_planned: cli.faults.len(),
        replicas: cli.replicas.len(),
    };
    let results = checks::all(&input);
    let summary = record::Summary::of(&visits, cli.interval, load_s);
    let charts = charts::draw(&cli.out, &summary, &samples, &windows, load_s)?;
    let markdown = report::markdown(&report::Report {
        command: &cli.command,
        started_utc,
        duration_s: cli.duration.as_secs_f64(),
        load_s,
        drain_s,
        rate: cli.rate,
        users: cli.users,
        replicas: cli.replicas.len(),
        windows: &windows,
        summary: &summary,
        samples: &samples,
        checks: &results,
        charts: &charts,
        receiver: &receiver.counts(),
        logins: &logins,
        warmup_s: cli.warmup,
        per_replica: (0..cli.replicas.len())
            .map(|i| visits.iter().filter(|v| v.replica == Some(i)).count() as u64)
            .collect(),
    });
    let path = cli.out.join("report.md");
    std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
    let json = serde_json::json!({
        "started": started_utc.to_rfc3339(),
        "duration_s": cli.duration.as_secs_f64(),
        "rate": cli.rate,
        "users": cli.users,
        "faults": windows,
        "samples": samples,
        "buckets": summary.buckets,
        "errors": summary.errors,
        "checks": results,
        "login_records": logins,
    });
    let path = cli.out.join("soak.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    let mut ok = true;
    for check in &results {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        eprintln!(
            "kratos-passkeys-bench soak: {mark} {}: {}",
            check.name, check.detail
        );
        ok &= check.passed;
    }
    eprintln!(
        "kratos-passkeys-bench soak: wrote {}",
        cli.out.join("report.md").display()
    );
    let by_error: BTreeMap<String, u64> = summary.errors.clone();
    if !by_error.is_empty() {
        eprintln!("kratos-passkeys-bench soak: errors by id: {by_error:?}");
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn faults_are_named_at_a_fraction() {
        assert_eq!(
            parse_fault("postgres-restart@0.25").unwrap(),
            ("postgres-restart".to_string(), 0.25)
        );
        assert!(parse_fault("kill@1.5").is_err());
        assert!(parse_fault("@0.5").is_err());
        assert!(parse_fault("kill").is_err());
    }
}
