//! `report.html`: a self-contained page (no network, no JavaScript) rendered with tera.
//! Every string from a runbook or a data source goes through tera's HTML autoescaping.

use std::path::Path;

use serde::Serialize;

use crate::{Report, StepStatus, Verdict};

pub const DEFAULT_HTML: &str = include_str!("../templates/report.html");

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {path}: {message}")]
    Template { path: String, message: String },
    #[error("cannot render report.html: {0}")]
    Render(String),
}

#[derive(Serialize)]
struct Bar {
    /// The step as the table names it (`vectors: restore`).
    name: String,
    /// What the bar's row says: the step's name (its lane is the band's).
    label: String,
    x: f64,
    y: u32,
    w: f64,
    label_x: f64,
    duration_ms: u64,
    color: &'static str,
}

/// A swim lane of a stack's timeline: the rows of one restore's steps (or the drill's own),
/// under a heading.
#[derive(Serialize, Debug)]
struct Band {
    name: String,
    y: u32,
    h: u32,
    shaded: bool,
}

/// A bar's row height, and a band's heading.
const ROW: u32 = 22;
const HEADING: u32 = 18;

#[derive(Serialize)]
struct ObjectiveRow {
    name: &'static str,
    target: String,
    measured: String,
    met: bool,
}

/// Renders `report.html`; `templates` may hold a `report.html` that replaces the default.
pub fn render_html(report: &Report, keyid: &str, templates: Option<&Path>) -> Result<String, RenderError> {
    let (name, source) = match templates.map(|d| d.join("report.html")).filter(|p| p.is_file()) {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| RenderError::Template { path: p.display().to_string(), message: e.to_string() })?;
            (p.display().to_string(), text)
        }
        None => ("report.html".to_string(), DEFAULT_HTML.to_string()),
    };
    let mut tera = tera::Tera::default();
    // The name ends in .html, so autoescaping is on.
    tera.add_raw_template("report.html", &source)
        .map_err(|e| RenderError::Template { path: name.clone(), message: chain(&e) })?;
    let mut cx = tera::Context::new();
    cx.insert("report", report);
    cx.insert("keyid", keyid);
    cx.insert("verdict_text", if report.verdict == Verdict::Passed { "PASSED" } else { "FAILED" });
    let (bars, bands, height) = timeline(report);
    cx.insert("timeline_height", &height);
    cx.insert("timeline", &bars);
    cx.insert("lanes", &bands);
    cx.insert("objectives", &objectives(report));
    tera.render("report.html", &cx).map_err(|e| RenderError::Render(chain(&e)))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Bars on a shared time axis: x from each step's start, width from its duration. A stack's
/// steps are grouped in swim lanes, the drill's own first, then each restore's in the order
/// they appear (so concurrent restores show side by side in time, one band each); returns the
/// bars, the bands (none for a drill of one restore) and the height.
fn timeline(report: &Report) -> (Vec<Bar>, Vec<Band>, u32) {
    const LEFT: f64 = 150.0;
    const WIDTH: f64 = 760.0;
    let t0 = report.started_at;
    let total_ms = report.finished_at.signed_duration_since(t0).num_milliseconds().max(1) as f64;
    let mut lanes: Vec<Option<&str>> = vec![None];
    for s in &report.steps {
        if !lanes.contains(&s.restore.as_deref()) {
            lanes.push(s.restore.as_deref());
        }
    }
    let banded = lanes.len() > 1;
    let (mut bars, mut bands, mut y) = (Vec::new(), Vec::new(), 4u32);
    for (n, lane) in lanes.iter().enumerate() {
        let steps: Vec<&crate::Step> = report.steps.iter().filter(|s| s.restore.as_deref() == *lane).collect();
        if steps.is_empty() {
            continue;
        }
        let top = y;
        if banded {
            y += HEADING;
        }
        for s in steps {
            let start = s.started_at.signed_duration_since(t0).num_milliseconds().max(0) as f64;
            let x = LEFT + WIDTH * (start / total_ms).min(1.0);
            // At least 2 px so that instant steps show; never past the axis (nor below 2 px
            // when a step starts at its very end).
            let room = (LEFT + WIDTH - x).max(2.0);
            let w = (WIDTH * s.duration_ms as f64 / total_ms).max(2.0).min(room);
            bars.push(Bar {
                name: s.lane_name(),
                label: if banded { s.name.clone() } else { s.lane_name() },
                x: (x * 10.0).round() / 10.0,
                y,
                w: (w * 10.0).round() / 10.0,
                label_x: ((x + w + 6.0).min(960.0) * 10.0).round() / 10.0,
                duration_ms: s.duration_ms,
                color: match s.status {
                    StepStatus::Passed => "#3d9a5a",
                    StepStatus::Failed => "#c8413a",
                    StepStatus::Skipped => "#b9c0c8",
                },
            });
            y += ROW;
        }
        if banded {
            let name = match lane {
                Some(r) => format!("restore {r}"),
                None => "the drill".to_string(),
            };
            bands.push(Band { name, y: top - 2, h: y - top, shaded: n % 2 == 1 });
        }
    }
    (bars, bands, y + 2)
}

fn objectives(report: &Report) -> Vec<ObjectiveRow> {
    let mut rows = Vec::new();
    for (name, o) in [("RTO", &report.objectives.rto), ("RPO", &report.objectives.rpo)] {
        if let Some(o) = o {
            rows.push(ObjectiveRow {
                name,
                target: format!("{} s", o.target_s),
                measured: o.measured_s.map(|m| format!("{m:.1} s")).unwrap_or_else(|| "not measured".into()),
                met: o.met,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runbook_text_is_escaped() {
        let mut r = crate::tests::sample();
        r.failure_reasons = vec!["<script>alert(1)</script>".into()];
        let html = render_html(&r, "k", None).unwrap();
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
        assert!(html.contains("FAILED"));
        assert!(!html.contains("<script"), "the page needs no JavaScript");
    }

    #[test]
    fn the_timeline_never_panics_on_odd_timings() {
        let mut r = crate::tests::sample();
        let step = |at: chrono::DateTime<chrono::Utc>, ms| crate::Step {
            name: "s".into(),
            started_at: at,
            duration_ms: ms,
            status: StepStatus::Passed,
            bytes: None,
            detail: String::new(),
            restore: None,
        };
        // A step starting at (or after) the end, zero-length drills, long steps.
        r.steps = vec![
            step(r.finished_at, 0),
            step(r.finished_at + chrono::Duration::seconds(5), 9_000),
            step(r.started_at, 0),
        ];
        let (bars, bands, _) = timeline(&r);
        assert!(bands.is_empty(), "one restore, no lanes: {bands:?}");
        assert!(
            bars.iter().all(|b| b.w >= 2.0 && b.x + b.w <= 912.0),
            "{:?}",
            bars.iter().map(|b| (b.x, b.w)).collect::<Vec<_>>()
        );
        assert!(render_html(&r, "k", None).is_ok());
    }

    #[test]
    fn a_stacks_timeline_has_a_lane_per_restore_in_order_of_appearance() {
        let mut r = crate::tests::sample();
        let step = |name: &str, restore: Option<&str>| crate::Step {
            name: name.into(),
            started_at: r.started_at,
            duration_ms: 10,
            status: StepStatus::Passed,
            bytes: None,
            detail: String::new(),
            restore: restore.map(String::from),
        };
        r.steps = vec![
            step("fetch", None),
            step("provision", Some("docs")),
            step("provision", Some("vectors")),
            step("restore", Some("docs")),
            step("verify", None),
            step("teardown", Some("vectors")),
        ];
        let (bars, bands, height) = timeline(&r);
        let lanes: Vec<(&str, u32, u32)> = bands.iter().map(|b| (b.name.as_str(), b.y, b.h)).collect();
        assert_eq!(lanes, [("the drill", 2, 62), ("restore docs", 64, 62), ("restore vectors", 126, 62)]);
        let rows: Vec<(&str, u32)> = bars.iter().map(|b| (b.name.as_str(), b.y)).collect();
        assert_eq!(
            rows,
            [
                ("fetch", 22),
                ("verify", 44),
                ("docs: provision", 84),
                ("docs: restore", 106),
                ("vectors: provision", 146),
                ("vectors: teardown", 168)
            ]
        );
        assert_eq!(bars[2].label, "provision");
        assert_eq!(height, 192);
        let html = render_html(&r, "k", None).unwrap();
        assert!(html.contains(">restore vectors</text>"), "{html}");
    }

    #[test]
    fn a_template_folder_overrides_the_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.html"), "<p>{{ report.run_id }} {{ verdict_text }}</p>").unwrap();
        let html = render_html(&crate::tests::sample(), "k", Some(dir.path())).unwrap();
        assert_eq!(html, "<p>r1 FAILED</p>");
        std::fs::write(dir.path().join("report.html"), "{% if %}").unwrap();
        let e = render_html(&crate::tests::sample(), "k", Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("report.html"), "{e}");
    }
}

pub const DEFAULT_INDEX: &str = include_str!("../templates/index.html");

#[derive(Serialize)]
struct IndexRun {
    run_id: String,
    started_at: String,
    verdict: &'static str,
    rto: String,
    link: String,
}

#[derive(Serialize)]
struct TrendPoint {
    x: f64,
    y: f64,
    passed: bool,
    label: String,
}

#[derive(Serialize)]
struct IndexRunbook {
    name: String,
    last_verdict: &'static str,
    rto_target: Option<u64>,
    runs: Vec<IndexRun>,
    points: Vec<TrendPoint>,
    polyline: String,
    y_max: String,
    target_y: Option<f64>,
}

/// `index.html` over all reports: per runbook, its drills (newest first) with links, and
/// an SVG trend of the measured RTO against its objective. `link` maps a report to its href.
pub fn render_index(
    mut runbooks: Vec<(String, Vec<Report>)>,
    link: &dyn Fn(&Report) -> String,
    templates: Option<&Path>,
) -> Result<String, RenderError> {
    runbooks.sort_by(|a, b| a.0.cmp(&b.0));
    let verdict = |r: &Report| if r.verdict == Verdict::Passed { "passed" } else { "failed" };
    let mut out = Vec::new();
    for (name, mut reports) in runbooks {
        reports.sort_by_key(|r| r.started_at);
        let measured: Vec<(&Report, f64)> = reports
            .iter()
            .filter_map(|r| r.objectives.rto.as_ref().and_then(|o| o.measured_s).map(|m| (r, m)))
            .collect();
        let target = reports.iter().rev().find_map(|r| r.objectives.rto.as_ref().map(|o| o.target_s));
        let y_max = measured.iter().map(|(_, m)| *m).fold(target.unwrap_or(0) as f64, f64::max).max(0.001);
        let n = measured.len().max(2) - 1;
        let points: Vec<TrendPoint> = measured
            .iter()
            .enumerate()
            .map(|(i, (r, m))| TrendPoint {
                x: ((60.0 + 920.0 * i as f64 / n as f64) * 10.0).round() / 10.0,
                y: ((140.0 - 125.0 * m / y_max) * 10.0).round() / 10.0,
                passed: r.verdict == Verdict::Passed,
                label: format!("{}: {m:.1} s", r.started_at.to_rfc3339()),
            })
            .collect();
        let polyline = points.iter().map(|p| format!("{},{}", p.x, p.y)).collect::<Vec<_>>().join(" ");
        let runs = reports
            .iter()
            .rev()
            .map(|r| IndexRun {
                run_id: r.run_id.clone(),
                started_at: r.started_at.to_rfc3339(),
                verdict: verdict(r),
                rto: r
                    .objectives
                    .rto
                    .as_ref()
                    .and_then(|o| o.measured_s)
                    .map(|m| format!("{m:.1} s"))
                    .unwrap_or_else(|| "—".into()),
                link: link(r),
            })
            .collect();
        out.push(IndexRunbook {
            last_verdict: reports.last().map(verdict).unwrap_or("failed"),
            rto_target: target,
            target_y: target.map(|t| ((140.0 - 125.0 * t as f64 / y_max) * 10.0).round() / 10.0),
            y_max: format!("{y_max:.1}"),
            name,
            runs,
            points,
            polyline,
        });
    }
    let source = match templates.map(|d| d.join("index.html")).filter(|p| p.is_file()) {
        Some(p) => std::fs::read_to_string(&p)
            .map_err(|e| RenderError::Template { path: p.display().to_string(), message: e.to_string() })?,
        None => DEFAULT_INDEX.to_string(),
    };
    let mut tera = tera::Tera::default();
    tera.add_raw_template("index.html", &source)
        .map_err(|e| RenderError::Template { path: "index.html".into(), message: chain(&e) })?;
    let mut cx = tera::Context::new();
    cx.insert("runbooks", &out);
    tera.render("index.html", &cx).map_err(|e| RenderError::Render(chain(&e)))
}
