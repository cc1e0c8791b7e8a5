//! What is measured around a run: latency percentiles, CPU time of the
//! processes under test (from /proc), how busy the whole machine was, and
//! the service's Prometheus histograms.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use url::Url;

// --- latency ---------------------------------------------------------------

/// Latency of one full ceremony, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of samples in microseconds.
    pub fn of(samples: &[u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |p: f64| {
            let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            f64::from(sorted[index.clamp(1, sorted.len()) - 1]) / 1000.0
        };
        let total: f64 = sorted.iter().map(|&s| f64::from(s)).sum();
        Self {
            p50_ms: rank(50.0),
            p90_ms: rank(90.0),
            p95_ms: rank(95.0),
            p99_ms: rank(99.0),
            max_ms: f64::from(sorted[sorted.len() - 1]) / 1000.0,
            mean_ms: total / sorted.len() as f64 / 1000.0,
        }
    }
}

pub fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

// --- CPU time from /proc ---------------------------------------------------

/// Clock ticks per second of /proc's CPU times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        // USER_HZ is 100 on every Linux architecture we run on.
        .unwrap_or(100.0)
}

/// The fields of /proc/<pid>/stat after the command name, so that index 0
/// is field 3 (state) of proc(5).
fn stat_fields(pid: &str) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("unexpected /proc/<pid>/stat format")?;
    // Field 3 (state) is a letter; keep positions with a placeholder.
    Ok(after
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .collect())
}

const PPID: usize = 4 - 3;
const UTIME: usize = 14 - 3;
const STIME: usize = 15 - 3;
const CUTIME: usize = 16 - 3;
const CSTIME: usize = 17 - 3;

fn field(fields: &[u64], index: usize) -> u64 {
    fields.get(index).copied().unwrap_or(0)
}

/// Where CPU time is read from.
#[derive(Debug, Clone, Copy)]
pub enum CpuSource {
    /// One process and all its threads: utime + stime.
    Process(u32),
    /// PostgreSQL's postmaster and its backends: the postmaster's own and
    /// reaped children's time, plus the live children's time.
    ProcessTree(u32),
    /// This load tool.
    Myself,
}

impl CpuSource {
    /// Cumulative CPU seconds so far.
    pub fn seconds(self, ticks: f64) -> Result<f64> {
        let total = match self {
            CpuSource::Myself => {
                let f = stat_fields("self")?;
                field(&f, UTIME) + field(&f, STIME)
            }
            CpuSource::Process(pid) => {
                let f = stat_fields(&pid.to_string())?;
                field(&f, UTIME) + field(&f, STIME)
            }
            CpuSource::ProcessTree(pid) => {
                let f = stat_fields(&pid.to_string())?;
                let mut total =
                    field(&f, UTIME) + field(&f, STIME) + field(&f, CUTIME) + field(&f, CSTIME);
                for entry in std::fs::read_dir("/proc").context("listing /proc")? {
                    let Ok(entry) = entry else { continue };
                    let name = entry.file_name();
                    let Some(child) = name
                        .to_str()
                        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    else {
                        continue;
                    };
                    // A process may exit between the listing and the read.
                    let Ok(cf) = stat_fields(child) else { continue };
                    if field(&cf, PPID) == u64::from(pid) {
                        total += field(&cf, UTIME) + field(&cf, STIME);
                    }
                }
                total
            }
        };
        Ok(total as f64 / ticks)
    }
}

/// Whole-machine CPU counters from /proc/stat: (busy, total) jiffies.
pub fn machine_cpu() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Facts about the machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_gib: Option<f64>,
    pub kernel: Option<String>,
    pub load_average_at_start: Option<f64>,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0);
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            memory_gib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            load_average_at_start: load_average(),
        }
    }
}

// --- Prometheus histograms -------------------------------------------------

/// `<name>_sum` and `<name>_count` of every histogram (and summary), keyed
/// by (name, label set as written).
#[derive(Debug, Clone, Default)]
pub struct Histograms(BTreeMap<(String, String), (f64, f64)>);

/// Every sample of a Prometheus text exposition, keyed by (series name,
/// label set as written).
#[derive(Debug, Clone, Default)]
pub struct Samples(BTreeMap<(String, String), f64>);

/// The backlog gauge of the service's event outbox.
pub const EVENTS_UNDELIVERED: &str = "kratos_passkeys_events_undelivered";
/// The service's event delivery attempts, by endpoint and outcome.
pub const EVENT_DELIVERIES: &str = "kratos_passkeys_event_deliveries_total";

impl Samples {
    /// Reads `name{labels} value` and `name value` lines; comments and
    /// anything unparsable are ignored.
    pub fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, labels, rest) = match (line.find('{'), line.rfind('}')) {
                (Some(open), Some(close)) if open < close => {
                    (&line[..open], &line[open + 1..close], &line[close + 1..])
                }
                _ => match line.split_once(char::is_whitespace) {
                    Some((series, rest)) => (series, "", rest),
                    None => continue,
                },
            };
            let Some(value) = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            samples.insert((series.to_string(), labels.to_string()), value);
        }
        Self(samples)
    }

    /// The value of a series without labels.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0.get(&(name.to_string(), String::new())).copied()
    }

    /// A series summed over every label set that contains `label` (as
    /// written, e.g. `outcome="retry"`); 0 when there is none.
    pub fn sum_with(&self, name: &str, label: &str) -> f64 {
        self.0
            .iter()
            .filter(|((series, labels), _)| series == name && labels.contains(label))
            .map(|(_, value)| value)
            .sum()
    }

    /// The `_sum` and `_count` pairs.
    pub fn histograms(&self) -> Histograms {
        let mut sums: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut counts: BTreeMap<(String, String), f64> = BTreeMap::new();
        for ((series, labels), &value) in &self.0 {
            if let Some(name) = series.strip_suffix("_sum") {
                sums.insert((name.to_string(), labels.clone()), value);
            } else if let Some(name) = series.strip_suffix("_count") {
                counts.insert((name.to_string(), labels.clone()), value);
            }
        }
        Histograms(
            sums.into_iter()
                .filter_map(|(key, sum)| counts.get(&key).map(|&count| (key, (sum, count))))
                .collect(),
        )
    }
}

/// What a scrape found.
#[derive(Debug, Clone)]
pub enum Scrape {
    Found(Samples),
    /// The service has no `/metrics` (404) or it did not answer; why.
    Unavailable(String),
}

impl Scrape {
    pub fn samples(&self) -> Option<&Samples> {
        match self {
            Scrape::Found(samples) => Some(samples),
            Scrape::Unavailable(_) => None,
        }
    }
}

pub async fn scrape(http: &reqwest::Client, admin: &Url) -> Scrape {
    let url = match admin.join("metrics") {
        Ok(url) => url,
        Err(e) => return Scrape::Unavailable(format!("bad admin URL: {e}")),
    };
    let response = match http.get(url).send().await {
        Ok(r) => r,
        Err(e) => return Scrape::Unavailable(format!("GET /metrics failed: {e}")),
    };
    let status = response.status().as_u16();
    if status == 404 {
        return Scrape::Unavailable("the service has no /metrics yet (404)".into());
    }
    if status != 200 {
        return Scrape::Unavailable(format!("GET /metrics answered HTTP {status}"));
    }
    match response.text().await {
        Ok(text) => Scrape::Found(Samples::parse(&text)),
        Err(e) => Scrape::Unavailable(format!("reading /metrics: {e}")),
    }
}

/// One histogram series that moved during a run, per ceremony.
#[derive(Debug, Clone, Serialize)]
pub struct BreakdownRow {
    pub metric: String,
    pub labels: String,
    pub calls: f64,
    pub calls_per_ceremony: f64,
    /// Mean of one observation.
    pub mean_ms: f64,
    /// Total observed time divided by the ceremonies.
    pub ms_per_ceremony: f64,
}

pub fn breakdown(before: &Histograms, after: &Histograms, ceremonies: u64) -> Vec<BreakdownRow> {
    let ceremonies = ceremonies.max(1) as f64;
    after
        .0
        .iter()
        .filter_map(|(key, &(sum, count))| {
            let (sum0, count0) = before.0.get(key).copied().unwrap_or((0.0, 0.0));
            let calls = count - count0;
            (calls > 0.0).then(|| {
                let seconds = sum - sum0;
                BreakdownRow {
                    metric: key.0.clone(),
                    labels: key.1.clone(),
                    calls,
                    calls_per_ceremony: calls / ceremonies,
                    mean_ms: seconds / calls * 1000.0,
                    ms_per_ceremony: seconds / ceremonies * 1000.0,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_histograms(text: &str) -> Histograms {
        Samples::parse(text).histograms()
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let latency = Latency::of(&samples);
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p90_ms, 90.0);
        assert_eq!(latency.p95_ms, 95.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.max_ms, 100.0);
        assert_eq!(latency.mean_ms, 50.5);
        assert_eq!(Latency::of(&[]).p50_ms, 0.0);
        assert_eq!(Latency::of(&[7000]).p99_ms, 7.0);
    }

    #[test]
    fn histograms_are_read_generically_and_differenced() {
        let before = parse_histograms(
            r#"# HELP kratos_passkeys_store_duration_seconds x
# TYPE kratos_passkeys_store_duration_seconds histogram
kratos_passkeys_store_duration_seconds_bucket{operation="take_ceremony",le="0.001"} 1
kratos_passkeys_store_duration_seconds_sum{operation="take_ceremony"} 0.5
kratos_passkeys_store_duration_seconds_count{operation="take_ceremony"} 10
kratos_passkeys_ceremonies_total{kind="login",outcome="started",error_id=""} 3
other_seconds_sum 1
other_seconds_count 2
"#,
        );
        let after = parse_histograms(
            r#"kratos_passkeys_store_duration_seconds_sum{operation="take_ceremony"} 1.5
kratos_passkeys_store_duration_seconds_count{operation="take_ceremony"} 30
kratos_passkeys_kratos_request_duration_seconds_sum{operation="whoami"} 0.2
kratos_passkeys_kratos_request_duration_seconds_count{operation="whoami"} 10
other_seconds_sum 1
other_seconds_count 2
"#,
        );
        let rows = breakdown(&before, &after, 10);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let whoami = &rows[0];
        assert_eq!(
            whoami.metric,
            "kratos_passkeys_kratos_request_duration_seconds"
        );
        assert_eq!(whoami.labels, r#"operation="whoami""#);
        assert!((whoami.mean_ms - 20.0).abs() < 1e-9);
        let take = &rows[1];
        assert_eq!(take.calls, 20.0);
        assert!((take.calls_per_ceremony - 2.0).abs() < 1e-9);
        assert!((take.mean_ms - 50.0).abs() < 1e-9);
        assert!((take.ms_per_ceremony - 100.0).abs() < 1e-9);
    }

    #[test]
    fn gauges_and_counters_are_read_by_name() {
        let samples = Samples::parse(
            r#"# TYPE kratos_passkeys_events_undelivered gauge
kratos_passkeys_events_undelivered 7
kratos_passkeys_event_deliveries_total{endpoint="bench",outcome="delivered"} 40
kratos_passkeys_event_deliveries_total{endpoint="bench",outcome="retry"} 2
kratos_passkeys_event_deliveries_total{endpoint="other",outcome="retry"} 1
"#,
        );
        assert_eq!(samples.value(EVENTS_UNDELIVERED), Some(7.0));
        assert_eq!(samples.value("kratos_passkeys_absent"), None);
        assert_eq!(
            samples.sum_with(EVENT_DELIVERIES, r#"outcome="retry""#),
            3.0
        );
        assert_eq!(
            samples.sum_with(EVENT_DELIVERIES, r#"outcome="delivered""#),
            40.0
        );
        assert_eq!(
            samples.sum_with(EVENT_DELIVERIES, r#"outcome="gave_up""#),
            0.0
        );
    }

    #[test]
    fn this_process_has_cpu_time() {
        let ticks = clock_ticks();
        assert!(CpuSource::Myself.seconds(ticks).unwrap() >= 0.0);
        assert!(machine_cpu().is_some());
    }
}
