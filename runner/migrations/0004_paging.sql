-- A year of history at 1,000 runbooks: /api/runs pages by (started_at, run_id), and the
-- takeover scan reads only claims that are not done.
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at, run_id);
CREATE INDEX IF NOT EXISTS claims_open ON claims (done, lease_until);
