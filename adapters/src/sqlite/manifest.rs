//! Ground truth of a SQLite database: row counts, order-independent table digests and the
//! schema. Captured at backup time (`drillbook manifest`), compared after a restore.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
// Identifiers are quoted with `ident`/`quote_literal`; the tables come from the database itself.
use sqlx::{AssertSqlSafe, SqlitePool};

use super::ident;
use crate::CheckOutcome;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub tables: BTreeMap<String, TableTruth>,
    /// `type name: sql` of every table, index, view and trigger.
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

/// Reads counts, digests and schema from a live database (read-only queries).
pub async fn capture(pool: &SqlitePool) -> Result<Manifest, sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name",
    )
    .fetch_all(pool)
    .await?;
    let mut m = Manifest::default();
    for t in tables {
        m.tables.insert(t.clone(), table_digest(pool, &t).await?);
    }
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select type, name, sql from sqlite_master where name not like 'sqlite_%' order by type, name")
            .fetch_all(pool)
            .await?;
    m.schema = rows
        .into_iter()
        .map(|(ty, name, sql)| {
            format!("{ty} {name}: {}", sql.unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect();
    Ok(m)
}

/// Row count and an order-independent digest: the wrapping sum of each row's SHA-256
/// (first 16 bytes) over SQLite's own `quote()` of every column, plus the count.
pub async fn table_digest(pool: &SqlitePool, table: &str) -> Result<TableTruth, sqlx::Error> {
    let columns: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "select name from pragma_table_info({}) order by cid",
        quote_literal(table)
    )))
    .fetch_all(pool)
    .await?;
    if columns.is_empty() {
        return Err(sqlx::Error::RowNotFound);
    }
    let expr = columns.iter().map(|c| format!("quote({})", ident(c))).collect::<Vec<_>>().join(" || char(31) || ");
    let rows: Vec<String> =
        sqlx::query_scalar(AssertSqlSafe(format!("select {expr} from {}", ident(table)))).fetch_all(pool).await?;
    let mut sum: u128 = 0;
    for r in &rows {
        let h = Sha256::digest(r.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&h[..16]);
        sum = sum.wrapping_add(u128::from_le_bytes(first));
    }
    Ok(TableTruth { rows: rows.len() as u64, digest: format!("{sum:032x}") })
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) fn compare_counts(want: &Manifest, got: &Manifest, tolerance: u64) -> CheckOutcome {
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

pub(crate) fn compare_schema(want: &Manifest, got: &Manifest) -> CheckOutcome {
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
