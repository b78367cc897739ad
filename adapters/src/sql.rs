//! What the adapters of SQL databases share: the check kinds a database answers itself,
//! identifier quoting, and how a failed query reads in a check's error.

use drillbook_runbooks::CheckKind;

use crate::AdapterError;

/// The check kinds every SQL database adapter evaluates: queries and table truth.
pub(crate) fn answers_tables(check: &CheckKind) -> bool {
    matches!(check, CheckKind::Sql(_) | CheckKind::RowCounts(_) | CheckKind::Schema(_) | CheckKind::TableChecksum(_))
}

/// [`answers_tables`] and the vector checks on a table (the stores that hold vectors in SQL).
pub(crate) fn answers(check: &CheckKind) -> bool {
    answers_tables(check) || matches!(check, CheckKind::VectorIntegrity(_) | CheckKind::VectorRecall(_))
}

/// Pool options without sqlx's maintenance task. In sqlx 0.9.0 that task can spin forever on
/// a worker thread: a connection released while another is acquired can make the pool's idle
/// count wrap below zero for a moment, and the task's `for _ in 0..num_idle()` then never ends
/// (seen as a `drillbook init` hung at full CPU that SIGTERM could not stop). drillbook's pools
/// are small and their connections need no reaping, so the task is not started at all.
pub fn no_maintenance<DB: sqlx::Database>(options: sqlx::pool::PoolOptions<DB>) -> sqlx::pool::PoolOptions<DB> {
    options.idle_timeout(None).max_lifetime(None)
}

/// Quotes an identifier the SQL-standard way (PostgreSQL and SQLite alike).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A query a check needed failed: the check could not be evaluated.
pub(crate) fn check_error(what: &str, e: sqlx::Error) -> AdapterError {
    AdapterError::Check(format!("{what}: {e}"))
}
