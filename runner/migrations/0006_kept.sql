-- Failed drills' scratch kept for investigation (`keep_on_failure`): the drill's folder and what
-- else it left (a scratch database on a server), removed by the daemon after `expires_at`
-- (RFC 3339, UTC) or by `drillbook scratch rm`.
CREATE TABLE kept (
    run_id TEXT PRIMARY KEY,
    runbook TEXT NOT NULL,
    runbook_path TEXT NOT NULL,
    folder TEXT NOT NULL,
    also TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
