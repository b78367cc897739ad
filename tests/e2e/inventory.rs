//! `plan` (next fire times in the runbook's time zone) and `assets` (coverage by RPO).

use chrono::{DateTime, FixedOffset};

use crate::support::{Sandbox, files_runbook};

#[test]
fn plan_lists_next_fire_times_in_each_time_zone() {
    let sb = Sandbox::quickstart();
    sb.write(
        "rbs/fast.yaml",
        files_runbook("fast", "").replace("owner: sre", "owner: sre\nschedule: \"*/5 * * * * *\""),
    );
    sb.write("rbs/manual.yaml", files_runbook("manual", ""));
    std::fs::copy(sb.path("quickstart.yaml"), sb.path("rbs/quickstart.yaml")).unwrap();
    let r = sb.run(&["plan", "rbs", "--count", "4", "--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let plans: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    let by = |name: &str| plans.iter().find(|p| p["runbook"] == name).unwrap_or_else(|| panic!("{name} missing: {r}"));
    let times = |name: &str| -> Vec<DateTime<FixedOffset>> {
        by(name)["next"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap())
            .collect()
    };
    let now = chrono::Utc::now();
    let q = times("quickstart-rag");
    assert_eq!(q.len(), 4);
    for t in &q {
        // 03:30 wall-clock time in Berlin, whatever the offset of that day (CET or CEST).
        assert_eq!(t.format("%H:%M:%S").to_string(), "03:30:00", "{t}");
        assert!(matches!(t.offset().local_minus_utc(), 3600 | 7200), "{t}");
        assert!(*t > now);
    }
    assert!(q.windows(2).all(|w| (w[1] - w[0]).num_hours() >= 23));
    let f = times("fast");
    assert!(f.windows(2).all(|w| (w[1] - w[0]).num_seconds() == 5), "{f:?}");
    assert_eq!(by("fast")["timezone"], "UTC");
    assert_eq!(by("manual")["next"].as_array().unwrap().len(), 0);
}

#[test]
fn assets_show_which_assets_are_proven_within_their_rpo() {
    let sb = Sandbox::quickstart();
    sb.write(
        "other.yaml",
        files_runbook("never-run", "")
            .replace("asset: { name: docs, kind: files }", "asset: { name: wiki-corpus, kind: document-store }"),
    );
    // A second runbook over the same backup with a 5-second RPO: proven now, stale soon.
    let strict = sb
        .read("quickstart.yaml")
        .replace("name: quickstart-rag", "name: strict")
        .replace("rpo: 30d", "rpo: 5s")
        .replace("  name: rag-documents", "  name: strict-asset");
    sb.write("strict.yaml", strict);
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    assert_eq!(sb.drill("strict.yaml").0.code, 0);
    let assets = |sb: &Sandbox| -> Vec<serde_json::Value> {
        let r = sb.run(&["assets", "quickstart.yaml", "other.yaml", "strict.yaml", "--output", "json"]);
        assert_eq!(r.code, 0, "{r}");
        serde_json::from_str(&r.stdout).unwrap()
    };
    let coverage = |rows: &[serde_json::Value], asset: &str| {
        rows.iter().find(|r| r["asset"] == asset).unwrap()["coverage"].clone()
    };
    let rows = assets(&sb);
    assert_eq!(coverage(&rows, "rag-documents"), "proven");
    assert_eq!(coverage(&rows, "strict-asset"), "proven");
    assert_eq!(coverage(&rows, "wiki-corpus"), "never");
    assert_eq!(rows[0]["coverage"], "never", "unproven assets come first");
    let rag = rows.iter().find(|r| r["asset"] == "rag-documents").unwrap();
    assert_eq!(rag["owner"], "search-platform");
    assert_eq!(rag["kind"], "vector-store");
    assert_eq!(rag["last_status"], "passed");

    // (a) drilled as often as the schedule says, apart from (b) how fresh the backup was.
    assert_eq!(rag["drilled"], "on_schedule", "a daily schedule, drilled just now: {rag}");
    assert_eq!(rag["backup_fresh"], true, "{rag}");
    assert!(rag["backup_age_s"].as_i64().is_some_and(|a| a < 60), "{rag}");
    let never = rows.iter().find(|r| r["asset"] == "wiki-corpus").unwrap();
    assert_eq!((never["drilled"].as_str(), &never["backup_fresh"]), (Some("unscheduled"), &serde_json::Value::Null));

    std::thread::sleep(std::time::Duration::from_secs(6));
    let rows = assets(&sb);
    assert_eq!(coverage(&rows, "strict-asset"), "stale");
    let strict = rows.iter().find(|r| r["asset"] == "strict-asset").unwrap();
    assert_eq!(strict["backup_fresh"], true, "the backup was fresh when it was drilled: {strict}");
    assert_eq!(coverage(&rows, "rag-documents"), "proven");
    let human = sb.run(&["assets", "quickstart.yaml", "other.yaml", "strict.yaml"]);
    assert!(human.stdout.contains("3 asset(s), 2 without a passing drill within their RPO"), "{human}");
}
