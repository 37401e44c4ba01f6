-- Migration 2 of the PostgreSQL store: job counts kept as rows that are only ever added.
--
-- Migration 1 kept one row per (tenant, queue, state) and slot (the job's id modulo 16),
-- updated by a trigger per job row. Two transactions that changed jobs of the same slots in
-- different orders (two workers completing their claims) each held a row the other wanted:
-- deadlocks, and under load the counts were one queue that every write stood in.
--
-- Now each statement that changes jobs adds one row per (tenant, queue, state) it changed,
-- holding the change (`jobs`, negative when jobs left), from triggers that see the
-- statement's rows all at once (transition tables). Adding rows takes no lock that another
-- writer waits for, so writers never wait for each other's counts and cannot deadlock on
-- them. The count of a (tenant, queue, state) is the sum of its rows. The writers fold the
-- rows into one per (tenant, queue, state) from time to time (`jobstore_postgres::ops`),
-- in one statement that deletes the rows it read and adds their sums: the total never
-- changes, whoever reads it and whenever.

ALTER TABLE job_counts DROP CONSTRAINT job_counts_pkey;
ALTER TABLE job_counts DROP CONSTRAINT job_counts_jobs_check;
ALTER TABLE job_counts DROP COLUMN slot;

WITH kept AS (DELETE FROM job_counts RETURNING tenant, queue, state, jobs)
INSERT INTO job_counts (tenant, queue, state, jobs)
SELECT tenant, queue, state, sum(jobs) FROM kept
GROUP BY tenant, queue, state HAVING sum(jobs) <> 0;

DROP TRIGGER job_counts_on_insert ON jobs;
DROP TRIGGER job_counts_on_update ON jobs;
DROP TRIGGER job_counts_on_delete ON jobs;
DROP FUNCTION job_counts_follow();

CREATE FUNCTION job_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_counts (tenant, queue, state, jobs)
        SELECT tenant, queue, state, count(*) FROM new_jobs GROUP BY tenant, queue, state;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Most updates (a heartbeat, progress, a step) move no job between counts: they add
        -- nothing, and take no lock on job_counts.
        IF NOT EXISTS (SELECT 1 FROM old_jobs o JOIN new_jobs n ON n.id = o.id
                       WHERE (o.tenant, o.queue, o.state)
                             IS DISTINCT FROM (n.tenant, n.queue, n.state)) THEN
            RETURN NULL;
        END IF;
        INSERT INTO job_counts (tenant, queue, state, jobs)
        SELECT tenant, queue, state, sum(change) FROM (
            SELECT tenant, queue, state, -1 AS change FROM old_jobs
            UNION ALL
            SELECT tenant, queue, state, 1 AS change FROM new_jobs
        ) AS changes
        GROUP BY tenant, queue, state HAVING sum(change) <> 0;
    ELSE
        INSERT INTO job_counts (tenant, queue, state, jobs)
        SELECT tenant, queue, state, -count(*) FROM old_jobs GROUP BY tenant, queue, state;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_counts_on_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_follow();
CREATE TRIGGER job_counts_on_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_follow();
CREATE TRIGGER job_counts_on_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_follow();
