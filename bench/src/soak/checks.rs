//! The soak's verdict: each check says what it demanded and what it found.
//! Pure functions of what the run recorded, so each can be shown to fail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::ops::Op;
use super::record::{FaultWindow, LoginRecord, Sample, Visit};
use crate::receiver::Arrival;

/// The names the fault command knows (scripts/soak).
pub const POSTGRES_RESTART: &str = "postgres-restart";
pub const KRATOS_RESTART: &str = "kratos-restart";
pub const REPLICA_KILL: &str = "replica-kill";

/// RSS after warm-up may exceed its value at the end of warm-up by this
/// fraction, or by `RSS_SLACK_MIB`, whichever is larger.
pub const RSS_GROWTH: f64 = 0.15;
pub const RSS_SLACK_MIB: f64 = 16.0;
/// Open descriptors may grow by this many after warm-up (pooled
/// connections to Postgres, Kratos and the event endpoint come and go).
pub const FD_SLACK: usize = 32;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// The service's settings the table bounds follow from.
pub struct Bounds {
    pub gc_interval_s: f64,
    pub used_ceremony_margin_s: f64,
    pub event_retention_s: f64,
    pub login_record_retention_s: f64,
}

pub struct Input<'a> {
    pub duration_s: f64,
    pub windows: &'a [FaultWindow],
    pub visits: &'a [Visit],
    pub samples: &'a [Sample],
    pub registered: &'a HashSet<String>,
    pub deleted: &'a HashSet<String>,
    pub uncertain: &'a HashSet<String>,
    pub acknowledged_logins: u64,
    pub present: &'a HashSet<String>,
    /// Every event the database held at some sample: id to type.
    pub events_written: &'a HashMap<String, String>,
    pub arrivals: &'a HashMap<String, Arrival>,
    pub started: Instant,
    pub logins: &'a [LoginRecord],
    pub drained: bool,
    pub warmup_s: f64,
    pub bounds: Bounds,
    pub faults_planned: usize,
    pub replicas: usize,
}

pub fn all(input: &Input) -> Vec<Check> {
    vec![
        faults_ran(input),
        no_errors_outside_windows(input),
        only_unavailable_inside_windows(input),
        every_operation_ran(input),
        every_replica_serves_again(input),
        acknowledged_passkeys_present(input),
        events_exactly_once(input),
        login_records_resolved(input),
        tables_bounded(input),
        rss_flat(input),
    ]
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check {
        name,
        passed,
        detail,
    }
}

fn faults_ran(input: &Input) -> Check {
    let ok = input.windows.iter().filter(|w| w.ok).count();
    let detail = input
        .windows
        .iter()
        .map(|w| {
            format!(
                "{} at {:.0} s, back after {:.1} s{}",
                w.name,
                w.start,
                w.end - w.start,
                if w.ok { "" } else { " (its command FAILED)" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    check(
        "every fault ran",
        ok == input.faults_planned && input.windows.len() == input.faults_planned,
        format!("{ok} of {} planned: {detail}", input.faults_planned),
    )
}

/// The windows a visit overlaps (from its start to its answer).
fn windows_of<'a>(visit: &Visit, windows: &'a [FaultWindow]) -> Vec<&'a FaultWindow> {
    let end = visit.at + visit.latency_ms / 1000.0;
    windows
        .iter()
        .filter(|w| visit.at <= w.grace_end && end >= w.start)
        .collect()
}

fn tally(labels: impl Iterator<Item = String>) -> String {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for l in labels {
        *by.entry(l).or_insert(0) += 1;
    }
    if by.is_empty() {
        return "none".into();
    }
    by.iter()
        .map(|(l, n)| format!("{n}× {l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_errors_outside_windows(input: &Input) -> Check {
    let outside: Vec<&Visit> = input
        .visits
        .iter()
        .filter(|v| v.error.is_some() && windows_of(v, input.windows).is_empty())
        .collect();
    check(
        "no errors outside the fault windows",
        outside.is_empty(),
        format!(
            "{} failed visits outside the windows ({}); {} visits in all",
            outside.len(),
            tally(outside.iter().filter_map(|v| v.error.clone())),
            input.visits.len()
        ),
    )
}

/// What a client may see during a fault: the service's 503s, and during a
/// replica's death a refused connection (the balancer then leaves it out),
/// and the load tool's own Kratos calls during Kratos's restart.
fn allowed(window: &str, label: &str) -> bool {
    match label {
        "503 database_unavailable" | "503 kratos_unavailable" => true,
        "connection" => window == REPLICA_KILL,
        l if l.starts_with("kratos-direct") => window == KRATOS_RESTART,
        _ => false,
    }
}

fn only_unavailable_inside_windows(input: &Input) -> Check {
    let mut inside = Vec::new();
    let mut bad = Vec::new();
    for v in input.visits {
        let Some(label) = &v.error else { continue };
        let windows = windows_of(v, input.windows);
        if windows.is_empty() {
            continue;
        }
        inside.push(label.clone());
        if !windows.iter().any(|w| allowed(&w.name, label)) {
            bad.push(label.clone());
        }
    }
    check(
        "inside the fault windows, only 503 database_unavailable / kratos_unavailable (and refused connections to the killed replica)",
        bad.is_empty(),
        format!(
            "inside: {}; not allowed: {}",
            tally(inside.into_iter()),
            tally(bad.into_iter())
        ),
    )
}

fn every_operation_ran(input: &Input) -> Check {
    let mut done: BTreeMap<Op, u64> = Op::ALL.iter().map(|&op| (op, 0)).collect();
    for v in input.visits.iter().filter(|v| v.error.is_none()) {
        *done.entry(v.op).or_insert(0) += 1;
    }
    let missing: Vec<&str> = done
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(op, _)| op.name())
        .collect();
    let total: u64 = done.values().sum();
    check(
        "every kind of visit completed",
        missing.is_empty(),
        format!(
            "{total} completed in {:.0} s ({:.1}/s): {}{}",
            input.duration_s,
            total as f64 / input.duration_s,
            done.iter()
                .map(|(op, n)| format!("{} {n}", op.name()))
                .collect::<Vec<_>>()
                .join(", "),
            if missing.is_empty() {
                String::new()
            } else {
                format!("; never: {}", missing.join(", "))
            }
        ),
    )
}

/// After the last fault, every replica answers visits again: a replica
/// that stayed down would pass every other check behind the balancer.
fn every_replica_serves_again(input: &Input) -> Check {
    let after = input
        .windows
        .iter()
        .map(|w| w.grace_end)
        .fold(0.0, f64::max);
    let served: Vec<usize> = (0..input.replicas)
        .map(|r| {
            input
                .visits
                .iter()
                .filter(|v| v.at > after && v.error.is_none() && v.replica == Some(r))
                .count()
        })
        .collect();
    check(
        "every replica serves again after the faults",
        served.iter().all(|&n| n > 0),
        format!(
            "visits completed after {after:.0} s: {}",
            served
                .iter()
                .enumerate()
                .map(|(r, n)| format!("replica {} {n}", r + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

fn acknowledged_passkeys_present(input: &Input) -> Check {
    let kept: Vec<&String> = input
        .registered
        .iter()
        .filter(|id| !input.deleted.contains(*id) && !input.uncertain.contains(*id))
        .collect();
    let lost = kept
        .iter()
        .filter(|id| !input.present.contains(**id))
        .count();
    let back = input
        .deleted
        .iter()
        .filter(|id| input.present.contains(*id))
        .count();
    check(
        "every acknowledged passkey is present (and every acknowledged delete gone)",
        lost == 0 && back == 0,
        format!(
            "{} registrations acknowledged (set-up included), {} deletes acknowledged, {} deletes unanswered (either way); {} expected present: {lost} missing; {back} deleted ones present",
            input.registered.len(),
            input.deleted.len(),
            input.uncertain.len(),
            kept.len()
        ),
    )
}

/// Seconds into the run at which an instant fell.
fn run_time(input: &Input, at: Instant) -> f64 {
    at.saturating_duration_since(input.started).as_secs_f64()
}

fn events_exactly_once(input: &Input) -> Check {
    let missing = input
        .events_written
        .keys()
        .filter(|id| !input.arrivals.contains_key(*id))
        .count();
    let unknown = input
        .arrivals
        .keys()
        .filter(|id| !input.events_written.contains_key(*id))
        .count();
    let mut repeated_in = 0;
    let mut repeated_out = 0;
    for arrival in input.arrivals.values().filter(|a| a.count > 1) {
        let at = run_time(input, arrival.first);
        // A delivery that reached the receiver but whose success the
        // service could not record (its database or its process went away
        // in between) is sent again: at least once, as documented.
        let explained = input
            .windows
            .iter()
            .filter(|w| w.name == POSTGRES_RESTART || w.name == REPLICA_KILL)
            .any(|w| w.covers(at));
        if explained {
            repeated_in += 1;
        } else {
            repeated_out += 1;
        }
    }
    let requests: u64 = input.arrivals.values().map(|a| u64::from(a.count)).sum();
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for kind in input.events_written.values() {
        *by_type.entry(kind.as_str()).or_insert(0) += 1;
    }
    check(
        "every event delivered exactly once",
        input.drained && missing == 0 && unknown == 0 && repeated_out == 0,
        format!(
            "{} events written ({}), {} distinct received in {requests} requests: {missing} never arrived, {unknown} unknown to the database, {repeated_out} repeated outside a Postgres/replica fault, {repeated_in} repeated inside one (at least once: receivers deduplicate by webhook-id); backlog {}",
            input.events_written.len(),
            by_type
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            input.arrivals.len(),
            if input.drained { "empty at the end" } else { "NOT empty at the end of the drain" }
        ),
    )
}

fn login_records_resolved(input: &Input) -> Check {
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    let mut outside_unresolved = 0;
    let mut inside_unresolved: BTreeMap<&str, u64> = BTreeMap::new();
    for record in input.logins {
        *states.entry(record.state.as_str()).or_insert(0) += 1;
        if record.state == "resolved" {
            continue;
        }
        // A fault may leave a record failed (Kratos or Postgres refused
        // the mint) or, when its process died, for gc to settle.
        let inside = input.windows.iter().any(|w| {
            (w.start_epoch - 1.0..=w.grace_end_epoch + 1.0).contains(&record.created_epoch)
        });
        if inside {
            *inside_unresolved.entry(record.state.as_str()).or_insert(0) += 1;
        } else {
            outside_unresolved += 1;
        }
    }
    let resolved = states.get("resolved").copied().unwrap_or(0);
    // A login answered during Kratos's restart may never learn its session
    // id (the recorder gives up after a few seconds): its record is settled
    // as `unresolved`, still naming its passkey, and its event goes out
    // without the id. That accounts for the login; it is counted apart.
    let given_up = inside_unresolved.get("unresolved").copied().unwrap_or(0);
    check(
        "every login record resolved",
        outside_unresolved == 0 && resolved + given_up >= input.acknowledged_logins,
        format!(
            "{} records ({}); {} logins acknowledged, {resolved} resolved + {given_up} settled without their session id inside a window; outside the windows {outside_unresolved} not resolved; inside: {}",
            input.logins.len(),
            states
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            input.acknowledged_logins,
            if inside_unresolved.is_empty() {
                "none".to_string()
            } else {
                inside_unresolved
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    )
}

fn tables_bounded(input: &Input) -> Check {
    let b = &input.bounds;
    let mut read = 0;
    let mut overdue = Vec::new();
    let (mut max_marks, mut max_events, mut max_logins) = (0, 0, 0);
    for s in input.samples {
        let Some(t) = &s.tables else { continue };
        read += 1;
        max_marks = max_marks.max(t.consumed_ceremonies);
        max_events = max_events.max(t.events);
        max_logins = max_logins.max(t.login_records);
        let during_postgres = input
            .windows
            .iter()
            .any(|w| w.name == POSTGRES_RESTART && w.covers(s.at));
        if !during_postgres
            && (t.overdue_ceremonies > 0 || t.overdue_events > 0 || t.overdue_login_records > 0)
        {
            overdue.push(format!(
                "{:.0} s: {} marks, {} events, {} login records",
                s.at, t.overdue_ceremonies, t.overdue_events, t.overdue_login_records
            ));
        }
    }
    check(
        "table sizes bounded by gc and retention",
        read > 0 && overdue.is_empty(),
        format!(
            "at {read} samples no ceremony mark older than its expiry + {:.0} s (margin {:.0} s + 2 gc intervals + 5 s), no event settled longer ago than {:.0} s (retention {:.0} s + 2 gc intervals + 5 s) and no settled login record older than {:.0} s (retention {:.0} s + 2 gc intervals + 5 s){}; at most {max_marks} marks, {max_events} events and {max_logins} login records stored",
            b.used_ceremony_margin_s + 2.0 * b.gc_interval_s + 5.0,
            b.used_ceremony_margin_s,
            b.event_retention_s + 2.0 * b.gc_interval_s + 5.0,
            b.event_retention_s,
            b.login_record_retention_s + 2.0 * b.gc_interval_s + 5.0,
            b.login_record_retention_s,
            if overdue.is_empty() {
                String::new()
            } else {
                format!("; OVERDUE rows: {}", overdue.join("; "))
            }
        ),
    )
}

/// A process at a sample: seconds into the run, RSS in MiB, open fds.
type Point = (f64, f64, usize);

fn rss_flat(input: &Input) -> Check {
    // One series per process: a restarted replica is a new process with
    // its own warm-up.
    let mut series: BTreeMap<(usize, u32), Vec<Point>> = BTreeMap::new();
    for s in input.samples {
        for (replica, p) in s.procs.iter().enumerate() {
            if let Some(p) = p {
                series
                    .entry((replica, p.pid))
                    .or_default()
                    .push((s.at, p.rss_mib, p.fds));
            }
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for ((replica, pid), points) in &series {
        let first = points[0].0;
        let after: Vec<_> = points
            .iter()
            .filter(|(at, _, _)| *at >= first + input.warmup_s)
            .collect();
        if after.len() < 2 {
            lines.push(format!(
                "replica {} (pid {pid}): too short after warm-up to judge",
                replica + 1
            ));
            continue;
        }
        checked += 1;
        let (_, base_rss, base_fds) = *after[0];
        let bound = base_rss + (base_rss * RSS_GROWTH).max(RSS_SLACK_MIB);
        let max_rss = after.iter().map(|p| p.1).fold(0.0, f64::max);
        let max_fds = after.iter().map(|p| p.2).max().unwrap_or(0);
        let last = after[after.len() - 1].1;
        lines.push(format!(
            "replica {} (pid {pid}): {base_rss:.1} MiB after warm-up, at most {max_rss:.1}, last {last:.1} (bound {bound:.1}); fds {base_fds} → at most {max_fds}",
            replica + 1
        ));
        if max_rss > bound || max_fds > base_fds + FD_SLACK {
            failures.push(format!("replica {} (pid {pid})", replica + 1));
        }
    }
    check(
        "RSS flat after warm-up",
        checked > 0 && failures.is_empty(),
        format!(
            "bound: the value {:.0} s into a process's life + max({:.0} %, {RSS_SLACK_MIB:.0} MiB), fds + {FD_SLACK}; {}{}",
            input.warmup_s,
            RSS_GROWTH * 100.0,
            lines.join("; "),
            if failures.is_empty() {
                String::new()
            } else {
                format!("; GREW: {}", failures.join(", "))
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::record::{Proc, Tables};

    fn window(name: &str, start: f64, end: f64) -> FaultWindow {
        FaultWindow {
            name: name.into(),
            start,
            end,
            grace_end: end + 5.0,
            ok: true,
            start_epoch: 1000.0 + start,
            grace_end_epoch: 1000.0 + end + 5.0,
        }
    }

    fn visit(at: f64, error: Option<&str>) -> Visit {
        Visit {
            at,
            op: Op::Login,
            latency_ms: 20.0,
            error: error.map(str::to_string),
            replica: Some(0),
        }
    }

    struct Owned {
        windows: Vec<FaultWindow>,
        visits: Vec<Visit>,
        samples: Vec<Sample>,
        registered: HashSet<String>,
        deleted: HashSet<String>,
        uncertain: HashSet<String>,
        present: HashSet<String>,
        events: HashMap<String, String>,
        arrivals: HashMap<String, Arrival>,
        logins: Vec<LoginRecord>,
        started: Instant,
    }

    impl Owned {
        fn new() -> Self {
            let started = Instant::now();
            let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
            let events: HashMap<String, String> =
                [("e1", "passkey.login"), ("e2", "passkey.registered")]
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect();
            let arrivals = events
                .keys()
                .map(|id| {
                    (
                        id.clone(),
                        Arrival {
                            count: 1,
                            first: started,
                        },
                    )
                })
                .collect();
            let proc = |rss: f64| {
                Some(Proc {
                    pid: 7,
                    rss_mib: rss,
                    fds: 20,
                })
            };
            let tables = Tables {
                consumed_ceremonies: 10,
                overdue_ceremonies: 0,
                login_records: 5,
                overdue_login_records: 0,
                logins_unfinished: 0,
                events: 2,
                overdue_events: 0,
                undelivered: 0,
                passkeys: 3,
            };
            Self {
                windows: vec![
                    window(POSTGRES_RESTART, 30.0, 35.0),
                    window(REPLICA_KILL, 60.0, 65.0),
                ],
                visits: vec![
                    visit(1.0, None),
                    visit(31.0, Some("503 database_unavailable")),
                    visit(61.0, Some("connection")),
                ],
                samples: [0.0, 10.0, 40.0, 50.0, 90.0]
                    .iter()
                    .map(|&at| Sample {
                        at,
                        procs: vec![proc(40.0)],
                        tables: Some(tables.clone()),
                    })
                    .collect(),
                registered: set(&["p1", "p2", "p3"]),
                deleted: set(&["p3"]),
                uncertain: HashSet::new(),
                present: set(&["p1", "p2"]),
                events,
                arrivals,
                logins: vec![LoginRecord {
                    state: "resolved".into(),
                    created_epoch: 1001.0,
                }],
                started,
            }
        }

        fn input(&self) -> Input<'_> {
            Input {
                duration_s: 100.0,
                windows: &self.windows,
                visits: &self.visits,
                samples: &self.samples,
                registered: &self.registered,
                deleted: &self.deleted,
                uncertain: &self.uncertain,
                acknowledged_logins: 1,
                present: &self.present,
                events_written: &self.events,
                arrivals: &self.arrivals,
                started: self.started,
                logins: &self.logins,
                drained: true,
                warmup_s: 30.0,
                bounds: Bounds {
                    gc_interval_s: 5.0,
                    used_ceremony_margin_s: 10.0,
                    event_retention_s: 60.0,
                    login_record_retention_s: 60.0,
                },
                faults_planned: 2,
                replicas: 1,
            }
        }
    }

    fn verdict(o: &Owned, name_start: &str) -> bool {
        all(&o.input())
            .into_iter()
            .find(|c| c.name.starts_with(name_start))
            .unwrap()
            .passed
    }

    #[test]
    fn a_clean_run_passes_the_checks_it_can() {
        let o = Owned::new();
        for c in all(&o.input()) {
            // Only logins ran in this fixture.
            let expected = !matches!(
                c.name,
                "every kind of visit completed" | "every replica serves again after the faults"
            );
            assert_eq!(c.passed, expected, "{c:?}");
        }
    }

    #[test]
    fn errors_outside_a_window_or_of_the_wrong_kind_fail() {
        let mut o = Owned::new();
        o.visits.push(visit(45.0, Some("503 database_unavailable")));
        assert!(!verdict(&o, "no errors outside"));
        let mut o = Owned::new();
        o.visits.push(visit(32.0, Some("500 internal_error")));
        assert!(verdict(&o, "no errors outside"));
        assert!(!verdict(&o, "inside the fault windows"));
        // A refused connection is the killed replica's, not Postgres's.
        let mut o = Owned::new();
        o.visits.push(visit(32.0, Some("connection")));
        assert!(!verdict(&o, "inside the fault windows"));
    }

    #[test]
    fn a_replica_left_down_fails() {
        let mut o = Owned::new();
        o.visits.push(visit(90.0, None));
        assert!(verdict(&o, "every replica serves"));
        o.visits.last_mut().unwrap().replica = Some(1);
        assert!(!verdict(&o, "every replica serves"));
    }

    #[test]
    fn a_lost_passkey_or_a_deleted_one_back_fails() {
        let mut o = Owned::new();
        o.present.remove("p2");
        assert!(!verdict(&o, "every acknowledged passkey"));
        let mut o = Owned::new();
        o.present.insert("p3".into());
        assert!(!verdict(&o, "every acknowledged passkey"));
        // An unanswered delete may have happened or not.
        let mut o = Owned::new();
        o.uncertain.insert("p2".into());
        o.present.remove("p2");
        assert!(verdict(&o, "every acknowledged passkey"));
    }

    #[test]
    fn missing_or_repeated_events_fail() {
        let mut o = Owned::new();
        o.arrivals.remove("e1");
        assert!(!verdict(&o, "every event"));
        let mut o = Owned::new();
        o.arrivals.get_mut("e1").unwrap().count = 2;
        assert!(
            !verdict(&o, "every event"),
            "a repeat at 0 s is outside every fault"
        );
        let mut o = Owned::new();
        let during = o.started + std::time::Duration::from_secs(31);
        *o.arrivals.get_mut("e1").unwrap() = Arrival {
            count: 2,
            first: during,
        };
        assert!(verdict(&o, "every event"));
        let mut o = Owned::new();
        o.arrivals.insert(
            "e9".into(),
            Arrival {
                count: 1,
                first: o.started,
            },
        );
        assert!(!verdict(&o, "every event"));
    }

    #[test]
    fn unresolved_login_records_fail_outside_the_windows() {
        let mut o = Owned::new();
        o.logins.push(LoginRecord {
            state: "pending".into(),
            created_epoch: 1061.0,
        });
        assert!(verdict(&o, "every login record"));
        o.logins.push(LoginRecord {
            state: "pending".into(),
            created_epoch: 1045.0,
        });
        assert!(!verdict(&o, "every login record"));
    }

    #[test]
    fn overdue_rows_and_growing_memory_fail() {
        let mut o = Owned::new();
        o.samples[3].tables.as_mut().unwrap().overdue_events = 1;
        assert!(!verdict(&o, "table sizes"));
        let mut o = Owned::new();
        o.samples[3].tables.as_mut().unwrap().overdue_login_records = 1;
        assert!(!verdict(&o, "table sizes"));
        let mut o = Owned::new();
        o.samples[3].tables.as_mut().unwrap().overdue_ceremonies = 1;
        assert!(!verdict(&o, "table sizes"));
        assert!(verdict(&Owned::new(), "table sizes"));
        let mut o = Owned::new();
        o.samples[4].procs[0].as_mut().unwrap().rss_mib = 40.0 + 16.5;
        assert!(!verdict(&o, "RSS flat"));
        let mut o = Owned::new();
        o.samples[4].procs[0].as_mut().unwrap().rss_mib = 40.0 + 15.5;
        assert!(verdict(&o, "RSS flat"));
    }
}
