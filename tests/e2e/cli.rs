//! The CLI contract: validate, explain, schema, history, and exit code 2 for bad input.

use crate::support::{Sandbox, files_runbook};

#[test]
fn invalid_runbook_is_rejected_with_position_and_hint_and_runs_nothing() {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "  file: docs.sqlite", "  fiel: docs.sqlite");
    sb.edit("quickstart.yaml", "expect: \"== 0\"", "expect: \">== 0\"");
    let r = sb.run(&["run", "quickstart.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("quickstart.yaml:25:3: restore.fiel: unknown field, did you mean `file`?"), "{r}");
    assert!(r.stderr.contains("quickstart.yaml:32:13: verify[1].expect: cannot parse \">== 0\""), "{r}");
    // Nothing was executed: no history, no report.
    assert!(!sb.path("drill-reports").exists());
    assert!(!sb.path("drillbook.db").exists(), "a rejected runbook must not create history");
    let v = sb.run(&["validate", "quickstart.yaml"]);
    assert_eq!(v.code, 2, "{v}");
    assert_eq!(v.stderr, r.stderr);
}

#[test]
fn validate_accepts_every_example_and_rejects_duplicate_names() {
    let sb = Sandbox::new();
    let r = sb.run(&["validate", crate::support::examples().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("runbook(s) valid"), "{r}");

    sb.write("rbs/a.yaml", files_runbook("same-name", ""));
    sb.write("rbs/sub/b.yaml", files_runbook("same-name", ""));
    let r = sb.run(&["validate", "rbs"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("rbs/sub/b.yaml:2:7: name: duplicate runbook name `same-name` (also in rbs/a.yaml)"),
        "{r}"
    );
}

#[test]
fn checks_an_adapter_cannot_run_and_unknown_storage_are_input_errors() {
    let sb = Sandbox::new();
    sb.write("a.yaml", files_runbook("files-sql", "verify:\n  - name: n\n    sql: select 1\n    expect: \"== 1\"\n"));
    let r = sb.run(&["run", "a.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("a.yaml: verify[0]: adapter `files` cannot run `sql` checks"), "{r}");

    sb.write(
        "b.yaml",
        files_runbook("s3-missing", "").replace("  path: backups/", "  storage: backupz\n  path: backups/"),
    );
    sb.write("drillbook.yaml", "storage:\n  backups: { type: fs, root: /nonexistent }\n");
    let r = sb.run(&["run", "b.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("no storage profile `backupz` in the config, did you mean `backups`?"), "{r}");
}

#[test]
fn bad_config_is_an_input_error_with_position() {
    let sb = Sandbox::quickstart();
    sb.write("drillbook.yaml", "state: sqlite://x.db\nreprts: ./r\n");
    let r = sb.run(&["run", "quickstart.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("drillbook.yaml:2:1: reprts: unknown field, did you mean `reports`?"), "{r}");
}

#[test]
fn config_file_sets_history_and_reports() {
    let sb = Sandbox::quickstart();
    sb.write("etc/drillbook.yaml", "state: sqlite://state/history.db\nreports: ./evidence\n");
    std::fs::create_dir_all(sb.path("etc/state")).unwrap();
    let r = sb.run(&["run", "quickstart.yaml", "--config", "etc/drillbook.yaml"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(sb.path("etc/state/history.db").exists());
    assert!(sb.path("etc/evidence/quickstart-rag").is_dir());
    let h = sb.run(&["history", "--config", "etc/drillbook.yaml", "--output", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&h.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{h}");
}

#[test]
fn explain_prints_a_numbered_checklist() {
    let sb = Sandbox::quickstart();
    let r = sb.run(&["explain", "quickstart.yaml"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(" 1. [ ] Locate the newest backup under `quickstart/backups/`"), "{r}");
    assert!(r.stdout.contains("sha256sum -c"), "{r}");
    assert!(r.stdout.contains("PRAGMA integrity_check"), "{r}");
    assert!(r.stdout.contains("Check \"semantic search intact\""), "{r}");
    assert!(r.stdout.contains("within 5m (RTO)"), "{r}");
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let sb = Sandbox::new();
    let r = sb.run(&["schema"]);
    assert_eq!(r.code, 0, "{r}");
    let committed = std::fs::read_to_string(crate::support::examples().join("../schema.json")).unwrap();
    assert_eq!(r.stdout, committed, "runbooks/schema.json is stale: run `drillbook schema > runbooks/schema.json`");
}

#[test]
fn files_adapter_restores_a_tree_and_checks_it() {
    let sb = Sandbox::new();
    let tar = crate::support::TarBuilder::new()
        .file("docs/a.md", b"# A\n")
        .file("config/app.yaml", b"model:\n  name: x\n")
        .file("config/bad.json", b"{ not json")
        .finish();
    sb.write("backups/tree.tar.zst", crate::support::zstd(&tar));
    let manifest = format!(
        "{}  docs/a.md\n{}  config/app.yaml\n",
        crate::support::sha256_hex(b"# A\n"),
        crate::support::sha256_hex(b"model:\n  name: x\n")
    );
    sb.write("files.sha256", manifest);
    let verify = "verify:\n  - name: same files\n    files: { manifest: files.sha256, allow_extra: true }\n  - name: yaml config\n    config_parse: { path: \"config/*.yaml\", require: [model.name] }\n  - name: all config\n    config_parse: { path: \"config/*\" }\n";
    sb.write("rb.yaml", files_runbook("tree", verify));
    let (run, report) = sb.drill("rb.yaml");
    assert_eq!(run.code, 1, "{run}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks[0]["status"], "passed", "{run}");
    assert_eq!(checks[1]["status"], "passed", "{run}");
    assert_eq!(checks[2]["status"], "failed", "{run}");
    assert!(checks[2]["detail"].as_str().unwrap().contains("config/bad.json: invalid JSON"), "{run}");
    sb.assert_no_leftovers();
}

/// CI pipelines validate runbooks without production secrets: references must be well-formed
/// and name what exists; only `--resolve` reads them.
#[test]
fn validate_needs_no_secrets_unless_asked_to_resolve_them() {
    let sb = Sandbox::new();
    sb.write(
        "drillbook.yaml",
        "storage:\n  backups: { type: s3, bucket: b, region: us-east-1, endpoint: \"http://127.0.0.1:1\", \
         access_key_id: \"${env:DRILL_S3_KEY}\", secret_access_key: \"${env:DRILL_S3_SECRET}\" }\n\
         scratch:\n  shared: { type: postgres, url: \"postgres://drill@127.0.0.1:5432/postgres\", password: \"${file:/nonexistent/pw}\" }\n",
    );
    sb.write(
        "rb.yaml",
        "version: 1\nname: pg\nowner: sre\nasset: { name: db, kind: relational }\n\
         source: { storage: backups, path: pg/ }\nrestore: { adapter: postgres, scratch: \"server:shared\" }\n",
    );
    let r = sb.run(&["validate", "rb.yaml"]);
    assert_eq!(r.code, 0, "no secret is read without --resolve: {r}");
    let r = sb.run(&["validate", "--resolve", "rb.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("DRILL_S3_KEY"), "{r}");
    let sb = sb.env("DRILL_S3_KEY", "k").env("DRILL_S3_SECRET", "s");
    let r = sb.run(&["validate", "--resolve", "rb.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("/nonexistent/pw"), "the scratch password file is resolved too: {r}");
    // A malformed reference is an error either way.
    sb.edit("drillbook.yaml", "${env:DRILL_S3_KEY}", "${envv:DRILL_S3_KEY}");
    let r = sb.run(&["validate", "rb.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("storage.backups.access_key_id"), "{r}");
}

#[test]
fn version_names_the_commit_and_adapters_and_completions_are_valid_shell() {
    let sb = Sandbox::new();
    let r = sb.run(&["--version"]);
    assert_eq!(r.code, 0, "{r}");
    let first = r.stdout.lines().next().unwrap_or_default();
    let commit = first.split("(commit ").nth(1).map(|c| c.trim_end_matches(')')).unwrap_or_default();
    assert!(commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{r}");
    assert!(r.stdout.contains("adapters: postgres, sqlite, files"), "{r}");
    let r = sb.run(&["completions", "bash"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("validate") && r.stdout.contains("--resolve"), "{r}");
    sb.write("drillbook.bash", &r.stdout);
    let syntax =
        std::process::Command::new("bash").args(["-n", sb.path("drillbook.bash").to_str().unwrap()]).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
}
