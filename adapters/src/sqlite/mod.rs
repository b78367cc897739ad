//! `adapter: sqlite` — a SQLite database restored as the drill's own copy.
//!
//! The unpacked file *is* the scratch copy (it lives in the drill's private folder), so
//! restore costs no extra copy: it opens it, runs `PRAGMA integrity_check`, and the checks
//! query it. Teardown closes it; the runner removes the folder.

mod manifest;

use std::path::PathBuf;

use drillbook_runbooks::{Check, CheckKind, Metric, SqliteOptions, StoreQuery, VectorEncoding};
use futures_util::TryStreamExt;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
// Queries are the runbook author's own, run against the drill's private copy.
use sqlx::{AssertSqlSafe, Row, SqlitePool};

pub use manifest::capture;

use crate::manifest::{self as truth, Manifest};
use crate::sql::{check_error as sql_err, ident};
use crate::vectors::{Integrity, RecallSummary, TopK, parse_golden, recall};
use crate::{AdapterError, CheckOutcome, DrillCx, RestoreOutcome, Scratch, Teardown, Unpacked, read_input};

pub struct Sqlite {
    options: SqliteOptions,
}

impl Sqlite {
    pub fn new(options: SqliteOptions) -> Self {
        Sqlite { options }
    }
}

struct State {
    file: PathBuf,
    pool: Option<SqlitePool>,
}

fn pool(scratch: &Scratch) -> Result<&SqlitePool, AdapterError> {
    scratch
        .state
        .downcast_ref::<State>()
        .and_then(|s| s.pool.as_ref())
        .ok_or_else(|| AdapterError::Check("the database was not restored".into()))
}

pub async fn open(file: &std::path::Path, read_only: bool) -> Result<SqlitePool, sqlx::Error> {
    let opts = SqliteConnectOptions::new().filename(file).create_if_missing(false).read_only(read_only);
    crate::sql::no_maintenance(SqlitePoolOptions::new().max_connections(1)).connect_with(opts).await
}

#[async_trait::async_trait]
impl crate::Adapter for Sqlite {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn supports(&self, check: &CheckKind) -> bool {
        crate::sql::answers(check)
    }

    fn explain_restore(&self, backup: &str) -> Vec<String> {
        let file = self.options.file.as_deref().unwrap_or("<the unpacked file>");
        vec![
            format!("Copy `{file}` from the unpacked {backup} into a scratch folder nobody else uses."),
            format!("Check it: `sqlite3 {file} 'PRAGMA integrity_check'` must print `ok`."),
        ]
    }

    fn explain_check(&self, check: &Check) -> String {
        let file = self.options.file.as_deref().unwrap_or("DB");
        match &check.check {
            CheckKind::Sql(s) => format!("`sqlite3 {file} \"{}\"` must print a value {}", s.sql, s.expect.raw()),
            CheckKind::RowCounts(r) => {
                format!("Count the rows of every table listed in `{}` (tolerance {}).", r.manifest, r.tolerance)
            }
            CheckKind::Schema(s) => format!("Compare `sqlite3 {file} .schema` with the snapshot `{}`.", s.expected),
            CheckKind::TableChecksum(t) => {
                format!("Digest the rows of `{}` and compare with `{}`.", t.table, t.manifest)
            }
            CheckKind::VectorIntegrity(v) => format!(
                "Every `{}` of `{}` decodes to {} finite values (no NULL, no NaN).",
                v.column(),
                v.table.as_deref().unwrap_or("?"),
                v.dim
            ),
            CheckKind::VectorRecall(v) => format!(
                "Run the golden queries of `{}` as exact top-{} searches on `{}`; mean recall must be ≥ {}.",
                v.queries,
                v.k,
                v.table.as_deref().unwrap_or("?"),
                v.min_recall
            ),
            other => format!("`{}` check", other.name()),
        }
    }

    async fn provision(&self, _cx: &DrillCx, backup: &Unpacked) -> Result<Scratch, AdapterError> {
        let file = backup.file(self.options.file.as_deref())?;
        let mut head = [0u8; 16];
        use std::io::Read;
        let read = std::fs::File::open(&file).and_then(|mut f| f.read_exact(&mut head));
        if read.is_err() || &head != b"SQLite format 3\0" {
            return Err(AdapterError::Provision(format!(
                "`{}` is not a SQLite database (bad header)",
                file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            )));
        }
        Ok(Scratch {
            url: format!("sqlite://{}", file.display()),
            dir: backup.root.clone(),
            created: vec![format!("scratch copy {}", file.display())],
            state: Box::new(State { file, pool: None }),
        })
    }

    async fn restore(
        &self,
        cx: &DrillCx,
        scratch: &mut Scratch,
        _backup: &Unpacked,
    ) -> Result<RestoreOutcome, AdapterError> {
        let state = scratch
            .state
            .downcast_mut::<State>()
            .ok_or_else(|| AdapterError::Restore("scratch is not a SQLite scratch".into()))?;
        cx.parts.begin("restore.integrity", "PRAGMA integrity_check");
        let pool = open(&state.file, false)
            .await
            .map_err(|e| AdapterError::Restore(format!("cannot open the database: {e}")))?;
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&pool)
            .await
            .map_err(|e| AdapterError::Restore(format!("PRAGMA integrity_check failed: {e}")))?;
        cx.parts.end(std::fs::metadata(&state.file).map(|m| m.len()).ok());
        state.pool = Some(pool);
        if rows != ["ok"] {
            return Err(AdapterError::Restore(format!(
                "PRAGMA integrity_check: {}",
                rows.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            )));
        }
        let tables: i64 =
            sqlx::query_scalar("select count(*) from sqlite_master where type = 'table' and name not like 'sqlite_%'")
                .fetch_one(state.pool.as_ref().ok_or_else(|| AdapterError::Restore("no pool".into()))?)
                .await
                .map_err(|e| AdapterError::Restore(e.to_string()))?;
        Ok(RestoreOutcome::new(format!("{tables} tables; PRAGMA integrity_check: ok")))
    }

    fn answers(&self) -> &'static [&'static str] {
        &["sql"]
    }

    async fn values(
        &self,
        _cx: &DrillCx,
        scratch: &Scratch,
        query: StoreQuery<'_>,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, AdapterError> {
        let StoreQuery::Sql(sql) = query else {
            return Err(crate::unanswered("sqlite", query));
        };
        let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(pool(scratch)?);
        let mut n = 0;
        while let Some(row) = rows.try_next().await.map_err(|e| sql_err("query failed", e))? {
            each(scalar_text(&row, 0)?);
            n += 1;
        }
        Ok(n)
    }

    async fn check(&self, cx: &DrillCx, scratch: &Scratch, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
        let pool = pool(scratch)?;
        match check {
            CheckKind::Sql(s) => {
                let row = sqlx::query(AssertSqlSafe(s.sql.as_str()))
                    .fetch_optional(pool)
                    .await
                    .map_err(|e| sql_err("query failed", e))?;
                let observed = match row {
                    None => {
                        return Ok(CheckOutcome {
                            passed: false,
                            observed: json!(null),
                            expected: json!(s.expect.raw()),
                            detail: "the query returned no row".into(),
                        });
                    }
                    Some(r) => scalar_text(&r, 0)?,
                };
                Ok(CheckOutcome {
                    passed: s.expect.get().matches(&observed),
                    observed: observed
                        .parse::<i64>()
                        .map(|n| json!(n))
                        .or_else(|_| observed.parse::<f64>().map(|n| json!(n)))
                        .unwrap_or(json!(observed)),
                    expected: json!(s.expect.raw()),
                    detail: String::new(),
                })
            }
            CheckKind::RowCounts(r) => {
                let m = Manifest::parse(&read_input(cx, &r.manifest)?).map_err(AdapterError::Check)?;
                let now = capture(pool).await.map_err(|e| sql_err("cannot count rows", e))?;
                Ok(truth::compare_counts(&m, &now, r.tolerance))
            }
            CheckKind::Schema(s) => {
                let m = Manifest::parse(&read_input(cx, &s.expected)?).map_err(AdapterError::Check)?;
                let now = capture(pool).await.map_err(|e| sql_err("cannot read the schema", e))?;
                Ok(truth::compare_schema(&m, &now))
            }
            CheckKind::TableChecksum(t) => {
                let m = Manifest::parse(&read_input(cx, &t.manifest)?).map_err(AdapterError::Check)?;
                let got =
                    manifest::table_digest(pool, &t.table).await.map_err(|e| sql_err("cannot digest the table", e))?;
                truth::compare_table(&t.manifest, &m, &t.table, &got).map_err(AdapterError::Check)
            }
            CheckKind::VectorIntegrity(v) => {
                let table = v.table.as_deref().ok_or_else(|| AdapterError::Check("needs `table`".into()))?;
                let encoding = v.encoding.unwrap_or(VectorEncoding::F32le);
                let sql = format!("select {} from {}", ident(v.column()), ident(table));
                // Row by row: a store of any size in the memory of one vector.
                let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(pool);
                let mut counts = Integrity::default();
                while let Some(row) = rows.try_next().await.map_err(|e| sql_err("cannot read vectors", e))? {
                    let raw = raw_bytes(&row, 0)?;
                    counts.add(raw.as_deref(), encoding, v.dim, v.min_norm, v.max_norm);
                }
                Ok(CheckOutcome {
                    passed: counts.bad() == 0 && counts.vectors > 0,
                    observed: serde_json::to_value(&counts).unwrap_or_default(),
                    expected: json!({"dim": v.dim, "bad": 0, "min_norm": v.min_norm, "max_norm": v.max_norm}),
                    detail: if counts.vectors == 0 {
                        "the table holds no vector".into()
                    } else {
                        format!("{} of {} vectors bad", counts.bad(), counts.vectors)
                    },
                })
            }
            CheckKind::VectorRecall(v) => {
                let table = v.table.as_deref().ok_or_else(|| AdapterError::Check("needs `table`".into()))?;
                let queries = parse_golden(&read_input(cx, &v.queries)?).map_err(AdapterError::Check)?;
                let encoding = v.encoding.unwrap_or(VectorEncoding::F32le);
                let k = v.k as usize;
                let metric = v.metric.unwrap_or_default();
                let vectors = queries.iter().map(|q| q.vector.clone()).collect();
                let pages = VectorPages::new(pool, table, v.column(), v.id(), encoding);
                let (_, found) = exact_top_k(pages, metric, k, vectors).await?;
                let per_query = queries
                    .iter()
                    .zip(&found)
                    .map(|(q, got)| (q.id.clone(), recall(&q.expected_ids(), got, k)))
                    .collect();
                let summary = RecallSummary::new(per_query);
                Ok(CheckOutcome {
                    passed: summary.mean >= v.min_recall,
                    observed: json!((summary.mean * 10000.0).round() / 10000.0),
                    expected: json!(format!(">= {}", v.min_recall)),
                    detail: format!("exact scan; {}", summary.detail(k)),
                })
            }
            other => Err(AdapterError::Unsupported(format!("sqlite cannot evaluate `{}`", other.name()))),
        }
    }

    async fn teardown(&self, _cx: &DrillCx, scratch: Scratch, _how: Teardown) -> Result<(), AdapterError> {
        if let Ok(state) = scratch.state.downcast::<State>()
            && let Some(pool) = state.pool
        {
            pool.close().await;
        }
        Ok(())
    }
}

/// The vectors of `table.column` with their `id` as text, a page at a time (those that do not
/// decode left out): what an exact search of a store without a vector index reads
/// (`vector_recall`, and the golden answers `drillbook init` writes), never the whole table in
/// memory.
pub struct VectorPages<'a> {
    rows: futures_util::stream::BoxStream<'a, Result<sqlx::sqlite::SqliteRow, sqlx::Error>>,
    encoding: VectorEncoding,
}

/// Vectors per page: a few MiB of 384-d f32, enough for the matrix product to pay.
const PAGE: usize = 4096;

impl<'a> VectorPages<'a> {
    pub fn new(pool: &'a SqlitePool, table: &str, column: &str, id: &str, encoding: VectorEncoding) -> Self {
        let sql = format!("select {}, {} from {}", ident(id), ident(column), ident(table));
        VectorPages { rows: sqlx::query(AssertSqlSafe(sql)).fetch(pool), encoding }
    }

    /// The next page (ids, vectors); empty at the end.
    pub async fn next(&mut self) -> Result<(Vec<String>, Vec<Vec<f32>>), AdapterError> {
        let (mut ids, mut vectors) = (Vec::with_capacity(PAGE), Vec::with_capacity(PAGE));
        while ids.len() < PAGE {
            let Some(row) = self.rows.try_next().await.map_err(|e| sql_err("cannot read vectors", e))? else {
                break;
            };
            if let Some(raw) = raw_bytes(&row, 1)?
                && let Ok(v) = crate::vectors::decode(&raw, self.encoding)
            {
                ids.push(scalar_text(&row, 0)?);
                vectors.push(v);
            }
        }
        Ok((ids, vectors))
    }
}

/// The exact top-`k` of each query over every page, the next page read while this one is
/// searched on every core. Returns the number of vectors searched and each query's ids,
/// nearest first.
pub async fn exact_top_k(
    mut pages: VectorPages<'_>,
    metric: Metric,
    k: usize,
    queries: Vec<Vec<f32>>,
) -> Result<(u64, Vec<Vec<String>>), AdapterError> {
    let mut top = TopK::new(metric, k, queries);
    let mut read = 0u64;
    let mut page = pages.next().await?;
    while !page.0.is_empty() {
        read += page.0.len() as u64;
        let search = tokio::task::spawn_blocking(move || {
            top.add_page(&page.0, &page.1);
            top
        });
        let (searched, next) = tokio::join!(search, pages.next());
        top = searched.map_err(|e| AdapterError::Check(format!("the exact search stopped: {e}")))?;
        page = next?;
    }
    Ok((read, top.finish()))
}

/// Any SQLite value as text (numbers as SQLite prints them).
fn scalar_text(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<String, AdapterError> {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return Ok(v.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into()));
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return Ok(v.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into()));
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return Ok(v.unwrap_or_else(|| "NULL".into()));
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return Ok(v.map(hex::encode).unwrap_or_else(|| "NULL".into()));
    }
    Err(AdapterError::Check(format!("column {i} has a type drillbook cannot read")))
}

fn raw_bytes(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Option<Vec<u8>>, AdapterError> {
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return Ok(v);
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return Ok(v.map(String::into_bytes));
    }
    Ok(Some(scalar_text(row, i)?.into_bytes()))
}
