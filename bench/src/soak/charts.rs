//! The soak's charts, as SVG (plotters): throughput, latency, memory and
//! table sizes over time, each with the fault windows shaded and named.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::ops::Op;
use super::record::{FaultWindow, Sample, Summary};

/// A named line: its legend, colour and points.
type Series = (String, RGBColor, Vec<(f64, f64)>);
/// A table's count in a sample, by name.
type Column = (&'static str, fn(&super::record::Tables) -> u64);

const SIZE: (u32, u32) = (1000, 440);
const FAULT_FILL: RGBColor = RGBColor(255, 205, 160);
const GRACE_FILL: RGBColor = RGBColor(255, 235, 215);

/// The files written, relative to the report.
pub struct Charts {
    pub files: Vec<(&'static str, String)>,
}

/// The font the charts' text is measured and named with. The crate's
/// plotters lays text out with ab_glyph (the trace waterfall draws PNGs),
/// which knows only registered fonts; `scripts/soak` installs this one.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_sans_serif() -> Result<()> {
    let bytes = std::fs::read(FONT).map_err(|e| anyhow!("reading the font {FONT}: {e}"))?;
    // plotters keeps registered fonts for the whole run.
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow!("{FONT} is not a usable font"))
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

fn color(i: usize) -> RGBColor {
    // Distinct, readable on white; then plotters' palette.
    const FIXED: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
        RGBColor(127, 127, 127),
        RGBColor(227, 119, 194),
    ];
    FIXED.get(i).copied().unwrap_or_else(|| {
        let c = Palette99::pick(i).to_rgba();
        RGBColor(c.0, c.1, c.2)
    })
}

type Chart<'a, 'b, Y> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>;

/// Shades each fault (darker: the fault itself; lighter: its grace) and
/// names it at the top.
fn shade<Y>(chart: &mut Chart<'_, '_, Y>, windows: &[FaultWindow], y: (f64, f64)) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    for w in windows {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(w.end, y.0), (w.grace_end, y.1)],
                GRACE_FILL.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(w.start, y.0), (w.end.max(w.start + 0.5), y.1)],
                FAULT_FILL.filled(),
            )))
            .map_err(err)?;
    }
    Ok(())
}

fn label_faults<Y>(chart: &mut Chart<'_, '_, Y>, windows: &[FaultWindow], top: f64) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    for w in windows {
        chart
            .draw_series(std::iter::once(Text::new(
                w.name.clone(),
                (w.start, top),
                ("sans-serif", 13).into_font().color(&RGBColor(160, 60, 0)),
            )))
            .map_err(err)?;
    }
    Ok(())
}

fn legend<'a, 'b: 'a, Y>(chart: &mut Chart<'a, 'b, Y>) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)
}

/// One line per named series on a linear scale from 0.
fn lines(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    y_desc: &str,
    x_max: f64,
    series: &[Series],
    windows: &[FaultWindow],
) -> Result<()> {
    let y_max = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|q| q.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.25;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    shade(&mut chart, windows, (0.0, y_max))?;
    chart
        .configure_mesh()
        .x_desc("seconds into the run")
        .y_desc(y_desc)
        .light_line_style(BLACK.mix(0.06))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for (name, c, points) in series {
        let c = *c;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    label_faults(&mut chart, windows, y_max * 0.97)?;
    legend(&mut chart)
}

/// The same on a log scale (latency spans milliseconds to seconds).
fn log_lines(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x_max: f64,
    series: &[Series],
    windows: &[FaultWindow],
) -> Result<()> {
    let values = || series.iter().flat_map(|(_, _, p)| p.iter().map(|q| q.1));
    let y_max = values().fold(1.0, f64::max) * 2.0;
    let y_min = values()
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min)
        .min(y_max / 4.0)
        / 1.5;
    let y_min = y_min.max(0.1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    shade(&mut chart, windows, (y_min, y_max))?;
    chart
        .configure_mesh()
        .x_desc("seconds into the run")
        .y_desc("ms (log scale)")
        .light_line_style(BLACK.mix(0.06))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for (name, c, points) in series {
        let c = *c;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied().filter(|p| p.1 > 0.0),
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    label_faults(&mut chart, windows, y_max * 0.9)?;
    legend(&mut chart)
}

/// Ops drawn on the latency chart: the ones a person waits on.
const LATENCY_OPS: [Op; 6] = [
    Op::Login,
    Op::LoginIdentifier,
    Op::Register,
    Op::List,
    Op::Rename,
    Op::Delete,
];

pub fn draw(
    dir: &Path,
    summary: &Summary,
    samples: &[Sample],
    windows: &[FaultWindow],
    load_s: f64,
) -> Result<Charts> {
    register_sans_serif()?;
    let x_max = load_s.max(1.0);
    let mut files = Vec::new();

    // Throughput: each kind of visit, all of them, and failures.
    let path = dir.join("throughput.svg");
    {
        let root = SVGBackend::new(&path, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut series: Vec<Series> = Vec::new();
        series.push((
            "all visits".into(),
            RGBColor(20, 20, 20),
            summary
                .buckets
                .iter()
                .map(|b| (b.at, b.per_second.values().sum()))
                .collect(),
        ));
        for (i, op) in Op::ALL.iter().enumerate() {
            series.push((
                op.name().into(),
                color(i),
                summary
                    .buckets
                    .iter()
                    .map(|b| (b.at, b.per_second.get(op).copied().unwrap_or(0.0)))
                    .collect(),
            ));
        }
        series.push((
            "failed".into(),
            RGBColor(214, 39, 40),
            summary
                .buckets
                .iter()
                .map(|b| (b.at, b.errors_per_second))
                .collect(),
        ));
        lines(
            &root,
            "Throughput (completed visits per second)",
            "per second",
            x_max,
            &series,
            windows,
        )?;
        root.present().map_err(err)?;
    }
    files.push(("Throughput", "throughput.svg".to_string()));

    // Latency: p50 above, p99 below.
    let path = dir.join("latency.svg");
    {
        let root = SVGBackend::new(&path, (SIZE.0, SIZE.1 * 2 - 40)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, bottom) = root.split_vertically(SIZE.1 - 20);
        let of = |pick: &dyn Fn(&super::record::Bucket) -> &BTreeMap<Op, f64>| {
            LATENCY_OPS
                .iter()
                .enumerate()
                .map(|(i, op)| {
                    (
                        op.name().to_string(),
                        color(i),
                        summary
                            .buckets
                            .iter()
                            .filter_map(|b| pick(b).get(op).map(|v| (b.at, *v)))
                            .collect(),
                    )
                })
                .collect::<Vec<_>>()
        };
        log_lines(
            &top,
            "Latency p50 per visit",
            x_max,
            &of(&|b| &b.p50_ms),
            windows,
        )?;
        log_lines(
            &bottom,
            "Latency p99 per visit",
            x_max,
            &of(&|b| &b.p99_ms),
            windows,
        )?;
        root.present().map_err(err)?;
    }
    files.push(("Latency", "latency.svg".to_string()));

    // Memory: RSS per replica process, and open descriptors.
    let path = dir.join("memory.svg");
    {
        let root = SVGBackend::new(&path, (SIZE.0, SIZE.1 * 2 - 40)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, bottom) = root.split_vertically(SIZE.1 - 20);
        let mut rss: BTreeMap<(usize, u32), Vec<(f64, f64)>> = BTreeMap::new();
        let mut fds: BTreeMap<(usize, u32), Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples {
            for (r, p) in s.procs.iter().enumerate() {
                if let Some(p) = p {
                    rss.entry((r, p.pid)).or_default().push((s.at, p.rss_mib));
                    fds.entry((r, p.pid))
                        .or_default()
                        .push((s.at, p.fds as f64));
                }
            }
        }
        let named = |m: BTreeMap<(usize, u32), Vec<(f64, f64)>>| {
            m.into_iter()
                .enumerate()
                .map(|(i, ((r, pid), p))| (format!("replica {} (pid {pid})", r + 1), color(i), p))
                .collect::<Vec<_>>()
        };
        lines(
            &top,
            "Resident memory (RSS) per replica process",
            "MiB",
            x_max,
            &named(rss),
            windows,
        )?;
        lines(
            &bottom,
            "Open file descriptors per replica process",
            "descriptors",
            x_max,
            &named(fds),
            windows,
        )?;
        root.present().map_err(err)?;
    }
    files.push(("Memory", "memory.svg".to_string()));

    // Table sizes.
    let path = dir.join("tables.svg");
    {
        let root = SVGBackend::new(&path, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let pick: [Column; 4] = [
            ("consumed_ceremonies", |t| t.consumed_ceremonies),
            ("events", |t| t.events),
            ("login records", |t| t.login_records),
            ("undelivered deliveries", |t| t.undelivered),
        ];
        let series: Vec<_> = pick
            .iter()
            .enumerate()
            .map(|(i, (name, f))| {
                (
                    name.to_string(),
                    color(i),
                    samples
                        .iter()
                        .filter_map(|s| s.tables.as_ref().map(|t| (s.at, f(t) as f64)))
                        .collect(),
                )
            })
            .collect();
        lines(
            &root,
            "Rows in the tables gc and retention bound",
            "rows",
            x_max,
            &series,
            windows,
        )?;
        root.present().map_err(err)?;
    }
    files.push(("Table sizes", "tables.svg".to_string()));
    Ok(Charts { files })
}
