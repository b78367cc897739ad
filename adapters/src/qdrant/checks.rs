//! The Qdrant check kinds, each answered by Qdrant Edge in the engine child: `points`,
//! `payload_schema`, `points_checksum`, `vector_integrity`, `vector_recall`.

use std::collections::BTreeMap;

use drillbook_runbooks::{
    PayloadSchemaCheck, PointsCheck, PointsChecksumCheck, VectorIntegrityCheck, VectorRecallCheck,
};
use serde_json::json;

use super::manifest::{CollectionTruth, QdrantManifest};
use super::protocol::{Answer, IntegrityRules, Request, ScanRequest, Scanned};
use super::{Loaded, metric};
use crate::vectors::{RecallSummary, parse_golden, recall};
use crate::{AdapterError, CheckOutcome, DrillCx, read_input};

fn failed(e: String) -> AdapterError {
    AdapterError::Check(e)
}

/// The manifest's entry for `collection`.
fn truth(cx: &DrillCx, path: &str, collection: &str) -> Result<CollectionTruth, AdapterError> {
    let m = QdrantManifest::parse(&read_input(cx, path)?).map_err(|e| failed(format!("`{path}`: {e}")))?;
    m.collections
        .get(collection)
        .cloned()
        .ok_or_else(|| failed(format!("manifest `{path}` has no collection `{collection}`")))
}

async fn scan(cx: &DrillCx, loaded: &Loaded, request: ScanRequest) -> Result<Scanned, AdapterError> {
    match loaded.ask(&Request::Scan(request), &cx.cancel).await.map_err(|f| f.check_error())? {
        Answer::Scanned(s) => Ok(s),
        other => Err(failed(format!("unexpected answer {other:?}"))),
    }
}

pub async fn points(cx: &DrillCx, loaded: &Loaded, p: &PointsCheck) -> Result<CheckOutcome, AdapterError> {
    loaded.same_collection(&p.collection).map_err(failed)?;
    let n = match loaded.ask(&Request::Count { filter: p.filter.clone() }, &cx.cancel).await {
        Ok(Answer::Count { points }) => points,
        Ok(other) => return Err(failed(format!("unexpected answer {other:?}"))),
        Err(f) => return Err(f.check_error()),
    };
    let what = match &p.filter {
        Some(f) => format!("points of {} matching {f}", p.collection),
        None => format!("points in {}", p.collection),
    };
    let want = || Ok(truth(cx, p.manifest.as_deref().unwrap_or_default(), &p.collection)?.points);
    crate::manifest::compare_count(n, &what, p.expect.as_ref(), want, p.tolerance)
}

pub async fn payload_schema(
    cx: &DrillCx,
    loaded: &Loaded,
    s: &PayloadSchemaCheck,
) -> Result<CheckOutcome, AdapterError> {
    loaded.same_collection(&s.collection).map_err(failed)?;
    let want = truth(cx, &s.manifest, &s.collection)?.payload_schema;
    let got = scan(cx, loaded, ScanRequest { payload_schema: true, ..Default::default() }).await?;
    let got = got.payload_schema.unwrap_or_default();
    let types = |m: &BTreeMap<String, BTreeMap<String, u64>>, f: &str| -> Vec<String> {
        m.get(f).map(|t| t.keys().cloned().collect()).unwrap_or_default()
    };
    let mut problems = Vec::new();
    for field in want.keys() {
        let (w, g) = (types(&want, field), types(&got, field));
        if g.is_empty() {
            problems.push(format!("field `{field}` is missing"));
            continue;
        }
        for t in w.iter().filter(|t| !g.contains(t)) {
            problems.push(format!("`{field}` has no {t} values any more"));
        }
        if !s.allow_extra {
            for t in g.iter().filter(|t| !w.contains(t)) {
                problems.push(format!("`{field}` now has {t} values"));
            }
        }
    }
    if !s.allow_extra {
        for field in got.keys().filter(|f| !want.contains_key(*f)) {
            problems.push(format!("unexpected field `{field}` ({})", types(&got, field).join(", ")));
        }
    }
    let shape = |m: &BTreeMap<String, BTreeMap<String, u64>>| -> serde_json::Value {
        json!(
            m.iter().map(|(f, t)| (f.clone(), json!(t.keys().collect::<Vec<_>>()))).collect::<serde_json::Map<_, _>>()
        )
    };
    Ok(CheckOutcome {
        passed: problems.is_empty(),
        observed: shape(&got),
        expected: shape(&want),
        detail: if problems.is_empty() {
            format!("{} payload fields with their value types as in the manifest", want.len())
        } else {
            problems.into_iter().take(10).collect::<Vec<_>>().join("; ")
        },
    })
}

pub async fn points_checksum(
    cx: &DrillCx,
    loaded: &Loaded,
    s: &PointsChecksumCheck,
) -> Result<CheckOutcome, AdapterError> {
    loaded.same_collection(&s.collection).map_err(failed)?;
    let want = truth(cx, &s.manifest, &s.collection)?;
    let got = scan(cx, loaded, ScanRequest { digest: true, ..Default::default() }).await?;
    let digest = got.digest.unwrap_or_default();
    Ok(CheckOutcome {
        passed: got.points == want.points && digest == want.digest,
        observed: json!({"points": got.points, "digest": digest}),
        expected: json!({"points": want.points, "digest": want.digest}),
        detail: if digest == want.digest {
            format!("{} points (id, vectors, payload) digest equal", got.points)
        } else if got.points != want.points {
            format!("{} points, the manifest has {}; the digests differ", got.points, want.points)
        } else {
            format!("{} points as in the manifest, but their ids, vectors or payload differ", got.points)
        },
    })
}

pub async fn vector_integrity(
    cx: &DrillCx,
    loaded: &Loaded,
    v: &VectorIntegrityCheck,
) -> Result<CheckOutcome, AdapterError> {
    loaded.same_collection(v.collection.as_deref().unwrap_or_default()).map_err(failed)?;
    let (name, params) = loaded.vector(v.vector.as_deref()).map_err(failed)?;
    let rules = IntegrityRules { vector: name.clone(), dim: v.dim, min_norm: v.min_norm, max_norm: v.max_norm };
    let got = scan(cx, loaded, ScanRequest { integrity: Some(rules), ..Default::default() }).await?;
    let c = got.integrity.unwrap_or_default();
    let bad = c.null + c.wrong_dim + c.non_finite + c.norm_out_of_range;
    let shown = if name.is_empty() { "the unnamed vector".to_string() } else { format!("vector `{name}`") };
    Ok(CheckOutcome {
        passed: bad == 0 && c.vectors > 0,
        observed: json!(c),
        expected: json!({"dim": v.dim, "min_norm": v.min_norm, "max_norm": v.max_norm, "bad": 0}),
        detail: if c.vectors == 0 {
            format!("no points hold {shown}")
        } else {
            format!(
                "{} points, {shown} (collection: {}-d {}): {} missing, {} of another dimension, {} with NaN/∞, {} with a \
                 norm out of range",
                c.vectors, params.size, params.distance, c.null, c.wrong_dim, c.non_finite, c.norm_out_of_range
            )
        },
    })
}

pub async fn vector_recall(cx: &DrillCx, loaded: &Loaded, v: &VectorRecallCheck) -> Result<CheckOutcome, AdapterError> {
    loaded.same_collection(v.collection.as_deref().unwrap_or_default()).map_err(failed)?;
    let (name, params) = loaded.vector(v.vector.as_deref()).map_err(failed)?;
    if let (Some(m), Some(own)) = (v.metric, metric(&params.distance))
        && m != own
    {
        return Err(failed(format!(
            "the runbook says metric {m:?}, the collection searches by {}; drop `metric:` or make them agree",
            params.distance
        )));
    }
    let queries = parse_golden(&read_input(cx, &v.queries)?).map_err(failed)?;
    let k = v.k as usize;
    let vectors: Vec<Vec<f32>> = queries.iter().map(|q| q.vector.clone()).collect();
    let search = |exact: bool| Request::Search { vector: name.clone(), queries: vectors.clone(), k, exact };
    let found = |a: Result<Answer, super::engine::Failure>| match a.map_err(|f| f.check_error())? {
        Answer::Found { ids } => Ok(ids),
        other => Err(failed(format!("unexpected answer {other:?}"))),
    };
    let started = std::time::Instant::now();
    let ann = found(loaded.ask(&search(false), &cx.cancel).await)?;
    let ann_ms = started.elapsed().as_millis();
    let exact = found(loaded.ask(&search(true), &cx.cancel).await)?;
    let mut per_query = Vec::new();
    let mut agreement = Vec::new();
    for ((q, a), e) in queries.iter().zip(&ann).zip(&exact) {
        per_query.push((q.id.clone(), recall(&q.expected_ids(), a, k)));
        agreement.push((q.id.clone(), recall(e, a, k)));
    }
    let summary = RecallSummary::new(per_query);
    let agree = RecallSummary::new(agreement);
    let round = |x: f64| (x * 10000.0).round() / 10000.0;
    let worst: Vec<_> =
        summary.per_query.iter().take(10).map(|(q, r)| json!({"query": q, "recall": round(*r)})).collect();
    Ok(CheckOutcome {
        passed: summary.mean >= v.min_recall && agree.mean >= v.min_recall,
        observed: json!({"recall": round(summary.mean), "index_agreement": round(agree.mean),
                         "index": format!("qdrant hnsw ({})", params.distance), "worst": worst}),
        expected: json!({"recall": format!(">= {}", v.min_recall), "index_agreement": format!(">= {}", v.min_recall)}),
        detail: format!(
            "through Qdrant's index ({}-d {}, {} queries in {ann_ms} ms); {}; the index agrees with Qdrant's exact search \
             at {:.4} (worst: {})",
            params.size,
            params.distance,
            queries.len(),
            summary.detail(k),
            agree.mean,
            agree.per_query.iter().take(3).map(|(q, r)| format!("{q}={r:.2}")).collect::<Vec<_>>().join(", ")
        ),
    })
}
