//! The history store: one row per drill, in SQLite (default) or PostgreSQL.
//!
//! **Invariant:** a drill's row is inserted as `running` before the drill touches anything,
//! and updated on every way out, so no drill goes unrecorded.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::TryStreamExt;
use sqlx::{AnyPool, Row};

pub struct History {
    pool: AnyPool,
    /// Bumped by every write of this process, so the ledger knows its view is behind.
    writes: AtomicU64,
}

/// What `/metrics` and the dashboard show of a finished run, kept in its row: the measured
/// RTO, the age of the backup it restored (what the RPO is measured on, with or without an
/// RPO objective) and the checks that did not pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub rto_s: Option<f64>,
    pub rpo_s: Option<f64>,
    pub failed_checks: Option<i64>,
}

impl Figures {
    pub fn of(report: &drillbook_reports::Report) -> Figures {
        Figures {
            rto_s: report.objectives.rto.as_ref().and_then(|o| o.measured_s),
            rpo_s: report.backup.as_ref().and_then(|b| b.rpo_age_seconds()).map(|a| a as f64),
            failed_checks: Some(
                report.checks.iter().filter(|c| c.status != drillbook_reports::CheckStatus::Passed).count() as i64,
            ),
        }
    }

    /// The same from a `report.json` read as JSON (runs recorded before the figures' columns).
    pub fn of_json(report: &serde_json::Value) -> Figures {
        Figures {
            rto_s: report["objectives"]["rto"]["measured_s"].as_f64(),
            rpo_s: report["backup"]["newest_age_seconds"].as_f64().or_else(|| report["backup"]["age_seconds"].as_f64()),
            failed_checks: report["checks"]
                .as_array()
                .map(|c| c.iter().filter(|c| c["status"] != "passed").count() as i64),
        }
    }
}

/// A runbook's report chain, locked (`History::lock_chain`): its head and how many reports
/// it holds. Dropped without `commit`, the chain is left as it was.
pub struct ChainLock {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    runbook: String,
    /// The last committed report: (run id, digest).
    pub head: Option<(String, String)>,
    /// How many reports the chain holds (the next one is `seq + 1`).
    pub seq: u64,
}

impl ChainLock {
    /// Makes `run_id` (its report's digest) the head, as report `seq + 1`, and unlocks.
    pub async fn commit(mut self, run_id: &str, sha256: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE chain_heads SET run_id = $1, sha256 = $2, seq = seq + 1 WHERE runbook = $3")
            .bind(run_id)
            .bind(sha256)
            .bind(&self.runbook)
            .execute(&mut *self.tx)
            .await
            .context("cannot advance the report chain")?;
        self.tx.commit().await.context("cannot advance the report chain")
    }
}

/// A run as the ledger folds it (`History::fold_runs`).
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub run_id: String,
    pub runbook: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub report: Option<String>,
    /// `None` for a run recorded before the figures' columns.
    pub figures: Option<Figures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub runbook: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub scheduled_for: Option<String>,
    pub report: Option<String>,
    pub failure_reasons: Vec<String>,
    pub notification: Option<String>,
}

impl RunRow {
    /// A row of `runs` read with the columns `RunRow` has.
    fn of(r: &sqlx::any::AnyRow) -> anyhow::Result<RunRow> {
        let reasons: Option<String> = r.try_get("failure_reasons")?;
        Ok(RunRow {
            run_id: r.try_get("run_id")?,
            runbook: r.try_get("runbook")?,
            status: r.try_get("status")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            scheduled_for: r.try_get("scheduled_for")?,
            report: r.try_get("report")?,
            failure_reasons: reasons.and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok()).unwrap_or_default(),
            notification: r.try_get("notification")?,
        })
    }
}

/// A failed drill's scratch kept for investigation.
#[derive(Debug, Clone, Serialize)]
pub struct KeptRow {
    pub run_id: String,
    pub runbook: String,
    /// The runbook file, to find its scratch server when the kept scratch is removed.
    pub runbook_path: String,
    pub folder: String,
    /// What else was kept (a scratch database on a server).
    pub also: Vec<String>,
    pub expires_at: String,
}

/// The file of a SQLite store (`sqlite://FILE?options`); `None` for another store.
pub fn sqlite_file(state: &str) -> Option<&str> {
    state.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p))
}

/// `sqlite://drillbook.db` (created when missing) or `postgres://...`.
pub fn normalize_url(state: &str) -> String {
    if let Some(path) = state.strip_prefix("sqlite://")
        && !path.contains('?')
    {
        return format!("sqlite://{path}?mode=rwc");
    }
    state.to_string()
}

/// The store's URL for messages: a password in it (`postgres://user:PASSWORD@host/db`)
/// is shown as `[redacted]`.
pub fn shown_url(state: &str) -> String {
    let Some((scheme, rest)) = state.split_once("://") else { return state.to_string() };
    let (auth, host) = match rest.split_once('@') {
        Some((auth, host)) if !auth.contains('/') => (auth, host),
        _ => return state.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => state.to_string(),
    }
}

impl History {
    pub async fn open(state: &str) -> anyhow::Result<History> {
        sqlx::any::install_default_drivers();
        let url = normalize_url(state);
        // A new SQLite history is created owner-only (SQLite gives its -wal/-shm files the
        // same mode), not chmod-ed after.
        if let Some(path) = sqlite_file(state) {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create the history store {path}")),
            }
        }
        let state = &shown_url(state);
        // A store that does not answer within 10 s is down: say so rather than wait sqlx's 30 s.
        let pool = drillbook_adapters::sql::no_maintenance(AnyPoolOptions::new())
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            // The daemon reads a year of history once at start: SQLite's page cache (2 MiB a
            // connection by default) would keep the daemon's memory at that peak for good.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        sqlx::query("PRAGMA cache_size = -256").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the history store {state}"))?;
        // Two processes opening a new store at once (the daemon starting while `history`
        // runs) race to create its tables; the loser finds them made on its next try.
        let mut tries = 0;
        loop {
            match sqlx::migrate!("./migrations").run(&pool).await {
                Ok(()) => break,
                Err(_) if tries < 5 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("cannot migrate the history store {state}")),
            }
        }
        Ok(History { pool, writes: AtomicU64::new(0) })
    }

    pub async fn start(
        &self,
        run_id: &str,
        runbook: &str,
        started_at: DateTime<Utc>,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        // A run recorded as `queued` (waiting for a slot) becomes `running` here.
        self.record(run_id, runbook, "running", started_at, scheduled_for)
            .await
            .context("cannot record the drill in history")
    }

    /// Inserts (or, for a queued run, updates) a run of this process, which it belongs to.
    async fn record(
        &self,
        run_id: &str,
        runbook: &str,
        status: &str,
        started_at: DateTime<Utc>,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        static PROCESS: std::sync::LazyLock<Option<String>> =
            std::sync::LazyLock::new(|| crate::process_identity(std::process::id()));
        sqlx::query(
            "INSERT INTO runs (run_id, runbook, status, started_at, scheduled_for, host, pid, process) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, started_at = excluded.started_at",
        )
        .bind(run_id)
        .bind(runbook)
        .bind(status)
        .bind(ts(started_at))
        .bind(scheduled_for.map(ts))
        .bind(crate::host())
        .bind(i64::from(std::process::id()))
        .bind(PROCESS.clone())
        .execute(&self.pool)
        .await?;
        self.wrote();
        Ok(())
    }

    /// The newest run of `runbook` that is queued or running, if any.
    pub async fn active_run(&self, runbook: &str) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT run_id FROM runs WHERE runbook = $1 AND status IN ('running', 'queued') ORDER BY started_at DESC LIMIT 1",
        )
        .bind(runbook)
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the history store")?;
        Ok(row.map(|(id,)| id))
    }

    /// Records a drill that waits for a concurrency slot; `start` turns it into `running`.
    pub async fn queue(&self, run_id: &str, runbook: &str, scheduled_for: Option<DateTime<Utc>>) -> anyhow::Result<()> {
        self.record(run_id, runbook, "queued", Utc::now(), scheduled_for)
            .await
            .context("cannot record the queued drill in history")
    }

    /// `report`: the report's folder, its digest and its figures, when it was written.
    pub async fn finish(
        &self,
        run_id: &str,
        status: &str,
        finished_at: DateTime<Utc>,
        report: Option<(&str, &str, Figures)>,
        reasons: &[String],
    ) -> anyhow::Result<()> {
        let figures = report.map(|r| r.2).unwrap_or_default();
        // Only a run still in progress: one another daemon already marked `interrupted` (it
        // took the fire time over) keeps that verdict.
        sqlx::query(
            "UPDATE runs SET status = $1, finished_at = $2, report = $3, report_sha256 = $4, failure_reasons = $5, \
             rto_s = $6, rpo_s = $7, failed_checks = $8 WHERE run_id = $9 AND status IN ('running', 'queued')",
        )
        .bind(status)
        .bind(ts(finished_at))
        .bind(report.map(|r| r.0))
        .bind(report.map(|r| r.1))
        .bind(serde_json::to_string(reasons)?)
        .bind(figures.rto_s)
        .bind(figures.rpo_s)
        .bind(figures.failed_checks)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .context("cannot record the drill's outcome in history")?;
        self.wrote();
        Ok(())
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// How many writes this process made (the ledger compares it with the count it last saw).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Streams runs to `f` without holding them: every run, or (`since`: a start and a finish
    /// time) only those started or finished at or after them, read through the
    /// `runs_by_start` and `runs_by_finish` indexes.
    pub async fn fold_runs(&self, since: Option<(&str, &str)>, mut f: impl FnMut(LedgerRow)) -> anyhow::Result<()> {
        let mut sql = String::from(
            "SELECT run_id, runbook, status, started_at, finished_at, report, rto_s, rpo_s, failed_checks FROM runs",
        );
        if since.is_some() {
            sql.push_str(" WHERE started_at >= $1 OR finished_at >= $2");
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some((started, finished)) = since {
            q = q.bind(started.to_string()).bind(finished.to_string());
        }
        let mut rows = q.fetch(&self.pool);
        while let Some(r) = rows.try_next().await.context("cannot read the history store")? {
            let report: Option<String> = r.try_get("report")?;
            let failed_checks: Option<i64> = r.try_get("failed_checks")?;
            let figures = if report.is_some() && failed_checks.is_none() {
                None
            } else {
                Some(Figures { rto_s: r.try_get("rto_s")?, rpo_s: r.try_get("rpo_s")?, failed_checks })
            };
            f(LedgerRow {
                run_id: r.try_get("run_id")?,
                runbook: r.try_get("runbook")?,
                status: r.try_get("status")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
                report,
                figures,
            });
        }
        Ok(())
    }

    /// Locks the report chain of `runbook` until the returned lock commits or is dropped, and
    /// reads its head (the last committed report). Another drill of the runbook that wants to
    /// commit waits here meanwhile, so it links to this one: the chain stays one line.
    pub async fn lock_chain(&self, runbook: &str) -> anyhow::Result<ChainLock> {
        let mut tx = self.pool.begin().await.context("cannot lock the report chain")?;
        // A write first: SQLite takes its write lock at the first write (a read first would
        // deadlock two upgrading transactions); PostgreSQL locks the row with the UPDATE.
        sqlx::query("INSERT INTO chain_heads (runbook, seq) VALUES ($1, 0) ON CONFLICT (runbook) DO NOTHING")
            .bind(runbook)
            .execute(&mut *tx)
            .await
            .context("cannot lock the report chain")?;
        sqlx::query("UPDATE chain_heads SET seq = seq WHERE runbook = $1")
            .bind(runbook)
            .execute(&mut *tx)
            .await
            .context("cannot lock the report chain")?;
        let row = sqlx::query("SELECT run_id, sha256, seq FROM chain_heads WHERE runbook = $1")
            .bind(runbook)
            .fetch_one(&mut *tx)
            .await
            .context("cannot read the report chain")?;
        let head = match (row.try_get::<Option<String>, _>("run_id")?, row.try_get::<Option<String>, _>("sha256")?) {
            (Some(run_id), Some(sha256)) => Some((run_id, sha256)),
            _ => None,
        };
        let seq: i64 = row.try_get("seq")?;
        Ok(ChainLock { tx, runbook: runbook.to_string(), head, seq: seq as u64 })
    }

    /// Records the runbooks a daemon loaded at `at`: a version for each whose text differs from
    /// its last recorded one, and an end (`text` NULL) for each recorded one no longer loaded.
    /// One read of the last versions, then only the changes are written.
    pub async fn note_runbooks(&self, loaded: &[(&str, &str, &str)], at: DateTime<Utc>) -> anyhow::Result<()> {
        let rows = sqlx::query(
            "SELECT v.runbook, v.sha256 FROM runbook_versions v WHERE v.since = \
             (SELECT MAX(l.since) FROM runbook_versions l WHERE l.runbook = v.runbook)",
        )
        .fetch_all(&self.pool)
        .await
        .context("cannot read the recorded runbook versions")?;
        let mut last: std::collections::HashMap<String, Option<String>> = std::collections::HashMap::new();
        for r in rows {
            last.insert(r.try_get("runbook")?, r.try_get("sha256")?);
        }
        let now = ts(at);
        let insert = "INSERT INTO runbook_versions (runbook, since, sha256, text) VALUES ($1, $2, $3, $4) \
                      ON CONFLICT (runbook, since) DO NOTHING";
        for &(name, sha, text) in loaded {
            if last.get(name).is_some_and(|l| l.as_deref() == Some(sha)) {
                continue;
            }
            sqlx::query(insert).bind(name).bind(&now).bind(sha).bind(text).execute(&self.pool).await?;
        }
        let names: std::collections::HashSet<&str> = loaded.iter().map(|(n, _, _)| *n).collect();
        for (name, sha) in &last {
            if sha.is_some() && !names.contains(name.as_str()) {
                sqlx::query(insert)
                    .bind(name)
                    .bind(&now)
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Every recorded runbook version: (runbook, since, text; `None` from when it left).
    pub async fn runbook_versions(&self) -> anyhow::Result<Vec<(String, DateTime<Utc>, Option<String>)>> {
        let rows = sqlx::query("SELECT runbook, since, text FROM runbook_versions ORDER BY runbook, since")
            .fetch_all(&self.pool)
            .await
            .context("cannot read the recorded runbook versions")?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("runbook")?, parse_ts(&r.try_get::<String, _>("since")?)?, r.try_get("text")?)))
            .collect()
    }

    /// A daemon (`owner`) started, is still alive, or stopped cleanly at `at`.
    pub async fn note_daemon(&self, owner: &str, at: DateTime<Utc>, life: DaemonLife) -> anyhow::Result<()> {
        let q = match life {
            DaemonLife::Started => sqlx::query(
                "INSERT INTO daemons (owner, host, started_at, last_seen) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (owner) DO NOTHING",
            )
            .bind(owner)
            .bind(crate::host())
            .bind(ts(at)),
            DaemonLife::Alive => {
                sqlx::query("UPDATE daemons SET last_seen = $1 WHERE owner = $2").bind(ts(at)).bind(owner)
            }
            DaemonLife::Stopped => sqlx::query("UPDATE daemons SET last_seen = $1, stopped_at = $1 WHERE owner = $2")
                .bind(ts(at))
                .bind(owner),
        };
        q.execute(&self.pool).await.context("cannot record the daemon's life")?;
        Ok(())
    }

    /// When daemons were up: (started, last seen, whether it stopped cleanly then).
    pub async fn daemon_spans(&self) -> anyhow::Result<Vec<(DateTime<Utc>, DateTime<Utc>, bool)>> {
        let rows = sqlx::query("SELECT started_at, last_seen, stopped_at FROM daemons").fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    parse_ts(&r.try_get::<String, _>("started_at")?)?,
                    parse_ts(&r.try_get::<String, _>("last_seen")?)?,
                    r.try_get::<Option<String>, _>("stopped_at")?.is_some(),
                ))
            })
            .collect()
    }

    /// The runbooks with a run in `[from, to)`: started for a fire time of it, or started in
    /// it and leaving a report.
    pub async fn runbooks_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT runbook FROM runs WHERE (scheduled_for >= $1 AND scheduled_for < $2) \
             OR (started_at >= $1 AND started_at < $2 AND report IS NOT NULL)",
        )
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await
        .context("cannot read the history store")?;
        rows.into_iter().map(|r| Ok(r.try_get("runbook")?)).collect()
    }

    /// A runbook's runs started for a fire time in `[from, to)`, and the report digest each
    /// recorded.
    pub async fn scheduled_between(
        &self,
        runbook: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(RunRow, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT run_id, runbook, status, started_at, finished_at, scheduled_for, report, report_sha256, \
             failure_reasons, notification FROM runs WHERE runbook = $1 AND scheduled_for >= $2 AND scheduled_for < $3",
        )
        .bind(runbook)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await
        .context("cannot read the history store")?;
        rows.into_iter().map(|r| Ok((RunRow::of(&r)?, r.try_get("report_sha256")?))).collect()
    }

    /// A runbook's runs started in `[from, to)` that left a report: (run id, report folder).
    pub async fn reports_between(
        &self,
        runbook: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT run_id, report FROM runs WHERE runbook = $1 AND started_at >= $2 AND started_at < $3 \
             AND report IS NOT NULL",
        )
        .bind(runbook)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await
        .context("cannot read the history store")?;
        rows.into_iter().map(|r| Ok((r.try_get("run_id")?, r.try_get("report")?))).collect()
    }

    /// A runbook's fire times of `[from, to)` that a daemon claimed: (fire time, owner).
    pub async fn claims_between(
        &self,
        runbook: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(DateTime<Utc>, String)>> {
        let rows = sqlx::query(
            "SELECT scheduled_for, owner FROM claims WHERE runbook = $1 AND scheduled_for >= $2 AND scheduled_for < $3",
        )
        .bind(runbook)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok((parse_ts(&r.try_get::<String, _>("scheduled_for")?)?, r.try_get("owner")?)))
            .collect()
    }

    /// The status of the last finished run of a runbook before `excluding` (for `recovery`).
    pub async fn previous_status(&self, runbook: &str, excluding: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(
            "SELECT status FROM runs WHERE runbook = $1 AND run_id <> $2 AND finished_at IS NOT NULL ORDER BY started_at DESC, run_id DESC LIMIT 1",
        )
        .bind(runbook)
        .bind(excluding)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("status")?),
            None => None,
        })
    }

    /// Runs of this host left queued or running: (run id, runbook, pid, process identity).
    pub async fn running_here(&self) -> anyhow::Result<Vec<(String, String, Option<i64>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT run_id, runbook, pid, process FROM runs WHERE status IN ('running', 'queued') AND host = $1",
        )
        .bind(crate::host())
        .fetch_all(&self.pool)
        .await
        .context("cannot read running drills from history")?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("run_id")?, r.try_get("runbook")?, r.try_get("pid")?, r.try_get("process")?)))
            .collect()
    }

    /// Marks a run whose process died as `interrupted`, keeping why. Only a row still
    /// `running` changes, so a late outcome is never overwritten.
    pub async fn interrupt(&self, run_id: &str, reason: &str) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = $1, failure_reasons = $2 WHERE run_id = $3 AND status IN ('running', 'queued')",
        )
        .bind(ts(Utc::now()))
        .bind(serde_json::to_string(&[reason])?)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .context("cannot mark an interrupted drill")?;
        self.wrote();
        Ok(done.rows_affected() > 0)
    }

    /// The latest fire time a runbook's scheduled drills were recorded for.
    pub async fn last_scheduled(&self, runbook: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        let row = sqlx::query("SELECT MAX(scheduled_for) AS t FROM runs WHERE runbook = $1")
            .bind(runbook)
            .fetch_one(&self.pool)
            .await?;
        let t: Option<String> = row.try_get("t")?;
        Ok(t.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)))
    }

    /// Claims a fire time for `owner`: true when this insert won (exactly one daemon does).
    pub async fn claim(
        &self,
        runbook: &str,
        fire: DateTime<Utc>,
        owner: &str,
        lease: Duration,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO claims (runbook, scheduled_for, owner, lease_until, done) VALUES ($1, $2, $3, $4, 0) \
             ON CONFLICT (runbook, scheduled_for) DO NOTHING",
        )
        .bind(runbook)
        .bind(ts(fire))
        .bind(owner)
        .bind(ts(Utc::now() + lease))
        .execute(&self.pool)
        .await
        .context("cannot claim a fire time")?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes over claims whose lease ran out before their drill was done, for the runbooks
    /// `runbooks` accepts (those idle here): (runbook, fire time).
    /// Each takeover is one transaction: the claim changes owner, the run its holder left
    /// in progress becomes `interrupted` (`reason`), and if that holder had completed the
    /// drill after all (its outcome landed first), the claim is closed instead of run again.
    /// Whichever of the holder's `finish` and this commits first wins; never both.
    pub async fn take_over_expired(
        &self,
        runbooks: &dyn Fn(&str) -> bool,
        owner: &str,
        lease: Duration,
        reason: &dyn Fn(&str) -> String,
    ) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
        let now = ts(Utc::now());
        let rows = sqlx::query("SELECT runbook, scheduled_for FROM claims WHERE done = 0 AND lease_until < $1")
            .bind(&now)
            .fetch_all(&self.pool)
            .await?;
        let mut won = Vec::new();
        for r in rows {
            let (runbook, fire): (String, String) = (r.try_get("runbook")?, r.try_get("scheduled_for")?);
            if !runbooks(&runbook) {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            let taken = sqlx::query(
                "UPDATE claims SET owner = $1, lease_until = $2 \
                 WHERE runbook = $3 AND scheduled_for = $4 AND done = 0 AND lease_until < $5",
            )
            .bind(owner)
            .bind(ts(Utc::now() + lease))
            .bind(&runbook)
            .bind(&fire)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            if taken.rows_affected() != 1 {
                tx.rollback().await?;
                continue;
            }
            sqlx::query(
                "UPDATE runs SET status = 'interrupted', finished_at = $1, failure_reasons = $2 \
                 WHERE runbook = $3 AND scheduled_for = $4 AND status IN ('running', 'queued')",
            )
            .bind(ts(Utc::now()))
            .bind(serde_json::to_string(&[reason(&fire)])?)
            .bind(&runbook)
            .bind(&fire)
            .execute(&mut *tx)
            .await?;
            let completed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM runs WHERE runbook = $1 AND scheduled_for = $2 AND status IN ('passed', 'failed')",
            )
            .bind(&runbook)
            .bind(&fire)
            .fetch_one(&mut *tx)
            .await?;
            if completed > 0 {
                sqlx::query("UPDATE claims SET done = 1 WHERE runbook = $1 AND scheduled_for = $2")
                    .bind(&runbook)
                    .bind(&fire)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            if completed == 0
                && let Ok(t) = DateTime::parse_from_rfc3339(&fire)
            {
                won.push((runbook, t.with_timezone(&Utc)));
            }
        }
        Ok(won)
    }

    /// Keeps a claim alive while its drill waits and runs; false when `owner` no longer holds
    /// it (another daemon took it over).
    pub async fn renew(
        &self,
        runbook: &str,
        fire: DateTime<Utc>,
        owner: &str,
        lease: Duration,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE claims SET lease_until = $1 WHERE runbook = $2 AND scheduled_for = $3 AND owner = $4 AND done = 0",
        )
        .bind(ts(Utc::now() + lease))
        .bind(runbook)
        .bind(ts(fire))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The claim's drill ended (whatever its verdict): nobody takes it over.
    /// Only its owner closes a claim: one another daemon took over stays open for that one.
    pub async fn claim_done(&self, runbook: &str, fire: DateTime<Utc>, owner: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE claims SET done = 1 WHERE runbook = $1 AND scheduled_for = $2 AND owner = $3")
            .bind(runbook)
            .bind(ts(fire))
            .bind(owner)
            .execute(&self.pool)
            .await?;
        // Done claims older than a week serve nothing (a fire time is taken over within one
        // lease): prune this runbook's, so the table stays the size of a week of fire times.
        let week_ago = ts(Utc::now() - chrono::Duration::days(7));
        sqlx::query("DELETE FROM claims WHERE runbook = $1 AND done = 1 AND scheduled_for < $2")
            .bind(runbook)
            .bind(week_ago)
            .execute(&self.pool)
            .await
            .context("cannot prune old claims")?;
        Ok(())
    }

    /// Records a failed drill's kept scratch, for `scratch list|rm` and the daemon's expiry.
    pub async fn keep(
        &self,
        run_id: &str,
        runbook: &drillbook_reports::RunbookRef,
        kept: &drillbook_reports::Kept,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO kept (run_id, runbook, runbook_path, folder, also, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
            .bind(run_id)
            .bind(&runbook.name)
            .bind(&runbook.path)
            .bind(&kept.folder)
            .bind(serde_json::to_string(&kept.also)?)
            .bind(ts(kept.until))
            .execute(&self.pool)
            .await
            .context("cannot record the kept scratch in history")?;
        Ok(())
    }

    /// Every kept scratch, the soonest to expire first.
    pub async fn kept(&self) -> anyhow::Result<Vec<KeptRow>> {
        let rows = sqlx::query(
            "SELECT run_id, runbook, runbook_path, folder, also, expires_at FROM kept ORDER BY expires_at, run_id",
        )
        .fetch_all(&self.pool)
        .await
        .context("cannot read the kept scratch from history")?;
        rows.iter()
            .map(|r| {
                Ok(KeptRow {
                    run_id: r.try_get(0)?,
                    runbook: r.try_get(1)?,
                    runbook_path: r.try_get(2)?,
                    folder: r.try_get(3)?,
                    also: serde_json::from_str(&r.try_get::<String, _>(4)?).unwrap_or_default(),
                    expires_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Forgets a kept scratch once it is removed.
    pub async fn unkeep(&self, run_id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM kept WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .context("cannot update the kept scratch in history")?;
        Ok(())
    }

    pub async fn set_notification(&self, run_id: &str, outcome: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE runs SET notification = $1 WHERE run_id = $2")
            .bind(outcome)
            .bind(run_id)
            .execute(&self.pool)
            .await
            .context("cannot record the notification outcome")?;
        Ok(())
    }

    pub async fn list(&self, runbook: Option<&str>) -> anyhow::Result<Vec<RunRow>> {
        self.page(runbook, None, None).await
    }

    /// Runs newest first, at most `limit`, older than the run `before` (a cursor: the last
    /// run id of the previous page). The paging happens in SQL, on the `runs_by_start` index.
    pub async fn page(
        &self,
        runbook: Option<&str>,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> anyhow::Result<Vec<RunRow>> {
        let cursor: Option<(String, String)> = match before {
            Some(id) => Some(
                sqlx::query_as("SELECT started_at, run_id FROM runs WHERE run_id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no run `{id}` to page before"))?,
            ),
            None => None,
        };
        // Placeholders are numbered in the order the conditions appear; values are bound.
        let mut sql = String::from(
            "SELECT run_id, runbook, status, started_at, finished_at, scheduled_for, report, report_sha256, \
             failure_reasons, notification FROM runs WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if runbook.is_some() {
            sql.push_str(&format!(" AND runbook = {}", next()));
        }
        if cursor.is_some() {
            let (started, id) = (next(), next());
            sql.push_str(&format!(" AND (started_at < {started} OR (started_at = {started} AND run_id < {id}))"));
        }
        sql.push_str(" ORDER BY started_at DESC, run_id DESC");
        if limit.is_some() {
            sql.push_str(&format!(" LIMIT {}", next()));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(name) = runbook {
            q = q.bind(name);
        }
        if let Some((started, id)) = &cursor {
            q = q.bind(started.clone()).bind(id.clone());
        }
        if let Some(limit) = limit {
            q = q.bind(i64::from(limit));
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(RunRow::of).collect()
    }
}

/// A daemon's life as `audit coverage` needs it.
pub enum DaemonLife {
    Started,
    Alive,
    Stopped,
}

fn parse_ts(t: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(t)
        .with_context(|| format!("not a time in the history store: {t}"))?
        .with_timezone(&Utc))
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::{History, shown_url};

    /// Seven runs of two runbooks, two of them started in the same millisecond.
    async fn seeded(h: &History) {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-01T03:00:00Z").unwrap().with_timezone(&chrono::Utc);
        for (i, (id, rb, minutes)) in [
            ("r1", "a", 0),
            ("r2", "b", 1),
            ("r3", "a", 2),
            ("r4", "a", 3),
            ("r5", "b", 3),
            ("r6", "a", 4),
            ("r7", "a", 5),
        ]
        .into_iter()
        .enumerate()
        {
            let at = t0 + chrono::Duration::minutes(minutes);
            h.start(id, rb, at, None).await.unwrap();
            h.finish(id, if i % 2 == 0 { "passed" } else { "failed" }, at, None, &[]).await.unwrap();
        }
    }

    async fn ids(h: &History, runbook: Option<&str>, limit: u32, before: Option<&str>) -> Vec<String> {
        h.page(runbook, Some(limit), before).await.unwrap().into_iter().map(|r| r.run_id).collect()
    }

    async fn pages_walk_the_whole_history_once(h: &History) {
        seeded(h).await;
        assert_eq!(ids(h, None, 3, None).await, ["r7", "r6", "r5"]);
        assert_eq!(ids(h, None, 3, Some("r5")).await, ["r4", "r3", "r2"], "same start: ordered by run id");
        assert_eq!(ids(h, None, 3, Some("r2")).await, ["r1"]);
        assert_eq!(ids(h, Some("a"), 2, Some("r6")).await, ["r4", "r3"]);
        assert!(h.page(None, Some(3), Some("nope")).await.is_err());
        assert_eq!(h.list(None).await.unwrap().len(), 7);
    }

    #[tokio::test]
    async fn runs_page_in_sql_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&format!("sqlite://{}", dir.path().join("h.db").display())).await.unwrap();
        pages_walk_the_whole_history_once(&h).await;
    }

    /// Two drills of one runbook committing at once: the second waits for the first's commit
    /// and links to it; a lock dropped without commit leaves the chain as it was.
    async fn commits_chain_one_after_the_other(h: History) {
        let h = std::sync::Arc::new(h);
        let first = h.lock_chain("a").await.unwrap();
        assert_eq!((first.head.clone(), first.seq), (None, 0), "an empty chain");
        let other = h.clone();
        let second = tokio::spawn(async move {
            let lock = other.lock_chain("a").await.unwrap();
            let seen = (lock.head.clone(), lock.seq);
            lock.commit("r2", "d2").await.unwrap();
            seen
        });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(!second.is_finished(), "the second commit waits while the chain is locked");
        first.commit("r1", "d1").await.unwrap();
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), second).await.unwrap().unwrap();
        assert_eq!(seen, (Some(("r1".to_string(), "d1".to_string())), 1), "it links to the first");
        drop(h.lock_chain("a").await.unwrap());
        let third = h.lock_chain("a").await.unwrap();
        assert_eq!((third.head.clone(), third.seq), (Some(("r2".to_string(), "d2".to_string())), 2));
    }

    #[tokio::test]
    async fn the_report_chain_is_committed_one_at_a_time_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&format!("sqlite://{}", dir.path().join("h.db").display())).await.unwrap();
        commits_chain_one_after_the_other(h).await;
    }

    #[tokio::test]
    async fn the_report_chain_is_committed_one_at_a_time_on_postgresql() {
        let (db, h) = FreshDb::new("chain").await;
        commits_chain_one_after_the_other(h).await;
        db.drop_it().await;
    }

    #[tokio::test]
    async fn an_existing_history_seeds_each_chain_with_its_last_report() {
        // A store from before the chain table: the migration makes each runbook's last
        // report (by start) its head, numbered by its count of reports.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let h = History::open(&url).await.unwrap();
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-01T03:00:00Z").unwrap().with_timezone(&chrono::Utc);
        for (id, minutes, digest) in [("r1", 0, Some("d1")), ("r2", 1, Some("d2")), ("r3", 2, None)] {
            let at = t0 + chrono::Duration::minutes(minutes);
            h.start(id, "a", at, None).await.unwrap();
            let report = digest.map(|d| ("/r", d, super::Figures::default()));
            h.finish(id, "passed", at, report, &[]).await.unwrap();
        }
        sqlx::query("DELETE FROM chain_heads").execute(&h.pool).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 8").execute(&h.pool).await.unwrap();
        h.pool.close().await;
        let h = History::open(&url).await.unwrap();
        let lock = h.lock_chain("a").await.unwrap();
        assert_eq!((lock.head.clone(), lock.seq), (Some(("r2".to_string(), "d2".to_string())), 2));
    }

    /// A new database on the machine's PostgreSQL (scripts/test-deps.sh starts it), dropped
    /// by `drop_it` (connections still open included).
    struct FreshDb {
        name: String,
        admin: sqlx::PgConnection,
    }

    impl FreshDb {
        async fn new(label: &str) -> (FreshDb, History) {
            let name = format!("drillbook_{label}_{}", std::process::id());
            let admin = "postgres://postgres@127.0.0.1:5432/postgres";
            let mut db = FreshDb {
                admin: <sqlx::PgConnection as sqlx::Connection>::connect(admin)
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432 (start it: scripts/test-deps.sh)"),
                name,
            };
            db.sql(format!("DROP DATABASE IF EXISTS {}", db.name)).await;
            db.sql(format!("CREATE DATABASE {}", db.name)).await;
            let h = History::open(&format!("postgres://postgres@127.0.0.1:5432/{}", db.name)).await.unwrap();
            (db, h)
        }

        async fn sql(&mut self, s: String) {
            sqlx::query(sqlx::AssertSqlSafe(s)).execute(&mut self.admin).await.unwrap();
        }

        async fn drop_it(mut self) {
            self.sql(format!("DROP DATABASE {} WITH (FORCE)", self.name)).await;
        }
    }

    #[tokio::test]
    async fn runs_page_in_sql_on_postgresql() {
        let (db, h) = FreshDb::new("paging").await;
        pages_walk_the_whole_history_once(&h).await;
        h.pool.close().await;
        db.drop_it().await;
    }

    #[test]
    fn a_password_in_the_store_url_is_never_shown() {
        assert_eq!(
            shown_url("postgres://drill:s3cr3t@db:5432/h?sslmode=require"),
            "postgres://drill:[redacted]@db:5432/h?sslmode=require"
        );
        assert_eq!(shown_url("postgres://drill@db/h"), "postgres://drill@db/h");
        assert_eq!(shown_url("sqlite:///var/lib/drillbook/a@b.db"), "sqlite:///var/lib/drillbook/a@b.db");
    }
}
