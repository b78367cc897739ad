//! `scratch: local` — an ephemeral PostgreSQL cluster in the drill's folder: `initdb`, then
//! `postgres` on a free loopback port with its socket beside the data, settings sized for a
//! throwaway restore, stopped and deleted at teardown.
//!
//! PostgreSQL refuses to run as root, and a daemon often is root: then the cluster runs as an
//! unprivileged user (`run_as`, default `postgres`) that owns only the cluster's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

use super::tools::Tools;
use crate::AdapterError;
use crate::process::{self, Account, RunError};

const START_LIMIT: Duration = Duration::from_secs(60);
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// The superuser `initdb` creates; only the drill knows its password.
pub const SUPERUSER: &str = "postgres";

/// The longest path of a unix socket (`sun_path` is 108 bytes with its terminating NUL).
const SOCKET_PATH_MAX: usize = 107;

/// A running scratch cluster.
pub struct Cluster {
    /// Owned by the cluster's user: `data/`, the socket, `server.log`.
    pub dir: PathBuf,
    pub port: u16,
    pub password: String,
    pub pid: Option<u32>,
    child: Option<tokio::process::Child>,
}

impl Cluster {
    /// Connection options for the superuser over the socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(self.port)
            .username(SUPERUSER)
            .database(database)
            .application_name("drillbook")
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.dir)
    }

    /// The server log, its last 1 MiB at most (a crash is near the end).
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    pub async fn start(
        tools: &Tools,
        work_dir: &Path,
        run_as: Option<&Account>,
        settings: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<Cluster, AdapterError> {
        // The cluster's user must reach its folder (and nothing else of the drill's).
        let dir = crate::child_folder(work_dir, "pg", &[], run_as, "the cluster")?;
        // The server listens on a unix socket in that folder, and a socket's path holds at most
        // 107 bytes: say so now rather than after initdb, as postgres' own "could not create
        // any Unix-domain sockets".
        let socket = dir.join(".s.PGSQL.65535");
        if socket.as_os_str().len() > SOCKET_PATH_MAX {
            return Err(AdapterError::Provision(format!(
                "the scratch cluster's socket would be {} ({} bytes), beyond the {SOCKET_PATH_MAX} bytes a unix \
                 socket path may have: give drillbook a shorter TMPDIR",
                socket.display(),
                socket.as_os_str().len()
            )));
        }
        let password = random_password()?;
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n"))
            .map_err(|e| AdapterError::io(format!("cannot write {}", pwfile.display()), e))?;
        if let Some(u) = run_as {
            u.give(&pwfile)
                .map_err(|e| AdapterError::io(format!("cannot give {} to {}", pwfile.display(), u.name), e))?;
        }

        let data = dir.join("data");
        let mut initdb = server_command(tools, "initdb", &dir, run_as);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let t = Instant::now();
        let done = process::run(initdb, START_LIMIT, cancel).await.map_err(|e| run_error("initdb", e, run_as))?;
        let _ = std::fs::remove_file(&pwfile);
        if !done.status.success() {
            return Err(AdapterError::Provision(format!(
                "initdb failed ({}): {}{}",
                done.status,
                process::last_lines(&done.output, 3),
                reach_hint(run_as, work_dir)
            )));
        }
        tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, "initdb finished");

        let mut last_error = String::new();
        // A free port can be taken between choosing it and binding it: try a few.
        for _ in 0..3 {
            let port = crate::free_port()?;
            match spawn(tools, &dir, &data, port, run_as, settings, cancel).await {
                Ok(child) => {
                    let pid = child.id();
                    return Ok(Cluster { dir, port, password, pid, child: Some(child) });
                }
                Err(e) if log_tail(&dir).contains("could not bind") => last_error = e.to_string(),
                Err(e) => return Err(e),
            }
        }
        Err(AdapterError::Provision(format!("postgres could not bind a loopback port: {last_error}")))
    }

    /// Fast shutdown (SIGINT), then SIGKILL to the process group if it lingers. Safe to call
    /// on a cluster that already died.
    pub async fn stop(&mut self) -> Result<String, AdapterError> {
        let Some(mut child) = self.child.take() else {
            return Ok("no server process".into());
        };
        if let Ok(Some(status)) = child.try_wait() {
            // Its backends notice the postmaster's death on their own; do not wait for them.
            process::kill_group(self.pid);
            return Ok(format!("the server had already exited ({status})"));
        }
        // Fast shutdown; its backends exit with the postmaster, and the group kill makes sure.
        process::signal(self.pid, libc::SIGINT);
        Ok(process::wait_or_kill(&mut child, self.pid, STOP_LIMIT).await)
    }
}

/// A server binary, as the cluster's user when drillbook is root, in the cluster's folder
/// (a working directory the user cannot enter makes `initdb` fail).
fn server_command(tools: &Tools, program: &str, dir: &Path, run_as: Option<&Account>) -> tokio::process::Command {
    let mut cmd = process::command(tools.path(program), run_as);
    cmd.current_dir(dir).env("LC_ALL", "C");
    cmd
}

async fn spawn(
    tools: &Tools,
    dir: &Path,
    data: &Path,
    port: u16,
    run_as: Option<&Account>,
    settings: &BTreeMap<String, String>,
    cancel: &CancellationToken,
) -> Result<tokio::process::Child, AdapterError> {
    let log = std::fs::File::create(dir.join("server.log"))
        .map_err(|e| AdapterError::io(format!("cannot create {}", dir.join("server.log").display()), e))?;
    let log2 = log.try_clone().map_err(|e| AdapterError::io("cannot open the server log twice", e))?;
    let mut cmd = server_command(tools, "postgres", dir, run_as);
    cmd.arg("-D").arg(data).arg("-p").arg(port.to_string()).arg("-k").arg(dir);
    cmd.args(["-c", "listen_addresses=127.0.0.1"]);
    for (k, v) in effective_settings(settings) {
        cmd.arg("-c").arg(format!("{k}={v}"));
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2).process_group(0).kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| run_error("postgres", RunError::Spawn { program: "postgres".into(), source: e }, run_as))?;
    let opts = PgConnectOptions::new().socket(dir).port(port).username(SUPERUSER).database("postgres");
    let t = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(AdapterError::Provision(format!(
                "postgres exited during start-up ({status}): {}",
                log_tail(dir)
            )));
        }
        if let Ok(conn) = sqlx::ConnectOptions::connect(&opts).await {
            let _ = sqlx::Connection::close(conn).await;
            return Ok(child);
        }
        if t.elapsed() > START_LIMIT || cancel.is_cancelled() {
            process::kill_group(child.id());
            let _ = child.wait().await;
            if cancel.is_cancelled() {
                return Err(AdapterError::Cancelled);
            }
            return Err(AdapterError::Provision(format!(
                "postgres did not accept connections within {}s: {}",
                START_LIMIT.as_secs(),
                log_tail(dir)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// drillbook's settings for a throwaway restore, then the runbook's over them.
pub fn effective_settings(overrides: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string())))
        .and_then(|v| v.split_whitespace().next().and_then(|k| k.parse::<u64>().ok()))
        .map(|kb| kb / 1024)
        .unwrap_or(4096);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8);
    let mut s: BTreeMap<String, String> = [
        // Durability buys nothing for a copy that is thrown away.
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("wal_level", "minimal"),
        ("max_wal_senders", "0"),
        ("archive_mode", "off"),
        ("checkpoint_timeout", "1h"),
        ("max_wal_size", "16GB"),
        ("autovacuum", "off"),
        ("shared_buffers", "256MB"),
        ("work_mem", "64MB"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Index builds (HNSW above all) are the long part of a restore: give them memory and cores.
    s.insert("maintenance_work_mem".into(), format!("{}MB", (mem_mb / 8).clamp(64, 2048)));
    s.insert("max_parallel_maintenance_workers".into(), cores.to_string());
    for (k, v) in overrides {
        s.insert(k.clone(), v.clone());
    }
    s
}

pub fn random_password() -> Result<String, AdapterError> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| AdapterError::Provision(format!("no randomness for a password: {e}")))?;
    Ok(hex::encode(b))
}

fn log_tail(dir: &Path) -> String {
    process::last_lines(&read_log(dir), 3)
}

/// The end of `server.log` in `dir` (1 MiB at most); empty when there is none.
fn read_log(dir: &Path) -> String {
    crate::crash::read_log(&dir.join("server.log"))
}

fn reach_hint(run_as: Option<&Account>, work_dir: &Path) -> String {
    match run_as {
        Some(u) => format!(
            " (the cluster runs as `{}`: the drill folder {} and the bin_dir must be reachable by that user; \
             a TMPDIR or venv under /root is not)",
            u.name,
            work_dir.display()
        ),
        None => String::new(),
    }
}

fn run_error(program: &str, e: RunError, run_as: Option<&Account>) -> AdapterError {
    match e {
        RunError::Cancelled => AdapterError::Cancelled,
        RunError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            AdapterError::Provision(format!(
                "cannot start {program}: {source}{}",
                run_as
                    .map(|u| format!(" (as `{}`: the bin_dir must be readable by that user)", u.name))
                    .unwrap_or_default()
            ))
        }
        other => AdapterError::Provision(other.to_string()),
    }
}
