//! The contract every adapter passes: provision → restore → checks → teardown, and
//! nothing left behind (no open file in the scratch folder, nothing outside it).
#![allow(clippy::disallowed_methods)] // fixtures made with the real tools

use std::path::Path;
use std::sync::Arc;

use drillbook_adapters::{DrillCx, NoProgress, ScratchTarget, Secrets, Unpacked, build, can_run, run_check};
use drillbook_runbooks::Runbook;
use tokio_util::sync::CancellationToken;

/// One fixture per adapter: a runbook fragment and a way to lay out its unpacked backup.
struct Fixture {
    restore: &'static str,
    verify: &'static str,
    lay_out: fn(&Path) -> Option<std::path::PathBuf>,
}

fn sqlite_db(dir: &Path) -> Option<std::path::PathBuf> {
    let db = dir.join("app.sqlite");
    let status = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("create table t (id integer primary key, v text); insert into t (v) values ('a'), ('b'), ('c');")
        .status()
        .expect("sqlite3 is needed for the fixture: apt-get install sqlite3 (scripts/test-deps.sh)");
    assert!(status.success());
    Some(db)
}

fn tree(dir: &Path) -> Option<std::path::PathBuf> {
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/a.json"), r#"{"model": {"name": "m"}}"#).unwrap();
    None
}

/// A real `pg_dump -Fc` of a `pgbench -i` database, made on the machine's PostgreSQL.
fn pg_dump(dir: &Path) -> Option<std::path::PathBuf> {
    let db = format!("contract_src_{}", std::process::id());
    let pg = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(["-h", "127.0.0.1", "-U", "postgres"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}; install PostgreSQL (scripts/test-deps.sh)"));
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let file = dir.join("bench.dump");
    pg("dropdb", &["--if-exists", &db]);
    pg("createdb", &[&db]);
    pg("pgbench", &["-i", "-q", "-s", "1", &db]);
    pg("pg_dump", &["-Fc", "-f", file.to_str().unwrap(), &db]);
    pg("dropdb", &[&db]);
    Some(file)
}

/// A real RDB: a throwaway `redis-server` gets three keys and `SAVE`s them.
fn redis_rdb(dir: &Path) -> Option<std::path::PathBuf> {
    let src = tempfile::tempdir().unwrap();
    let sock = src.path().join("s.sock");
    let mut server = std::process::Command::new("redis-server")
        .args(["--port", "0", "--save", "", "--appendonly", "no"])
        .arg("--unixsocket")
        .arg(&sock)
        .arg("--dir")
        .arg(src.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is needed for the fixture: apt-get install redis-server (scripts/test-deps.sh)");
    let cli = |args: &[&str]| {
        std::process::Command::new("redis-cli").arg("-s").arg(&sock).args(args).output().map(|o| o.status.success())
    };
    let t = std::time::Instant::now();
    while !sock.exists() || cli(&["PING"]).ok() != Some(true) {
        assert!(t.elapsed().as_secs() < 20, "redis-server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert_eq!(cli(&["SET", k, v]).ok(), Some(true));
    }
    assert_eq!(cli(&["SAVE"]).ok(), Some(true));
    server.kill().unwrap();
    server.wait().unwrap();
    let file = dir.join("dump.rdb");
    std::fs::copy(src.path().join("dump.rdb"), &file).unwrap();
    Some(file)
}

/// A real `mariadb-dump` of a small database on the machine's MariaDB.
fn mariadb_dump(dir: &Path) -> Option<std::path::PathBuf> {
    let db = format!("contract_src_{}", std::process::id());
    let maria = |args: &[&str]| {
        let out = std::process::Command::new("mariadb")
            .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("mariadb: {e}; install MariaDB (scripts/test-deps.sh, .ci/run starts it)"));
        assert!(out.status.success(), "mariadb {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    maria(&["-e", &format!("drop database if exists {db}; create database {db}")]);
    maria(&[
        &db,
        "-e",
        "create table t (id int primary key, v text); insert into t values (1, 'a'), (2, 'b'), (3, 'c')",
    ]);
    let out = std::process::Command::new("mariadb-dump")
        .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root", &db])
        .output()
        .expect("mariadb-dump (scripts/test-deps.sh)");
    assert!(out.status.success());
    maria(&["-e", &format!("drop database {db}")]);
    let file = dir.join("app.sql");
    std::fs::write(&file, out.stdout).unwrap();
    Some(file)
}

/// The committed Chroma sample (made by chromadb, runbooks/examples/chroma/make-sample.sh), unpacked.
fn chroma_folder(dir: &Path) -> Option<std::path::PathBuf> {
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/examples/chroma/backups/rag-chroma-2026-11-29.tar.zst");
    let tar = zstd::decode_all(std::fs::File::open(&archive).expect("the chroma sample")).expect("zstd");
    tar::Archive::new(&tar[..]).unpack(dir.join("chroma")).expect("untar");
    None
}

/// Where scripts/test-deps.sh installs `chroma` (PyPI chromadb, in a venv others can read).
const CHROMA_RESTORE: &str = "restore: { adapter: chroma, bin_dir: /opt/drillbook-test/chroma/bin }";

/// The committed Qdrant sample (made by Qdrant Edge, runbooks/examples/qdrant/make-sample.sh):
/// a collection snapshot, unpacked.
fn qdrant_snapshot(dir: &Path) -> Option<std::path::PathBuf> {
    let engine = Path::new(QDRANT_ENGINE);
    assert!(
        engine.is_file(),
        "no {}: the Qdrant engine is built with drillbook (`cargo build -p drillbook`; `cargo nextest run --workspace` builds it)",
        engine.display()
    );
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runbooks/examples/qdrant/backups/docs-1-2026-11-29-03-00-00.snapshot.zst");
    let tar = zstd::decode_all(std::fs::File::open(&archive).expect("the qdrant sample")).expect("zstd");
    tar::Archive::new(&tar[..]).unpack(dir).expect("untar");
    None
}

/// The Qdrant engine program of this build (`drillbook-qdrant-engine`).
const QDRANT_ENGINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/drillbook-qdrant-engine");
const QDRANT_RESTORE: &str = concat!(
    "restore: { adapter: qdrant, collection: docs, engine: \"",
    env!("CARGO_MANIFEST_DIR"),
    "/../target/debug/drillbook-qdrant-engine\" }"
);

fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            restore: "restore: { adapter: postgres }",
            verify: "  - name: accounts\n    sql: select count(*) from pgbench_accounts\n    expect: \"== 100000\"\n  - name: script\n    command: { run: [sh, -c, \"psql \\\"$DRILL_SCRATCH_URL\\\" -Atc 'select count(*) from pgbench_branches' | grep -qx 1\"] }\n",
            lay_out: pg_dump,
        },
        Fixture {
            restore: "restore: { adapter: sqlite }",
            verify: "  - name: rows\n    sql: select count(*) from t\n    expect: \"== 3\"\n  - name: script\n    command: { run: [sh, -c, \"test -f \\\"$DRILL_SCRATCH_DIR/app.sqlite\\\"\"] }\n",
            lay_out: sqlite_db,
        },
        Fixture {
            restore: "restore: { adapter: redis }",
            verify: "  - name: keys\n    keys: { expect: \"== 3\" }\n  - name: script\n    command: { run_as: redis, run: [sh, -c, \"redis-cli -s \\\"${DRILL_SCRATCH_URL#redis+unix://}\\\" GET b | grep -qx 2\"] }\n",
            lay_out: redis_rdb,
        },
        Fixture {
            restore: "restore: { adapter: mariadb }",
            verify: "  - name: rows\n    sql: select count(*) from t\n    expect: \"== 3\"\n  - name: tables\n    check_tables: {}\n",
            lay_out: mariadb_dump,
        },
        Fixture {
            restore: CHROMA_RESTORE,
            verify: "  - name: chunks\n    points: { collection: docs, expect: \"== 800\" }\n  - name: script\n    command: { run: [sh, -c, \"curl -sf \\\"$DRILL_SCRATCH_URL/api/v2/heartbeat\\\"\"] }\n",
            lay_out: chroma_folder,
        },
        Fixture {
            restore: QDRANT_RESTORE,
            verify: "  - name: chunks\n    points: { collection: docs, expect: \"== 600\" }\n  - name: vectors\n    vector_integrity: { collection: docs, vector: text, dim: 64 }\n",
            lay_out: qdrant_snapshot,
        },
        Fixture {
            restore: "restore: { adapter: files }",
            verify: "  - name: conf\n    config_parse: { path: \"conf/*.json\", require: [model.name] }\n",
            lay_out: tree,
        },
    ]
}

fn open_fds_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(e.path())
            && target.starts_with(dir)
        {
            out.push(target.display().to_string());
        }
    }
    out
}

/// Processes whose command line names a path under `dir` (a scratch server, say).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_adapter_provisions_restores_checks_and_tears_down_cleanly() {
    for f in fixtures() {
        let text = format!(
            "version: 1\nname: contract\nowner: t\nasset: {{ name: a, kind: files }}\nsource: {{ path: x/ }}\n{}\nverify:\n{}",
            f.restore, f.verify
        );
        let rb = Runbook::parse("contract.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        let adapter = build(&rb.restores()[0].adapter);
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("restore");
        std::fs::create_dir(&root).unwrap();
        let single = (f.lay_out)(&root);
        let unpacked = Unpacked {
            root: root.clone(),
            single_file: single,
            format: "raw".into(),
            name: String::new(),
            files: 1,
            bytes: 0,
        };
        let cx = DrillCx {
            run_id: "contract".into(),
            runbook_dir: work.path().into(),
            work_dir: work.path().into(),
            cancel: CancellationToken::new(),
            secrets: Secrets::default(),
            progress: Arc::new(NoProgress),
            scratch: ScratchTarget::Local,
            parts: Default::default(),
        };
        let mut scratch =
            adapter.provision(&cx, &unpacked).await.unwrap_or_else(|e| panic!("{}: provision: {e}", adapter.kind()));
        adapter
            .restore(&cx, &mut scratch, &unpacked)
            .await
            .unwrap_or_else(|e| panic!("{}: restore: {e}", adapter.kind()));
        for c in &rb.verify {
            assert!(can_run(adapter.as_ref(), &c.check), "{} cannot run {}", adapter.kind(), c.check.name());
            let out = run_check(adapter.as_ref(), &cx, &scratch, &c.check)
                .await
                .unwrap_or_else(|e| panic!("{}: {}: {e}", adapter.kind(), c.name));
            assert!(out.passed, "{}: check {} failed: {:?}", adapter.kind(), c.name, out);
        }
        adapter
            .teardown(&cx, scratch, drillbook_adapters::Teardown::Remove)
            .await
            .unwrap_or_else(|e| panic!("{}: teardown: {e}", adapter.kind()));
        let open = open_fds_under(work.path());
        assert!(open.is_empty(), "{}: files still open after teardown: {open:?}", adapter.kind());
        let running = processes_under(work.path());
        assert!(running.is_empty(), "{}: processes left after teardown: {running:?}", adapter.kind());
        let path = work.path().to_path_buf();
        work.close().unwrap();
        assert!(!path.exists());
    }
}

#[tokio::test]
async fn a_check_kind_the_adapter_lacks_is_refused_not_passed() {
    let text = "version: 1\nname: c\nowner: t\nasset: { name: a, kind: files }\nsource: { path: x/ }\nrestore: { adapter: files }\nverify:\n  - name: q\n    sql: select 1\n    expect: \"== 1\"\n";
    let rb = Runbook::parse("c.yaml", text).unwrap();
    let adapter = build(&rb.restores()[0].adapter);
    assert!(!can_run(adapter.as_ref(), &rb.verify[0].check));
}
