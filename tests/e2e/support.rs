//! A sandbox per test: its own working folder, TMPDIR and history, a scrubbed environment,
//! and the real `drillbook` binary. On failure, messages carry the command's output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_drillbook");

/// The repository's quickstart example folder.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/examples")
}

pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    /// What the binary sees as TMPDIR: every scratch folder must be gone from here afterwards.
    pub tmp: PathBuf,
    pub env: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub cmd: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "$ {}\nexit {}\n--- stdout\n{}\n--- stderr\n{}", self.cmd, self.code, self.stdout, self.stderr)
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        // Traversable (not listable) by others: a PostgreSQL scratch cluster runs as an
        // unprivileged user when the tests run as root, and must reach the drill folder.
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o711)).expect("chmod");
        let tmp = root.join("tmp");
        std::fs::create_dir(&tmp).expect("tmp");
        Sandbox { _dir: dir, root, tmp, env: Vec::new() }
    }

    /// A sandbox holding a copy of the quickstart example (runbook, backup, manifests).
    pub fn quickstart() -> Sandbox {
        Sandbox::new().with_example("quickstart")
    }

    /// Adds a copy of example `name`: `runbooks/examples/<name>.yaml` as `<name>.yaml` beside
    /// its folder `<name>/` (backups, truth), as the example runbooks expect.
    pub fn with_example(self, name: &str) -> Sandbox {
        copy_dir(&examples().join(name), &self.root.join(name));
        std::fs::copy(examples().join(format!("{name}.yaml")), self.root.join(format!("{name}.yaml")))
            .expect("copy runbook");
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, content).expect("write");
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Rewrites a file, replacing `from` (which must occur) with `to`.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, text.replacen(from, to, 1));
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("TMPDIR", &self.tmp);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.command(args).output().expect("spawn drillbook");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmd: format!("drillbook {}", args.join(" ")),
        }
    }

    /// `run RUNBOOK --output json`, returning the run and the parsed report.
    pub fn drill(&self, runbook: &str) -> (Run, serde_json::Value) {
        let r = self.run(&["run", runbook, "--output", "json"]);
        let report: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{r}"));
        (r, report)
    }

    pub fn history(&self) -> Vec<serde_json::Value> {
        let r = self.run(&["history", "--output", "json"]);
        assert_eq!(r.code, 0, "{r}");
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("history is not JSON ({e}):\n{r}"))
    }

    /// Nothing a drill created may remain in its TMPDIR.
    pub fn assert_no_leftovers(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.tmp).expect("read tmp").flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "scratch leftovers in TMPDIR: {left:?}");
    }
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// `secret` appears nowhere in what a drill printed (`run`) or wrote under drill-reports/.
pub fn assert_secret_nowhere(sb: &Sandbox, run: &Run, secret: &str, what: &str) {
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{run}");
    for entry in files_under(&sb.path("drill-reports")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(!text.contains(secret), "the {what} is in {}", entry.display());
    }
}

/// Whether the tests run as root (drillbook then runs children as unprivileged users).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if p.extension().is_none_or(|x| x != "py") {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A tar with arbitrary (possibly hostile) headers, built with the real tar crate.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder { b: tar::Builder::new(Vec::new()) }
    }

    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Write the raw name so that `..` and absolute paths reach the archive unchanged.
        set_raw_path(&mut h, path);
        h.set_cksum();
        self.b.append(&h, data).expect("append");
        self
    }

    pub fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(kind);
        set_raw_path(&mut h, path);
        h.set_link_name(target).expect("link name");
        h.set_cksum();
        self.b.append(&h, std::io::empty()).expect("append");
        self
    }

    /// A file with `mode` (e.g. setuid 0o4755).
    pub fn file_with_mode(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        set_raw_path(&mut h, path);
        h.set_cksum();
        self.b.append(&h, data).expect("append");
        self
    }

    /// A GNU sparse file declaring `real_size` bytes, of which only its last 512 are stored.
    pub fn sparse(mut self, path: &str, real_size: u64) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_mode(0o644);
        set_raw_path(&mut h, path);
        h.set_size(512);
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.sparse[0].set_offset(real_size - 512);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(real_size);
        h.set_cksum();
        self.b.append(&h, &[b'x'; 512][..]).expect("append");
        self
    }

    pub fn device(mut self, path: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Char);
        set_raw_path(&mut h, path);
        h.set_cksum();
        self.b.append(&h, std::io::empty()).expect("append");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("tar")
    }
}

fn set_raw_path(h: &mut tar::Header, path: &str) {
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
}

/// Bytes that do not compress (xorshift): a backup of them is as large as what it restores.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A files-adapter runbook over `backups/` in the sandbox, with extra YAML appended.
pub fn files_runbook(name: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: {name}\nowner: sre\nasset: {{ name: docs, kind: files }}\nsource:\n  path: backups/\n  match: \"*\"\nrestore:\n  adapter: files\n{extra}"
    )
}

/// Processes started in `dir`: named on their command line (a scratch server's data folder,
/// a pg_restore of a file there) or working inside it (a `command` check).
pub fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if cmd.contains(&needle) || cwd.starts_with(dir) {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}
