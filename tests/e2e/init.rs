//! `drillbook init`: from a real backup to a runbook that validates, passes against the same
//! backup, and fails when the data changes; bad input writes nothing.

use std::path::Path;

use crate::support::{Run, Sandbox, TarBuilder, examples, zstd};

/// The written runbook's check kinds, in order.
fn kinds(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter(|l| l.starts_with("    ") && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

fn passes(sb: &Sandbox, runbook: &str) -> serde_json::Value {
    let valid = sb.run(&["validate", runbook]);
    assert_eq!(valid.code, 0, "the written runbook validates: {valid}");
    let (run, report) = sb.drill(runbook);
    assert_eq!(run.code, 0, "the written runbook passes against the same backup: {run}\n{}", sb.read(runbook));
    report
}

#[test]
fn init_on_the_quickstart_backup_writes_a_runbook_that_passes_and_catches_changed_data() {
    let sb = Sandbox::new();
    crate::support::copy_dir(&examples().join("quickstart/backups"), &sb.path("backups"));
    let r = sb.run(&["init", "--source", "backups/", "--out", "runbooks"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("detected an archive of") && r.stderr.contains("adapter `sqlite`"), "{r}");
    assert!(r.stderr.contains("init:   restore") && r.stderr.contains("init:   capture"), "progress is shown: {r}");
    let yaml = sb.read("runbooks/backups.yaml");
    // Every choice is a comment; objectives are TODOs.
    for want in [
        "# TODO",
        "# rto:",
        "# rpo:",
        "checksum: sidecar",
        "file: \"docs.sqlite\"",
        "pick: latest",
        "match: \"*.tar.zst\"",
    ] {
        assert!(yaml.contains(want), "{want} missing:\n{yaml}");
    }
    assert!(yaml.contains("path: \"../backups/\""), "the source relative to the runbook: {yaml}");
    let kinds = kinds(&yaml);
    for want in ["row_counts", "schema", "table_checksum", "vector_integrity", "vector_recall", "files", "config_parse"]
    {
        assert!(kinds.iter().any(|k| k == want), "no {want} check in {kinds:?}:\n{yaml}");
    }
    // The sample's embeddings: 16-d unit vectors stored as f32le BLOBs.
    assert!(yaml.contains("dim: 16, encoding: f32le, min_norm: 0.99, max_norm: 1.01"), "{yaml}");
    for truth in ["manifest.json", "files.sha256", "chunks.embedding.golden.jsonl"] {
        assert!(sb.path(&format!("runbooks/truth/backups/{truth}")).is_file(), "truth/{truth} missing");
    }
    let golden = sb.read("runbooks/truth/backups/chunks.embedding.golden.jsonl");
    assert_eq!(golden.lines().count(), 10, "{golden}");

    let report = passes(&sb, "runbooks/backups.yaml");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), kinds.len(), "every written check ran");
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{report:#}");
    sb.assert_no_leftovers();

    // A newer backup in which one chunk is gone: the captured truth catches it.
    let db = sb.path("tmp-docs.sqlite");
    let tree = sb.path("tmp-tree");
    let unpacked = std::process::Command::new("tar")
        .args(["--zstd", "-xf"])
        .arg(sb.path("backups/rag-2026-11-29.tar.zst"))
        .arg("-C")
        .arg({
            std::fs::create_dir_all(&tree).unwrap();
            &tree
        })
        .status()
        .unwrap();
    assert!(unpacked.success());
    std::fs::copy(tree.join("docs.sqlite"), &db).unwrap();
    let deleted = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("delete from chunks where id = (select max(id) from chunks)")
        .status()
        .unwrap();
    assert!(deleted.success());
    let mut tar = TarBuilder::new();
    for f in crate::support::files_under(&tree) {
        let rel = f.strip_prefix(&tree).unwrap().to_string_lossy().into_owned();
        let data = if rel == "docs.sqlite" { std::fs::read(&db).unwrap() } else { std::fs::read(&f).unwrap() };
        tar = tar.file(&rel, &data);
    }
    std::fs::remove_dir_all(&tree).unwrap();
    std::fs::remove_file(&db).unwrap();
    let newer = zstd(&tar.finish());
    sb.write("backups/rag-2026-11-30.tar.zst", &newer);
    sb.write(
        "backups/rag-2026-11-30.tar.zst.sha256",
        format!("{}  rag-2026-11-30.tar.zst\n", crate::support::sha256_hex(&newer)),
    );
    let (run, report) = sb.drill("runbooks/backups.yaml");
    assert_eq!(run.code, 1, "{run}");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "passed")
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    for want in ["row_counts", "table_checksum", "files"] {
        assert!(failed.contains(&want), "{want} did not catch the missing chunk: {failed:?}");
    }
}

#[test]
fn init_on_the_pgvector_backup_finds_the_vector_column_and_its_dimension() {
    let bin = crate::servers::pgvector_bin();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let sb = Sandbox::new().env("PATH", &path);
    crate::support::copy_dir(&examples().join("postgres-pgvector/backups"), &sb.path("pg"));
    let r = sb.run(&["init", "--source", "pg/rag-2026-11-29.dump.zst", "--name", "rag", "--out", "."]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("a pg_dump custom archive") && r.stderr.contains("adapter `postgres`"), "{r}");
    let yaml = sb.read("rag.yaml");
    assert!(yaml.contains("match: \"*.dump.zst\""), "the next backup matches too: {yaml}");
    assert!(yaml.contains("kind: vector-store"), "{yaml}");
    let kinds = kinds(&yaml);
    for want in ["row_counts", "schema", "table_checksum", "vector_integrity", "vector_recall"] {
        assert!(kinds.iter().any(|k| k == want), "no {want} check in {kinds:?}:\n{yaml}");
    }
    let report = passes(&sb, "rag.yaml");
    let recall = report["checks"].as_array().unwrap().iter().find(|c| c["kind"] == "vector_recall").unwrap().clone();
    assert!(recall["observed"]["recall"].as_f64().unwrap() >= 0.95, "{recall}");
    // The sample's 32-d embeddings under an HNSW cosine index: searched as the index does.
    assert!(yaml.contains("dim: 32") && !yaml.contains("metric:"), "{yaml}");
    sb.assert_no_leftovers();
}

fn refused(r: &Run, code: i32, says: &[&str]) {
    assert_eq!(r.code, code, "{r}");
    for s in says {
        assert!(r.stderr.contains(s), "`{s}` not said: {r}");
    }
}

#[test]
fn init_refuses_bad_input_and_writes_nothing() {
    let sb = Sandbox::new();
    // Corrupt: a SQLite file cut short. The restore fails; no runbook, no truth.
    let good = std::fs::read(examples().join("quickstart/backups/rag-2026-11-29.tar.zst")).unwrap();
    sb.write("corrupt/rag.tar.zst", &good[..good.len() / 2]);
    let r = sb.run(&["init", "--source", "corrupt/", "--out", "out"]);
    refused(&r, 1, &["no runbook was written"]);
    assert!(!sb.path("out/corrupt.yaml").exists() && !sb.path("out/truth").exists(), "{r}");
    assert!(crate::support::files_under(&sb.path("out")).is_empty(), "nothing left in out/: {r}");

    // Unknown: says what it saw and which adapters exist.
    sb.write("odd/blob.bin", b"\x7fELF\x02\x01\x01\0 not a backup");
    let r = sb.run(&["init", "--source", "odd/blob.bin", "--out", "out"]);
    refused(&r, 2, &["cannot tell what", "7f 45 4c 46", "postgres", "sqlite", "qdrant", "files"]);

    // Nothing matches the glob.
    let r = sb.run(&["init", "--source", "corrupt/", "--match", "*.dump", "--out", "out"]);
    refused(&r, 2, &["no backup found", "*.dump"]);

    // An existing runbook is not replaced without --force.
    crate::support::copy_dir(&examples().join("quickstart/backups"), &sb.path("rag"));
    sb.write("out/rag.yaml", "# mine\n");
    let r = sb.run(&["init", "--source", "rag/", "--out", "out"]);
    refused(&r, 2, &["out/rag.yaml already exists", "--force"]);
    assert_eq!(sb.read("out/rag.yaml"), "# mine\n");
    let r = sb.run(&["init", "--source", "rag/", "--out", "out", "--force"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(sb.read("out/rag.yaml").contains("adapter: sqlite"));

    // A name that is not a runbook name, a source that does not exist, and a shell
    // completions cannot be made for.
    refused(&sb.run(&["init", "--source", "rag/", "--name", "Rag DB", "--out", "out2"]), 2, &["--name: `Rag DB`"]);
    assert!(!sb.path("out2").exists());
    refused(&sb.run(&["init", "--source", "nowhere/", "--out", "out"]), 2, &["--source: nowhere/"]);
    refused(&sb.run(&["completions", "tcsh"]), 2, &["invalid value 'tcsh'"]);
    sb.assert_no_leftovers();
}

#[test]
fn names_from_a_hostile_backup_cannot_write_the_runbook_or_escape_the_truth_folder() {
    let sb = Sandbox::new();
    // A table named like a path out of truth/, with vectors (so a golden file is named after it),
    // and a config file whose name carries a line of YAML: a `command` check, if it got through.
    let db = sb.path("evil.sqlite");
    let made = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(
            "create table \"../../../escaped\" (id integer primary key, v blob); \
             insert into \"../../../escaped\" values (1, x'0000803f00000000'), (2, x'000000000000803f'), (3, x'f304353ff304353f');",
        )
        .status()
        .expect("sqlite3");
    assert!(made.success());
    let injected = "conf\n  - name: pwn\n    command: { run: [touch, /tmp/drillbook-init-pwned] }\n#.yaml";
    let tar = TarBuilder::new()
        .file("docs.sqlite", &std::fs::read(&db).unwrap())
        .file(injected, b"a: 1\n")
        .file("ok.yaml", b"a: 1\n")
        .finish();
    sb.write("backups/evil-2026-11-30.tar.zst", zstd(&tar));
    let r = sb.run(&["init", "--source", "backups/", "--name", "evil", "--out", "out"]);
    assert_eq!(r.code, 0, "{r}");
    let yaml = sb.read("out/evil.yaml");
    assert!(!yaml.lines().any(|l| l.trim_start().starts_with("command:")), "a check was injected:\n{yaml}");
    assert!(!yaml.contains("\n  - name: pwn"), "{yaml}");
    // Every file init wrote is inside out/: the golden file's name is made safe.
    let written = crate::support::files_under(&sb.path("out"));
    assert!(written.iter().any(|p| p.ends_with("truth/evil/_________escaped.v.golden.jsonl")), "{written:?}");
    let outside: Vec<_> = crate::support::files_under(&sb.root)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("escaped") && !p.starts_with(sb.path("out")))
        .collect();
    assert!(outside.is_empty(), "written outside out/: {outside:?}");
    // The runbook is what init says it is: valid, and it passes against the same backup.
    passes(&sb, "out/evil.yaml");
    assert!(!Path::new("/tmp/drillbook-init-pwned").exists());
}

#[test]
fn init_on_a_redis_rdb_writes_the_dataset_checks() {
    let sb = Sandbox::new();
    crate::support::copy_dir(&examples().join("redis/backups"), &sb.path("backups"));
    let r = sb.run(&["init", "--source", "backups/", "--name", "sessions", "--out", "."]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("a Redis RDB file") && r.stderr.contains("adapter `redis`"), "{r}");
    let yaml = sb.read("sessions.yaml");
    assert!(yaml.contains("kind: cache") && yaml.contains("match: \"*.rdb.gz\""), "{yaml}");
    assert_eq!(kinds(&yaml), ["keys", "dataset_digest", "sample"], "{yaml}");
    let report = passes(&sb, "sessions.yaml");
    let digest = report["checks"].as_array().unwrap().iter().find(|c| c["kind"] == "dataset_digest").unwrap();
    assert_eq!(digest["observed"], digest["expected"], "{digest}");
    // The truth is the data's: another dataset fails the digest.
    sb.edit("truth/sessions/redis.json", "\"databases\": {", "\"databases\": {\n    \"7\": 1,");
    let (run, _) = sb.drill("sessions.yaml");
    assert_eq!(run.code, 1, "a database that was not there at init is missed: {run}");
    sb.assert_no_leftovers();
}

#[test]
fn init_on_a_chroma_folder_samples_golden_queries_from_each_collection() {
    let sb = crate::chroma::sandbox();
    crate::support::copy_dir(&examples().join("chroma/backups"), &sb.path("backups"));
    let r = sb.run(&["init", "--source", "backups/", "--name", "rag-chroma", "--out", "."]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("a Chroma persist folder"), "{r}");
    let yaml = sb.read("rag-chroma.yaml");
    let kinds = kinds(&yaml);
    for want in ["collections", "documents_checksum", "vector_integrity", "vector_recall"] {
        assert!(kinds.iter().any(|k| k == want), "no {want} check in {kinds:?}:\n{yaml}");
    }
    // The sample's two collections search in different spaces; each golden file follows its own.
    assert!(yaml.contains("exact cosine search") && yaml.contains("exact l2 search"), "{yaml}");
    let golden = sb.read("truth/rag-chroma/docs.golden.jsonl");
    assert_eq!(golden.lines().count(), 10, "{golden}");
    let report = passes(&sb, "rag-chroma.yaml");
    assert_eq!(report["checks"].as_array().unwrap().len(), kinds.len());
    sb.assert_no_leftovers();
}

#[test]
fn init_on_a_qdrant_snapshot_captures_what_manifest_captures_and_a_golden_file_per_vector() {
    let sb = Sandbox::new();
    crate::support::copy_dir(&examples().join("qdrant/backups"), &sb.path("backups"));
    // Qdrant preallocates its files: the default 50× expansion guard refuses the snapshot and says how.
    let r = sb.run(&["init", "--source", "backups/", "--name", "docs", "--out", "."]);
    refused(&r, 1, &["expansion beyond the limit", "--max-expansion 1000", "no runbook was written"]);
    let r = sb.run(&["init", "--source", "backups/", "--name", "docs", "--out", ".", "--max-expansion", "1000"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("a Qdrant snapshot") && r.stderr.contains("adapter `qdrant`"), "{r}");
    let yaml = sb.read("docs.yaml");
    assert!(yaml.contains("max_expansion: 1000"), "{yaml}");
    let kinds = kinds(&yaml);
    assert_eq!(
        kinds,
        [
            "points",
            "payload_schema",
            "vector_integrity",
            "vector_integrity",
            "vector_recall",
            "vector_recall",
            "points_checksum"
        ],
        "{yaml}"
    );
    // The same truth `drillbook manifest --adapter qdrant` wrote of this snapshot at backup time.
    let ours: serde_json::Value = serde_json::from_str(&sb.read("truth/docs/qdrant.json")).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("qdrant/truth/qdrant.json")).unwrap()).unwrap();
    assert_eq!(ours["collections"]["docs"], committed["collections"]["docs"]);
    for vector in ["text", "title"] {
        let golden = sb.read(&format!("truth/docs/docs.{vector}.golden.jsonl"));
        assert_eq!(golden.lines().count(), 10, "{golden}");
    }
    let report = passes(&sb, "docs.yaml");
    assert_eq!(report["checks"].as_array().unwrap().len(), kinds.len());
    sb.assert_no_leftovers();
}

#[test]
fn init_on_a_tree_of_documents_and_configs_restores_it_as_files() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .file("docs/handbook.md", b"# Handbook\n")
        .file("docs/faq.md", b"# FAQ\n")
        .file("config/app.yaml", b"embedding: { model: all-MiniLM-L6-v2, dim: 384 }\n")
        .file("config/search.toml", b"[index]\nname = \"docs\"\n")
        .finish();
    sb.write("backups/corpus-2026-11-30.tar.gz", crate::support::gzip(&tar));
    let r = sb.run(&["init", "--source", "backups/", "--out", "."]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("adapter `files`"), "{r}");
    let yaml = sb.read("backups.yaml");
    assert!(yaml.contains("match: \"*.tar.gz\"") && yaml.contains("kind: files"), "{yaml}");
    assert_eq!(kinds(&yaml), ["files", "config_parse", "config_parse"], "{yaml}");
    assert!(yaml.contains("path: \"config/*.toml\"") && yaml.contains("path: \"config/*.yaml\""), "{yaml}");
    passes(&sb, "backups.yaml");
    // A changed document in a newer backup fails the files check.
    let changed = TarBuilder::new()
        .file("docs/handbook.md", b"# Handbook (edited)\n")
        .file("docs/faq.md", b"# FAQ\n")
        .file("config/app.yaml", b"embedding: { model: all-MiniLM-L6-v2, dim: 384 }\n")
        .file("config/search.toml", b"[index]\nname = \"docs\"\n")
        .finish();
    std::thread::sleep(std::time::Duration::from_millis(20));
    sb.write("backups/corpus-2026-12-01.tar.gz", crate::support::gzip(&changed));
    let (run, report) = sb.drill("backups.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(report["checks"][0]["status"], "failed", "{report:#}");
}

#[test]
fn sigterm_during_inits_restore_tears_the_scratch_down_and_writes_nothing() {
    use std::io::BufRead;
    let bin = crate::servers::pgvector_bin();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let sb = Sandbox::new().env("PATH", &path);
    crate::support::copy_dir(&examples().join("postgres-pgvector/backups"), &sb.path("pg"));
    let mut child = sb
        .command(&["init", "--source", "pg/", "--name", "rag", "--out", "out"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("drillbook init");
    let mut said = Vec::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // The scratch cluster is up: the restore (about a second of pg_restore and an HNSW build) starts.
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push(line.clone());
        if line.starts_with("init:   provision") {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            break;
        }
    }
    said.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    let said = said.join("\n");
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("interrupted") && said.contains("no runbook was written"), "{said}");
    assert!(!sb.path("out/rag.yaml").exists() && !sb.path("out/truth").exists(), "{said}");
    assert!(crate::support::files_under(&sb.path("out")).is_empty(), "nothing staged is left: {said}");
    assert!(crate::support::processes_under(&sb.tmp).is_empty(), "the scratch cluster was stopped");
    sb.assert_no_leftovers();
}
