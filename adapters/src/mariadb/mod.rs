//! `adapter: mariadb` — a `mariadb-dump`/`mysqldump` SQL file restored with the real `mariadb`
//! client into a throwaway `mariadbd` (`scratch: local`) or into `drillbook_<run-id>` on a
//! configured server (`scratch: server:<name>`), then proven by checks the server computes.
//!
//! Files: `dump.rs` reads the dump's header and refuses client commands; `server.rs` is the
//! `local` scratch; `manifest.rs` is the ground truth (counts, digests, schema); `checks.rs` the
//! check kinds.

mod checks;
mod dump;
pub mod manifest;
mod physical;
mod server;

use std::path::PathBuf;
use std::time::Duration;

use drillbook_runbooks::{Check, CheckKind, MariadbOptions, StoreQuery};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

pub use manifest::{Scope, capture, user_databases};
use server::{Data, Server};

use crate::process::{self, Account};
use crate::{
    AdapterError, CheckOutcome, DrillCx, RestoreOutcome, Scratch, ScratchTarget, ServerScratch, Teardown, Unpacked,
};

/// The restore may be long; the step and drill deadlines bound it.
const RESTORE_LIMIT: Duration = Duration::from_secs(24 * 3600);

pub struct Mariadb {
    options: MariadbOptions,
    tools: process::Programs,
}

impl Mariadb {
    pub fn new(options: MariadbOptions) -> Self {
        let tools = server::programs(options.bin_dir.as_deref());
        Mariadb { options, tools }
    }
}

/// Where the restore goes.
enum Home {
    Local(Server),
    Remote {
        name: String,
        admin: MySqlConnectOptions,
        database: String,
    },
    /// A physical backup: prepared in its folder, then served from it (the server starts in
    /// `restore`).
    Physical {
        backup: physical::Physical,
        server: Option<Server>,
    },
}

/// A logical dump and what its header says (none for a physical backup).
#[derive(Clone)]
struct Dump {
    path: PathBuf,
    info: dump::DumpInfo,
}

pub struct Live {
    home: Home,
    dump: Option<Dump>,
    account: Option<Account>,
    scope: Option<Scope>,
    pool: Option<MySqlPool>,
}

/// `drillbook_<run-id>`, as every server scratch of drillbook is named.
pub fn database_name(run_id: &str) -> String {
    let id: String =
        run_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("drillbook_{id}").chars().take(64).collect()
}

fn remote_options(server: &ServerScratch) -> Result<MySqlConnectOptions, AdapterError> {
    let opts: MySqlConnectOptions = server.url.parse().map_err(|e| {
        AdapterError::Provision(format!("scratch server `{}`: `url` is not a MySQL/MariaDB URL: {e}", server.name))
    })?;
    Ok(match &server.password {
        Some(pw) => opts.password(pw),
        None => opts,
    })
}

async fn one_connection(opts: &MySqlConnectOptions) -> Result<MySqlPool, sqlx::Error> {
    crate::sql::no_maintenance(MySqlPoolOptions::new().max_connections(2)).connect_with(opts.clone()).await
}

/// The connection the checks use and the restored tables of `scope`. With one database it is
/// the connection's default, so checks name its tables bare, as its manifest does.
async fn checks_pool(
    opts: MySqlConnectOptions,
    scope: &Scope,
) -> Result<(MySqlPool, Vec<(String, String)>), AdapterError> {
    let opts = match scope.databases.as_slice() {
        [one] => opts.database(one),
        _ => opts,
    };
    let pool = one_connection(&opts).await.map_err(|e| AdapterError::Restore(format!("cannot connect: {e}")))?;
    let tables = manifest::tables(&pool, scope).await.map_err(|e| AdapterError::Restore(e.to_string()))?;
    Ok((pool, tables))
}

/// Whether `database` exists on the server behind `admin`.
async fn exists(admin: &MySqlPool, database: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("select count(*) from information_schema.schemata where schema_name = ?")
        .bind(database)
        .fetch_one(admin)
        .await?;
    Ok(n > 0)
}

async fn drop_database(opts: &MySqlConnectOptions, database: &str) -> Result<bool, AdapterError> {
    let admin = one_connection(opts).await.map_err(|e| AdapterError::Provision(format!("cannot connect: {e}")))?;
    let existed = exists(&admin, database).await.map_err(|e| AdapterError::Provision(e.to_string()))?;
    if existed {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop database {}", manifest::ident(database))))
            .execute(&admin)
            .await
            .map_err(|e| AdapterError::Provision(format!("cannot drop {database}: {e}")))?;
    }
    admin.close().await;
    Ok(existed)
}

impl Mariadb {
    /// The client command that reads the dump on stdin: no shell escape, no local files, client
    /// commands off (`--binary-mode` parses only `DELIMITER`), as `run_as` when root.
    fn client(&self, live: &Live, dump: &Dump, database: Option<&str>) -> tokio::process::Command {
        let dir = match &live.home {
            Home::Local(s) => s.dir.clone(),
            Home::Remote { .. } | Home::Physical { .. } => {
                dump.path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
            }
        };
        let mut cmd = self.tools.command("mariadb", &dir, live.account.as_ref());
        cmd.args(["--no-defaults", "--sandbox", "--binary-mode", "--batch", "--local-infile=0", "--show-warnings=0"]);
        match &live.home {
            Home::Local(s) => {
                cmd.arg(format!("--socket={}", s.socket().display())).arg("--user=root");
            }
            Home::Physical { .. } => {}
            Home::Remote { admin, .. } => {
                match admin.get_socket() {
                    Some(sock) => cmd.arg(format!("--socket={}", sock.display())),
                    None => cmd.arg(format!("--host={}", admin.get_host())).arg(format!("--port={}", admin.get_port())),
                };
                cmd.arg(format!("--user={}", admin.get_username()));
            }
        }
        if let Some(db) = database {
            cmd.arg(format!("--database={db}"));
        }
        cmd
    }

    async fn server_version(pool: &MySqlPool) -> Result<String, AdapterError> {
        sqlx::query_scalar("select version()")
            .fetch_one(pool)
            .await
            .map_err(|e| AdapterError::Restore(format!("the scratch server did not say its version: {e}")))
    }
}

#[async_trait::async_trait]
impl crate::Store for Mariadb {
    type Live = Live;

    fn kind(&self) -> &'static str {
        "mariadb"
    }

    fn supports(&self, check: &CheckKind) -> bool {
        crate::sql::answers_tables(check) || matches!(check, CheckKind::CheckTables(_))
    }

    fn server_kinds(&self) -> &'static [&'static str] {
        &["mariadb", "mysql"]
    }

    fn explain_restore(&self, backup: &str) -> Vec<String> {
        let file = self.options.file.as_deref().unwrap_or("<the unpacked dump>");
        vec![
            format!(
                "Find the dump in the unpacked {backup}: `{file}` (its header names the database and the server version)."
            ),
            "Read it for client commands (`\\!`, `system`, `source`, …) and refuse it if it has any.".into(),
            "Start a throwaway server (`mariadb-install-db`, `mariadbd --skip-networking --socket=./mysql.sock \
             --innodb-flush-log-at-trx-commit=0 --skip-log-bin`, as `mysql`) or create `drillbook_<run-id>` on the \
             scratch server; never restore into a database that exists."
                .into(),
            format!(
                "`mariadb --sandbox --binary-mode --local-infile=0 --socket=./mysql.sock -u root <database> < {file}`; any error fails the restore."
            ),
            "A mariadb-backup folder instead: `mariadb-backup --prepare --target-dir=<folder>` (unless its checkpoints say \
             `full-prepared`), then `mariadbd --datadir=<folder> --skip-grant-tables --skip-networking`."
                .into(),
        ]
    }

    fn explain_check(&self, check: &Check) -> String {
        match &check.check {
            CheckKind::Sql(s) => format!("`mariadb -e \"{}\"` must print a value {}", s.sql, s.expect.raw()),
            CheckKind::RowCounts(r) => {
                format!("Count the rows of every table listed in `{}` (tolerance {}).", r.manifest, r.tolerance)
            }
            CheckKind::Schema(s) => {
                format!("Compare information_schema (columns, indexes, keys, views, triggers) with `{}`.", s.expected)
            }
            CheckKind::TableChecksum(t) => format!(
                "Digest the rows of `{}` (MD5 of QUOTE() of each column, summed) and compare with `{}`.",
                t.table, t.manifest
            ),
            CheckKind::CheckTables(c) => format!(
                "`CHECK TABLE … EXTENDED` on {}: every row must say OK.",
                if c.tables.is_empty() { "every table".to_string() } else { c.tables.join(", ") }
            ),
            other => format!("`{}` check", other.name()),
        }
    }

    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch<Live>, AdapterError> {
        if let Some(dir) = physical::find(backup, self.options.file.as_deref()) {
            return self.provision_physical(cx, backup, dir).await;
        }
        if let Some(file) = physical::stream(backup) {
            let dir = self.extract_stream(cx, &file).await?;
            return self.provision_physical(cx, backup, dir).await;
        }
        let dump = backup.file(self.options.file.as_deref())?;
        let head = {
            use std::io::Read;
            let mut buf = vec![0u8; 8192];
            let n = std::fs::File::open(&dump)
                .and_then(|mut f| f.read(&mut buf))
                .map_err(|e| AdapterError::io(format!("cannot read {}", dump.display()), e))?;
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let info = dump::header(&head).map_err(AdapterError::Restore)?;
        let account =
            Account::for_root(self.options.run_as.as_deref().unwrap_or("mysql"), "the MariaDB scratch server")?;
        let (home, url, created) = match &cx.scratch {
            ScratchTarget::Local => {
                let server = Server::start(
                    &self.tools,
                    &cx.work_dir,
                    &Data::Fresh,
                    account.as_ref(),
                    &self.options.settings,
                    &cx.cancel,
                )
                .await?;
                let url = format!("mysql://root@localhost/?socket={}", server.socket().display());
                let created = format!("mariadbd in {} (socket only, no TCP port)", server.dir.display());
                (Home::Local(server), url, created)
            }
            ScratchTarget::Server(server) => {
                if info.database.is_none() {
                    return Err(AdapterError::Provision(format!(
                        "the dump holds several databases (--all-databases or --databases); it restores into `scratch: local` \
                         only, not into one scratch database on `{}`",
                        server.name
                    )));
                }
                let admin = remote_options(server)?;
                let database = database_name(&cx.run_id);
                let pool = one_connection(&admin).await.map_err(|e| {
                    AdapterError::Provision(format!("scratch server `{}`: cannot connect: {e}", server.name))
                })?;
                let taken = exists(&pool, &database).await.map_err(|e| AdapterError::Provision(e.to_string()));
                if taken? {
                    pool.close().await;
                    return Err(AdapterError::Provision(format!(
                        "database {database} already exists on scratch server `{}`; a drill never touches what it did not create",
                        server.name
                    )));
                }
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {}", manifest::ident(&database))))
                    .execute(&pool)
                    .await
                    .map_err(|e| {
                        AdapterError::Provision(format!(
                            "scratch server `{}`: cannot create {database}: {e}",
                            server.name
                        ))
                    })?;
                pool.close().await;
                let url =
                    format!("mysql://{}@{}:{}/{database}", admin.get_username(), admin.get_host(), admin.get_port());
                let created = format!("database {database} on scratch server `{}`", server.name);
                (Home::Remote { name: server.name.clone(), admin, database }, url, created)
            }
        };
        Ok(Scratch {
            url,
            dir: backup.root.clone(),
            created: vec![created],
            state: Live { home, dump: Some(Dump { path: dump, info }), account, scope: None, pool: None },
        })
    }

    async fn restore(&self, cx: &DrillCx, live: &mut Live, _backup: &Unpacked) -> Result<RestoreOutcome, AdapterError> {
        let Some(dump) = live.dump.clone() else {
            return self.restore_physical(cx, live).await;
        };
        let info = &dump.info;
        // A connection to the server (no database yet) for the version and the target.
        let (server_opts, server_words) = match &live.home {
            Home::Local(s) => (s.connect_options(), "the local mariadbd".to_string()),
            Home::Remote { admin, name, .. } => (admin.clone(), format!("scratch server `{name}`")),
            Home::Physical { .. } => return Err(AdapterError::Restore("a physical backup is not a dump".into())),
        };
        let admin = one_connection(&server_opts)
            .await
            .map_err(|e| AdapterError::Restore(format!("cannot connect to {server_words}: {e}")))?;
        let version = Self::server_version(&admin).await?;
        if let (Some(dumped), "MariaDB") = (&info.server_version, info.product.as_str())
            && let (Some(d), Some(s)) = (dump::major_minor(dumped), dump::major_minor(&version))
            && d > s
        {
            admin.close().await;
            return Err(AdapterError::Restore(format!(
                "the dump comes from MariaDB {dumped}, newer than {server_words} ({version}); restore it with MariaDB {}.{} or newer (`bin_dir:`)",
                d.0, d.1
            )));
        }
        let name = dump.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // The database the dump goes into: the scratch database, or the dump's own name on a
        // local server (a single-database dump does not create it); none for --all-databases.
        let target = match (&live.home, &info.database) {
            (Home::Remote { database, .. }, _) => Some(database.clone()),
            (Home::Local(_), Some(db)) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {}", manifest::ident(db))))
                    .execute(&admin)
                    .await
                    .map_err(|e| AdapterError::Restore(format!("cannot create database {db}: {e}")))?;
                Some(db.clone())
            }
            (Home::Local(_), None) | (Home::Physical { .. }, _) => None,
        };
        let size = std::fs::metadata(&dump.path).map(|m| m.len()).unwrap_or(0);
        cx.parts.begin("restore.data", "mariadb client, the dump read for client commands as it streams");
        let mut client = self.client(live, &dump, target.as_deref());
        if let (Home::Remote { .. }, Some(pw)) = (&live.home, cx_password(&cx.scratch)) {
            client.env("MYSQL_PWD", pw);
        }
        // The scanner's verdict: a line reaches the client only after it passed.
        let verdict = std::sync::Arc::new(std::sync::Mutex::new(Ok(0)));
        let feed = {
            let (file, verdict) = (dump.path.clone(), verdict.clone());
            let confined = matches!(live.home, Home::Remote { .. });
            move |stdin: tokio::process::ChildStdin| feed_scanned(file, name, confined, stdin, verdict)
        };
        let done = process::run_fed(client, RESTORE_LIMIT, &cx.cancel, Some(feed)).await.map_err(|e| match e {
            process::RunError::Cancelled => AdapterError::Cancelled,
            other => AdapterError::Restore(other.to_string()),
        })?;
        let scanned = verdict.lock().map(|v| v.clone()).unwrap_or_else(|e| Err(e.to_string()));
        let statements = match scanned {
            Ok(n) => n,
            Err(refused) => {
                admin.close().await;
                return Err(AdapterError::Restore(refused));
            }
        };
        if !done.status.success() || done.feed_error.is_some() {
            let died = match &mut live.home {
                Home::Local(s) => {
                    if s.exited() {
                        format!("; {}", s.death("the server died"))
                    } else {
                        String::new()
                    }
                }
                Home::Remote { .. } | Home::Physical { .. } => String::new(),
            };
            admin.close().await;
            return Err(AdapterError::Restore(format!(
                "mariadb client failed ({}): {}{}{died}",
                done.status,
                process::last_lines(&done.output, 3),
                done.feed_error.map(|e| format!(" (feeding the dump: {e})")).unwrap_or_default()
            )));
        }
        cx.parts.end(Some(size));
        let scope = match &target {
            Some(db) => Scope { databases: vec![db.clone()] },
            None => {
                Scope { databases: user_databases(&admin).await.map_err(|e| AdapterError::Restore(e.to_string()))? }
            }
        };
        admin.close().await;
        let (pool, tables) = checks_pool(server_opts, &scope).await?;
        live.pool = Some(pool);
        let from = info.server_version.as_deref().map(|v| format!(" from {} {v}", info.product)).unwrap_or_default();
        let into = match &target {
            Some(db) => format!("into `{db}`"),
            None => format!("into {} databases", scope.databases.len()),
        };
        live.scope = Some(scope);
        Ok(RestoreOutcome::new(format!(
            "{} dump{from}: {statements} statements restored {into} on {version}; {} tables",
            info.product,
            tables.len()
        )))
    }

    async fn check(&self, cx: &DrillCx, live: &Live, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
        let (Some(pool), Some(scope)) = (&live.pool, &live.scope) else {
            return Err(AdapterError::Check("the dump was not restored".into()));
        };
        let outcome = checks::run(cx, pool, scope, check).await;
        let server = match &live.home {
            Home::Local(s) | Home::Physical { server: Some(s), .. } => Some(s),
            _ => None,
        };
        match (outcome, server) {
            (Err(AdapterError::Check(msg)), Some(s)) if crate::crash::find(&s.log()).is_some() => {
                Err(AdapterError::Check(s.death(&msg)))
            }
            (outcome, _) => outcome,
        }
    }

    fn answers(&self) -> &'static [&'static str] {
        &["sql"]
    }

    async fn values(
        &self,
        _cx: &DrillCx,
        live: &Live,
        query: StoreQuery<'_>,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        let (StoreQuery::Sql(sql), Some(pool)) = (query, &live.pool) else {
            return Err(match live.pool {
                None => AdapterError::Check("the dump was not restored".into()),
                Some(_) => crate::unanswered("mariadb", query),
            });
        };
        checks::values(pool, sql, each).await
    }

    async fn teardown(&self, _cx: &DrillCx, mut live: Live, how: Teardown) -> Result<(), AdapterError> {
        if let Some(pool) = live.pool.take() {
            pool.close().await;
        }
        match &mut live.home {
            Home::Local(server) | Home::Physical { server: Some(server), .. } => {
                let said = server.stop().await;
                tracing::debug!(stop = %said, "mariadb scratch server");
                Ok(())
            }
            Home::Physical { server: None, .. } => Ok(()),
            Home::Remote { .. } if how == Teardown::Keep => Ok(()),
            Home::Remote { admin, database, name } => drop_database(admin, database)
                .await
                .map(|_| ())
                .map_err(|e| AdapterError::Provision(format!("scratch server `{name}`: {e}"))),
        }
    }

    async fn sweep(&self, run_id: &str, scratch: &ScratchTarget) -> Result<Vec<String>, AdapterError> {
        let ScratchTarget::Server(server) = scratch else {
            return Ok(Vec::new());
        };
        let database = database_name(run_id);
        Ok(if drop_database(&remote_options(server)?, &database).await? {
            vec![format!("database {database} on server `{}`", server.name)]
        } else {
            Vec::new()
        })
    }
}

impl Mariadb {
    /// Unpacks an `mbstream`/`xbstream` backup with `mbstream -x` (fed on stdin, as `run_as`)
    /// into a folder of the drill's. `mbstream` writes only below its `-C` folder.
    async fn extract_stream(&self, cx: &DrillCx, file: &std::path::Path) -> Result<PathBuf, AdapterError> {
        let account =
            Account::for_root(self.options.run_as.as_deref().unwrap_or("mysql"), "the MariaDB scratch server")?;
        let dir = crate::child_folder(&cx.work_dir, "mariadb-backup", &[], account.as_ref(), "mbstream")?;
        let mut cmd = self.tools.command("mbstream", &dir, account.as_ref());
        cmd.arg("-x").arg("-C").arg(&dir);
        let source = file.to_path_buf();
        let feed = move |mut stdin: tokio::process::ChildStdin| async move {
            let mut f = tokio::fs::File::open(&source).await?;
            tokio::io::copy(&mut f, &mut stdin).await?;
            Ok(())
        };
        let done = process::run_fed(cmd, RESTORE_LIMIT, &cx.cancel, Some(feed))
            .await
            .map_err(|e| self.tools.error("mbstream", e))?;
        if !done.status.success() || done.feed_error.is_some() {
            return Err(AdapterError::Restore(format!(
                "mbstream -x failed ({}): {}{}",
                done.status,
                process::last_lines(&done.output, 3),
                done.feed_error.map(|e| format!(" (feeding the stream: {e})")).unwrap_or_default()
            )));
        }
        Ok(dir)
    }

    async fn provision_physical(
        &self,
        cx: &DrillCx,
        backup: &Unpacked,
        dir: PathBuf,
    ) -> Result<Scratch<Live>, AdapterError> {
        if let ScratchTarget::Server(s) = &cx.scratch {
            return Err(AdapterError::Provision(format!(
                "`scratch: server:{}`: a mariadb-backup physical backup is a whole server's data folder; it restores into \
                 `scratch: local` only",
                s.name
            )));
        }
        let found = physical::read(&dir).map_err(AdapterError::Restore)?;
        let account =
            Account::for_root(self.options.run_as.as_deref().unwrap_or("mysql"), "the MariaDB scratch server")?;
        if let Some(a) = &account {
            crate::open_path_to(&cx.work_dir, &dir, a, "the MariaDB scratch server")?;
            a.give_tree(&dir)
                .map_err(|e| AdapterError::io(format!("cannot give {} to {}", dir.display(), a.name), e))?;
        }
        let socket = cx.work_dir.join("mariadb").join("mysql.sock");
        Ok(Scratch {
            url: format!("mysql://root@localhost/?socket={}", socket.display()),
            dir: backup.root.clone(),
            created: vec![format!("mariadbd on the prepared backup in {} (socket only)", dir.display())],
            state: Live {
                home: Home::Physical { backup: found, server: None },
                dump: None,
                account,
                scope: None,
                pool: None,
            },
        })
    }

    /// `restore.prepare` (`mariadb-backup --prepare`, unless it was) and `restore.start`
    /// (`mariadbd` on the prepared folder, until it accepts connections).
    async fn restore_physical(&self, cx: &DrillCx, live: &mut Live) -> Result<RestoreOutcome, AdapterError> {
        let Home::Physical { backup, server } = &mut live.home else {
            return Err(AdapterError::Restore("not a physical backup".into()));
        };
        let mut version_cmd = self.tools.command("mariadbd", &backup.dir, live.account.as_ref());
        version_cmd.arg("--version");
        let said = process::run(version_cmd, Duration::from_secs(30), &cx.cancel)
            .await
            .map_err(|e| self.tools.error("mariadbd", e))?;
        let version = physical::server_version(&said.output).ok_or_else(|| {
            AdapterError::Restore(format!(
                "`mariadbd --version` did not say its version: {}",
                process::last_lines(&said.output, 2)
            ))
        })?;
        if let Some(taken) = &backup.server_version
            && let (Some(b), Some(s)) = (dump::major_minor(taken), dump::major_minor(&version))
            && b > s
        {
            return Err(AdapterError::Restore(format!(
                "the physical backup comes from MariaDB {taken}, newer than mariadbd {version} ({}); restore it with \
                 MariaDB {}.{} or newer (`bin_dir:`)",
                self.tools.path("mariadbd").display(),
                b.0,
                b.1
            )));
        }
        let size = crate::tree_size(&backup.dir);
        let prepared_now = !backup.prepared();
        if prepared_now {
            cx.parts.begin("restore.prepare", "mariadb-backup --prepare");
            let mut prepare = self.tools.command("mariadb-backup", &backup.dir, live.account.as_ref());
            prepare.arg("--prepare").arg(format!("--target-dir={}", backup.dir.display()));
            let done = process::run(prepare, RESTORE_LIMIT, &cx.cancel).await.map_err(|e| match e {
                process::RunError::Cancelled => AdapterError::Cancelled,
                other => AdapterError::Restore(format!("mariadb-backup --prepare: {other}")),
            })?;
            let said = done.output.lines().filter(|l| l.contains("[ERROR]") || l.contains("error")).collect::<Vec<_>>();
            if !done.status.success() {
                return Err(AdapterError::Restore(format!(
                    "mariadb-backup --prepare failed ({}): {}",
                    done.status,
                    if said.is_empty() {
                        process::last_lines(&done.output, 3)
                    } else {
                        said[said.len().saturating_sub(3)..].join(" | ")
                    }
                )));
            }
            cx.parts.end(Some(size));
        }
        cx.parts.begin("restore.start", format!("mariadbd {version}"));
        let started = Server::start(
            &self.tools,
            &cx.work_dir,
            &Data::Existing(backup.dir.clone()),
            live.account.as_ref(),
            &self.options.settings,
            &cx.cancel,
        )
        .await
        .map_err(|e| match e {
            AdapterError::Provision(m) => AdapterError::Restore(m),
            other => other,
        })?;
        let opts = started.connect_options();
        *server = Some(started);
        let admin = one_connection(&opts).await.map_err(|e| AdapterError::Restore(format!("cannot connect: {e}")))?;
        cx.parts.end(None);
        let all = Scope { databases: user_databases(&admin).await.map_err(|e| AdapterError::Restore(e.to_string()))? };
        // The databases that hold tables: an empty one (a `CREATE DATABASE` caught mid-backup,
        // say) must not turn the checks' bare table names into `db.table`.
        let mut with_tables: Vec<String> = manifest::tables(&admin, &all)
            .await
            .map_err(|e| AdapterError::Restore(e.to_string()))?
            .into_iter()
            .map(|(db, _)| db)
            .collect();
        with_tables.dedup();
        let scope = if with_tables.is_empty() { all } else { Scope { databases: with_tables } };
        admin.close().await;
        let (pool, tables) = checks_pool(opts, &scope).await?;
        let detail = format!(
            "mariadb-backup ({}{}) of MariaDB {}: {} databases, {} tables; served by mariadbd {version}",
            backup.backup_type,
            if prepared_now { ", prepared now" } else { "" },
            backup.server_version.as_deref().unwrap_or("?"),
            scope.databases.len(),
            tables.len()
        );
        live.pool = Some(pool);
        live.scope = Some(scope);
        Ok(RestoreOutcome::new(detail))
    }
}

/// Streams `file` into the client's stdin, line by line through a [`dump::Scanner`]: a client
/// command stops the feed before its line is written (the client then sees the end of its
/// input), and the verdict says why. Reading and scanning overlap the client's work.
async fn feed_scanned(
    file: PathBuf,
    name: String,
    confined: bool,
    mut stdin: tokio::process::ChildStdin,
    verdict: std::sync::Arc<std::sync::Mutex<Result<u64, String>>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let set = |v: Result<u64, String>| {
        if let Ok(mut slot) = verdict.lock() {
            *slot = v;
        }
    };
    let mut reader = tokio::io::BufReader::with_capacity(1 << 20, tokio::fs::File::open(&file).await?);
    let mut scanner = if confined { dump::Scanner::confined(&name) } else { dump::Scanner::new(&name) };
    let (mut line, mut out) = (Vec::new(), Vec::with_capacity(2 << 20));
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        if let Err(refused) = scanner.line(line.strip_suffix(b"\n").unwrap_or(&line)) {
            set(Err(refused.clone()));
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, refused));
        }
        out.extend_from_slice(&line);
        if out.len() >= 1 << 20 {
            stdin.write_all(&out).await?;
            out.clear();
        }
    }
    let end = scanner.finish();
    set(end.clone());
    if let Err(refused) = end {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, refused));
    }
    stdin.write_all(&out).await?;
    Ok(())
}

/// The configured password of a server scratch, for the client's `MYSQL_PWD` (never argv).
fn cx_password(scratch: &ScratchTarget) -> Option<&str> {
    match scratch {
        ScratchTarget::Server(s) => s.password.as_deref(),
        ScratchTarget::Local => None,
    }
}
