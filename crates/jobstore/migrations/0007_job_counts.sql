-- Migration 7: counts of jobs by tenant, queue and state, kept by triggers; and an index
-- for lists filtered by queue.
--
-- Applied by `jobstore::migrate` together with `PRAGMA user_version = 7` in one transaction.
-- Never edit a migration that has shipped: add the next file instead and update schema.sql.
--
-- `Store::stats` (and `GET /v1/stats`, which operators and the dashboard call every few
-- seconds) counted every row of `jobs`. `job_counts` holds the same answer in
-- O(tenants x queues x states) rows, kept in the transaction of every write by the triggers
-- below, whoever writes (the store, another process, `sqlite3`). A row that falls to 0 stays
-- (the combinations are few). `jobstore check` compares it with a count of the jobs.
CREATE TABLE job_counts (
    tenant TEXT    NOT NULL,
    queue  TEXT    NOT NULL,
    state  TEXT    NOT NULL,
    jobs   INTEGER NOT NULL CHECK (jobs >= 0),
    PRIMARY KEY (tenant, queue, state)
) WITHOUT ROWID;

INSERT INTO job_counts (tenant, queue, state, jobs)
SELECT tenant, queue, state, count(*) FROM jobs GROUP BY tenant, queue, state;

CREATE TRIGGER job_counts_on_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (tenant, queue, state, jobs)
    VALUES (new.tenant, new.queue, new.state, 1)
    ON CONFLICT (tenant, queue, state) DO UPDATE SET jobs = jobs + 1;
END;

CREATE TRIGGER job_counts_on_update AFTER UPDATE OF tenant, queue, state ON jobs
WHEN old.tenant IS NOT new.tenant OR old.queue IS NOT new.queue OR old.state IS NOT new.state
BEGIN
    UPDATE job_counts SET jobs = jobs - 1
    WHERE tenant = old.tenant AND queue = old.queue AND state = old.state;
    INSERT INTO job_counts (tenant, queue, state, jobs)
    VALUES (new.tenant, new.queue, new.state, 1)
    ON CONFLICT (tenant, queue, state) DO UPDATE SET jobs = jobs + 1;
END;

CREATE TRIGGER job_counts_on_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET jobs = jobs - 1
    WHERE tenant = old.tenant AND queue = old.queue AND state = old.state;
END;

-- A list filtered by one queue, in the default order (creation), seeks (tenant, queue) and
-- walks its jobs in that order.
CREATE INDEX jobs_by_tenant_queue ON jobs (tenant, queue, created_at, id);
