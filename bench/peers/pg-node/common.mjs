// What the Node peers share: arguments, databases on the run's server, the result records
// (one JSON line each on stdout, as jobstore-bench prints them) and the timing loops.

import pg from "pg";

/** `--key value` arguments. */
export function parseArgs(argv) {
  const values = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith("--") || i + 1 >= argv.length) {
      throw new Error(`expected --option value, got ${key}`);
    }
    values[key.slice(2)] = argv[i + 1];
  }
  const number = (name, fallback) => Number(values[name] ?? fallback);
  const numbers = (name, fallback) =>
    String(values[name] ?? fallback)
      .split(",")
      .filter((s) => s !== "")
      .map(Number);
  if (!values.pg) {
    throw new Error("missing --pg postgres://user@host:port");
  }
  return {
    base: values.pg.replace(/\/+$/, ""),
    jobs: number("jobs", 20000),
    batches: numbers("batches", "100,1000"),
    workers: numbers("workers", "1,2,4,8"),
    claimBatch: number("claim-batch", 32),
    capMs: number("cap", 5) * 1000,
  };
}

async function admin(base, sql) {
  const client = new pg.Client({ connectionString: `${base}/postgres` });
  await client.connect();
  try {
    for (const statement of [].concat(sql)) {
      await client.query(statement);
    }
  } finally {
    await client.end();
  }
}

/** Drops `name` if it exists and creates it empty; answers its URL. */
export async function freshDatabase(base, name) {
  await admin(base, [
    `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`,
    `CREATE DATABASE ${name}`,
  ]);
  return `${base}/${name}`;
}

/** Drops `name`. */
export async function dropDatabase(base, name) {
  await admin(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** A `CHECKPOINT`, so that no timed case pays for the one before's pages. */
export async function checkpoint(base) {
  await admin(base, "CHECKPOINT");
}

/** Runs `sql` on a connection of its own to `url`; answers the rows. */
export async function query(url, sql, params = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Prints one record as a JSON line (stdout) and a short line (stderr). */
export function emit(record) {
  console.log(JSON.stringify(record));
  const parts = [record.scenario, record.store, record.case];
  for (const key of ["workers", "threads", "n", "rate"]) {
    if (key in record) parts.push(`${key} ${record[key]}`);
  }
  console.error(`  ${parts.join(" | ")}`);
}

/** The count, elapsed time and rate of a case. */
export function timed(n, ms) {
  const secs = ms / 1000;
  return {
    n,
    secs: Math.round(secs * 1000) / 1000,
    rate: secs > 0 ? Math.round(n / secs) : 0,
  };
}

/**
 * Runs `clients` loops at once, each calling `work(client, i)` one call after another,
 * until `total` calls were issued or the cap passed. Answers { n, ms }.
 */
export async function onClients(clients, total, capMs, work) {
  let issued = 0;
  let done = 0;
  const start = performance.now();
  const deadline = start + capMs;
  const loops = [];
  for (let c = 0; c < clients; c++) {
    loops.push(
      (async () => {
        while (performance.now() < deadline && issued < total) {
          const i = issued++;
          await work(c, i);
          done++;
        }
      })(),
    );
  }
  await Promise.all(loops);
  return { n: done, ms: performance.now() - start };
}

/** Calls `batch(from, size)` with batches of `size` until `total` or the cap. */
export async function inBatches(total, size, capMs, batch) {
  const start = performance.now();
  let n = 0;
  while (n < total && performance.now() - start < capMs) {
    const count = Math.min(size, total - n);
    await batch(n, count);
    n += count;
  }
  return { n, ms: performance.now() - start };
}

/**
 * Waits until `handled()` reaches `total` and then until `open()` (a query of the jobs not
 * finished in the database) answers 0, or the cap passes. Answers { finished, ms } where
 * `finished` is `total - open()` at that moment.
 */
export async function waitDrained(start, capMs, total, handled, open) {
  const deadline = start + capMs;
  while (handled() < total && performance.now() < deadline) {
    await sleep(1);
  }
  let left = Infinity;
  while (performance.now() < deadline) {
    left = await open();
    if (left === 0) break;
    await sleep(2);
  }
  const ms = performance.now() - start;
  if (left !== 0) left = await open();
  return { finished: total - left, ms };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const ENQUEUE_CASES = (batches) => [
  { threads: 1, case: "1 client, one job per call" },
  { threads: 8, case: "8 concurrent clients, one job per call" },
  ...batches.map((batch) => ({ threads: 1, batch, case: `1 client, batches of ${batch}` })),
];
