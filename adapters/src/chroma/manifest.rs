//! Ground truth of a Chroma database (`drillbook manifest --adapter chroma`): every
//! collection's dimension, space, metadata, record count and an order-independent digest of
//! its records; and exact answers to golden queries. Read through the API, so the same code
//! reads the source at backup time and the restored scratch.

use std::collections::BTreeMap;

use drillbook_runbooks::Metric;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{Api, Collection, PAGE};
use crate::manifest::{RecordDigest, sorted};
use crate::vectors::TopK;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChromaManifest {
    /// `chroma` for a Chroma manifest (a check given another kind of manifest says so).
    pub store: String,
    pub collections: BTreeMap<String, CollectionTruth>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CollectionTruth {
    pub records: u64,
    #[serde(default)]
    pub dimension: Option<u32>,
    /// `l2`, `cosine` or `ip`.
    pub space: String,
    /// The collection's metadata (without Chroma's own `hnsw:*` keys).
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// [`digest`] of the records.
    pub digest: String,
}

impl ChromaManifest {
    pub fn parse(text: &str) -> Result<ChromaManifest, String> {
        let m: ChromaManifest = serde_json::from_str(text).map_err(|e| format!("not a Chroma manifest: {e}"))?;
        if m.store != "chroma" {
            return Err(format!("a manifest of `{}`, not of a Chroma database", m.store));
        }
        Ok(m)
    }
}

/// The collection's metadata as compared: Chroma's own `hnsw:*` keys left out (they are
/// the space, compared on its own).
pub fn user_metadata(c: &Collection) -> BTreeMap<String, Value> {
    c.metadata.iter().flatten().filter(|(k, _)| !k.starts_with("hnsw:")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The space as a drillbook metric.
pub fn metric(space: &str) -> Option<Metric> {
    match space {
        "l2" => Some(Metric::L2),
        "cosine" => Some(Metric::Cosine),
        "ip" => Some(Metric::Dot),
        _ => None,
    }
}

/// One record of the digest: its canonical JSON `[id, document, metadata]` (keys sorted).
pub fn add_record(d: &mut RecordDigest, id: &str, document: Option<&str>, metadata: Option<&Value>) {
    d.add(serde_json::json!([id, document, metadata.map(sorted)]).to_string().as_bytes());
}

/// Reads every record's id, document and metadata and digests them.
pub async fn digest(api: &Api, c: &Collection) -> Result<(u64, String), String> {
    let mut d = RecordDigest::default();
    api.scan(c, None, &["documents", "metadatas"], PAGE, |page| {
        let docs = page.documents.unwrap_or_default();
        let metas = page.metadatas.unwrap_or_default();
        for (i, id) in page.ids.iter().enumerate() {
            add_record(&mut d, id, docs.get(i).and_then(Option::as_deref), metas.get(i).and_then(Option::as_ref));
        }
        Ok(())
    })
    .await?;
    Ok(d.finish())
}

/// The exact top-`k` of each query among the collection's embeddings, in the collection's
/// space: the embeddings are read a page at a time (the next page fetched while this one is
/// searched, on every core) and never held whole. An embedding Chroma cannot return fails the
/// read (that is what a damaged vector segment looks like from outside). Returns the number
/// of embeddings read and each query's ids, nearest first.
pub async fn exact_top_k(
    api: &Api,
    c: &Collection,
    metric: Metric,
    k: usize,
    queries: Vec<Vec<f32>>,
) -> Result<(u64, Vec<Vec<String>>), String> {
    let page = super::api::embedding_page(c);
    let mut top = TopK::new(metric, k, queries);
    let mut records = api.get(c, None, &["embeddings"], 0, page).await?;
    let mut read = 0usize;
    loop {
        let n = records.ids.len();
        let (ids, vectors) = records.vectors();
        let search = tokio::task::spawn_blocking(move || {
            top.add_page(&ids, &vectors);
            top
        });
        let next = async {
            match n < page {
                true => Ok(None),
                false => api.get(c, None, &["embeddings"], read + n, page).await.map(Some),
            }
        };
        let (searched, next) = tokio::join!(search, next);
        top = searched.map_err(|e| format!("the exact search stopped: {e}"))?;
        read += n;
        match next? {
            Some(r) => records = r,
            None => return Ok((read as u64, top.finish())),
        }
    }
}

/// The manifest of every collection of `api`'s database.
pub async fn capture(api: &Api) -> Result<ChromaManifest, String> {
    let mut collections = BTreeMap::new();
    for c in api.collections().await? {
        let (records, digest) = digest(api, &c).await?;
        collections.insert(
            c.name.clone(),
            CollectionTruth { records, dimension: c.dimension, space: c.space(), metadata: user_metadata(&c), digest },
        );
    }
    Ok(ChromaManifest { store: "chroma".into(), collections })
}

/// Exact top-`k` answers to golden queries from the collection's own embeddings, in its space.
pub async fn golden_answers(
    api: &Api,
    collection: &str,
    k: u32,
    queries: &[crate::vectors::GoldenQuery],
) -> Result<Vec<Value>, String> {
    let c = api.collection(collection).await?;
    let metric =
        metric(&c.space()).ok_or_else(|| format!("collection `{collection}` has unknown space `{}`", c.space()))?;
    let vectors = queries.iter().map(|q| q.vector.clone()).collect();
    let (_, answers) = exact_top_k(api, &c, metric, k as usize, vectors).await?;
    Ok(queries
        .iter()
        .zip(answers)
        .map(|(q, ids)| serde_json::json!({"id": q.id, "vector": q.vector, "expected": ids}))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_order_and_sees_every_field() {
        let meta = serde_json::json!({"lang": "en", "n": 1});
        let same_meta = serde_json::from_str::<Value>(r#"{"n": 1, "lang": "en"}"#).unwrap();
        let mut a = RecordDigest::default();
        add_record(&mut a, "d1", Some("one"), Some(&meta));
        add_record(&mut a, "d2", None, None);
        let mut b = RecordDigest::default();
        add_record(&mut b, "d2", None, None);
        add_record(&mut b, "d1", Some("one"), Some(&same_meta));
        assert_eq!(a.finish(), b.finish());
        let mut c = RecordDigest::default();
        add_record(&mut c, "d1", Some("one!"), Some(&meta));
        add_record(&mut c, "d2", None, None);
        let mut d = RecordDigest::default();
        add_record(&mut d, "d1", Some("one"), Some(&meta));
        add_record(&mut d, "d2", Some(""), None);
        let (_, base) = {
            let mut a = RecordDigest::default();
            add_record(&mut a, "d1", Some("one"), Some(&meta));
            add_record(&mut a, "d2", None, None);
            a.finish()
        };
        assert_ne!(c.finish().1, base);
        assert_ne!(d.finish().1, base);
    }
}
