//! `adapter: chroma` — a Chroma persist folder (`chroma.sqlite3` + one folder per vector
//! segment), proven by Chroma itself: its schema migrations compared with the serving
//! Chroma's, then the real server (`chroma run`, validate mode) started on the restored folder
//! (`restore.start`, until its heartbeat), then checks through its HTTP API.
//!
//! Files: `server.rs` is the `local` scratch; `schema.rs` which Chroma wrote the backup;
//! `api.rs` the HTTP calls; `manifest.rs` ground truth (the same reads on the source and the
//! scratch); `checks.rs` the check kinds.

pub mod api;
mod checks;
pub mod manifest;
mod schema;
pub mod server;

use std::path::{Path, PathBuf};

use drillbook_runbooks::{Check, CheckKind, ChromaOptions, StoreQuery};

pub use api::Api;
pub use manifest::{ChromaManifest, capture, golden_answers};
use server::{Server, Start};

use crate::process::{self, Account};
use crate::{AdapterError, CheckOutcome, DrillCx, RestoreOutcome, Scratch, ScratchTarget, Teardown, Unpacked};

const DEFAULT_TENANT: &str = "default_tenant";
const DEFAULT_DATABASE: &str = "default_database";

pub struct Chroma {
    options: ChromaOptions,
    tools: process::Programs,
}

impl Chroma {
    pub fn new(options: ChromaOptions) -> Self {
        let tools = server::programs(options.bin_dir.as_deref());
        Chroma { options, tools }
    }

    fn account(&self) -> Result<Option<Account>, AdapterError> {
        Ok(Account::for_root(self.options.run_as.as_deref().unwrap_or("nobody"), "the Chroma scratch server")?)
    }

    fn tenant(&self) -> &str {
        self.options.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }

    fn database(&self) -> &str {
        self.options.database.as_deref().unwrap_or(DEFAULT_DATABASE)
    }
}

/// The live scratch: the server's folder, the persist folder it serves, the server once started.
pub struct Live {
    dir: PathBuf,
    port: u16,
    persist: PathBuf,
    account: Option<Account>,
    server: Option<Server>,
}

/// The persist folder of the unpacked backup: `path:`, else the one folder (3 levels deep at
/// most, links not followed) holding a `chroma.sqlite3`.
fn find(backup: &Unpacked, path: Option<&str>) -> Result<PathBuf, AdapterError> {
    let is_persist = |p: &Path| std::fs::symlink_metadata(p.join("chroma.sqlite3")).is_ok_and(|m| m.is_file());
    if let Some(rel) = path {
        let dir = crate::inside(&backup.root, rel)
            .ok_or_else(|| AdapterError::Restore(format!("`path: {rel}` must be a path inside the backup")))?;
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Err(AdapterError::Restore(format!(
                "`{rel}` is not a folder of the backup ({} files)",
                backup.files
            )));
        }
        if !is_persist(&dir) {
            return Err(AdapterError::Restore(format!(
                "`{rel}` holds no `chroma.sqlite3`: not a Chroma persist folder"
            )));
        }
        return Ok(dir);
    }
    if backup.single_file.is_some() {
        return Err(AdapterError::Restore(
            "the backup is a single file; a Chroma backup is an archive (tar, optionally gz/zst) of the persist folder"
                .into(),
        ));
    }
    let mut found = Vec::new();
    walk(&backup.root, 3, &is_persist, &mut found);
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(AdapterError::Restore(format!(
            "no Chroma persist folder (a folder with `chroma.sqlite3`) among the {} unpacked files",
            backup.files
        ))),
        many => Err(AdapterError::Restore(format!(
            "the backup holds {} Chroma persist folders ({}); name the one to restore with `path:`",
            many.len(),
            many.iter()
                .map(|p| p.strip_prefix(&backup.root).unwrap_or(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn walk(dir: &Path, depth: u32, is_persist: &dyn Fn(&Path) -> bool, found: &mut Vec<PathBuf>) {
    if is_persist(dir) {
        found.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth - 1, is_persist, found);
        }
    }
}

impl Chroma {
    fn server(live: &Live) -> Result<&Server, AdapterError> {
        live.server.as_ref().ok_or_else(|| AdapterError::Check("the backup was not served".into()))
    }
}

#[async_trait::async_trait]
impl crate::Store for Chroma {
    type Live = Live;

    fn kind(&self) -> &'static str {
        "chroma"
    }

    fn supports(&self, check: &CheckKind) -> bool {
        match check {
            CheckKind::Collections(_) | CheckKind::Points(_) | CheckKind::DocumentsChecksum(_) => true,
            CheckKind::VectorIntegrity(v) => v.collection.is_some(),
            CheckKind::VectorRecall(v) => v.collection.is_some(),
            _ => false,
        }
    }

    fn explain_restore(&self, backup: &str) -> Vec<String> {
        let chroma = self.tools.path("chroma").display().to_string();
        vec![
            format!(
                "Unpack {backup} into a scratch folder nobody else uses (owned by an unprivileged user when you are root); \
                 the persist folder is the one holding `chroma.sqlite3`."
            ),
            "Start the same `chroma run` once on an empty folder, stop it, and compare \
             `sqlite3 chroma.sqlite3 'select dir, filename from migrations'` of both folders: the backup must have \
             the same migrations, none more (a newer Chroma wrote it), none fewer (an older one did)."
                .into(),
            format!(
                "Write `chroma.yaml`: `{{port: <free port>, listen_address: 127.0.0.1, persist_path: <folder>, \
                 allow_reset: false, sqlitedb: {{hash_type: md5, migration_mode: validate}}}}`, then run \
                 `ANONYMIZED_TELEMETRY=False {chroma} run chroma.yaml`."
            ),
            "Wait until `curl http://127.0.0.1:<port>/api/v2/heartbeat` answers; the server's output names any error."
                .into(),
        ]
    }

    fn explain_check(&self, check: &Check) -> String {
        let api = format!("/api/v2/tenants/{}/databases/{}/collections", self.tenant(), self.database());
        match &check.check {
            CheckKind::Collections(c) => match &c.manifest {
                Some(m) => {
                    format!("`GET {api}`: every collection of `{m}` with its dimension, space, metadata and count.")
                }
                None => format!("`GET {api}` lists {}.", c.names.join(", ")),
            },
            CheckKind::Points(p) => {
                let want = match (&p.expect, &p.manifest) {
                    (Some(e), _) => e.raw().to_string(),
                    (None, m) => format!("the count in `{}` (tolerance {})", m.as_deref().unwrap_or("?"), p.tolerance),
                };
                match &p.filter {
                    Some(f) => format!(
                        "The ids `POST {api}/<id of {}>/get {{\"where\": {f}, \"include\": []}}` returns must number {want}.",
                        p.collection
                    ),
                    None => format!("`GET {api}/<id of {}>/count` must be {want}.", p.collection),
                }
            }
            CheckKind::VectorIntegrity(v) => format!(
                "Read every embedding of {} (`POST {api}/<id>/get` with `include: [embeddings]`, paged): {} finite values each.",
                v.collection.as_deref().unwrap_or("?"),
                v.dim
            ),
            CheckKind::VectorRecall(v) => format!(
                "Run the golden queries of `{}` through `POST {api}/<id>/query` (n_results {}), and as an exact search of \
                 the embeddings read back; mean recall must be ≥ {}.",
                v.queries, v.k, v.min_recall
            ),
            CheckKind::DocumentsChecksum(d) => format!(
                "Digest every record (id, document, metadata) of {} and compare with `{}`.",
                d.collection, d.manifest
            ),
            other => format!("`{}` check", other.name()),
        }
    }

    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch<Live>, AdapterError> {
        if let ScratchTarget::Server(s) = &cx.scratch {
            return Err(AdapterError::Provision(format!(
                "`scratch: server:{}`: a Chroma backup is served by a throwaway local Chroma only (`scratch: local`); \
                 a shared server's persist folder cannot take another one",
                s.name
            )));
        }
        let persist = find(backup, self.options.path.as_deref())?;
        let account = self.account()?;
        let dir = crate::child_folder(&cx.work_dir, "chroma", &[], account.as_ref(), "the Chroma scratch server")?;
        crate::give_folder(&cx.work_dir, &persist, account.as_ref(), "the Chroma server")?;
        let port = crate::free_port()?;
        Ok(Scratch {
            url: format!("http://127.0.0.1:{port}"),
            dir: backup.root.clone(),
            created: vec![format!(
                "scratch folder {} and the unpacked persist folder {} (127.0.0.1, a free port)",
                dir.display(),
                persist.display()
            )],
            state: Live { dir, port, persist, account, server: None },
        })
    }

    async fn restore(&self, cx: &DrillCx, live: &mut Live, _backup: &Unpacked) -> Result<RestoreOutcome, AdapterError> {
        let account = live.account.as_ref();
        // What the backup recorded, read before the server opens it.
        let applied = schema::applied(&live.persist.join("chroma.sqlite3"), true).await?;
        // The server starts on the backup while the same Chroma, on an empty folder, tells its
        // version and the migrations it knows (once per install, then kept); a backup written
        // by another version stops it.
        cx.parts.begin("restore.start", "chroma run, migrations in validate mode");
        let started = (chrono::Utc::now(), std::time::Instant::now());
        let probe = async {
            let engine = schema::engine(&self.tools, &live.dir, account, &cx.cancel).await;
            let detail = match engine.as_ref().ok().and_then(|e| e.kept.as_ref()) {
                Some(file) => format!("the backup's migrations vs this Chroma's, kept in {}", file.display()),
                None => "the backup's migrations vs this Chroma's, asked of it on an empty folder".to_string(),
            };
            cx.parts.record("restore.schema", started, None, detail);
            engine
        };
        let start = Start {
            tools: &self.tools,
            dir: &live.dir,
            persist: &live.persist,
            account,
            tenant: self.tenant(),
            database: self.database(),
            migrations: server::Migrations::Validate,
            port: live.port,
        };
        let (engine, server) = tokio::join!(probe, Server::start(start, &cx.cancel));
        // Why the backup cannot be served, if it cannot: the precise reason wins over the
        // server's own (`UnappliedMigrationsFound`).
        let verdict = engine.and_then(|e| {
            schema::compare(&applied, &e.migrations, &e.version).map_err(AdapterError::Restore)?;
            Ok(e.version)
        });
        let (version, server) = match (verdict, server) {
            (Ok(version), Ok(server)) => (version, server),
            (Err(e), Ok(mut server)) => {
                server.stop().await;
                return Err(e);
            }
            (Err(e), Err(_)) | (Ok(_), Err(e)) => return Err(e),
        };
        let schema_note = format!("schema: {} migrations, as {version} expects", applied.len());
        let api = server.api.clone();
        live.server = Some(server);
        cx.parts.end(Some(crate::tree_size(&live.persist)));
        let api_version = api.version().await.map_err(AdapterError::Restore)?;
        let collections = api.collections().await.map_err(AdapterError::Restore)?;
        let mut listed = Vec::new();
        for c in &collections {
            let n = api.count(c).await.map_err(AdapterError::Restore)?;
            listed.push(format!(
                "{}={n}{}",
                c.name,
                c.dimension.map(|d| format!(" ({d}-d {})", c.space())).unwrap_or_default()
            ));
        }
        Ok(RestoreOutcome::new(format!(
            "{schema_note}; served by {version} (API {api_version}): {}",
            if listed.is_empty() { "no collections".to_string() } else { listed.join(", ") }
        )))
    }

    async fn check(&self, cx: &DrillCx, live: &Live, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
        let server = Self::server(live)?;
        let api = &server.api;
        let outcome = match check {
            CheckKind::Collections(c) => checks::collections(cx, api, c).await,
            CheckKind::Points(p) => checks::points(cx, api, p).await,
            CheckKind::VectorIntegrity(v) => checks::vector_integrity(api, v).await,
            CheckKind::VectorRecall(v) => checks::vector_recall(cx, api, v).await,
            CheckKind::DocumentsChecksum(d) => checks::documents_checksum(cx, api, d).await,
            other => {
                Err(AdapterError::Unsupported(format!("adapter `chroma` cannot evaluate `{}` checks", other.name())))
            }
        };
        server.named_death(outcome)
    }

    fn answers(&self) -> &'static [&'static str] {
        &["points", "dimension"]
    }

    async fn values(
        &self,
        _cx: &DrillCx,
        live: &Live,
        query: StoreQuery<'_>,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        let server = Self::server(live)?;
        let outcome = match query {
            StoreQuery::Points(p) => checks::point_values(&server.api, p, each).await,
            StoreQuery::Dimension(d) => checks::dimension(&server.api, d, each).await,
            StoreQuery::Sql(_) => Err(crate::unanswered("chroma", query)),
        };
        server.named_death(outcome)
    }

    async fn teardown(&self, _cx: &DrillCx, mut live: Live, _how: Teardown) -> Result<(), AdapterError> {
        if let Some(mut server) = live.server.take() {
            let said = server.stop().await;
            tracing::debug!(stop = %said, "chroma scratch server");
        }
        Ok(())
    }
}

/// A stopped persist folder served for `drillbook manifest --path`: copied into a temporary
/// folder first (Chroma writes into the folder it serves; the source stays untouched), served
/// there with migrations in validate mode, removed with [`Served::stop`].
pub struct Served {
    server: Server,
    _tmp: tempfile::TempDir,
}

impl Served {
    pub async fn start(
        path: &Path,
        bin_dir: Option<&str>,
        run_as: Option<&str>,
        tenant: &str,
        database: &str,
    ) -> Result<Served, AdapterError> {
        if !path.join("chroma.sqlite3").is_file() {
            return Err(AdapterError::Provision(format!(
                "{} holds no `chroma.sqlite3`: not a Chroma persist folder",
                path.display()
            )));
        }
        let tools = server::programs(bin_dir);
        let account = Account::for_root(run_as.unwrap_or("nobody"), "the Chroma server of the manifest")?;
        let tmp = tempfile::Builder::new()
            .prefix("drillbook-chroma-manifest-")
            .tempdir()
            .map_err(|e| AdapterError::io("cannot create a temporary folder", e))?;
        let dir = crate::child_folder(tmp.path(), "server", &[], account.as_ref(), "the Chroma server")?;
        let persist = tmp.path().join("data");
        copy_tree(path, &persist).map_err(|e| AdapterError::io(format!("cannot copy {}", path.display()), e))?;
        crate::give_folder(tmp.path(), &persist, account.as_ref(), "the Chroma server")?;
        let start = Start {
            tools: &tools,
            dir: &dir,
            persist: &persist,
            account: account.as_ref(),
            tenant,
            database,
            migrations: server::Migrations::Validate,
            port: crate::free_port()?,
        };
        let server = Server::start(start, &tokio_util::sync::CancellationToken::new()).await?;
        Ok(Served { server, _tmp: tmp })
    }

    pub fn api(&self) -> &Api {
        &self.server.api
    }

    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}

/// Copies the folders and regular files of `from` (links are not followed nor copied).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}
