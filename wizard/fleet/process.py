"""One fleet process: its engine, its requests and what each of them came to.

Every process is spawned (an AsyncEngine is not fork-safe), builds its engine before the
common clock starts, then offers its load until the run ends and reports one row per
request: (arrival, latency, outcome, seconds the connection was held).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from wizard.fleet import results as outcome
from wizard.fleet.settings import DRAIN_SECONDS, Target, Workload, build_engine
from wizard.fleet.urls import scrub, secrets_of

# Messages PostgreSQL sends when it refuses a connection for lack of slots.
CONN_ERROR_MARKERS = ("too many clients", "remaining connection slots are reserved",
                      "too many connections")


def schedule(workload: Workload, start: float, end: float, index: int) -> list[float]:
    """Open-loop arrival times (seconds from the run's start) for one process."""
    rng = random.Random(workload.seed * 100_003 + index)
    times: list[float] = []
    if workload.rate > 0:
        t = start + rng.expovariate(workload.rate)
        while t < end:
            times.append(t)
            t += rng.expovariate(workload.rate)
    if workload.spike_every > 0 and workload.spike_size > 0:
        k = math.ceil(start / workload.spike_every) or 1
        while (at := k * workload.spike_every) < end:
            if at >= start:
                times += [at + rng.uniform(0, workload.spike_width)
                          for _ in range(workload.spike_size)]
            k += 1
    return sorted(t for t in times if t < end)


def classify(exc: BaseException) -> int:
    """Outcome code for an exception raised by one request."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool limit ... connection timed out
        return outcome.CHECKOUT_TIMEOUT
    chain: list[BaseException] = [exc]
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        chain.append(orig)
    if exc.__cause__ is not None:
        chain.append(exc.__cause__)
    for e in chain:
        if type(e).__name__ == "TooManyConnectionsError":
            return outcome.CONN_ERROR
        if getattr(e, "sqlstate", None) == "53300":  # too_many_connections
            return outcome.CONN_ERROR
        text = str(e).lower()
        if any(marker in text for marker in CONN_ERROR_MARKERS):
            return outcome.CONN_ERROR
    return outcome.OTHER_ERROR


async def request(engine: Any, sql: Any, params: dict[str, Any] | None = None,
                  checked_out: Callable[[], None] | None = None) -> Any:
    """One request: `sql` in a READ ONLY transaction on a pooled connection; its scalar.
    `checked_out` is called when the pool gave the connection."""
    async with engine.connect() as conn:
        if checked_out is not None:
            checked_out()
        await conn.execution_options(postgresql_readonly=True)
        async with conn.begin():
            return (await conn.execute(sql, params or {})).scalar()


def compute_sql() -> Any:
    """The "compute" workload's statement: CPU in the backend, no I/O, no sleeping."""
    from sqlalchemy import text

    return text("SELECT sum(i % 7) FROM generate_series(1, CAST(:n AS int)) AS i")


def _statement(workload: Workload) -> tuple[Any, dict[str, Any]]:
    from sqlalchemy import text

    if workload.query == "compute":
        return compute_sql(), {"n": workload.compute_rows}
    return text("SELECT pg_sleep(:s)"), {"s": workload.hold_s}


def _open_loop(workload: Workload) -> bool:
    return workload.rate > 0 or workload.spike_size > 0


async def _drive(target: Target, engine: Any, workload: Workload, index: int, t0: float,
                 start: float, end: float) -> dict[str, Any]:
    """Offer the load from `start` to `end` (seconds after t0); one row per request."""
    sql, params = _statement(workload)
    secrets = secrets_of(target.url)
    rows: list[tuple[float, float, int, float]] = []
    messages: dict[str, str] = {}
    now = lambda: time.time() - t0  # noqa: E731

    async def one(at: float) -> None:
        got = math.nan

        def checked_out() -> None:
            nonlocal got
            got = now()

        try:
            await request(engine, sql, params, checked_out)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
            code = classify(exc)
            messages.setdefault(outcome.OUTCOMES[code],
                                scrub(f"{type(exc).__name__}: {exc}", secrets)[:300])
            rows.append((at, now() - at, code, math.nan))
        else:
            rows.append((at, now() - at, outcome.OK, now() - got))

    pending: set[asyncio.Task] = set()

    def spawn(coro: Any) -> None:
        task = asyncio.create_task(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        await asyncio.sleep(max(0.0, start - now()))
        if _open_loop(workload):
            for at in schedule(workload, start, end, index):
                if (delay := at - now()) > 0:
                    await asyncio.sleep(delay)
                spawn(one(at))
        else:
            async def closed() -> None:
                while (at := now()) < end:
                    await one(at)

            for _ in range(workload.concurrency):
                spawn(closed())
        await asyncio.sleep(max(0.0, end - now()))
        if pending:
            await asyncio.wait(set(pending), timeout=DRAIN_SECONDS)
        lost = [t for t in pending if not t.done()]
        for t in lost:
            t.cancel()
        if lost:
            await asyncio.gather(*lost, return_exceptions=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(engine.dispose(), 10)
    if _open_loop(workload):
        # Requests still queued when the drain ended are lost, not silently dropped.
        left = Counter(schedule(workload, start, end, index))
        left.subtract(at for at, *_ in rows)
        rows += [(at, math.nan, outcome.UNFINISHED, math.nan)
                 for at, n in left.items() for _ in range(max(0, n))]
    return {"index": index, "rows": rows, "messages": messages}


async def _warm(engine: Any, n: int) -> None:
    """Open `n` connections and give them back: the pool keeps up to pool_size idle."""
    held = [await engine.connect() for _ in range(n)]
    for conn in held:
        await conn.close()


def worker(target: Target, workload: Workload, index: int, start: float, end: float,
           ready: Any, go: Any, t0: Any, results: Any) -> None:
    """Process entry point: wait for the common start, drive the load, report."""
    told = False
    try:
        # Imports and the engine (no connection yet) are ready before the clock starts.
        engine = build_engine(target)
        if workload.prewarm:
            async def warm_then_drive() -> dict[str, Any]:
                nonlocal told
                await _warm(engine, target.settings.pool_size if target.settings else 0)
                ready.put(index)
                told = True
                await asyncio.get_running_loop().run_in_executor(None, go.wait)
                return await _drive(target, engine, workload, index, t0.value, start, end)

            out = asyncio.run(warm_then_drive())
        else:
            ready.put(index)
            told = True
            go.wait()
            out = asyncio.run(_drive(target, engine, workload, index, t0.value, start, end))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about it
        out = {"index": index, "fatal": scrub(f"{type(exc).__name__}: {exc}",
                                              secrets_of(target.url))[:500]}
        if not told:
            ready.put(index)
    results.put(out)
