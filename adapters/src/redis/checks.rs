//! The Redis check kinds, computed by the restored server: `keys`, `dataset_digest`,
//! `sample`, `memory`.

use drillbook_runbooks::{DatasetDigestCheck, KeysCheck, MemoryCheck, SampleCheck};
use serde_json::json;

use super::dataset::{self, Conn, KeyFacts, Method};
use super::manifest::RedisManifest;
use crate::{AdapterError, CheckOutcome, DrillCx, read_input};

fn failed(e: ::redis::RedisError) -> AdapterError {
    AdapterError::Check(format!("the restored server did not answer: {e}"))
}

fn manifest(cx: &DrillCx, path: &str) -> Result<RedisManifest, AdapterError> {
    RedisManifest::parse(&read_input(cx, path)?).map_err(|e| AdapterError::Check(format!("`{path}`: {e}")))
}

pub async fn keys(cx: &DrillCx, conn: &mut Conn, k: &KeysCheck) -> Result<CheckOutcome, AdapterError> {
    if let Some(expect) = &k.expect {
        let db = k.db.unwrap_or(0);
        let n = dataset::count(conn, db, k.pattern.as_deref()).await.map_err(failed)?;
        let what = match &k.pattern {
            Some(p) => format!("keys matching `{p}` in db {db}"),
            None => format!("keys in db {db}"),
        };
        return Ok(CheckOutcome {
            passed: expect.get().matches(&n.to_string()),
            observed: json!(n),
            expected: json!(expect.raw()),
            detail: format!("{n} {what}"),
        });
    }
    let path = k.manifest.as_deref().unwrap_or_default();
    let want = manifest(cx, path)?;
    let got = dataset::keyspace(conn).await.map_err(failed)?;
    let mut problems = Vec::new();
    for (db, &w) in &want.databases {
        let g = got.get(db).copied().unwrap_or(0);
        if g.abs_diff(w) > k.tolerance {
            problems.push(format!("db {db}: {g} keys, expected {w}"));
        }
    }
    for (db, &g) in got.iter().filter(|(db, _)| !want.databases.contains_key(db)) {
        if g > k.tolerance {
            problems.push(format!("db {db}: {g} keys, the manifest has none"));
        }
    }
    let mut patterns = serde_json::Map::new();
    for p in &want.patterns {
        let g = dataset::count(conn, p.db, Some(&p.pattern)).await.map_err(failed)?;
        if g.abs_diff(p.keys) > k.tolerance {
            problems.push(format!("db {} `{}`: {g} keys, expected {}", p.db, p.pattern, p.keys));
        }
        patterns.insert(format!("{}:{}", p.db, p.pattern), json!(g));
    }
    let dbs = |m: &std::collections::BTreeMap<u32, u64>| {
        m.iter().map(|(db, n)| (format!("db{db}"), json!(n))).collect::<serde_json::Map<_, _>>()
    };
    let mut observed = dbs(&got);
    observed.extend(patterns);
    let mut expected = dbs(&want.databases);
    expected.extend(want.patterns.iter().map(|p| (format!("{}:{}", p.db, p.pattern), json!(p.keys))));
    Ok(CheckOutcome {
        passed: problems.is_empty(),
        observed: json!(observed),
        expected: json!(expected),
        detail: if problems.is_empty() {
            format!(
                "{} databases and {} patterns match (tolerance {})",
                want.databases.len(),
                want.patterns.len(),
                k.tolerance
            )
        } else {
            problems.join("; ")
        },
    })
}

pub async fn dataset_digest(
    cx: &DrillCx,
    conn: &mut Conn,
    d: &DatasetDigestCheck,
) -> Result<CheckOutcome, AdapterError> {
    let want = manifest(cx, &d.manifest)?;
    let got = dataset::digest(conn, want.digest.method).await.map_err(failed)?;
    let method = match want.digest.method {
        Method::DebugDigest => "DEBUG DIGEST",
        Method::ValuesSha256 => "digest of the values read back",
    };
    let passed = got == want.digest.value;
    Ok(CheckOutcome {
        passed,
        observed: json!(got),
        expected: json!(want.digest.value),
        detail: if passed {
            format!("{method} equals the manifest's (source Redis {})", want.redis_version)
        } else {
            format!(
                "{method} differs from the manifest's: the restored dataset is not the one captured from Redis {}",
                want.redis_version
            )
        },
    })
}

pub async fn sample(cx: &DrillCx, conn: &mut Conn, s: &SampleCheck) -> Result<CheckOutcome, AdapterError> {
    // (db, key, what is expected) from the runbook or the manifest.
    let (method, wanted): (Method, Vec<(u32, String, Expected)>) = match &s.manifest {
        Some(path) => {
            let m = manifest(cx, path)?;
            if m.samples.is_empty() {
                return Err(AdapterError::Check(format!(
                    "`{path}` holds no sampled keys (capture it with `drillbook manifest --sample N`)"
                )));
            }
            let keys = m.samples.into_iter().map(|x| (x.db, x.key, Expected::from(x.facts))).collect();
            (m.digest.method, keys)
        }
        None => (
            Method::DebugDigest,
            s.keys
                .iter()
                .map(|k| {
                    let e = Expected { kind: k.kind.clone(), ttl: k.ttl, digest: k.digest.clone() };
                    (s.db, k.key.clone(), e)
                })
                .collect(),
        ),
    };
    let mut problems = Vec::new();
    for (db, key, want) in &wanted {
        let got = dataset::key_facts(conn, *db, key.as_bytes(), method).await.map_err(failed)?;
        if got.kind == "none" {
            problems.push(format!("db {db} `{key}` is missing"));
            continue;
        }
        if let Some(kind) = &want.kind
            && *kind != got.kind
        {
            problems.push(format!("db {db} `{key}` is a {}, expected a {kind}", got.kind));
        }
        if let Some(ttl) = want.ttl
            && ttl != got.ttl
        {
            problems
                .push(format!("db {db} `{key}` {}", if ttl { "lost its TTL" } else { "has a TTL it did not have" }));
        }
        if let Some(d) = &want.digest
            && got.digest.as_ref() != Some(d)
        {
            problems.push(format!("db {db} `{key}`: its value differs"));
        }
    }
    let n = wanted.len();
    Ok(CheckOutcome {
        passed: problems.is_empty(),
        observed: json!({"keys": n, "differing": problems.len()}),
        expected: json!({"keys": n, "differing": 0}),
        detail: if problems.is_empty() {
            format!("{n} sampled keys have their type, TTL and value")
        } else {
            let more = problems.len().saturating_sub(10);
            let mut d = problems.into_iter().take(10).collect::<Vec<_>>().join("; ");
            if more > 0 {
                d.push_str(&format!("; and {more} more"));
            }
            d
        },
    })
}

/// What a sampled key must be; a field left out is not compared.
struct Expected {
    kind: Option<String>,
    ttl: Option<bool>,
    digest: Option<String>,
}

impl From<KeyFacts> for Expected {
    fn from(f: KeyFacts) -> Self {
        Expected { kind: Some(f.kind), ttl: Some(f.ttl), digest: f.digest }
    }
}

pub async fn memory(conn: &mut Conn, m: &MemoryCheck) -> Result<CheckOutcome, AdapterError> {
    let used = dataset::used_memory(conn).await.map_err(failed)?;
    let above = m.min.as_ref().is_none_or(|lo| used >= lo.get().0);
    let below = m.max.as_ref().is_none_or(|hi| used <= hi.get().0);
    let range = match (&m.min, &m.max) {
        (Some(lo), Some(hi)) => format!("between {} and {}", lo.raw(), hi.raw()),
        (Some(lo), None) => format!(">= {}", lo.raw()),
        (None, Some(hi)) => format!("<= {}", hi.raw()),
        (None, None) => "any".into(),
    };
    Ok(CheckOutcome {
        passed: above && below,
        observed: json!(used),
        expected: json!(range),
        detail: format!("used_memory {used} bytes ({:.1} MiB)", used as f64 / (1u64 << 20) as f64),
    })
}
