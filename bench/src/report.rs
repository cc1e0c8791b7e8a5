//! The results: per run, pooled over the interleaved rounds, the ratios of
//! the interleaved pair, as JSON (serde), a terminal table and markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::measure::{BreakdownRow, Latency, Machine};
use crate::Mode;

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
    /// By process: service, kratos, postgres (with its backends), load_tool.
    pub cpu: BTreeMap<String, CpuUse>,
    /// Fraction of all the machine's CPU time that was busy (anything).
    pub machine_busy: Option<f64>,
    pub load_average_after: Option<f64>,
    /// The service's histograms that moved, per ceremony.
    pub breakdown: Option<Vec<BreakdownRow>>,
    /// Why there is no breakdown.
    pub breakdown_note: Option<String>,
    #[serde(skip)]
    pub samples: Vec<u32>,
}

impl Phase {
    fn cpu_ms(&self, name: &str) -> Option<f64> {
        self.cpu.get(name).and_then(|c| c.ms_per_ceremony)
    }

    /// CPU per ceremony of everything under test that was measured
    /// (service + Kratos + Postgres), not the load tool.
    fn stack_cpu_ms(&self) -> Option<f64> {
        let parts: Vec<f64> = ["service", "kratos", "postgres"]
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
}

impl Ratios {
    fn of(label: &str, ours: &Phase, native: &Phase) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Self {
            label: label.to_string(),
            p50: ratio(ours.latency.p50_ms, native.latency.p50_ms),
            p99: ratio(ours.latency.p99_ms, native.latency.p99_ms),
            throughput: ratio(ours.throughput_per_s, native.throughput_per_s),
            stack_cpu: match (ours.stack_cpu_ms(), native.stack_cpu_ms()) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            },
        }
    }

    fn median(label: &str, rows: &[Ratios]) -> Self {
        let median = |mut v: Vec<f64>| {
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
        };
        let cpu: Vec<f64> = rows.iter().filter_map(|r| r.stack_cpu).collect();
        Self {
            label: label.to_string(),
            p50: median(rows.iter().map(|r| r.p50).collect()),
            p99: median(rows.iter().map(|r| r.p99).collect()),
            throughput: median(rows.iter().map(|r| r.throughput).collect()),
            stack_cpu: (cpu.len() == rows.len() && !cpu.is_empty()).then(|| median(cpu)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub ours: Mode,
    pub native: Mode,
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
    pub kratos_public: String,
    pub origin: String,
    pub cpu_measured: Vec<String>,
    pub note: Option<String>,
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
    pub comparison: Option<Comparison>,
    /// Runs with errors or without a single completed ceremony.
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
        let comparison = comparison(&config, &sequential, &interleaved, &interleaved_pooled);
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
            failures,
        }
    }
}

fn comparison(
    config: &RunConfig,
    sequential: &[Phase],
    interleaved: &[Phase],
    pooled: &[Phase],
) -> Option<Comparison> {
    let (ours, native) = match config.interleave.as_slice() {
        [a, b] => (*a, *b),
        _ => (Mode::LoginToken, Mode::KratosNative),
    };
    let mut rows = Vec::new();
    let mut rounds = Vec::new();
    for round in 1..=config.rounds {
        let find = |mode| {
            interleaved
                .iter()
                .find(|p| p.mode == mode && p.round == Some(round))
        };
        if let (Some(a), Some(b)) = (find(ours), find(native)) {
            rounds.push(Ratios::of(&format!("round {round}"), a, b));
        }
    }
    if !rounds.is_empty() {
        let median = Ratios::median("median of rounds", &rounds);
        rows.extend(rounds);
        rows.push(median);
    }
    let find = |runs: &[Phase], mode| runs.iter().find(|p| p.mode == mode).cloned();
    if let (Some(a), Some(b)) = (find(pooled, ours), find(pooled, native)) {
        rows.push(Ratios::of("all rounds pooled", &a, &b));
    }
    if let (Some(a), Some(b)) = (find(sequential, ours), find(sequential, native)) {
        rows.push(Ratios::of("sequential runs", &a, &b));
    }
    (!rows.is_empty()).then_some(Comparison { ours, native, rows })
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

pub fn one_line(p: &Phase) -> String {
    format!(
        "{} ceremonies, {} errors, {:.1}/s, p50 {:.1} ms, p99 {:.1} ms, service CPU {} ms, Kratos CPU {} ms per ceremony",
        p.completed,
        p.errors,
        p.throughput_per_s,
        p.latency.p50_ms,
        p.latency.p99_ms,
        opt(p.cpu_ms("service"), 2),
        opt(p.cpu_ms("kratos"), 2),
    )
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
        opt(p.cpu_ms("service"), 2),
        opt(p.cpu_ms("kratos"), 2),
        opt(p.cpu_ms("postgres"), 2),
        opt(p.stack_cpu_ms(), 2),
        opt(p.cpu_ms("load_tool"), 2),
        opt(p.machine_busy.map(|b| b * 100.0), 0) + "%",
    ]
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
    if let Some(c) = &r.comparison {
        let _ = writeln!(
            out,
            "\n{} / {}: p50, p99 latency, throughput, stack CPU per login",
            c.ours.name(),
            c.native.name()
        );
        for row in &c.rows {
            let _ = writeln!(
                out,
                "  {:<20} p50 {:>6}  p99 {:>6}  throughput {:>6}  stack CPU {:>6}",
                row.label,
                ratio(row.p50),
                ratio(row.p99),
                ratio(row.throughput),
                row.stack_cpu.map(ratio).unwrap_or_else(|| "–".into()),
            );
        }
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
        "Latency is one full ceremony as the client sees it (options + software authenticator + verify; kratos-native: flow fetch + sign + submit). CPU columns are milliseconds of CPU per completed ceremony, from /proc (utime + stime); \"stack\" = service + Kratos + Postgres; Postgres counts its whole server, including anything else using it. \"machine busy\" is the share of all cores busy during the run, from anything.\n"
    );
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
    }
    if let Some(cmp) = &r.comparison {
        let _ = writeln!(
            out,
            "### Ratios: {} / {}\n\nBelow 1× is better for latency and CPU; above 1× is better for throughput.\n",
            cmp.ours.name(),
            cmp.native.name()
        );
        let _ = writeln!(
            out,
            "| | p50 latency | p99 latency | throughput | stack CPU per login |\n| --- | ---: | ---: | ---: | ---: |"
        );
        for row in &cmp.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.label,
                ratio(row.p50),
                ratio(row.p99),
                ratio(row.throughput),
                row.stack_cpu.map(ratio).unwrap_or_else(|| "–".into())
            );
        }
        let _ = writeln!(out);
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
        .filter(|p| p.mode != Mode::KratosNative)
        .collect();
    for p in &breakdown_phases {
        match &p.breakdown {
            Some(rows) if !rows.is_empty() => {
                any = true;
                let _ = writeln!(
                    out,
                    "**{}** (p50 {:.1} ms, mean {:.1} ms per ceremony)\n",
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
