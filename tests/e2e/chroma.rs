//! The chroma adapter against persist folders written by the real chromadb, served by the real
//! Chroma server; ground truth from a stopped folder and from a live server; and the ways such
//! a backup goes bad (damaged segment, another Chroma's schema, records deleted before the
//! backup, a server that dies mid-drill).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bad_input::{fails_with, step};
use crate::support::{Sandbox, copy_dir, examples, files_under, processes_under, zstd};

/// Where scripts/test-deps.sh installs Chroma (PyPI chromadb) in a venv every user can read.
fn chroma_bin() -> PathBuf {
    let bin = PathBuf::from(
        std::env::var("DRILLBOOK_TEST_CHROMA_BIN").unwrap_or_else(|_| "/opt/drillbook-test/chroma/bin".into()),
    );
    assert!(
        bin.join("chroma").is_file(),
        "no `chroma` in {}: run scripts/test-deps.sh (pip install chromadb into a venv on /usr/bin/python3)",
        bin.display()
    );
    bin
}

/// A sandbox whose drills find `chroma` on PATH, as the example runbook documents.
pub fn sandbox() -> Sandbox {
    let path = format!("{}:{}", chroma_bin().display(), std::env::var("PATH").unwrap_or_default());
    Sandbox::new().env("PATH", &path)
}

/// The committed sample's persist folder, unpacked into `dir`.
fn sample_folder(dir: &Path) {
    let archive = examples().join("chroma/backups/rag-chroma-2026-11-29.tar.zst");
    let tar = zstd::decode_all(std::fs::File::open(archive).expect("sample")).expect("zstd");
    tar::Archive::new(&tar[..]).unpack(dir).expect("untar");
}

/// A tar of the folder `dir` (its contents at the root, as a nightly `tar -C` makes it).
fn tar_of(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).expect("tar");
    b.into_inner().expect("tar")
}

fn sqlite(db: &Path, sql: &str) {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().expect("sqlite3 (scripts/test-deps.sh)");
    assert!(out.status.success(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
}

/// The example runbook over `backups/` of the sandbox, with the sample's truth files.
fn example_over_backups(sb: &Sandbox) {
    copy_dir(&examples().join("chroma/truth"), &sb.path("chroma/truth"));
    let text = std::fs::read_to_string(examples().join("chroma.yaml")).unwrap();
    let text = text
        .replace("path: chroma/backups/", "path: backups/")
        .replace("match: \"rag-chroma-*.tar.zst\"", "match: \"*.tar*\"")
        .replace("checksum: sidecar", "checksum: none");
    sb.write("chroma.yaml", text);
}

/// The sample unpacked, changed by `damage`, packed again as the sandbox's only backup.
fn damaged_sample(sb: &Sandbox, damage: impl FnOnce(&Path)) {
    let data = sb.path("work/data");
    sample_folder(&data);
    damage(&data);
    sb.write("backups/rag-chroma.tar.zst", zstd(&tar_of(&data)));
    std::fs::remove_dir_all(sb.path("work")).unwrap();
    example_over_backups(sb);
}

fn passes(sb: &Sandbox, runbook: &str) -> serde_json::Value {
    let (run, report) = sb.drill(runbook);
    assert_eq!(run.code, 0, "{run}\n{}", serde_json::to_string_pretty(&report["checks"]).unwrap());
    assert_eq!(report["verdict"], "passed");
    sb.assert_no_leftovers();
    assert!(processes_under(&sb.root).is_empty(), "{:?}", processes_under(&sb.root));
    report
}

fn no_server_left(sb: &Sandbox) {
    sb.assert_no_leftovers();
    let left = processes_under(&sb.root);
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
fn the_chroma_example_runs_as_documented() {
    let sb = sandbox().with_example("chroma");
    let report = passes(&sb, "chroma.yaml");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    assert_eq!(step(&report, "integrity")["status"], "passed", "the sidecar checksum is verified");
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.contains("schema: 18 migrations, as chroma 1."), "{detail}");
    assert!(detail.contains("docs=800 (64-d cosine), faq=40 (64-d l2)"), "{detail}");
    assert!(step(&report, "restore.start")["detail"].as_str().unwrap().contains("validate mode"));
    let recall = checks.iter().find(|c| c["name"].as_str().unwrap().starts_with("golden")).unwrap();
    assert_eq!(recall["observed"]["recall"], 1.0, "{recall:#}");

    // What the Chroma install said of itself is kept: the next drill compares the backup's
    // migrations without starting a second Chroma to ask it.
    let schema = |r: &serde_json::Value| step(r, "restore.schema")["detail"].as_str().unwrap().to_string();
    assert!(schema(&report).ends_with("asked of it on an empty folder"), "{}", schema(&report));
    let kept = files_under(&sb.path(".cache/drillbook"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    let again = passes(&sb, "chroma.yaml");
    assert!(schema(&again).ends_with(&format!("kept in {}", kept[0].display())), "{}", schema(&again));
    assert!(step(&again, "restore")["detail"].as_str().unwrap().contains("schema: 18 migrations, as chroma 1."));

    // An answer kept for another install (the program was replaced since) is asked again.
    let mut answer: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept[0]).unwrap()).unwrap();
    answer["install"]["size"] = (answer["install"]["size"].as_u64().unwrap() + 1).into();
    answer["engine"]["version"] = "chroma 0.0.1".into();
    std::fs::write(&kept[0], answer.to_string()).unwrap();
    let third = passes(&sb, "chroma.yaml");
    assert!(schema(&third).ends_with("asked of it on an empty folder"), "{}", schema(&third));
    assert!(step(&third, "restore")["detail"].as_str().unwrap().contains("as chroma 1."));
}

/// A Chroma server the test runs on a folder, as production does; killed on drop.
struct LiveChroma {
    child: std::process::Child,
    url: String,
}

impl LiveChroma {
    fn start(dir: &Path) -> LiveChroma {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(chroma_bin().join("chroma"))
            .args(["run", "--host", "127.0.0.1", "--port", &port.to_string(), "--path"])
            .arg(dir)
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chroma run");
        let live = LiveChroma { child, url: format!("http://127.0.0.1:{port}") };
        let t = std::time::Instant::now();
        while !live.curl(&["-sf", &format!("{}/api/v2/heartbeat", live.url)]).0 {
            assert!(t.elapsed().as_secs() < 60, "chroma did not start on {}", dir.display());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        live
    }

    fn curl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("curl").args(args).output().expect("curl");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn collection_id(&self, name: &str) -> String {
        let (ok, body) = self.curl(&[
            "-sf",
            &format!("{}/api/v2/tenants/default_tenant/databases/default_database/collections/{name}", self.url),
        ]);
        assert!(ok, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].as_str().unwrap().to_string()
    }

    fn delete(&self, collection: &str, ids: &[&str]) {
        let url = format!(
            "{}/api/v2/tenants/default_tenant/databases/default_database/collections/{}/delete",
            self.url,
            self.collection_id(collection)
        );
        let body = serde_json::json!({ "ids": ids }).to_string();
        let (ok, said) = self.curl(&["-sf", "-X", "POST", "-H", "content-type: application/json", "-d", &body, &url]);
        assert!(ok, "delete: {said}");
    }

    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let t = std::time::Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if t.elapsed().as_secs() > 20 {
                let _ = self.child.kill();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for LiveChroma {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manifest(sb: &Sandbox, source: &[&str], out: &str, queries: Option<&str>) -> serde_json::Value {
    let mut args = vec!["manifest", "--adapter", "chroma", "--out", out];
    args.extend(source);
    if let Some(q) = queries {
        args.extend(["--queries", q, "--collection", "docs", "--k", "10"]);
    }
    let r = sb.run(&args);
    assert_eq!(r.code, 0, "{r}");
    serde_json::from_str(&sb.read(out)).unwrap()
}

#[test]
fn a_folder_written_by_chromadb_matches_its_manifest_and_a_backup_taken_after_deletes_does_not() {
    let sb = sandbox();
    let data = sb.path("source/data");
    let made = Command::new(chroma_bin().join("python"))
        .arg(examples().join("chroma/make-sample.py"))
        .arg(&data)
        .arg(sb.path("queries.jsonl"))
        .arg("300")
        .env("ANONYMIZED_TELEMETRY", "False")
        .output()
        .expect("python");
    assert!(made.status.success(), "make-sample.py: {}", String::from_utf8_lossy(&made.stderr));
    // Ground truth from the stopped folder (served from a copy), golden answers included.
    let from_path = manifest(&sb, &["--path", data.to_str().unwrap()], "truth/chroma.json", Some("queries.jsonl"));
    assert_eq!(from_path["collections"]["docs"]["records"], 300);
    assert_eq!(from_path["collections"]["docs"]["dimension"], 64);
    let golden = sb.read("truth/chroma.golden.jsonl");
    assert_eq!(golden.lines().count(), 20);
    assert!(std::fs::read_dir(&data).unwrap().count() >= 2, "the source folder is untouched");
    sb.write("backups/rag-chroma-1.tar", tar_of(&data));

    // The live server gives the same truth; then records are deleted before the next backup.
    let live = LiveChroma::start(&data);
    let from_url = manifest(&sb, &["--url", &live.url], "truth/live.json", None);
    assert_eq!(from_url, from_path, "the same truth from the folder and from the live server");
    live.delete("docs", &["chunk-00001", "chunk-00002", "chunk-00003", "chunk-00004", "chunk-00005"]);
    live.stop();

    sb.write(
        "chroma.yaml",
        r#"version: 1
name: rag-chroma
owner: ml
asset: { name: rag, kind: vector-store, system: chroma }
source: { path: backups/ }
restore: { adapter: chroma }
verify:
  - name: collections
    collections: { manifest: truth/chroma.json }
  - name: chunks
    points: { collection: docs, manifest: truth/chroma.json }
  - name: recall
    vector_recall: { collection: docs, queries: truth/chroma.golden.jsonl, k: 10, min_recall: 0.9 }
  - name: records
    documents_checksum: { collection: docs, manifest: truth/chroma.json }
timeouts: { step: 2m, drill: 4m }
"#,
    );
    let report = passes(&sb, "chroma.yaml");
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["status"] == "passed"));

    std::fs::remove_file(sb.path("backups/rag-chroma-1.tar")).unwrap();
    sb.write("backups/rag-chroma-2.tar", tar_of(&data));
    let (_, report) = fails_with(&sb, "chroma.yaml", "295 records in docs, the manifest has 300: 5 missing");
    let checks = report["checks"].as_array().unwrap();
    let by = |n: &str| checks.iter().find(|c| c["name"] == n).unwrap()["status"].clone();
    assert_eq!(by("records"), "failed");
    assert_eq!(by("collections"), "failed");
    no_server_left(&sb);
}

// fault: a Chroma folder with a truncated HNSW segment | failed | `cannot read the embeddings of docs … Chroma answered 500` | TMPDIR empty, history row
#[test]
fn a_truncated_hnsw_segment_fails_the_drill_with_chromas_error() {
    let sb = sandbox();
    damaged_sample(&sb, |data| {
        let biggest = std::fs::read_dir(data)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.path().join("data_level0.bin"))
            .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .unwrap();
        let len = std::fs::metadata(&biggest).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&biggest).unwrap().set_len(len / 2).unwrap();
    });
    let (_, report) = fails_with(&sb, "chroma.yaml", "cannot read the embeddings of docs");
    let reasons = report["failure_reasons"].to_string();
    assert!(reasons.contains("Chroma answered 500"), "{reasons}");
    no_server_left(&sb);
}

// fault: a Chroma folder from a newer schema | failed, not served | `the backup was written by a newer Chroma than chroma 1.…` | TMPDIR empty, history row
#[test]
fn a_folder_from_a_newer_chroma_is_named_not_served() {
    let sb = sandbox();
    damaged_sample(&sb, |data| {
        sqlite(
            &data.join("chroma.sqlite3"),
            "insert into migrations values ('sysdb', 99, '00099-future.sqlite.sql', 'select 1', 'x')",
        );
    });
    let (_, report) = fails_with(&sb, "chroma.yaml", "the backup was written by a newer Chroma than chroma 1.");
    assert!(report["failure_reasons"].to_string().contains("sysdb/00099-future.sqlite.sql"));
    no_server_left(&sb);
}

#[test]
fn a_folder_from_an_older_chroma_is_named_not_migrated() {
    let sb = sandbox();
    damaged_sample(&sb, |data| {
        sqlite(
            &data.join("chroma.sqlite3"),
            "delete from migrations where dir = 'sysdb' and version = (select max(version) from migrations where dir = 'sysdb')",
        );
    });
    fails_with(&sb, "chroma.yaml", "the backup was written by an older Chroma than chroma 1.");
    no_server_left(&sb);
}

#[test]
fn not_a_chroma_folder_and_a_garbage_database_are_refused() {
    let sb = sandbox();
    damaged_sample(&sb, |data| std::fs::remove_file(data.join("chroma.sqlite3")).unwrap());
    fails_with(&sb, "chroma.yaml", "no Chroma persist folder (a folder with `chroma.sqlite3`)");
    let sb = sandbox();
    damaged_sample(&sb, |data| std::fs::write(data.join("chroma.sqlite3"), vec![0x5a; 64 * 1024]).unwrap());
    fails_with(&sb, "chroma.yaml", "is not a readable Chroma database");
    no_server_left(&sb);
}

#[test]
fn a_truncated_archive_fails_at_unpack() {
    let sb = sandbox();
    let archive = std::fs::read(examples().join("chroma/backups/rag-chroma-2026-11-29.tar.zst")).unwrap();
    sb.write("backups/rag-chroma.tar.zst", &archive[..archive.len() / 2]);
    example_over_backups(&sb);
    let (_, report) = fails_with(&sb, "chroma.yaml", "unpack");
    assert_eq!(step(&report, "restore")["status"], "skipped");
}

// fault: vectors of another dimension than the runbook says | failed | `collection docs is 64-dimensional, the runbook expects 65; 800 of 800 vectors bad` | TMPDIR empty, history row
#[test]
fn a_wrong_dimension_fails_its_check() {
    let sb = sandbox();
    damaged_sample(&sb, |_| {});
    sb.edit(
        "chroma.yaml",
        "vector_integrity: { collection: docs, dim: 64 }",
        "vector_integrity: { collection: docs, dim: 65 }",
    );
    fails_with(&sb, "chroma.yaml", "collection docs is 64-dimensional, the runbook expects 65; 800 of 800 vectors bad");
}

// fault: the scratch Chroma server killed mid-drill | failed | `the Chroma server is gone` | TMPDIR empty, history row
#[test]
fn a_chroma_server_that_dies_mid_drill_is_named_in_the_failed_checks() {
    let sb = sandbox();
    damaged_sample(&sb, |_| {});
    // The first check kills the scratch server, as the OOM killer would.
    sb.edit(
        "chroma.yaml",
        "verify:\n",
        "verify:\n  - name: the server is killed\n    command: { run: [sh, -c, \"pkill -9 -f \\\"$(dirname \\\"$DRILL_SCRATCH_DIR\\\")/chroma/chroma.yaml\\\"; sleep 0.5\"] }\n",
    );
    let (_, report) = fails_with(&sb, "chroma.yaml", "the Chroma server is gone");
    let reasons = report["failure_reasons"].to_string();
    assert!(reasons.contains("collections") || reasons.contains("every chunk"), "{reasons}");
    no_server_left(&sb);
}
