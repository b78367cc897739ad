-- What `drillbook audit coverage` needs besides the runs. Each runbook's text as a daemon
-- loaded it, from when (a new row whenever its content changed; `text` NULL from when it left
-- the folder), so the fire times of a period come from the schedule that was in force then.
-- And when each daemon was up: its start, its last sign of life (renewed every minute), its
-- clean stop, so a fire time nobody ran can be told "no daemon was running" or not.
CREATE TABLE IF NOT EXISTS runbook_versions (
    runbook TEXT NOT NULL,
    since TEXT NOT NULL,
    sha256 TEXT,
    text TEXT,
    PRIMARY KEY (runbook, since)
);
CREATE TABLE IF NOT EXISTS daemons (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    stopped_at TEXT
);
