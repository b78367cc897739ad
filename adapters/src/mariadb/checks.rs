//! The checks a restored MariaDB database answers: `sql`, `row_counts`, `table_checksum`,
//! `schema` and `check_tables`, computed by the server.

use drillbook_runbooks::{CheckKind, CheckTablesCheck, SqlCheck};
use serde_json::json;
// Runbook SQL runs against the drill's private copy; identifiers are quoted.
use sqlx::{AssertSqlSafe, Column, MySqlPool, Row};

use super::manifest::{self as mtruth, Scope, ident};
use crate::manifest::{self as truth, Manifest};
use crate::sql::check_error as sql_err;
use crate::{AdapterError, CheckOutcome, DrillCx, read_input};

pub async fn run(
    cx: &DrillCx,
    pool: &MySqlPool,
    scope: &Scope,
    check: &CheckKind,
) -> Result<CheckOutcome, AdapterError> {
    match check {
        CheckKind::Sql(s) => sql(pool, s).await,
        CheckKind::RowCounts(r) => {
            let want = Manifest::parse(&read_input(cx, &r.manifest)?).map_err(AdapterError::Check)?;
            let present: std::collections::BTreeSet<String> = mtruth::tables(pool, scope)
                .await
                .map_err(|e| sql_err("cannot list the tables", e))?
                .into_iter()
                .map(|(db, t)| scope.key(&db, &t))
                .collect();
            let mut now = Manifest::default();
            for name in want.tables.keys().filter(|n| present.contains(*n)) {
                let (db, t) = scope.resolve(name);
                let rows =
                    mtruth::count(pool, &db, &t).await.map_err(|e| sql_err(&format!("cannot count {name}"), e))?;
                now.tables.insert(name.clone(), truth::TableTruth { rows, digest: String::new() });
            }
            Ok(truth::compare_counts(&want, &now, r.tolerance))
        }
        CheckKind::Schema(s) => {
            let want = Manifest::parse(&read_input(cx, &s.expected)?).map_err(AdapterError::Check)?;
            let now = Manifest {
                schema: mtruth::schema(pool, scope).await.map_err(|e| sql_err("cannot read the schema", e))?,
                ..Manifest::default()
            };
            Ok(truth::compare_schema(&want, &now))
        }
        CheckKind::TableChecksum(t) => {
            let want = Manifest::parse(&read_input(cx, &t.manifest)?).map_err(AdapterError::Check)?;
            let (db, table) = scope.resolve(&t.table);
            let got = mtruth::table_digest(pool, &db, &table)
                .await
                .map_err(|e| sql_err(&format!("cannot digest {}", t.table), e))?;
            truth::compare_table(&t.manifest, &want, &t.table, &got).map_err(AdapterError::Check)
        }
        CheckKind::CheckTables(c) => check_tables(pool, scope, c).await,
        other => Err(AdapterError::Unsupported(format!("adapter `mariadb` cannot evaluate `{}` checks", other.name()))),
    }
}

/// The first column of the first row, as text (numbers and decimals too).
async fn sql(pool: &MySqlPool, s: &SqlCheck) -> Result<CheckOutcome, AdapterError> {
    let q = s.sql.trim().trim_end_matches(';');
    let first = sqlx::query(AssertSqlSafe(format!("select * from ({q}) q limit 1")))
        .fetch_optional(pool)
        .await
        .map_err(|e| sql_err("query failed", e))?;
    let Some(first) = first else {
        return Ok(CheckOutcome {
            passed: false,
            observed: json!(null),
            expected: json!(s.expect.raw()),
            detail: "the query returned no row".into(),
        });
    };
    let column = first.columns().first().map(|c| c.name().to_string()).unwrap_or_default();
    let text: Option<String> =
        sqlx::query_scalar(AssertSqlSafe(format!("select cast(q.{} as char) from ({q}) q limit 1", ident(&column))))
            .fetch_one(pool)
            .await
            .map_err(|e| sql_err("query failed", e))?;
    let text = text.unwrap_or_else(|| "NULL".into());
    let observed = match text.parse::<i64>() {
        Ok(n) => Some(json!(n)),
        Err(_) => text.parse::<f64>().ok().and_then(|n| serde_json::Number::from_f64(n).map(serde_json::Value::Number)),
    };
    Ok(CheckOutcome {
        passed: s.expect.get().matches(&text),
        observed: observed.unwrap_or_else(|| json!(text)),
        expected: json!(s.expect.raw()),
        detail: String::new(),
    })
}

/// The first column of every row of `sql`, as text (NULL as `NULL`), streamed: a coherence
/// check's value set. Returns how many rows.
pub async fn values(pool: &MySqlPool, sql: &str, each: &mut (dyn FnMut(String) + Send)) -> Result<u64, AdapterError> {
    let q = sql.trim().trim_end_matches(';');
    let first = sqlx::query(AssertSqlSafe(format!("select * from ({q}) q limit 1")))
        .fetch_optional(pool)
        .await
        .map_err(|e| sql_err("query failed", e))?;
    let Some(column) = first.and_then(|r| r.columns().first().map(|c| c.name().to_string())) else {
        return Ok(0);
    };
    let text = format!("select cast(q.{} as char) from ({q}) q", ident(&column));
    let mut rows = sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(text)).fetch(pool);
    let mut n = 0;
    while let Some(v) = futures_util::TryStreamExt::try_next(&mut rows).await.map_err(|e| sql_err("query failed", e))? {
        each(v.unwrap_or_else(|| "NULL".into()));
        n += 1;
    }
    Ok(n)
}

/// `CHECK TABLE … EXTENDED` on every table of the scope (or the named ones).
async fn check_tables(pool: &MySqlPool, scope: &Scope, c: &CheckTablesCheck) -> Result<CheckOutcome, AdapterError> {
    let all = mtruth::tables(pool, scope).await.map_err(|e| sql_err("cannot list the tables", e))?;
    let tables: Vec<(String, String)> =
        if c.tables.is_empty() { all } else { c.tables.iter().map(|t| scope.resolve(t)).collect() };
    let mut problems = Vec::new();
    for (db, t) in &tables {
        let name = scope.key(db, t);
        let rows = sqlx::raw_sql(AssertSqlSafe(format!("check table {}.{} extended", ident(db), ident(t))))
            .fetch_all(pool)
            .await
            .map_err(|e| sql_err(&format!("CHECK TABLE {name}"), e))?;
        for r in rows {
            let kind: String = r.try_get(2).unwrap_or_default();
            let text: String = r.try_get(3).unwrap_or_default();
            let fine = (kind == "status" && text == "OK") || kind == "note" || kind == "info";
            if !fine {
                problems.push(format!("{name}: {kind}: {text}"));
            }
        }
    }
    Ok(CheckOutcome {
        passed: problems.is_empty(),
        observed: json!({"tables": tables.len(), "not_ok": problems.len()}),
        expected: json!({"tables": tables.len(), "not_ok": 0}),
        detail: if problems.is_empty() {
            format!("CHECK TABLE … EXTENDED: {} tables OK", tables.len())
        } else {
            problems.into_iter().take(10).collect::<Vec<_>>().join("; ")
        },
    })
}
