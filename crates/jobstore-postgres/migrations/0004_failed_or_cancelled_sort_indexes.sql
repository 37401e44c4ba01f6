-- Migration 4 of the PostgreSQL store: failed and cancelled jobs get text-sort indexes of
-- their own, as the SQLite store's migration 9 does.
--
-- A page sorted by a text column and filtered on failed or cancelled jobs walked the full
-- sort index, testing each entry's state on the job row (`state` changes on every transition
-- and stays out of those indexes), through every job before the first match. These partial
-- indexes hold only failed and cancelled jobs; the list query adds the literal
-- `state IN ('failed', 'cancelled')` to a state filter within those two states so that the
-- planner can prove it implies their predicate. Jobs that succeed never write them.
CREATE INDEX jobs_failed_or_cancelled_by_name ON jobs (tenant, name, id)
    INCLUDE (kind, queue, dialect, state) WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_source ON jobs (tenant, source, id)
    INCLUDE (kind, queue, dialect, state) WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_target ON jobs (tenant, target, id)
    INCLUDE (kind, queue, dialect, state) WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_created_by ON jobs (tenant, created_by, id)
    INCLUDE (kind, queue, dialect, state) WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_failed_or_cancelled_by_definition
    ON jobs (tenant, (coalesce(definition_id, '')), id)
    INCLUDE (definition_id, kind, queue, dialect, state) WHERE state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_name ON jobs (tenant, dialect, name, id)
    INCLUDE (kind, state) WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_source ON jobs (tenant, dialect, source, id)
    INCLUDE (kind, state) WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_target ON jobs (tenant, dialect, target, id)
    INCLUDE (kind, state) WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_created_by
    ON jobs (tenant, dialect, created_by, id)
    INCLUDE (kind, state) WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
CREATE INDEX jobs_labelled_failed_or_cancelled_by_definition
    ON jobs (tenant, dialect, (coalesce(definition_id, '')), id)
    INCLUDE (definition_id, kind, state) WHERE dialect <> 'native' AND state IN ('failed', 'cancelled');
