//! restic repositories as a source (`source.restic`). The recovery points are the repository's
//! snapshots, listed and read by the real `restic`, never by a re-implementation of its format:
//! `restic snapshots --json` to choose one, `restic stats --mode restore-size` for its size,
//! `restic dump` to stream what is restored into the same hash-and-unpack pass as an object
//! (so a snapshot's links and modes meet the same unpack rules), `restic check
//! --read-data-subset` when the runbook asks for the repository's data to be read back.
//!
//! restic is a child like any other (`process::command`): a cleared environment holding only
//! the password and the variables the runbook names, as `run_as` when drillbook is root. It
//! runs with `--no-lock --no-cache`: a drill only reads, never writes into the repository (no
//! lock file, no cache under a home folder).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drillbook_runbooks::{ResticSource, Source};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{Fetched, Located, READ_CHUNK, SourceError, Unpacking, choose, pump};
use crate::Progress;
use crate::process::{self, Account, RunError, Streaming};

/// restic's backends that are not a folder (`restic init --help`).
const SCHEMES: [&str; 9] = ["local:", "sftp:", "rest:", "s3:", "swift:", "b2:", "azure:", "gs:", "rclone:"];

/// The longest a listing (`snapshots`, `stats`) may write: far beyond a repository's snapshots.
const MAX_LISTING: usize = 256 << 20;

/// A restic repository, ready to be read.
pub struct Restic {
    program: PathBuf,
    repository: String,
    env: Vec<(String, String)>,
    account: Option<Account>,
    options: ResticSource,
}

/// One snapshot as `restic snapshots --json` lists it.
#[derive(Debug, Deserialize)]
struct Snapshot {
    id: String,
    short_id: String,
    time: DateTime<Utc>,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RestoreSize {
    total_size: u64,
    #[serde(default)]
    total_file_count: u64,
}

impl Restic {
    /// The runbook's `source.restic` with its secrets resolved: `password` and the values of
    /// `env`. A relative folder repository resolves against `base` (the runbook's folder).
    pub fn new(
        options: &ResticSource,
        base: &Path,
        password: String,
        env: Vec<(String, String)>,
    ) -> Result<Restic, SourceError> {
        let repository = if SCHEMES.iter().any(|s| options.repository.starts_with(s)) {
            options.repository.clone()
        } else {
            base.join(&options.repository).to_string_lossy().into_owned()
        };
        let account =
            Account::for_root(options.run_as.as_deref().unwrap_or("nobody"), "restic, which reads the repository")
                .map_err(|e| SourceError::Config { name: "restic".into(), message: e.to_string() })?;
        let program = process::Programs::new(None, &[], "").path(options.bin.as_deref().unwrap_or("restic"));
        let mut all = vec![("RESTIC_PASSWORD".to_string(), password)];
        all.extend(env);
        Ok(Restic { program, repository, env: all, account, options: options.clone() })
    }

    /// The repository as reports show it: a URL's user and password left out.
    fn shown(&self) -> String {
        if let Some((scheme, rest)) = self.repository.split_once("://") {
            let host_end = rest.find('/').unwrap_or(rest.len());
            if let Some(at) = rest[..host_end].rfind('@') {
                return format!("{scheme}://{}", &rest[at + 1..]);
            }
        }
        self.repository.clone()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = process::command(&self.program, self.account.as_ref());
        cmd.current_dir("/").args(["--repo", &self.repository, "--no-lock", "--no-cache"]).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs one listing command and reads its JSON answer.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        args: &[&str],
        cancel: &CancellationToken,
    ) -> Result<T, SourceError> {
        let what = format!("restic {}", args[0]);
        let finished = process::run_captured(self.command(args), Duration::from_secs(24 * 3600), cancel, MAX_LISTING)
            .await
            .map_err(|e| self.failed(&what, e))?;
        if !finished.status.success() {
            return Err(SourceError::Tool(format!(
                "`{what}` on {} failed ({}): {}",
                self.shown(),
                finished.status,
                process::last_lines(&finished.output, 3)
            )));
        }
        serde_json::from_slice(&finished.stdout)
            .map_err(|e| SourceError::Tool(format!("`{what}` on {} answered something unexpected: {e}", self.shown())))
    }

    fn failed(&self, what: &str, e: RunError) -> SourceError {
        match e {
            RunError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                SourceError::Tool(format!(
                    "cannot start `{}`: not found; install restic (Debian: `apt install restic`) or set `source.restic.bin:`",
                    self.program.display()
                ))
            }
            other => SourceError::Tool(format!("`{what}` on {}: {other}", self.shown())),
        }
    }

    /// Chooses the snapshot `source.pick` (and `restic.snapshot`, `tags`, `host`) names, and
    /// reads its restore size. `Located::path` is the snapshot's full id.
    pub async fn locate(
        &self,
        source: &Source,
        now: DateTime<Utc>,
        seed: u64,
        cancel: &CancellationToken,
    ) -> Result<Located, SourceError> {
        let o = &self.options;
        let mut args = vec!["snapshots".to_string(), "--json".to_string(), "--quiet".to_string()];
        if o.snapshot != "latest" {
            args.push(o.snapshot.clone());
        } else {
            if !o.tags.is_empty() {
                // One `--tag a,b`: snapshots carrying both (several flags would mean either).
                args.extend(["--tag".to_string(), o.tags.join(",")]);
            }
            if let Some(host) = &o.host {
                args.extend(["--host".to_string(), host.clone()]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut snapshots: Vec<Snapshot> = self.json(&args, cancel).await?;
        if o.snapshot != "latest" && snapshots.is_empty() {
            // restic lists nothing (and exits 0) for an id it does not know.
            return Err(SourceError::NotFound(format!("snapshot {} does not exist in {}", o.snapshot, self.shown())));
        }
        let filters = {
            let mut f = Vec::new();
            if !o.tags.is_empty() {
                f.push(format!("tags {}", o.tags.join(",")));
            }
            if let Some(h) = &o.host {
                f.push(format!("host {h}"));
            }
            if f.is_empty() { String::new() } else { format!(" with {}", f.join(" and ")) }
        };
        let within = source.within.as_ref().map(|w| (w.raw().to_string(), w.get().0));
        let rule = source.pick.rule();
        let points = snapshots.iter().map(|s| (s.time, s.id.as_str())).collect();
        let (i, picked) = choose(points, rule, within, now, seed).map_err(|why| {
            let why =
                if why == "no backup" { "no snapshot".to_string() } else { why.replace("recovery point", "snapshot") };
            SourceError::NotFound(format!("{why} in {}{filters} ({} snapshots listed)", self.shown(), snapshots.len()))
        })?;
        let newest = snapshots.iter().map(|s| s.time).max();
        let snapshot = snapshots.swap_remove(i);
        let size: RestoreSize =
            self.json(&["stats", "--json", "--quiet", "--mode", "restore-size", &snapshot.id], cancel).await?;
        Ok(Located {
            path: snapshot.id.clone(),
            size: size.total_size,
            modified: Some(snapshot.time),
            location: format!("restic:{}#{}:{}", self.shown(), snapshot.short_id, o.path),
            picked: Some(format!(
                "{}snapshot {} of {} taken on {} ({} files, {} bytes restored in all)",
                picked.map(|p| format!("{p}: ")).unwrap_or_default(),
                snapshot.short_id,
                snapshot.paths.join(", "),
                snapshot.hostname,
                size.total_file_count,
                size.total_size
            )),
            named_time: None,
            newest_time: (rule != drillbook_runbooks::PickRule::Latest).then_some(newest).flatten(),
        })
    }

    /// `restic check --read-data-subset` of the share the runbook names: the repository's own
    /// proof that its data reads back. `Ok` holds restic's last words, `Err` the reason.
    pub async fn check(&self, cancel: &CancellationToken) -> Option<Result<String, String>> {
        let share = self.options.verify_repository.as_ref()?.get().to_string();
        let cmd = self.command(&["check", "--read-data-subset", &share]);
        Some(match process::run(cmd, Duration::from_secs(24 * 3600), cancel).await {
            Err(e) => Err(self.failed("restic check", e).to_string()),
            Ok(f) if f.status.success() => Ok(format!(
                "`restic check --read-data-subset {share}` of {}: {}",
                self.shown(),
                process::last_lines(&f.output, 1)
            )),
            Ok(f) => Err(format!(
                "`restic check --read-data-subset {share}` of {} failed ({}): {}",
                self.shown(),
                f.status,
                process::last_lines(&f.output, 4)
            )),
        })
    }

    /// `restic dump` of the snapshot's `path`, hashed and unpacked as it streams: a folder comes
    /// as a tar (unpacked under its own name, as `restic restore` would place it), a file as
    /// itself. A non-zero exit of restic is a failed fetch with its last words.
    pub async fn fetch_and_unpack(
        &self,
        snapshot: &Located,
        dest: &Path,
        max_ratio: u64,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Fetched {
        let path = &self.options.path;
        let name = match path.trim_end_matches('/').rsplit('/').next() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("snapshot-{}", &snapshot.path[..snapshot.path.len().min(8)]),
        };
        let into = Unpacking { name: &name, size: snapshot.size, dest, max_ratio, decryption: None, progress, cancel };
        let child = Streaming::spawn(self.command(&["dump", "--quiet", "--archive", "tar", &snapshot.path, path]));
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                let why = self.failed("restic dump", e).to_string();
                type Nothing = futures_util::stream::Empty<std::io::Result<bytes::Bytes>>;
                return pump(Err::<Nothing, _>(why), &snapshot.location, into).await;
            }
        };
        // restic's stdout as chunks of one reused buffer (what the pipe held at each read).
        let chunks = (&mut child.stdout, bytes::BytesMut::new());
        let stream = futures_util::stream::unfold(chunks, |(out, mut buf)| async move {
            if buf.capacity() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            match out.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.split().freeze()), (out, buf))),
                Err(e) => Some((Err(e), (out, buf))),
            }
        });
        let mut fetched = pump(Ok(Box::pin(stream)), &snapshot.location, into).await;
        let (status, stderr) = child.finish(Duration::from_secs(10)).await;
        if fetched.fetch_error.is_none() && !status.is_some_and(|s| s.success()) {
            let status = status.map(|s| s.to_string()).unwrap_or_else(|| "did not exit".into());
            fetched.fetch_error = Some(format!(
                "`restic dump` of {} failed ({status}) after {} bytes: {}",
                snapshot.location,
                fetched.bytes_read,
                process::last_lines(&stderr, 3)
            ));
            fetched.sha256 = None;
        }
        fetched
    }
}
