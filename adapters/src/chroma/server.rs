//! `scratch: local` for Chroma — the real Chroma server (`chroma run`) on the restored persist
//! folder, bound to 127.0.0.1 on a free port, its schema migrations in validate mode (a folder
//! another Chroma version wrote is refused, never migrated), stopped at teardown.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::api::Api;
use crate::AdapterError;
use crate::process::{self, Account, Programs, RunError};

const STOP_LIMIT: Duration = Duration::from_secs(20);
/// Chroma takes 3–4 s to answer its heartbeat on an empty folder; a large one loads longer.
/// The step deadline is the real bound; this one catches a server that neither starts nor dies.
const START_LIMIT: Duration = Duration::from_secs(600);

/// Where the `chroma` program is.
pub fn programs(bin_dir: Option<&str>) -> Programs {
    Programs::new(bin_dir, &[], "install Chroma (`pip install chromadb` into a venv every drill user can read)")
}

/// A running scratch server.
pub struct Server {
    /// Its folder: the config, the log.
    pub dir: PathBuf,
    pub api: Api,
    pub pid: Option<u32>,
    child: Option<tokio::process::Child>,
}

/// Chroma's `migration_mode`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Refuse a database that misses migrations (a restored backup).
    Validate,
    /// Create or migrate (an empty probe folder).
    Apply,
}

/// How the server is started.
pub struct Start<'a> {
    pub tools: &'a Programs,
    /// The server's own folder (config and log), the account's.
    pub dir: &'a Path,
    /// The persist folder it serves.
    pub persist: &'a Path,
    pub account: Option<&'a Account>,
    pub tenant: &'a str,
    pub database: &'a str,
    pub migrations: Migrations,
    /// A free loopback port.
    pub port: u16,
}

impl Server {
    /// Starts `chroma run` and waits for its heartbeat. A server that exits first (a refused
    /// schema, a crash on a damaged segment) is a restore error with its log's last lines.
    pub async fn start(s: Start<'_>, cancel: &CancellationToken) -> Result<Server, AdapterError> {
        let port = s.port;
        let config = s.dir.join("chroma.yaml");
        // JSON is YAML: the paths are quoted whatever they hold.
        let text = serde_json::json!({
            "port": port,
            "listen_address": "127.0.0.1",
            "persist_path": s.persist.display().to_string(),
            "allow_reset": false,
            "sqlitedb": {"hash_type": "md5", "migration_mode": match s.migrations {
                Migrations::Validate => "validate",
                Migrations::Apply => "apply",
            }},
        })
        .to_string();
        std::fs::write(&config, text).map_err(|e| AdapterError::io(format!("cannot write {}", config.display()), e))?;
        let log_path = s.dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| AdapterError::io(format!("cannot create {}", log_path.display()), e))?;
        if let Some(a) = s.account {
            for p in [&config, &log_path] {
                a.give(p).map_err(|e| AdapterError::io(format!("cannot give {} to {}", p.display(), a.name), e))?;
            }
        }
        let log2 = log.try_clone().map_err(|e| AdapterError::io("cannot open the server log twice", e))?;
        let mut cmd = s.tools.command("chroma", s.dir, s.account);
        cmd.arg("run").arg(&config).env("ANONYMIZED_TELEMETRY", "False").env("NO_COLOR", "1");
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2).process_group(0).kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|source| s.tools.error("chroma", RunError::Spawn { program: "chroma".into(), source }))?;
        let api =
            Api::new(&format!("http://127.0.0.1:{port}"), s.tenant, s.database).map_err(AdapterError::Provision)?;
        let mut server = Server { dir: s.dir.to_path_buf(), api, pid: child.id(), child: Some(child) };
        match server.wait_ready(cancel).await {
            Ok(()) => Ok(server),
            Err(e) => {
                server.stop().await;
                Err(e)
            }
        }
    }

    async fn wait_ready(&mut self, cancel: &CancellationToken) -> Result<(), AdapterError> {
        let t = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(AdapterError::Restore(self.death(&format!("chroma exited while starting ({status})"))));
            }
            if cancel.is_cancelled() {
                return Err(AdapterError::Cancelled);
            }
            if self.api.heartbeat().await {
                tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, "chroma answers its heartbeat");
                return Ok(());
            }
            if t.elapsed() > START_LIMIT {
                return Err(AdapterError::Restore(
                    self.death(&format!("chroma did not answer its heartbeat in {} s", START_LIMIT.as_secs())),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Why the server died, with a crash named first when its log shows one, and Chroma's own
    /// error line when it panicked (`MigrationError(UnappliedMigrationsFound)`).
    /// A call the server could not answer because it died says so, with its log.
    pub fn named_death<T>(&self, outcome: Result<T, AdapterError>) -> Result<T, AdapterError> {
        match outcome {
            Err(AdapterError::Check(msg)) if process::gone(self.pid) => {
                Err(AdapterError::Check(self.death(&format!("the Chroma server is gone ({msg})"))))
            }
            outcome => outcome,
        }
    }

    pub fn death(&self, what: &str) -> String {
        let log = crate::crash::read_log(&self.dir.join("server.log"));
        let said: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains('\u{1b}') && !l.starts_with("File ") && !l.starts_with('^'))
            .collect();
        let tail = said[said.len().saturating_sub(3)..].join(" | ");
        match crate::crash::find(&log) {
            Some(crash) => format!("{}; {what}: {tail}", crash.reason("chroma")),
            None => format!("{what}: {tail}"),
        }
    }

    /// SIGKILL to the server's process group, at once.
    pub async fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_group(self.pid);
            let _ = child.wait().await;
        }
    }

    /// SIGTERM to the server's process group, SIGKILL if it lingers. Safe on a dead server.
    pub async fn stop(&mut self) -> String {
        let pid = self.pid;
        process::stop_server(self.child.take(), pid, STOP_LIMIT, async { process::signal(pid, libc::SIGTERM) }).await
    }
}
