"""A small load with known arrival rate and hold time, for observe's tests.

Open loop: Poisson arrivals at `rps`, each holding a connection of an asyncpg pool for
`hold_ms` (SELECT pg_sleep), whether or not earlier ones finished. Always busy: `n`
connections each running pg_sleep back to back. Both set application_name, so observe
sees them apart. Bounded: at most MAX_CONNECTIONS connections and MAX_SECONDS seconds.
Not part of the sizing: poolwise never imports it outside tests.

The fleet harness's in-process side: its own open-loop mode (wizard.fleet.Workload with a
rate, run_groups) spawns processes with SQLAlchemy engines on one clock and is what
bench/observe.py runs; this generator runs inside a test's event loop (no process to spawn
and import, so a test starts its load in a fraction of a second) and makes the one load the
harness does not: a pool that runs RESET ALL on release (asyncpg's Pool), which loses
application_name behind PgBouncer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

MAX_CONNECTIONS = 64
MAX_SECONDS = 600.0


@dataclass
class Generated:
    """What a generator did: arrivals, and the busy time it kept (connection-seconds)."""

    arrivals: int = 0
    busy_s: float = 0.0
    seconds: float = 0.0
    errors: int = 0

    @property
    def offered(self) -> float:
        """Mean busy connections it made (Little's law on what it did)."""
        return self.busy_s / self.seconds if self.seconds else 0.0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection as SQLAlchemy's pool does (its transaction ended), without
    asyncpg's RESET ALL."""


async def _pool(dsn: str, name: str, size: int, reset_all: bool = False) -> asyncpg.Pool:
    """An asyncpg pool like an engine's. asyncpg's own Pool runs RESET ALL when a connection
    comes back (reset_all=True): behind PgBouncer that resets application_name to the server
    connection's default, and PgBouncer then tracks the client's name as that (measured in
    tests/test_observe.py); SQLAlchemy's pool only ends the transaction."""
    if not 1 <= size <= MAX_CONNECTIONS:
        raise ValueError(f"pool size must be 1..{MAX_CONNECTIONS}")
    return await asyncpg.create_pool(dsn, min_size=size, max_size=size,
                                     statement_cache_size=0,
                                     reset=None if reset_all else _keep_session,
                                     server_settings={"application_name": name})


async def open_loop(dsn: str, name: str, rps: float, hold_ms: float, seconds: float, *,
                    pool_size: int = 16, seed: int = 1, reset_all: bool = False,
                    on_start: Callable[[], None] | None = None) -> Generated:
    """Poisson arrivals at `rps` per second for `seconds`, each holding `hold_ms`;
    on_start() once the pool is open and the arrivals begin."""
    if not 0 < seconds <= MAX_SECONDS or not 0 < rps <= 10_000:
        raise ValueError("seconds must be in (0, 600] and rps in (0, 10000]")
    rng = random.Random(seed)
    out = Generated()
    pool = await _pool(dsn, name, pool_size, reset_all)
    tasks: set[asyncio.Task] = set()

    async def one() -> None:
        try:
            async with pool.acquire() as conn:
                t = time.perf_counter()
                await conn.execute(f"SELECT pg_sleep({hold_ms / 1000:.6f})")
                out.busy_s += time.perf_counter() - t
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            out.errors += 1

    try:
        if on_start is not None:
            on_start()
        t0 = time.perf_counter()
        at = rng.expovariate(rps)
        while at < seconds:
            delay = at - (time.perf_counter() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            out.arrivals += 1
            at += rng.expovariate(rps)
        if tasks:
            await asyncio.gather(*tasks)
        out.seconds = time.perf_counter() - t0
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 5)
    return out


async def always_busy(dsn: str, name: str, n: int, seconds: float,
                      hold_ms: float = 200,
                      on_start: Callable[[], None] | None = None) -> Generated:
    """`n` connections running pg_sleep(hold_ms) back to back for `seconds`."""
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError("seconds must be in (0, 600]")
    out = Generated()
    pool = await _pool(dsn, name, n)

    async def worker() -> None:
        async with pool.acquire() as conn:
            while time.perf_counter() - t0 < seconds:
                t = time.perf_counter()
                await conn.execute(f"SELECT pg_sleep({hold_ms / 1000:.6f})")
                out.busy_s += time.perf_counter() - t
                out.arrivals += 1

    try:
        if on_start is not None:
            on_start()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(n)))
        out.seconds = time.perf_counter() - t0
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 5)
    return out
