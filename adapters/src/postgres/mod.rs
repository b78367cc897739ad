//! `adapter: postgres` — `pg_dump` backups (custom, directory, tar, plain SQL) restored with
//! the real `pg_restore`/`psql` into a scratch database nobody else uses:
//! - `scratch: local`: an ephemeral cluster in the drill's folder ([`cluster`]);
//! - `scratch: server:<name>`: a database `drillbook_<run-id>` on a configured server,
//!   refused if it exists, dropped at teardown. Nothing else on that server is written.
//!
//! The restore runs in two timed parts, `restore.data` (pre-data and data) and
//! `restore.post-data` (indexes, constraints, triggers), so the report shows how long the
//! index builds (HNSW above all) took.

mod checks;
mod cluster;
mod dump;
mod manifest;
mod script;
mod tools;

use std::path::PathBuf;
use std::time::Duration;

use drillbook_runbooks::{Check, CheckKind, PostgresOptions, StoreQuery};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub use manifest::{capture, golden_answers};
pub use tools::Tools;

use self::cluster::Cluster;
use self::dump::{Dump, Format};
use crate::process::{self, Account, RunError};
use crate::sql::ident;
use crate::{AdapterError, DrillCx, RestoreOutcome, Scratch, ScratchTarget, ServerScratch, Teardown, Unpacked};

/// A single `pg_restore`/`psql` run may take this long; the drill's own timeouts are shorter.
const CLIENT_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Postgres {
    options: PostgresOptions,
}

impl Postgres {
    pub fn new(options: PostgresOptions) -> Self {
        Postgres { options }
    }

    fn jobs(&self) -> u32 {
        self.options.jobs.unwrap_or(2).max(1)
    }
}

/// Where the scratch database lives.
enum Home {
    Local(Cluster),
    /// `tls`: libpq's spelling of the URL's TLS settings (`PGSSLMODE`, `PGSSLROOTCERT`, …),
    /// so `pg_restore`/`psql` connect as securely as drillbook itself does.
    Server {
        name: String,
        admin: PgConnectOptions,
        tls: Vec<(&'static str, String)>,
    },
}

struct State {
    tools: Tools,
    /// Who runs the restore tools (and the local cluster) when drillbook is root: they read
    /// the backup, which is hostile input.
    account: Option<Account>,
    dump: Dump,
    home: Home,
    /// `drillbook_<run-id>`; set once created, so teardown drops only what this drill made.
    database: Option<String>,
    /// Connection to the scratch database, for the restore tools and the checks.
    target: PgConnectOptions,
    password: Option<String>,
    pool: Option<PgPool>,
    /// Set when the dump's statements run as [`RESTORE_ROLE`] rather than the superuser.
    restore_role: Option<&'static str>,
    /// `pg_restore -L`: the archive's listing without what drillbook did itself.
    listing: Option<PathBuf>,
}

/// What the dump holds, read before anything of it runs.
enum Contents {
    /// A plain script, read line by line as psql would ([`dump::plain_layout`]).
    Script(dump::PlainLayout),
    /// An archive's table of contents (`pg_restore --list`).
    Archive(String),
}

/// The role a local restore runs as: owner of the scratch database, no superuser, so a dump
/// cannot `COPY … TO PROGRAM`, load C code or change the server's settings.
const RESTORE_ROLE: &str = "drillbook_restore";

impl State {
    fn pool(&self) -> Result<&PgPool, AdapterError> {
        self.pool.as_ref().ok_or_else(|| AdapterError::Check("the database was not restored".into()))
    }

    /// `pg_restore`/`psql` as the restore account, with libpq's connection settings as
    /// its only environment variables beyond the helper's few.
    fn client(&self, program: &str) -> Command {
        let mut cmd = process::command(self.tools.path(program), self.account.as_ref());
        let t = &self.target;
        let host = match t.get_socket() {
            Some(dir) => dir.display().to_string(),
            None => t.get_host().to_string(),
        };
        cmd.env("PGHOST", host)
            .env("PGPORT", t.get_port().to_string())
            .env("PGUSER", self.restore_role.unwrap_or(t.get_username()))
            .env("PGDATABASE", t.get_database().unwrap_or_default())
            .env("PGAPPNAME", "drillbook")
            .env("PGCONNECT_TIMEOUT", "10");
        if let Some(pw) = &self.password {
            cmd.env("PGPASSWORD", pw);
        }
        if let Home::Server { tls, .. } = &self.home {
            cmd.envs(tls.iter().map(|(k, v)| (*k, v)));
        }
        cmd
    }

    /// Why `what` failed, with the client's last lines. When the local cluster's log shows a
    /// process killed by SIGILL/SIGBUS/SIGSEGV, that crash leads the reason; when the client
    /// only lost its server, the log's last lines say why (killed, out of memory).
    async fn failure(&self, what: &str, output: &str) -> String {
        let said = client_said(output);
        let Home::Local(c) = &self.home else {
            return format!("{what}: {said}");
        };
        let lost = lost_server(output);
        match self.crash(lost).await {
            Some(crash) => format!("{}; {what}: {said}", crash.reason(&self.server_name())),
            None if lost => format!("{what}: {said}; server log: {}", c.log_tail()),
            None => format!("{what}: {said}"),
        }
    }

    /// A check that could not be evaluated on a local cluster that crashed says so first.
    async fn check_failure(&self, e: AdapterError) -> AdapterError {
        match e {
            AdapterError::Check(msg) => match self.crash(lost_server(&msg)).await {
                Some(crash) => AdapterError::Check(format!("{}; {msg}", crash.reason(&self.server_name()))),
                None => AdapterError::Check(msg),
            },
            e => e,
        }
    }

    /// A crash in the local cluster's log. A client sees its connection close before the
    /// postmaster has reaped the backend and logged why, so a lost connection waits a moment
    /// for the log line.
    async fn crash(&self, lost: bool) -> Option<crate::crash::Crash> {
        let Home::Local(c) = &self.home else { return None };
        let deadline = std::time::Instant::now() + if lost { Duration::from_secs(2) } else { Duration::ZERO };
        loop {
            if let Some(crash) = crate::crash::find(&c.log()) {
                return Some(crash);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn server_name(&self) -> String {
        format!("the PostgreSQL {} server at {}", self.tools.version, self.tools.path("postgres").display())
    }
}

/// What a failed client said that matters: the server's `ERROR:` line (the cause, which the
/// tools print before their context lines) and the last lines; or just the last lines.
fn client_said(output: &str) -> String {
    let last = process::last_lines(output, 3);
    match output.lines().rev().find(|l| l.contains("ERROR:")) {
        Some(error) if !last.contains(error.trim()) => format!("{} | … | {last}", error.trim()),
        _ => last,
    }
}

/// Whether a client's words say it lost its server (rather than the server refusing a statement).
fn lost_server(said: &str) -> bool {
    [
        "server closed the connection",
        "connection to server",
        "terminating connection",
        "error communicating with database",
        "connection reset",
        "broken pipe",
    ]
    .iter()
    .any(|l| said.to_ascii_lowercase().contains(l))
}

/// `drillbook_<run-id>` as an identifier (at most 63 bytes, PostgreSQL's limit).
pub fn database_name(run_id: &str) -> String {
    let id: String =
        run_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("drillbook_{id}").chars().take(63).collect()
}

#[async_trait::async_trait]
impl crate::Adapter for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn supports(&self, check: &CheckKind) -> bool {
        crate::sql::answers(check)
    }

    fn server_kinds(&self) -> &'static [&'static str] {
        &["postgres"]
    }

    fn explain_restore(&self, backup: &str) -> Vec<String> {
        let bin = self.options.bin_dir.as_deref().unwrap_or("the newest PostgreSQL bin folder");
        vec![
            format!(
                "Find the dump in the unpacked {backup}: `PGDMP` header = custom/directory/tar archive, else plain SQL."
            ),
            format!("Check that `{bin}/pg_restore --version` is at least the dump's pg_dump version."),
            "Start a throwaway cluster (`initdb`, `postgres -c fsync=off ...`, as an unprivileged user) or create \
             `drillbook_<run-id>` on the scratch server; never restore into a database that exists."
                .into(),
            format!(
                "`pg_restore --no-owner --no-privileges --exit-on-error --section=pre-data --section=data -j {} -d DB DUMP` \
                 (plain SQL: `psql -v ON_ERROR_STOP=1` up to the first index), then the same with `--section=post-data`.",
                self.jobs()
            ),
        ]
    }

    fn explain_check(&self, check: &Check) -> String {
        match &check.check {
            CheckKind::Sql(s) => format!("`psql -d DB -Atc \"{}\"` must print a value {}", s.sql, s.expect.raw()),
            CheckKind::RowCounts(r) => {
                format!("`select count(*)` of every table listed in `{}` (tolerance {}).", r.manifest, r.tolerance)
            }
            CheckKind::Schema(s) => {
                format!("Compare columns, indexes and constraints with the snapshot `{}`.", s.expected)
            }
            CheckKind::TableChecksum(t) => format!(
                "`select count(*), sum(('x'||substr(md5(t::text),1,16))::bit(64)::bigint) from {} t` equals `{}`.",
                t.table, t.manifest
            ),
            CheckKind::VectorIntegrity(v) => format!(
                "Every `{}` of `{}` has {} dimensions, no NULL, a finite norm{}.",
                v.column(),
                v.table.as_deref().unwrap_or("?"),
                v.dim,
                match (v.min_norm, v.max_norm) {
                    (None, None) => String::new(),
                    (lo, hi) =>
                        format!(" within [{}, {}]", lo.unwrap_or(0.0), hi.map(|h| h.to_string()).unwrap_or("∞".into())),
                }
            ),
            CheckKind::VectorRecall(v) => format!(
                "Run the golden queries of `{}` as `order by {} {} q limit {}` on `{}` (through the index, then as an exact scan); \
                 mean recall must be ≥ {}.",
                v.queries,
                v.column(),
                manifest::operator(v.metric.unwrap_or_default()),
                v.k,
                v.table.as_deref().unwrap_or("?"),
                v.min_recall
            ),
            other => format!("`{}` check", other.name()),
        }
    }

    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch, AdapterError> {
        let local = matches!(cx.scratch, ScratchTarget::Local);
        let tools = Tools::find(self.options.bin_dir.as_deref(), local).await?;
        let dump = dump::detect(backup, self.options.file.as_deref())?;
        if let Some(by) = &dump.dumped_by
            && tools::major(by) > tools.major
        {
            return Err(AdapterError::Provision(format!(
                "the dump was made by pg_dump {by}{}, newer than the PostgreSQL {} tools at {}; \
                 restore it with PostgreSQL {} or newer (set `bin_dir:`)",
                dump.dumped_from.as_ref().map(|f| format!(" from server {f}")).unwrap_or_default(),
                tools.version,
                tools.bin_dir.display(),
                tools::major(by)
            )));
        }
        let database = database_name(&cx.run_id);
        let account =
            Account::for_root(self.options.run_as.as_deref().unwrap_or("postgres"), "PostgreSQL's restore tools")?;
        let (home, password) = match &cx.scratch {
            ScratchTarget::Local => {
                let cluster =
                    Cluster::start(&tools, &cx.work_dir, account.as_ref(), &self.options.settings, &cx.cancel).await?;
                cx.secrets.remember(&cluster.password);
                let pw = cluster.password.clone();
                (Home::Local(cluster), Some(pw))
            }
            ScratchTarget::Server(server) => (server_home(server)?, server.password.clone()),
        };
        let target = match &home {
            Home::Local(c) => c.connect_options(&database),
            Home::Server { admin, .. } => admin.clone().database(&database),
        };
        let mut state = State {
            tools,
            account,
            dump,
            home,
            database: None,
            target,
            password,
            pool: None,
            restore_role: None,
            listing: None,
        };
        match create_database(&mut state, &database).await {
            Ok(()) => {}
            Err(e) => {
                let _ = release(&mut state, Teardown::Remove).await;
                return Err(e);
            }
        }
        let mut created = Vec::new();
        let url = match &state.home {
            Home::Local(c) => {
                created.push(format!(
                    "PostgreSQL {} cluster {} (pid {}, port {})",
                    state.tools.version,
                    c.dir.display(),
                    c.pid.map(|p| p.to_string()).unwrap_or_default(),
                    c.port
                ));
                created.push(format!("database {database}"));
                url(cluster::SUPERUSER, Some(&c.password), "127.0.0.1", c.port, &database)
            }
            Home::Server { name, admin, .. } => {
                created.push(format!("database {database} on server `{name}`"));
                url(admin.get_username(), state.password.as_deref(), admin.get_host(), admin.get_port(), &database)
            }
        };
        if let Some(pw) = &state.password {
            // The URL carries it percent-encoded: scrub that spelling too.
            cx.secrets.remember(&percent_encode(pw));
        }
        Ok(Scratch { url, dir: backup.root.clone(), created, state: Box::new(state) })
    }

    async fn restore(
        &self,
        cx: &DrillCx,
        scratch: &mut Scratch,
        backup: &Unpacked,
    ) -> Result<RestoreOutcome, AdapterError> {
        let state = scratch
            .state
            .downcast_mut::<State>()
            .ok_or_else(|| AdapterError::Restore("scratch is not a PostgreSQL scratch".into()))?;
        let pool = crate::sql::no_maintenance(PgPoolOptions::new())
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(state.target.clone())
            .await
            .map_err(|e| AdapterError::Restore(format!("cannot connect to the scratch database: {e}")))?;
        state.pool = Some(pool.clone());

        let mut dump = state.dump.clone();
        if dump.format == Format::Tar && dump.path.is_dir() {
            let out = cx.work_dir.join("dump.tar");
            let tree = dump.path.clone();
            dump.path = tokio::task::spawn_blocking(move || dump::rebuild_tar(&tree, &out))
                .await
                .map_err(|e| AdapterError::Restore(format!("repacking the tar dump failed: {e}")))??;
        }
        if let Some(a) = &state.account {
            // The restore tools run as the account and must read the dump (nothing else).
            crate::open_path_to(&cx.work_dir, &backup.root, a, "pg_restore/psql")?;
            a.give_tree(&backup.root)
                .and_then(|()| if dump.path.starts_with(&backup.root) { Ok(()) } else { a.give(&dump.path) })
                .map_err(|e| AdapterError::io(format!("cannot give the dump to `{}`", a.name), e))?;
        }
        let contents = match dump.format {
            Format::Plain => {
                let path = dump.path.clone();
                Contents::Script(
                    tokio::task::spawn_blocking(move || dump::plain_layout(&path))
                        .await
                        .map_err(|e| AdapterError::Restore(format!("reading the script failed: {e}")))??,
                )
            }
            _ => Contents::Archive(self.list(state, &dump, cx).await?),
        };
        let needed = match &contents {
            Contents::Script(l) => l.extensions.clone(),
            Contents::Archive(listing) => dump::extensions_in_listing(listing),
        };
        let available: Vec<String> = sqlx::query_scalar("select name::text from pg_available_extensions order by 1")
            .fetch_all(&pool)
            .await
            .map_err(|e| AdapterError::Restore(format!("cannot list available extensions: {e}")))?;
        let missing: Vec<&String> = needed.iter().filter(|n| !available.contains(n)).collect();
        if !missing.is_empty() {
            let where_ = match &state.home {
                Home::Local(_) => {
                    format!("the PostgreSQL {} installation at {}", state.tools.version, state.tools.bin_dir.display())
                }
                Home::Server { name, .. } => format!("the scratch server `{name}`"),
            };
            return Err(AdapterError::Restore(format!(
                "the dump needs extension{} {}, which {where_} does not have (available: {}); \
                 install it there or point `bin_dir:` at an installation that has it",
                if missing.len() > 1 { "s" } else { "" },
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                available.join(", ")
            )));
        }

        // A local cluster is ours: the dump's statements run without superuser where the dump
        // allows it (drillbook creates the extensions first, as superuser).
        let privilege = match &state.home {
            Home::Server { .. } => "as the scratch server's role".to_string(),
            Home::Local(_) => {
                let elsewhere = match &contents {
                    Contents::Script(l) => l.extension_schemas.clone(),
                    Contents::Archive(listing) => self.archive_extension_schemas(state, &dump, listing, cx).await?,
                };
                match elsewhere.first() {
                    None => {
                        self.without_superuser(state, &pool, &needed, &contents, cx).await?;
                        format!("as role {RESTORE_ROLE}, without superuser")
                    }
                    Some((ext, schema)) => format!(
                        "as superuser: extension `{ext}` lives in schema `{schema}`, which the dump creates itself"
                    ),
                }
            }
        };

        let jobs = if dump.format.parallel() { self.jobs() } else { 1 };
        let mut skipped = 0;
        match &contents {
            Contents::Archive(_) => {
                cx.parts.begin("restore.data", format!("pg_restore --section=pre-data --section=data -j {jobs}"));
                self.pg_restore(state, &dump, &["--section=pre-data", "--section=data"], jobs, cx).await?;
                cx.parts.begin("restore.post-data", format!("pg_restore --section=post-data -j {jobs}"));
                self.pg_restore(state, &dump, &["--section=post-data"], jobs, cx).await?;
            }
            Contents::Script(l) => {
                cx.parts.begin("restore.data", "psql: schema and data of the script");
                skipped += self.psql(state, &dump.path, vec![(0, l.post_data_start.unwrap_or(l.len))], cx).await?;
                match l.post_data_start {
                    Some(start) => {
                        cx.parts.begin("restore.post-data", "psql: indexes, constraints and triggers of the script");
                        skipped += self.psql(state, &dump.path, vec![(0, l.prelude_end), (start, l.len)], cx).await?;
                    }
                    None => cx.parts.begin("restore.post-data", "the script has no post-data statements"),
                }
            }
        }
        let size: i64 =
            sqlx::query_scalar("select pg_database_size(current_database())").fetch_one(&pool).await.map_err(|e| {
                AdapterError::Restore(format!("the scratch database does not answer after the restore: {e}"))
            })?;
        cx.parts.end(Some(size as u64));
        let tables: i64 = sqlx::query_scalar(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') \
             and n.nspname not like 'pg_toast%'",
        )
        .fetch_one(&pool)
        .await
        .map_err(|e| AdapterError::Restore(format!("cannot count tables: {e}")))?;
        let by = dump.dumped_by.as_deref().map(|v| format!(" by pg_dump {v}")).unwrap_or_default();
        let tool = if dump.format == Format::Plain { "psql" } else { "pg_restore" };
        let ext = if needed.is_empty() { String::new() } else { format!("; extensions: {}", needed.join(", ")) };
        let skipped = if skipped > 0 {
            format!("; skipped {skipped} ownership/grant/publication statements of the script")
        } else {
            String::new()
        };
        Ok(RestoreOutcome {
            detail: format!(
                "{} dump{by} restored with {tool} {} ({jobs} job{}) {privilege}: {tables} tables, {size} bytes{ext}{skipped}",
                dump.format.name(),
                state.tools.version,
                if jobs == 1 { "" } else { "s" }
            ),
            taken: dump.created.map(|t| crate::Taken {
                at: t.and_utc(),
                from: if dump.format == Format::Plain {
                    "its `-- Started on` line".into()
                } else {
                    "its pg_dump archive header (the dumping host's wall clock, read as UTC)".into()
                },
            }),
        })
    }

    async fn check(
        &self,
        cx: &DrillCx,
        scratch: &Scratch,
        check: &CheckKind,
    ) -> Result<crate::CheckOutcome, AdapterError> {
        let state = scratch
            .state
            .downcast_ref::<State>()
            .ok_or_else(|| AdapterError::Check("scratch is not a PostgreSQL scratch".into()))?;
        match checks::run(cx, state.pool()?, check).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => Err(state.check_failure(e).await),
        }
    }

    fn answers(&self) -> &'static [&'static str] {
        &["sql"]
    }

    async fn values(
        &self,
        _cx: &DrillCx,
        scratch: &Scratch,
        query: StoreQuery<'_>,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        let StoreQuery::Sql(sql) = query else {
            return Err(crate::unanswered("postgres", query));
        };
        let state = scratch
            .state
            .downcast_ref::<State>()
            .ok_or_else(|| AdapterError::Check("scratch is not a PostgreSQL scratch".into()))?;
        // The first column as text, whatever its type, one row at a time.
        let q = sql.trim().trim_end_matches(';');
        let wrapped = format!("select (row_to_json(q)) ::text from ({q}) q");
        let mut rows = sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(wrapped)).fetch(state.pool()?);
        let mut n = 0;
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows)
            .await
            .map_err(|e| crate::sql::check_error("query failed", e))?
        {
            let first = row
                .and_then(|r| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&r).ok())
                .and_then(|m| m.into_iter().next().map(|(_, v)| v));
            each(match first {
                Some(serde_json::Value::String(t)) => t,
                Some(serde_json::Value::Null) | None => "NULL".into(),
                Some(other) => other.to_string(),
            });
            n += 1;
        }
        Ok(n)
    }

    async fn teardown(&self, _cx: &DrillCx, scratch: Scratch, how: Teardown) -> Result<(), AdapterError> {
        let Ok(mut state) = scratch.state.downcast::<State>() else {
            return Ok(());
        };
        release(&mut state, how).await
    }

    async fn sweep(&self, run_id: &str, scratch: &ScratchTarget) -> Result<Vec<String>, AdapterError> {
        let ScratchTarget::Server(server) = scratch else {
            return Ok(Vec::new());
        };
        let Home::Server { admin, name, .. } = server_home(server)? else {
            return Ok(Vec::new());
        };
        let database = database_name(run_id);
        Ok(if drop_database(&admin, &format!("scratch server `{name}`"), &database).await? {
            vec![format!("database {database} on server `{name}`")]
        } else {
            Vec::new()
        })
    }
}

impl Postgres {
    /// `pg_restore -l`: the archive's table of contents. Reading it proves the archive can be
    /// read at all before anything is restored.
    async fn list(&self, state: &State, dump: &Dump, cx: &DrillCx) -> Result<String, AdapterError> {
        let mut cmd = state.client("pg_restore");
        cmd.arg("--list").arg(&dump.path);
        let done = process::run(cmd, CLIENT_LIMIT, &cx.cancel).await.map_err(client_error)?;
        if !done.status.success() {
            return Err(AdapterError::Restore(format!(
                "pg_restore {} cannot read the {} dump: {}",
                state.tools.version,
                dump.format.name(),
                process::last_lines(&done.output, 3)
            )));
        }
        Ok(done.output)
    }

    /// Extensions an archive creates in a schema other than `public` (read from the SQL of
    /// its extension entries alone).
    async fn archive_extension_schemas(
        &self,
        state: &State,
        dump: &Dump,
        listing: &str,
        cx: &DrillCx,
    ) -> Result<Vec<(String, String)>, AdapterError> {
        let only = dump::listing_of_extensions(listing);
        if only.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.private_file(state, cx, "extensions.list", &only)?;
        let mut cmd = state.client("pg_restore");
        cmd.args(["--file=-", "--use-list"]).arg(&path).arg(&dump.path);
        let done = process::run(cmd, CLIENT_LIMIT, &cx.cancel).await.map_err(client_error)?;
        if !done.status.success() {
            return Err(AdapterError::Restore(format!(
                "pg_restore cannot read the archive's extensions: {}",
                process::last_lines(&done.output, 3)
            )));
        }
        Ok(done
            .output
            .lines()
            .filter_map(dump::create_extension)
            .filter_map(|(name, schema)| schema.filter(|s| s != "public").map(|s| (name, s)))
            .collect())
    }

    /// Prepares a restore without superuser: the role, owner of the scratch database; the
    /// extensions the dump needs, created by the superuser; the archive's listing without them.
    async fn without_superuser(
        &self,
        state: &mut State,
        pool: &PgPool,
        needed: &[String],
        contents: &Contents,
        cx: &DrillCx,
    ) -> Result<(), AdapterError> {
        let database = state.target.get_database().unwrap_or_default().to_string();
        let mut statements = vec![
            format!(
                "create role {} login nosuperuser nocreatedb nocreaterole noreplication nobypassrls",
                ident(RESTORE_ROLE)
            ),
            format!("alter database {} owner to {}", ident(&database), ident(RESTORE_ROLE)),
        ];
        statements.extend(needed.iter().map(|e| format!("create extension if not exists {}", ident(e))));
        for sql in statements {
            // Identifiers are quoted; the names are ours or the dump's extension names.
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(pool)
                .await
                .map_err(|e| AdapterError::Restore(format!("cannot prepare the restore role (`{sql}`): {e}")))?;
        }
        if let Contents::Archive(listing) = contents {
            state.listing =
                Some(self.private_file(state, cx, "restore.list", &dump::listing_without_extensions(listing))?);
        }
        state.restore_role = Some(RESTORE_ROLE);
        Ok(())
    }

    /// A file in the drill's folder the restore tools can read (given to their account).
    fn private_file(&self, state: &State, cx: &DrillCx, name: &str, text: &str) -> Result<PathBuf, AdapterError> {
        let path = cx.work_dir.join(name);
        std::fs::write(&path, text).map_err(|e| AdapterError::io(format!("cannot write {}", path.display()), e))?;
        if let Some(a) = &state.account {
            a.give(&path).map_err(|e| AdapterError::io(format!("cannot give {} to {}", path.display(), a.name), e))?;
        }
        Ok(path)
    }

    async fn pg_restore(
        &self,
        state: &State,
        dump: &Dump,
        sections: &[&str],
        jobs: u32,
        cx: &DrillCx,
    ) -> Result<(), AdapterError> {
        let mut cmd = state.client("pg_restore");
        cmd.args(["--no-owner", "--no-privileges", "--no-tablespaces", "--no-publications", "--no-subscriptions"])
            .args(["--exit-on-error", "--dbname"])
            .arg(state.target.get_database().unwrap_or_default())
            .args(sections);
        if jobs > 1 {
            cmd.arg(format!("--jobs={jobs}"));
        }
        if let Some(list) = &state.listing {
            cmd.arg("--use-list").arg(list);
        }
        cmd.arg(&dump.path);
        let done = process::run(cmd, CLIENT_LIMIT, &cx.cancel).await.map_err(client_error)?;
        if !done.status.success() {
            let what = format!("pg_restore {} failed ({})", sections.join(" "), done.status);
            return Err(AdapterError::Restore(state.failure(&what, &done.output).await));
        }
        Ok(())
    }

    /// Feeds byte ranges of a plain script to `psql`, minus the statements a scratch copy
    /// must not run ([`dump::skipped_statement`]); returns how many were skipped.
    async fn psql(
        &self,
        state: &State,
        path: &std::path::Path,
        ranges: Vec<(u64, u64)>,
        cx: &DrillCx,
    ) -> Result<u64, AdapterError> {
        let mut cmd = state.client("psql");
        cmd.args(["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--dbname"])
            .arg(state.target.get_database().unwrap_or_default());
        let skipped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = skipped.clone();
        let path = PathBuf::from(path);
        // psql's own wall (17.6, 16.10, 15.14 … and later): after `\restrict KEY` it runs no
        // backslash command but `\unrestrict KEY`, and only drillbook knows the key.
        let restrict = match state.tools.psql_restricts() {
            true => Some(cluster::random_password()?),
            false => None,
        };
        let skip_extensions = state.restore_role.is_some();
        let feed = move |stdin| feed_script(path, ranges, restrict, skip_extensions, stdin, count);
        let done = process::run_fed(cmd, CLIENT_LIMIT, &cx.cancel, Some(feed)).await.map_err(client_error)?;
        if let Some(e) = done.feed_error {
            return Err(AdapterError::Restore(format!("reading the script failed: {e}")));
        }
        if !done.status.success() {
            let what = format!("psql failed ({})", done.status);
            return Err(AdapterError::Restore(state.failure(&what, &done.output).await));
        }
        Ok(skipped.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Feeds the script's ranges line by line, read again by the [`script::Scanner`] (already
/// passed once by `plain_layout`, so it refuses nothing here unless the file changed): the
/// dump's own `\restrict` lines give way to drillbook's, and statements a scratch copy must
/// not run are left out at top level only.
async fn feed_script(
    path: PathBuf,
    ranges: Vec<(u64, u64)>,
    restrict: Option<String>,
    skip_extensions: bool,
    mut stdin: tokio::process::ChildStdin,
    skipped: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncSeekExt};
    let file = tokio::fs::File::open(&path).await?;
    let mut r = tokio::io::BufReader::with_capacity(1 << 20, file);
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, &mut stdin);
    if let Some(key) = &restrict {
        out.write_all(format!("\\restrict {key}\n").as_bytes()).await?;
    }
    let mut line = Vec::new();
    let mut scanner = script::Scanner::default();
    for (start, end) in ranges {
        r.seek(std::io::SeekFrom::Start(start)).await?;
        let mut at = start;
        while at < end {
            line.clear();
            let n = r.read_until(b'\n', &mut line).await?;
            if n == 0 {
                break;
            }
            at += n as u64;
            let bare = dump::trim_newline(&line);
            let kind = scanner.line(bare).map_err(|e| {
                std::io::Error::other(format!("{} at line {} refused while feeding psql", e.what, e.line))
            })?;
            match kind {
                script::Line::Restrict => continue,
                // Created by drillbook before a restore without superuser.
                script::Line::TopLevel
                    if skip_extensions && dump::extension_statement(&String::from_utf8_lossy(bare)) =>
                {
                    continue;
                }
                script::Line::TopLevel if dump::skipped_statement(&String::from_utf8_lossy(bare)) => {
                    skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                _ => out.write_all(&line).await?,
            }
        }
    }
    out.flush().await?;
    drop(out);
    stdin.shutdown().await
}

fn client_error(e: RunError) -> AdapterError {
    match e {
        RunError::Cancelled => AdapterError::Cancelled,
        other => AdapterError::Restore(other.to_string()),
    }
}

fn server_home(server: &ServerScratch) -> Result<Home, AdapterError> {
    let mut admin: PgConnectOptions = server.url.parse().map_err(|e| {
        AdapterError::Provision(format!("scratch server `{}`: `url` is not a PostgreSQL URL: {e}", server.name))
    })?;
    if let Some(pw) = &server.password {
        admin = admin.password(pw);
    }
    Ok(Home::Server {
        name: server.name.clone(),
        admin: admin.application_name("drillbook"),
        tls: libpq_tls(&server.url),
    })
}

/// The URL's TLS parameters as libpq environment variables (sqlx reads them from the URL for
/// its own connections; the restore tools get them here).
fn libpq_tls(url: &str) -> Vec<(&'static str, String)> {
    const PARAMS: [(&str, &str); 5] = [
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
        ("sslcrl", "PGSSLCRL"),
    ];
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| PARAMS.iter().find(|(p, _)| *p == k).map(|(_, env)| (*env, percent_decode(v))))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Creates the scratch database, refusing one that exists: it is not ours to restore into.
async fn create_database(state: &mut State, database: &str) -> Result<(), AdapterError> {
    let admin = match &state.home {
        Home::Local(c) => c.connect_options("postgres"),
        Home::Server { admin, .. } => admin.clone(),
    };
    let whose = match &state.home {
        Home::Local(_) => "the scratch cluster".to_string(),
        Home::Server { name, .. } => format!("scratch server `{name}`"),
    };
    let mut conn = sqlx::ConnectOptions::connect(&admin)
        .await
        .map_err(|e| AdapterError::Provision(format!("cannot connect to {whose}: {e}")))?;
    if database_exists(&mut conn, database, &whose).await? {
        return Err(AdapterError::Provision(format!(
            "database {database} already exists on {whose}; a drill never restores into a database it did not create"
        )));
    }
    // Identifiers cannot be bound; the name is ours (`database_name`), quoted anyway.
    let sql = format!("create database {} template template0", ident(database));
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.map_err(|e| {
        let hint = if e.to_string().contains("42501") || e.to_string().contains("permission denied") {
            " (the configured role needs CREATEDB)"
        } else {
            ""
        };
        AdapterError::Provision(format!("{whose}: cannot create database {database}: {e}{hint}"))
    })?;
    state.database = Some(database.to_string());
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

/// Drops what this drill created: the database (server) or the whole cluster (local).
async fn release(state: &mut State, how: Teardown) -> Result<(), AdapterError> {
    if let Some(pool) = state.pool.take() {
        pool.close().await;
    }
    match &mut state.home {
        Home::Local(cluster) if how == Teardown::Keep => cluster.stop().await.map(|_| ()),
        Home::Server { .. } if how == Teardown::Keep => Ok(()),
        Home::Local(cluster) => {
            let stopped = cluster.stop().await;
            let removed = std::fs::remove_dir_all(&cluster.dir);
            stopped?;
            match removed {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(AdapterError::io(format!("cannot remove the cluster {}", cluster.dir.display()), e))
                }
                _ => Ok(()),
            }
        }
        Home::Server { name, admin, .. } => {
            let Some(database) = state.database.take() else {
                return Ok(());
            };
            drop_database(admin, &format!("scratch server `{name}`"), &database).await.map(|_| ())
        }
    }
}

/// Drops `database` if it exists; returns whether it did. `WITH (FORCE)` ends sessions a
/// check left open (PostgreSQL 13+).
async fn drop_database(admin: &PgConnectOptions, whose: &str, database: &str) -> Result<bool, AdapterError> {
    let mut conn = sqlx::ConnectOptions::connect(admin)
        .await
        .map_err(|e| AdapterError::Provision(format!("cannot connect to {whose} to drop {database}: {e}")))?;
    let dropped = async {
        if !database_exists(&mut conn, database, whose).await? {
            return Ok(false);
        }
        let sql = format!("drop database if exists {} with (force)", ident(database));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .map_err(|e| AdapterError::Provision(format!("{whose}: cannot drop {database}: {e}")))?;
        Ok(true)
    }
    .await;
    let _ = sqlx::Connection::close(conn).await;
    dropped
}

async fn database_exists(conn: &mut sqlx::PgConnection, database: &str, whose: &str) -> Result<bool, AdapterError> {
    let found: Option<i32> = sqlx::query_scalar("select 1 from pg_database where datname = $1")
        .bind(database)
        .fetch_optional(conn)
        .await
        .map_err(|e| AdapterError::Provision(format!("{whose}: {e}")))?;
    Ok(found.is_some())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A libpq URL for `command` checks (`DRILL_SCRATCH_URL`); the password is a remembered secret.
fn url(user: &str, password: Option<&str>, host: &str, port: u16, database: &str) -> String {
    let auth = match password {
        Some(p) => format!("{}:{}", percent_encode(user), percent_encode(p)),
        None => percent_encode(user),
    };
    format!("postgresql://{auth}@{host}:{port}/{database}")
}
