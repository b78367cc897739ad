-- One row per drill, written before the drill does anything, updated when it ends.
-- Times are RFC 3339 UTC text so that SQLite and PostgreSQL sort them the same way.
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    runbook TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    scheduled_for TEXT,
    report TEXT,
    report_sha256 TEXT,
    failure_reasons TEXT,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_runbook ON runs (runbook, started_at);
