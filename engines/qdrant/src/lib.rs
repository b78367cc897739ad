//! drillbook's Qdrant engine: Qdrant Edge (Qdrant's own in-process engine) serving a restored
//! snapshot to drillbook over stdin/stdout ([`drillbook_adapters::qdrant::protocol`]). It runs
//! in a child process (`drillbook-qdrant-engine`), so that a panic, an abort or a SIGBUS on a
//! damaged segment ends the child and fails the drill, never the daemon.
//!
//! Nothing here reads a Qdrant file itself: shards are restored by Qdrant's snapshot code and
//! loaded, counted, scrolled and searched by Qdrant Edge.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use drillbook_adapters::manifest::{RecordDigest, sorted};
use drillbook_adapters::qdrant::protocol::{
    Answer, IntegrityCounts, IntegrityRules, Request, ScanRequest, Scanned, ShardDir, ShardInfo, VectorParams,
};
use drillbook_adapters::vectors::{Integrity, id_text, payload_values};
use qdrant_edge::{
    CountRequest, EdgeShard, Filter, NamedQuery, PointId, QueryEnum, Record, ScrollRequest, SearchParams,
    SearchRequest, VectorInternal, VectorStructInternal, WithPayloadInterface, WithVector,
};
use serde_json::Value;

/// Points read per scroll page.
const PAGE: usize = 1000;

/// Answers requests, one per line, until stdin closes.
pub fn serve(input: impl BufRead, mut out: impl Write) -> io::Result<()> {
    let mut shards: Vec<(String, EdgeShard)> = Vec::new();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        // A request answered in batches hands them to `emit` as it goes; the last answer
        // follows them.
        let mut written = Ok(());
        let answer = {
            let mut emit = |batch: Answer| {
                if written.is_ok() {
                    written = write(&mut out, &batch);
                }
            };
            match serde_json::from_str::<Request>(&line) {
                Ok(request) => {
                    handle(&mut shards, request, &mut emit).unwrap_or_else(|message| Answer::Error { message })
                }
                Err(e) => Answer::Error { message: format!("not a request: {e}") },
            }
        };
        written?;
        write(&mut out, &answer)?;
    }
    Ok(())
}

fn write(out: &mut impl Write, answer: &Answer) -> io::Result<()> {
    serde_json::to_writer(&mut *out, answer)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Every point's payload `field` (its id without one), `PAGE` values to a batch as the
/// points are scrolled, never all of them in one answer; the last batch is the answer.
fn values(shards: &[(String, EdgeShard)], field: Option<&str>, emit: &mut dyn FnMut(Answer)) -> Result<Answer, String> {
    let mut batch = Vec::new();
    scroll(shards, field.is_some(), false, &mut |r| {
        match field {
            // The field read in place: no copy of each point's payload.
            Some(f) => {
                payload_values(r.payload.as_ref().map(|p| &p.0), f, &mut |v| batch.push(v));
            }
            None => batch.push(point_id(&r.id)),
        }
        if batch.len() >= PAGE {
            emit(Answer::Values { values: std::mem::take(&mut batch), done: false });
        }
    })?;
    Ok(Answer::Values { values: batch, done: true })
}

/// A point id as text, as searches name them.
fn point_id(id: &PointId) -> String {
    id_text(&serde_json::to_value(id).unwrap_or(Value::Null))
}

/// Every point of every shard, a page at a time, through Qdrant Edge's scroll; returns how
/// many.
fn scroll(
    shards: &[(String, EdgeShard)],
    with_payload: bool,
    with_vector: bool,
    each: &mut dyn FnMut(&Record),
) -> Result<u64, String> {
    let mut points = 0u64;
    for (id, shard) in shards {
        let mut offset: Option<PointId> = None;
        loop {
            let (records, next) = shard
                .scroll(ScrollRequest {
                    offset,
                    limit: Some(PAGE),
                    filter: None,
                    with_payload: Some(WithPayloadInterface::Bool(with_payload)),
                    with_vector: WithVector::Bool(with_vector),
                    order_by: None,
                })
                .map_err(|e| format!("shard {id}: scroll: {e}"))?;
            points += records.len() as u64;
            records.iter().for_each(&mut *each);
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
    }
    Ok(points)
}

fn handle(
    shards: &mut Vec<(String, EdgeShard)>,
    request: Request,
    emit: &mut dyn FnMut(Answer),
) -> Result<Answer, String> {
    match request {
        Request::Values { field } => values(shards, field.as_deref(), emit),
        Request::Restore { shards: dirs } => {
            dirs.iter().try_for_each(restore)?;
            Ok(Answer::Restored)
        }
        Request::Load { shards: dirs } => {
            let mut infos = Vec::new();
            for dir in dirs {
                let (shard, info) = load(&dir)?;
                shards.push((dir.id, shard));
                infos.push(info);
            }
            Ok(Answer::Loaded { shards: infos })
        }
        Request::Count { filter } => {
            let filter = filter.map(parse_filter).transpose()?;
            let mut points = 0u64;
            for (id, shard) in shards.iter() {
                let n = shard
                    .count(CountRequest { filter: filter.clone(), exact: true })
                    .map_err(|e| format!("shard {id}: count: {e}"))?;
                points += n as u64;
            }
            Ok(Answer::Count { points })
        }
        Request::Scan(scan) => scan_all(shards, &scan).map(Answer::Scanned),
        Request::Search { vector, queries, k, exact } => {
            // One query at a time is one core at a time in Qdrant Edge: the queries are
            // split over the cores, answers kept in their order.
            let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let per = queries.len().div_ceil(threads).max(1);
            let shards = &*shards;
            let vector = vector.as_str();
            let parts: Vec<Result<Vec<Vec<String>>, String>> = std::thread::scope(|s| {
                let running: Vec<_> = queries
                    .chunks(per)
                    .map(|chunk| s.spawn(move || chunk.iter().map(|q| search(shards, vector, q, k, exact)).collect()))
                    .collect();
                running
                    .into_iter()
                    .map(|t| t.join().unwrap_or_else(|_| Err("Qdrant Edge panicked in a search".to_string())))
                    .collect()
            });
            let mut ids = Vec::new();
            for part in parts {
                ids.extend(part?);
            }
            Ok(Answer::Found { ids })
        }
    }
}

/// A Qdrant filter in its REST syntax (`{must: [{key: lang, match: {value: en}}]}`).
fn parse_filter(v: Value) -> Result<Filter, String> {
    let text = v.to_string();
    serde_json::from_value::<Filter>(v).map_err(|e| format!("`{text}` is not a Qdrant filter: {e}"))
}

/// Restores the shard folder's segments in place with Qdrant's snapshot code.
///
/// The folder was unpacked by drillbook (the snapshot is hostile input: links, devices and
/// paths out of the folder are refused there). Qdrant's `unpack_snapshot` is its archive
/// unpacker followed by `restore_unpacked_snapshot` (each `segments/<uuid>.tar` unpacked by
/// Qdrant, which takes regular files and folders only, and laid out as a segment); handing it
/// an empty archive runs the second half on the folder.
fn restore(dir: &ShardDir) -> Result<(), String> {
    if !dir.path.join("segments").is_dir() {
        return Err(format!("shard {}: no `segments` folder: not a Qdrant shard", dir.id));
    }
    let empty = dir.path.join(".drillbook-empty.tar");
    std::fs::write(&empty, [0u8; 1024]).map_err(|e| format!("shard {}: cannot write an empty archive: {e}", dir.id))?;
    let restored = EdgeShard::unpack_snapshot(&empty, &dir.path);
    let _ = std::fs::remove_file(&empty);
    restored.map_err(|e| format!("shard {}: Qdrant cannot restore its segments: {e}", dir.id))
}

/// Loads a restored shard folder with Qdrant Edge (its config inferred from the segments).
fn load(dir: &ShardDir) -> Result<(EdgeShard, ShardInfo), String> {
    let shard =
        EdgeShard::load(&dir.path, None).map_err(|e| format!("shard {}: Qdrant Edge cannot load it: {e}", dir.id))?;
    let info = shard.info();
    let vectors = shard
        .config()
        .vectors
        .iter()
        .map(|(name, p)| {
            (name.to_string(), VectorParams { size: p.size as u64, distance: format!("{:?}", p.distance) })
        })
        .collect();
    let info = ShardInfo {
        id: dir.id.clone(),
        segments: info.segments_count as u64,
        points: info.points_count as u64,
        indexed_vectors: info.indexed_vectors_count as u64,
        vectors,
    };
    Ok((shard, info))
}

/// One pass over every point for a [`ScanRequest`].
fn scan_all(shards: &[(String, EdgeShard)], scan: &ScanRequest) -> Result<Scanned, String> {
    let mut integrity = Integrity::default();
    let mut digest = RecordDigest::default();
    let mut schema: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut seen_points = 0u64;
    let with_vector = scan.digest || scan.integrity.is_some() || scan.sample.is_some();
    let mut samples: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    let points = scroll(shards, scan.digest || scan.payload_schema, with_vector, &mut |r| {
        seen_points += 1;
        let payload = r.payload.as_ref().map(|p| Value::Object(p.0.clone())).unwrap_or(Value::Null);
        let vectors = named_vectors(r.vector.as_ref());
        if let Some(rules) = &scan.integrity {
            add_integrity(&mut integrity, rules, &vectors);
        }
        if scan.digest {
            digest.add(&record_bytes(&r.id, &payload, &vectors));
        }
        if let Some(sample) = &scan.sample
            && (seen_points - 1).is_multiple_of(sample.every.max(1))
        {
            for name in &sample.vectors {
                let kept = samples.entry(name.clone()).or_default();
                if let Some(VectorInternal::Dense(d)) = vectors.get(name)
                    && kept.len() < sample.max
                {
                    kept.push(d.clone());
                }
            }
        }
        if scan.payload_schema {
            let mut seen = BTreeMap::new();
            if let Value::Object(m) = &payload {
                for (k, v) in m {
                    field_types(k, v, &mut seen);
                }
            }
            for (field, types) in seen {
                let e = schema.entry(field).or_default();
                for t in types {
                    *e.entry(t.to_string()).or_default() += 1;
                }
            }
        }
    })?;
    Ok(Scanned {
        points,
        integrity: scan.integrity.as_ref().map(|_| IntegrityCounts {
            vectors: integrity.vectors,
            null: integrity.null,
            wrong_dim: integrity.wrong_dim,
            non_finite: integrity.non_finite,
            norm_out_of_range: integrity.norm_out_of_range,
        }),
        digest: scan.digest.then(|| digest.finish().1),
        payload_schema: scan.payload_schema.then_some(schema),
        samples,
    })
}

/// A point's vectors by name (`""` for an unnamed one), dense, sparse or multi-dense.
fn named_vectors(v: Option<&VectorStructInternal>) -> BTreeMap<String, VectorInternal> {
    match v {
        None => BTreeMap::new(),
        Some(VectorStructInternal::Single(d)) => BTreeMap::from([(String::new(), VectorInternal::Dense(d.clone()))]),
        Some(VectorStructInternal::MultiDense(m)) => {
            BTreeMap::from([(String::new(), VectorInternal::MultiDense(m.clone()))])
        }
        Some(VectorStructInternal::Named(map)) => map.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
    }
}

fn add_integrity(counts: &mut Integrity, rules: &IntegrityRules, vectors: &BTreeMap<String, VectorInternal>) {
    match vectors.get(&rules.vector) {
        None => counts.add_vector(None, rules.dim, rules.min_norm, rules.max_norm),
        Some(VectorInternal::Dense(d)) => counts.add_vector(Some(d), rules.dim, rules.min_norm, rules.max_norm),
        Some(VectorInternal::MultiDense(m)) => {
            for one in m.flattened_vectors.chunks(m.dim.max(1)) {
                counts.add_vector(Some(one), rules.dim, rules.min_norm, rules.max_norm);
            }
        }
        // A sparse vector has no dimension to hold to; its values must still be finite.
        Some(VectorInternal::Sparse(s)) => {
            let finite = s.values.iter().all(|x| x.is_finite());
            counts.vectors += 1;
            if !finite {
                counts.non_finite += 1;
            }
        }
    }
}

/// What a point's digest covers: `[id, payload]` as canonical JSON (keys sorted), then each
/// vector by name: `\0 name \0` and its values as little-endian f32 (a sparse one: its indices
/// as little-endian u32, then its values).
fn record_bytes(id: &PointId, payload: &Value, vectors: &BTreeMap<String, VectorInternal>) -> Vec<u8> {
    let id = serde_json::to_value(id).unwrap_or(Value::Null);
    let mut out = serde_json::json!([id, sorted(payload)]).to_string().into_bytes();
    for (name, v) in vectors {
        out.push(0);
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        match v {
            VectorInternal::Dense(d) => d.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            VectorInternal::MultiDense(m) => {
                m.flattened_vectors.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
            }
            VectorInternal::Sparse(s) => {
                s.indices.iter().for_each(|i| out.extend_from_slice(&i.to_le_bytes()));
                s.values.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
        }
    }
    out
}

/// The types of a payload value under its (dotted) field name: values of an array count as
/// the field's values, as Qdrant indexes them; objects add their own fields.
fn field_types(field: &str, v: &Value, seen: &mut BTreeMap<String, std::collections::BTreeSet<&'static str>>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "keyword",
        Value::Array(items) => {
            if items.is_empty() {
                seen.entry(field.to_string()).or_default().insert("empty_array");
            }
            for item in items {
                field_types(field, item, seen);
            }
            return;
        }
        Value::Object(m) => {
            for (k, inner) in m {
                field_types(&format!("{field}.{k}"), inner, seen);
            }
            "object"
        }
    };
    seen.entry(field.to_string()).or_default().insert(kind);
}

/// The `k` nearest ids to `q` over every shard by Qdrant's own search (each shard's best,
/// merged by score as Qdrant's collection layer does).
fn search(
    shards: &[(String, EdgeShard)],
    vector: &str,
    q: &[f32],
    k: usize,
    exact: bool,
) -> Result<Vec<String>, String> {
    let mut scored = Vec::new();
    let mut higher_is_better = true;
    for (id, shard) in shards {
        if let Some(p) = shard.config().vectors.get(vector) {
            // Euclid and Manhattan scores are distances: lower is nearer.
            higher_is_better = matches!(p.distance, qdrant_edge::Distance::Cosine | qdrant_edge::Distance::Dot);
        }
        let found = shard
            .search(SearchRequest {
                query: QueryEnum::Nearest(NamedQuery::new(VectorInternal::Dense(q.to_vec()), vector)),
                filter: None,
                params: Some(SearchParams { exact, ..SearchParams::default() }),
                limit: k,
                offset: 0,
                with_payload: None,
                with_vector: None,
                score_threshold: None,
            })
            .map_err(|e| format!("shard {id}: search: {e}"))?;
        scored.extend(found.into_iter().map(|p| (p.score, p.id)));
    }
    scored.sort_by(|a, b| {
        let by_score = if higher_is_better { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
        by_score.then_with(|| a.1.cmp(&b.1))
    });
    Ok(scored.into_iter().take(k).map(|(_, id)| point_id(&id)).collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn payload_types_follow_arrays_and_nested_objects() {
        let payload = serde_json::json!({"tags": ["a", "b"], "meta": {"year": 2024, "score": 0.5},
                                         "gone": null, "empty": [], "mixed": [1, "x"]});
        let mut seen = BTreeMap::new();
        for (k, v) in payload.as_object().unwrap() {
            field_types(k, v, &mut seen);
        }
        let types = |f: &str| seen[f].iter().copied().collect::<Vec<_>>();
        assert_eq!(types("tags"), ["keyword"]);
        assert_eq!(types("meta"), ["object"]);
        assert_eq!(types("meta.year"), ["integer"]);
        assert_eq!(types("meta.score"), ["float"]);
        assert_eq!(types("gone"), ["null"]);
        assert_eq!(types("empty"), ["empty_array"]);
        assert_eq!(seen["mixed"], BTreeSet::from(["integer", "keyword"]));
    }

    #[test]
    fn a_points_digest_bytes_see_every_value_but_not_the_payloads_key_order() {
        let id = PointId::NumId(7);
        let a = serde_json::json!({"lang": "en", "n": 1});
        let b: Value = serde_json::from_str(r#"{"n": 1, "lang": "en"}"#).unwrap();
        let vectors = |x: f32| BTreeMap::from([("text".to_string(), VectorInternal::Dense(vec![0.5, x]))]);
        assert_eq!(record_bytes(&id, &a, &vectors(1.0)), record_bytes(&id, &b, &vectors(1.0)));
        assert_ne!(record_bytes(&id, &a, &vectors(1.0)), record_bytes(&id, &a, &vectors(1.0000001)));
        assert_ne!(record_bytes(&id, &a, &vectors(1.0)), record_bytes(&PointId::NumId(8), &a, &vectors(1.0)));
        let renamed = BTreeMap::from([("title".to_string(), VectorInternal::Dense(vec![0.5, 1.0]))]);
        assert_ne!(record_bytes(&id, &a, &vectors(1.0)), record_bytes(&id, &a, &renamed));
    }
}
