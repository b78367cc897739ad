//! `adapter: qdrant` — a Qdrant snapshot proven by Qdrant's own engine. drillbook unpacks the
//! snapshot with its hostile-input rules, finds the shards (a collection snapshot, a shard
//! snapshot, or one collection of a full storage snapshot), and hands them to Qdrant Edge in a
//! child process (`drillbook-qdrant-engine`): Qdrant's snapshot code restores each shard's
//! segments (`restore.unpack-shards`), Qdrant Edge loads them (`restore.load`), and every check
//! is a count, a scroll or a search by Qdrant Edge.
//!
//! Files: `protocol.rs` what drillbook and the child say; `engine.rs` the child; `checks.rs`
//! the check kinds; `manifest.rs` ground truth from a snapshot (the same reads).

mod checks;
pub mod engine;
pub mod manifest;
pub mod protocol;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drillbook_runbooks::{Check, CheckKind, Metric, QdrantOptions, StoreQuery};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::process::Account;
use crate::{AdapterError, CheckOutcome, DrillCx, RestoreOutcome, Scratch, ScratchTarget, Teardown, Unpacked};
use engine::{Engine, Failure};
pub use manifest::{QdrantManifest, capture};
use protocol::{Answer, Request, ScanRequest, ShardDir, ShardInfo, VectorParams};

pub struct Qdrant {
    options: QdrantOptions,
}

impl Qdrant {
    pub fn new(options: QdrantOptions) -> Self {
        Qdrant { options }
    }

    fn account(&self) -> Result<Option<Account>, AdapterError> {
        Ok(Account::for_root(self.options.run_as.as_deref().unwrap_or("nobody"), "the Qdrant engine")?)
    }
}

/// The program installed beside `drillbook` that runs the engine.
const ENGINE_PROGRAM: &str = "drillbook-qdrant-engine";

/// The engine program: `engine:`, else `drillbook-qdrant-engine` beside this drillbook.
pub fn engine_program(engine: Option<&str>) -> Result<PathBuf, AdapterError> {
    match engine {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe()
            .map(|exe| exe.with_file_name(ENGINE_PROGRAM))
            .map_err(|e| AdapterError::io("cannot find the drillbook program beside which the Qdrant engine is", e)),
    }
}

/// What the unpacked backup holds.
#[derive(Debug)]
pub struct Layout {
    /// `collection snapshot`, `shard snapshot`, `full storage snapshot`.
    pub kind: &'static str,
    /// The collection's name, when the snapshot or the runbook says it.
    pub collection: Option<String>,
    /// `version.info`: the Qdrant version that wrote a collection snapshot.
    pub version: Option<String>,
    /// `config.json` of a collection snapshot.
    pub config: Option<Value>,
    pub shards: Vec<ShardDir>,
}

/// Finds the shards of the unpacked snapshot. A full storage snapshot's collection snapshot
/// is unpacked (with the same rules) into `work_dir`.
pub fn layout(
    root: &Path,
    object_name: &str,
    options: &QdrantOptions,
    work_dir: &Path,
    cancel: &CancellationToken,
) -> Result<Layout, AdapterError> {
    let restore = |m: String| AdapterError::Restore(m);
    let mut base = match &options.path {
        Some(rel) => crate::inside(root, rel)
            .ok_or_else(|| restore(format!("`path: {rel}` must be a path inside the backup")))?,
        None => root.to_path_buf(),
    };
    let mut kind = "collection snapshot";
    let mut collection = options.collection.clone();
    let mut config = read_json(&base.join("config.json"))?;
    if let Some(mapping) = config.as_ref().and_then(|c| c.get("collections_mapping")).and_then(Value::as_object) {
        // A full storage snapshot: `config.json` maps each collection to its snapshot file.
        let names: Vec<&String> = mapping.keys().collect();
        let name = match (&options.collection, names.as_slice()) {
            (Some(c), _) => c.clone(),
            (None, [one]) => (*one).clone(),
            (None, _) => {
                return Err(restore(format!(
                    "the full storage snapshot holds {} collections ({}); name the one to restore with `collection:`",
                    names.len(),
                    names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        };
        let file = mapping.get(&name).and_then(Value::as_str).ok_or_else(|| {
            restore(format!(
                "the full storage snapshot has no collection `{name}` (it has {})",
                names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let inner = crate::inside(&base, file)
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .ok_or_else(|| restore(format!("collection `{name}`'s snapshot `{file}` is not in the backup")))?;
        let dest = work_dir.join("qdrant-collection");
        std::fs::create_dir(&dest).map_err(|e| AdapterError::io(format!("cannot create {}", dest.display()), e))?;
        let size = std::fs::metadata(&inner).map(|m| m.len()).unwrap_or(0);
        let limits = crate::unpack::Limits { compressed_size: size, max_ratio: crate::unpack::DEFAULT_MAX_RATIO };
        let reader = std::fs::File::open(&inner).map_err(|e| AdapterError::io(format!("cannot open {file}"), e))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(cancel.is_cancelled()));
        crate::unpack::unpack(reader, file, &dest, &limits, None, stop)
            .map_err(|e| restore(format!("collection `{name}`'s snapshot `{file}`: {e}")))?;
        base = dest;
        config = read_json(&base.join("config.json"))?;
        kind = "full storage snapshot";
        collection = Some(name);
    }
    if base.join("segments").is_dir() {
        return Ok(Layout {
            kind: "shard snapshot",
            collection: collection.or_else(|| collection_of(object_name)),
            version: None,
            config: None,
            shards: vec![ShardDir { id: "0".into(), path: base }],
        });
    }
    let config = config.ok_or_else(|| {
        restore(
            "not a Qdrant snapshot: no `config.json` (a collection snapshot), `segments/` (a shard snapshot) or \
             `collections_mapping` (a full storage snapshot)"
                .into(),
        )
    })?;
    let version = version_info(&base.join("version.info"));
    let mut shards: Vec<(u64, PathBuf)> = std::fs::read_dir(&base)
        .map_err(|e| AdapterError::io(format!("cannot list {}", base.display()), e))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u64>().ok()?, e.path())))
        .collect();
    shards.sort();
    let expected = config.pointer("/params/shard_number").and_then(Value::as_u64).unwrap_or(1);
    let missing: Vec<String> = (0..expected)
        .filter(|n| !shards.iter().any(|(id, p)| id == n && p.join("segments").is_dir()))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(restore(format!(
            "the collection has {expected} shard{} and the snapshot lacks shard {} (no `{}/segments/`); a snapshot \
             taken on one peer of a cluster holds only that peer's shards: drill every peer's snapshot",
            if expected == 1 { "" } else { "s" },
            missing.join(", "),
            missing[0]
        )));
    }
    Ok(Layout {
        kind,
        collection: collection.or_else(|| collection_of(object_name)),
        version,
        config: Some(config),
        shards: shards.into_iter().map(|(id, path)| ShardDir { id: id.to_string(), path }).collect(),
    })
}

/// `version.info` when it reads as a version (it goes into the report: a hostile snapshot's
/// file is not copied there whole).
fn version_info(path: &Path) -> Option<String> {
    let mut head = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::open(path).ok()?, 64), &mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    let v = text.trim();
    let plausible = !v.is_empty()
        && v.len() <= 40
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
    Some(if plausible { v.to_string() } else { "an unreadable version.info".to_string() })
}

fn read_json(path: &Path) -> Result<Option<Value>, AdapterError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| AdapterError::io(format!("cannot read {}", path.display()), e))?;
            serde_json::from_str(&text).map(Some).map_err(|e| {
                AdapterError::Restore(format!(
                    "`{}` is not JSON: {e}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ))
            })
        }
        _ => Ok(None),
    }
}

/// The collection of a snapshot named as Qdrant names them:
/// `<collection>-<peer id>-<YYYY-MM-DD-HH-MM-SS>.snapshot`.
pub fn collection_of(object_name: &str) -> Option<String> {
    Some(qdrant_name(object_name)?.0.to_string())
}

/// When a snapshot named as Qdrant names them was taken: Qdrant writes the UTC time
/// (`Utc::now()` in `lib/collection/src/collection/snapshots.rs`).
pub fn snapshot_time(object_name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let time = qdrant_name(object_name)?.1;
    chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d-%H-%M-%S").ok().map(|t| t.and_utc())
}

/// (collection, `YYYY-MM-DD-HH-MM-SS`) of `<collection>-<peer id>-<time>.snapshot`.
fn qdrant_name(object_name: &str) -> Option<(&str, &str)> {
    let stem = object_name.strip_suffix(".snapshot")?;
    let parts: Vec<&str> = stem.rsplitn(8, '-').collect();
    // Reversed: 6 time fields, the peer id, then the collection (which may hold dashes).
    if parts.len() < 8 || !parts[..7].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let collection = parts[7];
    let time = &stem[collection.len() + 1 + parts[6].len() + 1..];
    (!collection.is_empty()).then_some((collection, time))
}

/// A loaded snapshot: the engine child and what it loaded.
pub struct Loaded {
    engine: Mutex<Engine>,
    pub pid: Option<u32>,
    pub shards: Vec<ShardInfo>,
    pub collection: Option<String>,
}

impl Loaded {
    /// Starts the engine and restores + loads the shards, timing each as a part of `cx`
    /// when given.
    pub async fn open(
        program: &Path,
        dir: &Path,
        account: Option<&Account>,
        layout: &Layout,
        parts: Option<&crate::Parts>,
        cancel: &CancellationToken,
    ) -> Result<Loaded, AdapterError> {
        let mut engine = Engine::start(program, dir, account)?;
        let shards = layout.shards.clone();
        let bytes: u64 = shards.iter().map(|s| crate::tree_size(&s.path)).sum();
        let result = async {
            if let Some(p) = parts {
                p.begin("restore.unpack-shards", format!("{} shard(s), Qdrant's snapshot code", shards.len()));
            }
            expect_restored(engine.ask(&Request::Restore { shards: shards.clone() }, cancel).await)?;
            if let Some(p) = parts {
                p.end(Some(bytes));
                p.begin("restore.load", "Qdrant Edge loads the shards");
            }
            let infos = match engine.ask(&Request::Load { shards }, cancel).await.map_err(|f| f.restore_error())? {
                Answer::Loaded { shards } => shards,
                other => return Err(AdapterError::Restore(format!("unexpected answer {other:?}"))),
            };
            if let Some(p) = parts {
                p.end(Some(infos.iter().map(|s| s.points).sum()));
            }
            Ok(infos)
        }
        .await;
        match result {
            Ok(shards) => Ok(Loaded {
                pid: engine.pid,
                engine: Mutex::new(engine),
                shards,
                collection: layout.collection.clone(),
            }),
            Err(e) => {
                engine.stop().await;
                Err(e)
            }
        }
    }

    pub async fn ask(&self, request: &Request, cancel: &CancellationToken) -> Result<Answer, Failure> {
        self.engine.lock().await.ask(request, cancel).await
    }

    pub async fn ask_values(
        &self,
        request: &Request,
        cancel: &CancellationToken,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, Failure> {
        self.engine.lock().await.ask_values(request, cancel, each).await
    }

    pub async fn stop(&self) -> String {
        self.engine.lock().await.stop().await
    }

    /// The collection's vectors (every shard has the same).
    pub fn vectors(&self) -> BTreeMap<String, VectorParams> {
        self.shards.first().map(|s| s.vectors.clone()).unwrap_or_default()
    }

    /// The vector a check means: `vector:`, else the collection's only one.
    pub fn vector(&self, named: Option<&str>) -> Result<(String, VectorParams), String> {
        let vectors = self.vectors();
        let list = || vectors.keys().map(|k| if k.is_empty() { "\"\" (unnamed)".into() } else { k.clone() });
        match named {
            Some(n) => vectors.get(n).map(|p| (n.to_string(), p.clone())).ok_or_else(|| {
                format!("the collection has no vector `{n}` (it has {})", list().collect::<Vec<_>>().join(", "))
            }),
            None if vectors.len() == 1 => Ok(vectors.into_iter().next().unwrap_or_default()),
            None => Err(format!(
                "the collection has {} vectors ({}); name one with `vector:`",
                vectors.len(),
                list().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// That a check's `collection:` is the restored one.
    pub fn same_collection(&self, named: &str) -> Result<(), String> {
        match &self.collection {
            Some(c) if c == named => Ok(()),
            Some(c) => Err(format!("the snapshot holds collection `{c}`, not `{named}`")),
            None => Err(format!(
                "the snapshot does not say its collection's name (its file is not named \
                 `<collection>-<peer>-<time>.snapshot`); set `collection: {named}` beside `adapter: qdrant`"
            )),
        }
    }
}

fn expect_restored(got: Result<Answer, Failure>) -> Result<(), AdapterError> {
    match got.map_err(|f| f.restore_error())? {
        Answer::Restored => Ok(()),
        other => Err(AdapterError::Restore(format!("unexpected answer {other:?}"))),
    }
}

/// Qdrant's distance as a runbook's metric (Manhattan has none).
pub fn metric(distance: &str) -> Option<Metric> {
    match distance {
        "Cosine" => Some(Metric::Cosine),
        "Euclid" => Some(Metric::L2),
        "Dot" => Some(Metric::Dot),
        _ => None,
    }
}

/// The ground truth of a loaded scratch (`drillbook init`): the manifest `drillbook manifest
/// --adapter qdrant` would write of the same snapshot, and for each dense vector `queries`
/// golden queries spread over the points with their exact top-`k` answers (Qdrant's own exact
/// search), as (vector name, golden lines).
pub async fn capture_loaded(
    scratch: &crate::Scratch,
    queries: usize,
    k: usize,
    cancel: &CancellationToken,
) -> Result<(manifest::QdrantManifest, Vec<(String, Vec<Value>)>), AdapterError> {
    let live = scratch
        .state
        .downcast_ref::<Live>()
        .ok_or_else(|| AdapterError::Check("the scratch is not a Qdrant scratch".into()))?;
    let loaded = live.loaded.as_ref().ok_or_else(|| AdapterError::Check("the snapshot was not loaded".into()))?;
    let ask = |r: Request| async move { loaded.ask(&r, cancel).await.map_err(|f| f.restore_error()) };
    // One pass: the digest, the payload schema, and query vectors spread over the points of
    // every vector (sparse and multi-vectors yield none).
    let total: u64 = loaded.shards.iter().map(|s| s.points).sum();
    let sample = protocol::SampleRequest {
        vectors: loaded.vectors().into_keys().collect(),
        every: (total / queries.max(1) as u64).max(1),
        max: queries,
    };
    let request = ScanRequest { digest: true, payload_schema: true, sample: Some(sample), ..Default::default() };
    let scanned = match ask(Request::Scan(request)).await? {
        Answer::Scanned(s) => s,
        other => return Err(AdapterError::Check(format!("unexpected answer {other:?}"))),
    };
    let truth = manifest::CollectionTruth {
        points: scanned.points,
        version: live.layout.version.clone(),
        vectors: loaded.vectors(),
        payload_schema: scanned.payload_schema.unwrap_or_default(),
        digest: scanned.digest.unwrap_or_default(),
    };
    let mut golden = Vec::new();
    for (vector, samples) in scanned.samples.into_iter().filter(|(_, s)| !s.is_empty()) {
        let request = Request::Search { vector: vector.clone(), queries: samples.clone(), k, exact: true };
        let ids = match ask(request).await? {
            Answer::Found { ids } => ids,
            other => return Err(AdapterError::Check(format!("unexpected answer {other:?}"))),
        };
        let lines = samples
            .iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (q, ids))| serde_json::json!({"id": format!("q{}", i + 1), "vector": q, "expected": ids}))
            .collect();
        golden.push((vector, lines));
    }
    let name = live.layout.collection.clone().unwrap_or_default();
    Ok((manifest::QdrantManifest { collections: BTreeMap::from([(name, truth)]) }, golden))
}

/// The live scratch: the engine's folder, the shards, the engine once loaded.
pub struct Live {
    dir: PathBuf,
    account: Option<Account>,
    layout: Layout,
    loaded: Option<Loaded>,
}

#[async_trait::async_trait]
impl crate::Store for Qdrant {
    type Live = Live;

    fn kind(&self) -> &'static str {
        "qdrant"
    }

    fn supports(&self, check: &CheckKind) -> bool {
        match check {
            CheckKind::Points(_) | CheckKind::PayloadSchema(_) | CheckKind::PointsChecksum(_) => true,
            CheckKind::VectorIntegrity(v) => v.collection.is_some(),
            CheckKind::VectorRecall(v) => v.collection.is_some(),
            _ => false,
        }
    }

    fn explain_restore(&self, backup: &str) -> Vec<String> {
        vec![
            format!(
                "In the unpacked {backup} (owned by an unprivileged user when you are root), find the shards: a \
                 collection snapshot holds `config.json`, `version.info` and one folder per shard \
                 (`0/segments/<uuid>.tar`, `0/wal/`); a shard snapshot is one such folder."
            ),
            "For each shard folder, restore its segments and load it with Qdrant's own code: Qdrant Edge \
             (`EdgeShard.unpack_snapshot` + `EdgeShard.load` in PyPI `qdrant-edge-py`), or a Qdrant server's \
             `PUT /collections/<name>/snapshots/upload` on a throwaway server."
                .into(),
            "Compare `EdgeShard.info()` (segments, points) with what the collection had.".into(),
        ]
    }

    fn explain_check(&self, check: &Check) -> String {
        match &check.check {
            CheckKind::Points(p) => {
                let want = match (&p.expect, &p.manifest) {
                    (Some(e), _) => e.raw().to_string(),
                    (None, m) => format!("the count in `{}` (tolerance {})", m.as_deref().unwrap_or("?"), p.tolerance),
                };
                match &p.filter {
                    Some(f) => {
                        format!("`count(CountRequest(exact=True, filter={f}))` on {} must be {want}.", p.collection)
                    }
                    None => format!("`count(CountRequest(exact=True))` on {} must be {want}.", p.collection),
                }
            }
            CheckKind::PayloadSchema(s) => {
                format!(
                    "Scroll every point of {}: its payload fields and value types must be those of `{}`.",
                    s.collection, s.manifest
                )
            }
            CheckKind::PointsChecksum(s) => format!(
                "Scroll every point of {} with vectors and payload and digest them (id, vectors, payload); compare with `{}`.",
                s.collection, s.manifest
            ),
            CheckKind::VectorIntegrity(v) => format!(
                "Scroll every point of {} with vectors: each `{}` vector has {} finite values.",
                v.collection.as_deref().unwrap_or("?"),
                v.vector.as_deref().unwrap_or("(the only vector)"),
                v.dim
            ),
            CheckKind::VectorRecall(v) => format!(
                "Search the golden queries of `{}` (limit {}) through Qdrant's index and with `exact=True`; mean recall \
                 against the golden answers and the exact search must be ≥ {}.",
                v.queries, v.k, v.min_recall
            ),
            other => format!("`{}` check", other.name()),
        }
    }

    async fn provision(&self, cx: &DrillCx, backup: &Unpacked) -> Result<Scratch<Live>, AdapterError> {
        if let ScratchTarget::Server(s) = &cx.scratch {
            return Err(AdapterError::Provision(format!(
                "`scratch: server:{}`: a Qdrant snapshot is loaded by Qdrant Edge in a child process (`scratch: local`); \
                 a shared Qdrant server is not restored into",
                s.name
            )));
        }
        if backup.single_file.is_some() {
            return Err(AdapterError::Provision(
                "the backup is a single file that is not a tar archive; a Qdrant snapshot is a tar".into(),
            ));
        }
        let layout = layout(&backup.root, &backup.name, &self.options, &cx.work_dir, &cx.cancel)?;
        let account = self.account()?;
        let dir = crate::child_folder(&cx.work_dir, "qdrant", &[], account.as_ref(), "the Qdrant engine")?;
        for s in &layout.shards {
            crate::give_folder(&cx.work_dir, &s.path, account.as_ref(), "the Qdrant engine")?;
        }
        Ok(Scratch {
            url: String::new(),
            dir: backup.root.clone(),
            created: vec![format!(
                "the engine's folder {} and {} unpacked shard folder(s) under {}",
                dir.display(),
                layout.shards.len(),
                backup.root.display()
            )],
            state: Live { dir, account, layout, loaded: None },
        })
    }

    async fn restore(&self, cx: &DrillCx, live: &mut Live, backup: &Unpacked) -> Result<RestoreOutcome, AdapterError> {
        let program = engine_program(self.options.engine.as_deref())?;
        let loaded =
            Loaded::open(&program, &live.dir, live.account.as_ref(), &live.layout, Some(&cx.parts), &cx.cancel).await?;
        let l = &live.layout;
        let points: u64 = loaded.shards.iter().map(|s| s.points).sum();
        let shards: Vec<String> = loaded
            .shards
            .iter()
            .map(|s| {
                format!(
                    "shard {}: {} segments, {} points, {} indexed vectors",
                    s.id, s.segments, s.points, s.indexed_vectors
                )
            })
            .collect();
        let vectors: Vec<String> = loaded
            .vectors()
            .iter()
            .map(|(n, p)| format!("{}={}-d {}", if n.is_empty() { "\"\"" } else { n }, p.size, p.distance))
            .collect();
        let hnsw = l.config.as_ref().and_then(|c| c.get("hnsw_config")).map(|h| {
            format!(
                "; HNSW m={} ef_construct={}",
                h.get("m").map(Value::to_string).unwrap_or("?".into()),
                h.get("ef_construct").map(Value::to_string).unwrap_or("?".into())
            )
        });
        let detail = format!(
            "{} of {}{}: {points} points; vectors {}{}; {}",
            l.kind,
            l.collection.as_deref().map(|c| format!("`{c}`")).unwrap_or("a collection of unknown name".into()),
            l.version.as_deref().map(|v| format!(" written by Qdrant {v}")).unwrap_or_default(),
            vectors.join(", "),
            hnsw.unwrap_or_default(),
            shards.join("; ")
        );
        live.loaded = Some(loaded);
        let taken = snapshot_time(&backup.name).map(|at| crate::Taken { at, from: "its Qdrant snapshot name".into() });
        Ok(RestoreOutcome { detail, taken })
    }

    async fn check(&self, cx: &DrillCx, live: &Live, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
        let loaded = live.loaded.as_ref().ok_or_else(|| AdapterError::Check("the snapshot was not loaded".into()))?;
        match check {
            CheckKind::Points(p) => checks::points(cx, loaded, p).await,
            CheckKind::PayloadSchema(s) => checks::payload_schema(cx, loaded, s).await,
            CheckKind::PointsChecksum(s) => checks::points_checksum(cx, loaded, s).await,
            CheckKind::VectorIntegrity(v) => checks::vector_integrity(cx, loaded, v).await,
            CheckKind::VectorRecall(v) => checks::vector_recall(cx, loaded, v).await,
            other => {
                Err(AdapterError::Unsupported(format!("adapter `qdrant` cannot evaluate `{}` checks", other.name())))
            }
        }
    }

    fn answers(&self) -> &'static [&'static str] {
        &["points", "dimension"]
    }

    async fn values(
        &self,
        cx: &DrillCx,
        live: &Live,
        query: StoreQuery<'_>,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        let loaded = live.loaded.as_ref().ok_or_else(|| AdapterError::Check("the snapshot was not loaded".into()))?;
        match query {
            StoreQuery::Points(p) => {
                loaded.same_collection(&p.collection).map_err(AdapterError::Check)?;
                let request = Request::Values { field: p.field.clone() };
                loaded.ask_values(&request, &cx.cancel, each).await.map_err(|f| f.check_error())
            }
            StoreQuery::Dimension(d) => {
                loaded.same_collection(&d.collection).map_err(AdapterError::Check)?;
                let (_, params) = loaded.vector(d.vector.as_deref()).map_err(AdapterError::Check)?;
                each(params.size.to_string());
                Ok(1)
            }
            StoreQuery::Sql(_) => Err(crate::unanswered("qdrant", query)),
        }
    }

    async fn teardown(&self, _cx: &DrillCx, live: Live, _how: Teardown) -> Result<(), AdapterError> {
        if let Some(loaded) = live.loaded {
            let said = loaded.stop().await;
            tracing::debug!(stop = %said, "qdrant engine");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collection_is_read_from_qdrants_snapshot_name() {
        assert_eq!(collection_of("docs-2963164845546713-2026-11-29-03-00-00.snapshot").as_deref(), Some("docs"));
        assert_eq!(collection_of("rag-chunks-1-2026-11-29-03-00-00.snapshot").as_deref(), Some("rag-chunks"));
        assert_eq!(collection_of("docs.snapshot"), None);
        assert_eq!(collection_of("docs-1-2026-11-29.snapshot"), None);
        assert_eq!(collection_of("backup.tar"), None);
    }

    #[test]
    fn the_time_is_read_from_qdrants_snapshot_name() {
        let t = snapshot_time("rag-chunks-1-2026-11-29-03-04-05.snapshot").map(|t| t.to_rfc3339());
        assert_eq!(t.as_deref(), Some("2026-11-29T03:04:05+00:00"));
        assert_eq!(snapshot_time("docs-1-2026-13-29-03-04-05.snapshot"), None, "no 13th month");
        assert_eq!(snapshot_time("docs.snapshot"), None);
    }
}
