-- Migration 6: named output batches, written by the worker that holds a job's lease.
--
-- Applied by `jobstore::migrate` together with `PRAGMA user_version = 6` in one transaction.
-- Never edit a migration that has shipped: add the next file instead and update schema.sql.
--
-- A batch with a `name` is an output of the job (`results/failed`, `query/results`, ...),
-- uploaded while it runs; a batch without one is input data, uploaded while it is `open`.
-- Outputs share the chunk storage, the size limits and the clean-up of the input batches but
-- are never read, counted or listed as input. `lease_token` is the lease an output was
-- uploaded under: a later attempt that writes the same name replaces what an earlier one left.
ALTER TABLE job_data_batches ADD COLUMN name TEXT;
ALTER TABLE job_data_batches ADD COLUMN lease_token INTEGER;

DROP VIEW jobs_overview;

CREATE VIEW jobs_overview AS
SELECT
    j.id,
    j.tenant,
    j.kind,
    j.queue,
    j.state,
    j.name,
    j.attempt || '/' || j.max_attempts AS attempts,
    j.phase,
    j.lease_owner,
    strftime('%Y-%m-%d %H:%M:%f', j.created_at / 1000.0, 'unixepoch') AS created,
    strftime('%Y-%m-%d %H:%M:%f', j.updated_at / 1000.0, 'unixepoch') AS updated,
    strftime('%Y-%m-%d %H:%M:%f', j.run_at / 1000.0, 'unixepoch') AS run_at,
    strftime('%Y-%m-%d %H:%M:%f', j.started_at / 1000.0, 'unixepoch') AS started,
    strftime('%Y-%m-%d %H:%M:%f', j.finished_at / 1000.0, 'unixepoch') AS finished,
    strftime('%Y-%m-%d %H:%M:%f', j.lease_expires_at / 1000.0, 'unixepoch') AS lease_expires,
    (SELECT count(*) FROM job_steps s WHERE s.job_id = j.id) AS steps,
    (SELECT count(*) FROM job_steps s WHERE s.job_id = j.id AND s.status IN ('ok', 'error'))
        AS steps_done,
    (SELECT count(*) FROM job_data_batches b WHERE b.job_id = j.id AND b.complete = 1
        AND b.name IS NULL)
        AS data_batches,
    (SELECT ifnull(sum(b.bytes), 0) FROM job_data_batches b WHERE b.job_id = j.id AND b.complete = 1
        AND b.name IS NULL)
        AS data_bytes,
    (SELECT count(*) FROM job_logs l WHERE l.job_id = j.id) AS log_lines,
    j.error
FROM jobs j;
