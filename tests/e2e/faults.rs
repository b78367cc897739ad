//! Faults of the machine around a drill that no backup causes: the disk filling up, the backup
//! server dying mid-transfer, the history store down when a drill starts. Each ends as a clear
//! error with nothing left behind. `reliability.rs` builds docs/RELIABILITY.md's fault matrix
//! from the `// fault:` lines above these tests and the others.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::servers::{ACCESS_KEY, SECRET_KEY, Seaweed};
use crate::support::{Sandbox, TarBuilder, noise, sha256_hex};

fn runbook(source: &str) -> String {
    format!(
        "version: 1\nname: faults\nowner: sre\nasset: {{ name: blobs, kind: files }}\n\
         source: {source}\nrestore: {{ adapter: files }}\n"
    )
}

/// A tmpfs of `size` mounted on `dir` for the test's life (root only: the tests run as root,
/// as CI does).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=1777"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} (the disk-full test needs root, as CI runs it): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// fault: the disk fills up while the backup unpacks (TMPDIR on a 4 MiB tmpfs, 16 MiB to write) | failed | `unpack: … No space left on device` | drill folder removed, TMPDIR empty, history row
#[test]
fn a_disk_that_fills_up_during_unpack_fails_the_drill_and_frees_the_space() {
    let sb = Sandbox::new();
    let _tmpfs = Tmpfs::mount(&sb.tmp, "4m");
    let tar = TarBuilder::new().file("blobs/big.bin", &noise(16 << 20)).finish();
    sb.write("backups/big.tar.zst", crate::support::zstd(&tar));
    sb.write("rb.yaml", runbook("{ path: backups/, pick: big.tar.zst }"));
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 1, "{r}");
    let reason = report["failure_reasons"][0].as_str().unwrap_or_default();
    assert!(reason.starts_with("unpack:") && reason.contains("No space left on device"), "{reason}");
    sb.assert_no_leftovers();
    let h = sb.history();
    assert_eq!(h[0]["status"], "failed", "{:?}", h[0]);
}

// fault: the S3 server is killed while the backup streams in | failed | `fetch: …` naming the object | drill folder removed, no process left, history row
#[test]
fn an_s3_server_killed_mid_transfer_fails_the_drill_and_leaves_nothing() {
    let mut server = Seaweed::start();
    server.create_bucket("drill-backups");
    let sb = Sandbox::new().env("S3_KEY", ACCESS_KEY).env("S3_SECRET", SECRET_KEY);
    // Big enough that the transfer is still running when the server dies.
    let blob = noise(256 << 20);
    let file = sb.write("upload/blob.bin", &blob);
    server.put("drill-backups", "blobs/blob.bin", &file);
    sb.write("upload/blob.bin.sha256", format!("{}  blob.bin\n", sha256_hex(&blob)));
    server.put("drill-backups", "blobs/blob.bin.sha256", &sb.path("upload/blob.bin.sha256"));
    std::fs::remove_dir_all(sb.path("upload")).unwrap();
    sb.write(
        "drillbook.yaml",
        format!(
            "storage:\n  backups:\n    type: s3\n    bucket: drill-backups\n    endpoint: {}\n    region: us-east-1\n    \
             access_key_id: ${{env:S3_KEY}}\n    secret_access_key: ${{env:S3_SECRET}}\n",
            server.endpoint()
        ),
    );
    sb.write("rb.yaml", runbook("{ storage: backups, path: blobs/, pick: blob.bin, checksum: sidecar }"));
    let child = sb
        .command(&["run", "rb.yaml", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("drillbook");
    // Wait until bytes are arriving in the drill folder, then kill the server.
    let deadline = Instant::now() + Duration::from_secs(60);
    let arrived = loop {
        let written: u64 =
            crate::support::files_under(&sb.tmp).iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
        if written > 0 {
            break written;
        }
        assert!(Instant::now() < deadline, "the transfer never started");
        std::thread::sleep(Duration::from_millis(2));
    };
    server.kill();
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert!(arrived < blob.len() as u64, "killed mid-transfer ({arrived} bytes in)");
    let reason = report["failure_reasons"][0].as_str().unwrap_or_default();
    assert!(reason.starts_with("fetch:") && reason.contains("blobs/blob.bin"), "{reason}");
    sb.assert_no_leftovers();
    assert!(crate::support::processes_under(&sb.root).is_empty(), "a process was left running");
    assert_eq!(sb.history()[0]["status"], "failed");
}

// fault: the history store is down when a drill starts (`drillbook run`, `drillbook daemon`) | not started, exit 1 | `cannot open the history store postgres://…` | no drill folder, no report
#[test]
fn a_history_store_down_at_start_refuses_to_drill_without_a_row() {
    let sb = Sandbox::quickstart();
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sb.write(
        "drillbook.yaml",
        format!("state: \"postgres://postgres@127.0.0.1:{port}/drillbook\"\nhttp: {{ listen: \"127.0.0.1:0\" }}\n"),
    );
    for args in [&["run", "quickstart.yaml"][..], &["daemon"][..]] {
        let r = sb.run(args);
        assert_eq!(r.code, 1, "{r}");
        assert!(r.stderr.contains("cannot open the history store postgres://postgres@127.0.0.1"), "{r}");
        sb.assert_no_leftovers();
        assert!(!sb.path("drill-reports").exists(), "no drill ran without its history row: {r}");
    }
}
