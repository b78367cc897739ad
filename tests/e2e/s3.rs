//! Backups read from a real S3-compatible server (SeaweedFS) through opendal's S3 service,
//! configured by a storage profile whose credentials are secret references.

use crate::servers::{ACCESS_KEY, SECRET_KEY, Seaweed};
use crate::support::Sandbox;

fn s3_sandbox(server: &Seaweed) -> Sandbox {
    let sb = Sandbox::quickstart().env("S3_KEY", ACCESS_KEY).env("S3_SECRET", SECRET_KEY);
    sb.write(
        "drillbook.yaml",
        format!(
            "storage:\n  backups:\n    type: s3\n    bucket: drill-backups\n    endpoint: {}\n    region: us-east-1\n    access_key_id: ${{env:S3_KEY}}\n    secret_access_key: ${{env:S3_SECRET}}\n",
            server.endpoint()
        ),
    );
    sb.edit("quickstart.yaml", "  path: quickstart/backups/", "  storage: backups\n  path: rag/");
    sb
}

#[test]
fn drill_from_s3_with_checksum_and_failures() {
    let server = Seaweed::start();
    server.create_bucket("drill-backups");
    let sb = s3_sandbox(&server);
    let backup = sb.path("quickstart/backups/rag-2026-11-29.tar.zst");
    server.put("drill-backups", "rag/rag-2026-11-29.tar.zst", &backup);
    server.put(
        "drill-backups",
        "rag/rag-2026-11-29.tar.zst.sha256",
        &sb.path("quickstart/backups/rag-2026-11-29.tar.zst.sha256"),
    );
    // An older, unrelated object that `pick: latest` must not choose.
    sb.write("old.txt", "old");
    server.put("drill-backups", "rag/notes.txt", &sb.path("old.txt"));

    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["backup"]["location"], "backups:rag/rag-2026-11-29.tar.zst");
    assert_eq!(report["backup"]["sha256"], crate::support::sha256_hex(&std::fs::read(&backup).unwrap()));
    assert!(!run.stdout.contains(SECRET_KEY) && !run.stderr.contains(SECRET_KEY));
    sb.assert_no_leftovers();

    // A newer upload with a wrong sidecar: picked as latest, refused by integrity.
    let tampered = sb.write("tampered.tar.zst", b"not the backup");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    server.put("drill-backups", "rag/rag-2026-11-30.tar.zst", &tampered);
    server.put(
        "drill-backups",
        "rag/rag-2026-11-30.tar.zst.sha256",
        &sb.path("quickstart/backups/rag-2026-11-29.tar.zst.sha256"),
    );
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(report["backup"]["location"], "backups:rag/rag-2026-11-30.tar.zst");
    assert!(report["failure_reasons"][0].as_str().unwrap().starts_with("integrity: sha256 mismatch"), "{run}");

    // Nothing under the prefix: a precise locate failure.
    sb.edit("quickstart.yaml", "  path: rag/", "  path: nothing-here/");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert!(report["failure_reasons"][0].as_str().unwrap().contains("backups:nothing-here/"), "{run}");
    assert_eq!(sb.history().len(), 3);
    sb.assert_no_leftovers();
}

// fault: wrong S3 credentials | failed | `locate: …` S3's refusal | the secret in no output, TMPDIR empty
#[test]
fn wrong_s3_credentials_fail_the_drill_without_leaking_them() {
    let server = Seaweed::start();
    server.create_bucket("drill-backups");
    let sb = s3_sandbox(&server).env("S3_SECRET", "wrong-secret-9876");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    assert!(report["failure_reasons"][0].as_str().unwrap().contains("SignatureDoesNotMatch"), "{run}");
    assert!(!run.stdout.contains("wrong-secret-9876") && !run.stderr.contains("wrong-secret-9876"));
}

#[test]
fn init_writes_a_runbook_for_a_backup_in_a_storage_profile() {
    let server = Seaweed::start();
    server.create_bucket("drill-backups");
    let sb = s3_sandbox(&server);
    for name in ["rag-2026-11-29.tar.zst", "rag-2026-11-29.tar.zst.sha256"] {
        server.put("drill-backups", &format!("rag/{name}"), &sb.path(&format!("quickstart/backups/{name}")));
    }
    let r = sb.run(&["init", "--source", "backups:rag/", "--name", "rag", "--out", "runbooks"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("newest backup: backups:rag/rag-2026-11-29.tar.zst"), "the sidecar is not a backup: {r}");
    let yaml = sb.read("runbooks/rag.yaml");
    for want in
        ["storage: backups", "path: \"rag/\"", "match: \"*.tar.zst\"", "checksum: sidecar", "file: \"docs.sqlite\""]
    {
        assert!(yaml.contains(want), "{want} missing:\n{yaml}");
    }
    let (run, report) = sb.drill("runbooks/rag.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["backup"]["location"], "backups:rag/rag-2026-11-29.tar.zst");
    // The storage profile's secrets are references in the config; neither the runbook, its truth
    // nor any output holds them.
    crate::support::assert_secret_nowhere(&sb, &r, SECRET_KEY, "secret key");
    for written in crate::support::files_under(&sb.path("runbooks")) {
        let text = String::from_utf8_lossy(&std::fs::read(&written).unwrap()).into_owned();
        assert!(!text.contains(SECRET_KEY), "the secret key is in {}", written.display());
    }
    sb.assert_no_leftovers();
}
