//! Check kinds and source options beyond the quickstart: SHA256SUMS manifests, `pick` by
//! name, single-file backups, JSON-encoded vectors, JSON Schema, and recall that drops.

use std::process::Command;

use crate::support::{Sandbox, files_runbook, gzip, sha256_hex};

fn sqlite(db: &std::path::Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 is needed to build fixtures: run scripts/test-deps.sh (apt-get install sqlite3)");
    assert!(out.status.success(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sha256sums_manifest_pick_by_name_and_a_single_gzipped_database() {
    let sb = Sandbox::new();
    let db = sb.path("scratch.sqlite");
    sqlite(&db, "create table kv (k text primary key, v text); insert into kv values ('a','1'),('b','2');");
    let gz = gzip(&std::fs::read(&db).unwrap());
    sb.write("backups/kv-1.sqlite.gz", &gz);
    sb.write("backups/kv-2.sqlite.gz", b"newer but not the one we pick");
    sb.write(
        "backups/SHA256SUMS",
        format!("{}  kv-1.sqlite.gz\n{}  kv-2.sqlite.gz\n", sha256_hex(&gz), "0".repeat(64)),
    );
    let rb = "version: 1\nname: kv\nowner: sre\nasset: { name: kv, kind: relational }\nsource: { path: backups/, pick: kv-1.sqlite.gz, checksum: manifest }\nrestore: { adapter: sqlite }\nverify:\n  - name: rows\n    sql: select count(*) from kv\n    expect: \"== 2\"\n";
    sb.write("rb.yaml", rb);
    let (run, report) = sb.drill("rb.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert!(report["backup"]["location"].as_str().unwrap().ends_with("backups/kv-1.sqlite.gz"));
    let unpack = report["steps"].as_array().unwrap().iter().find(|s| s["name"] == "unpack").unwrap();
    assert!(unpack["detail"].as_str().unwrap().starts_with("gzip → kv-1.sqlite"), "{run}");
    let integrity = report["steps"].as_array().unwrap().iter().find(|s| s["name"] == "integrity").unwrap();
    assert!(integrity["detail"].as_str().unwrap().contains("SHA256SUMS"), "{run}");

    // The other object is listed with a wrong digest: picking it fails integrity.
    sb.edit("rb.yaml", "pick: kv-1.sqlite.gz", "pick: kv-2.sqlite.gz");
    let (run, report) = sb.drill("rb.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert!(report["failure_reasons"][0].as_str().unwrap().contains("the SHA256SUMS manifest says 0000"), "{run}");
    // An object the manifest does not list.
    sb.write("backups/kv-3.sqlite.gz", &gz);
    sb.edit("rb.yaml", "pick: kv-2.sqlite.gz", "pick: kv-3.sqlite.gz");
    let (run, report) = sb.drill("rb.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert!(
        report["failure_reasons"][0].as_str().unwrap().contains("SHA256SUMS has no line for `kv-3.sqlite.gz`"),
        "{run}"
    );
    sb.assert_no_leftovers();
}

#[test]
fn json_vectors_integrity_and_recall_catch_damage() {
    let sb = Sandbox::new();
    let db = sb.path("v.sqlite");
    sqlite(
        &db,
        "create table items (id integer primary key, emb text);
         insert into items values (1,'[1,0,0]'),(2,'[0,1,0]'),(3,'[0,0,1]'),(4,'[0.7,0.7,0]');",
    );
    sb.write("backups/v.sqlite", std::fs::read(&db).unwrap());
    sb.write(
        "golden.jsonl",
        "{\"id\":\"x\",\"vector\":[1,0.1,0],\"expected\":[1,4]}\n{\"id\":\"z\",\"vector\":[0,0,1],\"expected\":[3]}\n",
    );
    let rb = "version: 1\nname: vec\nowner: sre\nasset: { name: v, kind: vector-store }\nsource: { path: backups/ }\nrestore: { adapter: sqlite }\nverify:\n  - name: integrity\n    vector_integrity: { table: items, column: emb, dim: 3, encoding: json, max_norm: 1.01 }\n  - name: recall\n    vector_recall: { table: items, column: emb, id: id, queries: golden.jsonl, k: 2, min_recall: 1.0, encoding: json }\n";
    sb.write("rb.yaml", rb);
    let (run, _) = sb.drill("rb.yaml");
    assert_eq!(run.code, 0, "{run}");

    // Damage: a vector of the wrong dimension, a NaN, a NULL; one id's vector moved away.
    sqlite(
        &db,
        "insert into items values (5,'[1,2]'),(6,'[NaN,0,0]'),(7,NULL); update items set emb='[0,-1,0]' where id=4;",
    );
    sb.write("backups/v.sqlite", std::fs::read(&db).unwrap());
    let (run, report) = sb.drill("rb.yaml");
    assert_eq!(run.code, 1, "{run}");
    let integrity = &report["checks"][0];
    assert_eq!(integrity["status"], "failed");
    assert_eq!(integrity["observed"]["wrong_dim"], 1);
    assert_eq!(integrity["observed"]["non_finite"], 1);
    assert_eq!(integrity["observed"]["null"], 1);
    let recall = &report["checks"][1];
    assert_eq!(recall["status"], "failed");
    assert_eq!(recall["observed"], 0.75);
    assert!(recall["detail"].as_str().unwrap().contains("worst: x=0.50, z=1.00"), "{run}");
    sb.assert_no_leftovers();
}

#[test]
fn config_is_validated_against_a_json_schema() {
    let sb = Sandbox::new();
    let tar = crate::support::TarBuilder::new()
        .file("conf/ok.toml", b"[embedding]\nmodel = \"m\"\ndim = 384\n")
        .file("conf/bad.toml", b"[embedding]\nmodel = \"m\"\ndim = \"three\"\n")
        .finish();
    sb.write("backups/conf.tar.zst", crate::support::zstd(&tar));
    sb.write(
        "schema.json",
        r#"{"type":"object","required":["embedding"],"properties":{"embedding":{"type":"object","properties":{"dim":{"type":"integer"}}}}}"#,
    );
    sb.write(
        "rb.yaml",
        files_runbook("conf", "verify:\n  - name: conf\n    config_parse: { path: \"conf/*.toml\", require: [embedding.model], schema: schema.json }\n"),
    );
    let (run, report) = sb.drill("rb.yaml");
    assert_eq!(run.code, 1, "{run}");
    let detail = report["checks"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("conf/bad.toml: does not match the schema at `/embedding/dim`"), "{run}");
    assert!(!detail.contains("ok.toml"), "{run}");
}
