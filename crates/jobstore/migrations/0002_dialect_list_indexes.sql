-- Migration 2: list indexes for the vendor dialects' routes.
--
-- Applied by `jobstore::migrate` together with `PRAGMA user_version = 2` in one transaction.
-- Never edit a migration that has shipped: add the next file instead and update schema.sql.
--
-- Each vendor route lists only its own jobs: C360, AEP and Data Cloud filter on
-- `dialect = '<name>'`, OCAPI on `definition_id IS NOT NULL` (executions of a definition).
-- The general sort indexes `(tenant, field, id)` hold every job, so a dialect's page walked
-- them and read each job row to test the filter: slow when that dialect's jobs are few or
-- sparse in the sort order, and deep offset pages read a row per skipped job. These partial
-- indexes hold one dialect's jobs only, for the sort fields that dialect offers, so its pages
-- are index seeks and its offsets skip index entries of its own jobs only.
--
-- Write cost: a job outside a partial index costs SQLite one test of the index's WHERE per
-- insert (and per update that changes one of the index's columns): native jobs, the bulk of
-- the writes, are stored in none of these. `dialect` and `definition_id` never change after a
-- job is created, so no job ever moves in or out of one. Only a dialect's own jobs pay, and
-- only for the sort fields their route offers (Data Cloud's `updated_at` and `state`, OCAPI's
-- start and end times: the routes sort by them).
--
-- The list query names the dialect as a literal (`dialect = 'c360'`, from a fixed list of
-- names in `list.rs`, never from a request): SQLite uses a partial index only when the query's
-- WHERE implies the index's, and a bound parameter does not.

-- Customer 360 Data Manager: sortBy id, createdTime (the default), name, source, target,
-- createdBy. Its status and type sorts are ranked (computed) orders no index can serve. The
-- route also filters on its job types (`kind IN (...)`), and counts the matches on every page:
-- `kind` trails each index so both are answered from the index alone.
CREATE INDEX jobs_c360_by_id ON jobs (tenant, id, kind) WHERE dialect = 'c360';
CREATE INDEX jobs_c360_by_created ON jobs (tenant, created_at, id, kind) WHERE dialect = 'c360';
CREATE INDEX jobs_c360_by_name ON jobs (tenant, name, id, kind) WHERE dialect = 'c360';
CREATE INDEX jobs_c360_by_source ON jobs (tenant, source, id, kind) WHERE dialect = 'c360';
CREATE INDEX jobs_c360_by_target ON jobs (tenant, target, id, kind) WHERE dialect = 'c360';
CREATE INDEX jobs_c360_by_created_by ON jobs (tenant, created_by, id, kind)
    WHERE dialect = 'c360';

-- Experience Platform segment exports: newest first, keyset-paged on (creation time, id).
CREATE INDEX jobs_aep_by_created ON jobs (tenant, created_at, id) WHERE dialect = 'aep';

-- Data Cloud bulk ingest: orderBy systemModstamp (the default), createdDate, id, object, state.
CREATE INDEX jobs_datacloud_by_id ON jobs (tenant, id) WHERE dialect = 'datacloud';
CREATE INDEX jobs_datacloud_by_created ON jobs (tenant, created_at, id)
    WHERE dialect = 'datacloud';
CREATE INDEX jobs_datacloud_by_updated ON jobs (tenant, updated_at, id)
    WHERE dialect = 'datacloud';
CREATE INDEX jobs_datacloud_by_target ON jobs (tenant, target, id) WHERE dialect = 'datacloud';
CREATE INDEX jobs_datacloud_by_state ON jobs (tenant, state, id) WHERE dialect = 'datacloud';

-- OCAPI job execution search: executions of a definition, sorted by id (the default),
-- job_id, start_time, end_time. Its status sort is ranked. `definition_id` trails: SQLite
-- does not take `definition_id IS NOT NULL` as answered by the index's own WHERE, and reads it
-- from the index instead of the job row (the search counts its matches on every page).
CREATE INDEX jobs_executions_by_id ON jobs (tenant, id, definition_id)
    WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_definition
    ON jobs (tenant, ifnull(definition_id, ''), id, definition_id) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_started
    ON jobs (tenant, ifnull(started_at, -1), id, definition_id) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_finished
    ON jobs (tenant, ifnull(finished_at, -1), id, definition_id) WHERE definition_id IS NOT NULL;
