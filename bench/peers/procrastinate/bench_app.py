"""The procrastinate app of the benchmark (in a module of its own: procrastinate warns about an
app made in ``__main__``, whose tasks a worker process could not import by name)."""

from __future__ import annotations

import procrastinate

# psycopg_pool's default pool holds 4 connections, fewer than 8 clients or 8 workers and the
# listener need; the Node libraries' pools hold 10.
POOL = 10


def make_app(url: str, queue: str) -> tuple[procrastinate.App, procrastinate.tasks.Task]:
    """An app on the database at ``url`` with one task, ``bench``, that returns at once."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=url, max_size=POOL)
    )

    @app.task(name="bench", queue=queue)
    async def bench(n: int) -> None:
        return None

    return app, bench
