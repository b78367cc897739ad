//! Ground truth captured from a live store at backup time (`drillbook manifest`): row counts,
//! order-independent table digests and a schema snapshot. Each adapter captures it in its own
//! way; the shape and the comparisons are shared, so `row_counts`, `table_checksum` and
//! `schema` read the same on every store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use drillbook_runbooks::{Expect, Parsed};

use crate::{AdapterError, CheckOutcome};

/// An order-independent digest of records (a vector store's points, say): SHA-256 of the
/// sorted SHA-256s of each record's bytes, so the order a store returns them in does not count.
#[derive(Default)]
pub struct RecordDigest {
    hashes: Vec<[u8; 32]>,
}

impl RecordDigest {
    pub fn add(&mut self, record: &[u8]) {
        self.hashes.push(Sha256::digest(record).into());
    }

    /// The number of records and the digest (hex).
    pub fn finish(mut self) -> (u64, String) {
        self.hashes.sort_unstable();
        let mut h = Sha256::new();
        for one in &self.hashes {
            h.update(one);
        }
        (self.hashes.len() as u64, hex::encode(h.finalize()))
    }
}

/// `v` with every object's keys sorted: the text is the same whatever order the store used
/// (serde_json keeps insertion order in this build).
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub tables: BTreeMap<String, TableTruth>,
    /// One line per schema object (`table t: ...`, `index i: ...`), in the adapter's words.
    #[serde(default)]
    pub schema: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableTruth {
    pub rows: u64,
    #[serde(default)]
    pub digest: String,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        serde_json::from_str(text).map_err(|e| format!("manifest is not a drillbook manifest: {e}"))
    }
}

/// `row_counts`: every table of the manifest is present with its count (within `tolerance`).
pub fn compare_counts(want: &Manifest, got: &Manifest, tolerance: u64) -> CheckOutcome {
    let mut problems = Vec::new();
    for (t, w) in &want.tables {
        match got.tables.get(t) {
            None => problems.push(format!("table {t} is missing")),
            Some(g) if g.rows.abs_diff(w.rows) > tolerance => {
                problems.push(format!("{t}: {} rows, expected {}", g.rows, w.rows))
            }
            Some(_) => {}
        }
    }
    let counts =
        |m: &Manifest| m.tables.iter().map(|(k, v)| (k.clone(), json!(v.rows))).collect::<serde_json::Map<_, _>>();
    CheckOutcome {
        passed: problems.is_empty(),
        observed: json!(counts(got)),
        expected: json!(counts(want)),
        detail: if problems.is_empty() {
            format!("{} tables match (tolerance {tolerance})", want.tables.len())
        } else {
            problems.join("; ")
        },
    }
}

/// `schema`: the same set of schema objects, nothing missing, nothing unexpected.
pub fn compare_schema(want: &Manifest, got: &Manifest) -> CheckOutcome {
    let missing: Vec<&String> = want.schema.iter().filter(|s| !got.schema.contains(s)).collect();
    let extra: Vec<&String> = got.schema.iter().filter(|s| !want.schema.contains(s)).collect();
    let mut problems: Vec<String> = missing.iter().map(|s| format!("missing or changed: {s}")).collect();
    problems.extend(extra.iter().map(|s| format!("unexpected: {s}")));
    CheckOutcome {
        passed: problems.is_empty(),
        observed: json!({"objects": got.schema.len(), "missing": missing.len(), "unexpected": extra.len()}),
        expected: json!({"objects": want.schema.len(), "missing": 0, "unexpected": 0}),
        detail: if problems.is_empty() {
            format!("{} schema objects match", want.schema.len())
        } else {
            problems.into_iter().take(5).collect::<Vec<_>>().join("; ")
        },
    }
}

/// `table_checksum`: one table's count and digest equal the manifest's.
pub fn compare_table(manifest: &str, want: &Manifest, table: &str, got: &TableTruth) -> Result<CheckOutcome, String> {
    let Some(w) = want.tables.get(table) else {
        return Err(format!("manifest `{manifest}` has no table `{table}`"));
    };
    Ok(CheckOutcome {
        passed: got.digest == w.digest && got.rows == w.rows,
        observed: json!({"rows": got.rows, "digest": got.digest}),
        expected: json!({"rows": w.rows, "digest": w.digest}),
        detail: if got.digest == w.digest {
            "digests equal".into()
        } else {
            "the rows differ from the manifest".into()
        },
    })
}

/// A vector store's count check: `n` (of `what`, e.g. `points in docs`) against `expect`, else
/// against the manifest's count (`want`, read only then) within `tolerance`.
pub fn compare_count(
    n: u64,
    what: &str,
    expect: Option<&Parsed<Expect>>,
    want: impl FnOnce() -> Result<u64, AdapterError>,
    tolerance: u64,
) -> Result<CheckOutcome, AdapterError> {
    if let Some(expect) = expect {
        return Ok(CheckOutcome {
            passed: expect.get().matches(&n.to_string()),
            observed: json!(n),
            expected: json!(expect.raw()),
            detail: format!("{n} {what}"),
        });
    }
    let want = want()?;
    let ok = n.abs_diff(want) <= tolerance;
    Ok(CheckOutcome {
        passed: ok,
        observed: json!(n),
        expected: json!(want),
        detail: if ok {
            format!("{n} {what} (manifest: {want}, tolerance {tolerance})")
        } else {
            format!("{n} {what}, the manifest has {want}: {} missing", want as i64 - n as i64)
        },
    })
}
