-- Migration 3 of the PostgreSQL store: the sort indexes of text columns carry the filters
-- that never change, as the SQLite store's migration 8 does.
--
-- A first page sorted by a text column (name, source, target, creator, definition) and
-- filtered on a kind, a queue or an API walks the sort index until it has a page of matches;
-- with `kind`, `queue` and `dialect` in the index (INCLUDE) the filter is tested on the
-- entry, in an index-only scan, not on the job row. The three never change once a job is
-- made, so no transition writes these entries again; `state` changes on every transition and
-- stays out. One API's jobs sorted by definition get a partial index of their own, like its
-- other sorts.
DROP INDEX jobs_by_tenant_name;
DROP INDEX jobs_by_tenant_source;
DROP INDEX jobs_by_tenant_target;
DROP INDEX jobs_by_tenant_created_by;
DROP INDEX jobs_by_tenant_definition;
CREATE INDEX jobs_by_tenant_name ON jobs (tenant, name, id) INCLUDE (kind, queue, dialect);
CREATE INDEX jobs_by_tenant_source ON jobs (tenant, source, id) INCLUDE (kind, queue, dialect);
CREATE INDEX jobs_by_tenant_target ON jobs (tenant, target, id) INCLUDE (kind, queue, dialect);
CREATE INDEX jobs_by_tenant_created_by ON jobs (tenant, created_by, id)
    INCLUDE (kind, queue, dialect);
CREATE INDEX jobs_by_tenant_definition ON jobs (tenant, (coalesce(definition_id, '')), id)
    INCLUDE (definition_id, kind, queue, dialect);
CREATE INDEX jobs_labelled_by_definition
    ON jobs (tenant, dialect, (coalesce(definition_id, '')), id)
    INCLUDE (definition_id, kind, state) WHERE dialect <> 'native';
