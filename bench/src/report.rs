//! The results: per run, pooled over the interleaved rounds, the ratios of
//! each interleaved build's login to Kratos's native one (and of the current
//! build's to a v26 Kratos's native one, when that ran too), the baseline
//! build against the current one when both ran (or the current build with
//! one event endpoint against itself with none), whether every event
//! reached the endpoint, as JSON (serde), a terminal table and markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::measure::{BreakdownRow, Latency, Machine};
use crate::receiver::Counts;
use crate::{Mode, LOGIN_EVENT, REGISTERED_EVENT};

/// CPU time one process (or group) used during a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub seconds: f64,
    /// Milliseconds of CPU per completed ceremony.
    pub ms_per_ceremony: Option<f64>,
    /// Average cores busy during the run.
    pub cores: f64,
}

impl CpuUse {
    pub fn new(seconds: f64, ceremonies: u64, elapsed_s: f64) -> Self {
        Self {
            seconds,
            ms_per_ceremony: (ceremonies > 0).then(|| seconds / ceremonies as f64 * 1000.0),
            cores: seconds / elapsed_s.max(1e-9),
        }
    }
}

/// One measured run of one mode (or several pooled).
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub label: String,
    pub mode: Mode,
    /// The interleaved round, if it was one.
    pub round: Option<u32>,
    pub users: usize,
    pub completed: u64,
    pub errors: u64,
    /// The first few errors, with the step, HTTP status and body.
    pub error_samples: Vec<String>,
    pub elapsed_s: f64,
    pub throughput_per_s: f64,
    /// One full ceremony: options + authenticator + verify (kratos-native:
    /// flow fetch + sign + submit).
    pub latency: Latency,
    /// By process: service, baseline_service, kratos, postgres (with its
    /// backends), load_tool.
    pub cpu: BTreeMap<String, CpuUse>,
    /// Fraction of all the machine's CPU time that was busy (anything).
    pub machine_busy: Option<f64>,
    pub load_average_after: Option<f64>,
    /// The histograms that moved, per ceremony, of the service build this
    /// mode exercises (login-token-baseline: the baseline's /metrics).
    pub breakdown: Option<Vec<BreakdownRow>>,
    /// Why there is no breakdown.
    pub breakdown_note: Option<String>,
    /// The current instance's event delivery around the run, when the
    /// load tool was its endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PhaseEvents>,
    #[serde(skip)]
    pub samples: Vec<u32>,
}

/// What the current instance's event endpoint saw of one run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PhaseEvents {
    /// Requests the receiver answered during the measured run (whichever
    /// run's events they were).
    pub received: u64,
    /// The current instance's kratos_passkeys_events_undelivered right
    /// after the run.
    pub backlog_after: Option<f64>,
}

impl Phase {
    fn cpu_ms(&self, name: &str) -> Option<f64> {
        self.cpu.get(name).and_then(|c| c.ms_per_ceremony)
    }

    /// CPU per ceremony of the service build this mode exercises.
    fn service_cpu_ms(&self) -> Option<f64> {
        self.cpu_ms(self.mode.service_cpu_key())
    }

    /// CPU per ceremony of the Kratos this mode talks to.
    fn kratos_cpu_ms(&self) -> Option<f64> {
        self.cpu_ms(self.mode.kratos_cpu_key())
    }

    /// CPU per ceremony of everything under test that was measured
    /// (service + Kratos + Postgres), not the load tool. Only the build and
    /// the Kratos the mode exercises count: the others sit idle.
    fn stack_cpu_ms(&self) -> Option<f64> {
        let parts: Vec<f64> = [
            self.mode.service_cpu_key(),
            self.mode.kratos_cpu_key(),
            "postgres",
        ]
        .iter()
        .filter_map(|name| self.cpu_ms(name))
        .collect();
        (!parts.is_empty()).then(|| parts.iter().sum())
    }

    /// Several runs of one mode as one: samples, counts, times and CPU add up.
    fn pooled(label: String, runs: &[&Phase]) -> Phase {
        let first = runs[0];
        let completed: u64 = runs.iter().map(|p| p.completed).sum();
        let elapsed_s: f64 = runs.iter().map(|p| p.elapsed_s).sum();
        let samples: Vec<u32> = runs
            .iter()
            .flat_map(|p| p.samples.iter().copied())
            .collect();
        let mut cpu_seconds: BTreeMap<String, f64> = BTreeMap::new();
        for run in runs {
            for (name, used) in &run.cpu {
                *cpu_seconds.entry(name.clone()).or_default() += used.seconds;
            }
        }
        let busy: Vec<(f64, f64)> = runs
            .iter()
            .filter_map(|p| p.machine_busy.map(|b| (b, p.elapsed_s)))
            .collect();
        let machine_busy = (busy.len() == runs.len() && elapsed_s > 0.0)
            .then(|| busy.iter().map(|(b, e)| b * e).sum::<f64>() / elapsed_s);
        let breakdown = if runs.iter().all(|p| p.breakdown.is_some()) {
            let mut totals: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
            for run in runs {
                for row in run.breakdown.iter().flatten() {
                    let entry = totals
                        .entry((row.metric.clone(), row.labels.clone()))
                        .or_default();
                    entry.0 += row.calls;
                    entry.1 += row.ms_per_ceremony * run.completed as f64;
                }
            }
            Some(
                totals
                    .into_iter()
                    .map(|((metric, labels), (calls, total_ms))| BreakdownRow {
                        metric,
                        labels,
                        calls,
                        calls_per_ceremony: calls / completed.max(1) as f64,
                        mean_ms: total_ms / calls.max(1.0),
                        ms_per_ceremony: total_ms / completed.max(1) as f64,
                    })
                    .collect(),
            )
        } else {
            None
        };
        Phase {
            label,
            mode: first.mode,
            round: None,
            users: first.users,
            completed,
            errors: runs.iter().map(|p| p.errors).sum(),
            error_samples: runs
                .iter()
                .flat_map(|p| p.error_samples.iter().cloned())
                .take(6)
                .collect(),
            elapsed_s,
            throughput_per_s: completed as f64 / elapsed_s.max(1e-9),
            latency: Latency::of(&samples),
            cpu: cpu_seconds
                .into_iter()
                .map(|(name, seconds)| (name, CpuUse::new(seconds, completed, elapsed_s)))
                .collect(),
            machine_busy,
            load_average_after: runs.last().and_then(|p| p.load_average_after),
            breakdown,
            breakdown_note: runs.iter().find_map(|p| p.breakdown_note.clone()),
            events: runs
                .iter()
                .map(|p| p.events)
                .collect::<Option<Vec<_>>>()
                .map(|events| PhaseEvents {
                    received: events.iter().map(|e| e.received).sum(),
                    backlog_after: events.last().and_then(|e| e.backlog_after),
                }),
            samples,
        }
    }
}

/// Ours divided by Kratos's native: below 1 means ours is faster (latency)
/// or cheaper (CPU); above 1 for throughput means ours does more per second.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub label: String,
    pub p50: f64,
    pub p99: f64,
    pub throughput: f64,
    /// Service + Kratos (+ Postgres) CPU per login, ours / native.
    pub stack_cpu: Option<f64>,
    /// Ours alone: the CPU per login of the service process (not a ratio:
    /// the native login has no such process).
    pub service_cpu_ms: Option<f64>,
}

/// `a / b` when both are finite and `b` is positive.
fn divide(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() && b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

impl Ratios {
    fn of(label: &str, ours: &Phase, native: &Phase) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Self {
            label: label.to_string(),
            p50: ratio(ours.latency.p50_ms, native.latency.p50_ms),
            p99: ratio(ours.latency.p99_ms, native.latency.p99_ms),
            throughput: ratio(ours.throughput_per_s, native.throughput_per_s),
            stack_cpu: divide(ours.stack_cpu_ms(), native.stack_cpu_ms()),
            service_cpu_ms: ours.service_cpu_ms(),
        }
    }

    fn median(label: &str, rows: &[Ratios]) -> Self {
        // A figure some round lacks (a pid not given) has no median.
        let all = |values: Vec<f64>| {
            (values.len() == rows.len() && !values.is_empty()).then(|| median(values))
        };
        Self {
            label: label.to_string(),
            p50: median(rows.iter().map(|r| r.p50).collect()),
            p99: median(rows.iter().map(|r| r.p99).collect()),
            throughput: median(rows.iter().map(|r| r.throughput).collect()),
            stack_cpu: all(rows.iter().filter_map(|r| r.stack_cpu).collect()),
            service_cpu_ms: all(rows.iter().filter_map(|r| r.service_cpu_ms).collect()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub ours: Mode,
    pub native: Mode,
    /// "before (REV)" or "after (current)" when a baseline build ran too.
    pub build: Option<String>,
    /// The Kratos release `native` ran on, when it is a native login and
    /// the release is known ("v1.3.1", "v26.2.0").
    pub native_release: Option<String>,
    /// One row per interleaved round, then the median of the rounds, then
    /// all rounds pooled, then the sequential runs (if both ran).
    pub rows: Vec<Ratios>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub users: usize,
    pub duration_s: Option<f64>,
    pub count: Option<u64>,
    pub warmup_s: f64,
    pub modes: Vec<Mode>,
    pub interleave: Vec<Mode>,
    pub rounds: u32,
    pub service: String,
    /// The baseline build, when a mode used it.
    pub baseline: Option<Baseline>,
    /// The current build's second instance without event endpoints, when
    /// login-token-no-events used it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_events_service: Option<String>,
    /// The load tool's event receiver, when it was the current instance's
    /// event endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsSetup>,
    pub kratos_public: String,
    /// The benchmark Kratos's release (its /admin/version): the one the
    /// service mints on and kratos-native runs on.
    pub kratos_release: Option<String>,
    /// The second Kratos, when kratos-native-v26 ran.
    pub kratos_v26: Option<SecondKratos>,
    pub origin: String,
    pub cpu_measured: Vec<String>,
    pub note: Option<String>,
}

impl RunConfig {
    /// The second instance of the service this run compared the current
    /// one with, if any, and how the reports name each.
    fn pair(&self) -> Option<Pair> {
        if self.no_events_service.is_some() {
            Some(Pair {
                kind: PairKind::EventEndpoint,
                second_mode: Mode::LoginTokenNoEvents,
                second: NO_ENDPOINT.to_string(),
                current: if self.events.is_some() {
                    ONE_ENDPOINT
                } else {
                    "the first instance"
                }
                .to_string(),
            })
        } else {
            self.baseline.as_ref().map(|b| Pair {
                kind: PairKind::Builds,
                second_mode: Mode::LoginTokenBaseline,
                second: b.before(),
                current: AFTER.to_string(),
            })
        }
    }

    /// The Kratos release a native login ran on, when known.
    fn release_of(&self, mode: Mode) -> Option<&str> {
        match mode {
            Mode::KratosNative => self.kratos_release.as_deref(),
            Mode::KratosNativeV26 => self.kratos_v26.as_ref().map(|k| k.release.as_str()),
            _ => None,
        }
    }
}

/// The Kratos of a v26 release that kratos-native-v26 runs against (its
/// own database; the service never talks to it).
#[derive(Debug, Clone, Serialize)]
pub struct SecondKratos {
    /// Its /admin/version ("v26.2.0").
    pub release: String,
    pub public: String,
}

/// The older build of the service that login-token-baseline runs against.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// What it is (its git revision, as scripts/bench passes it).
    pub rev: String,
    pub service: String,
}

impl Baseline {
    fn before(&self) -> String {
        format!("before ({})", self.rev)
    }
}

const AFTER: &str = "after (current)";
const NO_ENDPOINT: &str = "no event endpoint";
const ONE_ENDPOINT: &str = "one event endpoint";

/// What the two instances of the service in one run are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairKind {
    /// The baseline revision (before) and the current build (after).
    Builds,
    /// The current build twice: with no event endpoint and with one.
    EventEndpoint,
}

/// The second instance and the current one, named for the reports.
struct Pair {
    kind: PairKind,
    /// The mode that logs in to the second instance.
    second_mode: Mode,
    second: String,
    current: String,
}

/// The load tool as the current instance's event endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EventsSetup {
    pub receiver: String,
}

/// The service's own count of delivery attempts during the invocation
/// (kratos_passkeys_event_deliveries_total, all endpoints).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DeliveryAttempts {
    pub delivered: f64,
    pub retry: f64,
    pub gave_up: f64,
}

/// Whether every event the current instance wrote in this invocation
/// reached its endpoint (the load tool), and how long that took.
#[derive(Debug, Clone, Serialize)]
pub struct EventDelivery {
    pub receiver: String,
    /// Logins completed on the current instance (login-token,
    /// login-cookie), warm-ups included: each writes a passkey.login event.
    pub logins_made: u64,
    /// Passkeys registered through the current instance (set-up and the
    /// register mode): each writes a passkey.registered event.
    pub registrations_made: u64,
    pub received: Counts,
    /// kratos_passkeys_events_undelivered right after the last run.
    pub backlog_after_last_run: Option<f64>,
    /// Seconds after the last run until the backlog was empty and every
    /// event was in; None when that did not happen within the wait.
    pub settled_in_s: Option<f64>,
    pub waited_s: f64,
    /// kratos_passkeys_events_undelivered when the wait ended.
    pub backlog_at_end: Option<f64>,
    pub attempts: Option<DeliveryAttempts>,
}

impl EventDelivery {
    /// (made, received) of the types the load tool knows it made.
    fn expected(&self) -> [(&'static str, u64, u64); 2] {
        [
            (
                LOGIN_EVENT,
                self.logins_made,
                self.received.of_type(LOGIN_EVENT),
            ),
            (
                REGISTERED_EVENT,
                self.registrations_made,
                self.received.of_type(REGISTERED_EVENT),
            ),
        ]
    }

    fn failures(&self) -> Vec<String> {
        let mut failures: Vec<String> = self
            .expected()
            .iter()
            .filter(|(_, made, got)| got < made)
            .map(|(kind, made, got)| {
                format!(
                    "event delivery: {got} {kind} events of {made} reached the endpoint within {:.0} s of the last run",
                    self.waited_s
                )
            })
            .collect();
        if let Some(backlog) = self.backlog_at_end.filter(|b| *b > 0.0) {
            failures.push(format!(
                "event delivery: {backlog} deliveries still undelivered {:.0} s after the last run",
                self.waited_s
            ));
        }
        failures
    }
}

/// One figure over the interleaved rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
}

impl Spread {
    /// None when a round lacks the figure: a median of some rounds would
    /// not be comparable with one of all.
    fn of(values: &[Option<f64>]) -> Option<Self> {
        let values: Vec<f64> = values
            .iter()
            .map(|v| v.filter(|x| x.is_finite()))
            .collect::<Option<_>>()?;
        if values.is_empty() {
            return None;
        }
        Some(Self {
            median: median(values.clone()),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            rounds: values.len(),
        })
    }
}

/// What a before/after figure is, for its formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Ratio,
    /// Milliseconds of latency.
    Ms,
    /// Milliseconds of CPU per login (finer: they are small).
    CpuMs,
    PerSecond,
}

/// One figure of both builds, from the same rounds.
#[derive(Debug, Clone, Serialize)]
pub struct BeforeAfterRow {
    pub figure: String,
    pub unit: Unit,
    pub before: Option<Spread>,
    pub after: Option<Spread>,
    /// After ÷ before within each round (so Kratos's native login, which
    /// both are divided by, cancels out), then the median and range.
    pub after_over_before: Option<Spread>,
}

/// What one step costs a login, from a service's histograms.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepCost {
    pub calls_per_ceremony: f64,
    pub mean_ms: f64,
    pub ms_per_ceremony: f64,
}

/// One histogram series of both builds, all rounds pooled; a step one
/// build does not have is None there.
#[derive(Debug, Clone, Serialize)]
pub struct BreakdownPair {
    pub metric: String,
    pub labels: String,
    pub before: Option<StepCost>,
    pub after: Option<StepCost>,
}

/// The baseline build against the current one, login for login, in the
/// same interleaved rounds.
#[derive(Debug, Clone, Serialize)]
pub struct BeforeAfter {
    /// Two builds, or one build with and without an event endpoint.
    pub kind: PairKind,
    /// "before (REV)" (or "no event endpoint").
    pub before: String,
    /// "after (current)" (or "one event endpoint").
    pub after: String,
    pub before_mode: Mode,
    pub after_mode: Mode,
    /// What the ratios divide by, when it was interleaved too.
    pub native: Option<Mode>,
    pub rows: Vec<BeforeAfterRow>,
    /// From each build's own /metrics; None when either had none.
    pub breakdown: Option<Vec<BreakdownPair>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub label: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    pub config: RunConfig,
    pub setup_s: f64,
    /// The modes one after the other.
    pub sequential: Vec<Phase>,
    /// The interleaved rounds, in order.
    pub interleaved: Vec<Phase>,
    /// Each interleaved mode pooled over its rounds.
    pub interleaved_pooled: Vec<Phase>,
    /// The current build's login against the native one.
    pub comparison: Option<Comparison>,
    /// The baseline build's login against the native one.
    pub baseline_comparison: Option<Comparison>,
    /// The current build's login against the v26 Kratos's native one.
    pub comparison_v26: Option<Comparison>,
    pub before_after: Option<BeforeAfter>,
    /// Whether every event reached the endpoint, when the load tool was it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventDelivery>,
    /// Runs with errors or without a single completed ceremony, and events
    /// that did not arrive.
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(
        label: Option<String>,
        started_at: DateTime<Utc>,
        machine: Machine,
        config: RunConfig,
        setup_s: f64,
        phases: Vec<Phase>,
    ) -> Self {
        let failures = phases
            .iter()
            .filter_map(|p| {
                if p.errors > 0 {
                    Some(format!("{}: {} errors", p.label, p.errors))
                } else if p.completed == 0 {
                    Some(format!("{}: no ceremony completed", p.label))
                } else {
                    None
                }
            })
            .collect();
        let (interleaved, sequential): (Vec<Phase>, Vec<Phase>) =
            phases.into_iter().partition(|p| p.round.is_some());
        let interleaved_pooled: Vec<Phase> = config
            .interleave
            .iter()
            .filter_map(|&mode| {
                let runs: Vec<&Phase> = interleaved.iter().filter(|p| p.mode == mode).collect();
                (!runs.is_empty())
                    .then(|| Phase::pooled(format!("{} (all rounds)", mode.name()), &runs))
            })
            .collect();
        let runs = Runs {
            config: &config,
            sequential: &sequential,
            interleaved: &interleaved,
            pooled: &interleaved_pooled,
        };
        let (comparison, baseline_comparison, comparison_v26) = runs.comparisons();
        let before_after = runs.before_after();
        Self {
            tool: "kratos-passkeys-bench",
            version: env!("CARGO_PKG_VERSION"),
            label,
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            finished_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine,
            config,
            setup_s,
            sequential,
            interleaved,
            interleaved_pooled,
            comparison,
            baseline_comparison,
            comparison_v26,
            before_after,
            events: None,
            failures,
        }
    }

    /// Adds how event delivery went; missing events fail the run.
    pub fn add_events(&mut self, events: EventDelivery) {
        self.failures.extend(events.failures());
        self.events = Some(events);
    }
}

/// The measured runs, split up, for the comparisons.
struct Runs<'a> {
    config: &'a RunConfig,
    sequential: &'a [Phase],
    interleaved: &'a [Phase],
    pooled: &'a [Phase],
}

/// A figure of one build's run, given the native run of the same round.
type Figure = fn(&Phase, Option<&Phase>) -> Option<f64>;

/// The absolute rows of the before/after table.
const SERVICE_CPU_ROW: &str = "the service's own CPU per login, ms";
const P50_ROW: &str = "p50, ms";
const P95_ROW: &str = "p95, ms";
const P99_ROW: &str = "p99, ms";
const THROUGHPUT_ROW: &str = "logins per second";
const STACK_CPU_ROW: &str = "CPU per login, service + Kratos + PostgreSQL, ms";

/// The bound on what one event endpoint may cost a login: 5 %.
const OUTBOX_BOUND: f64 = 0.05;

/// The figures of the before/after table (all of the `Figure` shape).
mod figures {
    use super::{divide, Phase};

    pub fn p50(p: &Phase, _: Option<&Phase>) -> Option<f64> {
        (p.completed > 0).then_some(p.latency.p50_ms)
    }
    pub fn p95(p: &Phase, _: Option<&Phase>) -> Option<f64> {
        (p.completed > 0).then_some(p.latency.p95_ms)
    }
    pub fn p99(p: &Phase, _: Option<&Phase>) -> Option<f64> {
        (p.completed > 0).then_some(p.latency.p99_ms)
    }
    pub fn per_s(p: &Phase, _: Option<&Phase>) -> Option<f64> {
        Some(p.throughput_per_s)
    }
    pub fn stack(p: &Phase, _: Option<&Phase>) -> Option<f64> {
        p.stack_cpu_ms()
    }
    pub fn service(p: &Phase, _: Option<&Phase>) -> Option<f64> {
        p.service_cpu_ms()
    }
    pub fn p50_ratio(p: &Phase, n: Option<&Phase>) -> Option<f64> {
        divide(p50(p, None), p50(n?, None))
    }
    pub fn p99_ratio(p: &Phase, n: Option<&Phase>) -> Option<f64> {
        divide(p99(p, None), p99(n?, None))
    }
    pub fn per_s_ratio(p: &Phase, n: Option<&Phase>) -> Option<f64> {
        divide(per_s(p, None), per_s(n?, None))
    }
    pub fn stack_ratio(p: &Phase, n: Option<&Phase>) -> Option<f64> {
        divide(stack(p, None), stack(n?, None))
    }
}

impl Runs<'_> {
    /// What every other interleaved mode is divided by: Kratos's native
    /// login when it took part, else (two modes) the second one, unless
    /// that is the v26 native login, which has a comparison of its own.
    fn reference(&self) -> Option<Mode> {
        match self.config.interleave.as_slice() {
            modes if modes.contains(&Mode::KratosNative) => Some(Mode::KratosNative),
            [_, b] if *b != Mode::KratosNativeV26 => Some(*b),
            _ => None,
        }
    }

    fn in_round(&self, mode: Mode, round: u32) -> Option<&Phase> {
        self.interleaved
            .iter()
            .find(|p| p.mode == mode && p.round == Some(round))
    }

    /// (the current build's comparison, the baseline's, the current
    /// build's against the v26 native login).
    fn comparisons(&self) -> (Option<Comparison>, Option<Comparison>, Option<Comparison>) {
        let interleave = &self.config.interleave;
        let native = self.reference();
        let pair = self.config.pair();
        let after = pair.as_ref().map(|p| p.current.clone());
        // The current build's login: the first interleaved mode that is
        // neither a native login, the second instance's, nor the reference.
        let current = interleave
            .iter()
            .copied()
            .find(|&m| Some(m) != native && !m.is_native() && !m.on_second_instance());
        let v26 = Mode::KratosNativeV26;
        let with_v26 = if interleave.contains(&v26) {
            current.and_then(|ours| self.comparison(ours, v26, after.clone()))
        } else if interleave.is_empty() {
            self.comparison(Mode::LoginToken, v26, None)
        } else {
            None
        };
        let Some(native) = native else {
            // Nothing interleaved but the v26 login: the sequential runs,
            // as ever.
            return (
                self.comparison(Mode::LoginToken, Mode::KratosNative, None),
                None,
                with_v26,
            );
        };
        let current = current.and_then(|ours| self.comparison(ours, native, after));
        let before = interleave
            .iter()
            .copied()
            .find(|&m| m != native && m.on_second_instance())
            .and_then(|ours| self.comparison(ours, native, pair.map(|p| p.second)));
        (current, before, with_v26)
    }

    fn comparison(&self, ours: Mode, native: Mode, build: Option<String>) -> Option<Comparison> {
        let mut rows = Vec::new();
        let mut rounds = Vec::new();
        for round in 1..=self.config.rounds {
            if let (Some(a), Some(b)) = (self.in_round(ours, round), self.in_round(native, round)) {
                rounds.push(Ratios::of(&format!("round {round}"), a, b));
            }
        }
        if !rounds.is_empty() {
            let median = Ratios::median("median of rounds", &rounds);
            rows.extend(rounds);
            rows.push(median);
        }
        let find = |runs: &[Phase], mode| runs.iter().find(|p| p.mode == mode).cloned();
        if let (Some(a), Some(b)) = (find(self.pooled, ours), find(self.pooled, native)) {
            rows.push(Ratios::of("all rounds pooled", &a, &b));
        }
        if let (Some(a), Some(b)) = (find(self.sequential, ours), find(self.sequential, native)) {
            rows.push(Ratios::of("sequential runs", &a, &b));
        }
        (!rows.is_empty()).then(|| Comparison {
            ours,
            native,
            build,
            native_release: self.config.release_of(native).map(str::to_string),
            rows,
        })
    }

    /// The second instance against the current one (the baseline build,
    /// or the same build without an event endpoint), when both were
    /// interleaved: each figure per round, then its median and range.
    fn before_after(&self) -> Option<BeforeAfter> {
        let pair = self.config.pair()?;
        let interleave = &self.config.interleave;
        let before_mode = interleave
            .iter()
            .copied()
            .find(|&m| m == pair.second_mode)?;
        let native = interleave
            .contains(&Mode::KratosNative)
            .then_some(Mode::KratosNative);
        let after_mode = interleave
            .iter()
            .copied()
            .find(|&m| !m.is_native() && !m.on_second_instance())?;
        // Rounds in which both builds ran (and the native login, if any).
        let rounds: Vec<(&Phase, &Phase, Option<&Phase>)> = (1..=self.config.rounds)
            .filter_map(|round| {
                let before = self.in_round(before_mode, round)?;
                let after = self.in_round(after_mode, round)?;
                let native = match native {
                    Some(mode) => Some(self.in_round(mode, round)?),
                    None => None,
                };
                Some((before, after, native))
            })
            .collect();
        if rounds.is_empty() {
            return None;
        }
        let mut wanted: Vec<(String, Unit, Figure)> = Vec::new();
        if let Some(native) = native {
            let n = native.name();
            let ratios: [(String, Unit, Figure); 4] = [
                (format!("p50 ÷ {n}"), Unit::Ratio, figures::p50_ratio),
                (format!("p99 ÷ {n}"), Unit::Ratio, figures::p99_ratio),
                (
                    format!("throughput ÷ {n}"),
                    Unit::Ratio,
                    figures::per_s_ratio,
                ),
                (
                    format!("CPU per login ÷ {n} (service + Kratos + PostgreSQL)"),
                    Unit::Ratio,
                    figures::stack_ratio,
                ),
            ];
            wanted.extend(ratios);
        }
        let absolute: [(String, Unit, Figure); 6] = [
            (SERVICE_CPU_ROW.to_string(), Unit::CpuMs, figures::service),
            (P50_ROW.to_string(), Unit::Ms, figures::p50),
            (P95_ROW.to_string(), Unit::Ms, figures::p95),
            (P99_ROW.to_string(), Unit::Ms, figures::p99),
            (THROUGHPUT_ROW.to_string(), Unit::PerSecond, figures::per_s),
            (STACK_CPU_ROW.to_string(), Unit::CpuMs, figures::stack),
        ];
        wanted.extend(absolute);
        let rows = wanted
            .into_iter()
            .map(|(figure, unit, value)| {
                let before: Vec<Option<f64>> =
                    rounds.iter().map(|(b, _, n)| value(b, *n)).collect();
                let after: Vec<Option<f64>> = rounds.iter().map(|(_, a, n)| value(a, *n)).collect();
                let change: Vec<Option<f64>> = before
                    .iter()
                    .zip(&after)
                    .map(|(&b, &a)| divide(a, b))
                    .collect();
                BeforeAfterRow {
                    figure,
                    unit,
                    before: Spread::of(&before),
                    after: Spread::of(&after),
                    after_over_before: Spread::of(&change),
                }
            })
            .collect();
        let pooled = |mode| self.pooled.iter().find(|p| p.mode == mode);
        let breakdown = match (pooled(before_mode), pooled(after_mode)) {
            (Some(before), Some(after)) => {
                breakdown_pairs(before.breakdown.as_deref(), after.breakdown.as_deref())
            }
            _ => None,
        };
        Some(BeforeAfter {
            kind: pair.kind,
            before: pair.second,
            after: pair.current,
            before_mode,
            after_mode,
            native,
            rows,
            breakdown,
        })
    }
}

/// Both builds' histogram series side by side, the costliest first; a
/// series only one build has (a step added or removed) keeps its row.
fn breakdown_pairs(
    before: Option<&[BreakdownRow]>,
    after: Option<&[BreakdownRow]>,
) -> Option<Vec<BreakdownPair>> {
    let (before, after) = (before?, after?);
    let cost = |row: &BreakdownRow| StepCost {
        calls_per_ceremony: row.calls_per_ceremony,
        mean_ms: row.mean_ms,
        ms_per_ceremony: row.ms_per_ceremony,
    };
    let mut pairs: BTreeMap<(String, String), BreakdownPair> = BTreeMap::new();
    for (rows, is_before) in [(before, true), (after, false)] {
        for row in rows {
            let pair = pairs
                .entry((row.metric.clone(), row.labels.clone()))
                .or_insert_with(|| BreakdownPair {
                    metric: row.metric.clone(),
                    labels: row.labels.clone(),
                    before: None,
                    after: None,
                });
            if is_before {
                pair.before = Some(cost(row));
            } else {
                pair.after = Some(cost(row));
            }
        }
    }
    let mut pairs: Vec<BreakdownPair> = pairs.into_values().collect();
    let weight = |p: &BreakdownPair| {
        [p.before, p.after]
            .iter()
            .flatten()
            .map(|c| c.ms_per_ceremony)
            .fold(0.0, f64::max)
    };
    pairs.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
    Some(pairs)
}

// --- rendering -------------------------------------------------------------

fn opt(value: Option<f64>, digits: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".into(),
    }
}

fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}×")
    } else {
        "–".into()
    }
}

/// "2.01× (1.89–2.14×)": the median, then the range when there are rounds
/// to range over.
fn spread(value: Option<Spread>, unit: Unit) -> String {
    let Some(s) = value else {
        return "–".into();
    };
    let one = |v: f64| match unit {
        Unit::Ratio | Unit::CpuMs => format!("{v:.2}"),
        Unit::Ms | Unit::PerSecond => format!("{v:.1}"),
    };
    let suffix = if unit == Unit::Ratio { "×" } else { "" };
    if s.rounds > 1 {
        format!(
            "{}{suffix} ({}–{}{suffix})",
            one(s.median),
            one(s.min),
            one(s.max)
        )
    } else {
        format!("{}{suffix}", one(s.median))
    }
}

pub fn one_line(p: &Phase) -> String {
    let events = p
        .events
        .map(|e| {
            format!(
                "; {} events received, backlog {} after",
                e.received,
                opt(e.backlog_after, 0)
            )
        })
        .unwrap_or_default();
    format!(
        "{} ceremonies, {} errors, {:.1}/s, p50 {:.1} ms, p99 {:.1} ms, service CPU {} ms, Kratos CPU {} ms per ceremony{events}",
        p.completed,
        p.errors,
        p.throughput_per_s,
        p.latency.p50_ms,
        p.latency.p99_ms,
        opt(p.service_cpu_ms(), 2),
        opt(p.kratos_cpu_ms(), 2),
    )
}

/// How event delivery went, in one line.
pub fn events_line(e: &EventDelivery) -> String {
    let kinds = e
        .expected()
        .iter()
        .map(|(kind, made, got)| format!("{got} of {made} {kind}"))
        .collect::<Vec<_>>()
        .join(", ");
    let settled = match e.settled_in_s {
        Some(s) => format!("all in {s:.1} s after the last run"),
        None => format!(
            "NOT all in {:.0} s after the last run (backlog then {})",
            e.waited_s,
            opt(e.backlog_at_end, 0)
        ),
    };
    format!(
        "events received: {kinds} ({} requests, {} distinct); backlog {} right after the last run, {settled}",
        e.received.requests,
        e.received.distinct,
        opt(e.backlog_after_last_run, 0),
    )
}

/// "the change" column's name: after ÷ before, or with ÷ without.
fn change_label(kind: PairKind) -> &'static str {
    match kind {
        PairKind::Builds => "after ÷ before",
        PairKind::EventEndpoint => "one endpoint ÷ none",
    }
}

/// The median change of one before/after row.
fn change_of(ba: &BeforeAfter, figure: &str) -> Option<Spread> {
    ba.rows
        .iter()
        .find(|r| r.figure == figure)
        .and_then(|r| r.after_over_before)
}

/// What one event endpoint costs a login, against the bound:
/// lines of markdown (empty for a before/after of two builds).
fn outbox_cost(ba: &BeforeAfter) -> Vec<String> {
    if ba.kind != PairKind::EventEndpoint {
        return Vec::new();
    }
    let mut lines = Vec::new();
    // Throughput is the bound: at least 95 % of the logins a second.
    if let Some(t) = change_of(ba, THROUGHPUT_ROW) {
        let cost = (1.0 - t.median) * 100.0;
        let met = t.median >= 1.0 - OUTBOX_BOUND;
        lines.push(format!(
            "**The outbox's cost in login throughput: {:.1} % {}** (logins per second, one endpoint ÷ none, median of the rounds' ratios and their range: {}). The issue's bound, at most {:.0} %: **{}**.",
            cost.abs(),
            if cost >= 0.0 { "fewer" } else { "more" },
            spread(Some(t), Unit::Ratio),
            OUTBOX_BOUND * 100.0,
            if met { "met" } else { "not met" }
        ));
    }
    let others: Vec<String> = [
        ("p50", P50_ROW),
        ("p95", P95_ROW),
        (
            "CPU per login (service + Kratos + PostgreSQL)",
            STACK_CPU_ROW,
        ),
        ("the service's own CPU per login", SERVICE_CPU_ROW),
    ]
    .iter()
    .filter_map(|(name, row)| {
        change_of(ba, row).map(|c| {
            let within = if c.median <= 1.0 + OUTBOX_BOUND {
                "within 5 %"
            } else {
                "more than 5 %"
            };
            format!("{name} {} ({within})", ratio(c.median))
        })
    })
    .collect();
    if !others.is_empty() {
        lines.push(format!(
            "The rest, one endpoint ÷ none, median of the rounds: {}.",
            others.join(", ")
        ));
    }
    lines
}

const COLUMNS: [&str; 15] = [
    "run",
    "users",
    "ceremonies",
    "errors",
    "per s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "service CPU ms",
    "Kratos CPU ms",
    "Postgres CPU ms",
    "stack CPU ms",
    "load tool CPU ms",
    "machine busy",
];

fn cells(p: &Phase) -> Vec<String> {
    vec![
        p.label.clone(),
        p.users.to_string(),
        p.completed.to_string(),
        p.errors.to_string(),
        format!("{:.1}", p.throughput_per_s),
        format!("{:.1}", p.latency.p50_ms),
        format!("{:.1}", p.latency.p90_ms),
        format!("{:.1}", p.latency.p99_ms),
        format!("{:.1}", p.latency.max_ms),
        opt(p.service_cpu_ms(), 2),
        opt(p.kratos_cpu_ms(), 2),
        opt(p.cpu_ms("postgres"), 2),
        opt(p.stack_cpu_ms(), 2),
        opt(p.cpu_ms("load_tool"), 2),
        opt(p.machine_busy.map(|b| b * 100.0), 0) + "%",
    ]
}

/// Which Kratos each native login ran on, when one ran.
fn native_modes(r: &Report) -> Option<String> {
    let c = &r.config;
    let ran = |mode: Mode| {
        r.sequential
            .iter()
            .chain(&r.interleaved)
            .any(|p| p.mode == mode)
    };
    let release = |mode| c.release_of(mode).unwrap_or("of unknown release");
    let mut parts = Vec::new();
    if ran(Mode::KratosNative) {
        parts.push(format!(
            "kratos-native is Kratos {}'s own passkey login (browser flow, fetched as JSON) on the Kratos kratos-passkeys mints its sessions on ({})",
            release(Mode::KratosNative),
            c.kratos_public
        ));
    }
    if let Some(k) = c.kratos_v26.as_ref().filter(|_| ran(Mode::KratosNativeV26)) {
        parts.push(format!(
            "kratos-native-v26 is Kratos {}'s own passkey login (API flow: no cookies, a session token back) on a second Kratos of that release ({}, its own database, the same configuration and passkey settings); on its rows the Kratos CPU column (and so the stack's) is that Kratos's",
            k.release, k.public
        ));
    }
    (!parts.is_empty()).then(|| format!("Native logins: {}.", parts.join("; ")))
}

/// Every comparison of the report, in the order they are shown.
fn comparisons(r: &Report) -> impl Iterator<Item = &Comparison> {
    r.comparison
        .iter()
        .chain(&r.baseline_comparison)
        .chain(&r.comparison_v26)
}

/// " (Kratos v26.2.0's own passkey login)" when the comparison's reference
/// is a native login of a known release.
fn native_login(c: &Comparison) -> String {
    c.native_release
        .as_deref()
        .map(|release| format!(" (Kratos {release}'s own passkey login)"))
        .unwrap_or_default()
}

fn all_phases(r: &Report) -> Vec<&Phase> {
    r.sequential
        .iter()
        .chain(r.interleaved.iter())
        .chain(r.interleaved_pooled.iter())
        .collect()
}

/// A plain-text table for the terminal.
pub fn table(r: &Report) -> String {
    let rows: Vec<Vec<String>> = all_phases(r).into_iter().map(cells).collect();
    let mut widths: Vec<usize> = COLUMNS.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = String::new();
    let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let _ = writeln!(
        out,
        "(CPU columns: milliseconds of CPU per completed ceremony; {} cores shared by everything)",
        r.machine.cpus
    );
    for c in comparisons(r) {
        let _ = writeln!(
            out,
            "\n{} / {}{}{}: p50, p99 latency, throughput, stack CPU per login; service CPU ms per login",
            c.ours.name(),
            c.native.name(),
            native_login(c),
            c.build
                .as_deref()
                .map(|b| format!(", {b}"))
                .unwrap_or_default()
        );
        for row in &c.rows {
            let _ = writeln!(
                out,
                "  {:<20} p50 {:>6}  p99 {:>6}  throughput {:>6}  stack CPU {:>6}  service CPU {:>6}",
                row.label,
                ratio(row.p50),
                ratio(row.p99),
                ratio(row.throughput),
                row.stack_cpu.map(ratio).unwrap_or_else(|| "–".into()),
                opt(row.service_cpu_ms, 2),
            );
        }
    }
    if let Some(ba) = &r.before_after {
        let _ = writeln!(
            out,
            "\n{} / {}, median (range) over rounds: {} | {} | {}",
            ba.before_mode.name(),
            ba.after_mode.name(),
            ba.before,
            ba.after,
            change_label(ba.kind)
        );
        for row in &ba.rows {
            let _ = writeln!(
                out,
                "  {}: {} | {} | {}",
                row.figure,
                spread(row.before, row.unit),
                spread(row.after, row.unit),
                spread(row.after_over_before, Unit::Ratio),
            );
        }
    }
    if let Some(ba) = &r.before_after {
        for line in outbox_cost(ba) {
            let _ = writeln!(out, "\n{}", line.replace("**", ""));
        }
    }
    if let Some(e) = &r.events {
        let _ = writeln!(out, "\n{}", events_line(e));
    }
    for p in all_phases(r) {
        if !p.error_samples.is_empty() {
            let _ = writeln!(out, "\nfirst errors of {}:", p.label);
            for e in &p.error_samples {
                let _ = writeln!(out, "  {e}");
            }
        }
    }
    out
}

fn md_row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

fn md_table(out: &mut String, phases: &[&Phase]) {
    let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(out, "{}", md_row(&header));
    let _ = writeln!(
        out,
        "{}",
        md_row(
            &COLUMNS
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 {
                    "---".to_string()
                } else {
                    "---:".to_string()
                })
                .collect::<Vec<_>>()
        )
    );
    for p in phases {
        let _ = writeln!(out, "{}", md_row(&cells(p)));
    }
}

fn short_metric(name: &str) -> &str {
    name.strip_prefix("kratos_passkeys_").unwrap_or(name)
}

/// The baseline build against the current one: the figures over the
/// rounds, then both builds' steps side by side.
fn before_after_markdown(out: &mut String, ba: &BeforeAfter) {
    let rounds = ba
        .rows
        .iter()
        .flat_map(|r| [r.before, r.after])
        .flatten()
        .map(|s| s.rounds)
        .max()
        .unwrap_or(0);
    let plural = if rounds == 1 { "" } else { "s" };
    let native = ba.native.map(Mode::name).unwrap_or("nothing else");
    let change = change_label(ba.kind);
    match ba.kind {
        PairKind::Builds => {
            let _ = writeln!(
                out,
                "### Before and after: {}, {}, and {}, {}\n",
                ba.before_mode.name(),
                ba.before,
                ba.after_mode.name(),
                ba.after
            );
            let _ = writeln!(
                out,
                "Same run, same Kratos and PostgreSQL, the builds taking turns with {native} in each of {rounds} round{plural}. Each cell is the median over the rounds, the range in brackets; \"{change}\" divides the two builds' figures within each round first (so for the ratio rows the native login cancels out). Below 1× is better for latency and CPU, above 1× for throughput.\n",
            );
        }
        PairKind::EventEndpoint => {
            let _ = writeln!(
                out,
                "### The outbox's cost: {} with {} ÷ {} with none ({})\n",
                ba.after_mode.name(),
                ba.after,
                ba.after_mode.name(),
                ba.before_mode.name()
            );
            let _ = writeln!(
                out,
                "Same build, two instances, same Kratos and PostgreSQL: {} logs in to one that delivers every event to one endpoint (the load tool's receiver), {} to one with {} (both write the events to their outbox), taking turns with {native} in each of {rounds} round{plural}. Each cell is the median over the rounds, the range in brackets; \"{change}\" divides the two instances' figures within each round first. Below 1× is better for latency and CPU, above 1× for throughput. The instance with the endpoint delivers in the background, so part of a run's delivery work can fall into the next run (see the backlog after each run under \"Event delivery\").\n",
                ba.after_mode.name(),
                ba.before_mode.name(),
                ba.before,
            );
        }
    }
    for line in outbox_cost(ba) {
        let _ = writeln!(out, "{line}\n");
    }
    let _ = writeln!(
        out,
        "| figure | {} | {} | {change} |\n| --- | ---: | ---: | ---: |",
        ba.before, ba.after
    );
    for row in &ba.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.figure,
            spread(row.before, row.unit),
            spread(row.after, row.unit),
            spread(row.after_over_before, Unit::Ratio)
        );
    }
    let _ = writeln!(out);
    match &ba.breakdown {
        Some(pairs) if !pairs.is_empty() => {
            let what = match ba.kind {
                PairKind::Builds => "build",
                PairKind::EventEndpoint => "instance",
            };
            let _ = writeln!(
                out,
                "Where a login's time goes in each {what}, all rounds pooled, from each {what}'s own /metrics (– : the {what} has no such step):\n"
            );
            let _ = writeln!(
                out,
                "| histogram | labels | {b}: calls per login | {b}: ms per login | {a}: calls per login | {a}: ms per login |\n| --- | --- | ---: | ---: | ---: | ---: |",
                b = ba.before,
                a = ba.after
            );
            let cell = |c: Option<StepCost>, f: fn(&StepCost) -> f64| {
                c.map(|c| format!("{:.2}", f(&c)))
                    .unwrap_or_else(|| "–".into())
            };
            for pair in pairs {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {} | {} | {} |",
                    short_metric(&pair.metric),
                    pair.labels,
                    cell(pair.before, |c| c.calls_per_ceremony),
                    cell(pair.before, |c| c.ms_per_ceremony),
                    cell(pair.after, |c| c.calls_per_ceremony),
                    cell(pair.after, |c| c.ms_per_ceremony),
                );
            }
            let _ = writeln!(out);
        }
        _ => {
            let _ = writeln!(
                out,
                "No side-by-side breakdown: an instance's /metrics were not available (see below).\n"
            );
        }
    }
}

/// Whether every event reached the endpoint, and the backlog run by run.
fn events_markdown(out: &mut String, r: &Report, e: &EventDelivery) {
    let _ = writeln!(out, "### Event delivery\n");
    let _ = writeln!(
        out,
        "login-token's instance delivers every event to one endpoint, {}: the load tool, answering 204 to every POST (it checks no signature). Made on that instance in this invocation, warm-ups and set-up included: {} login{} and {} passkey registration{}.\n",
        e.receiver,
        e.logins_made,
        if e.logins_made == 1 { "" } else { "s" },
        e.registrations_made,
        if e.registrations_made == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        out,
        "| event type | made | received (distinct) |\n| --- | ---: | ---: |"
    );
    for (kind, made, got) in e.expected() {
        let _ = writeln!(out, "| {kind} | {made} | {got} |");
    }
    for (kind, got) in &e.received.by_type {
        if kind != LOGIN_EVENT && kind != REGISTERED_EVENT {
            let _ = writeln!(out, "| {kind} | – | {got} |");
        }
    }
    let _ = writeln!(out);
    let attempts = e
        .attempts
        .map(|a| {
            format!(
                " The service counted {:.0} deliveries, {:.0} failed attempts (retried) and {:.0} given up.",
                a.delivered, a.retry, a.gave_up
            )
        })
        .unwrap_or_default();
    let settled = match e.settled_in_s {
        Some(s) => {
            format!("the backlog was empty and every event in **{s:.1} s** after the last run")
        }
        None => format!(
            "**not every event was in {:.0} s after the last run** (backlog then {})",
            e.waited_s,
            opt(e.backlog_at_end, 0)
        ),
    };
    let _ = writeln!(
        out,
        "The receiver answered {} requests ({} distinct events, {} repeated) and refused {}.{attempts} Backlog (kratos_passkeys_events_undelivered) right after the last run: {}; {settled}.\n",
        e.received.requests,
        e.received.distinct,
        e.received.requests.saturating_sub(e.received.distinct),
        e.received.refused,
        opt(e.backlog_after_last_run, 0),
    );
    let runs: Vec<&Phase> = r
        .sequential
        .iter()
        .chain(r.interleaved.iter())
        .filter(|p| p.events.is_some())
        .collect();
    if !runs.is_empty() {
        let _ = writeln!(
            out,
            "Run by run: events the receiver got during the run (whichever run made them) and the backlog of login-token's instance right after it.\n"
        );
        let _ = writeln!(
            out,
            "| run | ceremonies | events received during the run | backlog after the run |\n| --- | ---: | ---: | ---: |"
        );
        for p in runs {
            if let Some(ev) = p.events {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    p.label,
                    p.completed,
                    ev.received,
                    opt(ev.backlog_after, 0)
                );
            }
        }
        let _ = writeln!(out);
    }
}

/// A markdown report, ready to paste into BENCHMARKS.md.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let c = &r.config;
    let _ = writeln!(
        out,
        "## Results{}: {}\n",
        r.label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default(),
        r.started_at
    );
    let _ = writeln!(
        out,
        "Machine: {} cores{}{}, kernel {}. **Every figure was measured with PostgreSQL, Kratos, kratos-passkeys and the load tool sharing these {} cores.** Load average at the start: {}.\n",
        r.machine.cpus,
        r.machine
            .cpu_model
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        r.machine
            .memory_gib
            .map(|g| format!(", {g} GiB"))
            .unwrap_or_default(),
        r.machine.kernel.as_deref().unwrap_or("?"),
        r.machine.cpus,
        opt(r.machine.load_average_at_start, 2),
    );
    let _ = writeln!(
        out,
        "Run: {} virtual user{}, {} per run after {} s of untimed warm-up; set-up {:.1} s.{}\n",
        c.users,
        if c.users == 1 { "" } else { "s" },
        match (c.count, c.duration_s) {
            (Some(n), _) => format!("{n} ceremonies"),
            (None, Some(d)) => format!("{d} s"),
            _ => "?".into(),
        },
        c.warmup_s,
        r.setup_s,
        c.note
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default(),
    );
    let _ = writeln!(
        out,
        "Latency is one full ceremony as the client sees it (options + software authenticator + verify; kratos-native, kratos-native-v26: flow fetch + sign + submit). CPU columns are milliseconds of CPU per completed ceremony, from /proc (utime + stime); \"stack\" = service + Kratos + Postgres; Postgres counts its whole server, including anything else using it. \"machine busy\" is the share of all cores busy during the run, from anything.\n"
    );
    if let Some(line) = native_modes(r) {
        let _ = writeln!(out, "{line}\n");
    }
    if !r.sequential.is_empty() {
        let _ = writeln!(out, "### The modes one after the other\n");
        md_table(&mut out, &r.sequential.iter().collect::<Vec<_>>());
        let _ = writeln!(out);
        if r.sequential.iter().any(|p| p.mode == Mode::Register) {
            let _ = writeln!(
                out,
                "register: each iteration first makes a fresh identity (Kratos admin API) and signs it in (Kratos API login flow, password), untimed, so every registration is an identity's first passkey. That preparation is outside the latency but inside the run's wall clock, so register's throughput and its Kratos and Postgres CPU include it; its service CPU does not (the service takes no part in it).\n"
            );
        }
    }
    if !r.interleaved.is_empty() {
        let _ = writeln!(
            out,
            "### Interleaved rounds ({})\n",
            c.interleave
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(" / ")
        );
        let phases: Vec<&Phase> = r
            .interleaved
            .iter()
            .chain(r.interleaved_pooled.iter())
            .collect();
        md_table(&mut out, &phases);
        let _ = writeln!(out);
        if let Some(service) = &c.no_events_service {
            if c.interleave.contains(&Mode::LoginTokenNoEvents) {
                let endpoint = c
                    .events
                    .as_ref()
                    .map(|e| format!("delivers every event to one endpoint ({}: the load tool, answering 204 to every POST)", e.receiver))
                    .unwrap_or_else(|| "is the first instance".into());
                let _ = writeln!(
                    out,
                    "login-token-no-events is the same login against a second instance of the same build with no event endpoint ({service}, its own database); login-token's instance {endpoint}. On login-token-no-events rows the service CPU column (and so the stack's) is that instance's process; the instance a row does not exercise is not counted (the one with the endpoint may still be delivering the previous run's events).\n",
                );
            }
        }
        if let Some(b) = &c.baseline {
            if c.interleave.contains(&Mode::LoginTokenBaseline) {
                let _ = writeln!(
                    out,
                    "login-token-baseline is {}: the same login against the baseline build ({}, its own database); login-token is {}. On login-token-baseline rows the service CPU column (and so the stack's) is the baseline's process; the build a row does not exercise sits idle and is not counted.\n",
                    b.before(),
                    b.service,
                    AFTER
                );
            }
        }
    }
    for cmp in comparisons(r) {
        let _ = writeln!(
            out,
            "### Ratios: {} / {}{}{}\n\nBelow 1× is better for latency and CPU; above 1× is better for throughput. The last column is not a ratio: the CPU per login of the service process alone.\n",
            cmp.ours.name(),
            cmp.native.name(),
            native_login(cmp),
            cmp.build
                .as_deref()
                .map(|b| format!(", {b}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "| | p50 latency | p99 latency | throughput | stack CPU per login | service CPU ms per login |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for row in &cmp.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                row.label,
                ratio(row.p50),
                ratio(row.p99),
                ratio(row.throughput),
                row.stack_cpu.map(ratio).unwrap_or_else(|| "–".into()),
                opt(row.service_cpu_ms, 2)
            );
        }
        let _ = writeln!(out);
    }
    if let Some(ba) = &r.before_after {
        before_after_markdown(&mut out, ba);
    }
    let _ = writeln!(
        out,
        "### Where a ceremony's time goes (the service's metrics)\n"
    );
    let mut any = false;
    let breakdown_phases: Vec<&Phase> = r
        .sequential
        .iter()
        .chain(r.interleaved_pooled.iter())
        .filter(|p| !p.mode.is_native())
        .collect();
    for p in &breakdown_phases {
        match &p.breakdown {
            Some(rows) if !rows.is_empty() => {
                any = true;
                // With two instances in the run, say whose /metrics these are.
                let build = match c.pair() {
                    Some(pair) if p.mode == pair.second_mode => format!(", {}", pair.second),
                    Some(pair) => format!(", {}", pair.current),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "**{}**{build} (p50 {:.1} ms, mean {:.1} ms per ceremony)\n",
                    p.label, p.latency.p50_ms, p.latency.mean_ms
                );
                let _ = writeln!(
                    out,
                    "| histogram | labels | calls per ceremony | mean ms per call | ms per ceremony |\n| --- | --- | ---: | ---: | ---: |"
                );
                let mut rows = rows.clone();
                rows.sort_by(|a, b| b.ms_per_ceremony.total_cmp(&a.ms_per_ceremony));
                for row in rows {
                    let _ = writeln!(
                        out,
                        "| {} | `{}` | {:.2} | {:.2} | {:.2} |",
                        short_metric(&row.metric),
                        row.labels,
                        row.calls_per_ceremony,
                        row.mean_ms,
                        row.ms_per_ceremony
                    );
                }
                let _ = writeln!(out);
            }
            _ => {}
        }
    }
    if !any {
        let why = breakdown_phases
            .iter()
            .find_map(|p| p.breakdown_note.clone())
            .unwrap_or_else(|| "no histogram moved during the runs".into());
        let _ = writeln!(out, "Not available: {why}.\n");
    }
    if let Some(e) = &r.events {
        events_markdown(&mut out, r, e);
    }
    let errors: Vec<&Phase> = all_phases(r)
        .into_iter()
        .filter(|p| p.round.is_some() || !p.label.ends_with("(all rounds)"))
        .filter(|p| !p.error_samples.is_empty())
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "### First errors\n");
        for p in errors {
            for e in &p.error_samples {
                let _ = writeln!(out, "- {}: `{}`", p.label, e.replace('`', "'"));
            }
        }
        let _ = writeln!(out);
    }
    if !r.failures.is_empty() {
        let _ = writeln!(out, "**FAILED:** {}\n", r.failures.join("; "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BASELINE_SERVICE_CPU, KRATOS_V26_CPU, SERVICE_CPU};

    /// A run of `completed` ceremonies that all took `ms`, in 10 s, with
    /// the given CPU seconds and histogram rows.
    fn phase(
        mode: Mode,
        round: Option<u32>,
        completed: u64,
        ms: u32,
        cpu: &[(&str, f64)],
        breakdown: Option<Vec<BreakdownRow>>,
    ) -> Phase {
        let samples = vec![ms * 1000; completed as usize];
        let elapsed_s = 10.0;
        Phase {
            label: mode.name().to_string(),
            mode,
            round,
            users: 8,
            completed,
            errors: 0,
            error_samples: Vec::new(),
            elapsed_s,
            throughput_per_s: completed as f64 / elapsed_s,
            latency: Latency::of(&samples),
            cpu: cpu
                .iter()
                .map(|&(name, s)| (name.to_string(), CpuUse::new(s, completed, elapsed_s)))
                .collect(),
            machine_busy: Some(0.9),
            load_average_after: None,
            breakdown,
            breakdown_note: None,
            events: None,
            samples,
        }
    }

    fn step(metric: &str, labels: &str, calls: f64, ms_per_ceremony: f64) -> BreakdownRow {
        BreakdownRow {
            metric: metric.to_string(),
            labels: labels.to_string(),
            calls,
            calls_per_ceremony: calls / 100.0,
            mean_ms: ms_per_ceremony * 100.0 / calls,
            ms_per_ceremony,
        }
    }

    fn config(interleave: Vec<Mode>, baseline: bool) -> RunConfig {
        RunConfig {
            users: 8,
            duration_s: Some(10.0),
            count: None,
            warmup_s: 0.0,
            modes: Vec::new(),
            interleave,
            rounds: 3,
            service: "http://127.0.0.1:8180/".into(),
            baseline: baseline.then(|| Baseline {
                rev: "71ae81a".into(),
                service: "http://127.0.0.1:8280/".into(),
            }),
            no_events_service: None,
            events: None,
            kratos_public: "http://127.0.0.1:4633/".into(),
            kratos_release: None,
            kratos_v26: None,
            origin: "http://localhost:8180".into(),
            cpu_measured: Vec::new(),
            note: None,
        }
    }

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            cpu_model: None,
            memory_gib: None,
            kernel: None,
            load_average_at_start: None,
        }
    }

    /// Three rounds of baseline, current and native logins. Per login: the
    /// baseline takes 40 ms (round 2: 44) and 2 ms of its own CPU, the
    /// current build 20 ms and 1 ms, the native login 10 ms; each round
    /// 100 logins. The idle build's CPU is in every run too.
    fn three_builds() -> Report {
        let mut phases = Vec::new();
        for round in 1..=3 {
            let slow = if round == 2 { 44 } else { 40 };
            phases.push(phase(
                Mode::LoginTokenBaseline,
                Some(round),
                100,
                slow,
                &[
                    (BASELINE_SERVICE_CPU, 0.2),
                    (SERVICE_CPU, 0.01),
                    ("kratos", 0.6),
                    ("postgres", 0.6),
                ],
                Some(vec![
                    step(
                        "kratos_passkeys_store_duration_seconds",
                        "operation=\"insert_ceremony\"",
                        100.0,
                        2.0,
                    ),
                    step(
                        "kratos_passkeys_kratos_request_duration_seconds",
                        "operation=\"whoami\"",
                        100.0,
                        8.0,
                    ),
                ]),
            ));
            phases.push(phase(
                Mode::LoginToken,
                Some(round),
                100,
                20,
                &[
                    (BASELINE_SERVICE_CPU, 0.01),
                    (SERVICE_CPU, 0.1),
                    ("kratos", 0.5),
                    ("postgres", 0.4),
                ],
                Some(vec![step(
                    "kratos_passkeys_kratos_request_duration_seconds",
                    "operation=\"whoami\"",
                    100.0,
                    6.0,
                )]),
            ));
            phases.push(phase(
                Mode::KratosNative,
                Some(round),
                100,
                10,
                &[
                    (BASELINE_SERVICE_CPU, 0.01),
                    (SERVICE_CPU, 0.0),
                    ("kratos", 0.5),
                    ("postgres", 0.3),
                ],
                Some(Vec::new()),
            ));
        }
        Report::new(
            Some("test".into()),
            Utc::now(),
            machine(),
            config(
                vec![
                    Mode::LoginTokenBaseline,
                    Mode::LoginToken,
                    Mode::KratosNative,
                ],
                true,
            ),
            1.0,
            phases,
        )
    }

    fn row<'a>(ba: &'a BeforeAfter, figure: &str) -> &'a BeforeAfterRow {
        ba.rows
            .iter()
            .find(|r| r.figure == figure)
            .unwrap_or_else(|| panic!("no row {figure}: {:?}", ba.rows))
    }

    #[test]
    fn each_build_is_compared_with_the_native_login() {
        let r = three_builds();
        let after = r.comparison.as_ref().unwrap();
        assert_eq!(
            (after.ours, after.native),
            (Mode::LoginToken, Mode::KratosNative)
        );
        assert_eq!(after.build.as_deref(), Some("after (current)"));
        let before = r.baseline_comparison.as_ref().unwrap();
        assert_eq!(before.ours, Mode::LoginTokenBaseline);
        assert_eq!(before.build.as_deref(), Some("before (71ae81a)"));
        let median = before
            .rows
            .iter()
            .find(|r| r.label == "median of rounds")
            .unwrap();
        assert!((median.p50 - 4.0).abs() < 1e-9, "{median:?}");
        // The baseline's own process, not the idle current one.
        assert!((median.service_cpu_ms.unwrap() - 2.0).abs() < 1e-9);
        // Stack: baseline 0.2 + Kratos 0.6 + Postgres 0.6 s over 100 logins
        // against 0.0 + 0.5 + 0.3; the idle builds are not counted.
        assert!((median.stack_cpu.unwrap() - 14.0 / 8.0).abs() < 1e-9);
        assert_eq!(r.interleaved_pooled.len(), 3);
    }

    #[test]
    fn before_and_after_come_from_the_same_rounds() {
        let r = three_builds();
        let ba = r.before_after.as_ref().unwrap();
        assert_eq!(ba.before, "before (71ae81a)");
        assert_eq!(ba.after, "after (current)");
        let p50 = row(ba, "p50 ÷ kratos-native");
        let before = p50.before.unwrap();
        assert_eq!((before.median, before.min, before.max), (4.0, 4.0, 4.4));
        assert_eq!(before.rounds, 3);
        assert_eq!(p50.after.unwrap().median, 2.0);
        let change = p50.after_over_before.unwrap();
        assert_eq!(change.median, 0.5);
        assert!((change.min - 20.0 / 44.0).abs() < 1e-9);
        let service = row(ba, "the service's own CPU per login, ms");
        assert!((service.before.unwrap().median - 2.0).abs() < 1e-9);
        assert!((service.after.unwrap().median - 1.0).abs() < 1e-9);
        let stack = row(ba, "CPU per login, service + Kratos + PostgreSQL, ms");
        assert!((stack.before.unwrap().median - 14.0).abs() < 1e-9);
        assert!((stack.after.unwrap().median - 10.0).abs() < 1e-9);
        // Both builds' steps, including one only the baseline has.
        let steps = ba.breakdown.as_ref().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].labels, "operation=\"whoami\"");
        assert!((steps[0].before.unwrap().ms_per_ceremony - 8.0).abs() < 1e-9);
        assert!((steps[0].after.unwrap().ms_per_ceremony - 6.0).abs() < 1e-9);
        assert!(steps[1].before.is_some() && steps[1].after.is_none());
    }

    #[test]
    fn the_markdown_labels_both_builds() {
        let md = markdown(&three_builds());
        for needle in [
            "### Ratios: login-token / kratos-native, after (current)",
            "### Ratios: login-token-baseline / kratos-native, before (71ae81a)",
            "### Before and after: login-token-baseline, before (71ae81a), and login-token, after (current)",
            "| p50, ms | 40.0 (40.0–44.0) | 20.0 (20.0–20.0) | 0.50× (0.45–0.50×) |",
            "| the service's own CPU per login, ms | 2.00 (2.00–2.00) | 1.00 (1.00–1.00) | 0.50× (0.50–0.50×) |",
            "| p50 ÷ kratos-native | 4.00× (4.00–4.40×) | 2.00× (2.00–2.00×) | 0.50× (0.45–0.50×) |",
            "| store_duration_seconds | `operation=\"insert_ceremony\"` | 1.00 | 2.00 | – | – |",
            "**login-token-baseline (all rounds)**, before (71ae81a)",
            "**login-token (all rounds)**, after (current)",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        // The JSON carries the same.
        let json = serde_json::to_value(three_builds()).unwrap();
        assert_eq!(json["before_after"]["before"], "before (71ae81a)");
        assert_eq!(json["baseline_comparison"]["ours"], "login-token-baseline");
        assert_eq!(json["config"]["baseline"]["rev"], "71ae81a");
    }

    #[test]
    fn without_a_baseline_the_report_is_as_before() {
        let phases = (1..=3)
            .flat_map(|round| {
                [
                    phase(
                        Mode::LoginToken,
                        Some(round),
                        100,
                        20,
                        &[(SERVICE_CPU, 0.1)],
                        None,
                    ),
                    phase(
                        Mode::KratosNative,
                        Some(round),
                        100,
                        10,
                        &[(SERVICE_CPU, 0.0)],
                        None,
                    ),
                ]
            })
            .collect();
        let r = Report::new(
            None,
            Utc::now(),
            machine(),
            config(vec![Mode::LoginToken, Mode::KratosNative], false),
            1.0,
            phases,
        );
        let c = r.comparison.as_ref().unwrap();
        assert_eq!(
            (c.ours, c.native, c.build.as_deref()),
            (Mode::LoginToken, Mode::KratosNative, None)
        );
        // Three rounds, their median, all rounds pooled.
        assert_eq!(c.rows.len(), 5);
        assert!(r.baseline_comparison.is_none() && r.before_after.is_none());
        let md = markdown(&r);
        assert!(
            md.contains("### Ratios: login-token / kratos-native\n"),
            "{md}"
        );
        assert!(!md.contains("before ("), "{md}");
    }

    /// Three rounds of the baseline (with `baseline`), the current build,
    /// the v1.3.1 native login and the v26 one, each round 100 logins: the
    /// current build 20 ms, v1.3.1's login 10 ms, v26's 16 ms (round 3:
    /// 20 ms). Each Kratos works only in the runs that use it.
    fn with_v26(baseline: bool) -> Report {
        let mut phases = Vec::new();
        for round in 1..=3 {
            if baseline {
                phases.push(phase(
                    Mode::LoginTokenBaseline,
                    Some(round),
                    100,
                    40,
                    &[
                        (BASELINE_SERVICE_CPU, 0.2),
                        ("kratos", 0.6),
                        ("postgres", 0.6),
                    ],
                    None,
                ));
            }
            phases.push(phase(
                Mode::LoginToken,
                Some(round),
                100,
                20,
                &[
                    (SERVICE_CPU, 0.1),
                    ("kratos", 0.5),
                    (KRATOS_V26_CPU, 0.01),
                    ("postgres", 0.4),
                ],
                None,
            ));
            phases.push(phase(
                Mode::KratosNative,
                Some(round),
                100,
                10,
                &[
                    (SERVICE_CPU, 0.0),
                    ("kratos", 0.5),
                    (KRATOS_V26_CPU, 0.01),
                    ("postgres", 0.3),
                ],
                None,
            ));
            phases.push(phase(
                Mode::KratosNativeV26,
                Some(round),
                100,
                if round == 3 { 20 } else { 16 },
                &[
                    (SERVICE_CPU, 0.0),
                    ("kratos", 0.01),
                    (KRATOS_V26_CPU, 0.4),
                    ("postgres", 0.4),
                ],
                None,
            ));
        }
        let mut interleave = vec![Mode::LoginToken, Mode::KratosNative, Mode::KratosNativeV26];
        if baseline {
            interleave.insert(0, Mode::LoginTokenBaseline);
        }
        let mut config = config(interleave, baseline);
        config.kratos_release = Some("v1.3.1".into());
        config.kratos_v26 = Some(SecondKratos {
            release: "v26.2.0".into(),
            public: "http://127.0.0.1:4643/".into(),
        });
        Report::new(None, Utc::now(), machine(), config, 1.0, phases)
    }

    #[test]
    fn the_current_build_is_compared_with_each_release_native_login() {
        let r = with_v26(false);
        let c = r.comparison.as_ref().unwrap();
        assert_eq!((c.ours, c.native), (Mode::LoginToken, Mode::KratosNative));
        assert_eq!(c.native_release.as_deref(), Some("v1.3.1"));
        let v26 = r.comparison_v26.as_ref().unwrap();
        assert_eq!(
            (v26.ours, v26.native, v26.build.as_deref()),
            (Mode::LoginToken, Mode::KratosNativeV26, None)
        );
        assert_eq!(v26.native_release.as_deref(), Some("v26.2.0"));
        // Three rounds, their median, all rounds pooled.
        assert_eq!(v26.rows.len(), 5);
        let median = v26
            .rows
            .iter()
            .find(|r| r.label == "median of rounds")
            .unwrap();
        assert!((median.p50 - 20.0 / 16.0).abs() < 1e-9, "{median:?}");
        // Ours: service 0.1 + Kratos 0.5 + Postgres 0.4; v26's: the idle
        // service 0.0 + its own Kratos 0.4 + Postgres 0.4. The Kratos a run
        // does not use is not counted.
        assert!((median.stack_cpu.unwrap() - 10.0 / 8.0).abs() < 1e-9);
        let pooled_v26 = r
            .interleaved_pooled
            .iter()
            .find(|p| p.mode == Mode::KratosNativeV26)
            .unwrap();
        assert!((pooled_v26.kratos_cpu_ms().unwrap() - 4.0).abs() < 1e-9);
        assert!(r.baseline_comparison.is_none() && r.before_after.is_none());

        let md = markdown(&r);
        for needle in [
            "### Ratios: login-token / kratos-native (Kratos v1.3.1's own passkey login)\n",
            "### Ratios: login-token / kratos-native-v26 (Kratos v26.2.0's own passkey login)\n",
            "kratos-native is Kratos v1.3.1's own passkey login",
            "kratos-native-v26 is Kratos v26.2.0's own passkey login (API flow",
            "### Interleaved rounds (login-token / kratos-native / kratos-native-v26)",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["comparison_v26"]["native"], "kratos-native-v26");
        assert_eq!(json["comparison_v26"]["native_release"], "v26.2.0");
        assert_eq!(json["comparison"]["native_release"], "v1.3.1");
        assert_eq!(json["config"]["kratos_v26"]["release"], "v26.2.0");
        assert_eq!(json["config"]["kratos_release"], "v1.3.1");
    }

    #[test]
    fn with_a_baseline_the_v26_login_changes_nothing_else() {
        let r = with_v26(true);
        let after = r.comparison.as_ref().unwrap();
        assert_eq!(
            (after.ours, after.native),
            (Mode::LoginToken, Mode::KratosNative)
        );
        let before = r.baseline_comparison.as_ref().unwrap();
        assert_eq!(
            (before.ours, before.native),
            (Mode::LoginTokenBaseline, Mode::KratosNative)
        );
        let v26 = r.comparison_v26.as_ref().unwrap();
        assert_eq!(
            (v26.ours, v26.native),
            (Mode::LoginToken, Mode::KratosNativeV26)
        );
        assert_eq!(v26.build.as_deref(), Some(AFTER));
        let ba = r.before_after.as_ref().unwrap();
        assert_eq!(
            (ba.before_mode, ba.after_mode, ba.native),
            (
                Mode::LoginTokenBaseline,
                Mode::LoginToken,
                Some(Mode::KratosNative)
            )
        );
        assert!(markdown(&r).contains(
            "### Ratios: login-token / kratos-native-v26 (Kratos v26.2.0's own passkey login), after (current)\n"
        ));
    }

    #[test]
    fn the_v26_login_alone_is_not_the_main_reference() {
        let phases = (1..=2)
            .flat_map(|round| {
                [
                    phase(Mode::LoginToken, Some(round), 100, 20, &[], None),
                    phase(Mode::KratosNativeV26, Some(round), 100, 10, &[], None),
                ]
            })
            .collect();
        let r = Report::new(
            None,
            Utc::now(),
            machine(),
            config(vec![Mode::LoginToken, Mode::KratosNativeV26], false),
            1.0,
            phases,
        );
        assert!(r.comparison.is_none());
        let v26 = r.comparison_v26.as_ref().unwrap();
        assert_eq!(
            (v26.ours, v26.native),
            (Mode::LoginToken, Mode::KratosNativeV26)
        );
        // No release known: no claim about one.
        assert!(v26.native_release.is_none());
        assert!(markdown(&r).contains("### Ratios: login-token / kratos-native-v26\n"));
    }

    /// Three rounds of the same build without an event endpoint and with
    /// one, and Kratos's native login. Per login: 20 ms without (round 2:
    /// 22 ms), 21 ms with; 100 logins each in 10 s, but 96 with the
    /// endpoint; the endpoint's instance uses a little more CPU.
    fn with_and_without_events() -> Report {
        use crate::NO_EVENTS_SERVICE_CPU;
        let mut phases = Vec::new();
        for round in 1..=3 {
            let mut none = phase(
                Mode::LoginTokenNoEvents,
                Some(round),
                100,
                if round == 2 { 22 } else { 20 },
                &[
                    (NO_EVENTS_SERVICE_CPU, 0.10),
                    (SERVICE_CPU, 0.01),
                    ("kratos", 0.5),
                    ("postgres", 0.4),
                ],
                None,
            );
            none.events = Some(PhaseEvents {
                received: 3,
                backlog_after: Some(0.0),
            });
            phases.push(none);
            let mut one = phase(
                Mode::LoginToken,
                Some(round),
                96,
                21,
                &[
                    (NO_EVENTS_SERVICE_CPU, 0.0),
                    (SERVICE_CPU, 0.12),
                    ("kratos", 0.48),
                    ("postgres", 0.42),
                ],
                None,
            );
            one.events = Some(PhaseEvents {
                received: 93,
                backlog_after: Some(3.0),
            });
            phases.push(one);
            phases.push(phase(
                Mode::KratosNative,
                Some(round),
                100,
                10,
                &[("kratos", 0.5), ("postgres", 0.3)],
                None,
            ));
        }
        let mut config = config(
            vec![
                Mode::LoginTokenNoEvents,
                Mode::LoginToken,
                Mode::KratosNative,
            ],
            false,
        );
        config.no_events_service = Some("http://127.0.0.1:8280/".into());
        config.events = Some(EventsSetup {
            receiver: "http://127.0.0.1:8190/".into(),
        });
        Report::new(None, Utc::now(), machine(), config, 1.0, phases)
    }

    fn delivery(logins_received: u64, backlog: f64) -> EventDelivery {
        let mut received = Counts {
            requests: logins_received + 2 + 1,
            distinct: logins_received + 2,
            ..Counts::default()
        };
        received
            .by_type
            .insert(LOGIN_EVENT.to_string(), logins_received);
        received.by_type.insert(REGISTERED_EVENT.to_string(), 2);
        EventDelivery {
            receiver: "http://127.0.0.1:8190/".into(),
            logins_made: 300,
            registrations_made: 2,
            received,
            backlog_after_last_run: Some(3.0),
            settled_in_s: (backlog == 0.0).then_some(0.4),
            waited_s: 0.4,
            backlog_at_end: Some(backlog),
            attempts: Some(DeliveryAttempts {
                delivered: 302.0,
                retry: 0.0,
                gave_up: 0.0,
            }),
        }
    }

    #[test]
    fn one_event_endpoint_is_compared_with_none() {
        let mut r = with_and_without_events();
        let ba = r.before_after.as_ref().unwrap();
        assert_eq!(ba.kind, PairKind::EventEndpoint);
        assert_eq!(
            (ba.before_mode, ba.after_mode),
            (Mode::LoginTokenNoEvents, Mode::LoginToken)
        );
        assert_eq!(
            (ba.before.as_str(), ba.after.as_str()),
            ("no event endpoint", "one event endpoint")
        );
        let throughput = row(ba, THROUGHPUT_ROW).after_over_before.unwrap();
        assert!((throughput.median - 0.96).abs() < 1e-9);
        let p95 = row(ba, P95_ROW);
        assert_eq!(p95.after.unwrap().median, 21.0);
        assert_eq!(p95.before.unwrap().max, 22.0);
        // Each instance's own process: 0.10 s over 100 logins, 0.12 over 96.
        let service = row(ba, SERVICE_CPU_ROW);
        assert!((service.before.unwrap().median - 1.0).abs() < 1e-9);
        assert!((service.after.unwrap().median - 1.25).abs() < 1e-9);
        let c = r.comparison.as_ref().unwrap();
        assert_eq!(c.build.as_deref(), Some("one event endpoint"));
        let second = r.baseline_comparison.as_ref().unwrap();
        assert_eq!(second.ours, Mode::LoginTokenNoEvents);
        assert_eq!(second.build.as_deref(), Some("no event endpoint"));
        let pooled = r
            .interleaved_pooled
            .iter()
            .find(|p| p.mode == Mode::LoginToken)
            .unwrap();
        assert_eq!(pooled.events.unwrap().received, 279);
        assert_eq!(pooled.events.unwrap().backlog_after, Some(3.0));

        r.add_events(delivery(300, 0.0));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        let md = markdown(&r);
        for needle in [
            "### The outbox's cost: login-token with one event endpoint ÷ login-token with none (login-token-no-events)",
            "**The outbox's cost in login throughput: 4.0 % fewer** (logins per second, one endpoint ÷ none, median of the rounds' ratios and their range: 0.96× (0.96–0.96×)). The issue's bound, at most 5 %: **met**.",
            "| figure | no event endpoint | one event endpoint | one endpoint ÷ none |",
            "| p95, ms | 20.0 (20.0–22.0) | 21.0 (21.0–21.0) |",
            "login-token-no-events is the same login against a second instance of the same build with no event endpoint (http://127.0.0.1:8280/",
            "### Event delivery",
            "| passkey.login | 300 | 300 |",
            "| passkey.registered | 2 | 2 |",
            "| login-token | 96 | 93 | 3 |",
            "every event in **0.4 s** after the last run",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        assert!(!md.contains("before ("), "{md}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["before_after"]["kind"], "event_endpoint");
        assert_eq!(json["events"]["logins_made"], 300);
        assert_eq!(
            json["config"]["events"]["receiver"],
            "http://127.0.0.1:8190/"
        );
        assert!(table(&r).contains("events received: 300 of 300 passkey.login"));
    }

    #[test]
    fn a_missing_event_or_a_backlog_fails_the_run() {
        let mut r = with_and_without_events();
        r.add_events(delivery(299, 1.0));
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        assert!(r.failures[0].contains("299 passkey.login events of 300"));
        assert!(r.failures[1].contains("1 deliveries still undelivered"));
        assert!(markdown(&r)
            .contains("**not every event was in 0 s after the last run** (backlog then 1)"));
    }

    #[test]
    fn a_throughput_cost_above_the_bound_is_not_met() {
        let mut ba = with_and_without_events().before_after.unwrap();
        for row in &mut ba.rows {
            if row.figure == THROUGHPUT_ROW {
                row.after_over_before = Spread::of(&[Some(0.93), Some(0.94), Some(0.96)]);
            }
        }
        let lines = outbox_cost(&ba);
        assert!(lines[0].contains("0.94× (0.93–0.96×)"), "{lines:?}");
        assert!(lines[0].contains("6.0 % fewer"), "{lines:?}");
        assert!(lines[0].ends_with("**not met**."), "{lines:?}");
        // Two builds: no such verdict.
        assert!(outbox_cost(&three_builds().before_after.unwrap()).is_empty());
    }

    #[test]
    fn a_figure_missing_from_a_round_has_no_spread() {
        assert!(Spread::of(&[Some(1.0), None]).is_none());
        assert!(Spread::of(&[]).is_none());
        let s = Spread::of(&[Some(3.0), Some(1.0), Some(2.0), Some(10.0)]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.rounds), (2.5, 1.0, 10.0, 4));
        assert_eq!(spread(Some(s), Unit::CpuMs), "2.50 (1.00–10.00)");
        assert_eq!(spread(Some(s), Unit::Ms), "2.5 (1.0–10.0)");
        let one = Spread::of(&[Some(114.66)]).unwrap();
        assert_eq!(spread(Some(one), Unit::PerSecond), "114.7");
        assert_eq!(spread(None, Unit::Ratio), "–");
    }
}
