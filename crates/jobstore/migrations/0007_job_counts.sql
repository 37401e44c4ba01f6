-- Migration 7: counts of jobs by tenant, queue and state, kept by triggers; an index for
-- lists filtered by queue; the list indexes of labelled jobs and executions cover states.
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

-- The list indexes of labelled jobs (migration 5) and of executions gain `state` at their
-- end: a vendor API's status filter (C360's `status`, OCAPI's search by status, ...) is then
-- answered from the index, and a page by page number (an offset) walks index entries only
-- instead of reading every skipped job's row (a page 10,000 pages deep: about 0.5 s before,
-- 45 ms after, on the benchmark's million jobs). Only labelled jobs and executions pay the
-- wider index on their state changes; native jobs are in none of these.
DROP INDEX jobs_labelled_by_id;
DROP INDEX jobs_labelled_by_created;
DROP INDEX jobs_labelled_by_updated;
DROP INDEX jobs_labelled_by_state;
DROP INDEX jobs_labelled_by_name;
DROP INDEX jobs_labelled_by_source;
DROP INDEX jobs_labelled_by_target;
DROP INDEX jobs_labelled_by_created_by;
CREATE INDEX jobs_labelled_by_id ON jobs (tenant, dialect, id, id, kind, state)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_created ON jobs (tenant, dialect, created_at, id, kind, state)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_updated ON jobs (tenant, dialect, updated_at, id, kind, state)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_state ON jobs (tenant, dialect, state, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_name ON jobs (tenant, dialect, name, id, kind, state)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_source ON jobs (tenant, dialect, source, id, kind, state)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_target ON jobs (tenant, dialect, target, id, kind, state)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_created_by ON jobs (tenant, dialect, created_by, id, kind, state)
    WHERE dialect <> 'native';
DROP INDEX jobs_executions_by_id;
DROP INDEX jobs_executions_by_definition;
DROP INDEX jobs_executions_by_started;
DROP INDEX jobs_executions_by_finished;
CREATE INDEX jobs_executions_by_id
    ON jobs (tenant, id, definition_id, state) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_definition
    ON jobs (tenant, ifnull(definition_id, ''), id, definition_id, state) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_started
    ON jobs (tenant, ifnull(started_at, -1), id, definition_id, state) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_finished
    ON jobs (tenant, ifnull(finished_at, -1), id, definition_id, state) WHERE definition_id IS NOT NULL;
