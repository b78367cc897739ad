-- The head of each runbook's report chain: the last committed report (run id, digest) and its
-- place in the chain. A report's `previous` is read from here and the head advanced in one
-- transaction that holds the runbook's row locked (PostgreSQL: the row lock of a no-op UPDATE;
-- SQLite: the write lock), so concurrent drills of a runbook chain one after the other instead
-- of forking. Seeded with each runbook's last report (by start, as `previous` was chosen before),
-- numbered by how many reports the runbook has.
CREATE TABLE IF NOT EXISTS chain_heads (
    runbook TEXT PRIMARY KEY,
    run_id TEXT,
    sha256 TEXT,
    seq BIGINT NOT NULL DEFAULT 0
);
INSERT INTO chain_heads (runbook, run_id, sha256, seq)
SELECT r.runbook, r.run_id, r.report_sha256,
       (SELECT COUNT(*) FROM runs c WHERE c.runbook = r.runbook AND c.report_sha256 IS NOT NULL)
FROM runs r
WHERE r.report_sha256 IS NOT NULL
  AND r.run_id = (SELECT l.run_id FROM runs l WHERE l.runbook = r.runbook AND l.report_sha256 IS NOT NULL
                  ORDER BY l.started_at DESC, l.run_id DESC LIMIT 1);
