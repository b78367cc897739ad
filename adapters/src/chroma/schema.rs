//! Which Chroma wrote the backup: the schema migrations recorded in its `chroma.sqlite3`,
//! compared with the migrations the Chroma that serves it applies to a new database. Chroma's own validate mode
//! refuses a folder that misses migrations (an older Chroma wrote it) but starts on one that
//! has migrations it does not know (a newer Chroma wrote it); both are named here, before the
//! server starts.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::server::{Migrations, Server, Start};
use crate::AdapterError;
use crate::process::{self, Account, Programs};

/// One applied (or known) migration: `sysdb/00010-collection-schema.sqlite.sql`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Migration {
    pub dir: String,
    pub version: i64,
    pub filename: String,
}

impl std::fmt::Display for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.dir, self.filename)
    }
}

/// The migrations recorded in a persist folder's `chroma.sqlite3`. A backup's is read without
/// writing a byte beside it (`immutable`: no journal, no lock file, which the server's account
/// could not replace); the probe's, whose server was killed, through its write-ahead log.
pub async fn applied(sqlite: &Path, immutable: bool) -> Result<BTreeSet<Migration>, AdapterError> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(sqlite).read_only(true).immutable(immutable);
    let bad =
        |e: sqlx::Error| AdapterError::Restore(format!("{} is not a readable Chroma database: {e}", sqlite.display()));
    let pool = crate::sql::no_maintenance(sqlx::sqlite::SqlitePoolOptions::new().max_connections(1))
        .connect_with(opts)
        .await
        .map_err(bad)?;
    let rows = sqlx::query("select dir, version, filename from migrations").fetch_all(&pool).await.map_err(bad);
    pool.close().await;
    rows?
        .iter()
        .map(|r| {
            Ok(Migration {
                dir: r.try_get(0).map_err(bad)?,
                version: r.try_get(1).map_err(bad)?,
                filename: r.try_get(2).map_err(bad)?,
            })
        })
        .collect()
}

/// What a Chroma install is: its version and the migrations it applies to a new database.
#[derive(Debug, Clone)]
pub struct Engine {
    /// `chroma 1.4.4` (`chroma --version`).
    pub version: String,
    pub migrations: BTreeSet<Migration>,
}

/// The Chroma behind `chroma`, asked of itself: `chroma --version`, and an empty folder served
/// in apply mode whose recorded migrations are read back (its package's `migrations/` folder
/// is not the list its server embeds). Once per program and install (path and modification
/// time) in a process: the daemon asks once, `drillbook run` on every drill.
pub async fn engine(
    tools: &Programs,
    dir: &Path,
    account: Option<&Account>,
    cancel: &CancellationToken,
) -> Result<Engine, AdapterError> {
    type Install = (PathBuf, Option<SystemTime>);
    static KNOWN: OnceLock<Mutex<HashMap<Install, Engine>>> = OnceLock::new();
    let program = tools.path("chroma");
    let key = (program.clone(), std::fs::metadata(&program).and_then(|m| m.modified()).ok());
    let cache = KNOWN.get_or_init(Default::default);
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(known);
    }
    let probe = crate::child_folder(dir, "probe", &["data"], account, "the Chroma schema probe")?;
    let start = Start {
        tools,
        dir: &probe,
        persist: &probe.join("data"),
        account,
        tenant: super::DEFAULT_TENANT,
        database: super::DEFAULT_DATABASE,
        migrations: Migrations::Apply,
        port: crate::free_port()?,
    };
    let (version, server) = tokio::join!(version(tools, dir, account, cancel), Server::start(start, cancel));
    // Its migrations are applied before it answers; nothing else of it is needed, and a
    // graceful stop would only delay the drill.
    server?.kill().await;
    let migrations = applied(&probe.join("data").join("chroma.sqlite3"), false).await?;
    let engine = Engine { version: version?, migrations };
    if let Ok(mut c) = cache.lock() {
        c.insert(key, engine.clone());
    }
    Ok(engine)
}

/// `chroma --version` → `chroma 1.4.4`.
async fn version(
    tools: &Programs,
    dir: &Path,
    account: Option<&Account>,
    cancel: &CancellationToken,
) -> Result<String, AdapterError> {
    let mut cmd = tools.command("chroma", dir, account);
    cmd.arg("--version").env("ANONYMIZED_TELEMETRY", "False");
    let done = process::run(cmd, Duration::from_secs(120), cancel).await.map_err(|e| tools.error("chroma", e))?;
    let line = done.output.lines().map(str::trim).find(|l| l.starts_with("chroma ")).map(String::from);
    match (done.status.success(), line) {
        (true, Some(v)) => Ok(v),
        _ => Err(AdapterError::Restore(format!(
            "`{} --version` did not say its version: {}",
            tools.path("chroma").display(),
            process::last_lines(&done.output, 2)
        ))),
    }
}

/// Why the backup's schema cannot be served by this Chroma, if it cannot.
pub fn compare(backup: &BTreeSet<Migration>, engine: &BTreeSet<Migration>, chroma: &str) -> Result<(), String> {
    let key = |m: &Migration| (m.dir.clone(), m.version);
    let engine_keys: BTreeSet<_> = engine.iter().map(key).collect();
    let backup_keys: BTreeSet<_> = backup.iter().map(key).collect();
    let list = |v: Vec<&Migration>| {
        let more = v.len().saturating_sub(3);
        let mut s = v.iter().take(3).map(|m| m.to_string()).collect::<Vec<_>>().join(", ");
        if more > 0 {
            s.push_str(&format!(" and {more} more"));
        }
        s
    };
    let unknown: Vec<&Migration> = backup.iter().filter(|m| !engine_keys.contains(&key(m))).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the backup was written by a newer Chroma than {chroma}: its schema has migrations this Chroma does not know \
             ({}); restore it with the Chroma version that wrote it (`bin_dir:`)",
            list(unknown)
        ));
    }
    let renamed: Vec<&Migration> =
        backup.iter().filter(|m| engine.iter().any(|e| key(e) == key(m) && e.filename != m.filename)).collect();
    if !renamed.is_empty() {
        return Err(format!(
            "the backup's schema migrations differ from {chroma}'s ({}): it was written by another Chroma; \
             restore it with the version that wrote it (`bin_dir:`)",
            list(renamed)
        ));
    }
    let missing: Vec<&Migration> = engine.iter().filter(|m| !backup_keys.contains(&key(m))).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the backup was written by an older Chroma than {chroma}: {} not applied; a drill serves the backup as it \
             is and does not migrate it (Chroma would on a normal start); restore it with the Chroma version that \
             wrote it (`bin_dir:`), or migrate a copy with this one and back that up",
            list(missing)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(dir: &str, version: i64, name: &str) -> Migration {
        Migration { dir: dir.into(), version, filename: name.into() }
    }

    #[test]
    fn newer_older_and_equal_schemas_are_told_apart() {
        let engine: BTreeSet<_> = [m("sysdb", 1, "00001-a.sql"), m("sysdb", 2, "00002-b.sql")].into();
        assert_eq!(compare(&engine.clone(), &engine, "chroma 1.4.4"), Ok(()));
        let mut newer = engine.clone();
        newer.insert(m("sysdb", 3, "00003-c.sql"));
        let e = compare(&newer, &engine, "chroma 1.4.4").unwrap_err();
        assert!(e.contains("newer Chroma") && e.contains("sysdb/00003-c.sql"), "{e}");
        let older: BTreeSet<_> = [m("sysdb", 1, "00001-a.sql")].into();
        let e = compare(&older, &engine, "chroma 1.4.4").unwrap_err();
        assert!(e.contains("older Chroma") && e.contains("sysdb/00002-b.sql not applied"), "{e}");
        let other: BTreeSet<_> = [m("sysdb", 1, "00001-a.sql"), m("sysdb", 2, "00002-x.sql")].into();
        assert!(compare(&other, &engine, "c").unwrap_err().contains("differ"));
    }
}
