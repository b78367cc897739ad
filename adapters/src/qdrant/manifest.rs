//! Ground truth for Qdrant checks (`drillbook manifest --adapter qdrant --snapshot FILE`):
//! the collection's points, vectors, payload schema and point digest, read by Qdrant Edge from
//! the snapshot taken at backup time, with the same engine requests the checks make; and the
//! golden queries' answers by Qdrant's exact search.

use std::collections::BTreeMap;
use std::path::Path;

use drillbook_runbooks::QdrantOptions;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::protocol::{Answer, Request, ScanRequest, VectorParams};
use super::{Loaded, layout};
use crate::AdapterError;
use crate::process::Account;
use crate::vectors::GoldenQuery;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QdrantManifest {
    pub collections: BTreeMap<String, CollectionTruth>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CollectionTruth {
    pub points: u64,
    /// `version.info` of the snapshot, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub vectors: BTreeMap<String, VectorParams>,
    /// Field → value type → points holding it.
    pub payload_schema: BTreeMap<String, BTreeMap<String, u64>>,
    pub digest: String,
}

impl QdrantManifest {
    pub fn parse(text: &str) -> Result<QdrantManifest, String> {
        serde_json::from_str(text).map_err(|e| format!("not a drillbook Qdrant manifest: {e}"))
    }
}

/// Golden queries to answer: their vector (`None`: the collection's only one) and `k`.
pub struct Golden<'a> {
    pub queries: &'a [GoldenQuery],
    pub vector: Option<&'a str>,
    pub k: u32,
}

/// Reads a snapshot file (a collection, shard or full storage snapshot; `collection` names the
/// collection) with Qdrant Edge run by `program`, in a temporary folder removed afterwards.
pub async fn capture(
    snapshot: &Path,
    collection: Option<&str>,
    program: &Path,
    golden: Option<Golden<'_>>,
) -> Result<(QdrantManifest, Option<Vec<Value>>), AdapterError> {
    let cancel = CancellationToken::new();
    let tmp = tempfile::Builder::new()
        .prefix("drillbook-qdrant-manifest-")
        .tempdir()
        .map_err(|e| AdapterError::io("cannot create a temporary folder", e))?;
    let tree = tmp.path().join("snapshot");
    std::fs::create_dir(&tree).map_err(|e| AdapterError::io("cannot create a temporary folder", e))?;
    let file = std::fs::File::open(snapshot)
        .map_err(|e| AdapterError::io(format!("cannot open {}", snapshot.display()), e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let name = snapshot.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // The store's own fresh snapshot, taken at backup time: Qdrant preallocates its files, so a
    // compressed small snapshot expands far beyond the drill's default limit.
    let limits = crate::unpack::Limits { compressed_size: size, max_ratio: 10_000 };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let unpacked = crate::unpack::unpack(file, &name, &tree, &limits, None, stop)
        .map_err(|e| AdapterError::Restore(format!("{}: {e}", snapshot.display())))?;
    let options = QdrantOptions { collection: collection.map(String::from), ..Default::default() };
    let found = layout(&tree, &unpacked.name, &options, tmp.path(), &cancel)?;
    let name = found.collection.clone().ok_or_else(|| {
        AdapterError::Restore(
            "the snapshot's file name does not say its collection (`<collection>-<peer>-<time>.snapshot`); name it \
             with --collection"
                .into(),
        )
    })?;
    let account = Account::for_root("nobody", "the Qdrant engine of the manifest")?;
    let dir = crate::child_folder(tmp.path(), "engine", &[], account.as_ref(), "the Qdrant engine")?;
    for s in &found.shards {
        crate::give_folder(tmp.path(), &s.path, account.as_ref(), "the Qdrant engine")?;
    }
    let loaded = Loaded::open(program, &dir, account.as_ref(), &found, None, &cancel).await?;
    let result = read(&loaded, &cancel, golden).await;
    loaded.stop().await;
    let (mut truth, answers) = result?;
    truth.version = found.version.clone();
    Ok((QdrantManifest { collections: BTreeMap::from([(name, truth)]) }, answers))
}

async fn read(
    loaded: &Loaded,
    cancel: &CancellationToken,
    golden: Option<Golden<'_>>,
) -> Result<(CollectionTruth, Option<Vec<Value>>), AdapterError> {
    let ask = |r: Request| async move { loaded.ask(&r, cancel).await.map_err(|f| f.restore_error()) };
    let scanned =
        match ask(Request::Scan(ScanRequest { digest: true, payload_schema: true, ..Default::default() })).await? {
            Answer::Scanned(s) => s,
            other => return Err(AdapterError::Restore(format!("unexpected answer {other:?}"))),
        };
    let truth = CollectionTruth {
        points: scanned.points,
        version: None,
        vectors: loaded.vectors(),
        payload_schema: scanned.payload_schema.unwrap_or_default(),
        digest: scanned.digest.unwrap_or_default(),
    };
    let Some(g) = golden else { return Ok((truth, None)) };
    let (vector, _) = loaded.vector(g.vector).map_err(AdapterError::Restore)?;
    let queries: Vec<Vec<f32>> = g.queries.iter().map(|q| q.vector.clone()).collect();
    let ids = match ask(Request::Search { vector, queries, k: g.k as usize, exact: true }).await? {
        Answer::Found { ids } => ids,
        other => return Err(AdapterError::Restore(format!("unexpected answer {other:?}"))),
    };
    let answers = g
        .queries
        .iter()
        .zip(ids)
        .map(|(q, ids)| serde_json::json!({"id": q.id, "vector": q.vector, "expected": ids}))
        .collect();
    Ok((truth, Some(answers)))
}
