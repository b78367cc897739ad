//! Vector maths shared by the stores without a vector index of their own: decoding,
//! exact top-k, recall@k against golden queries, and integrity counts.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

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

/// The values of `field` in a point's payload (a Qdrant payload, a Chroma record's metadata)
/// for a value set, each as text: the field named as it is written, else as a dotted path into
/// nested objects; an array gives each element; a missing field or null gives `NULL`, as SQL's
/// NULL does. Returns how many values.
pub fn payload_values(
    payload: Option<&serde_json::Map<String, serde_json::Value>>,
    field: &str,
    each: &mut dyn FnMut(String),
) -> u64 {
    let value = payload.and_then(|m| {
        m.get(field).or_else(|| {
            let mut keys = field.split('.');
            let first = m.get(keys.next()?)?;
            keys.try_fold(first, |v, key| v.get(key))
        })
    });
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "NULL".to_string(),
        other => id_text(other),
    };
    match value {
        Some(serde_json::Value::Array(items)) => {
            items.iter().for_each(|v| each(text(v)));
            items.len() as u64
        }
        Some(v) => {
            each(text(v));
            1
        }
        None => {
            each("NULL".into());
            1
        }
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
    distance_normed(metric, a, norm(a), b, norm_b)
}

/// [`distance`] with both norms known (a query's is computed once, not per vector).
fn distance_normed(metric: Metric, a: &[f32], norm_a: f64, b: &[f32], norm_b: f64) -> f64 {
    match metric {
        Metric::Dot => -dot(a, b),
        Metric::Cosine => {
            if norm_a == 0.0 || norm_b == 0.0 {
                1.0
            } else {
                1.0 - dot(a, b) / (norm_a * norm_b)
            }
        }
        Metric::L2 => a.iter().zip(b).map(|(x, y)| ((*x - *y) as f64).powi(2)).sum::<f64>().sqrt(),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum()
}

/// A candidate neighbour, ordered by distance, then id (so results are stable).
#[derive(PartialEq)]
struct Scored {
    d: f64,
    id: String,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d.total_cmp(&other.d).then_with(|| self.id.cmp(&other.id))
    }
}

/// Exact top-k of several queries over vectors seen a page at a time: memory for k candidates
/// per query, not for the collection. A vector of another dimension is skipped; one with NaN is
/// infinitely far, never a neighbour before a finite one. A page's dot products with every
/// query are one matrix product (`matrixmultiply::sgemm`, f32 with the CPU's SIMD found at run
/// time, as numpy's BLAS does), split across the cores by query; the norms are f64.
pub struct TopK {
    metric: Metric,
    k: usize,
    queries: Vec<Query>,
}

struct Query {
    v: Vec<f32>,
    norm: f64,
    /// A max-heap of the best k so far.
    best: BinaryHeap<Scored>,
}

/// One page's vectors of one dimension, packed row by row.
struct Packed<'a> {
    ids: &'a [String],
    /// Which of the page's vectors each row is.
    rows: Vec<usize>,
    matrix: Vec<f32>,
    norms: Vec<f64>,
    dim: usize,
}

impl TopK {
    pub fn new(metric: Metric, k: usize, queries: Vec<Vec<f32>>) -> Self {
        let queries =
            queries.into_iter().map(|v| Query { norm: norm(&v), v, best: BinaryHeap::with_capacity(k + 1) }).collect();
        TopK { metric, k, queries }
    }

    /// Offers one page of vectors (ids beside) to every query.
    pub fn add_page(&mut self, ids: &[String], vectors: &[Vec<f32>]) {
        if self.k == 0 || vectors.is_empty() {
            return;
        }
        let mut dims: Vec<usize> = self.queries.iter().map(|q| q.v.len()).filter(|d| *d > 0).collect();
        dims.sort_unstable();
        dims.dedup();
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        for dim in dims {
            let rows: Vec<usize> = (0..vectors.len()).filter(|&i| vectors[i].len() == dim).collect();
            if rows.is_empty() {
                continue;
            }
            let mut matrix = Vec::with_capacity(rows.len() * dim);
            for &i in &rows {
                matrix.extend_from_slice(&vectors[i]);
            }
            let norms = rows.iter().map(|&i| norm(&vectors[i])).collect();
            let page = Packed { ids, rows, matrix, norms, dim };
            let mut queries: Vec<&mut Query> = self.queries.iter_mut().filter(|q| q.v.len() == dim).collect();
            let (metric, k) = (self.metric, self.k);
            let per = queries.len().div_ceil(threads).max(1);
            if threads == 1 || queries.len() < 2 || page.rows.len() * queries.len() < 100_000 {
                search(&page, &mut queries, metric, k);
                continue;
            }
            std::thread::scope(|s| {
                for chunk in queries.chunks_mut(per) {
                    let page = &page;
                    s.spawn(move || search(page, chunk, metric, k));
                }
            });
        }
    }

    /// Each query's ids, nearest first.
    pub fn finish(self) -> Vec<Vec<String>> {
        self.queries.into_iter().map(|q| q.best.into_sorted_vec().into_iter().map(|s| s.id).collect()).collect()
    }
}

/// The page's dot products with `queries` as one product (rows × dim)·(dim × queries), then
/// each query's candidates kept.
fn search(page: &Packed<'_>, queries: &mut [&mut Query], metric: Metric, k: usize) {
    let (m, d, n) = (page.rows.len(), page.dim, queries.len());
    let mut q = Vec::with_capacity(n * d);
    for query in queries.iter() {
        q.extend_from_slice(&query.v);
    }
    let mut dots = vec![0f32; m * n];
    // SAFETY: `page.matrix` is m × d row-major, `q` is n × d row-major read as its transpose
    // (d × n: row stride 1, column stride d), `dots` is m × n row-major; every index these
    // strides reach lies inside the three buffers sized above.
    unsafe {
        matrixmultiply::sgemm(
            m,
            d,
            n,
            1.0,
            page.matrix.as_ptr(),
            d as isize,
            1,
            q.as_ptr(),
            1,
            d as isize,
            0.0,
            dots.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    for (j, query) in queries.iter_mut().enumerate() {
        let nq = query.norm;
        for (r, &row) in page.rows.iter().enumerate() {
            let dot = f64::from(dots[r * n + j]);
            let nv = page.norms[r];
            let dist = match metric {
                Metric::Dot => -dot,
                Metric::Cosine if nq == 0.0 || nv == 0.0 => 1.0,
                Metric::Cosine => 1.0 - dot / (nq * nv),
                // `max` would turn a NaN into 0.0 (the nearest of all): NaN stays NaN.
                Metric::L2 => {
                    let sq = nq * nq + nv * nv - 2.0 * dot;
                    if sq < 0.0 { 0.0 } else { sq.sqrt() }
                }
            };
            let dist = if dist.is_nan() { f64::INFINITY } else { dist };
            let id = &page.ids[row];
            let heap = &mut query.best;
            let better =
                heap.len() < k || heap.peek().is_some_and(|w| dist.total_cmp(&w.d).then_with(|| id.cmp(&w.id)).is_lt());
            if better {
                heap.push(Scored { d: dist, id: id.clone() });
                if heap.len() > k {
                    heap.pop();
                }
            }
        }
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

    #[test]
    fn payload_values_take_a_field_a_dotted_path_each_array_element_and_null_for_missing() {
        let p = serde_json::json!({"doc": "a", "n": 7, "tags": ["x", 2], "meta": {"src": "s"}, "a.b": true, "z": null});
        let got = |field: &str| {
            let mut out = Vec::new();
            let n = payload_values(p.as_object(), field, &mut |v| out.push(v));
            assert_eq!(n as usize, out.len());
            out
        };
        assert_eq!(got("doc"), ["a"]);
        assert_eq!(got("n"), ["7"]);
        assert_eq!(got("tags"), ["x", "2"]);
        assert_eq!(got("meta.src"), ["s"]);
        assert_eq!(got("a.b"), ["true"]);
        assert_eq!(got("z"), ["NULL"]);
        assert_eq!(got("gone"), ["NULL"]);
        let mut none = Vec::new();
        payload_values(None, "doc", &mut |v| none.push(v));
        assert_eq!(none, ["NULL"]);
    }

    use super::*;

    /// A collection in memory, searched exactly: the reference the paged search is held to.
    #[derive(Default)]
    struct Corpus {
        ids: Vec<String>,
        vectors: Vec<Vec<f32>>,
    }

    impl Corpus {
        fn push(&mut self, id: String, v: Vec<f32>) {
            self.ids.push(id);
            self.vectors.push(v);
        }

        /// Exact top-k ids of one query (see [`TopK`]).
        fn top_k(&self, metric: Metric, q: &[f32], k: usize) -> Vec<String> {
            let mut top = TopK::new(metric, k, vec![q.to_vec()]);
            top.add_page(&self.ids, &self.vectors);
            top.finish().pop().unwrap_or_default()
        }
    }

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
        assert_eq!(c.top_k(Metric::L2, &[1.0, 0.1], 3), ["a", "c", "b"], "NaN is never near under L2 either");
        assert_eq!(c.top_k(Metric::Dot, &[1.0, 0.1], 4).last().map(String::as_str), Some("0-nan"));
        let exp = vec!["a".to_string(), "c".to_string()];
        assert_eq!(recall(&exp, &["a".into(), "b".into()], 2), 0.5);
    }

    #[test]
    fn streamed_pages_on_several_threads_give_the_exact_top_k() {
        // 200 queries x 1000 vectors: large enough to be split across threads.
        let vec_of = |i: usize| (0..8).map(|j| ((i * 7 + j * 13) % 17) as f32 - 8.0).collect::<Vec<f32>>();
        let mut c = Corpus::default();
        for i in 0..1000 {
            c.push(format!("v{i:04}"), vec_of(i));
        }
        let queries: Vec<Vec<f32>> = (0..200).map(|i| vec_of(i * 3 + 1)).collect();
        for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
            let mut top = TopK::new(metric, 5, queries.clone());
            for (ids, vs) in c.ids.chunks(300).zip(c.vectors.chunks(300)) {
                top.add_page(ids, vs);
            }
            let streamed = top.finish();
            for (q, got) in queries.iter().zip(&streamed) {
                // The reference: every distance computed, sorted by (distance, id).
                let mut all: Vec<(f64, &String)> =
                    c.ids.iter().zip(&c.vectors).map(|(id, v)| (distance(metric, q, v, norm(v)), id)).collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
                let want: Vec<String> = all.iter().take(5).map(|(_, id)| (*id).clone()).collect();
                assert_eq!(got, &want, "{metric:?}");
            }
        }
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
