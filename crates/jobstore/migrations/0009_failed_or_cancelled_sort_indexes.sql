-- Migration 9: failed and cancelled jobs get text-sort indexes of their own.
--
-- Applied by `jobstore::migrate` together with `PRAGMA user_version = 9` in one transaction.
-- Never edit a migration that has shipped: add the next file instead and update schema.sql.
--
-- A page sorted by a text column (name, source, target, creator, definition) and filtered on
-- failed or cancelled jobs walked the sort index and tested each entry's state until it had
-- a page of matches. The text indexes leave `state` out (it changes on every transition), so
-- each test read the job row; and when the filter's jobs sort far from the end (in the
-- benchmark's file most targets hold no failed job at all) the walk read tens of thousands of
-- rows: 55-64 ms for a first page at 1M jobs, 5.5 ms for a deep one. These partial indexes
-- hold only failed and cancelled jobs, sorted as the full ones: such a page walks matches
-- only. A job enters them once, when it fails or is cancelled; the jobs that succeed, the
-- bulk of every drain, never write them.
--
-- The list query adds the literal `state IN ('failed', 'cancelled')` to a state filter within
-- those two states (SQLite uses a partial index only when the query's WHERE implies the
-- index's, which a bound parameter does not). One API's jobs get the same pair of conditions
-- as its other partial indexes.
CREATE INDEX jobs_failed_or_cancelled_by_name
    ON jobs (tenant, name, id, kind, queue, dialect, state)
    WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_source
    ON jobs (tenant, source, id, kind, queue, dialect, state)
    WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_target
    ON jobs (tenant, target, id, kind, queue, dialect, state)
    WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_created_by
    ON jobs (tenant, created_by, id, kind, queue, dialect, state)
    WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_definition
    ON jobs (tenant, ifnull(definition_id, ''), id, definition_id, kind, queue, dialect, state)
    WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_name
    ON jobs (tenant, dialect, name, id, kind, state)
    WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_source
    ON jobs (tenant, dialect, source, id, kind, state)
    WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_target
    ON jobs (tenant, dialect, target, id, kind, state)
    WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_created_by
    ON jobs (tenant, dialect, created_by, id, kind, state)
    WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_definition
    ON jobs (tenant, dialect, ifnull(definition_id, ''), id, definition_id, kind, state)
    WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
