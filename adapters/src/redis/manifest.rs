//! Redis ground truth captured at backup time (`drillbook manifest --adapter redis`): key
//! counts per database and per pattern, the dataset digest (and which method made it), and
//! sampled keys. Read-only on the source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dataset::{self, Conn, KeyFacts, Method};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisManifest {
    /// Always `redis`: a manifest of another store is refused by name.
    pub store: String,
    pub redis_version: String,
    /// Keys per database number.
    pub databases: BTreeMap<u32, u64>,
    #[serde(default)]
    pub patterns: Vec<PatternCount>,
    pub digest: DatasetDigest,
    #[serde(default)]
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternCount {
    pub db: u32,
    pub pattern: String,
    pub keys: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetDigest {
    pub method: Method,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub db: u32,
    pub key: String,
    #[serde(flatten)]
    pub facts: KeyFacts,
}

impl RedisManifest {
    pub fn parse(text: &str) -> Result<RedisManifest, String> {
        let m: RedisManifest =
            serde_json::from_str(text).map_err(|e| format!("not a Redis manifest of drillbook: {e}"))?;
        if m.store != "redis" {
            return Err(format!("a manifest of `{}`, not of Redis", m.store));
        }
        Ok(m)
    }
}

/// What to capture beside counts and the digest.
#[derive(Debug, Default)]
pub struct CaptureOptions {
    /// `(db, pattern)` pairs to count.
    pub patterns: Vec<(u32, String)>,
    /// How many keys of each database to sample (the first ones `SCAN` returns).
    pub sample: usize,
}

/// The manifest of the server behind `conn`. `DEBUG DIGEST` when the server allows it, else
/// the digest of the values read back (`digest.method` says which).
pub async fn capture(conn: &mut Conn, options: &CaptureOptions) -> dataset::Result<RedisManifest> {
    let info: String = ::redis::cmd("INFO").arg("server").query_async(conn).await?;
    let redis_version = super::info_field(&info, "redis_version").unwrap_or("unknown").to_string();
    let databases = dataset::keyspace(conn).await?;
    let mut patterns = Vec::new();
    for (db, pattern) in &options.patterns {
        let keys = dataset::count(conn, *db, Some(pattern)).await?;
        patterns.push(PatternCount { db: *db, pattern: pattern.clone(), keys });
    }
    let (method, value) = match dataset::digest(conn, Method::DebugDigest).await {
        Ok(d) => (Method::DebugDigest, d),
        Err(e) => {
            tracing::info!(error = %e, "DEBUG DIGEST refused by the source; digesting the values read back");
            (Method::ValuesSha256, dataset::digest(conn, Method::ValuesSha256).await?)
        }
    };
    let mut samples = Vec::new();
    if options.sample > 0 {
        for &db in databases.keys() {
            for key in dataset::first_keys(conn, db, options.sample).await? {
                let facts = dataset::key_facts(conn, db, key.as_bytes(), method).await?;
                if facts.kind != "none" {
                    samples.push(Sample { db, key, facts });
                }
            }
        }
    }
    Ok(RedisManifest {
        store: "redis".into(),
        redis_version,
        databases,
        patterns,
        digest: DatasetDigest { method, value },
        samples,
    })
}
