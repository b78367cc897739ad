//! Ground truth of a SQLite database: row counts, order-independent table digests and the
//! schema, in the shared [`Manifest`] shape.

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
// Identifiers are quoted with `ident`/`quote_literal`; the tables come from the database itself.
use sqlx::{AssertSqlSafe, SqlitePool};

use crate::manifest::{Manifest, TableTruth};
use crate::sql::ident;

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
    // Row by row: a table of any size in the memory of one row.
    let sql = format!("select {expr} from {}", ident(table));
    let mut rows = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).fetch(pool);
    let (mut sum, mut count): (u128, u64) = (0, 0);
    while let Some(r) = rows.try_next().await? {
        let h = Sha256::digest(r.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&h[..16]);
        sum = sum.wrapping_add(u128::from_le_bytes(first));
        count += 1;
    }
    Ok(TableTruth { rows: count, digest: format!("{sum:032x}") })
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
