-- Which process a run belongs to: boot id, pid and the process's start time (from /proc), so
-- crash recovery never mistakes a live run for a dead one (or a recycled pid for the owner).
ALTER TABLE runs ADD COLUMN process TEXT;
