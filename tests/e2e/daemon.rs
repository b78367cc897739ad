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
    sb.write("drillbook.yaml", "runbooks: runbooks\nconcurrency: 2\nhttp: { listen: \"127.0.0.1:0\" }\n");
    sb
}

/// A running daemon, killed if a test fails before stopping it.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    fn id(&self) -> u32 {
        self.0.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL: no teardown, no last word in history.
    fn kill_9(mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().expect("kill -9");
            let _ = c.wait();
        }
    }
}

/// After a crash: idles `runbook` (a yearly schedule), starts a new daemon, waits until it
/// has marked `run_id` interrupted, stops it (exit 0) and returns the history.
fn recover_with_a_new_daemon(sb: &Sandbox, runbook: &str, run_id: &str) -> Vec<serde_json::Value> {
    sb.write(runbook, sb.read(runbook).replace("*/2 * * * * *", "0 0 1 1 *"));
    let second = start(sb);
    let h = wait_for(sb, Duration::from_secs(20), "the interrupted row", |h| {
        h.iter().any(|r| r["run_id"] == run_id && r["status"] == "interrupted")
    });
    let (code, err) = stop(second, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    h
}

fn start(sb: &Sandbox) -> Daemon {
    Daemon(Some(sb.command(&["daemon"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn daemon")))
}

fn signal(daemon: &Daemon, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, sig) };
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
fn stop(mut daemon: Daemon, limit: Duration) -> (i32, String) {
    signal(&daemon, libc::SIGTERM);
    let mut child = daemon.0.take().expect("running");
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

/// `audit coverage`: every fire time of a period, what served it, and why the others were
/// missed; the newest report deleted (what hiding a bad drill looks like) is flagged.
#[test]
fn audit_coverage_lists_every_fire_time_and_flags_a_deleted_report() {
    let sb = scheduled_quickstart("*/2 * * * * *", "");
    let from = chrono::Utc::now();
    // Two fire times or so with no daemon up.
    std::thread::sleep(Duration::from_secs(4));
    let daemon_start = chrono::Utc::now();
    let daemon = start(&sb);
    wait_for(&sb, Duration::from_secs(30), "three passed drills", |h| {
        h.iter().filter(|r| r["status"] == "passed").count() >= 3
    });
    let (code, err) = stop(daemon, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let to = chrono::Utc::now() + chrono::Duration::seconds(3);
    let history = sb.history();
    let newest = history.iter().find(|r| r["status"] == "passed").expect("a passed drill");
    std::fs::remove_dir_all(sb.path(newest["report"].as_str().expect("its report folder"))).unwrap();

    let r = sb.run(&["audit", "coverage", "--from", &from.to_rfc3339(), "--to", &to.to_rfc3339(), "--output", "json"]);
    assert_eq!(r.code, 1, "missed fire times and a deleted report: {r}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).expect("json rows");
    let at = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    // Exactly the schedule's fire times of the period, each once.
    let fires: Vec<_> = rows.iter().map(|row| at(&row["fire"])).collect();
    let mut expected = Vec::new();
    let mut t = chrono::DurationRound::duration_trunc(from, chrono::Duration::seconds(2)).unwrap();
    while t < to {
        if t >= from {
            expected.push(t);
        }
        t += chrono::Duration::seconds(2);
    }
    assert_eq!(fires, expected, "{rows:#?}");
    // Every scheduled run of the period is there with its outcome; the deleted report is named.
    for h in history.iter().filter(|h| !h["scheduled_for"].is_null()) {
        let row = rows.iter().find(|row| row["run_id"] == h["run_id"]).unwrap_or_else(|| panic!("{h} not listed"));
        assert_eq!(row["outcome"], h["status"]);
        assert_eq!(at(&row["fire"]), at(&h["scheduled_for"]));
        if h["run_id"] == newest["run_id"] {
            assert!(row["evidence"].as_str().unwrap().starts_with("report missing from disk"), "{row}");
        } else {
            assert_eq!(row["evidence"], "intact", "{row}");
        }
    }
    // Before the daemon started, nothing ran, and the reason says why.
    let before: Vec<_> = rows.iter().filter(|row| at(&row["fire"]) < daemon_start).collect();
    assert!(!before.is_empty());
    for row in before {
        assert_eq!(row["outcome"], "missed", "{row}");
        assert_eq!(row["why"], "no daemon was running", "{row}");
        assert_eq!(row["schedule_from"], "recorded", "{row}");
    }
    // The same as CSV for a spreadsheet: a header and one line per fire time.
    let r = sb.run(&["audit", "coverage", "--from", &from.to_rfc3339(), "--to", &to.to_rfc3339(), "--output", "csv"]);
    assert_eq!(r.stdout.lines().count(), rows.len() + 1, "{r}");
    assert!(r.stdout.starts_with("runbook,fire,outcome,run_id,report,evidence,why,schedule_from\n"), "{r}");
}

// fault: SIGTERM to the daemon during a drill | aborted (daemon exits 0 within seconds) | `aborted: …` | no row left running, TMPDIR empty
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

// fault: SIGKILL of the daemon during a drill | interrupted (marked by the next daemon) | `interrupted: …` | drill folder and its processes removed by the next start, one row
#[test]
fn after_kill_9_a_restarted_daemon_marks_the_drill_interrupted_and_cleans_up() {
    let check = "  - name: slow\n    command: { run: [sleep, \"60\"], timeout: 2m }\n";
    let sb = scheduled_quickstart("*/2 * * * * *", check);
    let daemon = start(&sb);
    let h = wait_for(&sb, Duration::from_secs(20), "a running drill", |h| h.iter().any(|r| r["status"] == "running"));
    std::thread::sleep(Duration::from_millis(1500));
    let run_id = h.iter().find(|r| r["status"] == "running").unwrap()["run_id"].as_str().unwrap().to_string();
    daemon.kill_9();
    let left: Vec<_> = std::fs::read_dir(&sb.tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(!left.is_empty(), "the killed drill left its folder (the test's premise)");

    // The restarted daemon has no runbook to fire (schedule far away), only cleanup to do.
    let h = recover_with_a_new_daemon(&sb, "runbooks/quickstart.yaml", &run_id);
    let row = h.iter().find(|r| r["run_id"] == run_id.as_str()).unwrap();
    assert_eq!(h.iter().filter(|r| r["run_id"] == run_id.as_str()).count(), 1, "not duplicated");
    assert!(row["finished_at"].is_string(), "{row}");
    sb.assert_no_leftovers();
    let left = crate::support::processes_under(&sb.tmp);
    assert!(left.is_empty(), "the killed drill's processes were left running: {left:?}");
}

fn http(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.output().expect("curl (scripts/test-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Waits (20 s at most) until `/healthz` answers 200, which needs no token.
fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http("GET", &format!("{base}/healthz"), None).0 != 200 {
        assert!(Instant::now() < deadline, "no /healthz at {base}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses OpenMetrics/Prometheus text with the reference Python parser (PyPI
/// `prometheus-client`) and returns `name{labels} value` lines for every sample.
fn parse_metrics(text: &str) -> Vec<String> {
    const PARSE: &str = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in f.samples:\n\
        \x20       print(s.name + '{' + ','.join(f'{k}={v}' for k, v in sorted(s.labels.items())) + '} ' + repr(s.value))\n";
    let mut child = std::process::Command::new("/opt/drillbook-test/venv/bin/python")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test venv's python (scripts/test-deps.sh)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

// fault: a runbook edited into an invalid one while the daemon runs | previous version keeps running, `/healthz` 503 | `invalid: … ownr` and `drillbook_runbook_invalid 1` | the trigger still runs the previous version
#[test]
fn http_serves_health_metrics_api_dashboard_and_a_token_protected_trigger() {
    let sb = scheduled_quickstart("0 0 1 1 *", "").env("DRILLBOOK_TOKEN", "s3cret-trigger-token-0123456789abcdefghij");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sb.write(
        "drillbook.yaml",
        format!("runbooks: runbooks\nhttp: {{ listen: \"127.0.0.1:{port}\", token: \"${{env:DRILLBOOK_TOKEN}}\" }}\n"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let daemon = start(&sb);
    wait_healthy(&base);
    let (code, body) = http("GET", &format!("{base}/healthz"), None);
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((health["status"].as_str(), health["runbooks"].as_u64()), (Some("ok"), Some(1)), "{health}");

    let trigger = format!("{base}/api/runbooks/quickstart-rag/run");
    assert_eq!(http("POST", &trigger, None).0, 401, "no token");
    assert_eq!(http("POST", &trigger, Some("wrong")).0, 401, "wrong token");
    assert_eq!(
        http("POST", &format!("{base}/api/runbooks/nope/run"), Some("s3cret-trigger-token-0123456789abcdefghij")).0,
        404
    );
    let (code, body) = http("POST", &trigger, Some("s3cret-trigger-token-0123456789abcdefghij"));
    assert_eq!(code, 202, "{body}");
    let accepted: serde_json::Value = serde_json::from_str(&body).unwrap();
    let h =
        wait_for(&sb, Duration::from_secs(30), "the triggered drill", |h| h.iter().any(|r| r["status"] == "passed"));
    assert!(h[0]["scheduled_for"].is_null(), "a triggered drill has no fire time: {}", h[0]);
    assert_eq!(h[0]["run_id"], accepted["run_id"], "the trigger answers with the run's id");

    let (code, runs) = http("GET", &format!("{base}/api/runs"), None);
    assert_eq!(code, 200);
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs[0]["run_id"], h[0]["run_id"]);
    let (_, books) = http("GET", &format!("{base}/api/runbooks"), None);
    let books: serde_json::Value = serde_json::from_str(&books).unwrap();
    assert_eq!(books[0]["name"], "quickstart-rag");
    // Midnight of 1 January in Berlin.
    assert!(books[0]["next_fire"].as_str().unwrap_or_default().ends_with("-12-31T23:00:00Z"), "{books}");

    let (code, text) = http("GET", &format!("{base}/metrics"), None);
    assert_eq!(code, 200);
    let samples = parse_metrics(&text);
    let labels = "asset=rag-documents,owner=search-platform,runbook=quickstart-rag";
    for name in [
        "drillbook_last_run_timestamp_seconds",
        "drillbook_last_success_timestamp_seconds",
        "drillbook_rto_measured_seconds",
        "drillbook_rpo_measured_seconds",
    ] {
        assert!(samples.iter().any(|s| s.starts_with(&format!("{name}{{{labels}}} "))), "{name} missing: {samples:#?}");
    }
    let value = |series: String| -> Option<f64> {
        samples.iter().find_map(|s| s.strip_prefix(&format!("{series} ")).and_then(|v| v.parse().ok()))
    };
    assert_eq!(value(format!("drillbook_drill_duration_seconds_count{{{labels}}}")), Some(1.0), "{samples:#?}");
    assert_eq!(value(format!("drillbook_failed_checks{{{labels}}}")), Some(0.0), "{samples:#?}");
    assert_eq!(value(format!("drillbook_last_drill_passed{{{labels}}}")), Some(1.0), "{samples:#?}");
    // Fired on 1 January: a year between drills (366 days across a leap year).
    let interval = value(format!("drillbook_schedule_interval_seconds{{{labels}}}"));
    assert!(matches!(interval, Some(i) if i == 365.0 * 86400.0 || i == 366.0 * 86400.0), "{interval:?}");
    assert_eq!(value("drillbook_healthy{}".into()), Some(1.0), "{samples:#?}");
    assert!(value("drillbook_start_time_seconds{}".into()).is_some_and(|t| t > 1.7e9), "{samples:#?}");
    let mut exported: std::collections::BTreeSet<String> =
        samples.iter().filter_map(|s| s.split_once('{').map(|(name, _)| name.to_string())).collect();

    // A drill of another process on the same history (`drillbook run` beside the daemon) shows
    // within a second or so: the daemon reads the runs that changed, never the whole history.
    let r = sb.run(&["run", "runbooks/quickstart.yaml"]);
    assert_eq!(r.code, 0, "{r}");
    let count = format!("drillbook_drill_duration_seconds_count{{{labels}}} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = http("GET", &format!("{base}/metrics"), None);
        let n = parse_metrics(&text).iter().find_map(|s| s.strip_prefix(&count)?.parse::<f64>().ok());
        if n == Some(2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the CLI's drill never reached /metrics: {n:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The dashboard, as a browser renders it.
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &format!("{base}/")])
        .output()
        .expect("chromium (scripts/test-deps.sh installs it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("rag-documents") && dom.contains("quickstart-rag"), "{dom}");
    assert!(dom.contains("class=\"verdict passed\""), "{dom}");
    // The newest run's report: the CLI's drill.
    let newest = sb.history()[0]["run_id"].as_str().unwrap().to_string();
    assert_ne!(newest, h[0]["run_id"].as_str().unwrap());
    let report_link = format!("/reports/quickstart-rag/{newest}/report.html");
    assert!(dom.contains(&report_link), "{dom}");
    let (code, html) = http("GET", &format!("{base}{report_link}"), None);
    assert_eq!(code, 200);
    assert!(html.contains("PASSED"), "the linked report is served");
    assert_eq!(http("GET", &format!("{base}/reports/quickstart-rag/..%2F..%2Fetc/report.html"), None).0, 404);

    // A runbook that becomes invalid keeps its previous version and shows up as such.
    sb.edit("runbooks/quickstart.yaml", "owner: search-platform", "owner: search-platform\nownr: typo");
    // Picked up on its own (the folder is watched); SIGHUP would do it at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, health) = loop {
        let (code, body) = http("GET", &format!("{base}/healthz"), None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["status"] == "degraded" || Instant::now() > deadline {
            break (code, v);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(code, 503, "a degraded daemon fails its probe");
    assert!(health["invalid"][0]["error"].as_str().unwrap_or_default().contains("ownr"), "{health}");
    let (_, text) = http("GET", &format!("{base}/metrics"), None);
    let samples = parse_metrics(&text);
    assert!(samples.iter().any(|s| s == "drillbook_runbook_invalid{runbook=quickstart-rag} 1"), "{samples:#?}");
    let healthy = samples.iter().find_map(|s| s.strip_prefix("drillbook_healthy{} ")?.parse::<f64>().ok());
    assert_eq!(healthy, Some(0.0), "degraded: {samples:#?}");
    exported.extend(samples.iter().filter_map(|s| s.split_once('{').map(|(name, _)| name.to_string())));
    // deploy/: the alert rules and the Grafana dashboard query only what the daemon exports.
    let missing: Vec<_> = crate::deploy::queried_metrics().into_iter().filter(|m| !exported.contains(m)).collect();
    assert!(missing.is_empty(), "deploy/ queries metrics the daemon does not export: {missing:?}\n{exported:#?}");
    assert_eq!(
        http("POST", &trigger, Some("s3cret-trigger-token-0123456789abcdefghij")).0,
        202,
        "the previous version still runs"
    );

    let (code, err) = stop(daemon, Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("s3cret-trigger-token-0123456789abcdefghij"), "the token never appears in output");
    sb.assert_no_leftovers();
}

#[test]
fn http_auth_all_guards_everything_but_healthz_and_short_tokens_are_refused() {
    let token = "0123456789abcdef0123456789abcdef-all";
    let slow = "  - name: slow\n    command: { run: [sleep, \"3\"], timeout: 2m }\n";
    let sb = scheduled_quickstart("0 0 1 1 *", slow).env("DRILLBOOK_TOKEN", token).env("SHORT_TOKEN", "hunter2");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sb.write(
        "short.yaml",
        format!("runbooks: runbooks\nhttp: {{ listen: \"127.0.0.1:{port}\", token: \"${{env:SHORT_TOKEN}}\" }}\n"),
    );
    let r = sb.run(&["daemon", "--config", "short.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("a token of 7 characters is too short") && !r.stderr.contains("hunter2"), "{r}");

    sb.write(
        "drillbook.yaml",
        format!(
            "runbooks: runbooks\nhttp: {{ listen: \"127.0.0.1:{port}\", token: \"${{env:DRILLBOOK_TOKEN}}\", auth: all }}\n"
        ),
    );
    let base = format!("http://127.0.0.1:{port}");
    let daemon = start(&sb);
    wait_healthy(&base);
    for path in ["/metrics", "/api/runs", "/api/runbooks", "/"] {
        assert_eq!(http("GET", &format!("{base}{path}"), None).0, 401, "{path} without a token");
        assert_eq!(http("GET", &format!("{base}{path}"), Some("wrong")).0, 401, "{path} with a wrong token");
        assert_eq!(http("GET", &format!("{base}{path}"), Some(token)).0, 200, "{path} with the token");
    }
    // The trigger records the run before it answers; a second one while it runs gets 409.
    let trigger = format!("{base}/api/runbooks/quickstart-rag/run");
    let (code, body) = http("POST", &trigger, Some(token));
    assert_eq!(code, 202, "{body}");
    let run_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["run_id"].as_str().unwrap().to_string();
    let listed = sb.history();
    assert!(listed.iter().any(|r| r["run_id"] == run_id.as_str()), "{listed:?}");
    let (code, body) = http("POST", &trigger, Some(token));
    assert_eq!(code, 409, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["run_id"], run_id.as_str());
    wait_for(&sb, Duration::from_secs(30), "the triggered drill", |h| {
        h.iter().any(|r| r["run_id"] == run_id.as_str() && r["status"] == "passed")
    });
    let (code, err) = stop(daemon, Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(token), "the token never appears in output");
}

#[test]
fn http_tls_serves_https_only() {
    let sb = scheduled_quickstart("0 0 1 1 *", "");
    crate::servers::make_certs(&sb.root);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sb.write(
        "drillbook.yaml",
        format!("runbooks: runbooks\nhttp: {{ listen: \"127.0.0.1:{port}\", tls: {{ cert: server.crt, key: server.key }} }}\n"),
    );
    let daemon = start(&sb);
    let ca = sb.path("ca.crt");
    let https = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.to_str().unwrap()])
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while https("/healthz") != "200" {
        assert!(Instant::now() < deadline, "no /healthz over HTTPS");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(https("/api/runbooks"), "200");
    // Plain HTTP gets no answer: the port speaks TLS only.
    assert_eq!(http("GET", &format!("http://127.0.0.1:{port}/healthz"), None).0, 0);
    let (code, err) = stop(daemon, Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("https://127.0.0.1:{port}")), "{err}");
}

/// A secret that went missing after a rotation: the runbook still fires, and its drill fails
/// with the reason, with a history row and a report; `/healthz` is degraded. A runbooks folder
/// that cannot be read degrades it too, and keeps the runbooks loaded before.
// fault: a secret gone after a rotation, then an unreadable runbooks folder | failed with a report, `/healthz` degraded | `locate: the runbook cannot be built: … DRILL_ROTATED_ROOT` | history row; the runbooks loaded before kept
#[test]
fn a_runbook_that_cannot_be_built_at_fire_time_fails_loudly() {
    let sb = scheduled_quickstart("* * * * * *", "");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sb.write(
        "drillbook.yaml",
        format!(
            "runbooks: runbooks\nhttp: {{ listen: \"127.0.0.1:{port}\" }}\n\
             storage:\n  local: {{ type: fs, root: \"${{env:DRILL_ROTATED_ROOT}}\" }}\n"
        ),
    );
    let daemon = start(&sb);
    let h = wait_for(&sb, Duration::from_secs(30), "a failed run", |h| h.iter().any(|r| r["status"] == "failed"));
    let run = h.iter().find(|r| r["status"] == "failed").unwrap();
    let folder = run["report"].as_str().expect("a report folder");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path(folder).join("report.json")).unwrap()).unwrap();
    let why = report["failure_reasons"].to_string();
    assert!(why.contains("locate: the runbook cannot be built") && why.contains("DRILL_ROTATED_ROOT"), "{why}");
    let base = format!("http://127.0.0.1:{port}");
    let (code, body) = http("GET", &format!("{base}/healthz"), None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("DRILL_ROTATED_ROOT"), "{body}");

    // The folder goes away: degraded, and the runbook loaded before is still there.
    std::fs::rename(sb.path("runbooks"), sb.path("runbooks.gone")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (_, body) = http("GET", &format!("{base}/healthz"), None);
        if body.contains("runbooks_folder") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.contains("the runbooks folder cannot be read"), "{body}");
    assert!(body.contains("\"runbooks\":1"), "the loaded runbook is kept: {body}");
    let (code, err) = stop(daemon, Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
}

/// A daemon starting next to a live `drillbook run` (its binary renamed, so nothing in its
/// command line says drillbook) knows that run's process is alive: by boot id, pid and start
/// time, not by name. The run is neither marked interrupted nor swept.
// fault: a daemon starts beside a live `drillbook run` whose binary was renamed | the live run untouched | (process identity: boot id, pid, start time) | the run neither marked nor swept
#[test]
fn recovery_never_sweeps_a_live_run_of_a_renamed_binary() {
    let slow = "  - name: slow\n    command: { run: [sleep, \"4\"], timeout: 2m }\n";
    let sb = scheduled_quickstart("0 0 1 1 *", slow);
    let renamed = sb.path("bin/recovery-probe");
    std::fs::create_dir_all(renamed.parent().unwrap()).unwrap();
    std::fs::copy(crate::support::BIN, &renamed).unwrap();
    std::fs::set_permissions(&renamed, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let manual = std::process::Command::new(&renamed)
        .args(["run", "runbooks/quickstart.yaml", "--output", "json"])
        .current_dir(&sb.root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &sb.root)
        .env("TMPDIR", &sb.tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let h = wait_for(&sb, Duration::from_secs(20), "the manual run", |h| h.iter().any(|r| r["status"] == "running"));
    let run_id = h[0]["run_id"].as_str().unwrap().to_string();
    let daemon = start(&sb);
    // The daemon has recovered (or not) once its HTTP side answers; the run must still be running.
    std::thread::sleep(Duration::from_millis(1500));
    let now = sb.history();
    let row = now.iter().find(|r| r["run_id"] == run_id.as_str()).unwrap();
    assert_eq!(row["status"], "running", "a live run was taken for dead: {row}");
    let out = manual.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let h = wait_for(&sb, Duration::from_secs(10), "the manual run's end", |h| {
        h.iter().any(|r| r["run_id"] == run_id.as_str() && r["status"] == "passed")
    });
    assert!(!h.is_empty());
    let (code, err) = stop(daemon, Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
    sb.assert_no_leftovers();
}

/// Two daemons with one slot each, drills longer than the lease and several runbooks due at
/// once: a claim is renewed while its drill waits for a slot, so no fire time runs twice. Then
/// the history store is stopped for longer than the lease: each daemon cancels what it can no
/// longer prove it owns (aborted, "lost its claim"), and after the restart a fire time is
/// still never completed twice.
// fault: two daemons, drills longer than the lease, then the history store stopped for longer than the lease | every fire time completed at most once; drills run again once the store is back | (a claim renewed from the moment it is won; one not renewed cancels its drill) | no fire time twice, TMPDIR empty
#[test]
fn long_and_queued_drills_on_two_daemons_never_run_a_fire_time_twice() {
    let pg = crate::servers::PgServer::start(&crate::servers::pg15_bin());
    pg.sql("postgres", "create database history");
    let slow = "  - name: slow\n    command: { run: [sleep, \"3\"], timeout: 2m }\n";
    let sb = scheduled_quickstart("*/4 * * * * *", slow);
    let text = sb.read("runbooks/quickstart.yaml");
    for i in 2..=3 {
        sb.write(
            &format!("runbooks/q{i}.yaml"),
            text.replace("name: quickstart-rag", &format!("name: quickstart-rag-{i}")),
        );
    }
    sb.write(
        "drillbook.yaml",
        format!(
            "runbooks: runbooks\nstate: postgres://postgres@127.0.0.1:{}/history\nlease: 2s\nconcurrency: 1\n\
             http: {{ listen: \"127.0.0.1:0\" }}\n",
            pg.port
        ),
    );
    assert_eq!(sb.run(&["history"]).code, 0);
    let daemons: Vec<Daemon> = (0..2).map(|_| start(&sb)).collect();
    std::thread::sleep(Duration::from_secs(20));
    let completed = |h: &[serde_json::Value]| -> Vec<(String, String)> {
        let mut done: Vec<(String, String)> = h
            .iter()
            .filter(|r| r["status"] == "passed" || r["status"] == "failed")
            .map(|r| (r["runbook"].as_str().unwrap().to_string(), r["scheduled_for"].as_str().unwrap().to_string()))
            .collect();
        done.sort();
        done
    };
    let first = sb.history();
    let done = completed(&first);
    assert!(done.len() >= 6, "drills ran: {first:#?}");
    let mut unique = done.clone();
    unique.dedup();
    assert_eq!(unique.len(), done.len(), "a fire time completed twice: {first:#?}");
    assert!(first.iter().all(|r| r["status"] != "interrupted"), "no daemon died, nothing was taken over: {first:#?}");

    // The store goes away for three leases, then comes back.
    pg.pg_ctl("stop");
    std::thread::sleep(Duration::from_secs(6));
    pg.pg_ctl("start");
    std::thread::sleep(Duration::from_secs(12));
    for d in daemons {
        let (code, err) = stop(d, Duration::from_secs(30));
        assert_eq!(code, 0, "{err}");
    }
    let history = sb.history();
    let done = completed(&history);
    let mut unique = done.clone();
    unique.dedup();
    assert_eq!(unique.len(), done.len(), "a fire time completed twice across the outage: {history:#?}");
    assert!(done.len() > completed(&first).len(), "drills ran again after the store came back: {history:#?}");
    sb.assert_no_leftovers();
}

// fault: three daemons racing for the same fire times on one PostgreSQL history | each fire time exactly once, none lost | (claims) | passed or aborted rows only, work shared, TMPDIR empty
#[test]
fn three_daemons_on_one_postgresql_run_every_fire_time_exactly_once() {
    let db = crate::servers::SystemDb::create("drillbook_claims");
    let sb = scheduled_quickstart("* * * * * *", "");
    sb.write(
        "drillbook.yaml",
        format!(
            "runbooks: runbooks\nstate: postgres://postgres@127.0.0.1:5432/{}\nlease: 5s\nhttp: {{ listen: \"127.0.0.1:0\" }}\n",
            db.name
        ),
    );
    // Create the tables once, so the three start on an existing store.
    assert_eq!(sb.run(&["history"]).code, 0);
    let daemons: Vec<Daemon> = (0..3).map(|_| start(&sb)).collect();
    std::thread::sleep(Duration::from_secs(60));
    for d in daemons {
        let (code, err) = stop(d, Duration::from_secs(30));
        assert_eq!(code, 0, "{err}");
    }
    let history = sb.history();
    let mut fires: Vec<chrono::DateTime<chrono::FixedOffset>> = history
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["scheduled_for"].as_str().expect("scheduled")).unwrap())
        .collect();
    fires.sort();
    let before = fires.len();
    fires.dedup();
    assert_eq!(fires.len(), before, "a fire time ran more than once: {history:#?}");
    let span = (*fires.last().unwrap() - *fires.first().unwrap()).num_seconds() + 1;
    assert!(fires.len() >= 55, "about one drill per second over a minute, got {}", fires.len());
    assert_eq!(fires.len() as i64, span, "no fire time between the first and the last was lost: {fires:?}");
    assert!(history.iter().all(|r| r["status"] == "passed" || r["status"] == "aborted"), "{history:#?}");
    let owners = db.sql("select count(distinct owner) from claims");
    assert!(owners.trim().parse::<u32>().unwrap_or(0) >= 2, "the work was shared, {owners} daemons ran drills");
    sb.assert_no_leftovers();
}

#[test]
fn a_drill_waiting_for_a_slot_is_recorded_as_queued() {
    let check = "  - name: slow\n    command: { run: [sleep, \"3\"], timeout: 2m }\n";
    let sb = scheduled_quickstart("*/2 * * * * *", check);
    let second = sb.read("runbooks/quickstart.yaml").replace("name: quickstart-rag", "name: quickstart-rag-copy");
    sb.write("runbooks/copy.yaml", second);
    sb.write("drillbook.yaml", "runbooks: runbooks\nconcurrency: 1\nhttp: { listen: \"127.0.0.1:0\" }\n");
    let daemon = start(&sb);
    let h = wait_for(&sb, Duration::from_secs(20), "a queued drill", |h| {
        h.iter().any(|r| r["status"] == "queued") && h.iter().any(|r| r["status"] == "running")
    });
    let queued = h.iter().find(|r| r["status"] == "queued").unwrap();
    assert!(queued["scheduled_for"].is_string(), "{queued}");
    let (code, err) = stop(daemon, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let h = sb.history();
    assert!(h.iter().all(|r| r["status"] != "queued" && r["status"] != "running"), "every row has an outcome: {h:#?}");
    sb.assert_no_leftovers();
}

// fault: SIGKILL of the daemon while a scratch database exists on a shared server | interrupted | names `database drillbook_<run-id>` it dropped | scratch database dropped, TMPDIR empty
#[test]
fn after_kill_9_the_scratch_database_on_a_server_is_dropped_by_the_next_daemon() {
    let db = crate::servers::SystemDb::create("drillbook_sweep_src");
    db.tool("pgbench", &["-i", "-q", "-s", "1", &db.name]);
    let sb = Sandbox::new();
    let dump = sb.path("backups/bench.dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    db.tool("pg_dump", &["-Fc", "-f", dump.to_str().unwrap(), &db.name]);
    sb.write(
        "drillbook.yaml",
        "runbooks: runbooks\nhttp: { listen: \"127.0.0.1:0\" }\n\
         scratch:\n  main: { type: postgres, url: \"postgres://postgres@127.0.0.1:5432/postgres\" }\n",
    );
    sb.write(
        "runbooks/bench.yaml",
        format!(
            "version: 1\nname: bench-server\nowner: t\nschedule: \"*/2 * * * * *\"\nasset: {{ name: bench, kind: relational }}\n\
             source: {{ path: {}/, pick: bench.dump }}\nrestore: {{ adapter: postgres, scratch: \"server:main\" }}\n\
             verify:\n  - name: slow\n    command: {{ run: [sleep, \"60\"], timeout: 2m }}\n",
            sb.path("backups").display()
        ),
    );
    let daemon = start(&sb);
    let h = wait_for(&sb, Duration::from_secs(30), "a running drill", |h| h.iter().any(|r| r["status"] == "running"));
    let run_id = h.iter().find(|r| r["status"] == "running").unwrap()["run_id"].as_str().unwrap().to_string();
    let scratch_db = format!("drillbook_{}", run_id.replace('-', "_"));
    let exists =
        || db.sql(&format!("select count(*) from pg_database where datname = '{scratch_db}'")).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while exists() != "1" {
        assert!(Instant::now() < deadline, "the drill never created {scratch_db}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    daemon.kill_9();
    assert_eq!(exists(), "1", "the killed drill left its scratch database (the test's premise)");

    let h = recover_with_a_new_daemon(&sb, "runbooks/bench.yaml", &run_id);
    assert_eq!(exists(), "0", "the next daemon dropped {scratch_db}");
    let row = h.iter().find(|r| r["run_id"] == run_id.as_str()).unwrap();
    assert!(
        row["failure_reasons"][0].as_str().unwrap_or_default().contains(&format!("database {scratch_db}")),
        "{row}"
    );
    sb.assert_no_leftovers();
}
