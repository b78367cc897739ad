//! `scratch: local` for MariaDB — `mariadb-install-db` + `mariadbd` in the drill's folder,
//! reachable only through a socket there (`--skip-networking`), settings for a throwaway
//! restore, file access confined to the drill's folder (`secure_file_priv`), stopped at teardown.
//! As `run_as` (default `mysql`) when drillbook is root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlConnectOptions;
use tokio_util::sync::CancellationToken;

use crate::AdapterError;
use crate::process::{self, Account, Programs, RunError};

const START_LIMIT: Duration = Duration::from_secs(120);
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// Where the MariaDB programs are (`mariadbd` lives in `/usr/sbin`, off a user's PATH).
pub fn programs(bin_dir: Option<&str>) -> Programs {
    Programs::new(
        bin_dir,
        &["/usr/sbin", "/usr/local/sbin"],
        "install MariaDB (`apt-get install mariadb-server mariadb-client mariadb-backup`)",
    )
}

/// What the server runs on.
pub enum Data {
    /// A new, empty data folder (`mariadb-install-db`), for a logical dump.
    Fresh,
    /// A prepared physical backup (`mariadb-backup --prepare`d): its own users are not known to
    /// the drill, so the server runs without grant tables, reachable only through its socket.
    Existing(PathBuf),
}

/// A running scratch server.
pub struct Server {
    /// Owned by the server's user: `data/`, the socket, `server.log`, `files/`.
    pub dir: PathBuf,
    pub pid: Option<u32>,
    child: Option<tokio::process::Child>,
}

impl Server {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysql.sock")
    }

    /// Connection options for `root` over the socket (only the drill's folder reaches it).
    pub fn connect_options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::new().socket(self.socket()).username("root")
    }

    pub async fn start(
        tools: &Programs,
        work_dir: &Path,
        data: &Data,
        account: Option<&Account>,
        settings: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<Server, AdapterError> {
        // `files`: the only folder of `secure_file_priv`; `tmp`: its own `tmpdir`.
        let dir = crate::child_folder(work_dir, "mariadb", &["files", "tmp"], account, "the MariaDB scratch server")?;
        let datadir = match data {
            Data::Existing(d) => d.clone(),
            Data::Fresh => {
                let data = dir.join("data");
                Self::install(tools, &dir, &data, account, cancel).await?;
                data
            }
        };
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| AdapterError::io(format!("cannot create {}", log_path.display()), e))?;
        if let Some(a) = account {
            a.give(&log_path)
                .map_err(|e| AdapterError::io(format!("cannot give {} to {}", log_path.display(), a.name), e))?;
        }
        let log2 = log.try_clone().map_err(|e| AdapterError::io("cannot open the server log twice", e))?;
        let mut cmd = tools.command("mariadbd", &dir, account);
        cmd.arg("--no-defaults");
        for (k, v) in effective_settings(&dir, &datadir, settings) {
            cmd.arg(format!("--{k}={v}"));
        }
        if matches!(data, Data::Existing(_)) {
            cmd.arg("--skip-grant-tables");
        }
        if let Some(a) = account {
            cmd.arg(format!("--user={}", a.name));
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2).process_group(0).kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|source| tools.error("mariadbd", RunError::Spawn { program: "mariadbd".into(), source }))?;
        let pid = child.id();
        let mut server = Server { dir, pid, child: Some(child) };
        let t = Instant::now();
        loop {
            if let Some(c) = server.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(AdapterError::Provision(
                    server.death(&format!("mariadbd exited during start-up ({status})")),
                ));
            }
            if let Ok(conn) = sqlx::ConnectOptions::connect(&server.connect_options()).await {
                let _ = sqlx::Connection::close(conn).await;
                return Ok(server);
            }
            if t.elapsed() > START_LIMIT || cancel.is_cancelled() {
                let why =
                    server.death(&format!("mariadbd did not accept connections within {}s", START_LIMIT.as_secs()));
                server.stop().await;
                if cancel.is_cancelled() {
                    return Err(AdapterError::Cancelled);
                }
                return Err(AdapterError::Provision(why));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn install(
        tools: &Programs,
        dir: &Path,
        data: &Path,
        account: Option<&Account>,
        cancel: &CancellationToken,
    ) -> Result<(), AdapterError> {
        let mut install = tools.command("mariadb-install-db", dir, account);
        // Its own temporary folder, not the shared /tmp (seen: a bootstrap under load losing its
        // temporary table, `Unknown table 'mysql.tmp_user_sys'`).
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"]);
        if let Some(a) = account {
            install.arg(format!("--user={}", a.name));
        }
        let done =
            process::run(install, START_LIMIT, cancel).await.map_err(|e| tools.error("mariadb-install-db", e))?;
        if !done.status.success() {
            // Its last lines are a boilerplate plea to report a bug; the reason is in `[ERROR]` lines.
            let errors: Vec<&str> = done.output.lines().filter(|l| l.contains("ERROR")).collect();
            let said = if errors.is_empty() {
                process::last_lines(&done.output, 3)
            } else {
                errors[errors.len().saturating_sub(3)..].join(" | ")
            };
            return Err(AdapterError::Provision(format!("mariadb-install-db failed ({}): {said}", done.status)));
        }
        Ok(())
    }

    /// The server log's end (1 MiB at most).
    pub fn log(&self) -> String {
        crate::crash::read_log(&self.dir.join("server.log"))
    }

    /// What happened to the server, with a crash named first when its log shows one.
    pub fn death(&self, what: &str) -> String {
        let log = self.log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("[ERROR]")).collect();
        let tail = if errors.is_empty() {
            process::last_lines(&log, 3)
        } else {
            errors[errors.len().saturating_sub(3)..].join(" | ")
        };
        match crate::crash::find(&log) {
            Some(crash) => format!("{}; {what}: {tail}", crash.reason("mariadbd")),
            None => format!("{what}: {tail}"),
        }
    }

    /// Whether the server process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM (a normal shutdown), then SIGKILL to the process group if it lingers.
    pub async fn stop(&mut self) -> String {
        let pid = self.pid;
        process::stop_server(self.child.take(), pid, STOP_LIMIT, async { process::signal(pid, libc::SIGTERM) }).await
    }
}

/// Settings the runbook cannot override: they keep the server private and inside its folder.
const FIXED: &[&str] = &[
    "datadir",
    "socket",
    "skip-networking",
    "port",
    "bind-address",
    "secure-file-priv",
    "log-error",
    "pid-file",
    "user",
    "plugin-dir",
    "plugin-load",
    "plugin-load-add",
    "local-infile",
    "init-file",
];

/// Whether the runbook tries to set one of [`FIXED`].
pub fn fixed_setting(name: &str) -> bool {
    FIXED.contains(&name.replace('_', "-").to_ascii_lowercase().as_str())
}

/// drillbook's settings for a throwaway restore, the runbook's (all but [`FIXED`]) over them.
fn effective_settings(dir: &Path, datadir: &Path, overrides: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string())))
        .and_then(|v| v.split_whitespace().next().and_then(|k| k.parse::<u64>().ok()))
        .map(|kb| kb / 1024)
        .unwrap_or(4096);
    let mut s: BTreeMap<String, String> = [
        // Durability buys nothing for a copy that is thrown away.
        ("innodb-flush-log-at-trx-commit", "0".to_string()),
        ("innodb-doublewrite", "0".into()),
        ("skip-log-bin", "1".into()),
        ("innodb-buffer-pool-size", format!("{}M", (mem_mb / 8).clamp(128, 4096))),
        ("innodb-log-file-size", "512M".into()),
        ("max-allowed-packet", "1G".into()),
        ("character-set-server", "utf8mb4".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in overrides {
        if !fixed_setting(k) {
            s.insert(k.replace('_', "-"), v.clone());
        }
    }
    let mut out: Vec<(String, String)> = s.into_iter().collect();
    let path = |p: &Path| p.display().to_string();
    out.extend(
        [
            ("datadir", path(datadir)),
            ("socket", path(&dir.join("mysql.sock"))),
            ("skip-networking", "1".into()),
            ("pid-file", path(&dir.join("mariadbd.pid"))),
            ("log-error", path(&dir.join("server.log"))),
            // LOAD DATA INFILE, SELECT … INTO OUTFILE, LOAD_FILE(): only this empty folder.
            ("secure-file-priv", path(&dir.join("files"))),
            ("tmpdir", path(&dir.join("tmp"))),
            ("local-infile", "0".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_cannot_open_the_scratch() {
        let overrides: BTreeMap<String, String> =
            [("innodb_buffer_pool_size", "2G"), ("secure_file_priv", ""), ("skip-networking", "0"), ("port", "3306")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let s = effective_settings(Path::new("/d"), Path::new("/d/data"), &overrides);
        let get = |k: &str| s.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!(get("innodb-buffer-pool-size"), ["2G"]);
        assert_eq!(get("secure-file-priv"), ["/d/files"]);
        assert_eq!(get("skip-networking"), ["1"]);
        assert!(get("port").is_empty());
    }
}
