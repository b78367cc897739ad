//! What drillbook and its Qdrant engine child (`drillbook-qdrant-engine`) say to each other:
//! one JSON request per line on the child's stdin, one JSON answer per line on its stdout.
//! The child's stderr is its log; its last lines explain a death.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Restores each shard folder in place with Qdrant's own snapshot code (its segment
    /// archives unpacked and laid out as segments).
    Restore { shards: Vec<ShardDir> },
    /// Loads each restored shard folder with Qdrant Edge.
    Load { shards: Vec<ShardDir> },
    /// The exact number of points, all or those matching a Qdrant filter (REST syntax).
    Count { filter: Option<Value> },
    /// One pass over every point (id, payload, every vector) of every shard.
    Scan(ScanRequest),
    /// Nearest neighbours of each query vector by Qdrant's own search: through the index
    /// (HNSW where a segment has one), or `exact` (a full scan by Qdrant).
    Search { vector: String, queries: Vec<Vec<f32>>, k: usize, exact: bool },
    /// Every point's payload `field` (its id without one), streamed: answered by
    /// [`Answer::Values`] batches, the last one `done`.
    Values { field: Option<String> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardDir {
    pub id: String,
    pub path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ScanRequest {
    /// Count the vectors of this name that break these rules.
    pub integrity: Option<IntegrityRules>,
    /// Digest the points (id + every vector + payload, order-independent).
    pub digest: bool,
    /// Gather the payload fields and the types of their values.
    pub payload_schema: bool,
    /// Keep some points' vectors (`drillbook init` samples golden queries).
    #[serde(default)]
    pub sample: Option<SampleRequest>,
}

/// Every `every`-th point's dense vector of each name in `vectors`, up to `max` per name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleRequest {
    pub vectors: Vec<String>,
    pub every: u64,
    pub max: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegrityRules {
    pub vector: String,
    pub dim: u32,
    pub min_norm: Option<f64>,
    pub max_norm: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    Restored,
    Loaded {
        shards: Vec<ShardInfo>,
    },
    Count {
        points: u64,
    },
    Scanned(Scanned),
    Found {
        ids: Vec<Vec<String>>,
    },
    /// One batch of a [`Request::Values`] answer; more follow until `done`.
    Values {
        values: Vec<String>,
        done: bool,
    },
    /// The request could not be served; the engine goes on.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardInfo {
    pub id: String,
    pub segments: u64,
    pub points: u64,
    pub indexed_vectors: u64,
    /// The shard's vectors as Qdrant Edge loaded them: name → size and distance.
    pub vectors: BTreeMap<String, VectorParams>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorParams {
    pub size: u64,
    /// Qdrant's words: `Cosine`, `Euclid`, `Dot`, `Manhattan`.
    pub distance: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Scanned {
    pub points: u64,
    pub integrity: Option<IntegrityCounts>,
    pub digest: Option<String>,
    /// Field (dotted for nested objects) → value type (`keyword`, `integer`, `float`, `bool`,
    /// `null`, `object`, `array`) → points holding it.
    pub payload_schema: Option<BTreeMap<String, BTreeMap<String, u64>>>,
    /// The sampled vectors by name (`ScanRequest::sample`), in scan order.
    #[serde(default)]
    pub samples: BTreeMap<String, Vec<Vec<f32>>>,
}

/// [`crate::vectors::Integrity`] as it travels.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct IntegrityCounts {
    pub vectors: u64,
    pub null: u64,
    pub wrong_dim: u64,
    pub non_finite: u64,
    pub norm_out_of_range: u64,
}
