//! The soak's markdown report: the verdict, the charts, then the figures.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::charts::Charts;
use super::checks::Check;
use super::record::{FaultWindow, LoginRecord, Sample, Summary};
use crate::receiver::Counts;

pub struct Report<'a> {
    pub command: &'a str,
    pub started_utc: chrono::DateTime<chrono::Utc>,
    pub duration_s: f64,
    pub load_s: f64,
    pub drain_s: f64,
    pub rate: f64,
    pub users: usize,
    pub replicas: usize,
    pub windows: &'a [FaultWindow],
    pub summary: &'a Summary,
    pub samples: &'a [Sample],
    pub checks: &'a [Check],
    pub charts: &'a Charts,
    pub receiver: &'a Counts,
    pub logins: &'a [LoginRecord],
    pub warmup_s: f64,
    /// Visits whose last request went to each replica (failed ones too).
    pub per_replica: Vec<u64>,
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let passed = r.checks.iter().all(|c| c.passed);
    let _ = writeln!(
        md,
        "# Soak: {:.0} s of mixed traffic with faults — {}\n",
        r.duration_s,
        if passed { "PASSED" } else { "FAILED" }
    );
    let _ = writeln!(
        md,
        "Started {} UTC; load for {:.0} s, then {:.0} s for the event backlog and login records to settle. \
         {} virtual users at {} visits per second in all, over {} replicas of the service (release build) \
         behind the load tool's own round-robin balancer, which leaves out a replica that refuses a \
         connection until its `/health/alive` answers.\n",
        r.started_utc.format("%Y-%m-%d %H:%M:%S"),
        r.load_s,
        r.drain_s,
        r.users,
        r.rate,
        r.replicas
    );
    if !r.command.is_empty() {
        let _ = writeln!(md, "```\n{}\n```\n", r.command);
    }

    let _ = writeln!(
        md,
        "## Checks\n\n| check | result | what was found |\n|---|---|---|"
    );
    for c in r.checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            cell(c.name),
            if c.passed { "pass" } else { "**FAIL**" },
            cell(&c.detail)
        );
    }
    let _ = writeln!(md);

    let _ = writeln!(
        md,
        "## Charts\n\nShaded: each fault (dark, from its start until the fault command returned \
         with the process back) and the grace after it (light) within which errors count as the \
         fault's.\n"
    );
    for (title, file) in &r.charts.files {
        let _ = writeln!(md, "### {title}\n\n![{title}]({file})\n");
    }

    let _ = writeln!(
        md,
        "## Faults\n\n| fault | at (s) | back after (s) | failed visits in its window | last failure after it (s into the run) |\n|---|---|---|---|---|"
    );
    for w in r.windows {
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        let mut last: Option<f64> = None;
        for v in r.summary_visits_in(w) {
            *by.entry(v.0.clone()).or_insert(0) += 1;
            last = Some(last.map_or(v.1, |l: f64| l.max(v.1)));
        }
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {} | {} |",
            w.name,
            w.start,
            w.end - w.start,
            if by.is_empty() {
                "none".to_string()
            } else {
                by.iter()
                    .map(|(l, n)| format!("{n}× {l}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            last.map_or("–".into(), |l| format!("{l:.1}"))
        );
    }
    let _ = writeln!(md);

    let _ = writeln!(
        md,
        "## Visits\n\n| visit | completed | per second | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|"
    );
    for (op, n) in &r.summary.completed {
        let l = r.summary.latency.get(op).copied().unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {n} | {:.1} | {:.1} | {:.1} | {:.0} |",
            op.name(),
            *n as f64 / r.load_s,
            l.p50_ms,
            l.p99_ms,
            l.max_ms
        );
    }
    let _ = writeln!(md, "\nFailed visits by error, over the whole run:\n");
    if r.summary.errors.is_empty() {
        let _ = writeln!(md, "- none");
    }
    for (label, n) in &r.summary.errors {
        let _ = writeln!(md, "- {n}× `{label}`");
    }

    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for l in r.logins {
        *states.entry(&l.state).or_insert(0) += 1;
    }
    let last = r.samples.iter().rev().find_map(|s| s.tables.clone());
    let _ = writeln!(
        md,
        "\n## Data\n\n- Visits by the replica that answered their last request: {}.\n- Event receiver: {} requests, {} distinct events ({}), {} refused.\n- Login records at the end: {}.\n- Rows at the last sample: {}.\n- RSS is judged per process after {:.0} s of its life (a restarted replica starts over).",
        r.per_replica
            .iter()
            .enumerate()
            .map(|(i, n)| format!("replica {} {n}", i + 1))
            .collect::<Vec<_>>()
            .join(", "),
        r.receiver.requests,
        r.receiver.distinct,
        r.receiver
            .by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.receiver.refused,
        states
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        last.map_or("the database did not answer".to_string(), |t| format!(
            "consumed_ceremonies {}, events {}, minted_sessions {}, passkeys {}",
            t.consumed_ceremonies, t.events, t.login_records, t.passkeys
        )),
        r.warmup_s
    );
    md
}

impl Report<'_> {
    /// (error label, seconds into the run) of each failed visit in a window.
    fn summary_visits_in(&self, w: &FaultWindow) -> Vec<(String, f64)> {
        self.summary
            .failures
            .iter()
            .filter(|(at, _)| (w.start..=w.grace_end).contains(at))
            .map(|(at, label)| (label.clone(), *at))
            .collect()
    }
}
