//! Every failure mode ends as a failed drill with a precise reason, a history row and no
//! leftovers — never a panic, a hang or exit 0.

use std::time::{Duration, Instant};

use crate::support::{Run, Sandbox, TarBuilder, files_runbook, gzip, sha256_hex, zstd};

/// Runs a drill expected to fail; checks exit 1, the reason, the history row and cleanup.
pub(crate) fn fails_with(sb: &Sandbox, runbook: &str, reason: &str) -> (Run, serde_json::Value) {
    let (run, report) = sb.drill(runbook);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(report["verdict"], "failed", "{run}");
    let reasons: Vec<&str> = report["failure_reasons"].as_array().unwrap().iter().filter_map(|r| r.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains(reason)), "no reason containing {reason:?} in {reasons:#?}\n{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    let history = sb.history();
    let row =
        history.iter().find(|h| h["run_id"] == report["run_id"]).unwrap_or_else(|| panic!("no history row\n{run}"));
    assert_eq!(row["status"], "failed");
    assert!(row["finished_at"].is_string());
    sb.assert_no_leftovers();
    (run, report)
}

pub(crate) fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}"))
}

// fault: the backup object is missing | failed | `locate: no backup under local:…` (restore skipped) | TMPDIR empty, history row
#[test]
fn missing_backup() {
    let sb = Sandbox::quickstart();
    std::fs::remove_file(sb.path("quickstart/backups/rag-2026-11-29.tar.zst")).unwrap();
    let (_, report) = fails_with(&sb, "quickstart.yaml", "locate: no backup under local:");
    assert_eq!(step(&report, "locate")["status"], "failed");
    assert_eq!(step(&report, "restore")["status"], "skipped");
}

// fault: the backup folder, or a required checksum sidecar, is missing | failed | `… does not exist`, `checksum file local:… is missing` | TMPDIR empty, history row
#[test]
fn missing_backup_folder_and_missing_sidecar() {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "path: quickstart/backups/", "path: quickstart/nowhere/");
    fails_with(&sb, "quickstart.yaml", "does not exist");
    let sb = Sandbox::quickstart();
    std::fs::remove_file(sb.path("quickstart/backups/rag-2026-11-29.tar.zst.sha256")).unwrap();
    fails_with(&sb, "quickstart.yaml", "checksum file local:");
}

/// Qdrant writes `<snapshot>.checksum` (the hex SHA-256 alone) beside a snapshot: a sidecar too,
/// when there is no `.sha256`; a wrong one fails like any other.
// fault: a Qdrant `.checksum` sidecar with the wrong digest, then none at all | failed | `integrity: sha256 mismatch`, `….sha256 is missing (nor local:….checksum)` | TMPDIR empty, history row
#[test]
fn a_qdrant_style_checksum_sidecar_is_read_when_there_is_no_sha256() {
    let sb = Sandbox::quickstart();
    let sidecar = sb.read("quickstart/backups/rag-2026-11-29.tar.zst.sha256");
    let hash = sidecar.split_whitespace().next().unwrap().to_string();
    std::fs::remove_file(sb.path("quickstart/backups/rag-2026-11-29.tar.zst.sha256")).unwrap();
    sb.write("quickstart/backups/rag-2026-11-29.tar.zst.checksum", &hash);
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["backup"]["expected_sha256"], hash, "the .checksum is not taken for a backup");
    sb.write("quickstart/backups/rag-2026-11-29.tar.zst.checksum", "ab".repeat(32));
    fails_with(&sb, "quickstart.yaml", "integrity: sha256 mismatch");
    std::fs::remove_file(sb.path("quickstart/backups/rag-2026-11-29.tar.zst.checksum")).unwrap();
    fails_with(&sb, "quickstart.yaml", ".tar.zst.sha256 is missing (nor local:");
}

// fault: the backup's bytes differ from its sidecar | failed | `integrity: sha256 mismatch` (provision skipped) | TMPDIR empty, history row
#[test]
fn checksum_mismatch() {
    let sb = Sandbox::quickstart();
    sb.write(
        "quickstart/backups/rag-2026-11-29.tar.zst.sha256",
        format!("{}  rag-2026-11-29.tar.zst\n", "ab".repeat(32)),
    );
    let (_, report) = fails_with(&sb, "quickstart.yaml", "integrity: sha256 mismatch");
    assert_eq!(report["backup"]["expected_sha256"], "ab".repeat(32));
    assert_eq!(step(&report, "provision")["status"], "skipped");
}

// fault: an archive truncated before its checksum was taken | failed | `unpack: corrupt or truncated zstd data` | TMPDIR empty, history row
#[test]
fn truncated_archive_with_matching_checksum() {
    // The backup was truncated before its checksum was taken: integrity passes, unpack fails.
    let sb = Sandbox::quickstart();
    let p = sb.path("quickstart/backups/rag-2026-11-29.tar.zst");
    let bytes = std::fs::read(&p).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    std::fs::write(&p, cut).unwrap();
    sb.write(
        "quickstart/backups/rag-2026-11-29.tar.zst.sha256",
        format!("{}  rag-2026-11-29.tar.zst\n", sha256_hex(cut)),
    );
    fails_with(&sb, "quickstart.yaml", "unpack: corrupt or truncated zstd data");
}

// fault: an archive truncated after its checksum was taken | failed | `integrity: sha256 mismatch` | TMPDIR empty, history row
#[test]
fn truncated_archive_without_new_checksum_is_a_checksum_failure() {
    let sb = Sandbox::quickstart();
    let p = sb.path("quickstart/backups/rag-2026-11-29.tar.zst");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1000]).unwrap();
    fails_with(&sb, "quickstart.yaml", "integrity: sha256 mismatch");
}

// fault: bit flips inside a gzip or a zstd archive | failed | `unpack: corrupt or truncated gzip data` (zstd alike) | TMPDIR empty, history row
#[test]
fn corrupt_archive() {
    let text: String = (0..50_000).map(|i| format!("line {i} of a document\n")).collect();
    let tar = TarBuilder::new().file("a.txt", text.as_bytes()).finish();
    // gzip carries a CRC: flipped bits anywhere are caught while unpacking.
    let mut gz = gzip(&tar);
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let sb = Sandbox::new();
    sb.write("backups/docs.tar.gz", &gz);
    sb.write("rb.yaml", files_runbook("corrupt-gz", ""));
    fails_with(&sb, "rb.yaml", "unpack: corrupt or truncated gzip data");
    // zstd: a damaged block header.
    let mut zs = zstd(&tar);
    for b in &mut zs[6..14] {
        *b ^= 0xff;
    }
    let sb = Sandbox::new();
    sb.write("backups/docs.tar.zst", &zs);
    sb.write("rb.yaml", files_runbook("corrupt-zst", ""));
    fails_with(&sb, "rb.yaml", "unpack: corrupt or truncated zstd data");
}

// fault: hostile entries: `..`, absolute paths, symlinks and hard links out of the folder, device files | failed | `tar entry … escapes the scratch dir`, `… pointing out of the scratch dir`, `… is a device file` | nothing written outside, TMPDIR empty, history row
#[test]
fn tar_slip_and_hostile_entries_are_refused() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            TarBuilder::new().file("ok.txt", b"x").file("../evil.txt", b"x").finish(),
            "tar entry `../evil.txt` escapes the scratch dir",
        ),
        (
            "absolute",
            TarBuilder::new().file("/tmp/evil.txt", b"x").finish(),
            "tar entry `/tmp/evil.txt` escapes the scratch dir",
        ),
        (
            "symlink",
            TarBuilder::new().link(tar::EntryType::Symlink, "etc", "../../../../etc").finish(),
            "is a symlink pointing out of the scratch dir",
        ),
        (
            "symlink-abs",
            TarBuilder::new().link(tar::EntryType::Symlink, "passwd", "/etc/passwd").finish(),
            "is a symlink pointing out of the scratch dir",
        ),
        (
            "hardlink",
            TarBuilder::new().link(tar::EntryType::Link, "shadow", "../../etc/shadow").finish(),
            "is a hard link pointing out of the scratch dir",
        ),
        ("device", TarBuilder::new().device("dev/null2").finish(), "tar entry `dev/null2` is a device file"),
    ];
    for (name, tar, reason) in cases {
        let sb = Sandbox::new();
        sb.write("backups/docs.tar.gz", gzip(&tar));
        sb.write("rb.yaml", files_runbook(name, ""));
        fails_with(&sb, "rb.yaml", reason);
        assert!(!sb.tmp.parent().unwrap().join("evil.txt").exists());
    }
}

// fault: a decompression bomb (64 MiB of zeros in a few KiB) | failed | `unpack: expansion beyond the limit` | TMPDIR empty, history row
#[test]
fn expansion_bomb_is_refused() {
    let sb = Sandbox::new();
    // 64 MiB of zeros compress to a few KiB: far beyond 50× the compressed size.
    let zeros = vec![0u8; 64 << 20];
    sb.write("backups/bomb.tar.zst", zstd(&TarBuilder::new().file("zeros.bin", &zeros).finish()));
    sb.write("rb.yaml", files_runbook("bomb", ""));
    fails_with(&sb, "rb.yaml", "unpack: expansion beyond the limit");
    // A runbook that knows its data is that compressible raises the limit.
    let raised = files_runbook("bomb", "").replace("  match: \"*\"\n", "  match: \"*\"\n  max_expansion: 100000\n");
    sb.write("raised.yaml", raised);
    let (run, report) = sb.drill("raised.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["steps"][3]["name"], "unpack");
    assert_eq!(report["steps"][3]["bytes"], 64 << 20);
    sb.write(
        "zero.yaml",
        files_runbook("bomb", "").replace("  match: \"*\"\n", "  match: \"*\"\n  max_expansion: 0\n"),
    );
    let r = sb.run(&["run", "zero.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("source.max_expansion: must be at least 1"), "{r}");
}

// fault: restored data below a check's expectation | failed | `verify: check … failed: observed 200, expected ">= 10000"` | the other checks still ran, teardown passed, TMPDIR empty
#[test]
fn failed_expectation() {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "expect: \">= 200\"", "expect: \">= 10000\"");
    let (_, report) = fails_with(
        &sb,
        "quickstart.yaml",
        "verify: check `documents restored` failed: observed 200, expected \">= 10000\"",
    );
    let c = &report["checks"][0];
    assert_eq!(c["status"], "failed");
    assert_eq!(c["observed"], 200);
    // The other checks still ran, and teardown happened.
    assert_eq!(report["checks"].as_array().unwrap().len(), 10);
    assert_eq!(step(&report, "teardown")["status"], "passed");
}

// fault: a check that cannot be evaluated (a query on a missing table) | failed (check `error`, never a pass) | `check … could not be evaluated: query failed` | TMPDIR empty, history row
#[test]
fn check_that_cannot_be_evaluated_is_an_error_not_a_pass() {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "select count(*) from documents\n", "select count(*) from no_such_table\n");
    let (_, report) =
        fails_with(&sb, "quickstart.yaml", "check `documents restored` could not be evaluated: query failed");
    assert_eq!(report["checks"][0]["status"], "error");
}

// fault: the newest backup older than the RPO | failed | `objective: RPO breached: the newest backup is … old` | TMPDIR empty, history row
#[test]
fn rpo_breach() {
    let sb = Sandbox::quickstart();
    let p = sb.path("quickstart/backups/rag-2026-11-29.tar.zst");
    let forty_days_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 86400);
    std::fs::File::options().write(true).open(&p).unwrap().set_modified(forty_days_ago).unwrap();
    let (_, report) = fails_with(&sb, "quickstart.yaml", "objective: RPO breached: the newest backup is");
    assert_eq!(report["objectives"]["rpo"]["met"], false);
    assert!(report["objectives"]["rpo"]["measured_s"].as_f64().unwrap() > 39.0 * 86400.0);
    // Everything else passed: only the objective failed the drill.
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["status"] == "passed"));
}

fn pids_with_marker(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(marker)
        {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

// fault: a check hangs past the drill timeout | failed | `… timed out after 3s (drill timeout 3s)` | the check's whole process group killed, teardown passed, TMPDIR empty
#[test]
fn drill_timeout_kills_the_check_process_group_and_tears_down() {
    let sb = Sandbox::quickstart();
    let marker = format!("drillbook-timeout-{}", std::process::id());
    sb.edit(
        "quickstart.yaml",
        "timeouts: { step: 2m, drill: 5m }",
        // A grandchild sleeping long: the whole group must die, not just `sh`.
        "timeouts: { step: 3s, drill: 3s }",
    );
    let text = sb.read("quickstart.yaml").replace(
        "verify:\n",
        &format!("verify:\n  - name: slow script\n    command: {{ run: [sh, -c, \"sleep 300 & sleep 301; echo {marker}\"] }}\n"),
    );
    sb.write("quickstart.yaml", text);
    let t = Instant::now();
    let (_, report) = fails_with(&sb, "quickstart.yaml", "timed out after");
    assert!(t.elapsed() < Duration::from_secs(30), "the drill took {:?}", t.elapsed());
    assert!(report["failure_reasons"][0].as_str().unwrap().contains("timeout 3s"), "{report:#}");
    assert_eq!(step(&report, "teardown")["status"], "passed");
    std::thread::sleep(Duration::from_millis(300));
    let left = pids_with_marker(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

// fault: a command check hangs past its own timeout | failed | `check hangs failed: observed "timed out"` | TMPDIR empty, history row
#[test]
fn command_check_timeout_is_a_failed_check() {
    let sb = Sandbox::quickstart();
    let text = sb
        .read("quickstart.yaml")
        .replace("verify:\n", "verify:\n  - name: hangs\n    command: { run: [sleep, \"30\"], timeout: 1s }\n");
    sb.write("quickstart.yaml", text);
    let (_, report) = fails_with(&sb, "quickstart.yaml", "check `hangs` failed: observed \"timed out\"");
    assert_eq!(report["checks"][0]["status"], "failed");
}

// fault: SIGINT to `drillbook run` mid-drill | aborted, exit 1 | `aborted: …` | teardown passed, TMPDIR empty, history row
#[test]
fn interrupt_aborts_tears_down_and_records() {
    let sb = Sandbox::quickstart();
    let text = sb
        .read("quickstart.yaml")
        .replace("verify:\n", "verify:\n  - name: slow\n    command: { run: [sleep, \"60\"] }\n");
    sb.write("quickstart.yaml", text);
    let child = sb
        .command(&["run", "quickstart.yaml", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(15), "took {:?} to stop", t.elapsed());
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["failure_reasons"].to_string().contains("aborted"), "{report:#}");
    assert_eq!(step(&report, "teardown")["status"], "passed");
    let h = sb.history();
    assert_eq!(h[0]["status"], "aborted");
    sb.assert_no_leftovers();
}

// fault: a secret printed by a check | passed (redacted) | `[redacted]` where the secret was | secret absent from report, logs, history
#[test]
fn secrets_never_reach_reports_logs_or_history() {
    let secret = "s3cr3t-Value-4711";
    let sb = Sandbox::quickstart().env("DRILL_TOKEN", secret);
    let text = sb.read("quickstart.yaml").replace(
        "verify:\n",
        "verify:\n  - name: leaks its token\n    command: { run: [sh, -c, \"echo token=$TOKEN; echo $TOKEN >&2; exit 3\"], env: { TOKEN: \"${env:DRILL_TOKEN}\" } }\n",
    );
    sb.write("quickstart.yaml", text);
    let (run, report) = fails_with(&sb, "quickstart.yaml", "check `leaks its token` failed: observed \"exit 3\"");
    assert!(report["checks"][0]["detail"].as_str().unwrap().contains("[redacted]"), "{report:#}");
    let mut everything = format!("{}{}", run.stdout, run.stderr);
    for e in walk(&sb.root) {
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(&e).unwrap()));
    }
    let human = sb.run(&["history"]);
    everything.push_str(&human.stdout);
    assert!(!everything.contains(secret), "the secret leaked");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// fault: a corrupt SQLite file | failed | `restore: …` (SQLite's own error) | TMPDIR empty, history row
#[test]
fn corrupt_sqlite_database_fails_restore() {
    let sb = Sandbox::new();
    let mut db = b"SQLite format 3\0".to_vec();
    db.extend(vec![0xffu8; 8192]);
    sb.write("backups/db.sqlite", &db);
    sb.write(
        "rb.yaml",
        "version: 1\nname: broken-db\nowner: sre\nasset: { name: db, kind: relational }\nsource: { path: backups/ }\nrestore: { adapter: sqlite }\nverify:\n  - name: n\n    sql: select 1\n    expect: \"== 1\"\n",
    );
    fails_with(&sb, "rb.yaml", "restore: ");
}
