//! What a soak records: each visit, a sample of the processes and tables
//! every interval, the fault windows, and the database's state at the end
//! (read with psql, so the load tool needs no database driver).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::ops::Op;
use crate::measure::Latency;

/// One visit: when it started (seconds into the run), what it was, how
/// long it took, and its error label if it failed.
#[derive(Debug, Clone)]
pub struct Visit {
    pub at: f64,
    pub op: Op,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub replica: Option<usize>,
}

/// A fault and the time it covers, in seconds into the run (and as Unix
/// time, to compare with the database's timestamps).
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    pub name: String,
    pub start: f64,
    /// The fault command returned: the process is back.
    pub end: f64,
    /// `end` plus the grace the run allows for reconnecting.
    pub grace_end: f64,
    pub ok: bool,
    pub start_epoch: f64,
    pub grace_end_epoch: f64,
}

impl FaultWindow {
    pub fn covers(&self, at: f64) -> bool {
        (self.start..=self.grace_end).contains(&at)
    }
}

/// One replica process at a sample.
#[derive(Debug, Clone, Serialize)]
pub struct Proc {
    pub pid: u32,
    pub rss_mib: f64,
    pub fds: usize,
}

/// Row counts of the tables that gc and retention bound, and the rows
/// they should already have removed ("overdue").
#[derive(Debug, Clone, Serialize)]
pub struct Tables {
    pub consumed_ceremonies: u64,
    pub overdue_ceremonies: u64,
    pub login_records: u64,
    pub overdue_login_records: u64,
    pub logins_unfinished: u64,
    pub events: u64,
    pub overdue_events: u64,
    pub undelivered: u64,
    pub passkeys: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub at: f64,
    /// Per replica, in order; None when its process was not running.
    pub procs: Vec<Option<Proc>>,
    /// None when the database did not answer.
    pub tables: Option<Tables>,
}

/// One login record at the end: its state and when it was made (Unix time).
#[derive(Debug, Clone, Serialize)]
pub struct LoginRecord {
    pub state: String,
    pub created_epoch: f64,
}

pub struct EndState {
    pub passkeys: HashSet<String>,
    /// Event id to type, for every event still stored.
    pub events: HashMap<String, String>,
    /// Login record id to the record, for every record still stored.
    pub logins: HashMap<String, LoginRecord>,
}

/// The service's database through psql.
#[derive(Clone)]
pub struct Db {
    url: String,
    overdue_ceremonies_s: f64,
    overdue_events_s: f64,
    overdue_logins_s: f64,
}

impl Db {
    /// A ceremony mark older than its expiry plus `overdue_ceremonies_s`,
    /// an event settled longer ago than `overdue_events_s`, or a settled
    /// login record made longer ago than `overdue_logins_s` should have
    /// been purged.
    pub fn new(
        url: String,
        overdue_ceremonies_s: f64,
        overdue_events_s: f64,
        overdue_logins_s: f64,
    ) -> Self {
        Self {
            url,
            overdue_ceremonies_s,
            overdue_events_s,
            overdue_logins_s,
        }
    }

    async fn query(&self, sql: String) -> Result<Vec<Vec<String>>> {
        let url = self.url.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("psql")
                .args(["-X", "-q", "-t", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
                .arg("-d")
                .arg(&url)
                .arg("-c")
                .arg(&sql)
                .env("PGCONNECT_TIMEOUT", "3")
                .stdin(std::process::Stdio::null())
                .output()
        })
        .await
        .context("psql panicked")?
        .context("running psql")?;
        if !output.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    pub async fn tables(&self) -> Result<Tables> {
        let sql = format!(
            "SELECT (SELECT count(*) FROM consumed_ceremonies), \
                    (SELECT count(*) FROM consumed_ceremonies \
                      WHERE expires_at < now() - make_interval(secs => {c})), \
                    (SELECT count(*) FROM minted_sessions), \
                    (SELECT count(*) FROM minted_sessions WHERE state IN ('minting', 'pending')), \
                    (SELECT count(*) FROM minted_sessions \
                      WHERE state NOT IN ('minting', 'pending') \
                        AND created_at < now() - make_interval(secs => {l})), \
                    (SELECT count(*) FROM events), \
                    (SELECT count(*) FROM events \
                      WHERE settled_at < now() - make_interval(secs => {e})), \
                    (SELECT count(*) FROM event_deliveries WHERE state IN ('held', 'pending')), \
                    (SELECT count(*) FROM passkeys)",
            c = self.overdue_ceremonies_s,
            e = self.overdue_events_s,
            l = self.overdue_logins_s,
        );
        let rows = self.query(sql).await?;
        let row = rows.first().context("psql answered no row")?;
        let n = |i: usize| -> Result<u64> {
            row.get(i)
                .context("psql answered too few columns")?
                .parse()
                .context("psql answered a count that is not a number")
        };
        Ok(Tables {
            consumed_ceremonies: n(0)?,
            overdue_ceremonies: n(1)?,
            login_records: n(2)?,
            logins_unfinished: n(3)?,
            overdue_login_records: n(4)?,
            events: n(5)?,
            overdue_events: n(6)?,
            undelivered: n(7)?,
            passkeys: n(8)?,
        })
    }

    /// Events written in the last minute: read every interval, so an event
    /// is seen before retention purges it.
    pub async fn recent_events(&self) -> Result<HashMap<String, String>> {
        let rows = self
            .query(
                "SELECT id, type FROM events WHERE occurred_at > now() - interval '60 seconds'"
                    .into(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.clone())))
            .collect())
    }

    /// Login records made in the last minute, read every interval like
    /// the events: retention purges them too. A record settles within
    /// seconds, so its last reading is its settled state.
    pub async fn recent_logins(&self) -> Result<HashMap<String, LoginRecord>> {
        self.logins("WHERE created_at > now() - interval '60 seconds'")
            .await
    }

    async fn logins(&self, filter: &str) -> Result<HashMap<String, LoginRecord>> {
        Ok(self
            .query(format!(
                "SELECT id, state, extract(epoch FROM created_at) FROM minted_sessions {filter}"
            ))
            .await?
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.first()?.clone(),
                    LoginRecord {
                        state: r.get(1)?.clone(),
                        created_epoch: r.get(2)?.parse().ok()?,
                    },
                ))
            })
            .collect())
    }

    pub async fn end_state(&self) -> Result<EndState> {
        let passkeys = self
            .query("SELECT id FROM passkeys".into())
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        let events = self
            .query("SELECT id, type FROM events".into())
            .await?
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.clone())))
            .collect();
        let logins = self.logins("").await?;
        Ok(EndState {
            passkeys,
            events,
            logins,
        })
    }
}

/// Throughput and latency of one interval.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// The interval's middle, seconds into the run.
    pub at: f64,
    /// Completed visits per second, by operation.
    pub per_second: BTreeMap<Op, f64>,
    pub p50_ms: BTreeMap<Op, f64>,
    pub p99_ms: BTreeMap<Op, f64>,
    /// Failed visits per second, all operations.
    pub errors_per_second: f64,
}

/// The run per interval, and its totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub buckets: Vec<Bucket>,
    /// Failed visits by error label.
    pub errors: BTreeMap<String, u64>,
    /// Each failed visit: when it started and its error label.
    pub failures: Vec<(f64, String)>,
    /// Completed visits by operation, and their latency over the run.
    pub completed: BTreeMap<Op, u64>,
    pub latency: BTreeMap<Op, Latency>,
}

impl Summary {
    pub fn of(visits: &[Visit], interval: f64, load_s: f64) -> Self {
        // The load stops a moment after the duration: that moment joins
        // the last interval rather than make one of its own.
        let n = (load_s / interval).round().max(1.0) as usize;
        let mut ok: Vec<BTreeMap<Op, Vec<u32>>> = vec![BTreeMap::new(); n];
        let mut failed = vec![0u64; n];
        let mut errors = BTreeMap::new();
        let mut failures = Vec::new();
        let mut all: BTreeMap<Op, Vec<u32>> = BTreeMap::new();
        for v in visits {
            let i = ((v.at / interval) as usize).min(n - 1);
            match &v.error {
                None => {
                    let us = (v.latency_ms * 1000.0) as u32;
                    ok[i].entry(v.op).or_default().push(us);
                    all.entry(v.op).or_default().push(us);
                }
                Some(label) => {
                    failed[i] += 1;
                    *errors.entry(label.clone()).or_insert(0) += 1;
                    failures.push((v.at, label.clone()));
                }
            }
        }
        let buckets = ok
            .iter()
            .zip(&failed)
            .enumerate()
            .map(|(i, (by_op, &failed))| {
                let start = i as f64 * interval;
                let width = if i + 1 == n {
                    (load_s - start).max(1e-3)
                } else {
                    interval
                };
                Bucket {
                    at: start + width / 2.0,
                    per_second: by_op
                        .iter()
                        .map(|(op, s)| (*op, s.len() as f64 / width))
                        .collect(),
                    p50_ms: by_op
                        .iter()
                        .map(|(op, s)| (*op, Latency::of(s).p50_ms))
                        .collect(),
                    p99_ms: by_op
                        .iter()
                        .map(|(op, s)| (*op, Latency::of(s).p99_ms))
                        .collect(),
                    errors_per_second: failed as f64 / width,
                }
            })
            .collect();
        Self {
            buckets,
            errors,
            failures,
            completed: all.iter().map(|(op, s)| (*op, s.len() as u64)).collect(),
            latency: all.iter().map(|(op, s)| (*op, Latency::of(s))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_fall_into_their_interval() {
        let visit = |at: f64, op, error: Option<&str>| Visit {
            at,
            op,
            latency_ms: 10.0,
            error: error.map(str::to_string),
            replica: None,
        };
        let visits = vec![
            visit(1.0, Op::Login, None),
            visit(2.0, Op::Login, None),
            visit(11.0, Op::List, Some("503 database_unavailable")),
            visit(19.0, Op::List, None),
        ];
        let s = Summary::of(&visits, 10.0, 20.0);
        assert_eq!(s.buckets.len(), 2);
        assert_eq!(s.buckets[0].per_second[&Op::Login], 0.2);
        assert_eq!(s.buckets[1].errors_per_second, 0.1);
        assert_eq!(s.errors["503 database_unavailable"], 1);
        assert_eq!(s.completed[&Op::List], 1);
    }

    #[test]
    fn a_window_covers_its_grace() {
        let w = FaultWindow {
            name: "x".into(),
            start: 10.0,
            end: 12.0,
            grace_end: 22.0,
            ok: true,
            start_epoch: 0.0,
            grace_end_epoch: 0.0,
        };
        assert!(w.covers(10.0) && w.covers(21.9) && !w.covers(9.9) && !w.covers(22.1));
    }
}
