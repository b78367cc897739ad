//! Ground truth of a PostgreSQL database, read-only: row counts and order-independent
//! digests per table, a schema snapshot (columns, indexes, constraints, extensions), and the
//! exact answers to golden queries.

use drillbook_runbooks::Metric;
// Identifiers are quoted with `ident`; table names come from the catalog itself.
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::manifest::{Manifest, TableTruth};
use crate::sql::ident;
use crate::vectors::GoldenQuery;

/// Schemas that belong to PostgreSQL, not to the application.
const SYSTEM: &str = "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' \
                      and n.nspname not like 'pg_temp%'";

/// Reads counts, digests and the schema of every application table.
pub async fn capture(pool: &PgPool) -> Result<Manifest, sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relkind = 'r' and {SYSTEM} \
         and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e') order by 1"
    )))
    .fetch_all(pool)
    .await?;
    let mut m = Manifest::default();
    for t in tables {
        let truth = table_digest(pool, &t).await?;
        m.tables.insert(t, truth);
    }
    m.schema = schema(pool).await?;
    Ok(m)
}

/// Row count and an order-independent digest: the sum of the first 64 bits of each row's
/// md5 over PostgreSQL's own text form of the row, computed by the server.
pub async fn table_digest(pool: &PgPool, table: &str) -> Result<TableTruth, sqlx::Error> {
    // `table` is either catalog output (`format('%I.%I')`) or a runbook's name, resolved by
    // `regclass` so that it can only name an existing relation.
    let name: String = sqlx::query_scalar("select $1::regclass::text").bind(table).fetch_one(pool).await?;
    let (rows, digest): (i64, String) = sqlx::query_as(AssertSqlSafe(format!(
        "select count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text \
         from {name} t"
    )))
    .fetch_one(pool)
    .await?;
    Ok(TableTruth { rows: rows as u64, digest })
}

/// One line per schema object, stable across dump and restore.
pub async fn schema(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let queries = [
        "select 'extension ' || extname from pg_extension where extname <> 'plpgsql'".to_string(),
        format!(
            "select format('column %I.%I.%I %s%s', n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), \
             case when a.attnotnull then ' not null' else '' end) \
             from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p', 'v', 'm') and a.attnum > 0 and not a.attisdropped and {SYSTEM}"
        ),
        format!(
            "select format('index %I.%I: %s', n.nspname, ci.relname, pg_get_indexdef(i.indexrelid)) \
             from pg_index i join pg_class ci on ci.oid = i.indexrelid join pg_namespace n on n.oid = ci.relnamespace \
             where {SYSTEM}"
        ),
        format!(
            "select format('constraint %I.%I.%I: %s', n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)) \
             from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace \
             where {SYSTEM}"
        ),
        format!(
            "select format('%s %I.%I', case c.relkind when 'v' then 'view' when 'm' then 'materialized view' \
             else 'sequence' end, n.nspname, c.relname) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('v', 'm', 'S') and {SYSTEM}"
        ),
    ];
    let mut out = Vec::new();
    for q in queries {
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(q)).fetch_all(pool).await?;
        out.extend(rows);
    }
    out.sort();
    Ok(out)
}

/// The pgvector operator for a metric.
pub fn operator(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "<=>",
        Metric::L2 => "<->",
        Metric::Dot => "<#>",
    }
}

/// A nearest-neighbour query on a pgvector column.
pub struct Search<'a> {
    /// Resolved through `regclass`, so already a quoted, existing relation.
    pub table: &'a str,
    pub column: &'a str,
    pub id: &'a str,
    /// `vector` or `halfvec`: the type the query vector is cast to.
    pub vtype: &'a str,
    pub metric: Metric,
    pub k: u32,
}

impl Search<'_> {
    pub fn sql(&self) -> String {
        format!(
            "select {}::text from {} order by {} {} $1::text::{} limit {}",
            ident(self.id),
            self.table,
            ident(self.column),
            operator(self.metric),
            self.vtype,
            self.k
        )
    }

    /// The top-k ids. `exact` forbids index scans, so the answer comes from a full scan;
    /// otherwise sequential scans are off, so an ANN index is used whenever one exists (on a
    /// small or freshly restored table the planner might prefer a scan and hide a broken index).
    pub async fn top_k(
        &self,
        conn: &mut PgConnection,
        vector: &[f32],
        exact: bool,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = sqlx::Connection::begin(conn).await?;
        Self::plan(&mut tx, exact).await?;
        let ids: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(self.sql())).bind(vector_text(vector)).fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        Ok(ids)
    }

    /// The index an ANN query goes through, from `EXPLAIN (FORMAT JSON)`.
    pub async fn index_used(&self, conn: &mut PgConnection, probe: &[f32]) -> Result<Option<String>, sqlx::Error> {
        let mut tx = sqlx::Connection::begin(conn).await?;
        Self::plan(&mut tx, false).await?;
        let plan: serde_json::Value =
            sqlx::query_scalar(AssertSqlSafe(format!("explain (format json) {}", self.sql())))
                .bind(vector_text(probe))
                .fetch_one(&mut *tx)
                .await?;
        tx.rollback().await?;
        fn find(v: &serde_json::Value) -> Option<String> {
            if let Some(name) = v.get("Index Name").and_then(|n| n.as_str()) {
                return Some(name.to_string());
            }
            match v {
                serde_json::Value::Array(a) => a.iter().find_map(find),
                serde_json::Value::Object(o) => o.values().find_map(find),
                _ => None,
            }
        }
        Ok(find(&plan))
    }

    async fn plan(tx: &mut PgConnection, exact: bool) -> Result<(), sqlx::Error> {
        let off: &[&str] = if exact {
            &["enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"]
        } else {
            &["enable_seqscan"]
        };
        for s in off {
            sqlx::query(AssertSqlSafe(format!("set local {s} = off"))).execute(&mut *tx).await?;
        }
        Ok(())
    }
}

/// The base type name of a column (`vector`, `halfvec`, `real[]`, ...).
pub async fn vector_type(pool: &PgPool, table: &str, column: &str) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "select format_type(a.atttypid, null) from pg_attribute a \
         where a.attrelid = $1::regclass and a.attname = $2 and not a.attisdropped",
    )
    .bind(table)
    .bind(column)
    .fetch_optional(pool)
    .await?
    .ok_or(sqlx::Error::ColumnNotFound(format!("{table}.{column}")))
}

pub fn vector_text(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Golden-query answers from the live source: each query's exact top-k ids.
pub async fn golden_answers(
    pool: &PgPool,
    table: &str,
    column: &str,
    id: &str,
    metric: Metric,
    k: u32,
    queries: &[GoldenQuery],
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let table: String = sqlx::query_scalar("select $1::regclass::text").bind(table).fetch_one(pool).await?;
    let vtype = vector_type(pool, &table, column).await?;
    let mut conn = pool.acquire().await?;
    let mut out = Vec::new();
    for q in queries {
        let search = Search { table: &table, column, id, vtype: &vtype, metric, k };
        let ids = search.top_k(&mut conn, &q.vector, true).await?;
        out.push(serde_json::json!({"id": q.id, "vector": q.vector, "expected": ids}));
    }
    Ok(out)
}
