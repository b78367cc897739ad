-- What /metrics and the dashboard show of a run, kept in its row so that they never read a
-- report file: the measured RTO and RPO (seconds) and the checks that did not pass (NULL for
-- runs recorded before this column, whose report is read once). The ledger reads the runs that
-- finished since its last look through `runs_by_finish`.
ALTER TABLE runs ADD COLUMN rto_s DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN rpo_s DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN failed_checks BIGINT;
CREATE INDEX IF NOT EXISTS runs_by_finish ON runs (finished_at);
