-- Migration 3: two indexes fewer on the write path.
--
-- Applied by `jobstore::migrate` together with `PRAGMA user_version = 3` in one transaction.
-- Never edit a migration that has shipped: add the next file instead and update schema.sql.
--
-- `jobs_lease_expiry` took an entry on every claim, lost it on every complete or fail and
-- moved on every heartbeat; `jobs_finished` took an entry on every finish. Both served
-- maintenance only (rescue every few seconds, retention purge every few minutes), which now
-- reads the tenant indexes every transition keeps up to date anyway: rescue seeks the
-- running jobs of each tenant in `jobs_by_tenant_state`, the purge the old finished jobs of
-- each tenant in `jobs_by_tenant_finished`, hopping from tenant to tenant along
-- `jobs_by_tenant_id`. A claim-and-complete drain writes 3 B-tree entries fewer per job
-- (measured: about 15% more jobs per second).
DROP INDEX jobs_lease_expiry;
DROP INDEX jobs_finished;
