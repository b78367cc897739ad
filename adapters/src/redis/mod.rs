//! `adapter: redis` — an RDB file or a Redis 7 multi-part AOF folder, proven by Redis's own
//! code: `redis-check-rdb`/`redis-check-aof` as the timed `restore.integrity` part, then a
//! throwaway `redis-server` that loads it (`restore.load`, until `INFO persistence` says
//! `loading:0`), then checks the server computes (`DBSIZE`, `SCAN`, `DEBUG DIGEST`).
//!
//! Files: `rdb.rs` reads the RDB header, the AOF manifest and the checkers' verdicts;
//! `server.rs` is the `local` scratch; `dataset.rs` what is read of a dataset (the same on
//! the source and the scratch); `manifest.rs` ground truth; `checks.rs` the check kinds.

mod checks;
mod dataset;
pub mod manifest;
mod rdb;
mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use drillbook_runbooks::{Check, CheckKind, RedisOptions};

pub use manifest::{CaptureOptions, RedisManifest, capture};
use server::{Load, Server};

use crate::process::{self, Account};
use crate::{AdapterError, CheckOutcome, DrillCx, RestoreOutcome, Scratch, ScratchTarget, Teardown, Unpacked};

/// Checkers may read a large file; the step and drill deadlines bound them.
const CHECK_LIMIT: Duration = Duration::from_secs(24 * 3600);

pub struct Redis {
    options: RedisOptions,
    tools: process::Programs,
}

impl Redis {
    pub fn new(options: RedisOptions) -> Self {
        let tools = server::programs(options.bin_dir.as_deref());
        Redis { options, tools }
    }
}

/// The backup, as found in the unpacked tree.
#[derive(Debug, Clone)]
enum Found {
    Rdb(PathBuf),
    /// The AOF folder and its manifest's file name.
    Aof {
        dir: PathBuf,
        manifest: String,
    },
}

/// The live scratch: its folder, the copy of the backup in it, the server once started.
pub struct Live {
    dir: PathBuf,
    account: Option<Account>,
    load: Load,
    /// The file `redis-check-*` reads: the RDB, or the AOF manifest.
    checked: PathBuf,
    rdb_version: Option<u32>,
    server: Option<Server>,
    conn: Option<MultiplexedConnection>,
}

/// A connection over a unix socket, without the client's default 500 ms reply limit (a
/// `DEBUG DIGEST` of a large dataset takes longer; the drill's deadlines bound it).
pub(crate) async fn connect_unix(socket: &Path) -> Result<MultiplexedConnection, ::redis::RedisError> {
    use ::redis::IntoConnectionInfo;
    let info = ::redis::ConnectionAddr::Unix(socket.to_path_buf()).into_connection_info()?;
    connect(info).await
}

/// `redis://HOST:PORT/DB` or `redis+unix:///PATH`, with a password kept out of the URL.
pub fn connection_info(url: &str, password: Option<String>) -> Result<::redis::ConnectionInfo, ::redis::RedisError> {
    use ::redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    Ok(match password {
        Some(p) => {
            let settings = info.redis_settings().clone().set_password(p);
            info.set_redis_settings(settings)
        }
        None => info,
    })
}

/// A connection to `info` for reading (the manifest's source, or the scratch).
pub async fn connect(info: ::redis::ConnectionInfo) -> Result<MultiplexedConnection, ::redis::RedisError> {
    let config = ::redis::AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(5)));
    ::redis::Client::open(info)?.get_multiplexed_async_connection_with_config(&config).await
}

/// `name:value` of an `INFO` section.
pub(crate) fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
}

fn find(backup: &Unpacked, file: Option<&str>) -> Result<Found, AdapterError> {
    let classify = |path: PathBuf| -> Result<Found, AdapterError> {
        if path.is_dir() {
            let manifest = aof_manifest_in(&path).ok_or_else(|| {
                AdapterError::Restore(format!(
                    "`{}` is a folder without an AOF manifest (`*.manifest`)",
                    path.display()
                ))
            })?;
            return Ok(Found::Aof { dir: path, manifest });
        }
        match path.file_name().map(|n| n.to_string_lossy().into_owned()) {
            Some(name) if name.ends_with(".manifest") => {
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                Ok(Found::Aof { dir, manifest: name })
            }
            _ => Ok(Found::Rdb(path)),
        }
    };
    if let Some(name) = file {
        let path = crate::inside(&backup.root, name)
            .ok_or_else(|| AdapterError::Restore(format!("`file: {name}` must be a path inside the backup")))?;
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(AdapterError::Restore(format!(
                "`{name}` is not in the backup ({} files unpacked)",
                backup.files
            )));
        }
        return classify(path);
    }
    if let Some(single) = &backup.single_file {
        return Ok(Found::Rdb(single.clone()));
    }
    let mut found = Vec::new();
    walk(&backup.root, 3, &mut found);
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(AdapterError::Restore(format!(
            "no RDB file (`*.rdb`) or AOF folder (with a `*.manifest`) among the {} unpacked files; name it with `file:`",
            backup.files
        ))),
        many => Err(AdapterError::Restore(format!(
            "the backup holds {} Redis backups ({}); name the one to restore with `file:`",
            many.len(),
            many.iter()
                .map(|f| match f {
                    Found::Rdb(p) | Found::Aof { dir: p, .. } =>
                        p.strip_prefix(&backup.root).unwrap_or(p).display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The RDB files and AOF folders under `dir` (links are not followed; an AOF's base RDB
/// belongs to its AOF).
fn walk(dir: &Path, depth: u32, found: &mut Vec<Found>) {
    if let Some(manifest) = aof_manifest_in(dir) {
        found.push(Found::Aof { dir: dir.to_path_buf(), manifest });
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() && depth > 0 {
            walk(&e.path(), depth - 1, found);
        } else if t.is_file() && e.file_name().to_string_lossy().ends_with(".rdb") {
            found.push(Found::Rdb(e.path()));
        }
    }
}

fn aof_manifest_in(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        (name.ends_with(".manifest") && e.file_type().is_ok_and(|t| t.is_file())).then_some(name)
    })
}

/// Puts the backup into the scratch folder `dir`: an RDB hard-linked (copied across file
/// systems), an AOF's manifest and the files it names copied (the server appends to them).
fn place(found: &Found, dir: &Path, account: Option<&Account>) -> Result<(Load, PathBuf, Option<u32>), AdapterError> {
    let give = |p: &Path| -> Result<(), AdapterError> {
        match account {
            Some(a) => a.give(p).map_err(|e| AdapterError::io(format!("cannot give {} to {}", p.display(), a.name), e)),
            None => Ok(()),
        }
    };
    match found {
        Found::Rdb(src) => {
            let version = rdb::rdb_version(src).map_err(AdapterError::Restore)?;
            let dst = dir.join("dump.rdb");
            if std::fs::hard_link(src, &dst).is_err() {
                std::fs::copy(src, &dst).map_err(|e| AdapterError::io(format!("cannot copy {}", src.display()), e))?;
            }
            give(&dst)?;
            Ok((Load::Rdb { file_name: "dump.rdb".into() }, dst, Some(version)))
        }
        Found::Aof { dir: src, manifest } => {
            let text = std::fs::read_to_string(src.join(manifest))
                .map_err(|e| AdapterError::io(format!("cannot read the AOF manifest {manifest}"), e))?;
            let files = rdb::aof_manifest(&text).map_err(|e| AdapterError::Restore(format!("{manifest}: {e}")))?;
            let dir_name = "appendonlydir".to_string();
            let aof = dir.join(&dir_name);
            std::fs::create_dir(&aof).map_err(|e| AdapterError::io(format!("cannot create {}", aof.display()), e))?;
            give(&aof)?;
            let mut version = None;
            for f in &files {
                let from = src.join(&f.name);
                if !std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
                    return Err(AdapterError::Restore(format!(
                        "the AOF manifest names `{}`, which is not a file of the backup",
                        f.name
                    )));
                }
                let to = aof.join(&f.name);
                std::fs::copy(&from, &to)
                    .map_err(|e| AdapterError::io(format!("cannot copy {}", from.display()), e))?;
                give(&to)?;
                if f.kind == 'b' && f.name.ends_with(".rdb") {
                    version = Some(rdb::rdb_version(&to).map_err(AdapterError::Restore)?);
                }
            }
            let to = aof.join(manifest);
            std::fs::write(&to, &text).map_err(|e| AdapterError::io(format!("cannot write {}", to.display()), e))?;
            give(&to)?;
            let base_name = manifest.trim_end_matches(".manifest").to_string();
            Ok((Load::Aof { dir_name, base_name }, to, version))
        }
    }
}

impl Redis {
    fn account(&self) -> Result<Option<Account>, AdapterError> {
        Ok(Account::for_root(self.options.run_as.as_deref().unwrap_or("redis"), "the Redis scratch server")?)
    }

    /// `redis-server --version` → `7.0.15`.
    async fn server_version(&self, live: &Live, cx: &DrillCx) -> Result<String, AdapterError> {
        let mut cmd = self.tools.command("redis-server", &live.dir, live.account.as_ref());
        cmd.arg("--version");
        let done = process::run(cmd, Duration::from_secs(30), &cx.cancel)
            .await
            .map_err(|e| self.tools.error("redis-server", e))?;
        rdb::server_version(&done.output).ok_or_else(|| {
            AdapterError::Restore(format!(
                "`{} --version` did not say its version: {}",
                self.tools.path("redis-server").display(),
                process::last_lines(&done.output, 2)
            ))
        })
    }

    /// `restore.integrity`: Redis's own checker over the backup.
    async fn integrity(&self, cx: &DrillCx, live: &Live) -> Result<rdb::Verdict, AdapterError> {
        let program = live.checker();
        let mut cmd = self.tools.command(program, &live.dir, live.account.as_ref());
        cmd.arg(&live.checked);
        let done = process::run(cmd, CHECK_LIMIT, &cx.cancel).await.map_err(|e| self.tools.error(program, e))?;
        let verdict = rdb::read_verdict(&done.output, done.status.success());
        if !verdict.ok {
            let read = verdict.keys.map(|k| format!(" ({k} keys read before it)")).unwrap_or_default();
            return Err(AdapterError::Restore(format!(
                "{program} found the backup damaged: {}{read}",
                verdict.error.as_deref().unwrap_or("no detail")
            )));
        }
        Ok(verdict)
    }

    fn conn(live: &Live) -> Result<MultiplexedConnection, AdapterError> {
        live.conn.clone().ok_or_else(|| AdapterError::Check("the backup was not loaded".into()))
    }
}

#[async_trait::async_trait]
impl crate::Store for Redis {
    type Live = Live;

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn supports(&self, check: &CheckKind) -> bool {
        matches!(check, CheckKind::Keys(_) | CheckKind::DatasetDigest(_) | CheckKind::Sample(_) | CheckKind::Memory(_))
    }

    fn explain_restore(&self, backup: &str) -> Vec<String> {
        let server = self.tools.path("redis-server").display().to_string();
        let file = self.options.file.as_deref().unwrap_or("dump.rdb");
        vec![
            format!(
                "Move the RDB file (or AOF folder) of the unpacked {backup} into a scratch folder nobody else uses, \
                 owned by the `redis` user when you are root."
            ),
            format!(
                "Check it with Redis's own checker: `redis-check-rdb {file}` must end with `RDB looks OK` \
                 (an AOF folder: `redis-check-aof <folder>/appendonly.aof.manifest` must say `All AOF files and manifest are valid`)."
            ),
            format!(
                "Start `{server} --port 0 --unixsocket ./redis.sock --dir . --dbfilename {file} --save '' --appendonly no \
                 --enable-debug-command local` in that folder (an AOF: `--appendonly yes --appenddirname <folder>`)."
            ),
            "Wait until `redis-cli -s ./redis.sock INFO persistence` shows `loading:0`; the server's log names any error.".into(),
        ]
    }

    fn explain_check(&self, check: &Check) -> String {
        match &check.check {
            CheckKind::Keys(k) => match (&k.expect, &k.manifest) {
                (Some(e), _) => match &k.pattern {
                    Some(p) => format!(
                        "`redis-cli -s ./redis.sock -n {} --scan --pattern '{p}' | wc -l` must be {}",
                        k.db.unwrap_or(0),
                        e.raw()
                    ),
                    None => format!("`redis-cli -s ./redis.sock -n {} DBSIZE` must be {}", k.db.unwrap_or(0), e.raw()),
                },
                (None, m) => format!(
                    "`redis-cli -s ./redis.sock INFO keyspace`: every database's key count as in `{}` (tolerance {}).",
                    m.as_deref().unwrap_or("?"),
                    k.tolerance
                ),
            },
            CheckKind::DatasetDigest(d) => format!(
                "`redis-cli -s ./redis.sock DEBUG DIGEST` must equal the digest in `{}` (or, when the manifest's method is values-sha256, drillbook's digest of the values read back).",
                d.manifest
            ),
            CheckKind::Sample(s) => match &s.manifest {
                Some(m) => format!("Every key sampled in `{m}` exists with its type, TTL and `DEBUG DIGEST-VALUE`."),
                None => format!(
                    "In db {}: {} exist with their type, TTL and `DEBUG DIGEST-VALUE`.",
                    s.db,
                    s.keys.iter().map(|k| format!("`{}`", k.key)).collect::<Vec<_>>().join(", ")
                ),
            },
            CheckKind::Memory(m) => format!(
                "`redis-cli -s ./redis.sock INFO memory`: used_memory {}{}.",
                m.min.as_ref().map(|v| format!(">= {} ", v.raw())).unwrap_or_default(),
                m.max.as_ref().map(|v| format!("<= {}", v.raw())).unwrap_or_default()
            ),
            other => format!("`{}` check", other.name()),
        }
    }

    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch<Live>, AdapterError> {
        if let ScratchTarget::Server(s) = &cx.scratch {
            return Err(AdapterError::Provision(format!(
                "`scratch: server:{}`: a Redis backup is restored into a throwaway local server only (`scratch: local`); \
                 loading it into a shared server would replace its data",
                s.name
            )));
        }
        let found = find(backup, self.options.file.as_deref())?;
        let account = self.account()?;
        let dir = crate::child_folder(&cx.work_dir, "redis", &[], account.as_ref(), "the Redis scratch server")?;
        let (load, checked, rdb_version) = place(&found, &dir, account.as_ref())?;
        let socket = dir.join("redis.sock");
        Ok(Scratch {
            url: format!("redis+unix://{}", socket.display()),
            dir: backup.root.clone(),
            created: vec![format!("scratch folder {} (unix socket, no TCP port)", dir.display())],
            state: Live { dir, account, load, checked, rdb_version, server: None, conn: None },
        })
    }

    async fn restore(&self, cx: &DrillCx, live: &mut Live, _backup: &Unpacked) -> Result<RestoreOutcome, AdapterError> {
        let version = self.server_version(live, cx).await?;
        if let (Some(v), Some(max)) = (live.rdb_version, rdb::readable_by(&version))
            && v > max
        {
            return Err(AdapterError::Restore(format!(
                "the backup is RDB version {v}, written by {}; redis-server {version} ({}) reads RDB versions up to {max}: \
                 restore it with a newer Redis (`bin_dir:`)",
                rdb::written_by(v),
                self.tools.path("redis-server").display()
            )));
        }
        // The checker and the load read the backup side by side (one core each): the checker's
        // verdict still decides, and a load that finished on a damaged backup is stopped.
        let checker = live.checker();
        cx.parts.begin("restore.load", format!("redis-server {version}"));
        let started = (chrono::Utc::now(), std::time::Instant::now());
        let check = async {
            let verdict = self.integrity(cx, live).await;
            cx.parts.record("restore.integrity", started, live.size(), checker);
            verdict
        };
        let load = Server::start(
            &self.tools,
            &live.dir,
            &live.load,
            live.account.as_ref(),
            &self.options.settings,
            &cx.cancel,
        );
        let (verdict, loaded) = tokio::join!(check, load);
        let verdict = match (verdict, loaded) {
            (Ok(verdict), Ok((server, conn))) => {
                live.server = Some(server);
                live.conn = Some(conn);
                verdict
            }
            (Err(e), Ok((mut server, mut conn))) => {
                server.stop(Some(&mut conn)).await;
                return Err(e);
            }
            (Err(e), Err(_)) | (Ok(_), Err(e)) => return Err(e),
        };
        let conn = live.conn.as_mut().ok_or_else(|| AdapterError::Restore("no connection".into()))?;
        let keyspace = dataset::keyspace(conn)
            .await
            .map_err(|e| AdapterError::Restore(format!("the loaded server did not answer INFO keyspace: {e}")))?;
        cx.parts.end(None);
        let written = match (&verdict.written_by, verdict.ctime) {
            (Some(v), Some(t)) => format!(
                "written by Redis {v} at {}; ",
                chrono::DateTime::from_timestamp(t, 0).map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
            (Some(v), None) => format!("written by Redis {v}; "),
            _ => String::new(),
        };
        let loaded = if keyspace.is_empty() {
            "no keys".to_string()
        } else {
            keyspace.iter().map(|(db, n)| format!("db{db}={n}")).collect::<Vec<_>>().join(", ")
        };
        Ok(RestoreOutcome {
            detail: format!(
                "{}{written}{checker}: OK ({} keys, {} with a TTL); loaded by redis-server {version}: {loaded}",
                live.rdb_version.map(|v| format!("RDB v{v} ")).unwrap_or_default(),
                verdict.keys.unwrap_or(0),
                verdict.expires.unwrap_or(0),
            ),
            taken: verdict
                .ctime
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|at| crate::Taken { at, from: "its RDB `ctime` field".into() }),
        })
    }

    async fn check(&self, cx: &DrillCx, live: &Live, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
        let mut conn = Self::conn(live)?;
        let outcome = match check {
            CheckKind::Keys(k) => checks::keys(cx, &mut conn, k).await,
            CheckKind::DatasetDigest(d) => checks::dataset_digest(cx, &mut conn, d).await,
            CheckKind::Sample(s) => checks::sample(cx, &mut conn, s).await,
            CheckKind::Memory(m) => checks::memory(&mut conn, m).await,
            other => {
                Err(AdapterError::Unsupported(format!("adapter `redis` cannot evaluate `{}` checks", other.name())))
            }
        };
        // A check that could not be evaluated because the server died says so, with its log.
        match (outcome, &live.server) {
            (Err(AdapterError::Check(msg)), Some(server)) if live.server_gone() => {
                Err(AdapterError::Check(server.death(&format!("the scratch server is gone ({msg})"))))
            }
            (outcome, _) => outcome,
        }
    }

    async fn teardown(&self, _cx: &DrillCx, mut live: Live, _how: Teardown) -> Result<(), AdapterError> {
        if let Some(mut server) = live.server.take() {
            let said = server.stop(live.conn.as_mut()).await;
            tracing::debug!(stop = %said, "redis scratch server");
        }
        Ok(())
    }
}

impl Live {
    fn checker(&self) -> &'static str {
        match self.load {
            Load::Rdb { .. } => "redis-check-rdb",
            Load::Aof { .. } => "redis-check-aof",
        }
    }

    /// Bytes of the backup as placed in the scratch folder.
    fn size(&self) -> Option<u64> {
        match &self.load {
            Load::Rdb { .. } => std::fs::metadata(&self.checked).map(|m| m.len()).ok(),
            Load::Aof { dir_name, .. } => Some(crate::tree_size(&self.dir.join(dir_name))),
        }
    }

    fn server_gone(&self) -> bool {
        process::gone(self.server.as_ref().and_then(|s| s.pid))
    }
}
