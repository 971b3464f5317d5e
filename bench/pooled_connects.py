"""Behind PgBouncer in transaction mode: how many client logins a split pool pays per burst.

One engine through the test PgBouncer, bursts of `pool_size + max_overflow` concurrent
checkouts (each holds its connection for `--hold-ms` in a READ ONLY transaction), a pause
between bursts. SQLAlchemy's "connect" pool event counts the client connections opened:
with pool 8 + overflow 3 every burst past the first opens 3 (QueuePool closes overflow
connections on check-in); with a fixed pool of 11 it opens none after the first burst.
The burst's wall time is printed beside it. Tests issue 13's hypothesis for the PgBouncer
path of bench/cpu.py; the figures are in bench/cpu.md ("PgBouncer path, fixed pool").

    .venv/bin/python bench/pooled_connects.py
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wizard.fleet.pgserver import pgbouncer_server, postgres_server  # noqa: E402

NO_CACHE = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


async def bursts(url: str, pool: int, overflow: int, n: int, hold: float,
                 pause: float) -> tuple[int, list[float]]:
    """Client connections opened after the first burst, and each later burst's wall time."""
    from sqlalchemy import event, text
    from sqlalchemy.ext.asyncio import create_async_engine

    eng = create_async_engine(url, pool_size=pool, max_overflow=overflow,
                              connect_args=dict(NO_CACHE))
    opened = [0]
    event.listen(eng.sync_engine, "connect", lambda *a: opened.__setitem__(0, opened[0] + 1))

    async def one() -> None:
        async with eng.connect() as c:
            await c.execute(text("SET TRANSACTION READ ONLY"))
            await c.execute(text(f"SELECT pg_sleep({hold})"))
            await c.commit()

    times = []
    try:
        for i in range(n + 1):
            if i == 1:
                opened[0] = 0  # the first burst fills the pool: not counted
            t = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(pool + overflow)))
            if i:
                times.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(pause)
    finally:
        await eng.dispose()
    return opened[0], times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bursts", type=int, default=30)
    p.add_argument("--hold-ms", type=float, default=40.0)
    p.add_argument("--pause", type=float, default=0.2)
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--overflow", type=int, default=3)
    a = p.parse_args()
    total = a.pool + a.overflow
    with postgres_server() as pg, pgbouncer_server(pg, default_pool_size=43,
                                                   max_client_conn=400) as bx:
        for rep in range(2):
            cases = [(a.pool, a.overflow), (total, 0)]
            for pool, overflow in (cases if rep == 0 else cases[::-1]):
                opened, times = asyncio.run(bursts(bx.url(), pool, overflow, a.bursts,
                                                   a.hold_ms / 1000, a.pause))
                q = statistics.quantiles(times, n=20)
                print(f"repeat {rep + 1}: pool {pool} + overflow {overflow}: {opened} client "
                      f"connections opened in {a.bursts} bursts of {total} "
                      f"({opened / a.bursts:.1f} per burst); burst wall time median "
                      f"{statistics.median(times):.0f} ms, p95 {q[-1]:.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
