//! restic repositories as a source (`source.restic`). The recovery points are the repository's
//! snapshots, listed and read by the real `restic`, never by a re-implementation of its format:
//! `restic snapshots --json` to choose one (unless `pick: latest` lets restic choose), `restic
//! restore` into a folder of the drill's, whose tree then meets the unpack rules
//! ([`unpack::settle_tree`]), `restic check --read-data-subset` when the runbook asks for the
//! repository's data to be read back.
//!
//! restic is a child like any other (`process::command`): a cleared environment holding only
//! the password and the variables the runbook names, as `run_as` when drillbook is root. It
//! runs with `--no-lock --no-cache`: a drill only reads, never writes into the repository (no
//! lock file, no cache under a home folder).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drillbook_runbooks::{PickRule, ResticSource, Source};
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{Fetched, Located, SourceError, Storage, choose};
use crate::process::{self, Account, RunError, Streaming};
use crate::unpack::{self, UnpackError};
use crate::{Progress, Unpacked};

/// restic's backends that are not a folder (`restic init --help`).
const SCHEMES: [&str; 9] = ["local:", "sftp:", "rest:", "s3:", "swift:", "b2:", "azure:", "gs:", "rclone:"];

/// The longest `restic snapshots --json` may write: far beyond a repository's snapshots.
const MAX_LISTING: usize = 256 << 20;

/// A restic repository, ready to be read.
pub struct Restic {
    program: PathBuf,
    repository: String,
    env: Vec<(String, String)>,
    account: Option<Account>,
    options: ResticSource,
    /// The restore `locate` started, until `fetch_and_unpack` takes it.
    pending: std::sync::Mutex<Option<Pending>>,
}

/// One snapshot as `restic snapshots --json` lists it (what choosing needs).
#[derive(Debug, Deserialize)]
struct Snapshot {
    id: String,
    time: DateTime<Utc>,
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
        Ok(Restic { program, repository, env: all, account, options: options.clone(), pending: Default::default() })
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

    /// Chooses the snapshot `source.pick` (and `restic.snapshot`, `tags`, `host`) names and starts
    /// restoring it into `work/restic`: `locate` ends when restic has named the snapshot it is
    /// restoring, `fetch_and_unpack` waits for the rest. With `pick: latest` nothing is listed
    /// first (`restic restore latest` chooses, and says which), so the drill opens the repository
    /// once, as `restic restore` alone does. `Located::path` is the snapshot's short id.
    pub async fn locate(
        &self,
        source: &Source,
        now: DateTime<Utc>,
        seed: u64,
        work: &Path,
        cancel: &CancellationToken,
    ) -> Result<Located, SourceError> {
        let o = &self.options;
        let rule = source.pick.rule();
        let mut filters = Vec::new();
        if !o.tags.is_empty() {
            // One `--tag a,b`: snapshots carrying both (several flags would mean either).
            filters.extend(["--tag".to_string(), o.tags.join(",")]);
        }
        if let Some(host) = &o.host {
            filters.extend(["--host".to_string(), host.clone()]);
        }
        let shown_filters = {
            let mut f = Vec::new();
            if !o.tags.is_empty() {
                f.push(format!("tags {}", o.tags.join(",")));
            }
            if let Some(h) = &o.host {
                f.push(format!("host {h}"));
            }
            if f.is_empty() { String::new() } else { format!(" with {}", f.join(" and ")) }
        };
        let (spec, picked, newest) = if o.snapshot == "latest" && rule == PickRule::Latest {
            ("latest".to_string(), None, None)
        } else {
            let mut args = vec!["snapshots".to_string(), "--json".to_string(), "--quiet".to_string()];
            if o.snapshot != "latest" {
                args.push(o.snapshot.clone());
            } else {
                args.extend(filters.iter().cloned());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let snapshots: Vec<Snapshot> = self.json(&args, cancel).await?;
            if o.snapshot != "latest" && snapshots.is_empty() {
                // restic lists nothing (and exits 0) for an id it does not know.
                return Err(SourceError::NotFound(format!(
                    "snapshot {} does not exist in {}",
                    o.snapshot,
                    self.shown()
                )));
            }
            let within = source.within.as_ref().map(|w| (w.raw().to_string(), w.get().0));
            let points = snapshots.iter().map(|s| (s.time, s.id.as_str())).collect();
            let (i, picked) = choose(points, rule, within, now, seed).map_err(|why| {
                let why = why.replace("recovery point", "snapshot");
                SourceError::NotFound(format!(
                    "{why} in {}{shown_filters} ({} snapshots listed)",
                    self.shown(),
                    snapshots.len()
                ))
            })?;
            let newest = snapshots.iter().map(|s| s.time).max().filter(|_| rule != PickRule::Latest);
            (snapshots[i].id.clone(), picked, newest)
        };

        // restic writes as `run_as` into a folder of its own; the tree joins the drill's after.
        let target = crate::child_folder(work, "restic", &[], self.account.as_ref(), "restic")
            .map_err(|e| SourceError::Tool(e.to_string()))?;
        let mut args = vec!["restore".to_string(), spec.clone(), "--target".into(), target.display().to_string()];
        if spec == "latest" {
            args.extend(filters);
        }
        if o.path != "/" {
            args.extend(["--include".to_string(), o.path.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = Streaming::spawn(self.command(&args)).map_err(|e| self.failed("restic restore", e))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(SourceError::Tool("`restic restore`: no output pipe".into()));
        };
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = lines.next_line().await.ok().flatten();
        // The rest of what restic says goes nowhere; it must not fill the pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let Some(restoring) = first.as_deref().and_then(Restoring::parse) else {
            let (status, stderr) = child.finish(Duration::from_secs(5)).await;
            let said = process::last_lines(&stderr, 3);
            if said.contains("no snapshot found") {
                return Err(SourceError::NotFound(format!("no snapshot in {}{shown_filters}", self.shown())));
            }
            return Err(SourceError::Tool(format!(
                "`restic restore` on {} failed ({}): {}",
                self.shown(),
                status.map(|s| s.to_string()).unwrap_or_else(|| "did not exit".into()),
                if said.is_empty() { first.unwrap_or_default() } else { said }
            )));
        };
        if spec != "latest" && !spec.starts_with(&restoring.short_id) {
            return Err(SourceError::Tool(format!(
                "`restic restore {spec}` restored snapshot {} instead",
                restoring.short_id
            )));
        }
        let location = format!("restic:{}#{}:{}", self.shown(), restoring.short_id, o.path);
        let how = format!(
            "{}snapshot {} of {} taken on {}",
            picked.map(|p| format!("{p}: ")).unwrap_or_default(),
            restoring.short_id,
            restoring.paths,
            restoring.host
        );
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Some(Pending { child, target });
        }
        Ok(Located {
            path: restoring.short_id,
            size: 0,
            modified: Some(restoring.time),
            location,
            picked: Some(how),
            named_time: None,
            newest_time: newest,
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

    /// Waits for the restore `locate` started, then applies the unpack rules to the restored
    /// tree ([`unpack::settle_tree`]) and moves it into `dest`. A `path` naming one file (a
    /// `.dump.zst`) is then unpacked from it as if it had been fetched from storage, hashed on the
    /// way. A non-zero exit of restic is a failed fetch with its last words.
    pub async fn fetch_and_unpack(
        &self,
        snapshot: &Located,
        dest: &Path,
        max_ratio: u64,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Fetched {
        let started = Instant::now();
        let failed = |why: String| Fetched {
            sha256: None,
            bytes_read: 0,
            fetch_ms: started.elapsed().as_millis() as u64,
            fetch_error: Some(why),
            unpacked: Err(UnpackError::Cancelled),
            unpack_ms: 0,
        };
        let Some(Pending { child, target }) = self.pending.lock().ok().and_then(|mut p| p.take()) else {
            return failed("no restore was started for this snapshot".into());
        };
        let (status, stderr) = tokio::select! {
            done = child.finish(Duration::from_secs(7 * 24 * 3600)) => done,
            _ = cancel.cancelled() => return failed("cancelled".into()),
        };
        if !status.is_some_and(|s| s.success()) {
            let status = status.map(|s| s.to_string()).unwrap_or_else(|| "did not exit".into());
            return failed(format!(
                "`restic restore` of {} failed ({status}): {}",
                snapshot.location,
                process::last_lines(&stderr, 3)
            ));
        }
        let fetch_ms = started.elapsed().as_millis() as u64;
        let t = Instant::now();
        let (tree, account) = (target.clone(), self.account.clone());
        let settled = tokio::task::spawn_blocking(move || {
            // Back to drillbook's own account, as an unpacked archive would be.
            if account.is_some() {
                let me = Account::current();
                me.give_tree(&tree).map_err(|e| UnpackError::Write { path: tree.display().to_string(), source: e })?;
            }
            unpack::settle_tree(&tree)
        })
        .await
        .unwrap_or_else(|e| {
            Err(UnpackError::Write { path: target.display().to_string(), source: std::io::Error::other(e) })
        });
        let (files, bytes) = match settled {
            Ok(counts) => counts,
            Err(e) => {
                return Fetched {
                    sha256: None,
                    bytes_read: 0,
                    fetch_ms,
                    fetch_error: None,
                    unpacked: Err(e),
                    unpack_ms: t.elapsed().as_millis() as u64,
                };
            }
        };
        let inside = target.join(self.options.path.trim_start_matches('/'));
        let one_file = self.options.path != "/" && std::fs::symlink_metadata(&inside).is_ok_and(|m| m.is_file());
        if one_file {
            // One file: unpacked from the restored copy by the same pass as an object of the
            // file system, named as the snapshot in what it says.
            let size = std::fs::metadata(&inside).map(|m| m.len()).unwrap_or(0);
            let copy = Located {
                path: inside.to_string_lossy().trim_start_matches('/').to_string(),
                size,
                location: snapshot.location.clone(),
                ..snapshot.clone()
            };
            let mut fetched = match Storage::local() {
                Ok(fs) => fs.fetch_and_unpack(&copy, dest, max_ratio, None, progress, cancel).await,
                Err(e) => return failed(e.to_string()),
            };
            fetched.fetch_ms += fetch_ms;
            let _ = std::fs::remove_dir_all(&target);
            return fetched;
        }
        // A tree: it becomes the drill's restored folder as it is.
        let moved = std::fs::remove_dir(dest).and_then(|()| std::fs::rename(&target, dest));
        let unpacked = match moved {
            Ok(()) => Ok(Unpacked {
                root: dest.to_path_buf(),
                single_file: None,
                format: "restic restore".into(),
                name: self.options.path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string(),
                files,
                bytes,
            }),
            Err(e) => Err(UnpackError::Write { path: dest.display().to_string(), source: e }),
        };
        Fetched {
            sha256: None,
            bytes_read: bytes,
            fetch_ms,
            fetch_error: None,
            unpacked,
            unpack_ms: t.elapsed().as_millis() as u64,
        }
    }
}

/// A restore `locate` started and `fetch_and_unpack` finishes.
struct Pending {
    child: Streaming,
    target: PathBuf,
}

/// What `restic restore` says first: `restoring <Snapshot 519f92e7 of [/srv/rag] at 2026-11-29
/// 03:00:00 +0000 UTC by root@db1> to …` (restic 0.14; later versions write `restoring snapshot
/// 519f92e7 of …`).
#[derive(Debug, PartialEq)]
struct Restoring {
    short_id: String,
    paths: String,
    time: DateTime<Utc>,
    host: String,
}

impl Restoring {
    fn parse(line: &str) -> Option<Restoring> {
        let rest = line.trim().strip_prefix("restoring ")?.trim_start_matches('<');
        let rest = rest.strip_prefix("Snapshot ").or_else(|| rest.strip_prefix("snapshot "))?;
        let (short_id, rest) = rest.split_once(" of [")?;
        let (paths, rest) = rest.split_once("] at ")?;
        let (time, rest) = rest.split_once(" by ")?;
        let who = rest.split(['>', ' ']).next()?;
        let time = time.trim_end_matches(" UTC");
        let time = DateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S%.f %z").ok()?.with_timezone(&Utc);
        Some(Restoring {
            short_id: short_id.to_string(),
            paths: paths.to_string(),
            time,
            host: who.rsplit('@').next().unwrap_or(who).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Restoring;

    #[test]
    fn the_restored_snapshot_is_read_from_what_restic_says_first() {
        let r = Restoring::parse(
            "restoring <Snapshot db572dd6 of [/tmp/smoke/tree] at 2026-11-29 03:00:00.5 +0000 UTC by root@vm> to out",
        )
        .unwrap();
        assert_eq!(r.short_id, "db572dd6");
        assert_eq!(r.paths, "/tmp/smoke/tree");
        assert_eq!(r.time.to_rfc3339(), "2026-11-29T03:00:00.500+00:00");
        assert_eq!(r.host, "vm");
        let newer = Restoring::parse(
            "restoring snapshot 0a1b2c3d of [/srv/a /srv/b] at 2026-11-29 04:00:00 +0000 UTC by db@db1 to /x",
        )
        .unwrap();
        assert_eq!((newer.short_id.as_str(), newer.host.as_str()), ("0a1b2c3d", "db1"));
        assert_eq!(newer.time.to_rfc3339(), "2026-11-29T04:00:00+00:00");
        assert_eq!(Restoring::parse("Fatal: wrong password or no key found"), None);
    }
}
