//! The qdrant adapter against snapshots written by the real engine (Qdrant Edge, PyPI
//! `qdrant-edge-py`) in a Qdrant server's snapshot layout, loaded by Qdrant Edge in drillbook's
//! engine child; ground truth from a snapshot; and the ways such a backup goes bad (truncated,
//! a damaged segment, a shard missing, a wrong `.checksum`, points deleted before the backup,
//! an engine that dies on a segment).

use std::path::PathBuf;
use std::process::Command;

use crate::bad_input::{fails_with, step};
use crate::support::{Sandbox, copy_dir, examples, processes_under, sha256_hex};

const SNAPSHOT: &str = "docs-1-2026-11-29-03-00-00.snapshot";

/// Where scripts/test-deps.sh installs Qdrant Edge (PyPI qdrant-edge-py).
fn qdrant_python() -> PathBuf {
    let py = PathBuf::from("/opt/drillbook-test/qdrant/bin/python");
    assert!(py.is_file(), "no {}: run scripts/test-deps.sh (pip install qdrant-edge-py into a venv)", py.display());
    py
}

/// The committed sample snapshot, as Qdrant wrote it (an uncompressed tar).
fn sample_snapshot() -> Vec<u8> {
    let archive = examples().join(format!("qdrant/backups/{SNAPSHOT}.zst"));
    zstd::decode_all(std::fs::File::open(archive).expect("sample")).expect("zstd")
}

/// The example runbook over `backups/` of the sandbox (plain `.snapshot` files with Qdrant's
/// `.checksum` sidecar), with the sample's truth files.
fn example_over_backups(sb: &Sandbox) {
    copy_dir(&examples().join("qdrant/truth"), &sb.path("qdrant/truth"));
    let text = std::fs::read_to_string(examples().join("qdrant.yaml")).unwrap();
    let text = text
        .replace("path: qdrant/backups/", "path: backups/")
        .replace("match: \"docs-*.snapshot.zst\"", "match: \"*.snapshot\"");
    sb.write("qdrant.yaml", text);
}

/// `snapshot` as the sandbox's only backup, with Qdrant's sidecar (the hex SHA-256 alone).
fn backup(sb: &Sandbox, snapshot: &[u8]) {
    sb.write(&format!("backups/{SNAPSHOT}"), snapshot);
    sb.write(&format!("backups/{SNAPSHOT}.checksum"), sha256_hex(snapshot));
    example_over_backups(sb);
}

/// The entries of a tar, in order (path, header, data).
fn entries(tar: &[u8]) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (path, e.header().clone(), data)
        })
        .collect()
}

fn tar_of(entries: &[(String, tar::Header, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, h, data) in entries {
        let mut h = h.clone();
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// The sample with `change` applied to `file` in the segment archive that holds it (the
/// optimized segment; the appendable one holds no vectors).
fn with_segment_file(file: &str, change: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut outer = entries(&sample_snapshot());
    let mut changed = false;
    for (_, _, segment) in outer.iter_mut().filter(|(p, _, _)| p.starts_with("0/segments/")) {
        let mut inner = entries(segment);
        if let Some((_, _, data)) = inner.iter_mut().find(|(p, _, _)| p.ends_with(file)) {
            change(data);
            *segment = tar_of(&inner);
            changed = true;
        }
    }
    assert!(changed, "no segment holds {file}");
    tar_of(&outer)
}

fn passes(sb: &Sandbox, runbook: &str) -> serde_json::Value {
    let (run, report) = sb.drill(runbook);
    assert_eq!(run.code, 0, "{run}\n{}", serde_json::to_string_pretty(&report["checks"]).unwrap());
    assert_eq!(report["verdict"], "passed");
    no_engine_left(sb);
    report
}

fn no_engine_left(sb: &Sandbox) {
    sb.assert_no_leftovers();
    let left = processes_under(&sb.root);
    assert!(left.is_empty(), "processes left: {left:?}");
}

fn check<'a>(report: &'a serde_json::Value, name_starts: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(name_starts))
        .unwrap_or_else(|| panic!("no check {name_starts}"))
}

#[test]
fn the_qdrant_example_runs_as_documented() {
    let sb = Sandbox::new().with_example("qdrant");
    let report = passes(&sb, "qdrant.yaml");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    assert_eq!(step(&report, "integrity")["status"], "passed", "the sidecar checksum is verified");
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.contains("collection snapshot of `docs` written by Qdrant 1.16.0: 600 points"), "{detail}");
    assert!(detail.contains("text=64-d Cosine") && detail.contains("title=16-d Dot"), "{detail}");
    assert!(detail.contains("HNSW m=16 ef_construct=100"), "{detail}");
    assert!(detail.contains("shard 0: 2 segments, 600 points"), "{detail}");
    step(&report, "restore.unpack-shards");
    assert_eq!(step(&report, "restore.load")["bytes"], 600, "the load part counts the points loaded");
    let recall = check(&report, "golden");
    assert!(recall["observed"]["index_agreement"].as_f64().unwrap() >= 0.95, "{recall:#}");
    assert_eq!(check(&report, "German")["observed"], 150);
    // The snapshot's time is the one Qdrant put in its name, not the checkout's file time.
    let backup = &report["backup"];
    assert_eq!(backup["taken_from"], "its Qdrant snapshot name", "{backup}");
    assert_eq!(backup["taken_at"], "2026-11-29T03:00:00Z", "{backup}");
}

#[test]
fn the_manifest_of_a_snapshot_is_the_committed_truth() {
    let sb = Sandbox::new();
    sb.write(SNAPSHOT, sample_snapshot());
    let queries: Vec<String> = std::fs::read_to_string(examples().join("qdrant/truth/qdrant.golden.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut q: serde_json::Value = serde_json::from_str(l).unwrap();
            q.as_object_mut().unwrap().remove("expected");
            q.to_string()
        })
        .collect();
    sb.write("queries.jsonl", queries.join("\n"));
    let r = sb.run(&[
        "manifest",
        "--adapter",
        "qdrant",
        "--snapshot",
        SNAPSHOT,
        "--out",
        "truth/q.json",
        "--queries",
        "queries.jsonl",
        "--vector",
        "text",
        "--k",
        "10",
    ]);
    assert_eq!(r.code, 0, "{r}");
    let got: serde_json::Value = serde_json::from_str(&sb.read("truth/q.json")).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("qdrant/truth/qdrant.json")).unwrap()).unwrap();
    assert_eq!(got, want, "the same snapshot read twice gives the same truth");
    assert_eq!(got["collections"]["docs"]["points"], 600);
    assert_eq!(got["collections"]["docs"]["payload_schema"]["lang"]["keyword"], 600);
    let golden = sb.read("truth/q.golden.jsonl");
    assert_eq!(
        golden.trim(),
        std::fs::read_to_string(examples().join("qdrant/truth/qdrant.golden.jsonl")).unwrap().trim()
    );
    assert!(processes_under(&sb.root).is_empty());
    // A snapshot that does not say its collection needs --collection.
    sb.write("plain.snapshot", sample_snapshot());
    let r = sb.run(&["manifest", "--adapter", "qdrant", "--snapshot", "plain.snapshot", "--out", "p.json"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("name it with --collection"), "{r}");
}

// fault: a truncated Qdrant snapshot | failed | `unpack: … truncated` | TMPDIR empty, history row
#[test]
fn a_truncated_snapshot_fails_in_unpack() {
    let sb = Sandbox::new();
    let s = sample_snapshot();
    backup(&sb, &s[..s.len() / 2]);
    let (_, report) = fails_with(&sb, "qdrant.yaml", "truncated");
    assert_eq!(step(&report, "unpack")["status"], "failed");
}

#[test]
fn a_snapshot_whose_checksum_does_not_match_is_not_restored() {
    let sb = Sandbox::new();
    backup(&sb, &sample_snapshot());
    sb.write(&format!("backups/{SNAPSHOT}.checksum"), "0".repeat(64));
    let (_, report) = fails_with(&sb, "qdrant.yaml", "sha256 mismatch: the backup hashes to");
    assert_eq!(step(&report, "restore")["status"], "skipped");
}

// fault: a collection snapshot missing a shard | failed | `the collection has 1 shard and the snapshot lacks shard 0` | TMPDIR empty, history row
#[test]
fn a_collection_snapshot_without_its_shard_is_refused() {
    let sb = Sandbox::new();
    let kept: Vec<_> = entries(&sample_snapshot()).into_iter().filter(|(p, _, _)| !p.starts_with("0/")).collect();
    backup(&sb, &tar_of(&kept));
    fails_with(&sb, "qdrant.yaml", "the collection has 1 shard and the snapshot lacks shard 0");
}

// fault: the Qdrant engine program is not installed | failed | `cannot start the Qdrant engine …: it is installed beside drillbook` | TMPDIR empty, history row
#[test]
fn an_engine_program_that_is_not_there_fails_the_drill_with_where_it_belongs() {
    let sb = Sandbox::new();
    backup(&sb, &sample_snapshot());
    sb.edit(
        "qdrant.yaml",
        "  adapter: qdrant\n",
        "  adapter: qdrant\n  engine: /nonexistent/drillbook-qdrant-engine\n",
    );
    let (_, report) =
        fails_with(&sb, "qdrant.yaml", "cannot start the Qdrant engine `/nonexistent/drillbook-qdrant-engine`");
    let reason = report["failure_reasons"].to_string();
    assert!(reason.contains("it is installed beside drillbook"), "{reason}");
    no_engine_left(&sb);
}

// fault: bit flips in a segment's vector file | failed | `points_checksum`: ids, vectors and payload as backed up | TMPDIR empty, history row
#[test]
fn flipped_bits_in_a_segments_vectors_fail_the_digest() {
    let sb = Sandbox::new();
    backup(
        &sb,
        &with_segment_file("vector_storage-title/matrix.dat", |data| {
            for i in (64..data.len()).step_by(997) {
                data[i] ^= 0x10;
            }
        }),
    );
    let (_, report) = fails_with(&sb, "qdrant.yaml", "ids, vectors and payload as backed up");
    let digest = check(&report, "ids, vectors");
    assert_eq!(digest["status"], "failed");
    assert!(digest["detail"].as_str().unwrap().contains("600 points as in the manifest, but"), "{digest:#}");
    assert_eq!(check(&report, "every chunk")["status"], "passed", "the count alone cannot see it");
    no_engine_left(&sb);
}

/// What Qdrant Edge does with damaged segment files, as measured: a vector or payload file cut
/// short loads without a word and the points lose their vectors or payload (a count still
/// passes); the vector, payload and digest checks are what see it.
#[test]
fn segment_files_cut_short_load_silently_and_the_content_checks_catch_them() {
    let sb = Sandbox::new();
    backup(&sb, &with_segment_file("vector_storage-text/matrix.dat", |data| data.truncate(data.len() / 2)));
    let (_, report) = fails_with(&sb, "qdrant.yaml", "every text vector is 64-d and finite");
    assert_eq!(step(&report, "restore")["status"], "passed", "Qdrant loads it");
    assert_eq!(check(&report, "every chunk")["status"], "passed", "the count cannot see it");
    let vectors = check(&report, "every text vector");
    assert!(vectors["detail"].as_str().unwrap().contains("301 missing"), "{vectors:#}");
    assert_eq!(check(&report, "ids, vectors")["status"], "failed");
    assert_eq!(check(&report, "golden")["status"], "failed");
    no_engine_left(&sb);

    let sb = Sandbox::new();
    backup(&sb, &with_segment_file("payload_storage/tracker.dat", |data| data.truncate(10)));
    let (_, report) = fails_with(&sb, "qdrant.yaml", "payload fields and their types as at backup time");
    let schema = check(&report, "payload fields");
    assert!(schema["detail"].as_str().unwrap().contains("field `document_id` is missing"), "{schema:#}");
    assert_eq!(check(&report, "ids, vectors")["status"], "failed");
    no_engine_left(&sb);
}

// fault: a segment that panics the engine | failed, drillbook unaffected | `restore: the Qdrant engine panicked: exited with status 101; its last output: …` | engine child gone, TMPDIR empty
#[test]
fn a_segment_that_panics_the_engine_fails_the_drill_not_drillbook() {
    let sb = Sandbox::new();
    // The HNSW links of the text vectors inverted: Qdrant Edge panics loading them.
    backup(
        &sb,
        &with_segment_file("vector_index-text/links_compressed.bin", |data| data.iter_mut().for_each(|b| *b ^= 0xff)),
    );
    let (_, report) =
        fails_with(&sb, "qdrant.yaml", "restore: the Qdrant engine panicked: exited with status 101; its last output:");
    assert_eq!(step(&report, "restore.load")["status"], "failed");
    assert_eq!(step(&report, "restore.unpack-shards")["status"], "passed");
    no_engine_left(&sb);
}

#[test]
fn a_segment_qdrant_refuses_is_named_with_qdrants_words() {
    let sb = Sandbox::new();
    backup(&sb, &with_segment_file("id_tracker.mappings", |data| data.truncate(10)));
    fails_with(&sb, "qdrant.yaml", "Qdrant Edge cannot load it: Service runtime error: failed to load segment");
    no_engine_left(&sb);
}

// fault: points deleted before the snapshot, and a wrong `dim` | failed | `every chunk came back` check failed with the counts | TMPDIR empty, history row
#[test]
fn points_deleted_before_the_backup_and_a_wrong_dim_are_named() {
    let sb = Sandbox::new();
    let made = Command::new(qdrant_python())
        .arg(examples().join("qdrant/make-sample.py"))
        .arg(sb.path(SNAPSHOT))
        .arg(sb.path("queries.jsonl"))
        .args(["600", "64", "10"])
        .output()
        .expect("python");
    assert!(made.status.success(), "make-sample.py: {}", String::from_utf8_lossy(&made.stderr));
    let snapshot = std::fs::read(sb.path(SNAPSHOT)).unwrap();
    std::fs::remove_file(sb.path(SNAPSHOT)).unwrap();
    backup(&sb, &snapshot);
    sb.edit("qdrant.yaml", "vector: title, dim: 16", "vector: title, dim: 32");
    let (_, report) = fails_with(&sb, "qdrant.yaml", "every chunk came back");
    let points = check(&report, "every chunk");
    assert!(
        points["detail"].as_str().unwrap().contains("590 points in docs, the manifest has 600: 10 missing"),
        "{points:#}"
    );
    let dim = check(&report, "every title vector");
    assert_eq!(dim["status"], "failed");
    assert!(dim["detail"].as_str().unwrap().contains("590 of another dimension"), "{dim:#}");
    no_engine_left(&sb);
}

#[test]
fn a_full_storage_snapshot_restores_the_named_collection() {
    let sb = Sandbox::new();
    // A full storage snapshot: the collection snapshots and `config.json` mapping names to them.
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mapping = serde_json::json!({"collections_mapping": {"docs": SNAPSHOT, "faq": "faq-1-2026-11-29-03-00-00.snapshot"},
                                     "collections_aliases": {}});
    add(&mut b, "config.json", mapping.to_string().as_bytes());
    add(&mut b, SNAPSHOT, &sample_snapshot());
    let full = b.into_inner().unwrap();
    sb.write("backups/full-snapshot-2026-11-29-03-00-00.snapshot", &full);
    sb.write("backups/full-snapshot-2026-11-29-03-00-00.snapshot.checksum", sha256_hex(&full));
    example_over_backups(&sb);
    // Two collections: which one is for the runbook to say.
    fails_with(&sb, "qdrant.yaml", "holds 2 collections (docs, faq); name the one to restore with `collection:`");
    sb.edit("qdrant.yaml", "adapter: qdrant", "adapter: qdrant\n  collection: faq");
    fails_with(
        &sb,
        "qdrant.yaml",
        "collection `faq`'s snapshot `faq-1-2026-11-29-03-00-00.snapshot` is not in the backup",
    );
    sb.edit("qdrant.yaml", "collection: faq", "collection: docs");
    let report = passes(&sb, "qdrant.yaml");
    assert!(step(&report, "restore")["detail"].as_str().unwrap().starts_with("full storage snapshot of `docs`"));
}

#[test]
fn a_shard_snapshot_is_restored_under_the_collection_the_runbook_names() {
    let sb = Sandbox::new();
    // A shard snapshot: one shard's folder (`segments/`, `wal/`, ...) at the root.
    let shard: Vec<_> = entries(&sample_snapshot())
        .into_iter()
        .filter_map(|(p, h, d)| p.strip_prefix("0/").map(|rest| (rest.to_string(), h, d)))
        .collect();
    let snapshot = tar_of(&shard);
    sb.write("backups/shard-0.snapshot", &snapshot);
    sb.write("backups/shard-0.snapshot.checksum", sha256_hex(&snapshot));
    example_over_backups(&sb);
    // Its file name does not say the collection: the checks' `collection: docs` cannot be taken on trust.
    fails_with(&sb, "qdrant.yaml", "the snapshot does not say its collection's name");
    sb.edit("qdrant.yaml", "adapter: qdrant", "adapter: qdrant\n  collection: docs");
    let report = passes(&sb, "qdrant.yaml");
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.starts_with("shard snapshot of `docs`: 600 points"), "{detail}");
}
