// pg-boss 10 on the run's PostgreSQL server, each case in a fresh database:
//   enqueue: send() one job per call from 1 and 8 concurrent clients, insert() in batches;
//   drain:   N queued jobs (inserted, not timed) drained by
//            - work(): N workers (N calls of work()), each fetching up to the claim batch
//              (batchSize) and completing the batch when the handler (which returns at once)
//              resolves; pollingIntervalSeconds 0.5, the least pg-boss allows (default 2);
//            - fetch() + complete(): N loops, each fetching up to the claim batch and
//              completing the whole batch in one call (what jobstore's claim +
//              complete_many does).
// Every other setting is pg-boss's default (pool of 10 connections).
//
//   node pg-boss.mjs --pg postgres://postgres@127.0.0.1:PORT --jobs N --workers 1,2,4,8 \
//       --batches 100,1000 --claim-batch 32 --cap 5 [--only enqueue|drain]

import PgBoss from "pg-boss";

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

const STORE = "pg-boss";
const VERSION = "10.4.2";
const DB = "bench_pgboss";
const QUEUE = "bench";

const argv = process.argv.slice(2);
const onlyAt = argv.indexOf("--only");
const only = onlyAt >= 0 ? argv.splice(onlyAt, 2)[1] : "all";
const config = parseArgs(argv);

// Set while a case's database is dropped: its connections are ended then, which pg-boss reports
// on connections it still had open.
let tearingDown = false;

async function start(url) {
  tearingDown = false;
  const boss = new PgBoss({ connectionString: url });
  boss.on("error", (error) => {
    if (!tearingDown) console.error(`  [pg-boss] ${error.message}`);
  });
  await boss.start();
  await boss.createQueue(QUEUE);
  return boss;
}

async function settings(boss) {
  const { rows } = await boss.getDb().executeSql("SHOW synchronous_commit", []);
  emit({
    scenario: "pg_settings",
    store: STORE,
    case: "synchronous_commit as run",
    version: VERSION,
    synchronous_commit: rows[0].synchronous_commit,
    how: "SHOW on pg-boss's own pool (getDb().executeSql)",
  });
}

async function enqueue() {
  let shown = false;
  for (const spec of ENQUEUE_CASES(config.batches)) {
    const url = await freshDatabase(config.base, DB);
    const boss = await start(url);
    await checkpoint(config.base);
    const { n, ms } = spec.batch
      ? await inBatches(config.jobs, spec.batch, config.capMs, (from, count) =>
          boss.insert(
            Array.from({ length: count }, (_, k) => ({ name: QUEUE, data: { n: from + k } })),
          ),
        )
      : await onClients(spec.threads, config.jobs, config.capMs, (_, i) =>
          boss.send(QUEUE, { n: i }),
        );
    emit({
      scenario: "pg_enqueue",
      store: STORE,
      case: spec.batch ? `${spec.case} (insert)` : `${spec.case} (send)`,
      threads: spec.threads,
      ...(spec.batch ? { batch: spec.batch } : {}),
      ...timed(n, ms),
      capped: n < config.jobs,
    });
    if (!shown) {
      await settings(boss);
      shown = true;
    }
    await boss.stop({ graceful: false, wait: true });
    tearingDown = true;
    await dropDatabase(config.base, DB);
  }
}

/** A fresh database holding `config.jobs` queued jobs, vacuumed and checkpointed. */
async function seeded() {
  const url = await freshDatabase(config.base, DB);
  const boss = await start(url);
  for (let from = 0; from < config.jobs; from += 1000) {
    const count = Math.min(1000, config.jobs - from);
    await boss.insert(
      Array.from({ length: count }, (_, k) => ({ name: QUEUE, data: { n: from + k } })),
    );
  }
  await query(url, "VACUUM ANALYZE");
  await checkpoint(config.base);
  return { url, boss };
}

function open(url) {
  return async () =>
    Number(
      (
        await query(
          url,
          "SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state < 'completed'",
          [QUEUE],
        )
      )[0].n,
    );
}

async function drainWork(workers) {
  const { url, boss } = await seeded();
  let handled = 0;
  const start = performance.now();
  for (let w = 0; w < workers; w++) {
    await boss.work(
      QUEUE,
      { batchSize: config.claimBatch, pollingIntervalSeconds: 0.5 },
      async (jobs) => {
        handled += jobs.length;
      },
    );
  }
  const { finished, ms } = await waitDrained(
    start,
    config.capMs,
    config.jobs,
    () => handled,
    open(url),
  );
  emit({
    scenario: "pg_drain",
    store: "pg-boss (work)",
    case: `${workers} x work(), batchSize ${config.claimBatch}, pollingIntervalSeconds 0.5`,
    workers,
    claim_batch: config.claimBatch,
    ...timed(finished, ms),
    capped: finished < config.jobs,
  });
  await boss.stop({ graceful: false, wait: true });
  tearingDown = true;
  await dropDatabase(config.base, DB);
}

async function drainFetch(workers) {
  const { boss } = await seeded();
  let done = 0;
  const start = performance.now();
  const deadline = start + config.capMs;
  const loops = [];
  for (let w = 0; w < workers; w++) {
    loops.push(
      (async () => {
        while (performance.now() < deadline) {
          const jobs = await boss.fetch(QUEUE, { batchSize: config.claimBatch });
          if (jobs.length === 0) break;
          await boss.complete(
            QUEUE,
            jobs.map((job) => job.id),
          );
          done += jobs.length;
        }
      })(),
    );
  }
  await Promise.all(loops);
  const ms = performance.now() - start;
  emit({
    scenario: "pg_drain",
    store: "pg-boss (fetch + complete)",
    case: `${workers} loops of fetch(batchSize ${config.claimBatch}) + complete(ids)`,
    workers,
    claim_batch: config.claimBatch,
    ...timed(done, ms),
    capped: done < config.jobs,
  });
  await boss.stop({ graceful: false, wait: true });
  tearingDown = true;
  await dropDatabase(config.base, DB);
}

async function main() {
  if (only !== "drain") await enqueue();
  if (only !== "enqueue") {
    for (const workers of config.workers) {
      await drainWork(workers);
      await drainFetch(workers);
    }
  }
}

main().catch((error) => {
  console.error(`pg-boss bench: ${error.stack || error}`);
  process.exit(1);
});
