//! kratos-passkeys-bench: how much does a passkey login through
//! kratos-passkeys cost, and is it slower than Kratos's own passkey login?
//!
//! N concurrent virtual users, each with its own identity and passkeys made
//! in an untimed set-up, run ceremonies for a fixed duration (or a fixed
//! count) in these modes:
//!
//! - `register`: add a passkey through kratos-passkeys (options, the
//!   software authenticator, verify), with a session token from Kratos's
//!   API login flow;
//! - `login-token`, `login-cookie`: a discoverable passkey login through
//!   kratos-passkeys, which mints a Kratos session (token or relayed cookie);
//! - `kratos-native`: Kratos v1.3.1's own `passkey` login method through its
//!   browser flow (flow fetch, sign, submit), against the same Kratos;
//! - `kratos-native-v26`: Kratos v26.2.0's own `passkey` login through its
//!   API flow (flow fetch, sign, submit; a session token back), against a
//!   second Kratos of that release (`--kratos-v26-public`);
//! - `login-token-baseline`: `login-token` against a second instance of the
//!   service built from an older revision (`--baseline-service`), to compare
//!   two builds in one run;
//! - `login-token-no-events`: `login-token` against a second instance of the
//!   same build with no event endpoint (also `--baseline-service`), while
//!   the first delivers every event to the load tool's own receiver
//!   (`--events-receiver`), to measure what delivering the outbox costs.
//!
//! Modes run one after the other (`--modes`), then some of them take turns
//! for `--rounds` rounds (`--interleave A,B[,C...]`), so a comparison
//! survives a noisy machine. It reports completed ceremonies, errors,
//! throughput, latency percentiles, CPU seconds per ceremony of the
//! processes whose pids it is given, and, when the service (and the
//! baseline) serve Prometheus metrics, where a ceremony's time goes. With
//! `--events-receiver` it also counts the events the service delivers,
//! waits for its outbox to empty after the last run, and reports whether
//! every login's event arrived.
//! `scripts/bench` starts a dedicated stack and runs it.

mod ceremonies;
mod measure;
mod receiver;
mod report;
mod soak;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use url::Url;

use crate::ceremonies::{Needs, Targets, VirtualUser};
use crate::measure::{CpuSource, Latency, Samples, Scrape, EVENTS_UNDELIVERED, EVENT_DELIVERIES};
use crate::receiver::Receiver;
use crate::report::{
    Baseline, CpuUse, EventDelivery, EventsSetup, Phase, PhaseEvents, Report, RunConfig,
    SecondKratos,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Add a passkey through kratos-passkeys.
    Register,
    /// Passkey login through kratos-passkeys, session token answered.
    LoginToken,
    /// Passkey login through kratos-passkeys, Kratos's cookie relayed.
    LoginCookie,
    /// Kratos v1.3.1's own passkey login (browser flow, JSON).
    KratosNative,
    /// `login-token` against the baseline build (`--baseline-service`).
    LoginTokenBaseline,
    /// Kratos v26's own passkey login (API flow) on the second Kratos
    /// (`--kratos-v26-public`).
    #[value(name = "kratos-native-v26")]
    #[serde(rename = "kratos-native-v26")]
    KratosNativeV26,
    /// `login-token` against the same build with no event endpoint
    /// (`--baseline-service`), beside the current one delivering events.
    LoginTokenNoEvents,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Register => "register",
            Mode::LoginToken => "login-token",
            Mode::LoginCookie => "login-cookie",
            Mode::KratosNative => "kratos-native",
            Mode::LoginTokenBaseline => "login-token-baseline",
            Mode::KratosNativeV26 => "kratos-native-v26",
            Mode::LoginTokenNoEvents => "login-token-no-events",
        }
    }

    /// Whether the mode is a Kratos release's own login (no service in it).
    pub fn is_native(self) -> bool {
        matches!(self, Mode::KratosNative | Mode::KratosNativeV26)
    }

    /// Whether the mode runs against the second instance of the service
    /// (`--baseline-service`): the baseline build, or the current build
    /// without event endpoints.
    pub fn on_second_instance(self) -> bool {
        matches!(self, Mode::LoginTokenBaseline | Mode::LoginTokenNoEvents)
    }

    /// Whether a completed ceremony of this mode makes the current
    /// instance write an event, and of which type.
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            Mode::LoginToken | Mode::LoginCookie => Some(LOGIN_EVENT),
            Mode::Register => Some(REGISTERED_EVENT),
            _ => None,
        }
    }

    /// The key of the service process in a phase's CPU figures: the
    /// instance this mode exercises (kratos-native: the current one, idle).
    pub fn service_cpu_key(self) -> &'static str {
        match self {
            Mode::LoginTokenBaseline => BASELINE_SERVICE_CPU,
            Mode::LoginTokenNoEvents => NO_EVENTS_SERVICE_CPU,
            _ => SERVICE_CPU,
        }
    }

    /// The key of the Kratos process this mode talks to: the v26 Kratos for
    /// its own login, the benchmark Kratos for everything else (the service
    /// mints its sessions there).
    pub fn kratos_cpu_key(self) -> &'static str {
        match self {
            Mode::KratosNativeV26 => KRATOS_V26_CPU,
            _ => KRATOS_CPU,
        }
    }
}

/// The names CPU figures are recorded under (JSON keys, so stable).
pub const SERVICE_CPU: &str = "service";
pub const BASELINE_SERVICE_CPU: &str = "baseline_service";
pub const NO_EVENTS_SERVICE_CPU: &str = "no_events_service";
pub const KRATOS_CPU: &str = "kratos";
pub const KRATOS_V26_CPU: &str = "kratos_v26";

/// The event types a passkey login and a passkey registration write.
pub const LOGIN_EVENT: &str = "passkey.login";
pub const REGISTERED_EVENT: &str = "passkey.registered";

#[derive(Debug, Parser)]
#[command(name = "kratos-passkeys-bench", version, about, long_about = None)]
struct Cli {
    /// Modes run one after the other.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Mode::Register, Mode::LoginToken, Mode::LoginCookie, Mode::KratosNative])]
    modes: Vec<Mode>,
    /// Modes that take turns (A B C A B C ...) after the sequential ones;
    /// two or more. Each one is compared with kratos-native when that is
    /// among them (otherwise the first with the second).
    #[arg(long, value_enum, value_delimiter = ',')]
    interleave: Vec<Mode>,
    /// Rounds of the interleaved modes.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Concurrent virtual users.
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// Seconds each run lasts (ignored with --count).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Run a fixed number of ceremonies per run instead of a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Untimed seconds of the same mode before each run's measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// kratos-passkeys public listener.
    #[arg(long, default_value = "http://127.0.0.1:8180/")]
    service: Url,
    /// kratos-passkeys admin listener (for /metrics).
    #[arg(long, default_value = "http://127.0.0.1:8181/")]
    service_admin: Url,
    /// The second instance's public listener: the baseline build
    /// (login-token-baseline) or the current build without event endpoints
    /// (login-token-no-events).
    #[arg(long, default_value = "http://127.0.0.1:8280/")]
    baseline_service: Url,
    /// The second instance's admin listener (for its /metrics).
    #[arg(long, default_value = "http://127.0.0.1:8281/")]
    baseline_service_admin: Url,
    /// What the baseline build is, for the reports (e.g. its git revision).
    #[arg(long, default_value = "baseline")]
    baseline_rev: String,
    /// Kratos public API.
    #[arg(long, default_value = "http://127.0.0.1:4633/")]
    kratos_public: Url,
    /// Kratos admin API.
    #[arg(long, default_value = "http://127.0.0.1:4634/")]
    kratos_admin: Url,
    /// The second Kratos's public API, a v26 release (kratos-native-v26).
    #[arg(long, default_value = "http://127.0.0.1:4643/")]
    kratos_v26_public: Url,
    /// The second Kratos's admin API.
    #[arg(long, default_value = "http://127.0.0.1:4644/")]
    kratos_v26_admin: Url,
    /// The page origin the software passkey signs for; the service's and
    /// Kratos's passkey configuration must allow it.
    #[arg(long, default_value = "http://localhost:8180")]
    origin: String,
    /// The service's pid, for its CPU time.
    #[arg(long)]
    service_pid: Option<u32>,
    /// The second instance's pid (baseline or no event endpoint), for its
    /// CPU time.
    #[arg(long)]
    baseline_pid: Option<u32>,
    /// Kratos's pid, for its CPU time.
    #[arg(long)]
    kratos_pid: Option<u32>,
    /// The v26 Kratos's pid, for its CPU time.
    #[arg(long)]
    kratos_v26_pid: Option<u32>,
    /// PostgreSQL's postmaster pid, for the CPU time of it and its backends
    /// (all databases: other activity on the server counts too).
    #[arg(long)]
    postgres_pid: Option<u32>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the results as a markdown report here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// A name for this run in the reports (e.g. "default", "smoke").
    #[arg(long)]
    label: Option<String>,
    /// A free-form note about how the stack was built, for the reports.
    #[arg(long)]
    note: Option<String>,
    /// Be the current instance's event endpoint: listen here (loopback,
    /// e.g. 127.0.0.1:8190), answer 204 to every POST, count the events,
    /// and after the last run wait for the service's outbox to empty and
    /// report whether every login's event arrived. The service must be
    /// configured to deliver to it.
    #[arg(long)]
    events_receiver: Option<SocketAddr>,
    /// Seconds to wait after the last run for the event backlog (the
    /// service's kratos_passkeys_events_undelivered gauge) to empty.
    #[arg(long, default_value_t = 120.0)]
    events_drain: f64,
}

fn loopback_only(name: &str, url: &Url) -> Result<()> {
    let ok = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    if !ok {
        bail!("--{name} {url}: only loopback targets are allowed");
    }
    Ok(())
}

/// A run: the mode, and its round when it is part of the interleaved pair.
#[derive(Debug, Clone, Copy)]
struct Step {
    mode: Mode,
    round: Option<u32>,
}

fn plan(cli: &Cli) -> Result<Vec<Step>> {
    let mut steps: Vec<Step> = cli
        .modes
        .iter()
        .map(|&mode| Step { mode, round: None })
        .collect();
    match cli.interleave.len() {
        0 => {}
        1 => bail!("--interleave takes two or more modes, got one"),
        _ => {
            // Rounds are matched by mode, so a mode twice in a round would
            // make its figures ambiguous.
            let mut seen = Vec::with_capacity(cli.interleave.len());
            for &mode in &cli.interleave {
                if seen.contains(&mode) {
                    bail!("--interleave names {} twice", mode.name());
                }
                seen.push(mode);
            }
            for round in 1..=cli.rounds {
                for &mode in &cli.interleave {
                    steps.push(Step {
                        mode,
                        round: Some(round),
                    });
                }
            }
        }
    }
    if steps.is_empty() {
        bail!("nothing to run: give --modes or --interleave");
    }
    // Both would log in to the one second instance and be reported as two
    // different things.
    if steps.iter().any(|s| s.mode == Mode::LoginTokenBaseline)
        && steps.iter().any(|s| s.mode == Mode::LoginTokenNoEvents)
    {
        bail!("login-token-baseline and login-token-no-events both use the second instance (--baseline-service); run one of them");
    }
    Ok(steps)
}

/// When a run stops: at a deadline, or after a number of attempts.
#[derive(Clone)]
enum Limit {
    Until(Instant),
    Count(Arc<AtomicU64>, u64),
}

impl Limit {
    fn next(&self) -> bool {
        match self {
            Limit::Until(deadline) => Instant::now() < *deadline,
            Limit::Count(taken, total) => taken.fetch_add(1, Ordering::Relaxed) < *total,
        }
    }
}

/// What one virtual user did during a run.
#[derive(Default)]
struct Tally {
    samples: Vec<u32>,
    errors: u64,
    error_samples: Vec<String>,
}

const ERROR_SAMPLES: usize = 3;

/// The ceremonies completed on the current instance that write an event
/// there, warm-ups and set-up included: what its event endpoint should get.
#[derive(Default)]
struct Made {
    logins: AtomicU64,
    registrations: AtomicU64,
}

impl Made {
    fn record(&self, mode: Mode, n: u64) {
        match mode.event_type() {
            Some(LOGIN_EVENT) => self.logins.fetch_add(n, Ordering::Relaxed),
            Some(_) => self.registrations.fetch_add(n, Ordering::Relaxed),
            None => 0,
        };
    }
}

/// Runs every virtual user until `limit`; hands the users back.
async fn drive(
    targets: &Arc<Targets>,
    made: &Arc<Made>,
    users: Vec<VirtualUser>,
    mode: Mode,
    limit: Limit,
) -> Result<(Vec<VirtualUser>, Tally)> {
    let mut tasks = Vec::with_capacity(users.len());
    for mut user in users {
        let targets = targets.clone();
        let made = made.clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while limit.next() {
                match user.ceremony(&targets, mode).await {
                    Ok(elapsed) => {
                        made.record(mode, 1);
                        tally.samples.push(measure::micros(elapsed));
                    }
                    Err(error) => {
                        tally.errors += 1;
                        if tally.error_samples.len() < ERROR_SAMPLES {
                            tally
                                .error_samples
                                .push(format!("user {}: {error:#}", user.index));
                        }
                        // Do not spin on a target that refuses everything.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (user, tally)
        }));
    }
    let mut users = Vec::with_capacity(tasks.len());
    let mut total = Tally::default();
    for task in tasks {
        let (user, tally) = task
            .await
            .context("a virtual user panicked (a bug in the load tool or the test kit)")?;
        users.push(user);
        total.samples.extend(tally.samples);
        total.errors += tally.errors;
        for sample in tally.error_samples {
            if total.error_samples.len() < ERROR_SAMPLES * 2 {
                total.error_samples.push(sample);
            }
        }
    }
    users.sort_by_key(|u| u.index);
    Ok((users, total))
}

struct Probes {
    ticks: f64,
    sources: Vec<(&'static str, CpuSource)>,
    metrics_http: reqwest::Client,
    service_admin: Url,
    baseline_service_admin: Url,
    made: Arc<Made>,
    /// The current instance's event endpoint, when the load tool is it.
    receiver: Option<Receiver>,
}

impl Probes {
    /// The admin listener whose /metrics describe `mode`'s ceremonies.
    fn admin_for(&self, mode: Mode) -> &Url {
        if mode.on_second_instance() {
            &self.baseline_service_admin
        } else {
            &self.service_admin
        }
    }

    fn cpu(&self) -> Result<BTreeMap<&'static str, f64>> {
        self.sources
            .iter()
            .map(|&(name, source)| Ok((name, source.seconds(self.ticks)?)))
            .collect()
    }
}

async fn run_step(
    cli: &Cli,
    targets: &Arc<Targets>,
    probes: &Probes,
    users: Vec<VirtualUser>,
    step: Step,
) -> Result<(Vec<VirtualUser>, Phase)> {
    let mut users = users;
    if cli.warmup > 0.0 {
        let deadline = Instant::now() + Duration::from_secs_f64(cli.warmup);
        (users, _) = drive(
            targets,
            &probes.made,
            users,
            step.mode,
            Limit::Until(deadline),
        )
        .await?;
    }
    let admin = probes.admin_for(step.mode);
    let metrics_before = measure::scrape(&probes.metrics_http, admin).await;
    let received_before = probes.receiver.as_ref().map(|r| r.counts().requests);
    let cpu_before = probes.cpu()?;
    let machine_before = measure::machine_cpu();
    let started = Instant::now();
    let limit = match cli.count {
        Some(count) => Limit::Count(Arc::new(AtomicU64::new(0)), count),
        None => Limit::Until(started + Duration::from_secs_f64(cli.duration)),
    };
    let (users, tally) = drive(targets, &probes.made, users, step.mode, limit).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = probes.cpu()?;
    let machine_after = measure::machine_cpu();
    let received_after = probes.receiver.as_ref().map(|r| r.counts().requests);
    let metrics_after = measure::scrape(&probes.metrics_http, admin).await;
    // The current instance's backlog, whichever instance the run used.
    let events = match (received_before, received_after) {
        (Some(before), Some(after)) => {
            let backlog = if admin == &probes.service_admin {
                metrics_after
                    .samples()
                    .and_then(|s| s.value(EVENTS_UNDELIVERED))
            } else {
                measure::scrape(&probes.metrics_http, &probes.service_admin)
                    .await
                    .samples()
                    .and_then(|s| s.value(EVENTS_UNDELIVERED))
            };
            Some(PhaseEvents {
                received: after - before,
                backlog_after: backlog,
            })
        }
        _ => None,
    };

    let completed = tally.samples.len() as u64;
    let cpu = cpu_after
        .iter()
        .map(|(&name, &after)| {
            let seconds = after - cpu_before.get(name).copied().unwrap_or(after);
            (name.to_string(), CpuUse::new(seconds, completed, elapsed))
        })
        .collect();
    let machine_busy = match (machine_before, machine_after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64),
        _ => None,
    };
    let (breakdown, breakdown_note) = match (metrics_before, metrics_after) {
        (Scrape::Found(before), Scrape::Found(after)) => (
            Some(measure::breakdown(
                &before.histograms(),
                &after.histograms(),
                completed,
            )),
            None,
        ),
        (Scrape::Unavailable(why), _) | (_, Scrape::Unavailable(why)) => (None, Some(why)),
    };
    let label = match step.round {
        Some(round) => format!("{} (round {round})", step.mode.name()),
        None => step.mode.name().to_string(),
    };
    let phase = Phase {
        label,
        mode: step.mode,
        round: step.round,
        users: cli.users,
        completed,
        errors: tally.errors,
        error_samples: tally.error_samples,
        elapsed_s: elapsed,
        throughput_per_s: completed as f64 / elapsed.max(1e-9),
        latency: Latency::of(&tally.samples),
        cpu,
        machine_busy,
        load_average_after: measure::load_average(),
        breakdown,
        breakdown_note,
        events,
        samples: tally.samples,
    };
    Ok((users, phase))
}

/// After the last run: waits until the current instance's outbox is empty
/// and the receiver has an event of every login and registration made
/// there, or `--events-drain` seconds pass, and says how that went.
async fn settle_events(
    cli: &Cli,
    probes: &Probes,
    receiver: &Receiver,
    deliveries_before: Option<&Samples>,
) -> EventDelivery {
    let logins = probes.made.logins.load(Ordering::Relaxed);
    let registrations = probes.made.registrations.load(Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(cli.events_drain.max(0.0));
    let mut backlog_after_last_run = None;
    let mut first = true;
    let (settled_in_s, last) = loop {
        let scrape = measure::scrape(&probes.metrics_http, &probes.service_admin).await;
        let backlog = scrape.samples().and_then(|s| s.value(EVENTS_UNDELIVERED));
        if first {
            backlog_after_last_run = backlog;
            first = false;
        }
        let counts = receiver.counts();
        let all_in = counts.of_type(LOGIN_EVENT) >= logins
            && counts.of_type(REGISTERED_EVENT) >= registrations;
        // Without the gauge, the receiver's counts alone.
        if all_in && backlog.is_none_or(|b| b <= 0.0) {
            break (Some(started.elapsed().as_secs_f64()), scrape);
        }
        if Instant::now() >= deadline {
            break (None, scrape);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let attempts = match (deliveries_before, last.samples()) {
        (Some(before), Some(after)) => {
            let moved = |outcome: &str| {
                let label = format!("outcome=\"{outcome}\"");
                after.sum_with(EVENT_DELIVERIES, &label) - before.sum_with(EVENT_DELIVERIES, &label)
            };
            Some(report::DeliveryAttempts {
                delivered: moved("delivered"),
                retry: moved("retry"),
                gave_up: moved("gave_up"),
            })
        }
        _ => None,
    };
    let received = receiver.counts();
    let delivery = EventDelivery {
        receiver: format!("http://{}/", receiver.addr),
        logins_made: logins,
        registrations_made: registrations,
        received,
        backlog_after_last_run,
        settled_in_s,
        waited_s: started.elapsed().as_secs_f64(),
        backlog_at_end: last.samples().and_then(|s| s.value(EVENTS_UNDELIVERED)),
        attempts,
    };
    eprintln!("kratos-passkeys-bench: {}", report::events_line(&delivery));
    delivery
}

async fn ensure_ready(http: &reqwest::Client, url: Url, what: &str) -> Result<()> {
    let response = http
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("{what} does not answer at {url}"))?;
    if !response.status().is_success() {
        bail!("{what} is not ready: {url} answered {}", response.status());
    }
    Ok(())
}

/// The release a Kratos reports on its admin `/admin/version` ("v26.2.0").
async fn release_at(http: &reqwest::Client, admin: &Url) -> Result<String> {
    let url = admin
        .join("admin/version")
        .with_context(|| format!("joining admin/version to {admin}"))?;
    let response = http
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("{url} does not answer"))?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{url} answered no JSON"))?;
    release_of(&body).with_context(|| format!("{url} answered no version: {body}"))
}

/// `{"version": "v26.2.0"}`'s version, with a `v` whatever the build says.
fn release_of(body: &serde_json::Value) -> Option<String> {
    let version = body["version"].as_str().filter(|v| !v.is_empty())?;
    Some(if version.starts_with('v') {
        version.to_string()
    } else {
        format!("v{version}")
    })
}

async fn run(cli: Cli) -> Result<bool> {
    loopback_only("service", &cli.service)?;
    loopback_only("service-admin", &cli.service_admin)?;
    loopback_only("baseline-service", &cli.baseline_service)?;
    loopback_only("baseline-service-admin", &cli.baseline_service_admin)?;
    loopback_only("kratos-public", &cli.kratos_public)?;
    loopback_only("kratos-admin", &cli.kratos_admin)?;
    loopback_only("kratos-v26-public", &cli.kratos_v26_public)?;
    loopback_only("kratos-v26-admin", &cli.kratos_v26_admin)?;
    if let Some(addr) = cli.events_receiver {
        if !addr.ip().is_loopback() {
            bail!("--events-receiver {addr}: only a loopback address is allowed");
        }
    }
    if cli.users == 0 {
        bail!("--users must be at least 1");
    }
    if cli.count.is_none() && cli.duration <= 0.0 {
        bail!("--duration must be positive");
    }
    let steps = plan(&cli)?;
    let targets = Arc::new(Targets {
        service: cli.service.clone(),
        baseline_service: cli.baseline_service.clone(),
        kratos_public: cli.kratos_public.clone(),
        kratos_admin: cli.kratos_admin.clone(),
        kratos_v26_public: cli.kratos_v26_public.clone(),
        kratos_v26_admin: cli.kratos_v26_admin.clone(),
        origin: cli.origin.clone(),
    });

    let http = ceremonies::client(false)?;
    let join = |base: &Url, path: &str| {
        base.join(path)
            .with_context(|| format!("joining {path} to {base}"))
    };
    ensure_ready(
        &http,
        join(&cli.kratos_admin, "admin/health/ready")?,
        "Kratos",
    )
    .await?;
    // Which release each Kratos runs, for the reports (best effort for the
    // benchmark Kratos, whose modes work on any release).
    let kratos_release = release_at(&http, &cli.kratos_admin).await.ok();
    let modes: Vec<Mode> = steps.iter().map(|s| s.mode).collect();
    let kratos_v26_release = if modes.contains(&Mode::KratosNativeV26) {
        ensure_ready(
            &http,
            join(&cli.kratos_v26_admin, "admin/health/ready")?,
            "the v26 Kratos",
        )
        .await?;
        let release = release_at(&http, &cli.kratos_v26_admin)
            .await
            .context("the v26 Kratos")?;
        // The mode's name promises a v26 release; another one would be
        // reported under the wrong name.
        if !release.starts_with("v26.") {
            bail!(
                "--kratos-v26-admin {} runs Kratos {release}, not a v26 release",
                cli.kratos_v26_admin
            );
        }
        Some(release)
    } else {
        None
    };
    if modes
        .iter()
        .any(|m| !m.is_native() && !m.on_second_instance())
    {
        ensure_ready(
            &http,
            join(&cli.service, "health/ready")?,
            "kratos-passkeys",
        )
        .await?;
    }
    let second = modes.iter().copied().find(|m| m.on_second_instance());
    if second.is_some() {
        ensure_ready(
            &http,
            join(&cli.baseline_service, "health/ready")?,
            "the second kratos-passkeys instance",
        )
        .await?;
    }

    let mut sources = vec![("load_tool", CpuSource::Myself)];
    if let Some(pid) = cli.service_pid {
        sources.push((SERVICE_CPU, CpuSource::Process(pid)));
    }
    if let Some(pid) = cli.baseline_pid {
        // Named after what the second instance is in this run.
        let key = second.map_or(BASELINE_SERVICE_CPU, Mode::service_cpu_key);
        sources.push((key, CpuSource::Process(pid)));
    }
    if let Some(pid) = cli.kratos_pid {
        sources.push((KRATOS_CPU, CpuSource::Process(pid)));
    }
    if let Some(pid) = cli.kratos_v26_pid {
        sources.push((KRATOS_V26_CPU, CpuSource::Process(pid)));
    }
    if let Some(pid) = cli.postgres_pid {
        sources.push(("postgres", CpuSource::ProcessTree(pid)));
    }
    let receiver = match cli.events_receiver {
        Some(addr) => {
            let receiver = Receiver::start(addr).await?;
            eprintln!(
                "kratos-passkeys-bench: receiving events on http://{}/",
                receiver.addr
            );
            Some(receiver)
        }
        None => None,
    };
    // The service's delivery counters before anything of this run.
    let deliveries_before = match receiver {
        Some(_) => measure::scrape(&http, &cli.service_admin)
            .await
            .samples()
            .cloned(),
        None => None,
    };
    let probes = Probes {
        ticks: measure::clock_ticks(),
        sources,
        metrics_http: http.clone(),
        service_admin: cli.service_admin.clone(),
        baseline_service_admin: cli.baseline_service_admin.clone(),
        made: Arc::new(Made::default()),
        receiver,
    };
    // Fail now, not after the set-up, when a pid is wrong.
    probes
        .cpu()
        .context("reading the CPU time of the given pids")?;

    let started_at = chrono::Utc::now();
    let machine = measure::Machine::read();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let needs = Needs::of(modes.iter().copied());
    eprintln!(
        "kratos-passkeys-bench: set-up of {} virtual users (run {run_id})",
        cli.users
    );
    let setup_started = Instant::now();
    let mut tasks = Vec::with_capacity(cli.users);
    for index in 0..cli.users {
        let targets = targets.clone();
        let run_id = run_id.clone();
        tasks.push(tokio::spawn(async move {
            VirtualUser::setup(&targets, &run_id, index, needs).await
        }));
    }
    let mut users = Vec::with_capacity(cli.users);
    for task in tasks {
        users.push(task.await.context("set-up panicked")??);
    }
    if needs.service_passkey {
        // Each user registered a passkey through the current instance.
        probes.made.record(Mode::Register, users.len() as u64);
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    eprintln!("kratos-passkeys-bench: set-up done in {setup_s:.1} s");

    let mut phases = Vec::with_capacity(steps.len());
    for step in steps {
        eprintln!(
            "kratos-passkeys-bench: {}{} ...",
            step.mode.name(),
            step.round
                .map(|r| format!(" (round {r})"))
                .unwrap_or_default()
        );
        let (back, phase) = run_step(&cli, &targets, &probes, users, step).await?;
        users = back;
        eprintln!("  {}", report::one_line(&phase));
        phases.push(phase);
    }
    let events = match &probes.receiver {
        Some(receiver) => {
            Some(settle_events(&cli, &probes, receiver, deliveries_before.as_ref()).await)
        }
        None => None,
    };

    let config = RunConfig {
        users: cli.users,
        duration_s: cli.count.is_none().then_some(cli.duration),
        count: cli.count,
        warmup_s: cli.warmup,
        modes: cli.modes.clone(),
        interleave: cli.interleave.clone(),
        rounds: if cli.interleave.is_empty() {
            0
        } else {
            cli.rounds
        },
        service: cli.service.to_string(),
        baseline: modes.contains(&Mode::LoginTokenBaseline).then(|| Baseline {
            rev: cli.baseline_rev.clone(),
            service: cli.baseline_service.to_string(),
        }),
        no_events_service: modes
            .contains(&Mode::LoginTokenNoEvents)
            .then(|| cli.baseline_service.to_string()),
        events: probes.receiver.as_ref().map(|r| EventsSetup {
            receiver: format!("http://{}/", r.addr),
        }),
        kratos_public: cli.kratos_public.to_string(),
        kratos_release,
        kratos_v26: kratos_v26_release.map(|release| SecondKratos {
            release,
            public: cli.kratos_v26_public.to_string(),
        }),
        origin: cli.origin.clone(),
        cpu_measured: probes.sources.iter().map(|(n, _)| n.to_string()).collect(),
        note: cli.note.clone(),
    };
    let mut report = Report::new(
        cli.label.clone(),
        started_at,
        machine,
        config,
        setup_s,
        phases,
    );
    if let Some(events) = events {
        report.add_events(events);
    }
    println!("{}", report::table(&report));
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("kratos-passkeys-bench: wrote {}", path.display());
    }
    if let Some(path) = &cli.markdown {
        std::fs::write(path, report::markdown(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("kratos-passkeys-bench: wrote {}", path.display());
    }
    for failure in &report.failures {
        eprintln!("kratos-passkeys-bench: FAILED: {failure}");
    }
    Ok(report.failures.is_empty())
}

enum Command {
    Bench(Box<Cli>),
    Soak(Box<soak::SoakCli>),
}

fn main() -> ExitCode {
    // `kratos-passkeys-bench soak ...`: the soak has options of its own.
    let mut args = std::env::args_os();
    let soak = std::env::args_os().nth(1).is_some_and(|a| a == "soak");
    let command = if soak {
        let program = args.next();
        let _soak = args.next();
        Command::Soak(Box::new(soak::SoakCli::parse_from(
            program.into_iter().chain(args),
        )))
    } else {
        Command::Bench(Box::new(Cli::parse()))
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kratos-passkeys-bench: starting the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Bench(cli) => runtime.block_on(run(*cli)),
        Command::Soak(cli) => runtime.block_on(soak::run(*cli)),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("kratos-passkeys-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:1/",
            "http://localhost:1/",
            "http://[::1]:1/",
            "http://127.9.9.9/",
        ] {
            loopback_only("x", &Url::parse(ok).unwrap()).unwrap();
        }
        for bad in ["http://10.0.0.1/", "http://example.com/", "http://0.0.0.0/"] {
            assert!(
                loopback_only("x", &Url::parse(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn interleaving_alternates_for_each_round() {
        let cli = Cli::parse_from([
            "kratos-passkeys-bench",
            "--modes",
            "register",
            "--interleave",
            "login-token,kratos-native",
            "--rounds",
            "2",
        ]);
        let steps: Vec<(Mode, Option<u32>)> = plan(&cli)
            .unwrap()
            .iter()
            .map(|s| (s.mode, s.round))
            .collect();
        assert_eq!(
            steps,
            vec![
                (Mode::Register, None),
                (Mode::LoginToken, Some(1)),
                (Mode::KratosNative, Some(1)),
                (Mode::LoginToken, Some(2)),
                (Mode::KratosNative, Some(2)),
            ]
        );
    }

    #[test]
    fn three_modes_take_turns_and_the_baseline_has_its_own_targets() {
        let cli = Cli::parse_from([
            "kratos-passkeys-bench",
            "--modes",
            "login-token",
            "--interleave",
            "login-token-baseline,login-token,kratos-native",
            "--rounds",
            "2",
            "--baseline-service",
            "http://127.0.0.1:9280/",
            "--baseline-service-admin",
            "http://127.0.0.1:9281/",
            "--baseline-pid",
            "42",
            "--baseline-rev",
            "71ae81a",
        ]);
        let modes: Vec<Mode> = plan(&cli).unwrap().iter().map(|s| s.mode).collect();
        use Mode::{KratosNative as N, LoginToken as T, LoginTokenBaseline as B};
        assert_eq!(modes, vec![T, B, T, N, B, T, N]);
        assert_eq!(cli.baseline_service.port(), Some(9280));
        assert_eq!(cli.baseline_pid, Some(42));
        let probes = Probes {
            ticks: 100.0,
            sources: Vec::new(),
            metrics_http: reqwest::Client::new(),
            service_admin: cli.service_admin.clone(),
            baseline_service_admin: cli.baseline_service_admin.clone(),
            made: Arc::default(),
            receiver: None,
        };
        assert_eq!(probes.admin_for(B).port(), Some(9281));
        assert_eq!(probes.admin_for(T).port(), Some(8181));
        assert_eq!(B.service_cpu_key(), BASELINE_SERVICE_CPU);
        assert_eq!(N.service_cpu_key(), SERVICE_CPU);
    }

    #[test]
    fn the_v26_native_login_takes_its_turn_with_its_own_kratos() {
        let cli = Cli::parse_from([
            "kratos-passkeys-bench",
            "--modes",
            "kratos-native-v26",
            "--interleave",
            "login-token,kratos-native,kratos-native-v26",
            "--rounds",
            "2",
            "--kratos-v26-public",
            "http://127.0.0.1:4643/",
            "--kratos-v26-admin",
            "http://127.0.0.1:4644/",
            "--kratos-v26-pid",
            "43",
        ]);
        let modes: Vec<Mode> = plan(&cli).unwrap().iter().map(|s| s.mode).collect();
        use Mode::{KratosNative as N, KratosNativeV26 as V, LoginToken as T};
        assert_eq!(modes, vec![V, T, N, V, T, N, V]);
        assert_eq!(cli.kratos_v26_admin.port(), Some(4644));
        assert_eq!(cli.kratos_v26_pid, Some(43));
        assert_eq!(V.name(), "kratos-native-v26");
        assert_eq!(
            serde_json::to_value(V).unwrap(),
            serde_json::json!("kratos-native-v26")
        );
        assert!(V.is_native() && N.is_native() && !T.is_native());
        assert_eq!(V.kratos_cpu_key(), KRATOS_V26_CPU);
        assert_eq!(N.kratos_cpu_key(), KRATOS_CPU);
        assert_eq!(T.kratos_cpu_key(), KRATOS_CPU);
        // The service it leaves idle is the current build, as kratos-native's.
        assert_eq!(V.service_cpu_key(), SERVICE_CPU);
    }

    #[test]
    fn the_instance_without_event_endpoints_is_the_second_one() {
        let cli = Cli::parse_from([
            "kratos-passkeys-bench",
            "--modes",
            "login-token",
            "--interleave",
            "login-token-no-events,login-token,kratos-native",
            "--rounds",
            "1",
            "--events-receiver",
            "127.0.0.1:8190",
        ]);
        let modes: Vec<Mode> = plan(&cli).unwrap().iter().map(|s| s.mode).collect();
        use Mode::{KratosNative as N, LoginToken as T, LoginTokenNoEvents as E};
        assert_eq!(modes, vec![T, E, T, N]);
        assert_eq!(E.name(), "login-token-no-events");
        assert!(E.on_second_instance() && !T.on_second_instance());
        assert_eq!(E.service_cpu_key(), NO_EVENTS_SERVICE_CPU);
        assert_eq!(cli.events_receiver.unwrap().port(), 8190);
        // Only the current instance's ceremonies are its endpoint's events.
        assert_eq!(T.event_type(), Some(LOGIN_EVENT));
        assert_eq!(Mode::LoginCookie.event_type(), Some(LOGIN_EVENT));
        assert_eq!(Mode::Register.event_type(), Some(REGISTERED_EVENT));
        assert_eq!(E.event_type(), None);
        assert_eq!(N.event_type(), None);
        let made = Made::default();
        made.record(T, 3);
        made.record(Mode::Register, 2);
        made.record(E, 5);
        assert_eq!(made.logins.load(Ordering::Relaxed), 3);
        assert_eq!(made.registrations.load(Ordering::Relaxed), 2);

        let both = Cli::parse_from([
            "kratos-passkeys-bench",
            "--interleave",
            "login-token-baseline,login-token-no-events",
        ]);
        assert!(plan(&both).is_err());
    }

    #[test]
    fn releases_are_read_from_kratos_version_answers() {
        use serde_json::json;
        assert_eq!(
            release_of(&json!({"version": "v26.2.0"})).as_deref(),
            Some("v26.2.0")
        );
        assert_eq!(
            release_of(&json!({"version": "1.3.1"})).as_deref(),
            Some("v1.3.1")
        );
        assert!(release_of(&json!({"version": ""})).is_none());
        assert!(release_of(&json!({})).is_none());
    }

    #[test]
    fn interleaving_needs_two_distinct_modes() {
        for interleave in ["login-token", "login-token,kratos-native,login-token"] {
            let cli = Cli::parse_from(["kratos-passkeys-bench", "--interleave", interleave]);
            assert!(plan(&cli).is_err(), "{interleave}");
        }
    }

    #[test]
    fn a_count_limit_hands_out_exactly_that_many_tickets() {
        let limit = Limit::Count(Arc::new(AtomicU64::new(0)), 3);
        let taken = (0..10).filter(|_| limit.next()).count();
        assert_eq!(taken, 3);
    }
}
