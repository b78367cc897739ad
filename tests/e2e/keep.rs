//! `keep_on_failure`: a failed drill leaves what it restored for investigation, says where and
//! until when, lists it (`scratch list`), removes it on demand (`scratch rm`) or when its time is
//! up (the daemon, also after a restart); never below the disk floor; a passing drill keeps
//! nothing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::bad_input::step;
use crate::support::Sandbox;

/// The quickstart, failing its first check, keeping its scratch for `keep`.
fn failing_quickstart(keep: &str) -> Sandbox {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "expect: \">= 200\"", "expect: \">= 201\"");
    sb.edit("quickstart.yaml", "timeouts:", &format!("keep_on_failure: {keep}\ntimeouts:"));
    sb
}

fn kept_list(sb: &Sandbox) -> Vec<serde_json::Value> {
    let r = sb.run(&["scratch", "list", "--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r}"))
}

#[test]
fn a_failed_drill_keeps_its_scratch_until_it_is_removed() {
    let sb = failing_quickstart("2h");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    let kept = &report["kept"];
    let folder = PathBuf::from(kept["folder"].as_str().unwrap_or_else(|| panic!("nothing kept: {run}")));
    // The restored data is there to look at, exactly where the report says.
    assert!(folder.join("restore/docs.sqlite").is_file(), "{}", folder.display());
    assert!(folder.starts_with(sb.path("tmp")), "{}", folder.display());
    let until = chrono::DateTime::parse_from_rfc3339(kept["until"].as_str().unwrap()).unwrap();
    let left = until.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(119) && left <= chrono::Duration::hours(2), "{left}");
    let teardown = step(&report, "teardown")["detail"].as_str().unwrap();
    assert!(teardown.contains(&format!("kept {} for investigation until", folder.display())), "{teardown}");
    let run_id = report["run_id"].as_str().unwrap();
    let md = std::fs::read_to_string(sb.path(&format!("drill-reports/quickstart-rag/{run_id}/report.md"))).unwrap();
    assert!(md.contains("## Kept for investigation") && md.contains(&format!("drillbook scratch rm {run_id}")), "{md}");

    // Whoever ran it by hand is told where to look.
    let by_hand = sb.run(&["run", "quickstart.yaml"]);
    assert_eq!(by_hand.code, 1, "{by_hand}");
    assert!(
        by_hand.stdout.contains("  kept for investigation: ") && by_hand.stdout.contains("(drillbook scratch rm "),
        "{by_hand}"
    );
    let second = kept_list(&sb).into_iter().find(|k| k["run_id"] != run_id).expect("the second run's kept scratch");
    assert_eq!(sb.run(&["scratch", "rm", second["run_id"].as_str().unwrap()]).code, 0);

    let list = kept_list(&sb);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["run_id"], run_id);
    assert_eq!(list[0]["folder"], folder.display().to_string());

    let r = sb.run(&["scratch", "rm", run_id]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(&format!("folder {}", folder.display())), "{r}");
    assert!(!folder.exists());
    assert!(kept_list(&sb).is_empty());
    sb.assert_no_leftovers();
    let r = sb.run(&["scratch", "rm", run_id]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains(&format!("no kept scratch of run {run_id} (none is kept)")), "{r}");
}

// fault: too little free disk to keep a failed drill's scratch | failed, scratch not kept | `keep_on_failure: not kept: … below keep_min_free` | TMPDIR empty, nothing listed as kept
#[test]
fn a_passing_drill_keeps_nothing_and_the_disk_floor_is_respected() {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "timeouts:", "keep_on_failure: 2h\ntimeouts:");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert!(report.get("kept").is_none(), "{run}");
    sb.assert_no_leftovers();

    // No file system has this much free: the failed drill's scratch goes, and the report says why.
    let sb = failing_quickstart("2h");
    sb.write("drillbook.yaml", "keep_min_free: 1000000GiB\n");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert!(report.get("kept").is_none(), "{run}");
    let teardown = step(&report, "teardown")["detail"].as_str().unwrap();
    assert!(
        teardown.contains("keep_on_failure: not kept: ") && teardown.contains("below keep_min_free (1000000.0 GiB)"),
        "{teardown}"
    );
    sb.assert_no_leftovers();
    assert!(kept_list(&sb).is_empty());
}

#[test]
fn the_daemon_removes_kept_scratch_when_its_time_is_up() {
    // Kept by a drill run by hand while no daemon ran; the daemon started later removes it.
    let sb = failing_quickstart("2s");
    std::fs::create_dir(sb.path("runbooks")).unwrap();
    sb.write("drillbook.yaml", "runbooks: runbooks\nhttp: { listen: \"127.0.0.1:0\" }\n");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    let folder = PathBuf::from(report["kept"]["folder"].as_str().unwrap());
    assert!(folder.is_dir());
    std::thread::sleep(Duration::from_secs(2));
    let mut daemon = sb.command(&["daemon"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("daemon");
    let started = Instant::now();
    while folder.exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(!folder.exists(), "the daemon left {}", folder.display());
    assert!(kept_list(&sb).is_empty());
    sb.assert_no_leftovers();
}
