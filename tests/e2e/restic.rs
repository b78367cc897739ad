//! restic repositories as a source (`source.restic`), made by the real `restic` in each test:
//! the chosen snapshot is restored by restic, its tree checked with the unpack rules, and proven
//! by the quickstart's checks; `pick` chooses among snapshots; a wrong password, a damaged pack
//! and a missing snapshot fail the drill with the reason; the password never appears in output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bad_input::{fails_with, step};
use crate::servers::{ACCESS_KEY, SECRET_KEY, Seaweed};
use crate::support::{Sandbox, assert_secret_nowhere, files_under, is_root, noise};

const PASSWORD: &str = "correct horse battery staple";
const BACKUP: &str = "quickstart/backups/rag-2026-11-29.tar.zst";

/// `restic` on `repo` (a folder or `s3:…`, with the test S3 server's keys) with these tests'
/// password, in `dir`; its stdout.
fn restic_in(repo: impl AsRef<std::ffi::OsStr>, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .arg("--repo")
        .arg(repo)
        .arg("--no-cache")
        .args(args)
        .current_dir(dir)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("restic: apt-get install restic (scripts/test-deps.sh)");
    assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn restic(repo: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    restic_in(repo, Path::new("/"), args)
}

/// Backs up `tree` (its content at the snapshot's root) at `time` with `tags`; the short id.
fn backup(repo: impl AsRef<std::ffi::OsStr>, tree: &Path, time: &str, tags: &str) -> String {
    let args = ["backup", ".", "--json", "--host", "drill-test", "--time", time, "--tag", tags];
    let text = restic_in(repo, tree, &args);
    let summary: serde_json::Value =
        serde_json::from_str(text.lines().rfind(|l| l.contains("\"summary\"")).expect("a summary line")).unwrap();
    summary["snapshot_id"].as_str().unwrap()[..8].to_string()
}

/// restic writes its repository for its owner alone; the unprivileged user restic runs as in a
/// drill (when the tests run as root) must be able to read it, as the README says.
fn readable(repo: &Path) {
    if is_root() {
        let out = Command::new("chmod").arg("-R").arg("go+rX").arg(repo).output().unwrap();
        assert!(out.status.success());
    }
}

/// The quickstart's backup unpacked into `tree/` of the sandbox.
fn quickstart_tree(sb: &Sandbox, name: &str) -> PathBuf {
    let tree = sb.path(name);
    std::fs::create_dir_all(&tree).unwrap();
    let out = Command::new("tar").arg("--zstd").arg("-xf").arg(sb.path(BACKUP)).arg("-C").arg(&tree).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tree
}

/// A quickstart sandbox whose backup is a snapshot (tag `nightly`) of a restic repository
/// `repo/`; its runbook reads it with `restic` options `extra` (YAML lines under `restic:`).
fn restic_quickstart(extra: &str) -> (Sandbox, PathBuf, String) {
    let (sb, repo, tree) = empty_repository();
    let id = backup(&repo, &tree, "2026-11-29 03:00:00", "nightly");
    readable(&repo);
    use_restic(&sb, extra);
    (sb, repo, id)
}

/// A quickstart sandbox with an empty restic repository `repo/` and the quickstart's backup
/// unpacked into `tree/`, ready to be backed up.
fn empty_repository() -> (Sandbox, PathBuf, PathBuf) {
    let sb = Sandbox::quickstart().env("DRILL_RESTIC_PASSWORD", PASSWORD);
    let repo = sb.path("repo");
    restic(&repo, &["init"]);
    let tree = quickstart_tree(&sb, "tree");
    (sb, repo, tree)
}

fn use_restic(sb: &Sandbox, extra: &str) {
    use_restic_repository(sb, "repo", extra);
}

fn use_restic_repository(sb: &Sandbox, repository: &str, extra: &str) {
    sb.edit(
        "quickstart.yaml",
        "  path: quickstart/backups/\n  pick: latest\n  match: \"*.tar.zst\"\n  checksum: sidecar\n",
        &format!(
            "  restic:\n    repository: {repository}\n    password: \"${{env:DRILL_RESTIC_PASSWORD}}\"\n    tags: [nightly]\n{extra}"
        ),
    );
    // The sample snapshot is from 2026-11-29: the RPO is not what these tests are about.
    sb.edit("quickstart.yaml", "rpo: 30d", "rpo: 3650d");
}

#[test]
fn a_restic_snapshot_is_restored_checked_and_proven() {
    let (sb, repo, id) = restic_quickstart("    verify_repository: 100%\n");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["verdict"], "passed", "{run}");
    let location = report["backup"]["location"].as_str().unwrap();
    assert_eq!(location, format!("restic:{}#{id}:/", repo.display()));
    // The recovery point's time is the snapshot's, which the RPO is measured from.
    assert_eq!(report["backup"]["modified_at"], "2026-11-29T03:00:00Z");
    let locate = step(&report, "locate")["detail"].as_str().unwrap();
    assert!(locate.contains(&format!("snapshot {id} of ")) && locate.contains("taken on drill-test"), "{locate}");
    let integrity = step(&report, "integrity")["detail"].as_str().unwrap();
    assert!(
        integrity.contains("`restic check --read-data-subset 100%`") && integrity.contains("no errors were found"),
        "{integrity}"
    );
    let unpack = step(&report, "unpack")["detail"].as_str().unwrap();
    assert!(unpack.starts_with("restic restore: 4 files, 221431 bytes"), "{unpack}");
    assert_secret_nowhere(&sb, &run, PASSWORD, "password");
    sb.assert_no_leftovers();
    // The repository is only read: no lock, no cache written into it.
    assert_eq!(std::fs::read_dir(repo.join("locks")).unwrap().count(), 0);
}

#[test]
fn one_file_of_a_snapshot_is_restored_as_itself() {
    // The quickstart's own .tar.zst backed up by restic: `path` names the file, which is then
    // unpacked exactly as if it had been fetched from storage.
    let sb = Sandbox::quickstart().env("DRILL_RESTIC_PASSWORD", PASSWORD);
    let repo = sb.path("repo");
    restic(&repo, &["init"]);
    backup(&repo, &sb.path("quickstart/backups"), "2026-11-29 03:00:00", "nightly");
    readable(&repo);
    use_restic(&sb, "    path: /rag-2026-11-29.tar.zst\n");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    let unpack = step(&report, "unpack")["detail"].as_str().unwrap();
    assert!(unpack.starts_with("zstd+tar:"), "{unpack}");
    let stored = std::fs::read(sb.path(BACKUP)).unwrap();
    assert_eq!(report["backup"]["sha256"], crate::support::sha256_hex(&stored), "the dump of a file is the file");
}

#[test]
fn pick_chooses_among_snapshots_and_snapshot_names_one() {
    let (sb, repo, tree) = empty_repository();
    let first = backup(&repo, &tree, "2026-11-10 03:00:00", "nightly");
    let second = backup(&repo, &tree, "2026-11-20 03:00:00", "nightly");
    let third = backup(&repo, &tree, "2026-11-29 03:00:00", "nightly");
    // Another tag's snapshot, newer than all: never chosen.
    let other = backup(&repo, &tree, "2026-11-30 03:00:00", "weekly");
    readable(&repo);
    use_restic(&sb, "");
    let chosen = |sb: &Sandbox| {
        let (run, report) = sb.drill("quickstart.yaml");
        assert_eq!(run.code, 0, "{run}");
        let location = report["backup"]["location"].as_str().unwrap().to_string();
        location.rsplit('#').next().unwrap()[..8].to_string()
    };
    assert_eq!(chosen(&sb), third, "latest with tag nightly");
    sb.edit("quickstart.yaml", "tags: [nightly]\n", "tags: [nightly]\n  pick: oldest\n");
    assert_eq!(chosen(&sb), first);
    sb.edit("quickstart.yaml", "pick: oldest", "pick: { at: \"2026-11-25T00:00:00Z\" }");
    assert_eq!(chosen(&sb), second);
    sb.edit("quickstart.yaml", "pick: { at: \"2026-11-25T00:00:00Z\" }", "pick: latest");
    sb.edit("quickstart.yaml", "tags: [nightly]\n", &format!("tags: [nightly]\n    snapshot: {other}\n"));
    assert_eq!(chosen(&sb), other, "an id names one snapshot whatever its tags");

    sb.edit("quickstart.yaml", &format!("snapshot: {other}"), "snapshot: 0badc0de");
    fails_with(&sb, "quickstart.yaml", "locate: snapshot 0badc0de does not exist in");
    sb.edit("quickstart.yaml", "    snapshot: 0badc0de\n", "");
    sb.edit("quickstart.yaml", "pick: latest", "pick: { at: \"2026-11-01T00:00:00Z\" }");
    fails_with(&sb, "quickstart.yaml", "locate: no snapshot at or before 2026-11-01T00:00:00Z in");
    // `latest` of a tag no snapshot carries: restic finds none to restore, and says so.
    sb.edit("quickstart.yaml", "pick: { at: \"2026-11-01T00:00:00Z\" }", "pick: latest");
    sb.edit("quickstart.yaml", "tags: [nightly]", "tags: [hourly]");
    fails_with(&sb, "quickstart.yaml", &format!("locate: no snapshot in {} with tags hourly", repo.display()));
}

#[test]
fn a_wrong_password_fails_without_showing_either() {
    let (sb, _, _) = restic_quickstart("");
    let sb = sb.env("DRILL_RESTIC_PASSWORD", "not the password at all");
    let (run, report) = fails_with(&sb, "quickstart.yaml", "wrong password or no key found");
    assert_eq!(step(&report, "locate")["status"], "failed");
    assert!(!run.stdout.contains("not the password at all"), "{run}");
    assert!(!run.stderr.contains("not the password at all"), "{run}");
}

/// Flips bytes in the middle of the largest pack file written since `before` (a list of
/// packs): the one holding a file's data, not the small one holding its folders.
fn damage_data_pack_after(repo: &Path, before: &[PathBuf]) {
    let pack = files_under(&repo.join("data"))
        .into_iter()
        .filter(|p| !before.contains(p))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a new pack");
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0xff;
    }
    let mut perms = std::fs::metadata(&pack).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&pack, perms).unwrap();
    std::fs::write(&pack, bytes).unwrap();
}

#[test]
fn a_damaged_pack_fails_the_restore_or_the_repository_check() {
    // A pack the snapshot's data lives in: `restic restore` cannot authenticate it.
    let (sb, repo, _) = restic_quickstart("");
    damage_data_pack_after(&repo, &[]);
    let (_, report) = fails_with(&sb, "quickstart.yaml", "fetch: `restic restore` of restic:");
    assert_eq!(step(&report, "fetch")["status"], "failed");

    // A pack of another snapshot: the restore reads back fine, `verify_repository` catches it.
    let (sb, repo, _) = restic_quickstart("    verify_repository: 100%\n");
    let before = files_under(&repo.join("data"));
    let other = sb.write("other/blob.bin", noise(512 * 1024));
    backup(&repo, other.parent().unwrap(), "2026-11-01 03:00:00", "other");
    readable(&repo);
    damage_data_pack_after(&repo, &before);
    let (_, report) = fails_with(&sb, "quickstart.yaml", "integrity: `restic check --read-data-subset 100%` of ");
    assert_eq!(step(&report, "fetch")["status"], "passed");
    assert_eq!(step(&report, "integrity")["status"], "failed");
}

#[test]
fn restic_options_that_cannot_apply_are_invalid() {
    let (sb, _, _) = restic_quickstart("");
    sb.edit("quickstart.yaml", "  restic:\n", "  checksum: sidecar\n  restic:\n");
    let r = sb.run(&["validate", "quickstart.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("source.checksum: not with `restic:`; restic verifies its own data"), "{r}");
    let (sb, _, _) = restic_quickstart("    path: data\n");
    let r = sb.run(&["validate", "quickstart.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("source.restic.path: `data` must be absolute inside the snapshot"), "{r}");
}

#[test]
fn a_snapshot_link_out_of_the_scratch_folder_is_refused() {
    // restic keeps a link as it found it; what it restored meets the same unpack rules as an
    // archive, and the link does not stay in the scratch folder.
    let (sb, repo, tree) = empty_repository();
    std::os::unix::fs::symlink("/etc", tree.join("config/escape")).unwrap();
    backup(&repo, &tree, "2026-11-29 03:00:00", "nightly");
    readable(&repo);
    use_restic(&sb, "");
    let (_, report) = fails_with(
        &sb,
        "quickstart.yaml",
        "unpack: `config/escape` as restored is a symlink pointing out of the scratch dir (to `/etc`); refused",
    );
    assert_eq!(step(&report, "restore")["status"], "skipped");
}

#[test]
fn a_repository_on_s3_is_read_through_restics_own_backend() {
    let server = Seaweed::start();
    server.create_bucket("restic");
    let repository = format!("s3:{}/restic/rag", server.endpoint());
    let sb = Sandbox::quickstart()
        .env("DRILL_RESTIC_PASSWORD", PASSWORD)
        .env("S3_KEY", ACCESS_KEY)
        .env("S3_SECRET", SECRET_KEY);
    restic(&repository, &["init"]);
    let tree = quickstart_tree(&sb, "tree");
    let id = backup(&repository, &tree, "2026-11-29 03:00:00", "nightly");
    // restic's S3 backend reads its keys from its environment, which holds only what `env:` names.
    use_restic_repository(
        &sb,
        &repository,
        "    env: { AWS_ACCESS_KEY_ID: \"${env:S3_KEY}\", AWS_SECRET_ACCESS_KEY: \"${env:S3_SECRET}\" }\n",
    );
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["backup"]["location"], format!("restic:{repository}#{id}:/"));
    assert!(!run.stdout.contains(SECRET_KEY) && !run.stderr.contains(SECRET_KEY), "{run}");
    sb.assert_no_leftovers();

    // Without the keys restic cannot list the bucket: a failed locate with restic's own words.
    sb.edit(
        "quickstart.yaml",
        "    env: { AWS_ACCESS_KEY_ID: \"${env:S3_KEY}\", AWS_SECRET_ACCESS_KEY: \"${env:S3_SECRET}\" }\n",
        "",
    );
    let (_, report) = fails_with(&sb, "quickstart.yaml", "locate: `restic restore` on s3:");
    assert_eq!(step(&report, "locate")["status"], "failed");
}
