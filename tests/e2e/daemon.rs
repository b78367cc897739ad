//! `drillbook daemon`: real schedules firing real drills, signals, and a crash.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Sandbox, copy_dir, examples};

/// A sandbox whose `runbooks/` folder holds the quickstart runbook on `schedule`, with
/// `extra` appended to its `verify:` list.
fn scheduled_quickstart(schedule: &str, extra_checks: &str) -> Sandbox {
    let sb = Sandbox::new();
    copy_dir(&examples().join("quickstart"), &sb.path("runbooks/quickstart"));
    let text = std::fs::read_to_string(examples().join("quickstart.yaml")).expect("runbook");
    let text = text.replace("schedule: \"30 3 * * *\"", &format!("schedule: \"{schedule}\""));
    let text = text
        .replace("timeouts: { step: 2m, drill: 5m }", &format!("{extra_checks}timeouts: {{ step: 2m, drill: 5m }}"));
    sb.write("runbooks/quickstart.yaml", text);
    sb.write("drillbook.yaml", "runbooks: runbooks\nconcurrency: 2\n");
    sb
}

fn start(sb: &Sandbox) -> Child {
    sb.command(&["daemon"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn daemon")
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Waits for `cond` on the history, at most `limit`.
fn wait_for(
    sb: &Sandbox,
    limit: Duration,
    what: &str,
    cond: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let h = sb.history();
        if cond(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; history: {h:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIGTERM, then the exit status within `limit` (and the daemon's stderr).
fn stop(mut child: Child, limit: Duration) -> (i32, String) {
    signal(&child, libc::SIGTERM);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_seconds_schedule_fires_drills_that_record_their_fire_time() {
    let sb = scheduled_quickstart("*/2 * * * * *", "");
    let daemon = start(&sb);
    let history = wait_for(&sb, Duration::from_secs(30), "two finished scheduled drills", |h| {
        h.iter().filter(|r| r["status"] == "passed").count() >= 2
    });
    let (code, err) = stop(daemon, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let fired: Vec<&serde_json::Value> = history.iter().filter(|r| r["status"] == "passed").collect();
    let mut times = Vec::new();
    for r in &fired {
        let t = r["scheduled_for"].as_str().unwrap_or_else(|| panic!("a scheduled run records scheduled_for: {r}"));
        let t = chrono::DateTime::parse_from_rfc3339(t).expect("rfc3339");
        assert_eq!(chrono::Timelike::second(&t) % 2, 0, "fire times are the schedule's: {t}");
        assert_eq!(chrono::Timelike::nanosecond(&t), 0, "the fire time, not the start time: {t}");
        times.push(t);
    }
    times.sort();
    times.dedup();
    assert_eq!(times.len(), fired.len(), "each fire time runs once");
    sb.assert_no_leftovers();
}

#[test]
fn sigterm_during_a_drill_aborts_it_tears_down_and_exits_zero() {
    let check = "  - name: slow\n    command: { run: [sleep, \"30\"], timeout: 2m }\n";
    let sb = scheduled_quickstart("*/2 * * * * *", check);
    let daemon = start(&sb);
    wait_for(&sb, Duration::from_secs(20), "a running drill", |h| h.iter().any(|r| r["status"] == "running"));
    // Let it reach the slow check.
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let (code, err) = stop(daemon, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "exit within seconds, took {:?}", t.elapsed());
    let h = sb.history();
    assert!(h.iter().all(|r| r["status"] != "running"), "no drill left running: {h:#?}");
    let aborted: Vec<_> = h.iter().filter(|r| r["status"] == "aborted").collect();
    assert_eq!(aborted.len(), 1, "{h:#?}");
    sb.assert_no_leftovers();
}

#[test]
fn after_kill_9_a_restarted_daemon_marks_the_drill_interrupted_and_cleans_up() {
    let check = "  - name: slow\n    command: { run: [sleep, \"60\"], timeout: 2m }\n";
    let sb = scheduled_quickstart("*/2 * * * * *", check);
    let daemon = start(&sb);
    let h = wait_for(&sb, Duration::from_secs(20), "a running drill", |h| h.iter().any(|r| r["status"] == "running"));
    std::thread::sleep(Duration::from_millis(1500));
    let run_id = h.iter().find(|r| r["status"] == "running").unwrap()["run_id"].as_str().unwrap().to_string();
    let mut daemon = daemon;
    daemon.kill().expect("kill -9");
    let _ = daemon.wait();
    let left: Vec<_> = std::fs::read_dir(&sb.tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(!left.is_empty(), "the killed drill left its folder (the test's premise)");

    // The restarted daemon has no runbook to fire (schedule far away), only cleanup to do.
    sb.write("runbooks/quickstart.yaml", sb.read("runbooks/quickstart.yaml").replace("*/2 * * * * *", "0 0 1 1 *"));
    let second = start(&sb);
    let h = wait_for(&sb, Duration::from_secs(20), "the interrupted row", |h| {
        h.iter().any(|r| r["run_id"] == run_id.as_str() && r["status"] == "interrupted")
    });
    let (code, err) = stop(second, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let row = h.iter().find(|r| r["run_id"] == run_id.as_str()).unwrap();
    assert_eq!(h.iter().filter(|r| r["run_id"] == run_id.as_str()).count(), 1, "not duplicated");
    assert!(row["finished_at"].is_string(), "{row}");
    sb.assert_no_leftovers();
    let left = crate::support::processes_under(&sb.tmp);
    assert!(left.is_empty(), "the killed drill's processes were left running: {left:?}");
}
