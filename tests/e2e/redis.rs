//! The redis adapter against backups made by a real Redis 7: RDB files and multi-part AOF
//! folders, proven by `redis-check-*`, a scratch `redis-server` and a manifest captured from
//! the source; and the ways such a backup goes bad.

use crate::bad_input::{fails_with, step};
use crate::servers::RedisSource;
use crate::support::{Sandbox, TarBuilder, gzip, processes_under, zstd};

/// A source with every value type, keys with and without TTL, and a second database.
fn populated(debug: bool, extra: &[&str]) -> RedisSource {
    let src = RedisSource::start(debug, extra);
    for i in 0..500 {
        src.cli(&["SET", &format!("key:{i}"), &format!("value-{i}-{}", "x".repeat(i % 40))]);
    }
    src.cli(&["HSET", "user:1", "name", "ada", "lang", "en"]);
    src.cli(&["RPUSH", "queue:jobs", "a", "b", "c"]);
    src.cli(&["SADD", "tags", "x", "y", "z"]);
    src.cli(&["ZADD", "board", "1", "a", "2", "b"]);
    src.cli(&["XADD", "events", "*", "k", "v"]);
    src.cli(&["SET", "session:abc", "token", "EX", "86400"]);
    src.cli(&["-n", "3", "SET", "other:1", "v"]);
    // Large enough for hashtable encodings, whose order follows each server's random hash seed.
    let fields: Vec<String> = (0..300).flat_map(|i| [format!("f{i}"), format!("v{i}")]).collect();
    src.cli(&[&["HSET", "big:hash"][..], &fields.iter().map(String::as_str).collect::<Vec<_>>()].concat());
    let members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    src.cli(&[&["SADD", "big:set"][..], &members.iter().map(String::as_str).collect::<Vec<_>>()].concat());
    src
}

/// `drillbook manifest --adapter redis` of `src` into the sandbox's `truth/redis.json`.
fn manifest(sb: &Sandbox, src: &RedisSource) -> serde_json::Value {
    let out = sb.path("truth/redis.json");
    let r = sb.run(&[
        "manifest",
        "--adapter",
        "redis",
        "--url",
        &src.url(),
        "--out",
        out.to_str().unwrap(),
        "--pattern",
        "key:*",
        "--pattern",
        "3:other:*",
        "--sample",
        "5",
    ]);
    assert_eq!(r.code, 0, "{r}");
    serde_json::from_str(&sb.read("truth/redis.json")).unwrap()
}

fn runbook(extra_checks: &str) -> String {
    format!(
        r#"version: 1
name: redis-sessions
owner: sre
asset: {{ name: sessions, kind: cache, system: redis }}
objectives: {{ rto: 5m }}
source: {{ path: backups/ }}
restore: {{ adapter: redis }}
verify:
  - name: key counts as at backup time
    keys: {{ manifest: truth/redis.json }}
  - name: the dataset is the one captured
    dataset_digest: {{ manifest: truth/redis.json }}
  - name: sampled keys
    sample: {{ manifest: truth/redis.json }}
{extra_checks}timeouts: {{ step: 2m, drill: 4m }}
"#
    )
}

fn passes(sb: &Sandbox) -> serde_json::Value {
    let (run, report) = sb.drill("redis.yaml");
    assert_eq!(run.code, 0, "{run}\n{}", serde_json::to_string_pretty(&report["checks"]).unwrap());
    assert_eq!(report["verdict"], "passed");
    sb.assert_no_leftovers();
    assert!(processes_under(&sb.root).is_empty(), "{:?}", processes_under(&sb.root));
    report
}

/// A timed part of the restore: a step of its own in the report.
fn part<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    step(report, name)
}

#[test]
fn an_rdb_backup_is_checked_loaded_and_equal_to_its_manifest() {
    let src = populated(true, &[]);
    let sb = Sandbox::new();
    let m = manifest(&sb, &src);
    assert_eq!(m["digest"]["method"], "debug-digest");
    assert_eq!(m["databases"]["0"], 508);
    assert_eq!(m["samples"].as_array().unwrap().len(), 6, "5 of db 0, 1 of db 3: {m:#}");
    let user_digest = src.cli(&["DEBUG", "DIGEST-VALUE", "user:1"]);
    sb.write("backups/dump.rdb.gz", gzip(&src.rdb()));
    // The object says it was stored two hours from now; the RDB's own `ctime` says now.
    let touched = std::process::Command::new("touch")
        .args(["-d", "+2 hours"])
        .arg(sb.path("backups/dump.rdb.gz"))
        .status()
        .expect("touch");
    assert!(touched.success());
    sb.write(
        "redis.yaml",
        runbook(&format!(
            r#"  - name: populated keys
    keys: {{ pattern: "key:*", expect: "== 500" }}
  - name: the other database
    keys: {{ db: 3, expect: "== 1" }}
  - name: named keys
    sample: {{ keys: [{{ key: "session:abc", type: string, ttl: true }}, {{ key: user:1, type: hash, ttl: false, digest: "{user_digest}" }}] }}
  - name: memory in range
    memory: {{ min: 100KB, max: 1GiB }}
"#
        )),
    );
    let report = passes(&sb);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    assert_eq!(part(&report, "restore.integrity")["detail"], "redis-check-rdb");
    assert!(part(&report, "restore.load")["detail"].as_str().unwrap().starts_with("redis-server 7."));
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.contains("redis-check-rdb: OK (509 keys, 1 with a TTL)"), "{detail}");
    assert!(detail.contains("db0=508, db3=1"), "{detail}");
    let backup = &report["backup"];
    assert_eq!(backup["taken_from"], "its RDB `ctime` field", "{backup}");
    assert!((0..300).contains(&backup["age_seconds"].as_i64().unwrap_or(-1)), "{backup}");
}

#[test]
fn without_debug_on_the_source_the_manifest_digests_the_values() {
    // The RDB of a source with DEBUG, loaded into a second source that refuses DEBUG (Redis 7's default).
    let first = populated(true, &[]);
    let rdb = first.rdb();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dump.rdb"), &rdb).unwrap();
    let src = RedisSource::start_in(dir, false, &[]);
    assert!(src.cli(&["DEBUG", "DIGEST"]).contains("DEBUG command not allowed"));
    let sb = Sandbox::new();
    let m = manifest(&sb, &src);
    assert_eq!(m["digest"]["method"], "values-sha256", "{m:#}");
    assert!(m["digest"]["value"].as_str().unwrap().starts_with("509:"));
    sb.write("backups/dump.rdb", &rdb);
    sb.write("redis.yaml", runbook(""));
    let report = passes(&sb);
    let digest = report["checks"].as_array().unwrap().iter().find(|c| c["kind"] == "dataset_digest").unwrap();
    assert!(digest["detail"].as_str().unwrap().contains("digest of the values read back"), "{digest:#}");
}

/// A Redis 7 multi-part AOF folder: a base RDB from a rewrite and an incremental part.
fn aof_source() -> RedisSource {
    let src = populated(true, &["--appendonly", "yes"]);
    src.cli(&["BGREWRITEAOF"]);
    while src.cli(&["INFO", "persistence"]).contains("aof_rewrite_in_progress:1") {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Written after the rewrite: only the incremental file holds these.
    src.cli(&["SET", "after:rewrite", "1"]);
    src.cli(&["DEL", "key:0"]);
    src
}

fn aof_tar(src: &RedisSource, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let dir = src.dir.path().join("appendonlydir");
    let mut tar = TarBuilder::new();
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        tar = tar.file(&format!("appendonlydir/{name}"), &edit(&name, bytes));
    }
    tar.finish()
}

#[test]
fn an_aof_folder_is_checked_and_replayed() {
    let src = aof_source();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    sb.write("backups/redis-aof.tar.zst", zstd(&aof_tar(&src, |_, b| b)));
    sb.write(
        "redis.yaml",
        runbook("  - name: written after the rewrite\n    keys: { pattern: \"after:*\", expect: \"== 1\" }\n"),
    );
    let report = passes(&sb);
    assert_eq!(part(&report, "restore.integrity")["detail"], "redis-check-aof");
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.contains("redis-check-aof: OK") && detail.contains("db0=508"), "{detail}");
}

// fault: a truncated RDB | failed | `redis-check-rdb found the backup damaged: Unexpected EOF reading RDB file` | TMPDIR empty, history row
#[test]
fn a_truncated_rdb_is_named_by_redis_check_rdb() {
    let src = populated(true, &[]);
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let rdb = src.rdb();
    sb.write("backups/dump.rdb", &rdb[..rdb.len() / 2]);
    sb.write("redis.yaml", runbook(""));
    let (_, report) =
        fails_with(&sb, "redis.yaml", "redis-check-rdb found the backup damaged: Unexpected EOF reading RDB file");
    assert_eq!(step(&report, "verify")["status"], "skipped");
    assert!(processes_under(&sb.root).is_empty());
}

// fault: one flipped byte in an RDB | failed | `RDB CRC error` | TMPDIR empty, history row
#[test]
fn a_flipped_byte_is_a_crc_error() {
    let src = populated(true, &[]);
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let mut rdb = src.rdb();
    let at = rdb.windows(9).position(|w| w == b"value-250").unwrap() + 7;
    rdb[at] ^= 0x01;
    sb.write("backups/dump.rdb", &rdb);
    sb.write("redis.yaml", runbook(""));
    fails_with(&sb, "redis.yaml", "RDB CRC error");
}

// fault: an AOF cut short | failed | `redis-check-aof found the backup damaged` | TMPDIR empty, history row
#[test]
fn an_aof_with_a_truncated_tail_fails() {
    let src = aof_source();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let tar = aof_tar(&src, |name, b| if name.ends_with(".incr.aof") { b[..b.len() - 5].to_vec() } else { b });
    sb.write("backups/redis-aof.tar", &tar);
    sb.write("redis.yaml", runbook(""));
    fails_with(&sb, "redis.yaml", "redis-check-aof found the backup damaged");
}

// fault: an RDB from a newer Redis | failed | `the backup is RDB version 11, written by Redis 7.2 or newer; redis-server 7.0…` | TMPDIR empty, history row
#[test]
fn an_rdb_from_a_newer_redis_names_both_versions() {
    let src = populated(true, &[]);
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let mut rdb = src.rdb();
    rdb[..9].copy_from_slice(b"REDIS0011");
    sb.write("backups/dump.rdb", &rdb);
    sb.write("redis.yaml", runbook(""));
    let (_, report) =
        fails_with(&sb, "redis.yaml", "the backup is RDB version 11, written by Redis 7.2 or newer; redis-server 7.");
    let reason = report["failure_reasons"].to_string();
    assert!(reason.contains("reads RDB versions up to 10"), "{reason}");
}

// fault: keys deleted before the backup was taken | failed | `db 0: 488 keys, expected 508` | TMPDIR empty, history row
#[test]
fn keys_missing_against_the_manifest_fail_the_counts_and_the_digest() {
    let src = populated(true, &[]);
    let sb = Sandbox::new();
    manifest(&sb, &src);
    // The backup was taken after some keys were lost.
    for i in 0..20 {
        src.cli(&["DEL", &format!("key:{i}")]);
    }
    sb.write("backups/dump.rdb", src.rdb());
    sb.write("redis.yaml", runbook(""));
    let (_, report) = fails_with(&sb, "redis.yaml", "db 0: 488 keys, expected 508");
    let checks = report["checks"].as_array().unwrap();
    let by_kind = |k: &str| checks.iter().find(|c| c["kind"] == k).unwrap();
    assert_eq!(by_kind("keys")["status"], "failed");
    assert!(by_kind("keys")["detail"].as_str().unwrap().contains("db 0 `key:*`: 480 keys, expected 500"));
    assert_eq!(by_kind("dataset_digest")["status"], "failed");
}

// fault: a backup that crashes the scratch redis-server | failed | `redis-server crashed: server killed by signal 11 (segmentation fault)` | TMPDIR empty, history row
#[test]
fn an_aof_that_crashes_the_server_is_a_named_crash() {
    let src = aof_source();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let segfault = b"*2\r\n$5\r\nDEBUG\r\n$8\r\nSEGFAULT\r\n";
    let tar = aof_tar(&src, |name, mut b| {
        if name.ends_with(".incr.aof") {
            b.extend_from_slice(segfault);
        }
        b
    });
    sb.write("backups/redis-aof.tar", &tar);
    sb.write("redis.yaml", runbook(""));
    let (_, report) =
        fails_with(&sb, "redis.yaml", "redis-server crashed: server killed by signal 11 (segmentation fault)");
    assert_eq!(part(&report, "restore.load")["name"], "restore.load");
}

#[test]
fn an_aof_cannot_move_the_server_out_of_its_folder() {
    let src = aof_source();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let outside = sb.path("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let dir = outside.to_str().unwrap();
    let hostile =
        format!("*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$3\r\ndir\r\n${}\r\n{dir}\r\n*1\r\n$4\r\nSAVE\r\n", dir.len());
    let tar = aof_tar(&src, |name, mut b| {
        if name.ends_with(".incr.aof") {
            b.extend_from_slice(hostile.as_bytes());
        }
        b
    });
    sb.write("backups/redis-aof.tar", &tar);
    sb.write("redis.yaml", runbook(""));
    // The dataset is intact (CONFIG SET dir is refused, SAVE wrote inside the scratch folder).
    passes(&sb);
    let written: Vec<_> = std::fs::read_dir(&outside).unwrap().flatten().map(|e| e.path()).collect();
    assert!(written.is_empty(), "the backup made the server write {written:?}");
}

// fault: an AOF manifest naming a file outside its folder | failed | `… is not a plain name in the AOF folder` | TMPDIR empty, history row
#[test]
fn an_aof_manifest_naming_a_file_outside_its_folder_is_refused() {
    let src = aof_source();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let tar = aof_tar(&src, |name, b| {
        if name.ends_with(".manifest") {
            String::from_utf8(b).unwrap().replacen("file appendonly", "file ../../appendonly", 1).into_bytes()
        } else {
            b
        }
    });
    sb.write("backups/redis-aof.tar", &tar);
    sb.write("redis.yaml", runbook(""));
    fails_with(&sb, "redis.yaml", "is not a plain name in the AOF folder");
}

#[test]
fn the_redis_example_runs_as_documented() {
    let sb = Sandbox::new().with_example("redis");
    let report = passes(&sb);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    assert_eq!(step(&report, "integrity")["status"], "passed", "the sidecar checksum is verified");
}
