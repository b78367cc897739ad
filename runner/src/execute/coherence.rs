//! Checks across a stack's restores: every value of one set found in another (`references`),
//! two sets equal (`same_set`) or as large (`same_count`), backups close in time (`max_skew`).
//! Sets stream from the restores (SQL rows, points of a collection, restored files); only the
//! set looked up in is held, as 16-byte digests of its values, so a million ids cost ~40 MB,
//! not the ids themselves.

use std::collections::HashSet;

use drillbook_adapters::CheckOutcome;
use drillbook_reports as reports;
use drillbook_runbooks::{CheckKind, Runbook, StoreQuery, ValueSet};
use serde_json::json;
use sha2::Digest;

use super::scratch::Lane;

/// Examples of what does not match, in a check's detail.
const EXAMPLES: usize = 10;

pub(super) async fn check(
    kind: &CheckKind,
    lanes: &[Lane],
    rb: &Runbook,
    backups: &[Option<&reports::Backup>],
) -> Result<CheckOutcome, String> {
    match kind {
        CheckKind::References(r) => {
            let to = digests(lanes, rb, &r.to).await?;
            let mut missing = Misses::default();
            let total = stream(lanes, rb, &r.from, &mut |v| {
                if !to.contains(&digest(&v)) {
                    missing.add(v);
                }
            })
            .await?;
            let Misses { count: missing, examples } = missing;
            Ok(CheckOutcome {
                passed: missing <= r.max_missing,
                observed: json!({"missing": missing, "of": total}),
                expected: json!({"missing": format!("<= {}", r.max_missing)}),
                detail: if missing == 0 {
                    format!(
                        "all {total} values of {} found in {} ({} values)",
                        r.from.describe(rb),
                        r.to.describe(rb),
                        to.len()
                    )
                } else {
                    format!(
                        "{missing} of {total} values of {} not found in {}, e.g. {}",
                        r.from.describe(rb),
                        r.to.describe(rb),
                        quoted(&examples)
                    )
                },
            })
        }
        CheckKind::SameSet(c) => {
            let a = digests(lanes, rb, &c.a).await?;
            let (b, only_b) = only_in(lanes, rb, &c.b, &a).await?;
            // The values only in `a`, read again by name (the digests cannot say them).
            let (_, only_a) = only_in(lanes, rb, &c.a, &b).await?;
            let (Misses { count: only_a, examples: a_examples }, Misses { count: only_b, examples: b_examples }) =
                (only_a, only_b);
            let mut detail = Vec::new();
            if only_a > 0 {
                detail.push(format!("{only_a} only in {}, e.g. {}", c.a.describe(rb), quoted(&a_examples)));
            }
            if only_b > 0 {
                detail.push(format!("{only_b} only in {}, e.g. {}", c.b.describe(rb), quoted(&b_examples)));
            }
            Ok(CheckOutcome {
                passed: only_a == 0 && only_b == 0,
                observed: json!({"a": a.len(), "b": b.len(), "only_a": only_a, "only_b": only_b}),
                expected: json!({"only_a": 0, "only_b": 0}),
                detail: if detail.is_empty() {
                    format!("{} and {} hold the same {} values", c.a.describe(rb), c.b.describe(rb), a.len())
                } else {
                    detail.join("; ")
                },
            })
        }
        CheckKind::SameCount(c) => {
            let a = stream(lanes, rb, &c.a, &mut |_| {}).await?;
            let b = stream(lanes, rb, &c.b, &mut |_| {}).await?;
            Ok(CheckOutcome {
                passed: a == b,
                observed: json!({"a": a, "b": b}),
                expected: json!("a == b"),
                detail: format!("{a} values in {}, {b} in {}", c.a.describe(rb), c.b.describe(rb)),
            })
        }
        CheckKind::MaxSkew(m) => {
            let mut times = Vec::new();
            for (i, restore) in rb.restores().iter().enumerate() {
                if !m.restores.is_empty() && !m.restores.iter().any(|n| n == restore.name()) {
                    continue;
                }
                let taken = backups.get(i).copied().flatten().and_then(|b| b.taken_at.map(|t| (t, b)));
                match taken {
                    Some((t, b)) => times.push((t, restore.name(), b.taken_from.clone().unwrap_or_default())),
                    None => return Err(format!("the time of restore `{}`'s backup is not known", restore.name())),
                }
            }
            times.sort_by_key(|(t, _, _)| *t);
            let (Some(first), Some(last)) = (times.first(), times.last()) else {
                return Err("no restore to compare".into());
            };
            let skew = (last.0 - first.0).to_std().unwrap_or_default();
            let max = m.max.get().0;
            Ok(CheckOutcome {
                passed: skew <= max,
                observed: json!(skew.as_secs()),
                expected: json!(format!("<= {}s ({})", max.as_secs(), m.max.raw())),
                detail: format!(
                    "oldest: `{}` taken {} (from {}); newest: `{}` taken {} (from {}); {} apart",
                    first.1,
                    first.0.to_rfc3339(),
                    first.2,
                    last.1,
                    last.0.to_rfc3339(),
                    last.2,
                    super::record::human(std::time::Duration::from_secs(skew.as_secs()))
                ),
            })
        }
        CheckKind::ConfigMatches(c) => {
            let (lane, scratch) = scratch_of(lanes, rb, c.config.on.as_deref())?;
            let (root, file, key) = (scratch.dir.clone(), c.config.file.clone(), c.config.key.clone());
            let want =
                tokio::task::spawn_blocking(move || drillbook_adapters::checks::config::value_at(&root, &file, &key))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            let mut first = None;
            stream(lanes, rb, &c.equals, &mut |v| {
                if first.is_none() {
                    first = Some(v);
                }
            })
            .await?;
            let got = first.ok_or_else(|| format!("{} yielded no value", c.equals.describe(rb)))?;
            let want_text = match &want {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let same = match (want_text.parse::<f64>(), got.parse::<f64>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => want_text == got,
            };
            let config_on = rb.restores()[lane.index].name();
            Ok(CheckOutcome {
                passed: same,
                observed: json!(got),
                expected: want.clone(),
                detail: format!(
                    "{}: `{}` in {} of {config_on} is {want_text}; {} gives {got}",
                    if same { "matches" } else { "differs" },
                    c.config.key,
                    c.config.file,
                    c.equals.describe(rb)
                ),
            })
        }
        CheckKind::SameResults(r) => {
            let mut differ = Vec::new();
            for (q, query) in r.queries.iter().enumerate() {
                let mut answers = Vec::new();
                for name in &r.restores {
                    let (lane, scratch) = scratch_of(lanes, rb, Some(name))?;
                    let mut answer = Answer::default();
                    lane.adapter
                        .values(&lane.cx, scratch, StoreQuery::Sql(query), &mut |v| answer.add(v))
                        .await
                        .map_err(|e| format!("query {} on `{name}`: {e}", q + 1))?;
                    answers.push((name, answer));
                }
                let (first, rest) = answers.split_first().expect("validation: two restores or more");
                if rest.iter().any(|(_, a)| a.digest() != first.1.digest()) {
                    let each: Vec<String> = answers.iter().map(|(n, a)| format!("`{n}` {}", a.describe())).collect();
                    differ.push(format!("query {} (`{}`): {}", q + 1, query.trim(), each.join(" vs ")));
                }
            }
            Ok(CheckOutcome {
                passed: differ.is_empty(),
                observed: json!({"queries": r.queries.len(), "differ": differ.len()}),
                expected: json!({"differ": 0}),
                detail: if differ.is_empty() {
                    format!("{} queries answer the same on {}", r.queries.len(), r.restores.join(", "))
                } else {
                    differ.join("; ")
                },
            })
        }
        other => Err(format!("`{}` is not a check across restores", other.name())),
    }
}

/// Values of one set not found in the other: how many, and the first few.
#[derive(Default)]
struct Misses {
    count: u64,
    examples: Vec<String>,
}

impl Misses {
    fn add(&mut self, value: String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(value);
        }
    }
}

/// One restore's answer to a query, in order: a digest of its values, their count and the
/// first few (what a detail shows when two answers differ).
#[derive(Default)]
struct Answer {
    rows: u64,
    hasher: sha2::Sha256,
    first: Vec<String>,
}

impl Answer {
    fn add(&mut self, value: String) {
        self.rows += 1;
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value.as_bytes());
        if self.first.len() < 3 {
            self.first.push(value);
        }
    }

    fn digest(&self) -> Vec<u8> {
        self.hasher.clone().finalize().to_vec()
    }

    fn describe(&self) -> String {
        format!("{} rows, first {}", self.rows, quoted(&self.first))
    }
}

fn quoted(values: &[String]) -> String {
    values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
}

fn digest(value: &str) -> [u8; 16] {
    let d = sha2::Sha256::digest(value.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The lane of the restore `on` names, and its scratch.
fn scratch_of<'a>(
    lanes: &'a [Lane],
    rb: &Runbook,
    on: Option<&str>,
) -> Result<(&'a Lane, &'a drillbook_adapters::Scratch), String> {
    let lane = &lanes[rb.restore_named(on)];
    let scratch = lane.scratch.as_ref().ok_or_else(|| format!("{} has no scratch", lane.label()))?;
    Ok((lane, scratch))
}

/// The distinct values of `set` (as digests), and those of them not in `other`.
async fn only_in(
    lanes: &[Lane],
    rb: &Runbook,
    set: &ValueSet,
    other: &HashSet<[u8; 16]>,
) -> Result<(HashSet<[u8; 16]>, Misses), String> {
    let (mut seen, mut missing) = (HashSet::new(), Misses::default());
    stream(lanes, rb, set, &mut |v| {
        let d = digest(&v);
        if seen.insert(d) && !other.contains(&d) {
            missing.add(v);
        }
    })
    .await?;
    Ok((seen, missing))
}

async fn digests(lanes: &[Lane], rb: &Runbook, set: &ValueSet) -> Result<HashSet<[u8; 16]>, String> {
    let mut out = HashSet::new();
    stream(lanes, rb, set, &mut |v| {
        out.insert(digest(&v));
    })
    .await?;
    Ok(out)
}

/// Every value of `set`, from the scratch of the restore it names; returns how many.
async fn stream(
    lanes: &[Lane],
    rb: &Runbook,
    set: &ValueSet,
    each: &mut (dyn FnMut(String) + Send),
) -> Result<u64, String> {
    let (lane, scratch) = scratch_of(lanes, rb, set.on.as_deref())?;
    if let Some(query) = set.store_query() {
        return lane.adapter.values(&lane.cx, scratch, query, each).await.map_err(|e| e.to_string());
    }
    let glob = set.files.as_ref().map(|g| g.get().0.clone()).unwrap_or_default();
    let (root, strip) = (scratch.dir.clone(), set.strip_extension.clone());
    let values =
        tokio::task::spawn_blocking(move || drillbook_adapters::checks::files::values(&root, &glob, strip.as_deref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    let n = values.len() as u64;
    values.into_iter().for_each(each);
    Ok(n)
}
