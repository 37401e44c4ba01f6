-- jobstore: the canonical current schema (version 7), for people reading the database.
--
-- The migrations in crates/jobstore/migrations/ build exactly this schema (a test compares
-- sqlite_master of both); change them together. Times are INTEGER milliseconds since the Unix
-- epoch, UTC. Job ids are never reused. `jobs.state` is written only by the store after its
-- state machine allowed the move; the CHECK constraints below repeat its invariants.
--
-- Try: sqlite3 jobstore.db 'SELECT * FROM jobs_overview ORDER BY id DESC LIMIT 20'
--      sqlite3 jobstore.db 'SELECT * FROM queue_stats'
--      sqlite3 jobstore.db 'SELECT * FROM job_history WHERE job_id = 42'

-- One row per job run. `state` is written only by the store, after `state::transition` allowed it.
CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant              TEXT    NOT NULL DEFAULT 'default',
    kind                TEXT    NOT NULL CHECK (kind <> ''),
    queue               TEXT    NOT NULL DEFAULT 'default' CHECK (queue <> ''),
    name                TEXT    NOT NULL DEFAULT '',
    source              TEXT    NOT NULL DEFAULT '',
    target              TEXT    NOT NULL DEFAULT '',
    created_by          TEXT    NOT NULL DEFAULT '',
    dialect             TEXT    NOT NULL DEFAULT 'native',
    state               TEXT    NOT NULL
        CHECK (state IN ('open', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority            INTEGER NOT NULL DEFAULT 0,
    run_at              INTEGER NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    leases              INTEGER NOT NULL DEFAULT 0 CHECK (leases >= attempt),
    lease_owner         TEXT,
    lease_token         INTEGER,
    lease_expires_at    INTEGER,
    heartbeat_at        INTEGER,
    cancel_requested_at INTEGER,
    unique_key          TEXT,
    definition_id       TEXT,
    restart_of          INTEGER,
    restartable         INTEGER NOT NULL DEFAULT 1 CHECK (restartable IN (0, 1)),
    payload             TEXT    NOT NULL DEFAULT 'null' CHECK (json_valid(payload)),
    result              TEXT    CHECK (result IS NULL OR json_valid(result)),
    error               TEXT,
    progress            TEXT    NOT NULL DEFAULT '{}'
        CHECK (json_valid(progress) AND json_type(progress) = 'object'),
    phase               TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    -- Terminal states, and only they, carry a finished time.
    CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    -- Running jobs, and only they, hold a lease.
    CHECK ((state = 'running') = (lease_owner IS NOT NULL)),
    CHECK ((state = 'running') = (lease_token IS NOT NULL)),
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
    -- A cancel request is kept while the job runs and on the terminal state that answered it.
    CHECK (cancel_requested_at IS NULL OR state IN ('running', 'succeeded', 'cancelled'))
);

-- At most one job that is not finished per unique key and tenant (also: one live execution
-- of a job definition).
CREATE UNIQUE INDEX jobs_unique_live ON jobs (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('open', 'queued', 'running');

-- The claim query: queued jobs of a queue in priority, run_at, id order.
CREATE INDEX jobs_claim ON jobs (queue, priority, run_at, id) WHERE state = 'queued';

-- List sorts (every sort field a dialect offers), within a tenant, ties broken by id.
-- Maintenance reads them too: lease rescue seeks each tenant's running jobs in
-- jobs_by_tenant_state, the retention purge each tenant's old finished jobs in
-- jobs_by_tenant_finished (no index of their own: every claim and finish would pay for it).
CREATE INDEX jobs_by_tenant_id ON jobs (tenant, id);
CREATE INDEX jobs_by_tenant_created ON jobs (tenant, created_at, id);
CREATE INDEX jobs_by_tenant_updated ON jobs (tenant, updated_at, id);
CREATE INDEX jobs_by_tenant_state ON jobs (tenant, state, id);
CREATE INDEX jobs_by_tenant_kind ON jobs (tenant, kind, id);
-- The sort indexes of text columns carry the filters that never change (kind, queue, API),
-- so that a filter is tested on the index entry, not on the job row (migration 8).
CREATE INDEX jobs_by_tenant_name ON jobs (tenant, name, id, kind, queue, dialect);
CREATE INDEX jobs_by_tenant_source ON jobs (tenant, source, id, kind, queue, dialect);
CREATE INDEX jobs_by_tenant_target ON jobs (tenant, target, id, kind, queue, dialect);
CREATE INDEX jobs_by_tenant_created_by ON jobs (tenant, created_by, id, kind, queue, dialect);
CREATE INDEX jobs_by_tenant_definition
    ON jobs (tenant, ifnull(definition_id, ''), id, definition_id, kind, queue, dialect);
CREATE INDEX jobs_by_tenant_started ON jobs (tenant, ifnull(started_at, -1), id);
CREATE INDEX jobs_by_tenant_finished ON jobs (tenant, ifnull(finished_at, -1), id);
CREATE INDEX jobs_by_tenant_queue ON jobs (tenant, queue, created_at, id);

-- List sorts of the jobs of every API but the native one (migrations 5 and 7): an API lists
-- only its own jobs (`dialect = ?`), so these partial indexes lead with (tenant, label) and
-- hold no native job. The list query adds the literal `dialect <> 'native'`, which SQLite
-- needs to use a partial index. `kind` and `state` trail: a filter on kinds or states, the
-- count and the skipped jobs of an offset page need no job row.
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
CREATE INDEX jobs_labelled_by_definition
    ON jobs (tenant, dialect, ifnull(definition_id, ''), id, definition_id, kind, state)
    WHERE dialect <> 'native';
-- Failed and cancelled jobs by text sort (migration 9): a list filtered on those states
-- walks matches only. Jobs that succeed never write these.
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
-- Executions of a definition (sorted by id, definition, start and finish;
-- `definition_id` and `state` trail so that its IS NOT NULL test and a status filter need no
-- job row).
CREATE INDEX jobs_executions_by_id
    ON jobs (tenant, id, definition_id, state) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_definition
    ON jobs (tenant, ifnull(definition_id, ''), id, definition_id, state) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_started
    ON jobs (tenant, ifnull(started_at, -1), id, definition_id, state) WHERE definition_id IS NOT NULL;
CREATE INDEX jobs_executions_by_finished
    ON jobs (tenant, ifnull(finished_at, -1), id, definition_id, state) WHERE definition_id IS NOT NULL;

-- Jobs by tenant, queue and state (migration 7), kept by the triggers below in the
-- transaction of every write, whoever writes: `Store::stats` reads these few rows instead of
-- counting the jobs. A row that falls to 0 stays.
CREATE TABLE job_counts (
    tenant TEXT    NOT NULL,
    queue  TEXT    NOT NULL,
    state  TEXT    NOT NULL,
    jobs   INTEGER NOT NULL CHECK (jobs >= 0),
    PRIMARY KEY (tenant, queue, state)
) WITHOUT ROWID;

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

-- The history of every job: one row per transition, written in the transaction that made it.
CREATE TABLE job_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    actor      TEXT    NOT NULL DEFAULT '',
    detail     TEXT
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);

-- Named job definitions with ordered steps (the OCAPI model). Executing one creates a job.
CREATE TABLE job_definitions (
    tenant      TEXT    NOT NULL,
    id          TEXT    NOT NULL CHECK (id <> ''),
    description TEXT    NOT NULL DEFAULT '',
    queue       TEXT    NOT NULL DEFAULT 'ocapi' CHECK (queue <> ''),
    restartable INTEGER NOT NULL DEFAULT 1 CHECK (restartable IN (0, 1)),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    valid       INTEGER NOT NULL DEFAULT 1 CHECK (valid IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE TABLE job_definition_steps (
    tenant          TEXT    NOT NULL,
    definition_id   TEXT    NOT NULL,
    position        INTEGER NOT NULL CHECK (position >= 0),
    step_id         TEXT    NOT NULL CHECK (step_id <> ''),
    step_type_id    TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    execution_scope TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, definition_id, position),
    UNIQUE (tenant, definition_id, step_id),
    FOREIGN KEY (tenant, definition_id) REFERENCES job_definitions (tenant, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- The steps of one job (copied from its definition when it was executed).
CREATE TABLE job_steps (
    job_id          INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL CHECK (position >= 0),
    step_id         TEXT    NOT NULL,
    step_type_id    TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    execution_scope TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'ok', 'error')),
    exit_code       TEXT,
    message         TEXT,
    started_at      INTEGER,
    finished_at     INTEGER,
    updated_at      INTEGER NOT NULL,
    CHECK ((status IN ('ok', 'error')) = (finished_at IS NOT NULL)),
    PRIMARY KEY (job_id, position),
    UNIQUE (job_id, step_id)
) WITHOUT ROWID;

-- Uploaded data: ordered batches per job, each stored as ordered bounded BLOB chunks.
-- A batch is visible once `complete` is 1; an upload cut off half way stays 0 until its
-- `uploader` (the process writing it, "pid:start-time") is found gone and it is deleted, or
-- (uploader unknown) until the idle purge.
-- A batch with a `name` is an output the job's worker uploaded under the lease `lease_token`
-- (`results/failed`, ...), never part of its input data.
-- (`uploader`, `name` and `lease_token` came by ALTER TABLE, which puts them on the line
-- before the key.)
CREATE TABLE job_data_batches (
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    batch      INTEGER NOT NULL CHECK (batch >= 1),
    bytes      INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    complete   INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, uploader TEXT, name TEXT, lease_token INTEGER,
    PRIMARY KEY (job_id, batch)
);

CREATE INDEX job_data_batches_incomplete ON job_data_batches (updated_at) WHERE complete = 0;

CREATE TABLE job_data_chunks (
    job_id INTEGER NOT NULL,
    batch  INTEGER NOT NULL,
    chunk  INTEGER NOT NULL CHECK (chunk >= 0),
    data   BLOB    NOT NULL CHECK (length(data) <= 1048576),
    PRIMARY KEY (job_id, batch, chunk),
    FOREIGN KEY (job_id, batch) REFERENCES job_data_batches (job_id, batch) ON DELETE CASCADE
);

-- Log lines per job, in the order they were appended.
CREATE TABLE job_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    level   TEXT    NOT NULL CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error')),
    message TEXT    NOT NULL
);
CREATE INDEX job_logs_by_job ON job_logs (job_id, id);

-- A retried create with the same key answers the job it created the first time.
CREATE TABLE idempotency_keys (
    tenant      TEXT    NOT NULL,
    key         TEXT    NOT NULL CHECK (key <> ''),
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    fingerprint TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_job ON idempotency_keys (job_id);

-- Views for people reading the database with sqlite3.

-- Every job with readable UTC times and its step, data and log counts.
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

-- Job counts by tenant, queue and state.
CREATE VIEW queue_stats AS
SELECT tenant, queue, state, count(*) AS jobs,
    strftime('%Y-%m-%d %H:%M:%f', min(created_at) / 1000.0, 'unixepoch') AS oldest_created
FROM jobs
GROUP BY tenant, queue, state;

-- The transition history with readable times.
CREATE VIEW job_history AS
SELECT
    e.job_id,
    e.id AS event_id,
    strftime('%Y-%m-%d %H:%M:%f', e.at / 1000.0, 'unixepoch') AS at,
    e.event,
    e.from_state,
    e.to_state,
    e.actor,
    e.detail
FROM job_events e;
