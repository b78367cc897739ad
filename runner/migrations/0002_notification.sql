-- What happened to the drill's notification (sent, failed after retries, not needed).
ALTER TABLE runs ADD COLUMN notification TEXT;
