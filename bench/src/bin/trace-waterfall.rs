//! Draws one trace from Jaeger's query API (`GET /api/traces/{id}`, saved
//! as JSON) as a waterfall PNG: one row per span, indented under its
//! parent, coloured by the process that recorded it. The Jaeger built from
//! the Go module serves no UI, so the documentation's picture is drawn here.
//!
//!   trace-waterfall trace.json out.png [--hide PREFIX]... [--font FONT.ttf]
//!
//! `--hide sql-` leaves out the spans whose name starts with `sql-`
//! (Kratos's one per SQL statement), for a picture that stays readable.

use std::collections::HashMap;

use anyhow::{bail, Context};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde_json::Value;

struct Span {
    id: String,
    parent: Option<String>,
    operation: String,
    service: String,
    start: i64,
    duration: i64,
}

const ROW: i32 = 24;
const LABEL_WIDTH: i32 = 430;
const WIDTH: u32 = 1400;
const PALETTE: [RGBColor; 4] = [
    RGBColor(0x2b, 0x6c, 0xb0),
    RGBColor(0xd9, 0x7a, 0x1c),
    RGBColor(0x3a, 0x9a, 0x4a),
    RGBColor(0x8e, 0x44, 0xad),
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        bail!("usage: trace-waterfall trace.json out.png [--hide PREFIX]... [--font FONT.ttf]");
    };
    let mut font = String::from("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    let mut hidden = Vec::new();
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--hide", Some(prefix)) => hidden.push(prefix),
            ("--font", Some(path)) => font = path,
            _ => bail!("unknown argument {flag}"),
        }
    }
    let bytes = std::fs::read(&font).with_context(|| format!("reading the font {font}"))?;
    // plotters keeps registered fonts for the whole run.
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{font} is not a usable font"))?;

    let json: Value = serde_json::from_str(&std::fs::read_to_string(input)?)?;
    let trace = &json["data"][0];
    let mut spans = read_spans(trace)?;
    let all = spans.len();
    spans.retain(|s| !hidden.iter().any(|p| s.operation.starts_with(p.as_str())));
    let ordered = tree_order(&spans);
    draw(
        trace["traceID"].as_str().unwrap_or(""),
        &spans,
        &ordered,
        all,
        &output,
    )
}

fn read_spans(trace: &Value) -> anyhow::Result<Vec<Span>> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .context("no spans in the trace")?
        .iter()
        .map(|span| {
            Ok(Span {
                id: span["spanID"].as_str().context("spanID")?.to_string(),
                parent: span["references"].as_array().and_then(|refs| {
                    refs.iter()
                        .find(|r| r["refType"] == "CHILD_OF")
                        .and_then(|r| r["spanID"].as_str())
                        .map(str::to_string)
                }),
                operation: span["operationName"].as_str().unwrap_or("?").to_string(),
                service: processes[span["processID"].as_str().context("processID")?]["serviceName"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                start: span["startTime"].as_i64().context("startTime")?,
                duration: span["duration"].as_i64().context("duration")?,
            })
        })
        .collect()
}

/// Depth-first from the spans whose parent is not in the trace, children
/// by start time: (index, depth).
fn tree_order(spans: &[Span]) -> Vec<(usize, usize)> {
    let ids: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        let parent = span.parent.as_deref().and_then(|p| ids.get(p).copied());
        children.entry(parent).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| spans[i].start);
    }
    let mut order = Vec::new();
    let mut stack: Vec<(usize, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|&i| (i, 0)).collect())
        .unwrap_or_default();
    while let Some((i, depth)) = stack.pop() {
        order.push((i, depth));
        if let Some(kids) = children.get(&Some(i)) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    order
}

fn draw(
    trace_id: &str,
    spans: &[Span],
    order: &[(usize, usize)],
    all: usize,
    output: &str,
) -> anyhow::Result<()> {
    let services: Vec<&str> = {
        let mut seen = Vec::new();
        for &(i, _) in order {
            if !seen.contains(&spans[i].service.as_str()) {
                seen.push(spans[i].service.as_str());
            }
        }
        seen
    };
    let start = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.start + s.duration)
        .max()
        .unwrap_or(1);
    let total = (end - start).max(1) as f64;
    let top = 70;
    let height = (top + ROW * order.len() as i32 + 50) as u32;
    let root = BitMapBackend::new(output, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let text = |size| ("sans-serif", size).into_font();
    root.draw(&Text::new(
        format!(
            "One passkey login, one trace: {trace_id}  ({} of {all} spans, {:.1} ms)",
            spans.len(),
            total / 1000.0
        ),
        (12, 10),
        text(18).color(&BLACK),
    ))?;
    // Legend: one colour per process.
    let mut x = 12;
    for (n, service) in services.iter().enumerate() {
        let colour = PALETTE[n % PALETTE.len()];
        root.draw(&Rectangle::new([(x, 40), (x + 14, 54)], colour.filled()))?;
        root.draw(&Text::new(
            service.to_string(),
            (x + 20, 40),
            text(14).color(&BLACK),
        ))?;
        x += 30 + 9 * service.len() as i32;
    }
    let plot_width = WIDTH as i32 - LABEL_WIDTH - 20;
    let to_x =
        |micros: i64| LABEL_WIDTH + ((micros - start) as f64 / total * plot_width as f64) as i32;
    // Time grid.
    let step = grid_step(total / 1000.0);
    let mut ms = 0.0;
    while ms <= total / 1000.0 {
        let gx = to_x(start + (ms * 1000.0) as i64);
        root.draw(&PathElement::new(
            vec![(gx, top - 4), (gx, top + ROW * order.len() as i32)],
            RGBColor(0xdd, 0xdd, 0xdd),
        ))?;
        root.draw(&Text::new(
            format!("{ms} ms"),
            (gx + 2, top + ROW * order.len() as i32 + 6),
            text(12).color(&RGBColor(0x55, 0x55, 0x55)),
        ))?;
        ms += step;
    }
    for (row, &(i, depth)) in order.iter().enumerate() {
        let span = &spans[i];
        let y = top + ROW * row as i32;
        let colour = PALETTE[services
            .iter()
            .position(|s| *s == span.service)
            .unwrap_or(0)
            % PALETTE.len()];
        root.draw(&Text::new(
            span.operation.clone(),
            (12 + 14 * depth as i32, y + 4),
            text(14).color(&BLACK),
        ))?;
        let (x0, x1) = (to_x(span.start), to_x(span.start + span.duration));
        root.draw(&Rectangle::new(
            [(x0, y + 3), (x1.max(x0 + 2), y + ROW - 3)],
            colour.filled(),
        ))?;
        let label = format!("{:.2} ms", span.duration as f64 / 1000.0);
        let label_x = if x1 + 80 < WIDTH as i32 {
            x1 + 4
        } else {
            x0 - 70
        };
        root.draw(&Text::new(
            label,
            (label_x, y + 5),
            text(12).color(&RGBColor(0x33, 0x33, 0x33)),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// A round grid step giving about ten lines.
fn grid_step(total_ms: f64) -> f64 {
    let raw = total_ms / 10.0;
    [
        0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
    ]
    .into_iter()
    .find(|&s| s >= raw)
    .unwrap_or(1000.0)
}
