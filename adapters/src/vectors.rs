//! Vector maths shared by the stores without a vector index of their own: decoding,
//! exact top-k, recall@k against golden queries, and integrity counts.

use std::cmp::Ordering;
use std::collections::HashSet;

use drillbook_runbooks::{Metric, VectorEncoding};
use serde::Deserialize;

/// One golden query: a vector and the ids it must find.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenQuery {
    pub id: String,
    pub vector: Vec<f32>,
    /// Absent in a query file given to `drillbook manifest`, which answers it.
    #[serde(default)]
    pub expected: Vec<serde_json::Value>,
}

impl GoldenQuery {
    pub fn expected_ids(&self) -> Vec<String> {
        self.expected.iter().map(id_text).collect()
    }
}

/// Ids may be numbers or strings in JSON; compare them as text.
pub fn id_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads JSON Lines golden queries; errors name the line.
pub fn parse_queries(text: &str) -> Result<Vec<GoldenQuery>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: GoldenQuery = serde_json::from_str(line).map_err(|e| format!("golden queries line {}: {e}", i + 1))?;
        out.push(q);
    }
    if out.is_empty() {
        return Err("the golden queries file holds no query".into());
    }
    Ok(out)
}

/// Golden queries for `vector_recall`: each must name the ids it expects, or its recall
/// would be meaningless.
pub fn parse_golden(text: &str) -> Result<Vec<GoldenQuery>, String> {
    let queries = parse_queries(text)?;
    if let Some(q) = queries.iter().find(|q| q.expected.is_empty()) {
        return Err(format!(
            "golden query `{}` has no `expected` ids; answer the queries with `drillbook manifest --queries`",
            q.id
        ));
    }
    Ok(queries)
}

/// Decodes a stored vector.
pub fn decode(bytes: &[u8], encoding: VectorEncoding) -> Result<Vec<f32>, String> {
    match encoding {
        VectorEncoding::F32le => {
            if !bytes.len().is_multiple_of(4) {
                return Err(format!("{} bytes is not a whole number of f32 values", bytes.len()));
            }
            Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        VectorEncoding::Json => {
            let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
            // NaN is not JSON; accept the spelling some writers use so that it is *counted*.
            let values: Vec<serde_json::Value> =
                serde_json::from_str(&text.replace("NaN", "null")).map_err(|e| format!("not a JSON array: {e}"))?;
            Ok(values.iter().map(|v| v.as_f64().map(|f| f as f32).unwrap_or(f32::NAN)).collect())
        }
    }
}

pub fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt()
}

/// Distance under `metric`; smaller is closer.
pub fn distance(metric: Metric, a: &[f32], b: &[f32], norm_b: f64) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    match metric {
        Metric::Dot => -dot,
        Metric::Cosine => {
            let na = norm(a);
            if na == 0.0 || norm_b == 0.0 { 1.0 } else { 1.0 - dot / (na * norm_b) }
        }
        Metric::L2 => a.iter().zip(b).map(|(x, y)| ((*x - *y) as f64).powi(2)).sum::<f64>().sqrt(),
    }
}

/// An in-memory collection searched exactly.
#[derive(Default)]
pub struct Corpus {
    pub ids: Vec<String>,
    pub vectors: Vec<Vec<f32>>,
    norms: Vec<f64>,
}

impl Corpus {
    pub fn push(&mut self, id: String, v: Vec<f32>) {
        self.norms.push(norm(&v));
        self.ids.push(id);
        self.vectors.push(v);
    }

    /// Exact top-k ids (ties broken by id, so results are stable).
    pub fn top_k(&self, metric: Metric, q: &[f32], k: usize) -> Vec<String> {
        let mut scored: Vec<(f64, usize)> = self
            .vectors
            .iter()
            .enumerate()
            .filter(|(_, v)| v.len() == q.len())
            .map(|(i, v)| {
                // A vector with NaN is infinitely far, never a neighbour.
                let d = distance(metric, q, v, self.norms[i]);
                (if d.is_nan() { f64::INFINITY } else { d }, i)
            })
            .collect();
        let by = |a: &(f64, usize), b: &(f64, usize)| {
            a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal).then_with(|| self.ids[a.1].cmp(&self.ids[b.1]))
        };
        if scored.len() > k {
            scored.select_nth_unstable_by(k, by);
            scored.truncate(k);
        }
        scored.sort_by(by);
        scored.into_iter().map(|(_, i)| self.ids[i].clone()).collect()
    }
}

/// Recall@k of one query: the share of its expected ids (at most k) found in `got`.
pub fn recall(expected: &[String], got: &[String], k: usize) -> f64 {
    let want: Vec<&String> = expected.iter().take(k).collect();
    if want.is_empty() {
        return 1.0;
    }
    let found: HashSet<&String> = got.iter().take(k).collect();
    want.iter().filter(|id| found.contains(**id)).count() as f64 / want.len() as f64
}

/// Per-query recalls, the worst first, as a short detail line and JSON.
pub struct RecallSummary {
    pub mean: f64,
    pub per_query: Vec<(String, f64)>,
}

impl RecallSummary {
    pub fn new(mut per_query: Vec<(String, f64)>) -> Self {
        let mean = if per_query.is_empty() {
            0.0
        } else {
            per_query.iter().map(|(_, r)| r).sum::<f64>() / per_query.len() as f64
        };
        per_query.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal).then_with(|| a.0.cmp(&b.0)));
        RecallSummary { mean, per_query }
    }

    pub fn detail(&self, k: usize) -> String {
        let worst: Vec<String> = self.per_query.iter().take(5).map(|(q, r)| format!("{q}={r:.2}")).collect();
        format!("{} queries, mean recall@{k} {:.4}; worst: {}", self.per_query.len(), self.mean, worst.join(", "))
    }
}

/// Counts of what is wrong with a set of vectors.
#[derive(Debug, Default, serde::Serialize)]
pub struct Integrity {
    pub vectors: u64,
    pub null: u64,
    pub undecodable: u64,
    pub wrong_dim: u64,
    pub non_finite: u64,
    pub norm_out_of_range: u64,
}

impl Integrity {
    pub fn add(
        &mut self,
        raw: Option<&[u8]>,
        encoding: VectorEncoding,
        dim: u32,
        min_norm: Option<f64>,
        max_norm: Option<f64>,
    ) {
        match raw.map(|r| decode(r, encoding)) {
            Some(Err(_)) => {
                self.vectors += 1;
                self.undecodable += 1;
            }
            Some(Ok(v)) => self.add_vector(Some(&v), dim, min_norm, max_norm),
            None => self.add_vector(None, dim, min_norm, max_norm),
        }
    }

    /// Counts one decoded vector (`None`: the record has none).
    pub fn add_vector(&mut self, v: Option<&[f32]>, dim: u32, min_norm: Option<f64>, max_norm: Option<f64>) {
        self.vectors += 1;
        let Some(v) = v else {
            self.null += 1;
            return;
        };
        if v.len() != dim as usize {
            self.wrong_dim += 1;
        } else if v.iter().any(|x| !x.is_finite()) {
            self.non_finite += 1;
        } else {
            let n = norm(v);
            if min_norm.is_some_and(|m| n < m) || max_norm.is_some_and(|m| n > m) {
                self.norm_out_of_range += 1;
            }
        }
    }

    pub fn bad(&self) -> u64 {
        self.null + self.undecodable + self.wrong_dim + self.non_finite + self.norm_out_of_range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_recall() {
        let mut c = Corpus::default();
        c.push("a".into(), vec![1.0, 0.0]);
        c.push("b".into(), vec![0.0, 1.0]);
        c.push("c".into(), vec![0.7, 0.7]);
        assert_eq!(c.top_k(Metric::Cosine, &[1.0, 0.1], 2), ["a", "c"]);
        assert_eq!(c.top_k(Metric::L2, &[0.0, 0.9], 1), ["b"]);
        c.push("0-nan".into(), vec![f32::NAN, 0.0]);
        assert_eq!(c.top_k(Metric::Cosine, &[1.0, 0.1], 3), ["a", "c", "b"]);
        let exp = vec!["a".to_string(), "c".to_string()];
        assert_eq!(recall(&exp, &["a".into(), "b".into()], 2), 0.5);
    }

    #[test]
    fn integrity_counts_each_fault() {
        let mut i = Integrity::default();
        let good: Vec<u8> = [0.6f32, 0.8].iter().flat_map(|f| f.to_le_bytes()).collect();
        let nan: Vec<u8> = [f32::NAN, 0.8].iter().flat_map(|f| f.to_le_bytes()).collect();
        i.add(Some(&good), VectorEncoding::F32le, 2, Some(0.99), Some(1.01));
        i.add(None, VectorEncoding::F32le, 2, None, None);
        i.add(Some(&nan), VectorEncoding::F32le, 2, None, None);
        i.add(Some(&good[..4]), VectorEncoding::F32le, 2, None, None);
        i.add(Some(b"[3.0, 4.0]"), VectorEncoding::Json, 2, None, Some(2.0));
        assert_eq!((i.vectors, i.null, i.non_finite, i.wrong_dim, i.norm_out_of_range), (5, 1, 1, 1, 1));
    }
}
