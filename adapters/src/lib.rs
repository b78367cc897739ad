//! drillbook adapters: the [`Adapter`] trait, one folder per store, the store-independent
//! checks, backup sources (opendal) and unpacking.
//!
//! **Invariant:** adapters receive validated options (`drillbook_runbooks` types), never YAML.
//! **Invariant:** an adapter writes only inside what it created in `provision`, and
//! `teardown` removes all of it.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use drillbook_runbooks::{Check, CheckKind, StoreQuery};
use tokio_util::sync::CancellationToken;

pub mod checks;
pub mod crash;
pub mod manifest;
pub mod process;
pub mod progress;
pub mod registry;
pub mod secrets;
pub mod source;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mariadb"))]
pub mod sql;
pub mod unpack;
pub mod vectors;

#[cfg(feature = "chroma")]
pub mod chroma;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "mariadb")]
pub mod mariadb;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "qdrant")]
pub mod qdrant;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use progress::{NoProgress, Progress};
pub use registry::build;
pub use secrets::Secrets;

/// What every adapter call gets to know about the drill it serves.
#[derive(Clone)]
pub struct DrillCx {
    pub run_id: String,
    /// Relative paths of a runbook (manifests, golden queries) resolve against this folder.
    pub runbook_dir: PathBuf,
    /// The drill's private folder; the runner creates it and removes it on every path.
    pub work_dir: PathBuf,
    pub cancel: CancellationToken,
    pub secrets: Secrets,
    pub progress: Arc<dyn Progress>,
    /// Where the scratch environment comes from (`restore.scratch` resolved in the config).
    pub scratch: ScratchTarget,
    /// Timed parts of the current step.
    pub parts: Parts,
}

/// Where a drill's scratch environment comes from.
#[derive(Clone, Debug, Default)]
pub enum ScratchTarget {
    /// An ephemeral server from installed binaries, in the drill's folder.
    #[default]
    Local,
    /// A uniquely named database on a configured server (`scratch:` in the config).
    Server(ServerScratch),
}

/// A `scratch:` entry of the config, its references resolved.
#[derive(Clone)]
pub struct ServerScratch {
    /// The entry's name (`server:<name>` in runbooks).
    pub name: String,
    /// Its `type`: which adapters can use it.
    pub kind: String,
    /// Where to connect to create and drop scratch databases.
    pub url: String,
    /// Kept out of `url` and out of `Debug`; the secrets registry redacts it everywhere.
    pub password: Option<String>,
}

impl std::fmt::Debug for ServerScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerScratch").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl DrillCx {
    /// A runbook-relative path made absolute.
    pub fn runbook_path(&self, p: &str) -> PathBuf {
        self.runbook_dir.join(p)
    }
}

/// What unpacking the backup yielded.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The folder holding the restored tree (or the single restored file).
    pub root: PathBuf,
    /// Set when the backup was one file rather than an archive.
    pub single_file: Option<PathBuf>,
    /// e.g. `zstd+tar`, `gzip`, `raw`.
    pub format: String,
    /// The backup object's file name without its compression and encryption suffixes
    /// (`docs-1-2026-11-29-03-00-00.snapshot`).
    pub name: String,
    pub files: u64,
    pub bytes: u64,
}

impl Unpacked {
    /// The file an adapter restores: `file` inside the tree, or the single file.
    pub fn file(&self, file: Option<&str>) -> Result<PathBuf, AdapterError> {
        match (file, &self.single_file) {
            (Some(name), _) => {
                let path = self.root.join(name);
                if !path.is_file() {
                    return Err(AdapterError::Restore(format!(
                        "`{name}` is not in the backup ({} files unpacked)",
                        self.files
                    )));
                }
                Ok(path)
            }
            (None, Some(single)) => Ok(single.clone()),
            (None, None) => Err(AdapterError::Restore(format!(
                "the backup is an archive of {} files; name the one to restore with `file:` beside `adapter`",
                self.files
            ))),
        }
    }

    /// The part of the unpacked backup at `from` (a restore's `from:`), as if it had been the
    /// whole backup: a folder becomes the tree, a file the single file. Never outside the
    /// tree: `from` is relative without `..` (validation), and a link on the way is refused.
    pub fn within(&self, from: &str) -> Result<Unpacked, AdapterError> {
        let path = self.root.join(from.trim_end_matches('/'));
        let missing =
            || AdapterError::Restore(format!("`from: {from}` is not in the backup ({} files unpacked)", self.files));
        let mut at = self.root.clone();
        for part in Path::new(from).components() {
            at.push(part);
            let m = std::fs::symlink_metadata(&at).map_err(|_| missing())?;
            if m.file_type().is_symlink() {
                return Err(AdapterError::Restore(format!("`from: {from}`: {} is a link", at.display())));
            }
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let format = format!("{}, {from}", self.format);
        if path.is_file() {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let root = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
            return Ok(Unpacked { root, single_file: Some(path), format, name, files: 1, bytes });
        }
        let (mut files, mut bytes, mut stack) = (0, 0, vec![path.clone()]);
        while let Some(dir) = stack.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| AdapterError::io(format!("cannot read {}", dir.display()), e))?;
            for e in entries.flatten() {
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(e.path()),
                    Ok(t) if t.is_file() => {
                        files += 1;
                        bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                    }
                    _ => {}
                }
            }
        }
        Ok(Unpacked { root: path, single_file: None, format, name, files, bytes })
    }
}

/// A scratch environment that exists only for this drill. `S` is the adapter's own handle:
/// type-erased for the runner ([`Adapter`]), the store's own type inside a [`Store`].
pub struct Scratch<S = Box<dyn Any + Send + Sync>> {
    /// Handed to `command` checks as `DRILL_SCRATCH_URL`.
    pub url: String,
    /// The restored tree, handed to checks as `DRILL_SCRATCH_DIR`.
    pub dir: PathBuf,
    /// What was created, in words (for the report and for cleanup after a crash).
    pub created: Vec<String>,
    /// The adapter's own handle (a connection pool, a child process).
    pub state: S,
}

/// The outcome of restoring; its timed parts go through [`DrillCx::parts`].
#[derive(Debug, Default)]
pub struct RestoreOutcome {
    pub detail: String,
    /// When the backup was taken, as its own content says (a pg_dump archive header, an RDB's
    /// `ctime`, a Qdrant snapshot's name): the runner prefers it to the object's time.
    pub taken: Option<Taken>,
}

impl RestoreOutcome {
    pub fn new(detail: impl Into<String>) -> RestoreOutcome {
        RestoreOutcome { detail: detail.into(), taken: None }
    }
}

/// A backup's time read from its content, and what it was read from (`its pg_dump archive
/// header`).
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub at: chrono::DateTime<chrono::Utc>,
    pub from: String,
}

/// A named, timed part of a step (`restore.data`, `restore.post-data`).
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    pub bytes: Option<u64>,
    pub detail: String,
}

/// Parts of a step, recorded as they happen, so that a step cut short (a timeout during an
/// index build) still shows which part was running and for how long.
#[derive(Clone, Default)]
pub struct Parts(Arc<std::sync::Mutex<PartLog>>);

#[derive(Default)]
struct PartLog {
    done: Vec<Part>,
    running: Option<(Part, std::time::Instant)>,
}

impl Parts {
    /// Starts a part (ending any part still running).
    pub fn begin(&self, name: &str, detail: impl Into<String>) {
        self.end(None);
        if let Ok(mut log) = self.0.lock() {
            let part = Part {
                name: name.into(),
                started_at: chrono::Utc::now(),
                duration_ms: 0,
                bytes: None,
                detail: detail.into(),
            };
            log.running = Some((part, std::time::Instant::now()));
        }
    }

    /// Ends the running part.
    pub fn end(&self, bytes: Option<u64>) {
        if let Ok(mut log) = self.0.lock()
            && let Some((mut part, t)) = log.running.take()
        {
            part.duration_ms = t.elapsed().as_millis() as u64;
            part.bytes = bytes;
            log.done.push(part);
        }
    }

    /// Records a part that ran beside the running one (a check over the backup while the server
    /// loads it), from `started` until now.
    pub fn record(
        &self,
        name: &str,
        started: (chrono::DateTime<chrono::Utc>, std::time::Instant),
        bytes: Option<u64>,
        detail: impl Into<String>,
    ) {
        if let Ok(mut log) = self.0.lock() {
            log.done.push(Part {
                name: name.into(),
                started_at: started.0,
                duration_ms: started.1.elapsed().as_millis() as u64,
                bytes,
                detail: detail.into(),
            });
        }
    }

    /// The finished parts, and the one that was running when the step stopped, timed so far.
    pub fn take(&self) -> (Vec<Part>, Option<Part>) {
        let Ok(mut log) = self.0.lock() else { return (Vec::new(), None) };
        let running = log.running.take().map(|(mut p, t)| {
            p.duration_ms = t.elapsed().as_millis() as u64;
            p
        });
        (std::mem::take(&mut log.done), running)
    }
}

/// The result of a check that could be evaluated.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub passed: bool,
    pub observed: serde_json::Value,
    pub expected: serde_json::Value,
    pub detail: String,
}

/// Why an adapter call could not be completed. A failed *check* is not an error: it is a
/// `CheckOutcome` with `passed: false`; an error means the check could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{0}")]
    Provision(String),
    #[error("{0}")]
    Restore(String),
    #[error("{0}")]
    Check(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<process::AccountError> for AdapterError {
    fn from(e: process::AccountError) -> Self {
        AdapterError::Provision(e.to_string())
    }
}

/// Lets `account` pass through the drill's private folder, and every folder between it and
/// `reach`, to `reach` (0711 on each: enter, not list); what is inside stays owner-only. `who`
/// names what runs as the account, for the error when a folder above cannot be passed.
pub fn open_path_to(work_dir: &Path, reach: &Path, account: &process::Account, who: &str) -> Result<(), AdapterError> {
    use std::os::unix::fs::MetadataExt;
    // A restore of a stack works in its own folder, but may read the drill's shared backup.
    let work_dir = drill_folder(work_dir);
    for above in work_dir.ancestors().skip(1) {
        let Ok(m) = std::fs::metadata(above) else { break };
        let bit = if m.uid() == account.uid {
            0o100
        } else if m.gid() == account.gid {
            0o010
        } else {
            0o001
        };
        if m.mode() & bit == 0 {
            return Err(AdapterError::Provision(format!(
                "{who} runs as `{}`, who cannot pass through {} to reach the drill folder; \
                 set TMPDIR to a folder that user can reach (e.g. /tmp) or run drillbook as that user",
                account.name,
                above.display()
            )));
        }
    }
    pass_through(work_dir, reach)
        .map_err(|(folder, e)| AdapterError::io(format!("cannot open {} to {}", folder.display(), account.name), e))
}

/// Where the restores of a drill of several (`restores:`) work: `<drill folder>/lanes/<name>`.
pub const LANES: &str = "lanes";

/// The drill's folder of a `work_dir`: itself, or the drill's folder above a restore's own
/// folder in a drill of several ([`LANES`]).
pub fn drill_folder(work_dir: &Path) -> &Path {
    match work_dir.parent() {
        Some(lanes) if lanes.file_name().is_some_and(|n| n == LANES) => lanes.parent().unwrap_or(work_dir),
        _ => work_dir,
    }
}

/// Makes every folder above `reach`, up to and including `top`, passable by other users (0711:
/// enter, not list).
fn pass_through(top: &Path, reach: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for folder in reach.ancestors().skip(1).take_while(|f| f.starts_with(top)) {
        let m = std::fs::symlink_metadata(folder).map_err(|e| (folder.to_path_buf(), e))?;
        if m.is_dir() && m.mode() & 0o011 != 0o011 {
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode((m.mode() & 0o777) | 0o711))
                .map_err(|e| (folder.to_path_buf(), e))?;
        }
    }
    Ok(())
}

/// Hands `folder` (under `work_dir`) to the child that runs as `account`, when drillbook is
/// root: the folders above it passable ([`open_path_to`]), the tree its own (links themselves,
/// never their targets). `who` names the child for the errors.
pub(crate) fn give_folder(
    work_dir: &Path,
    folder: &Path,
    account: Option<&process::Account>,
    who: &str,
) -> Result<(), AdapterError> {
    let Some(a) = account else { return Ok(()) };
    open_path_to(work_dir, folder, a, who)?;
    a.give_tree(folder).map_err(|e| AdapterError::io(format!("cannot give {} to {}", folder.display(), a.name), e))
}

/// A folder of the drill's for a child that runs as `account` (a scratch server, an extractor):
/// `work_dir/name` and its `subdirs`, owned by the account, 0700, with the folders above it opened
/// to it just enough to pass ([`open_path_to`]). `who` names the child for the errors.
pub(crate) fn child_folder(
    work_dir: &Path,
    name: &str,
    subdirs: &[&str],
    account: Option<&process::Account>,
    who: &str,
) -> Result<PathBuf, AdapterError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = work_dir.join(name);
    let all: Vec<PathBuf> = std::iter::once(dir.clone()).chain(subdirs.iter().map(|s| dir.join(s))).collect();
    for d in &all {
        std::fs::create_dir(d).map_err(|e| AdapterError::io(format!("cannot create {}", d.display()), e))?;
    }
    if let Some(a) = account {
        open_path_to(work_dir, &dir, a, who)?;
        for d in &all {
            a.give(d).map_err(|e| AdapterError::io(format!("cannot give {} to {}", d.display(), a.name), e))?;
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| AdapterError::io(format!("cannot protect {}", dir.display()), e))?;
    Ok(dir)
}

impl AdapterError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AdapterError::Io { context: context.into(), source }
    }
}

/// One store. Implementations live in their own folder and are listed in [`registry`].
#[async_trait::async_trait]
pub trait Adapter: Send + Sync {
    /// The `adapter:` word in YAML, the folder name and the cargo feature.
    fn kind(&self) -> &'static str;
    /// Whether this adapter evaluates `check` itself. Store-independent kinds
    /// (`command`, `files`, `config_parse`) are handled by [`checks`] for every adapter.
    fn supports(&self, check: &CheckKind) -> bool;
    /// The `type`s of config `scratch:` servers this adapter can restore into; none by default.
    fn server_kinds(&self) -> &'static [&'static str] {
        &[]
    }
    /// The restore as manual steps, for `drillbook explain`.
    fn explain_restore(&self, backup: &str) -> Vec<String>;
    /// A check as a manual step, for `drillbook explain`.
    fn explain_check(&self, check: &Check) -> String;

    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch, AdapterError>;
    async fn restore(
        &self,
        cx: &DrillCx,
        scratch: &mut Scratch,
        backup: &Unpacked,
    ) -> Result<RestoreOutcome, AdapterError>;
    async fn check(&self, cx: &DrillCx, scratch: &Scratch, check: &CheckKind) -> Result<CheckOutcome, AdapterError>;
    /// Stops what `provision` started and removes what it created (`Teardown::Remove`), or
    /// leaves the data for investigation (`Teardown::Keep`). Must succeed on a half-provisioned
    /// scratch.
    async fn teardown(&self, cx: &DrillCx, scratch: Scratch, how: Teardown) -> Result<(), AdapterError>;

    /// After a crash: removes what a dead drill `run_id` may have created outside its folder
    /// (the folder and the processes started in it are the runner's to remove). Only names
    /// the drill would have chosen itself are touched. Returns what was removed.
    async fn sweep(&self, _run_id: &str, _scratch: &ScratchTarget) -> Result<Vec<String>, AdapterError> {
        Ok(Vec::new())
    }

    /// The value sets this store answers (`sql`, `points`, `dimension`: [`StoreQuery::key`]),
    /// for the checks that compare restores; none by default.
    fn answers(&self) -> &'static [&'static str] {
        &[]
    }

    /// The values `query` asks for on the restored store, streamed to `each` (an SQL query's
    /// rows: the first column as text, NULL as `NULL`; a collection's points: a payload field
    /// or the id). Returns how many. For the checks that compare restores (`references`,
    /// `same_set`, `same_count`, `config_matches`, `same_results`), which never hold a whole
    /// table.
    async fn values(
        &self,
        _cx: &DrillCx,
        _scratch: &Scratch,
        query: StoreQuery<'_>,
        _each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        Err(unanswered(self.kind(), query))
    }
}

/// Why a store cannot give a value set.
pub fn unanswered(kind: &str, query: StoreQuery<'_>) -> AdapterError {
    AdapterError::Unsupported(format!("adapter `{kind}` cannot answer `{}` value sets", query.key()))
}

/// What teardown does with a scratch environment's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// Everything the drill created goes (every drill that passed, and failed ones by default).
    Remove,
    /// A failed drill's data stays for investigation (`keep_on_failure`): servers are stopped,
    /// their data folders and a server's scratch database are left for `drillbook scratch rm`
    /// or the daemon to remove when the time is up.
    Keep,
}

/// A store whose live scratch is its own type (`Live`: a server process and a connection, say):
/// what an adapter implements when the compiler should check its state instead of a downcast
/// in every method. Every `Store` is an [`Adapter`]; the one downcast lives in that impl.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    type Live: Send + Sync + 'static;

    fn kind(&self) -> &'static str;
    fn supports(&self, check: &CheckKind) -> bool;
    fn server_kinds(&self) -> &'static [&'static str] {
        &[]
    }
    fn explain_restore(&self, backup: &str) -> Vec<String>;
    fn explain_check(&self, check: &Check) -> String;

    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch<Self::Live>, AdapterError>;
    async fn restore(
        &self,
        cx: &DrillCx,
        live: &mut Self::Live,
        backup: &Unpacked,
    ) -> Result<RestoreOutcome, AdapterError>;
    async fn check(&self, cx: &DrillCx, live: &Self::Live, check: &CheckKind) -> Result<CheckOutcome, AdapterError>;
    /// As [`Adapter::teardown`].
    async fn teardown(&self, cx: &DrillCx, live: Self::Live, how: Teardown) -> Result<(), AdapterError>;
    async fn sweep(&self, _run_id: &str, _scratch: &ScratchTarget) -> Result<Vec<String>, AdapterError> {
        Ok(Vec::new())
    }
    /// As [`Adapter::answers`].
    fn answers(&self) -> &'static [&'static str] {
        &[]
    }
    /// As [`Adapter::values`].
    async fn values(
        &self,
        _cx: &DrillCx,
        _live: &Self::Live,
        query: StoreQuery<'_>,
        _each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        Err(unanswered(Store::kind(self), query))
    }
}

fn foreign_scratch(kind: &str) -> AdapterError {
    AdapterError::Check(format!("the scratch environment was not made by the {kind} adapter"))
}

#[async_trait::async_trait]
impl<S: Store> Adapter for S {
    fn kind(&self) -> &'static str {
        Store::kind(self)
    }
    fn supports(&self, check: &CheckKind) -> bool {
        Store::supports(self, check)
    }
    fn server_kinds(&self) -> &'static [&'static str] {
        Store::server_kinds(self)
    }
    fn explain_restore(&self, backup: &str) -> Vec<String> {
        Store::explain_restore(self, backup)
    }
    fn explain_check(&self, check: &Check) -> String {
        Store::explain_check(self, check)
    }
    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch, AdapterError> {
        let s = Store::provision(self, cx, backup).await?;
        Ok(Scratch { url: s.url, dir: s.dir, created: s.created, state: Box::new(s.state) })
    }
    async fn restore(
        &self,
        cx: &DrillCx,
        scratch: &mut Scratch,
        backup: &Unpacked,
    ) -> Result<RestoreOutcome, AdapterError> {
        let live = scratch.state.downcast_mut::<S::Live>().ok_or_else(|| foreign_scratch(Store::kind(self)))?;
        Store::restore(self, cx, live, backup).await
    }
    async fn check(&self, cx: &DrillCx, scratch: &Scratch, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
        let live = scratch.state.downcast_ref::<S::Live>().ok_or_else(|| foreign_scratch(Store::kind(self)))?;
        Store::check(self, cx, live, check).await
    }
    async fn teardown(&self, cx: &DrillCx, scratch: Scratch, how: Teardown) -> Result<(), AdapterError> {
        let live = scratch.state.downcast::<S::Live>().map_err(|_| foreign_scratch(Store::kind(self)))?;
        Store::teardown(self, cx, *live, how).await
    }
    async fn sweep(&self, run_id: &str, scratch: &ScratchTarget) -> Result<Vec<String>, AdapterError> {
        Store::sweep(self, run_id, scratch).await
    }
    fn answers(&self) -> &'static [&'static str] {
        Store::answers(self)
    }
    async fn values(
        &self,
        cx: &DrillCx,
        scratch: &Scratch,
        query: StoreQuery<'_>,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        let live = scratch.state.downcast_ref::<S::Live>().ok_or_else(|| foreign_scratch(Store::kind(self)))?;
        Store::values(self, cx, live, query, each).await
    }
}

/// Runs one check: store-independent kinds here, the rest through the adapter.
pub async fn run_check(
    adapter: &dyn Adapter,
    cx: &DrillCx,
    scratch: &Scratch,
    check: &CheckKind,
) -> Result<CheckOutcome, AdapterError> {
    match check {
        CheckKind::Command(c) => checks::command::run(cx, scratch, c).await,
        CheckKind::Files(f) => checks::files::run(cx, &scratch.dir, f).await,
        CheckKind::ConfigParse(c) => checks::config::run(cx, &scratch.dir, c).await,
        other if adapter.supports(other) => adapter.check(cx, scratch, other).await,
        other => Err(AdapterError::Unsupported(format!(
            "adapter `{}` cannot evaluate `{}` checks",
            adapter.kind(),
            other.name()
        ))),
    }
}

/// Whether a check kind can run against this adapter (used by validation before a drill).
pub fn can_run(adapter: &dyn Adapter, check: &CheckKind) -> bool {
    checks::is_store_independent(check) || adapter.supports(check)
}

/// Reads a runbook-relative file for a check, with the path in the error.
pub fn read_input(cx: &DrillCx, p: &str) -> Result<String, AdapterError> {
    let path = cx.runbook_path(p);
    std::fs::read_to_string(&path).map_err(|e| AdapterError::io(format!("cannot read {}", path.display()), e))
}

/// Bytes of the regular files below `dir` (links not followed), for a part's `bytes`.
pub(crate) fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// A loopback port free right now, for a scratch server that cannot use a unix socket.
pub(crate) fn free_port() -> Result<u16, AdapterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| AdapterError::io("cannot find a free port", e))?;
    l.local_addr().map(|a| a.port()).map_err(|e| AdapterError::io("cannot find a free port", e))
}

/// A path inside `root` from a manifest or glob, refusing anything that escapes it.
pub fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return None;
    }
    Some(root.join(p))
}
