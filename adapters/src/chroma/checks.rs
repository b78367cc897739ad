//! The Chroma check kinds, answered by the restored server through its API: `collections`,
//! `points`, `vector_integrity`, `vector_recall`, `documents_checksum`.

use drillbook_runbooks::{
    CollectionsCheck, DimensionOf, DocumentsChecksumCheck, PointValues, PointsCheck, VectorIntegrityCheck,
    VectorRecallCheck,
};
use serde_json::json;

use super::api::{self, Api, Collection};
use super::manifest::{self, ChromaManifest};
use crate::vectors::{Integrity, RecallSummary, parse_golden, payload_values, recall};
use crate::{AdapterError, CheckOutcome, DrillCx, read_input};

fn failed(e: String) -> AdapterError {
    AdapterError::Check(e)
}

fn load_manifest(cx: &DrillCx, path: &str) -> Result<ChromaManifest, AdapterError> {
    ChromaManifest::parse(&read_input(cx, path)?).map_err(|e| AdapterError::Check(format!("`{path}`: {e}")))
}

/// The collection `name`, or a check error naming the ones there are.
async fn collection(api: &Api, name: &str) -> Result<Collection, AdapterError> {
    api.collection(name).await.map_err(failed)
}

pub async fn collections(cx: &DrillCx, api: &Api, c: &CollectionsCheck) -> Result<CheckOutcome, AdapterError> {
    let got = api.collections().await.map_err(failed)?;
    let mut problems = Vec::new();
    let mut observed = serde_json::Map::new();
    for col in &got {
        let records = api.count(col).await.map_err(failed)?;
        observed.insert(
            col.name.clone(),
            json!({"records": records, "dimension": col.dimension, "space": col.space(),
                   "metadata": manifest::user_metadata(col)}),
        );
    }
    let (wanted, expected): (Vec<String>, serde_json::Value) = match &c.manifest {
        Some(path) => {
            let m = load_manifest(cx, path)?;
            for (name, want) in &m.collections {
                let Some(col) = got.iter().find(|g| &g.name == name) else {
                    problems.push(format!("collection {name} is missing"));
                    continue;
                };
                if col.dimension != want.dimension {
                    problems.push(format!(
                        "{name}: dimension {}, expected {}",
                        col.dimension.map(|d| d.to_string()).unwrap_or("none".into()),
                        want.dimension.map(|d| d.to_string()).unwrap_or("none".into())
                    ));
                }
                if col.space() != want.space {
                    problems.push(format!("{name}: space {}, expected {}", col.space(), want.space));
                }
                if manifest::user_metadata(col) != want.metadata {
                    problems.push(format!("{name}: metadata differs from the manifest"));
                }
                let records = observed[name]["records"].as_u64().unwrap_or(0);
                if records != want.records {
                    problems.push(format!("{name}: {records} records, expected {}", want.records));
                }
            }
            let expected = m
                .collections
                .iter()
                .map(|(n, t)| {
                    (
                        n.clone(),
                        json!({"records": t.records, "dimension": t.dimension, "space": t.space,
                                       "metadata": t.metadata}),
                    )
                })
                .collect::<serde_json::Map<_, _>>();
            (m.collections.keys().cloned().collect(), json!(expected))
        }
        None => {
            for name in &c.names {
                if !got.iter().any(|g| &g.name == name) {
                    problems.push(format!("collection {name} is missing"));
                }
            }
            (c.names.clone(), json!(c.names))
        }
    };
    if !c.allow_extra {
        for extra in got.iter().filter(|g| !wanted.contains(&g.name)) {
            problems.push(format!("unexpected collection {}", extra.name));
        }
    }
    Ok(CheckOutcome {
        passed: problems.is_empty(),
        observed: json!(observed),
        expected,
        detail: if problems.is_empty() {
            format!("{} collections as expected", wanted.len())
        } else {
            problems.join("; ")
        },
    })
}

pub async fn points(cx: &DrillCx, api: &Api, p: &PointsCheck) -> Result<CheckOutcome, AdapterError> {
    let col = collection(api, &p.collection).await?;
    let n = match &p.filter {
        Some(filter) => api.scan(&col, Some(filter), &[], api::PAGE, |_| Ok(())).await.map_err(failed)?,
        None => api.count(&col).await.map_err(failed)?,
    };
    let what = match &p.filter {
        Some(f) => format!("records of {} matching {f}", p.collection),
        None => format!("records in {}", p.collection),
    };
    let path = p.manifest.as_deref().unwrap_or_default();
    crate::manifest::compare_count(
        n,
        &what,
        p.expect.as_ref(),
        || {
            Ok(load_manifest(cx, path)?
                .collections
                .get(&p.collection)
                .ok_or_else(|| AdapterError::Check(format!("manifest `{path}` has no collection `{}`", p.collection)))?
                .records)
        },
        p.tolerance,
    )
}

pub async fn vector_integrity(api: &Api, v: &VectorIntegrityCheck) -> Result<CheckOutcome, AdapterError> {
    let name = v.collection.as_deref().unwrap_or_default();
    let col = collection(api, name).await?;
    let mut counts = Integrity::default();
    api.scan(&col, None, &["embeddings"], api::embedding_page(&col), |page| {
        let vectors = page.embeddings.unwrap_or_default();
        for i in 0..page.ids.len() {
            let v_i: Option<Vec<f32>> =
                vectors.get(i).cloned().flatten().map(|v| v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect());
            counts.add_vector(v_i.as_deref(), v.dim, v.min_norm, v.max_norm);
        }
        Ok(())
    })
    .await
    .map_err(|e| AdapterError::Check(format!("cannot read the embeddings of {name}: {e}")))?;
    let declared = col.dimension.filter(|d| *d != v.dim);
    Ok(CheckOutcome {
        passed: counts.bad() == 0 && counts.vectors > 0 && declared.is_none(),
        observed: json!({"collection_dimension": col.dimension, "counts": counts}),
        expected: json!({"dim": v.dim, "bad": 0, "min_norm": v.min_norm, "max_norm": v.max_norm}),
        detail: match (counts.vectors, declared) {
            (0, _) => format!("collection {name} holds no embedding"),
            (_, Some(d)) => format!(
                "collection {name} is {d}-dimensional, the runbook expects {}; {} of {} vectors bad",
                v.dim,
                counts.bad(),
                counts.vectors
            ),
            (n, None) => format!("{} of {n} vectors bad (read back through Chroma's API)", counts.bad()),
        },
    })
}

pub async fn vector_recall(cx: &DrillCx, api: &Api, v: &VectorRecallCheck) -> Result<CheckOutcome, AdapterError> {
    let name = v.collection.as_deref().unwrap_or_default();
    let queries = parse_golden(&read_input(cx, &v.queries)?).map_err(AdapterError::Check)?;
    let col = collection(api, name).await?;
    let space = col.space();
    let metric = manifest::metric(&space)
        .ok_or_else(|| AdapterError::Check(format!("collection {name} has unknown space `{space}`")))?;
    if let Some(m) = v.metric
        && m != metric
    {
        return Err(AdapterError::Check(format!(
            "the runbook says metric {m:?}, collection {name} searches by `{space}`; drop `metric:` or make them agree"
        )));
    }
    let k = v.k as usize;
    let vectors = queries.iter().map(|q| q.vector.clone()).collect();
    let (read, exact) = manifest::exact_top_k(api, &col, metric, k, vectors)
        .await
        .map_err(|e| AdapterError::Check(format!("cannot read the embeddings of {name}: {e}")))?;
    let mut per_query = Vec::new();
    let mut agreement = Vec::new();
    for (q, exact) in queries.iter().zip(&exact) {
        let ann = api.query(&col, &q.vector, v.k).await.map_err(failed)?;
        per_query.push((q.id.clone(), recall(&q.expected_ids(), &ann, k)));
        agreement.push((q.id.clone(), recall(exact, &ann, k)));
    }
    let summary = RecallSummary::new(per_query);
    let agree = RecallSummary::new(agreement);
    let passed = summary.mean >= v.min_recall && agree.mean >= v.min_recall;
    let round = |x: f64| (x * 10000.0).round() / 10000.0;
    let worst: Vec<_> =
        summary.per_query.iter().take(10).map(|(q, r)| json!({"query": q, "recall": round(*r)})).collect();
    Ok(CheckOutcome {
        passed,
        observed: json!({"recall": round(summary.mean), "index_agreement": round(agree.mean),
                         "index": format!("chroma hnsw ({space})"), "worst": worst}),
        expected: json!({"recall": format!(">= {}", v.min_recall), "index_agreement": format!(">= {}", v.min_recall)}),
        detail: format!(
            "through Chroma's HNSW index ({space}, {} vectors); {}; the index agrees with an exact search of the \
             restored embeddings at {:.4} (worst: {})",
            read,
            summary.detail(k),
            agree.mean,
            agree.per_query.iter().take(3).map(|(q, r)| format!("{q}={r:.2}")).collect::<Vec<_>>().join(", ")
        ),
    })
}

pub async fn documents_checksum(
    cx: &DrillCx,
    api: &Api,
    d: &DocumentsChecksumCheck,
) -> Result<CheckOutcome, AdapterError> {
    let m = load_manifest(cx, &d.manifest)?;
    let want = m.collections.get(&d.collection).ok_or_else(|| {
        AdapterError::Check(format!("manifest `{}` has no collection `{}`", d.manifest, d.collection))
    })?;
    let col = collection(api, &d.collection).await?;
    let (records, digest) = manifest::digest(api, &col).await.map_err(failed)?;
    Ok(CheckOutcome {
        passed: records == want.records && digest == want.digest,
        observed: json!({"records": records, "digest": digest}),
        expected: json!({"records": want.records, "digest": want.digest}),
        detail: if digest == want.digest {
            format!("{records} records (id, document, metadata) digest equal")
        } else if records != want.records {
            format!("{records} records, the manifest has {}; the digests differ", want.records)
        } else {
            format!("{records} records as in the manifest, but their ids, documents or metadata differ")
        },
    })
}

/// A collection's records for a value set: each one's metadata `field`, or its id.
pub async fn point_values(
    api: &Api,
    p: &PointValues,
    each: &mut (dyn FnMut(String) + Send),
) -> Result<u64, AdapterError> {
    let c = collection(api, &p.collection).await?;
    let include: &[&str] = if p.field.is_some() { &["metadatas"] } else { &[] };
    let mut n = 0;
    api.scan(&c, None, include, api::PAGE, |records| {
        let metadatas = records.metadatas.unwrap_or_default();
        for (i, id) in records.ids.into_iter().enumerate() {
            n += match &p.field {
                Some(field) => {
                    payload_values(metadatas.get(i).and_then(Option::as_ref).and_then(|m| m.as_object()), field, each)
                }
                None => {
                    each(id);
                    1
                }
            };
        }
        Ok(())
    })
    .await
    .map_err(failed)?;
    Ok(n)
}

/// A collection's dimension, as one value.
pub async fn dimension(api: &Api, d: &DimensionOf, each: &mut (dyn FnMut(String) + Send)) -> Result<u64, AdapterError> {
    if let Some(v) = &d.vector {
        return Err(failed(format!("a Chroma collection has one embedding, not named vectors (`vector: {v}`)")));
    }
    let c = collection(api, &d.collection).await?;
    let dim = c.dimension.ok_or_else(|| {
        failed(format!("collection `{}` has no dimension yet (Chroma sets it with the first embedding)", c.name))
    })?;
    each(dim.to_string());
    Ok(1)
}
