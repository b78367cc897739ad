//! The checks a restored PostgreSQL database answers: SQL, manifests, and pgvector
//! integrity and recall, computed by the server where it can.

use drillbook_runbooks::CheckKind;
use serde_json::json;
// Runbook SQL runs against the drill's private copy; identifiers are quoted or resolved
// through `regclass`.
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::manifest::{Search, schema, table_digest, vector_type};
use crate::manifest::{self as truth, Manifest};
use crate::sql::{check_error as sql_err, ident};
use crate::vectors::{RecallSummary, parse_golden, recall};
use crate::{AdapterError, CheckOutcome, DrillCx, read_input};

pub async fn run(cx: &DrillCx, pool: &PgPool, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
    match check {
        CheckKind::Sql(s) => {
            // The first column of the first row, as JSON, whatever its type (numeric too).
            let q = s.sql.trim().trim_end_matches(';');
            let wrapped = format!("select (select row_to_json(q) from ({q}) q limit 1)::text");
            let row: Option<String> = sqlx::query_scalar(AssertSqlSafe(wrapped))
                .fetch_one(pool)
                .await
                .map_err(|e| sql_err("query failed", e))?;
            let first = row
                .and_then(|r| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&r).ok())
                .and_then(|m| m.into_iter().next().map(|(_, v)| v));
            let Some(value) = first else {
                return Ok(CheckOutcome {
                    passed: false,
                    observed: json!(null),
                    expected: json!(s.expect.raw()),
                    detail: "the query returned no row".into(),
                });
            };
            let text = match &value {
                serde_json::Value::String(t) => t.clone(),
                serde_json::Value::Null => "NULL".into(),
                other => other.to_string(),
            };
            Ok(CheckOutcome {
                passed: s.expect.get().matches(&text),
                observed: value,
                expected: json!(s.expect.raw()),
                detail: String::new(),
            })
        }
        CheckKind::RowCounts(r) => {
            let m = Manifest::parse(&read_input(cx, &r.manifest)?).map_err(AdapterError::Check)?;
            let mut now = Manifest::default();
            for table in m.tables.keys() {
                match count(pool, table).await {
                    Ok(rows) => {
                        now.tables.insert(table.clone(), truth::TableTruth { rows, digest: String::new() });
                    }
                    Err(e) if is_missing_relation(&e) => {}
                    Err(e) => return Err(sql_err(&format!("cannot count {table}"), e)),
                }
            }
            Ok(truth::compare_counts(&m, &now, r.tolerance))
        }
        CheckKind::Schema(s) => {
            let m = Manifest::parse(&read_input(cx, &s.expected)?).map_err(AdapterError::Check)?;
            let now = Manifest {
                schema: schema(pool).await.map_err(|e| sql_err("cannot read the schema", e))?,
                ..Manifest::default()
            };
            Ok(truth::compare_schema(&m, &now))
        }
        CheckKind::TableChecksum(t) => {
            let m = Manifest::parse(&read_input(cx, &t.manifest)?).map_err(AdapterError::Check)?;
            let key = manifest_key(&m, &t.table);
            let got = match table_digest(pool, &key).await {
                Ok(g) => g,
                Err(e) if is_missing_relation(&e) => {
                    return Ok(CheckOutcome {
                        passed: false,
                        observed: json!(null),
                        expected: json!(m.tables.get(&key).map(|w| json!({"rows": w.rows, "digest": w.digest}))),
                        detail: format!("table {} is missing", t.table),
                    });
                }
                Err(e) => return Err(sql_err("cannot digest the table", e)),
            };
            truth::compare_table(&t.manifest, &m, &key, &got).map_err(AdapterError::Check)
        }
        CheckKind::VectorIntegrity(v) => {
            let table = resolve(pool, v.table.as_deref()).await?;
            let vtype = vector_type(pool, &table, v.column()).await.map_err(|e| sql_err("no such column", e))?;
            let (dims, norm) = match vtype.rsplit('.').next().unwrap_or_default() {
                "vector" => ("vector_dims(c)", "vector_norm(c)"),
                "halfvec" => ("vector_dims(c)", "l2_norm(c)"),
                "real[]" | "double precision[]" => {
                    ("cardinality(c)", "(select sqrt(sum(x::float8 * x::float8)) from unnest(c) x)")
                }
                other => {
                    return Err(AdapterError::Check(format!(
                        "{table}.{} is `{other}`; vector_integrity reads pgvector `vector`/`halfvec` or real arrays",
                        v.column()
                    )));
                }
            };
            let range = match (v.min_norm, v.max_norm) {
                (None, None) => "false".to_string(),
                (lo, hi) => format!(
                    "n < {} or n > {}",
                    lo.map(|x| x.to_string()).unwrap_or("'-Infinity'".into()),
                    hi.map(|x| x.to_string()).unwrap_or("'Infinity'".into())
                ),
            };
            let sql = format!(
                "select count(*), count(*) filter (where c is null), \
                 count(*) filter (where c is not null and d <> {dim}), \
                 count(*) filter (where d = {dim} and (n = 'NaN' or n = 'Infinity')), \
                 count(*) filter (where d = {dim} and n <> 'NaN' and n <> 'Infinity' and ({range})) \
                 from (select c, {dims} as d, {norm}::float8 as n from (select {col} as c from {table}) s) v",
                dim = v.dim,
                col = ident(v.column())
            );
            let row =
                sqlx::query(AssertSqlSafe(sql)).fetch_one(pool).await.map_err(|e| sql_err("cannot read vectors", e))?;
            let get = |i| row.try_get::<i64, _>(i).unwrap_or(0) as u64;
            let (vectors, nulls, wrong_dim, non_finite, out_of_range) = (get(0), get(1), get(2), get(3), get(4));
            let bad = nulls + wrong_dim + non_finite + out_of_range;
            Ok(CheckOutcome {
                passed: bad == 0 && vectors > 0,
                observed: json!({"vectors": vectors, "null": nulls, "wrong_dim": wrong_dim, "non_finite": non_finite,
                                 "norm_out_of_range": out_of_range}),
                expected: json!({"dim": v.dim, "bad": 0, "min_norm": v.min_norm, "max_norm": v.max_norm}),
                detail: if vectors == 0 {
                    "the table holds no vector".into()
                } else {
                    format!("{bad} of {vectors} vectors bad ({vtype} column, checked by the server)")
                },
            })
        }
        CheckKind::VectorRecall(v) => {
            let table = resolve(pool, v.table.as_deref()).await?;
            let queries = parse_golden(&read_input(cx, &v.queries)?).map_err(AdapterError::Check)?;
            let vtype = vector_type(pool, &table, v.column()).await.map_err(|e| sql_err("no such column", e))?;
            let base = vtype.rsplit('.').next().unwrap_or_default().to_string();
            if base != "vector" && base != "halfvec" {
                return Err(AdapterError::Check(format!(
                    "{table}.{} is `{vtype}`; vector_recall on postgres needs a pgvector `vector` or `halfvec` column",
                    v.column()
                )));
            }
            let search = Search {
                table: &table,
                column: v.column(),
                id: v.id(),
                vtype: &vtype,
                metric: v.metric.unwrap_or_default(),
                k: v.k,
            };
            let mut conn = pool.acquire().await.map_err(|e| sql_err("no connection", e))?;
            // HNSW returns at most ef_search rows; a k above the default would read as lost recall.
            if v.k > 40 {
                let _ = sqlx::query(AssertSqlSafe(format!("set hnsw.ef_search = {}", v.k))).execute(&mut *conn).await;
            }
            let index =
                search.index_used(&mut conn, &queries[0].vector).await.map_err(|e| sql_err("explain failed", e))?;
            let mut per_query = Vec::new();
            let mut agreement = Vec::new();
            for q in &queries {
                let ann = search.top_k(&mut conn, &q.vector, false).await.map_err(|e| sql_err("query failed", e))?;
                per_query.push((q.id.clone(), recall(&q.expected_ids(), &ann, v.k as usize)));
                if index.is_some() {
                    let exact =
                        search.top_k(&mut conn, &q.vector, true).await.map_err(|e| sql_err("query failed", e))?;
                    agreement.push((q.id.clone(), recall(&exact, &ann, v.k as usize)));
                }
            }
            let summary = RecallSummary::new(per_query);
            let agree = (!agreement.is_empty()).then(|| RecallSummary::new(agreement));
            let passed = summary.mean >= v.min_recall && agree.as_ref().is_none_or(|a| a.mean >= v.min_recall);
            let round = |x: f64| (x * 10000.0).round() / 10000.0;
            let worst: Vec<_> =
                summary.per_query.iter().take(10).map(|(q, r)| json!({"query": q, "recall": round(*r)})).collect();
            Ok(CheckOutcome {
                passed,
                observed: json!({
                    "recall": round(summary.mean),
                    "index_agreement": agree.as_ref().map(|a| round(a.mean)),
                    "index": index,
                    "worst": worst,
                }),
                expected: json!({"recall": format!(">= {}", v.min_recall),
                                 "index_agreement": format!(">= {}", v.min_recall)}),
                detail: match (&index, &agree) {
                    (Some(ix), Some(a)) => format!(
                        "through index {ix}; {}; the index agrees with an exact scan at {:.4} (worst: {})",
                        summary.detail(v.k as usize),
                        a.mean,
                        a.per_query.iter().take(3).map(|(q, r)| format!("{q}={r:.2}")).collect::<Vec<_>>().join(", ")
                    ),
                    _ => format!("no ANN index used (exact scan); {}", summary.detail(v.k as usize)),
                },
            })
        }
        other => Err(AdapterError::Unsupported(format!("postgres cannot evaluate `{}`", other.name()))),
    }
}

async fn resolve(pool: &PgPool, table: Option<&str>) -> Result<String, AdapterError> {
    let table = table.ok_or_else(|| AdapterError::Check("needs `table`".into()))?;
    sqlx::query_scalar("select $1::regclass::text")
        .bind(table)
        .fetch_one(pool)
        .await
        .map_err(|e| sql_err(&format!("no table {table}"), e))
}

async fn count(pool: &PgPool, table: &str) -> Result<u64, sqlx::Error> {
    let name: String = sqlx::query_scalar("select $1::regclass::text").bind(table).fetch_one(pool).await?;
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {name}"))).fetch_one(pool).await?;
    Ok(n as u64)
}

/// `docs` in a runbook finds `public.docs` in a manifest.
fn manifest_key(m: &Manifest, table: &str) -> String {
    if m.tables.contains_key(table) {
        table.to_string()
    } else if m.tables.contains_key(&format!("public.{table}")) {
        format!("public.{table}")
    } else {
        table.to_string()
    }
}

fn is_missing_relation(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P01")
}
