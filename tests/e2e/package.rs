//! The Debian package: built from the test build's binary by `scripts/package.sh --dev`
//! (cargo-deb, the same metadata and assets as a release), installed into this machine with
//! `dpkg -i`, checked as an operator would, and purged again.

use std::path::Path;
use std::process::Command;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Purges the package whatever happens to the test.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "drillbook"]).output();
    }
}

#[test]
fn the_deb_installs_the_binary_unit_user_config_man_pages_and_completions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = Path::new(env!("CARGO_BIN_EXE_drillbook")).parent().unwrap().parent().unwrap().to_path_buf();
    let out = Command::new(root.join("scripts/package.sh"))
        .arg("--dev")
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("scripts/package.sh");
    assert!(out.status.success(), "scripts/package.sh --dev failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = Path::new(stdout.lines().last().expect("the package's path").trim()).to_path_buf();
    assert!(deb.is_file(), "{}: not built\n{}", deb.display(), String::from_utf8_lossy(&out.stderr));
    let listing = sh(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/drillbook",
        "./usr/bin/drillbook-qdrant-engine",
        "./usr/lib/systemd/system/drillbook.service",
        "./etc/drillbook/drillbook.yaml",
        "./usr/share/man/man1/drillbook.1",
        "./usr/share/man/man1/drillbook-run.1",
        "./usr/share/bash-completion/completions/drillbook",
        "./usr/share/doc/drillbook/prometheus/drillbook.rules.yml",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path) || l.contains(&format!("{path}.gz"))),
            "{path} missing:\n{listing}"
        );
    }

    let _purge = Installed;
    sh(Command::new("dpkg").arg("-i").arg(&deb));
    let version = sh(Command::new("/usr/bin/drillbook").arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")) && version.contains("commit "), "{version}");
    assert!(version.contains("adapters: ") && version.contains("postgres") && version.contains("qdrant"), "{version}");
    // The Qdrant engine is installed beside drillbook, where drillbook looks for it; with no
    // request on its input it ends at once.
    let engine = Command::new("/usr/bin/drillbook-qdrant-engine").stdin(std::process::Stdio::null()).output().unwrap();
    assert!(engine.status.success(), "{}", String::from_utf8_lossy(&engine.stderr));
    sh(Command::new("systemd-analyze").args(["verify", "/usr/lib/systemd/system/drillbook.service"]));
    let user = sh(Command::new("getent").args(["passwd", "drillbook"]));
    assert!(user.contains("/var/lib/drillbook") && user.contains("nologin"), "{user}");
    use std::os::unix::fs::MetadataExt;
    let config = std::fs::metadata("/etc/drillbook/drillbook.yaml").expect("the example config");
    assert_eq!(config.mode() & 0o777, 0o640, "the config may hold secret references: not world-readable");
    let keys = std::fs::metadata("/var/lib/drillbook/keys").expect("the key folder");
    assert_eq!(keys.mode() & 0o777, 0o700);
    // The example config is valid as installed: the daemon's config loads, its runbooks folder is empty.
    let validated =
        sh(Command::new("/usr/bin/drillbook").args(["validate", "--config", "/etc/drillbook/drillbook.yaml"]));
    assert!(!validated.contains("error"), "{validated}");
    let man = sh(Command::new("man").args(["-P", "cat", "drillbook-init"]).env("MANWIDTH", "100"));
    assert!(man.contains("--source"), "{man}");

    // A report written meanwhile survives a purge; what stayed empty goes.
    std::fs::write("/var/lib/drillbook/reports/evidence.json", "{}").unwrap();
    sh(Command::new("dpkg").args(["--purge", "drillbook"]));
    assert!(!Path::new("/usr/bin/drillbook").exists() && !Path::new("/etc/drillbook").exists());
    assert!(Command::new("getent").args(["passwd", "drillbook"]).output().unwrap().stdout.is_empty());
    assert!(Path::new("/var/lib/drillbook/reports/evidence.json").is_file(), "the evidence is kept");
    assert!(!Path::new("/var/lib/drillbook/keys").exists());
    std::fs::remove_dir_all("/var/lib/drillbook").unwrap();
}
