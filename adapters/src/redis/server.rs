//! `scratch: local` for Redis — a throwaway `redis-server` whose `--dir` is the drill's own
//! folder, reachable only through a unix socket there (no TCP port), loading the backup on
//! start, stopped at teardown.
//!
//! The backup is hostile: an AOF is replayed as commands. The server therefore runs as an
//! unprivileged user when drillbook is root, with protected configs (`dir`, `dbfilename`, …)
//! and `MODULE` refused, so a replayed `CONFIG SET dir /elsewhere` + `SAVE` cannot write
//! outside the drill's folder; `DEBUG` is allowed from the local socket only (the checks use
//! `DEBUG DIGEST`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use crate::AdapterError;
use crate::process::{self, Account, Programs, RunError};

const STOP_LIMIT: Duration = Duration::from_secs(20);

/// Where the Redis programs are.
pub fn programs(bin_dir: Option<&str>) -> Programs {
    Programs::new(
        bin_dir,
        &[],
        "install Redis (`apt-get install redis-server`, which brings redis-server, redis-check-rdb and redis-check-aof)",
    )
}

/// What the server loads on start.
pub enum Load {
    /// `dbfilename` in the server's folder.
    Rdb { file_name: String },
    /// The AOF folder in the server's folder and the manifest's base name (`appendfilename`).
    Aof { dir_name: String, base_name: String },
}

/// A running scratch server.
pub struct Server {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub pid: Option<u32>,
    child: Option<tokio::process::Child>,
}

impl Server {
    /// Starts `redis-server` in `dir` on the backup and waits until the dataset is loaded
    /// (`INFO persistence` says `loading:0`). A server that exits or crashes while loading is
    /// a restore error with its log's last lines.
    pub async fn start(
        tools: &Programs,
        dir: &Path,
        load: &Load,
        account: Option<&Account>,
        settings: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<(Server, MultiplexedConnection), AdapterError> {
        let socket = dir.join("redis.sock");
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| AdapterError::io(format!("cannot create {}", log_path.display()), e))?;
        if let Some(a) = account {
            a.give(&log_path)
                .map_err(|e| AdapterError::io(format!("cannot give {} to {}", log_path.display(), a.name), e))?;
        }
        let log2 = log.try_clone().map_err(|e| AdapterError::io("cannot open the server log twice", e))?;
        let mut cmd = tools.command("redis-server", dir, account);
        for (k, v) in effective_settings(dir, &socket, load, settings) {
            cmd.arg(format!("--{k}")).arg(v);
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2).process_group(0).kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| {
            tools.error("redis-server", RunError::Spawn { program: "redis-server".into(), source })
        })?;
        let pid = child.id();
        let mut server = Server { dir: dir.to_path_buf(), socket, pid, child: Some(child) };
        match server.wait_loaded(cancel).await {
            Ok(conn) => Ok((server, conn)),
            Err(e) => {
                server.stop(None).await;
                Err(e)
            }
        }
    }

    async fn wait_loaded(&mut self, cancel: &CancellationToken) -> Result<MultiplexedConnection, AdapterError> {
        let t = Instant::now();
        let mut conn: Option<MultiplexedConnection> = None;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(AdapterError::Restore(
                    self.death(&format!("redis-server exited while loading ({status})")),
                ));
            }
            if cancel.is_cancelled() {
                return Err(AdapterError::Cancelled);
            }
            if conn.is_none() && self.socket.exists() {
                conn = super::connect_unix(&self.socket).await.ok();
            }
            if let Some(c) = conn.as_mut() {
                match ::redis::cmd("INFO").arg("persistence").query_async::<String>(c).await {
                    Ok(info) if super::info_field(&info, "loading") == Some("0") => {
                        tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, "redis dataset loaded");
                        return Ok(conn.take().expect("checked above"));
                    }
                    Ok(_) => {}
                    // The server went away between two polls: the next turn sees its exit.
                    Err(_) => conn = None,
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Why the server died, with a crash named first when its log shows one.
    pub fn death(&self, what: &str) -> String {
        let log = self.log();
        let tail = process::last_lines(&log, 4);
        match crate::crash::find(&log) {
            Some(crash) => format!("{}; {what}: {tail}", crash.reason("redis-server")),
            None => format!("{what}: {tail}"),
        }
    }

    /// The server log's end (1 MiB at most).
    pub fn log(&self) -> String {
        crate::crash::read_log(&self.dir.join("server.log"))
    }

    /// `SHUTDOWN NOSAVE` over `conn` when there is one, then SIGKILL to the process group if
    /// it lingers. Safe on a server that already died.
    pub async fn stop(&mut self, conn: Option<&mut MultiplexedConnection>) -> String {
        let pid = self.pid;
        let ask = async move {
            match conn {
                // The reply never comes: the server closes the connection as it exits.
                Some(c) => {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        ::redis::cmd("SHUTDOWN").arg("NOSAVE").query_async::<()>(c),
                    )
                    .await;
                }
                None => process::signal(pid, libc::SIGTERM),
            }
        };
        process::stop_server(self.child.take(), pid, STOP_LIMIT, ask).await
    }
}

/// Settings the runbook cannot override: they keep the scratch private and inside its folder.
const FIXED: &[&str] = &[
    "port",
    "bind",
    "unixsocket",
    "unixsocketperm",
    "dir",
    "dbfilename",
    "appendonly",
    "appenddirname",
    "appendfilename",
    "logfile",
    "daemonize",
    "protected-mode",
    "enable-protected-configs",
    "enable-debug-command",
    "enable-module-command",
    "loadmodule",
    "include",
    "supervised",
    "pidfile",
    "aclfile",
    "replicaof",
    "slaveof",
];

/// Whether the runbook tries to set one of [`FIXED`].
pub fn fixed_setting(name: &str) -> bool {
    FIXED.contains(&name.to_ascii_lowercase().as_str())
}

/// drillbook's settings for a throwaway copy, with the runbook's (all but [`FIXED`]) between
/// the defaults and the fixed ones.
fn effective_settings(
    dir: &Path,
    socket: &Path,
    load: &Load,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut s: BTreeMap<String, String> = [
        // Nothing written back: the copy is thrown away.
        ("save", ""),
        // Room for any database number a backup uses (Redis refuses a file with a number at
        // or above `databases`); an empty database costs a few hundred bytes.
        ("databases", "1024"),
        // A truncated AOF tail is a failed restore, not a warning in a log.
        ("aof-load-truncated", "no"),
        ("loglevel", "notice"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in overrides {
        if !fixed_setting(k) {
            s.insert(k.to_ascii_lowercase(), v.clone());
        }
    }
    let mut out: Vec<(String, String)> = s.into_iter().collect();
    let path = |p: &Path| p.display().to_string();
    out.extend(
        [
            ("port", "0".to_string()),
            ("unixsocket", path(socket)),
            ("unixsocketperm", "700".into()),
            ("dir", path(dir)),
            ("logfile", path(&dir.join("server.log"))),
            ("daemonize", "no".into()),
            ("protected-mode", "yes".into()),
            ("enable-protected-configs", "no".into()),
            ("enable-debug-command", "local".into()),
            ("enable-module-command", "no".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    match load {
        Load::Rdb { file_name } => {
            out.push(("dbfilename".into(), file_name.clone()));
            out.push(("appendonly".into(), "no".into()));
        }
        Load::Aof { dir_name, base_name } => {
            out.push(("appendonly".into(), "yes".into()));
            out.push(("appenddirname".into(), dir_name.clone()));
            out.push(("appendfilename".into(), base_name.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_cannot_open_the_scratch() {
        let overrides: BTreeMap<String, String> =
            [("maxmemory", "1gb"), ("DIR", "/etc"), ("port", "6379"), ("enable-debug-command", "yes")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let s = effective_settings(
            Path::new("/d"),
            Path::new("/d/redis.sock"),
            &Load::Rdb { file_name: "dump.rdb".into() },
            &overrides,
        );
        let get = |k: &str| s.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!(get("maxmemory"), ["1gb"]);
        assert_eq!(get("dir"), ["/d"]);
        assert_eq!(get("port"), ["0"]);
        assert_eq!(get("enable-debug-command"), ["local"]);
        assert_eq!(get("save"), [""]);
    }
}
