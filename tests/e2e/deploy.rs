//! deploy/: the Prometheus alert rules (checked and unit-tested by the real promtool) and the
//! Grafana dashboard (valid JSON whose queries name only metrics the daemon exports; the
//! daemon side of that is checked against a live scrape in daemon.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(rel)
}

fn promtool(args: &[&str]) -> String {
    let bin = "/opt/drillbook-test/prometheus/promtool";
    let out =
        std::process::Command::new(bin).args(args).current_dir(deploy("prometheus")).output().unwrap_or_else(|e| {
            panic!("{bin}: {e} (scripts/test-deps.sh extracts it from Debian's prometheus package)")
        });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_alert_rules_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "drillbook.rules.yml"]);
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");
    promtool(&["check", "config", "prometheus.yml"]);
    let tested = promtool(&["test", "rules", "drillbook.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert the rules define has at least one test that expects it to fire.
    let rules = std::fs::read_to_string(deploy("prometheus/drillbook.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/drillbook.rules.test.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        let firing = tests.split("alertname: ").skip(1).any(|t| {
            t.starts_with(&format!("{alert}\n")) && !t.lines().nth(1).unwrap_or_default().contains("exp_alerts: []")
        });
        assert!(firing, "no test of drillbook.rules.test.yml expects {alert} to fire");
    }
}

/// Every `drillbook_*` metric name the rules and the dashboard query.
pub fn queried_metrics() -> BTreeSet<String> {
    let mut texts = vec![std::fs::read_to_string(deploy("prometheus/drillbook.rules.yml")).unwrap()];
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/drillbook.json")).unwrap())
            .expect("deploy/grafana/drillbook.json is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard's queries: {exprs:?}");
    texts.extend(exprs);
    let mut names = BTreeSet::new();
    for text in texts {
        let mut rest = text.as_str();
        while let Some(at) = rest.find("drillbook_") {
            let tail = &rest[at..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

/// Query texts of panels (`targets[].expr`) and template variables (`definition`).
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_has_a_query_in_every_panel_and_unique_ids() {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/drillbook.json")).unwrap()).unwrap();
    let panels = d["panels"].as_array().expect("panels");
    let ids: BTreeSet<_> = panels.iter().map(|p| p["id"].as_u64().expect("panel id")).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels {
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
            "panel {} has no query: {p}",
            p["title"]
        );
    }
    // Every query the rules and the dashboard make names one of the daemon's metrics (which
    // ones it exports is checked against a live scrape in daemon.rs).
    assert!(queried_metrics().contains("drillbook_schedule_interval_seconds"));
}
