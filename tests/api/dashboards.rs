//! The Grafana dashboard (`deploy/grafana/kratos-passkeys.json`) and the
//! Prometheus alerts (`deploy/prometheus/alerts.yml`) name only metrics the
//! service exports: a renamed metric would leave a panel empty and an alert
//! silent, and nothing else would notice.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::events::{deliver_to, Behaviour, Receiver};
use crate::helpers::{spawn_app_with, Authenticator};

#[tokio::test]
async fn dashboards_and_alerts_name_only_exported_metrics() {
    // A registration and a login (with an event endpoint) so that every
    // labelled family has a series: families without one are not rendered.
    let receiver = Receiver::start(Behaviour::Accept).await;
    let app = spawn_app_with(|s| deliver_to(s, &receiver)).await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;
    let response = app
        .passkey_login(&mut authenticator, json!({"session": "token"}))
        .await;
    assert_eq!(response.status(), 200);
    receiver.wait_for(1).await;
    let exported = exported_families(&app.metrics().await);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/kratos-passkeys.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut dashboard_exprs = Vec::new();
    collect_exprs(&dashboard, &mut dashboard_exprs);
    let alerts =
        std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).expect("alert rules");
    let mut alert_exprs = Vec::new();
    collect_exprs(&yaml_as_json(&alerts), &mut alert_exprs);
    assert!(dashboard_exprs.len() >= 20, "{dashboard_exprs:?}");
    assert!(alert_exprs.len() >= 7, "{alert_exprs:?}");

    let mut unknown = Vec::new();
    let mut named = BTreeSet::new();
    for (file, exprs) in [
        ("kratos-passkeys.json", &dashboard_exprs),
        ("alerts.yml", &alert_exprs),
    ] {
        for expr in exprs.iter() {
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{file}: no metric in {expr}");
            for name in names {
                if !is_exported(&name, &exported) {
                    unknown.push(format!("{file}: {name} (in {expr})"));
                }
                named.insert(name);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "not exported by the service:\n{}\nexported: {:?}",
        unknown.join("\n"),
        exported.keys().collect::<Vec<_>>()
    );
    // Every family is on the dashboard.
    for family in exported.keys() {
        assert!(
            named
                .iter()
                .any(|n| n == family || base_of(n).is_some_and(|(base, _)| base == family)),
            "{family} is on no panel or alert"
        );
    }
}

/// Family name to type, from the exposition's `# TYPE` lines.
fn exported_families(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_owned(), kind.trim().to_owned()))
        })
        .collect()
}

/// `name` itself, or a histogram's `_bucket` / `_sum` / `_count` series.
fn is_exported(name: &str, exported: &HashMap<String, String>) -> bool {
    if exported.contains_key(name) {
        return true;
    }
    match base_of(name) {
        Some((base, "_bucket")) => exported.get(base).is_some_and(|k| k == "histogram"),
        Some((base, _)) => exported
            .get(base)
            .is_some_and(|k| k == "histogram" || k == "summary"),
        None => false,
    }
}

fn base_of(name: &str) -> Option<(&str, &'static str)> {
    ["_bucket", "_sum", "_count"]
        .into_iter()
        .find_map(|suffix| Some((name.strip_suffix(suffix)?, suffix)))
}

/// Every `expr` string in the dashboard JSON, at any depth (panels, rows).
fn collect_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(expr) if key == "expr" => into.push(expr.clone()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| collect_exprs(v, into)),
        _ => {}
    }
}

/// The rule file as JSON, read by the YAML parser the service's
/// configuration uses, so its `expr` values are found like the dashboard's.
fn yaml_as_json(yaml: &str) -> Value {
    config::Config::builder()
        .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
        .build()
        .and_then(|c| c.try_deserialize())
        .expect("alert rules YAML")
}

/// The metric names in a PromQL expression: identifiers outside label
/// matchers, ranges, strings and grouping clauses that are neither functions
/// nor keywords. Grafana's `$variables` only occur inside those.
fn metric_names(expr: &str) -> Vec<String> {
    // Besides the grouping clauses below.
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        // Aggregation operators, which may put `by (...)` before their
        // parenthesis: `sum by (job) (rate(...))`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    // A label value may hold the closing brace.
                    if chars[i] == '"' || chars[i] == '\'' {
                        let quote = chars[i];
                        i += 1;
                        while i < chars.len() && chars[i] != quote {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if after_grouping => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                after_grouping = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i]))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let lower = word.to_ascii_lowercase();
                after_grouping = GROUPING.contains(&lower.as_str());
                if next != Some(&'(')
                    && !KEYWORDS.contains(&lower.as_str())
                    && !GROUPING.contains(&lower.as_str())
                {
                    names.push(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations (0.95, 1e3, 5m): never names.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_skip_functions_labels_and_groupings() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (operation, le) (rate(kratos_passkeys_x_bucket{job=~"$job", a="b}"}[$__rate_interval]))) / on (job) group_left max(other_metric) > 0.5 and bool 1e3"#
        ),
        ["kratos_passkeys_x_bucket", "other_metric"]
    );
    let mut exprs = Vec::new();
    collect_exprs(
        &yaml_as_json("groups:\n  - rules:\n      - alert: A\n        expr: |\n          sum(a)\n          / b\n        for: 5m\n      - alert: B\n        expr: c > 1\n"),
        &mut exprs,
    );
    assert_eq!(exprs, ["sum(a)\n/ b\n", "c > 1"]);
}
