"""procrastinate 3 on the benchmark's PostgreSQL server, each case in a fresh database.

enqueue: ``defer_async`` one job per call from 1 and 8 concurrent clients (asyncio tasks),
         ``batch_defer_async`` in batches;
drain:   N queued jobs (deferred in batches, not timed) run by ``run_worker_async`` with
         ``concurrency`` N and ``wait=False`` (it returns once the queue is empty), an async
         task that returns at once. procrastinate fetches one job per fetch and finishes each
         with its own statement.

The connector's pool holds up to 10 connections (``bench_app.py``; psycopg_pool's default is
4, fewer than 8 clients or 8 workers and the listener need; the Node libraries' pools hold
10); every other setting is procrastinate's default (LISTEN/NOTIFY on, jobs kept after they
finish).

    .venv/bin/python bench.py --pg postgres://postgres@127.0.0.1:PORT --jobs N \\
        --workers 1,2,4,8 --batches 100,1000 --cap 5 [--only enqueue|drain]

Prints one JSON line per figure on stdout, as jobstore-bench does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from importlib.metadata import version

import procrastinate
import psycopg
from bench_app import make_app

STORE = "procrastinate"
DB = "bench_procrastinate"
QUEUE = "bench"


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)
    parts = [record["scenario"], record["store"], record["case"]]
    for key in ("workers", "threads", "n", "rate"):
        if key in record:
            parts.append(f"{key} {record[key]}")
    print("  " + " | ".join(str(p) for p in parts), file=sys.stderr, flush=True)


def timed(n: int, secs: float) -> dict:
    return {
        "n": n,
        "secs": round(secs, 3),
        "rate": round(n / secs) if secs > 0 else 0,
    }


async def admin(base: str, *statements: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        f"{base}/postgres", autocommit=True
    ) as conn:
        for statement in statements:
            await conn.execute(statement)


async def fresh_database(base: str) -> str:
    await admin(base, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", f"CREATE DATABASE {DB}")
    return f"{base}/{DB}"


async def drop_database(base: str) -> None:
    await admin(base, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


async def checkpoint(base: str) -> None:
    await admin(base, "CHECKPOINT")


async def scalar(url: str, sql: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(sql)
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


async def settings(app: procrastinate.App) -> None:
    row = await app.connector.execute_query_one_async("SHOW synchronous_commit")
    emit(
        {
            "scenario": "pg_settings",
            "store": STORE,
            "case": "synchronous_commit as run",
            "version": version("procrastinate"),
            "synchronous_commit": row["synchronous_commit"],
            "how": "SHOW on procrastinate's own pool (connector.execute_query_one_async)",
        }
    )


async def enqueue(config: argparse.Namespace) -> None:
    cases = [(1, None, "1 client, one job per call"), (8, None, "8 concurrent clients, one job per call")]
    cases += [(1, b, f"1 client, batches of {b}") for b in config.batches]
    shown = False
    for threads, batch, case in cases:
        url = await fresh_database(config.pg)
        app, task = make_app(url, QUEUE)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            await checkpoint(config.pg)
            start = time.perf_counter()
            deadline = start + config.cap
            n = 0
            if batch:
                while n < config.jobs and time.perf_counter() < deadline:
                    count = min(batch, config.jobs - n)
                    await task.batch_defer_async(*({"n": n + k} for k in range(count)))
                    n += count
            else:
                issued = 0

                async def client() -> int:
                    nonlocal issued
                    done = 0
                    while time.perf_counter() < deadline and issued < config.jobs:
                        i = issued
                        issued += 1
                        await task.defer_async(n=i)
                        done += 1
                    return done

                n = sum(await asyncio.gather(*(client() for _ in range(threads))))
            secs = time.perf_counter() - start
            record = {
                "scenario": "pg_enqueue",
                "store": STORE,
                "case": f"{case} ({'batch_defer_async' if batch else 'defer_async'})",
                "threads": threads,
                **({"batch": batch} if batch else {}),
                **timed(n, secs),
                "capped": n < config.jobs,
            }
            emit(record)
            if not shown:
                await settings(app)
                shown = True
        await drop_database(config.pg)


async def drain(config: argparse.Namespace, workers: int) -> None:
    url = await fresh_database(config.pg)
    app, task = make_app(url, QUEUE)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, config.jobs, 1000):
            count = min(1000, config.jobs - start)
            await task.batch_defer_async(*({"n": start + k} for k in range(count)))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE")
    await checkpoint(config.pg)

    app, task = make_app(url, QUEUE)
    async with app.open_async():
        start = time.perf_counter()
        worker = asyncio.ensure_future(
            app.run_worker_async(
                queues=[QUEUE],
                concurrency=workers,
                wait=False,
                install_signal_handlers=False,
            )
        )
        done, _ = await asyncio.wait({worker}, timeout=config.cap)
        secs = time.perf_counter() - start
        finished = await scalar(
            url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
        if worker in done:
            worker.result()
        else:
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, Exception):
                pass
    emit(
        {
            "scenario": "pg_drain",
            "store": STORE,
            "case": f"run_worker_async, concurrency {workers}, wait=False",
            "workers": workers,
            **timed(finished, secs),
            "capped": finished < config.jobs,
        }
    )
    await drop_database(config.pg)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", required=True)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--batches", default="100,1000")
    parser.add_argument("--cap", type=float, default=5)
    parser.add_argument("--claim-batch", type=int, default=32)
    parser.add_argument("--only", default="all")
    config = parser.parse_args()
    config.pg = config.pg.rstrip("/")
    config.batches = [int(b) for b in config.batches.split(",") if b]
    if config.only != "drain":
        await enqueue(config)
    if config.only != "enqueue":
        for workers in (int(w) for w in config.workers.split(",") if w):
            await drain(config, workers)


if __name__ == "__main__":
    asyncio.run(main())
