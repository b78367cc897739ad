//! Which Chroma wrote the backup: the schema migrations recorded in its `chroma.sqlite3`,
//! compared with the migrations the Chroma that serves it applies to a new database. Chroma's own validate mode
//! refuses a folder that misses migrations (an older Chroma wrote it) but starts on one that
//! has migrations it does not know (a newer Chroma wrote it); both are named here, before the
//! server starts.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::server::{Migrations, Server, Start};
use crate::AdapterError;
use crate::process::{self, Account, Programs};

/// One applied (or known) migration: `sysdb/00010-collection-schema.sqlite.sql`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Engine {
    /// `chroma 1.4.4` (`chroma --version`).
    pub version: String,
    pub migrations: BTreeSet<Migration>,
    /// The file it was read from, when an earlier run asked the install and kept the answer.
    #[serde(skip)]
    pub kept: Option<PathBuf>,
}

/// Which install a probe's answer belongs to: the program's real path, and its size, device,
/// inode, modification and change times (a reinstall or an upgrade rewrites the program, and
/// a change time cannot be set back). The same key in memory and on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
struct Install {
    program: PathBuf,
    size: u64,
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Install {
    fn of(program: &Path) -> Option<Install> {
        use std::os::unix::fs::MetadataExt;
        let program = std::fs::canonicalize(program).ok()?;
        let m = std::fs::metadata(&program).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Install {
            size: m.len(),
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            program,
        })
    }

    /// `$XDG_CACHE_HOME/drillbook/chroma-<sha256 of the key>.json` (else under `~/.cache`).
    fn kept_file(&self) -> Option<PathBuf> {
        use sha2::Digest;
        let root = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
        let key = serde_json::to_vec(self).ok()?;
        Some(root.join("drillbook").join(format!("chroma-{}.json", hex::encode(sha2::Sha256::digest(key)))))
    }
}

/// What is kept on disk: the answer with the key it answers (checked on reading).
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    install: Install,
    engine: Engine,
}

/// The Chroma behind `chroma`, asked of itself: `chroma --version`, and an empty folder served
/// in apply mode whose recorded migrations are read back (its package's `migrations/` folder
/// is not the list its server embeds). Once per install: kept in the process (the daemon) and
/// in the user's cache folder (`drillbook run`, which would otherwise start a second Chroma
/// beside every restore). A kept answer that cannot be read or names another install is
/// asked again; one that cannot be written is only not kept.
pub async fn engine(
    tools: &Programs,
    dir: &Path,
    account: Option<&Account>,
    cancel: &CancellationToken,
) -> Result<Engine, AdapterError> {
    static KNOWN: OnceLock<Mutex<HashMap<Install, Engine>>> = OnceLock::new();
    let install = Install::of(&tools.path("chroma"));
    let cache = KNOWN.get_or_init(Default::default);
    if let Some(known) = install.as_ref().and_then(|i| cache.lock().ok()?.get(i).cloned()) {
        return Ok(known);
    }
    let file = install.as_ref().and_then(Install::kept_file);
    let kept = file.as_ref().and_then(|f| {
        let kept: Kept = serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
        (Some(&kept.install) == install.as_ref()).then(|| Engine { kept: Some(f.clone()), ..kept.engine })
    });
    let engine = match kept {
        Some(kept) => kept,
        None => {
            let engine = probe(tools, dir, account, cancel).await?;
            if let (Some(install), Some(file)) = (&install, &file) {
                keep(file, &Kept { install: install.clone(), engine: engine.clone() });
            }
            engine
        }
    };
    if let (Some(install), Ok(mut c)) = (install, cache.lock()) {
        c.insert(install, engine.clone());
    }
    Ok(engine)
}

/// Writes the answer beside its siblings, whole or not at all (a temporary file renamed).
fn keep(file: &Path, kept: &Kept) {
    let Some(folder) = file.parent() else { return };
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let written = std::fs::create_dir_all(folder)
        .and_then(|()| std::fs::write(&tmp, serde_json::to_vec_pretty(kept).unwrap_or_default()))
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(file = %file.display(), error = %e, "the Chroma install's answer is not kept");
    }
}

/// Starts the install on an empty folder (and asks its version beside it).
async fn probe(
    tools: &Programs,
    dir: &Path,
    account: Option<&Account>,
    cancel: &CancellationToken,
) -> Result<Engine, AdapterError> {
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
    Ok(Engine { version: version?, migrations, kept: None })
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
