//! Whole-stack drills (`restores:`): several stores restored in one drill, each check on the
//! restore it names, every scratch torn down in reverse order on every path.

use crate::support::Sandbox;

/// The quickstart sample as a stack: documents and config from the one archive (`from:`), and
/// the vectors from a backup of their own (a copy of the SQLite file, as a separate job would
/// write it).
fn stack_sandbox(restores: &str, parallel: u32) -> Sandbox {
    let sb = Sandbox::quickstart();
    let archive = std::fs::read(sb.path("quickstart/backups/rag-2026-11-29.tar.zst")).expect("archive");
    let tar = zstd::decode_all(&archive[..]).expect("zstd");
    let mut entries = tar::Archive::new(&tar[..]);
    for entry in entries.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_str() == Some("docs.sqlite") {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
            sb.write("vectors/rag.sqlite", bytes);
        }
    }
    sb.write(
        "stack.yaml",
        format!(
            r#"version: 1
name: rag-stack
owner: search-platform
asset: {{ name: rag, kind: vector-store }}
objectives: {{ rpo: 30d }}
source: {{ path: quickstart/backups/, match: "*.tar.zst", checksum: sidecar }}
parallel: {parallel}
restores:
{restores}
verify:
  - name: documents restored
    on: docs
    sql: select count(*) from documents
    expect: ">= 200"
  - name: config names the embedding model
    on: config
    config_parse: {{ path: "*", require: [embedding.model, embedding.dim] }}
"#
        ),
    );
    sb
}

const THREE: &str = r#"  - name: docs
    adapter: sqlite
    file: docs.sqlite
  - name: config
    adapter: files
    from: config
  - name: vectors
    adapter: sqlite
    source: { path: vectors/rag.sqlite }"#;

/// `(name, restore)` of every step, in report order.
fn lanes(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["restore"].as_str().unwrap_or("").to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_stack_restores_each_store_and_runs_each_check_on_the_restore_it_names() {
    // The vectors are an asset of their own (another team's store, on the asset map).
    let three = THREE.replace(
        "    source: { path: vectors/rag.sqlite }",
        "    source: { path: vectors/rag.sqlite }\n    asset: { name: rag-vectors, kind: vector-store, system: sqlite }",
    );
    let sb = stack_sandbox(&three, 2);
    sb.write(
        "stack.yaml",
        sb.read("stack.yaml")
            + "  - name: vectors intact\n    on: vectors\n    vector_integrity: { table: chunks, column: embedding, dim: 16, encoding: f32le, min_norm: 0.99, max_norm: 1.01 }\n",
    );
    let (run, report) = sb.drill("stack.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["verdict"], "passed", "{run}");

    // Each restore, its adapter and its backup: the archive read once for two of them, the
    // vectors' own file for the third.
    let restores = report["restores"].as_array().unwrap();
    let names: Vec<&str> = restores.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docs", "config", "vectors"]);
    let adapters: Vec<&str> = restores.iter().map(|r| r["adapter"].as_str().unwrap()).collect();
    assert_eq!(adapters, ["sqlite", "files", "sqlite"]);
    assert!(restores.iter().all(|r| r["status"] == "passed"), "{restores:#?}");
    let archive = std::fs::read(sb.path("quickstart/backups/rag-2026-11-29.tar.zst")).unwrap();
    let vectors = std::fs::read(sb.path("vectors/rag.sqlite")).unwrap();
    assert_eq!(restores[0]["backup"]["sha256"], crate::support::sha256_hex(&archive));
    assert_eq!(restores[1]["backup"]["sha256"], restores[0]["backup"]["sha256"]);
    assert_eq!(restores[2]["backup"]["sha256"], crate::support::sha256_hex(&vectors));

    // The archive's steps are the drill's own; each restore's are in its lane; the vectors'
    // backup is fetched in its lane.
    let steps = lanes(&report);
    let fetches: Vec<&str> = steps.iter().filter(|s| s.0 == "fetch").map(|s| s.1.as_str()).collect();
    assert_eq!(fetches, ["", "vectors"], "{steps:?}");
    for lane in ["docs", "config", "vectors"] {
        for step in ["provision", "restore"] {
            assert!(steps.iter().any(|s| s.0 == step && s.1 == lane && s.2 == "passed"), "{lane} {step}: {steps:?}");
        }
    }
    // Teardown: the last restore first.
    let teardowns: Vec<&str> = steps.iter().filter(|s| s.0 == "teardown").map(|s| s.1.as_str()).collect();
    assert_eq!(teardowns, ["vectors", "config", "docs"], "{steps:?}");

    // Checks name their restore; the config check ran on the `config` folder alone.
    let checks = report["checks"].as_array().unwrap();
    let on: Vec<&str> = checks.iter().map(|c| c["restore"].as_str().unwrap()).collect();
    assert_eq!(on, ["docs", "config", "vectors"]);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");

    // The signed statement names both backups.
    let folder = sb.path(&format!("drill-reports/rag-stack/{}", report["run_id"].as_str().unwrap()));
    let envelope: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("report.dsse.json")).unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let digests: Vec<&str> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("annotations").is_none())
        .map(|s| s["digest"]["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [crate::support::sha256_hex(&archive), crate::support::sha256_hex(&vectors)]);
    let verified = sb.run(&["report", "verify", folder.join("report.dsse.json").to_str().unwrap()]);
    assert_eq!(verified.code, 0, "{verified}");
    let html = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(html.contains("vectors: restore"), "the timeline names each lane");
    sb.assert_no_leftovers();
    assert_eq!(restores[2]["asset"]["name"], "rag-vectors");
    assert!(restores[0].get("asset").is_none(), "{restores:#?}");

    // The asset map lists the stack's asset and the restore's, both proven by this drill.
    let assets = sb.run(&["assets", "stack.yaml", "--output", "json"]);
    assert_eq!(assets.code, 0, "{assets}");
    let rows: serde_json::Value = serde_json::from_str(&assets.stdout).unwrap();
    let rows: Vec<(&str, &str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["asset"].as_str().unwrap(), r["restore"].as_str().unwrap_or("-"), r["coverage"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [("rag", "-", "proven"), ("rag-vectors", "vectors", "proven")]);

    // On-call reads the stack as one checklist, restore by restore.
    let explained = sb.run(&["explain", "stack.yaml"]);
    assert_eq!(explained.code, 0, "{explained}");
    for want in [
        "[docs] ",
        "[config] Take `config` from the unpacked backup",
        "[vectors] Locate the newest backup under `vectors/rag.sqlite`",
        "Tear every scratch copy down, the last restored first",
        "restore `vectors` brings back: rag-vectors (vector-store)",
    ] {
        assert!(explained.stdout.contains(want), "{want:?} missing:\n{explained}");
    }
}

// fault: one restore of a stack of three fails | failed | `[broken] …: \`not-in-the-archive.sqlite\` is not in the backup …`; the next restore `skipped: never started (restore \`broken\` failed)` | TMPDIR empty, the restored one torn down, history row
#[test]
fn one_failed_restore_stops_the_stack_and_tears_down_what_started() {
    // One at a time, so the order is known: docs restores, `broken` fails, config never starts.
    let sb = stack_sandbox(
        r#"  - name: docs
    adapter: sqlite
    file: docs.sqlite
  - name: broken
    adapter: sqlite
    file: not-in-the-archive.sqlite
  - name: config
    adapter: files
    from: config"#,
        1,
    );
    let (run, report) = sb.drill("stack.yaml");
    assert_eq!(run.code, 1, "{run}");
    let status: Vec<&str> =
        report["restores"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["passed", "failed", "skipped"], "{run}");
    let reasons = report["failure_reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let reason = reasons[0].as_str().unwrap();
    assert!(reason.starts_with("[broken] ") && reason.contains("not-in-the-archive.sqlite"), "{reason}");
    let steps = lanes(&report);
    let never: Vec<&(String, String, String)> = steps.iter().filter(|s| s.1 == "config").collect();
    assert!(!never.is_empty() && never.iter().all(|s| s.2 == "skipped"), "{steps:?}");
    let detail = report["steps"].as_array().unwrap().iter().find(|s| s["restore"] == "config").unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(detail, "skipped: never started (restore `broken` failed)");
    assert!(steps.iter().any(|s| s.0 == "verify" && s.2 == "skipped"), "{steps:?}");
    assert!(steps.iter().any(|s| s.0 == "teardown" && s.1 == "docs" && s.2 == "passed"), "{steps:?}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 0);
    assert_eq!(sb.history()[0]["status"], "failed");
    sb.assert_no_leftovers();
}

// fault: a check names a restore the stack does not have | refused | `verify[1].on: no restore named \`confg\`, did you mean \`config\`?` | nothing run
#[test]
fn a_check_naming_an_unknown_restore_is_invalid_input() {
    let sb = stack_sandbox(THREE, 2);
    sb.edit("stack.yaml", "    on: config\n", "    on: confg\n");
    for args in [&["validate", "stack.yaml"][..], &["run", "stack.yaml"][..]] {
        let r = sb.run(args);
        assert_eq!(r.code, 2, "{r}");
        assert!(r.stderr.contains("stack.yaml:"), "{r}");
        assert!(
            r.stderr.contains(
                "verify[1].on: no restore named `confg`, did you mean `config`? (restores: docs, config, vectors)"
            ),
            "{r}"
        );
    }
    // A check an adapter cannot run names the restore it was given.
    let sb = stack_sandbox(THREE, 2);
    sb.edit("stack.yaml", "    on: docs\n", "    on: config\n");
    let r = sb.run(&["validate", "stack.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("verify[0]: adapter `files` (restore `config`) cannot run `sql` checks"), "{r}");
    sb.assert_no_leftovers();
}

const COHERENCE: &str = r#"  - name: every chunk's document exists
    references:
      from: { on: vectors, sql: select document_id from chunks }
      to: { on: docs, sql: select id from documents }
  - name: every document has chunks
    same_set:
      a: { on: docs, sql: select id from documents }
      b: { on: vectors, sql: select distinct document_id from chunks }
  - name: as many documents as chunked documents
    same_count:
      a: { on: docs, sql: select id from documents }
      b: { on: vectors, sql: select distinct document_id from chunks }
  - name: the config files the index names
    same_set:
      a: { on: config, files: "*" }
      b: { on: docs, sql: "select 'app.yaml' union select 'index.json' union select 'limits.toml'" }
  - name: backups of one moment
    max_skew: { restores: [docs, vectors], max: 1h }
  - name: the config's dimension is the vectors'
    config_matches:
      config: { on: config, file: app.yaml, key: embedding.dim }
      equals: { on: vectors, sql: select length(embedding) / 4 from chunks limit 1 }
"#;

// fault: vectors referencing 7 deleted documents, 768-d against a config of 16, backed up 12 h before the documents | failed | `7 of 1000 values of … not found …, e.g. "gone-0"`; `differs: \`embedding.dim\` …`; `oldest: \`vectors\` …` | TMPDIR empty
#[test]
fn coherence_checks_prove_the_stack_agrees_and_name_what_does_not() {
    let sb = stack_sandbox(THREE, 2);
    sb.write("stack.yaml", sb.read("stack.yaml") + COHERENCE);
    let (run, report) = sb.drill("stack.yaml");
    assert_eq!(run.code, 0, "{run}");
    let checks = report["checks"].as_array().unwrap();
    let kinds: Vec<&str> = checks.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["sql", "config_parse", "references", "same_set", "same_count", "same_set", "max_skew", "config_matches"]
    );
    assert_eq!(checks[7]["status"], "passed", "{:#}", checks[7]);
    let references = &checks[2];
    assert_eq!(references["observed"], serde_json::json!({"missing": 0, "of": 1000}), "{references:#}");
    assert!(references.get("restore").is_none(), "a check across restores names them in its sides");
    assert_eq!(checks[4]["observed"], serde_json::json!({"a": 200, "b": 200}));
    assert_eq!(checks[5]["status"], "passed", "{:#}", checks[5]);

    // Vectors pointing at 7 deleted documents, 768-d, from a backup taken 12 hours before the rest.
    let db = sb.path("vectors/rag.sqlite");
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, os, time\n\
             c = sqlite3.connect(sys.argv[1])\n\
             ids = [r[0] for r in c.execute('select id from chunks order by id limit 7')]\n\
             for n, i in enumerate(ids): c.execute('update chunks set document_id = ? where id = ?', (f'gone-{n}', i))\n\
             c.execute('update chunks set embedding = zeroblob(3072)')\n\
             c.commit(); c.close()\n\
             t = time.time() - 12 * 3600; os.utime(sys.argv[1], (t, t))\n",
        )
        .arg(&db)
        .output()
        .expect("python3");
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let (run, report) = sb.drill("stack.yaml");
    assert_eq!(run.code, 1, "{run}");
    let checks = report["checks"].as_array().unwrap();
    let references = &checks[2];
    assert_eq!(references["status"], "failed");
    assert_eq!(references["observed"], serde_json::json!({"missing": 7, "of": 1000}));
    let detail = references["detail"].as_str().unwrap();
    assert!(detail.starts_with("7 of 1000 values of `select document_id from chunks` on vectors not found in `select id from documents` on docs, e.g. \"gone-"), "{detail}");
    assert_eq!(checks[3]["status"], "failed");
    assert!(
        checks[3]["detail"]
            .as_str()
            .unwrap()
            .contains("7 only in `select distinct document_id from chunks` on vectors"),
        "{:#}",
        checks[3]
    );
    let skew = &checks[6];
    assert_eq!(skew["status"], "failed");
    let apart = skew["observed"].as_u64().unwrap();
    assert!((43_100..43_300).contains(&apart), "{skew:#}");
    assert!(skew["detail"].as_str().unwrap().contains("oldest: `vectors`"), "{skew:#}");
    // The config says 16 dimensions while the vectors now have 768.
    assert_eq!(checks[7]["status"], "failed");
    assert_eq!(checks[7]["observed"], "768");
    assert!(
        checks[7]["detail"].as_str().unwrap().starts_with("differs: `embedding.dim` in app.yaml of config is 16;"),
        "{:#}",
        checks[7]
    );
    let reasons = report["failure_reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r.as_str().unwrap().contains("check `every chunk's document exists` failed")),
        "{reasons:?}"
    );
    sb.assert_no_leftovers();

    // On-call reads the checks across restores after the restores.
    let explained = sb.run(&["explain", "stack.yaml"]);
    assert!(
        explained.stdout.contains("Check \"every chunk's document exists\" across the restores: every value of `select document_id from chunks` on vectors must be among `select id from documents` on docs."),
        "{explained}"
    );
}

#[test]
fn coherence_checks_are_validated_against_the_stack() {
    let sb = stack_sandbox(THREE, 2);
    sb.write("stack.yaml", sb.read("stack.yaml") + COHERENCE);
    sb.edit("stack.yaml", "      to: { on: docs, sql:", "      to: { on: dcos, sql:");
    sb.edit("stack.yaml", "      a: { on: config, files: \"*\" }", "      a: { on: config, sql: select 1 }");
    let r = sb.run(&["validate", "stack.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("verify[2].references.to.on: no restore named `dcos`, did you mean `docs`?"), "{r}");
    sb.edit("stack.yaml", "      to: { on: dcos, sql:", "      to: { on: docs, sql:");
    let r = sb.run(&["validate", "stack.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("verify[5].same_set.a.sql: adapter `files` (restore `config`) answers no `sql` sets; use `files:` or a restore that does"), "{r}");
}

// fault: SIGTERM to `drillbook run` while three PostgreSQL restores of a stack run | aborted, exit 1 | `aborted: …` | every provisioned lane torn down, no process left, TMPDIR empty, history row aborted
#[test]
fn sigterm_while_three_restores_run_tears_every_one_down() {
    let sb = Sandbox::new().with_example("postgres-pgvector");
    let bin = crate::servers::pgvector_bin();
    let restores: String =
        (1..=3).map(|i| format!("  - name: pg{i}\n    adapter: postgres\n    bin_dir: {}\n", bin.display())).collect();
    sb.write(
        "stack.yaml",
        format!(
            "version: 1\nname: pg-stack\nowner: o\nasset: {{ name: a, kind: relational }}\n\
             source: {{ path: postgres-pgvector/backups/, match: \"*.dump.zst\" }}\nparallel: 3\n\
             restores:\n{restores}verify:\n  - name: slow\n    on: pg1\n    command: {{ run: [sleep, \"60\"] }}\n"
        ),
    );
    let child = sb
        .command(&["run", "stack.yaml", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn drillbook");
    // Three scratch clusters up at once (postmasters: `-D … -p PORT -k SOCKET`; initdb's
    // bootstrap backend has `-D … -k` but no port), then the signal.
    let t = std::time::Instant::now();
    let servers = || {
        crate::support::processes_under(&sb.tmp)
            .iter()
            .filter(|p| p.contains(" -D ") && p.contains(" -p ") && p.contains(" -k "))
            .count()
    };
    let mut seen = servers();
    while seen < 3 && t.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        seen = servers();
    }
    assert!(seen >= 3, "three scratch clusters never ran at once: {:?}", crate::support::processes_under(&sb.tmp));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert!(report["failure_reasons"].to_string().contains("aborted"), "{report:#}");
    let steps = lanes(&report);
    // A lane whose provision was cut short cleaned up after itself; one that provisioned is torn down.
    for lane in ["pg1", "pg2", "pg3"] {
        let provisioned = steps.iter().any(|s| s.0 == "provision" && s.1 == lane && s.2 == "passed");
        let torn_down = steps.iter().any(|s| s.0 == "teardown" && s.1 == lane && s.2 == "passed");
        assert_eq!(provisioned, torn_down, "{lane}: {steps:?}");
    }
    assert!(crate::support::processes_under(&sb.tmp).is_empty(), "{:?}", crate::support::processes_under(&sb.tmp));
    sb.assert_no_leftovers();
    assert_eq!(sb.history()[0]["status"], "aborted");
}

/// `parallel: 2` means two restores at once, whichever finishes first: the third starts as
/// soon as the quick one is done, while the slow one still restores.
#[test]
fn a_lane_that_finishes_frees_its_slot_for_the_next_restore() {
    let sb = Sandbox::new();
    sb.write("backups/slow/app.sql", "create table t (id integer);\nselect pg_sleep(3);\n");
    sb.write("backups/quick/a.txt", "a\n");
    sb.write("backups/late/b.txt", "b\n");
    sb.write(
        "stack.yaml",
        format!(
            "version: 1\nname: slots\nowner: o\nasset: {{ name: a, kind: files }}\nparallel: 2\nrestores:\n\
             \x20 - name: slow\n    adapter: postgres\n    bin_dir: {}\n    source: {{ path: backups/slow/ }}\n\
             \x20 - name: quick\n    adapter: files\n    source: {{ path: backups/quick/ }}\n\
             \x20 - name: late\n    adapter: files\n    source: {{ path: backups/late/ }}\n",
            crate::servers::pg15_bin().display()
        ),
    );
    let (run, report) = sb.drill("stack.yaml");
    assert_eq!(run.code, 0, "{run}");
    let at = |lane: &str, step: &str| {
        let s = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["restore"] == lane && s["name"] == step)
            .unwrap_or_else(|| panic!("no {lane} {step}: {report:#}"));
        let start = chrono::DateTime::parse_from_rfc3339(s["started_at"].as_str().unwrap()).unwrap();
        (start, start + chrono::Duration::milliseconds(s["duration_ms"].as_i64().unwrap()))
    };
    let (_, slow_restored) = at("slow", "restore");
    let (late_located, _) = at("late", "locate");
    assert!(
        late_located < slow_restored - chrono::Duration::seconds(1),
        "`late` started at {late_located}, the slow restore ended at {slow_restored}: {:?}",
        lanes(&report)
    );
    sb.assert_no_leftovers();
}

/// `runbooks/examples/rag-stack.yaml`, run as its header says, on the committed samples.
#[test]
fn the_rag_stack_example_runs_as_documented() {
    let sb = Sandbox::new().with_example("rag-stack");
    let (run, report) = sb.drill("rag-stack.yaml");
    assert_eq!(run.code, 0, "{run}");
    let restores: Vec<&str> =
        report["restores"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(restores, ["docs", "corpus", "config", "vectors"]);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    // Both backups dated by their names, so the skew is the sample's, not the checkout's.
    for r in report["restores"].as_array().unwrap() {
        assert_eq!(r["backup"]["taken_at"], "2026-11-29T00:00:00Z", "{r:#}");
    }
    sb.assert_no_leftovers();
}

/// `runbooks/examples/rag-stack-pgvector.yaml`, run as its header says: the vectors restored
/// into a throwaway pgvector cluster beside the document archive's three restores.
#[test]
fn the_pgvector_rag_stack_example_runs_as_documented() {
    let path = format!("{}:{}", crate::servers::pgvector_bin().display(), std::env::var("PATH").unwrap_or_default());
    let sb = Sandbox::new().with_example("rag-stack").with_example("quickstart").env("PATH", &path);
    std::fs::copy(crate::support::examples().join("rag-stack-pgvector.yaml"), sb.path("rag-stack-pgvector.yaml"))
        .unwrap();
    let (run, report) = sb.drill("rag-stack-pgvector.yaml");
    assert_eq!(run.code, 0, "{run}");
    let restores = report["restores"].as_array().unwrap();
    let adapters: Vec<&str> = restores.iter().map(|r| r["adapter"].as_str().unwrap()).collect();
    assert_eq!(adapters, ["sqlite", "files", "files", "postgres"]);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    // The dump is dated by pg_dump's header, the archive by its name: the same night.
    let dated = restores[3]["backup"]["taken_from"].as_str().unwrap();
    assert!(dated.starts_with("its pg_dump archive header"), "{dated}");
    assert_eq!(restores[0]["backup"]["taken_from"], "its name (`time_format`)", "{:#}", restores[0]);
    let skew = checks.iter().find(|c| c["kind"] == "max_skew").unwrap();
    assert!(skew["observed"].as_u64().unwrap() < 3600, "{skew:#}");
    assert_eq!(restores[3]["asset"]["name"], "rag-embeddings");
    sb.assert_no_leftovers();
}

/// The upgrade-readiness drill: one backup restored into PostgreSQL 15 and 17 at once, the
/// same queries asked of both.
#[test]
fn a_version_matrix_restores_one_backup_into_two_postgresql_versions_and_compares_answers() {
    let sb = Sandbox::new();
    sb.write(
        "backups/app-2026-11-29.sql",
        "create table documents (id integer primary key, title text not null);\n\
         insert into documents select g, 'doc ' || g from generate_series(1, 100) g;\n",
    );
    let runbook = |queries: &str| {
        format!(
            "version: 1\nname: pg-upgrade\nowner: o\nasset: {{ name: app, kind: relational }}\n\
             source: {{ path: backups/, match: \"*.sql\" }}\nrestores:\n\
             \x20 - {{ name: pg15, adapter: postgres, bin_dir: {} }}\n\
             \x20 - {{ name: pg17, adapter: postgres, bin_dir: {} }}\nverify:\n\
             \x20 - name: same answers on 15 and 17\n    same_results:\n      restores: [pg15, pg17]\n      queries:\n{queries}",
            crate::servers::pg15_bin().display(),
            crate::servers::pgvector_bin().display()
        )
    };
    let same = "        - select count(*) from documents\n        - select md5(d::text) from documents d order by id\n";
    sb.write("upgrade.yaml", runbook(same));
    let (run, report) = sb.drill("upgrade.yaml");
    assert_eq!(run.code, 0, "{run}");
    let check = &report["checks"][0];
    assert_eq!(check["observed"], serde_json::json!({"queries": 2, "differ": 0}), "{check:#}");
    let restores = report["restores"].as_array().unwrap();
    assert!(restores.iter().all(|r| r["status"] == "passed" && r["adapter"] == "postgres"), "{restores:#?}");

    // A question whose answer depends on the version is named with both answers.
    sb.write(
        "upgrade.yaml",
        runbook(&format!("{same}        - select current_setting('server_version_num')::int / 10000\n")),
    );
    let (run, report) = sb.drill("upgrade.yaml");
    assert_eq!(run.code, 1, "{run}");
    let detail = report["checks"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("query 3 (`select current_setting('server_version_num')::int / 10000`): `pg15` 1 rows, first \"15\" vs `pg17` 1 rows, first \"17\""),
        "{detail}"
    );
    sb.assert_no_leftovers();
}

// fault: a restore's `from:` is a link inside the backup, or missing from it | failed | `[config] provision: \`from: cfg\`: … is a link`, `\`from: nope\` is not in the backup` | TMPDIR empty
#[test]
fn a_from_that_is_a_link_or_missing_fails_its_restore() {
    let sb = Sandbox::new();
    let tar = crate::support::TarBuilder::new()
        .file("real/app.yaml", b"embedding: { dim: 16 }\n")
        .link(tar::EntryType::Symlink, "cfg", "real")
        .finish();
    sb.write("backups/stack.tar", tar);
    let runbook = |from: &str| {
        format!(
            "version: 1\nname: links\nowner: o\nasset: {{ name: a, kind: config }}\nsource: {{ path: backups/stack.tar }}\n\
             restores:\n  - {{ name: real, adapter: files, from: real }}\n  - {{ name: config, adapter: files, from: {from} }}\n"
        )
    };
    sb.write("links.yaml", runbook("cfg"));
    let (run, report) = sb.drill("links.yaml");
    assert_eq!(run.code, 1, "{run}");
    // The cause leads the reasons, whichever lane it is in.
    let config = |report: &serde_json::Value| report["failure_reasons"][0].as_str().unwrap_or_default().to_string();
    let reason = config(&report);
    assert!(reason.starts_with("[config] provision: `from: cfg`: ") && reason.ends_with("is a link"), "{report:#}");
    sb.write("links.yaml", runbook("nope"));
    let (run, report) = sb.drill("links.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert!(config(&report).starts_with("[config] provision: `from: nope` is not in the backup"), "{report:#}");
    sb.assert_no_leftovers();
}

/// The vector databases' side of a stack: the chunks' `document_id` in a Qdrant snapshot and in
/// a Chroma folder (their payload and metadata, read by their own engines) must resolve to a
/// document in MariaDB, the two must index the same documents, and the config's embedding
/// dimension must be each collection's. Then documents missing and a config that says 768.
// fault: Qdrant and Chroma chunks whose documents are gone from MariaDB, a config naming a 768-d model over 64-d collections | failed | `42 of 600 values of \`document_id\` of the points of \`docs\` on qdrant not found in …`; `differs: \`embedding.dim\` … is 768; the dimension of \`docs\` on chroma gives 64` | TMPDIR empty, no process
#[test]
fn vector_databases_give_value_sets_by_payload_field_and_dimension() {
    let sb = crate::chroma::sandbox().with_example("qdrant").with_example("chroma").with_example("mariadb");
    sb.write("config/app.yaml", "embedding:\n  model: all-MiniLM-L6-v2-64\n  dim: 64\n");
    let runbook = |documents: &str| {
        format!(
            r#"version: 1
name: vector-stack
owner: ml-platform
asset: {{ name: rag, kind: vector-store }}
objectives: {{ rpo: 400d }}
restores:
  - name: qdrant
    adapter: qdrant
    source: {{ path: qdrant/backups/, match: "*.snapshot.zst", checksum: sidecar, max_expansion: 1000 }}
  - name: chroma
    adapter: chroma
    source: {{ path: chroma/backups/, match: "*.tar.zst", checksum: sidecar }}
  - name: docs
    adapter: mariadb
    source: {{ path: mariadb/backups/, match: "*.sql.zst", checksum: sidecar }}
  - name: config
    adapter: files
    source: {{ path: config/ }}
verify:
  - name: every Qdrant chunk's document exists
    references:
      from: {{ on: qdrant, points: {{ collection: docs, field: document_id }} }}
      to: {{ on: docs, sql: "{documents}" }}
  - name: every Chroma chunk's document exists
    references:
      from: {{ on: chroma, points: {{ collection: docs, field: document_id }} }}
      to: {{ on: docs, sql: "{documents}" }}
  - name: both vector stores index the same documents
    same_set:
      a: {{ on: qdrant, points: {{ collection: docs, field: document_id }} }}
      b: {{ on: chroma, points: {{ collection: docs, field: document_id }} }}
  - name: as many Qdrant points as ids
    same_count:
      a: {{ on: qdrant, points: {{ collection: docs }} }}
      b: {{ on: docs, sql: "select id from chunks limit 600" }}
  - name: the config's dimension is Qdrant's text vector's
    config_matches:
      config: {{ on: config, file: app.yaml, key: embedding.dim }}
      equals: {{ on: qdrant, dimension: {{ collection: docs, vector: text }} }}
  - name: the config's dimension is Chroma's
    config_matches:
      config: {{ on: config, file: app.yaml, key: embedding.dim }}
      equals: {{ on: chroma, dimension: {{ collection: docs }} }}
"#
        )
    };
    let all = "select concat('doc-', lpad(id - 1, 4, '0')) from documents";
    sb.write("stack.yaml", runbook(all));
    let (run, report) = sb.drill("stack.yaml");
    assert_eq!(run.code, 0, "{run}");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    assert_eq!(checks[0]["observed"], serde_json::json!({"missing": 0, "of": 600}), "{checks:#?}");
    assert_eq!(checks[1]["observed"], serde_json::json!({"missing": 0, "of": 800}), "{checks:#?}");
    assert_eq!(checks[2]["observed"]["a"], 100, "{checks:#?}");
    assert_eq!(checks[3]["observed"], serde_json::json!({"a": 600, "b": 600}), "{checks:#?}");
    assert_eq!(checks[4]["observed"], "64", "{checks:#?}");
    assert!(
        checks[4]["detail"].as_str().unwrap().contains("the dimension of `docs` on qdrant gives 64"),
        "{checks:#?}"
    );

    // Seven documents gone from MariaDB, and a config that names a 768-d model.
    sb.write("config/app.yaml", "embedding:\n  model: all-mpnet-base-v2\n  dim: 768\n");
    sb.write("stack.yaml", runbook(&format!("{all} where id > 7")));
    let (run, report) = sb.drill("stack.yaml");
    assert_eq!(run.code, 1, "{run}");
    let checks = report["checks"].as_array().unwrap();
    let status: Vec<&str> = checks.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["failed", "failed", "passed", "passed", "failed", "failed"], "{checks:#?}");
    // 7 documents × 6 chunks in Qdrant, × 8 in Chroma.
    assert_eq!(checks[0]["observed"], serde_json::json!({"missing": 42, "of": 600}), "{checks:#?}");
    assert_eq!(checks[1]["observed"], serde_json::json!({"missing": 56, "of": 800}), "{checks:#?}");
    let detail = checks[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("42 of 600 values of `document_id` of the points of `docs` on qdrant not found in `select"),
        "{detail}"
    );
    assert!(detail.contains("\"doc-000"), "{detail}");
    assert!(!detail.contains("doc-0007"), "{detail}");
    assert!(
        checks[5]["detail"].as_str().unwrap().starts_with(
            "differs: `embedding.dim` in app.yaml of config is 768; the dimension of `docs` on chroma gives 64"
        ),
        "{checks:#?}"
    );
    assert!(report["failure_reasons"].as_array().unwrap().len() >= 4, "{report:#}");
    sb.assert_no_leftovers();
    assert!(crate::support::processes_under(&sb.path("")).is_empty());

    // A store that cannot answer a set is refused before anything runs: MariaDB has no points.
    sb.write(
        "stack.yaml",
        runbook(all).replace(
            &format!("to: {{ on: docs, sql: \"{all}\" }}"),
            "to: { on: docs, points: { collection: documents } }",
        ),
    );
    let r = sb.run(&["validate", "stack.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("verify[0].references.to.points: adapter `mariadb` (restore `docs`) answers no `points` sets; it answers sql"),
        "{r}"
    );
}
