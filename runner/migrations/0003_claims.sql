-- Several daemons on one history store: each (runbook, fire time) is claimed by inserting
-- its row (the primary key lets exactly one insert win). The winner renews `lease_until`
-- while its drill runs; a claim whose lease ran out before `done` is taken over by another
-- daemon, so a drill held by a daemon that died is not lost.
CREATE TABLE IF NOT EXISTS claims (
    runbook TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (runbook, scheduled_for)
);
