// graphile-worker 0.17 on the run's PostgreSQL server, each case in a fresh database:
//   enqueue: addJob() one job per call from 1 and 8 concurrent clients (makeWorkerUtils),
//            addJobs() in batches;
//   drain:   N queued jobs (added with addJobs, not timed) run by run() with concurrency N
//            and a task that returns at once:
//            - its defaults: each worker fetches one job and completes it (a transaction
//              each);
//            - batched, as its performance guide describes: a local queue of the claim batch
//              (`localQueue.size`) and completions batched (`completeJobBatchDelay` 0: the
//              completions of one turn of the event loop go in one statement).
// Every other setting is graphile-worker's default (pool of 10 connections, pollInterval 2 s,
// LISTEN/NOTIFY); its logger is told to drop info lines (one per job otherwise).
//
//   node graphile-worker.mjs --pg postgres://postgres@127.0.0.1:PORT --jobs N \
//       --workers 1,2,4,8 --batches 100,1000 --claim-batch 32 --cap 5 [--only enqueue|drain]

import { Logger, makeWorkerUtils, run } from "graphile-worker";
import pg from "pg";

import {
  checkpoint,
  dropDatabase,
  emit,
  ENQUEUE_CASES,
  freshDatabase,
  inBatches,
  onClients,
  parseArgs,
  query,
  timed,
  waitDrained,
} from "./common.mjs";

const STORE = "graphile-worker";
const VERSION = "0.17.3";
const DB = "bench_graphile";
const TASK = "bench";

const argv = process.argv.slice(2);
const onlyAt = argv.indexOf("--only");
const only = onlyAt >= 0 ? argv.splice(onlyAt, 2)[1] : "all";
const config = parseArgs(argv);

// Warnings and errors only: graphile-worker logs a line per completed job at info.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") {
    console.error(`  [graphile-worker] ${level}: ${message}`);
  }
});

/**
 * A pool for graphile-worker (its own default size, 10), ours so that it is ended before the
 * case's database is dropped, with the error handlers graphile-worker asks for.
 */
function pool(url) {
  const pgPool = new pg.Pool({ connectionString: url, max: 10 });
  pgPool.on("error", (error) => console.error(`  [graphile-worker pool] ${error.message}`));
  pgPool.on("connect", (client) =>
    client.on("error", (error) => console.error(`  [graphile-worker client] ${error.message}`)),
  );
  return pgPool;
}

async function utils(pgPool) {
  const workerUtils = await makeWorkerUtils({ pgPool, logger });
  await workerUtils.migrate();
  return workerUtils;
}

async function settings(workerUtils) {
  const level = await workerUtils.withPgClient(
    async (client) => (await client.query("SHOW synchronous_commit")).rows[0].synchronous_commit,
  );
  emit({
    scenario: "pg_settings",
    store: STORE,
    case: "synchronous_commit as run",
    version: VERSION,
    synchronous_commit: level,
    how: "SHOW on graphile-worker's own pool (withPgClient)",
  });
}

async function enqueue() {
  let shown = false;
  for (const spec of ENQUEUE_CASES(config.batches)) {
    const url = await freshDatabase(config.base, DB);
    const pgPool = pool(url);
    const workerUtils = await utils(pgPool);
    await checkpoint(config.base);
    const { n, ms } = spec.batch
      ? await inBatches(config.jobs, spec.batch, config.capMs, (from, count) =>
          workerUtils.addJobs(
            Array.from({ length: count }, (_, k) => ({
              identifier: TASK,
              payload: { n: from + k },
            })),
          ),
        )
      : await onClients(spec.threads, config.jobs, config.capMs, (_, i) =>
          workerUtils.addJob(TASK, { n: i }),
        );
    emit({
      scenario: "pg_enqueue",
      store: STORE,
      case: spec.batch ? `${spec.case} (addJobs)` : `${spec.case} (addJob)`,
      threads: spec.threads,
      ...(spec.batch ? { batch: spec.batch } : {}),
      ...timed(n, ms),
      capped: n < config.jobs,
    });
    if (!shown) {
      await settings(workerUtils);
      shown = true;
    }
    await workerUtils.release();
    await pgPool.end();
    await dropDatabase(config.base, DB);
  }
}

async function drain(workers, batched) {
  const url = await freshDatabase(config.base, DB);
  const seedPool = pool(url);
  const workerUtils = await utils(seedPool);
  for (let from = 0; from < config.jobs; from += 1000) {
    const count = Math.min(1000, config.jobs - from);
    await workerUtils.addJobs(
      Array.from({ length: count }, (_, k) => ({ identifier: TASK, payload: { n: from + k } })),
    );
  }
  await workerUtils.release();
  await seedPool.end();
  await query(url, "VACUUM ANALYZE");
  await checkpoint(config.base);

  let handled = 0;
  const preset = batched
    ? { worker: { localQueue: { size: config.claimBatch }, completeJobBatchDelay: 0 } }
    : undefined;
  const pgPool = pool(url);
  const start = performance.now();
  const runner = await run({
    pgPool,
    concurrency: workers,
    noHandleSignals: true,
    logger,
    crontab: "",
    taskList: {
      [TASK]: async () => {
        handled++;
      },
    },
    ...(preset ? { preset } : {}),
  });
  // Completed jobs are deleted: what is left in the table is not finished.
  const open = async () =>
    Number((await query(url, "SELECT count(*) AS n FROM graphile_worker._private_jobs"))[0].n);
  const { finished, ms } = await waitDrained(
    start,
    config.capMs,
    config.jobs,
    () => handled,
    open,
  );
  emit({
    scenario: "pg_drain",
    store: batched ? "graphile-worker (batched)" : "graphile-worker",
    case: batched
      ? `run(), concurrency ${workers}, localQueue.size ${config.claimBatch}, completeJobBatchDelay 0`
      : `run(), concurrency ${workers}, defaults`,
    workers,
    ...timed(finished, ms),
    capped: finished < config.jobs,
  });
  await runner.stop();
  await pgPool.end();
  await dropDatabase(config.base, DB);
}

async function main() {
  if (only !== "drain") await enqueue();
  if (only !== "enqueue") {
    for (const workers of config.workers) {
      await drain(workers, false);
      await drain(workers, true);
    }
  }
}

main().catch((error) => {
  console.error(`graphile-worker bench: ${error.stack || error}`);
  process.exit(1);
});
