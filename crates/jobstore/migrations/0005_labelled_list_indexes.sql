-- Migration 5: one set of list indexes for every API's jobs in place of one set per API.
--
-- Applied by `jobstore::migrate` together with `PRAGMA user_version = 5` in one transaction.
-- Never edit a migration that has shipped: add the next file instead and update schema.sql.
--
-- An API other than the native one lists only its own jobs (`dialect = ?`, the label of the
-- API that created them). Migration 2 gave each API partial indexes of its own, written for
-- its name; a new API needed a migration. These indexes hold the jobs of every API but the
-- native one, with the label right after the tenant, so one API's page is a seek to
-- (tenant, label) and a walk in the sort order of its own jobs, and its offsets skip index
-- entries of its own jobs only. `kind` trails so that a filter on kinds, and the count of
-- the matches, are answered from the index alone.
--
-- The list query adds the literal `dialect <> 'native'` to a filter on labels that does not
-- ask for native jobs: SQLite uses a partial index only when the query's WHERE implies the
-- index's, which a bound parameter does not. Native jobs, the bulk of the writes, are stored
-- in none of these; a job's label never changes, so no job moves in or out of them.
--
-- The indexes on executions of a definition (`definition_id IS NOT NULL`) are general
-- already and stay.
DROP INDEX jobs_c360_by_id;
DROP INDEX jobs_c360_by_created;
DROP INDEX jobs_c360_by_name;
DROP INDEX jobs_c360_by_source;
DROP INDEX jobs_c360_by_target;
DROP INDEX jobs_c360_by_created_by;
DROP INDEX jobs_aep_by_created;
DROP INDEX jobs_datacloud_by_id;
DROP INDEX jobs_datacloud_by_created;
DROP INDEX jobs_datacloud_by_updated;
DROP INDEX jobs_datacloud_by_target;
DROP INDEX jobs_datacloud_by_state;

CREATE INDEX jobs_labelled_by_id ON jobs (tenant, dialect, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_created ON jobs (tenant, dialect, created_at, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_updated ON jobs (tenant, dialect, updated_at, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_state ON jobs (tenant, dialect, state, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_name ON jobs (tenant, dialect, name, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_source ON jobs (tenant, dialect, source, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_target ON jobs (tenant, dialect, target, id, kind)
    WHERE dialect <> 'native';
CREATE INDEX jobs_labelled_by_created_by ON jobs (tenant, dialect, created_by, id, kind)
    WHERE dialect <> 'native';
