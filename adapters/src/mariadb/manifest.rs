//! Ground truth of a MariaDB/MySQL database, computed by the server (the same on the source at
//! backup time and on the restored copy): row counts, order-independent table digests that
//! compare across server versions (`QUOTE()` of every column, MD5 per row, summed — not
//! `CHECKSUM TABLE`, whose value changes with the row format), and the schema from
//! `information_schema`.

use sqlx::{AssertSqlSafe, MySqlPool, Row};

use crate::manifest::{Manifest, TableTruth};

/// Quotes an identifier with backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Which databases a manifest or a check covers, and how their tables are named in it: bare
/// (`docs`) for one database, `db.docs` for several.
#[derive(Debug, Clone)]
pub struct Scope {
    pub databases: Vec<String>,
}

impl Scope {
    pub fn single(&self) -> bool {
        self.databases.len() == 1
    }

    /// The manifest's name of `table` in `db`.
    pub fn key(&self, db: &str, table: &str) -> String {
        if self.single() { table.to_string() } else { format!("{db}.{table}") }
    }

    /// `(database, table)` of a manifest or runbook name.
    pub fn resolve(&self, name: &str) -> (String, String) {
        match name.split_once('.') {
            Some((db, t)) if !self.single() => (db.to_string(), t.to_string()),
            _ => (self.databases.first().cloned().unwrap_or_default(), name.to_string()),
        }
    }

    fn in_list(&self) -> String {
        self.databases.iter().map(|d| format!("'{}'", d.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
    }
}

/// The databases a server holds besides its own (`mysql`, `sys`, the schemas).
pub async fn user_databases(pool: &MySqlPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select cast(schema_name as char) from information_schema.schemata \
         where schema_name not in ('mysql', 'sys', 'information_schema', 'performance_schema') order by 1",
    )
    .fetch_all(pool)
    .await
}

/// Base tables of the scope, `(database, table)`.
pub async fn tables(pool: &MySqlPool, scope: &Scope) -> Result<Vec<(String, String)>, sqlx::Error> {
    let q = format!(
        "select cast(table_schema as char), cast(table_name as char) from information_schema.tables \
         where table_type = 'BASE TABLE' and table_schema in ({}) order by 1, 2",
        scope.in_list()
    );
    sqlx::query_as(AssertSqlSafe(q)).fetch_all(pool).await
}

pub async fn count(pool: &MySqlPool, db: &str, table: &str) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {}.{}", ident(db), ident(table))))
        .fetch_one(pool)
        .await?;
    Ok(n as u64)
}

/// Rows and the order-independent digest of one table.
pub async fn table_digest(pool: &MySqlPool, db: &str, table: &str) -> Result<TableTruth, sqlx::Error> {
    let columns: Vec<String> = sqlx::query_scalar(
        "select cast(column_name as char) from information_schema.columns \
         where table_schema = ? and table_name = ? order by ordinal_position",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await?;
    let row = columns.iter().map(|c| format!("quote({})", ident(c))).collect::<Vec<_>>().join(", ");
    let half =
        |from: u32| format!("cast(coalesce(sum(cast(conv(substring(h, {from}, 16), 16, 10) as unsigned)), 0) as char)");
    let q = format!(
        "select count(*), {}, {} from (select md5(concat_ws(',', {row})) h from {}.{}) x",
        half(1),
        half(17),
        ident(db),
        ident(table)
    );
    let r = sqlx::query(AssertSqlSafe(q)).fetch_one(pool).await?;
    let rows: i64 = r.try_get(0)?;
    let (a, b): (String, String) = (r.try_get(1)?, r.try_get(2)?);
    Ok(TableTruth { rows: rows as u64, digest: format!("{a}-{b}") })
}

/// The schema as lines: tables, columns with types, indexes, foreign keys, views, triggers,
/// routines. Names are the scope's (bare for one database).
pub async fn schema(pool: &MySqlPool, scope: &Scope) -> Result<Vec<String>, sqlx::Error> {
    let within = scope.in_list();
    let mut lines = Vec::new();
    let key = |db: &str, t: &str| scope.key(db, t);
    let columns: Vec<(String, String, String, String, String, Option<String>)> =
        sqlx::query_as(AssertSqlSafe(format!(
            "select cast(c.table_schema as char), cast(c.table_name as char), cast(c.column_name as char), \
         cast(c.column_type as char), cast(c.is_nullable as char), cast(c.column_default as char) \
         from information_schema.columns c join information_schema.tables t \
           on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE' \
         where c.table_schema in ({within}) order by 1, 2, c.ordinal_position"
        )))
        .fetch_all(pool)
        .await?;
    let mut seen_tables = std::collections::BTreeSet::new();
    for (db, t, c, ty, nullable, default) in columns {
        if seen_tables.insert((db.clone(), t.clone())) {
            lines.push(format!("table {}", key(&db, &t)));
        }
        let not_null = if nullable == "NO" { " not null" } else { "" };
        let default = default.map(|d| format!(" default {d}")).unwrap_or_default();
        lines.push(format!("column {}.{c}: {ty}{not_null}{default}", key(&db, &t)));
    }
    let indexes: Vec<(String, String, String, i64, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select cast(table_schema as char), cast(table_name as char), cast(index_name as char), \
         cast(min(non_unique) as signed), \
         cast(group_concat(column_name order by seq_in_index separator ', ') as char) \
         from information_schema.statistics where table_schema in ({within}) group by 1, 2, 3 order by 1, 2, 3"
    )))
    .fetch_all(pool)
    .await?;
    for (db, t, name, non_unique, cols) in indexes {
        let unique = if non_unique == 0 { "unique " } else { "" };
        lines.push(format!("{unique}index {}.{name} ({cols})", key(&db, &t)));
    }
    let fks: Vec<(String, String, String, String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select cast(table_schema as char), cast(table_name as char), cast(constraint_name as char), \
         cast(group_concat(column_name order by ordinal_position separator ', ') as char), \
         cast(max(referenced_table_name) as char), \
         cast(group_concat(referenced_column_name order by ordinal_position separator ', ') as char) \
         from information_schema.key_column_usage \
         where table_schema in ({within}) and referenced_table_name is not null group by 1, 2, 3 order by 1, 2, 3"
    )))
    .fetch_all(pool)
    .await?;
    for (db, t, name, cols, rt, rcols) in fks {
        lines.push(format!("foreign key {}.{name} ({cols}) references {rt} ({rcols})", key(&db, &t)));
    }
    let views: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select cast(table_schema as char), cast(table_name as char) from information_schema.views \
         where table_schema in ({within}) order by 1, 2"
    )))
    .fetch_all(pool)
    .await?;
    lines.extend(views.into_iter().map(|(db, v)| format!("view {}", key(&db, &v))));
    let triggers: Vec<(String, String, String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select cast(trigger_schema as char), cast(event_object_table as char), cast(trigger_name as char), \
         cast(action_timing as char), cast(event_manipulation as char) from information_schema.triggers \
         where trigger_schema in ({within}) order by 1, 2, 3"
    )))
    .fetch_all(pool)
    .await?;
    for (db, t, name, timing, event) in triggers {
        lines.push(format!("trigger {}.{name}: {} {}", key(&db, &t), timing.to_lowercase(), event.to_lowercase()));
    }
    let routines: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select cast(routine_schema as char), cast(routine_name as char), cast(routine_type as char) \
         from information_schema.routines where routine_schema in ({within}) order by 1, 2"
    )))
    .fetch_all(pool)
    .await?;
    for (db, name, kind) in routines {
        lines.push(format!("{} {}", kind.to_lowercase(), key(&db, &name)));
    }
    Ok(lines)
}

/// The whole manifest of the scope.
pub async fn capture(pool: &MySqlPool, scope: &Scope) -> Result<Manifest, sqlx::Error> {
    let mut m = Manifest::default();
    for (db, t) in tables(pool, scope).await? {
        m.tables.insert(scope.key(&db, &t), table_digest(pool, &db, &t).await?);
    }
    m.schema = schema(pool, scope).await?;
    Ok(m)
}
