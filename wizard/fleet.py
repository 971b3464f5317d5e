"""Fleet check: real OS processes, each with its own async engine, against a real server.

One harness behind two users: bench/fleet.py (poolwise against the rules people copy, on a
throwaway PostgreSQL) and `python -m wizard fleet` (an exported module's engines against
your own staging database). Every process is spawned (an AsyncEngine is not fork-safe),
builds its engine from explicit settings or an exported module, and drives read-only
`SELECT pg_sleep(...)` requests for a bounded time. A monitor samples pg_stat_activity.
Figures per fleet phase: requests, connection errors, checkout timeouts, throughput,
p50/p99 latency and peak server connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import math
import multiprocessing as mp
import os
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wizard.core.model import EngineSettings, ScenarioError
from wizard.scenario import redact

MAX_SECONDS = 600
MAX_PROCESSES = 64
MAX_HOLD_MS = 10_000
MAX_POOL = 1000  # --pool-size and --max-overflow per process
MAX_POOL_TIMEOUT = 600.0
PASSWORD_ENV = "POOLWISE_FLEET_PASSWORD"
DRAIN_SECONDS = 5.0  # after the run, in-flight requests get this long before they count as lost
MONITOR_INTERVAL = 0.1

# Outcome codes per request.
OK, CONN_ERROR, CHECKOUT_TIMEOUT, OTHER_ERROR, UNFINISHED = range(5)
OUTCOMES = ("ok", "connection_error", "checkout_timeout", "other_error", "unfinished")
# Messages PostgreSQL sends when it refuses a connection for lack of slots.
CONN_ERROR_MARKERS = ("too many clients", "remaining connection slots are reserved",
                      "too many connections")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PoolSettings:
    """The create_async_engine arguments under test (one named setting)."""

    name: str
    poolclass: str = "AsyncAdaptedQueuePool"
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_recycle: int = -1
    pool_pre_ping: bool = False
    pool_use_lifo: bool = False
    connect_args: dict[str, Any] = field(default_factory=dict)
    formula: str = ""

    @classmethod
    def from_engine(cls, engine: EngineSettings, name: str = "poolwise",
                    formula: str = "") -> PoolSettings:
        """The settings of one engine of a Recommendation, unchanged."""
        return cls(name=name, poolclass=engine.poolclass, pool_size=engine.pool_size,
                   max_overflow=engine.max_overflow, pool_timeout=engine.pool_timeout,
                   pool_recycle=engine.pool_recycle, pool_pre_ping=engine.pool_pre_ping,
                   pool_use_lifo=engine.pool_use_lifo, connect_args=dict(engine.connect_args),
                   formula=formula or "wizard.core.sizing.recommend(scenario)")

    @property
    def per_process(self) -> int:
        """Connections one process may open at most."""
        return 1 if self.poolclass == "NullPool" else self.pool_size + self.max_overflow

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for create_async_engine."""
        kw: dict[str, Any] = {"connect_args": dict(self.connect_args)}
        if self.poolclass == "NullPool":
            from sqlalchemy.pool import NullPool

            kw["poolclass"] = NullPool
            return kw
        kw.update(pool_size=self.pool_size, max_overflow=self.max_overflow,
                  pool_timeout=self.pool_timeout, pool_recycle=self.pool_recycle,
                  pool_pre_ping=self.pool_pre_ping, pool_use_lifo=self.pool_use_lifo)
        return kw


@dataclass(frozen=True)
class Workload:
    """What every process offers.

    Open loop when `rate` > 0: Poisson arrivals at `rate` requests/s per process, plus
    `spike_size` requests arriving within `spike_width` seconds every `spike_every`
    seconds (the same instants in every process, as when traffic jumps fleet-wide).
    Closed loop when `rate` is 0: `concurrency` coroutines per process, each sending
    the next request when the previous one finished.
    """

    hold_s: float = 0.04
    rate: float = 0.0
    concurrency: int = 4
    spike_every: float = 0.0
    spike_size: int = 0
    spike_width: float = 0.05
    seed: int = 1
    # "sleep": SELECT pg_sleep(hold_s), the database waits. "compute": a query that keeps a
    # backend on the CPU for `compute_rows` rows of generate_series (bench/cpu.py), so the
    # database's CPU, not the pool, is what requests queue for.
    query: str = "sleep"
    compute_rows: int = 0
    # Open pool_size connections in every process before the clock starts (as HikariCP's
    # minimumIdle does), so the run measures the load, not the connects of a cold pool.
    prewarm: bool = False

    @property
    def mean_rate(self) -> float:
        """Mean open-loop arrivals per second per process, spikes included."""
        spikes = self.spike_size / self.spike_every if self.spike_every > 0 else 0.0
        return self.rate + spikes


@dataclass(frozen=True)
class Phase:
    """A stretch of the run with `processes` processes in total (never fewer than before)."""

    name: str
    processes: int
    seconds: float


@dataclass(frozen=True)
class Target:
    """Where the processes connect and how each builds its engine.

    Either `settings` (explicit pool arguments) or `export_path` (a module written by
    `python -m wizard export`, imported in each process; `endpoint` picks its engine).
    """

    url: str
    settings: PoolSettings | None = None
    export_path: str | None = None
    endpoint: str = "primary"
    monitor_url: str | None = None  # default: url (the monitor counts the url's role)
    count_user: str | None = None   # role whose server connections are counted

    def __repr__(self) -> str:  # never show the password
        return (f"Target(url={_safe_url(self.url)!r}, settings={self.settings!r}, "
                f"export_path={self.export_path!r}, endpoint={self.endpoint!r})")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PhaseFigures:
    """What one fleet phase measured."""

    phase: str
    processes: int
    seconds: float
    offered: int
    ok: int
    connection_errors: int
    checkout_timeouts: int
    other_errors: int
    unfinished: int
    throughput: float
    offered_rate: float
    p50_ms: float | None
    p99_ms: float | None
    peak_server_connections: int
    ceiling: int

    @property
    def errors(self) -> int:
        return self.connection_errors + self.checkout_timeouts + self.other_errors + self.unfinished


@dataclass(frozen=True)
class FleetResult:
    """One run: the setting, its figures per phase, sample error messages, the samples."""

    setting: str
    phases: tuple[PhaseFigures, ...]
    messages: dict[str, str]
    samples: tuple[tuple[float, int], ...]
    per_process: int

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for p, fig in zip(d["phases"], self.phases, strict=True):
            p["errors"] = fig.errors
        d["samples"] = [list(s) for s in self.samples]
        return d


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def classify(exc: BaseException) -> int:
    """Outcome code for an exception raised by one request."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool limit ... connection timed out
        return CHECKOUT_TIMEOUT
    chain: list[BaseException] = [exc]
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        chain.append(orig)
    if exc.__cause__ is not None:
        chain.append(exc.__cause__)
    for e in chain:
        if type(e).__name__ == "TooManyConnectionsError":
            return CONN_ERROR
        if getattr(e, "sqlstate", None) == "53300":  # too_many_connections
            return CONN_ERROR
        text = str(e).lower()
        if any(marker in text for marker in CONN_ERROR_MARKERS):
            return CONN_ERROR
    return OTHER_ERROR


# --------------------------------------------------------------------------- URLs and secrets


# Query keys that carry a secret (asyncpg reads ?password=... as the password).
_SECRET_KEY = re.compile(r"pass|pwd|token|secret|signature|credential|x-amz", re.IGNORECASE)


def _secret_query(url: Any) -> dict[str, str]:
    """Query parameters of a parsed URL whose key or value looks like a secret."""
    out = {}
    for k, v in url.query.items():
        for item in (v if isinstance(v, tuple) else (v,)):
            if _SECRET_KEY.search(k) or _SECRET_KEY.search(str(item)):
                out[k] = str(item)
    return out


def _safe_url(url: str) -> str:
    """The URL for display: password masked, secret-looking query values masked too."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
        hidden = _secret_query(u)
        if hidden:
            u = u.set(query={k: ("***" if k in hidden else v) for k, v in u.query.items()})
        return u.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
    except Exception:  # noqa: BLE001 - a bad URL must still never print its password
        return "<unparseable url>"


def secrets_of(url: str) -> list[str]:
    """Every form a URL's secrets may take in a message: as given, decoded and URL-quoted."""
    from urllib.parse import quote, quote_plus

    from sqlalchemy.engine import URL, make_url

    found: list[str] = []
    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001
        return found
    values = [v for v in [u.password, *_secret_query(u).values()] if v]
    for v in values:
        rendered = URL.create("x", username="u", password=v).render_as_string(
            hide_password=False)[len("x://u:"):-1]
        found += [v, rendered, quote(v, safe=""), quote_plus(v)]
    # Longest first, so a secret is never half-replaced by one of its own substrings.
    return sorted({f for f in found if f}, key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """One error message made safe to show (wizard.scenario.redact.scrub): passwords redacted by
    structure, the whole message withheld if it still repeats a secret."""
    return redact.scrub(text, *secrets)


def make_url_password(url: str) -> str | None:
    """The password written in a URL, if any."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # noqa: BLE001 - the message could echo the URL
        return None


def with_password(url: str, password: str | None) -> str:
    """The URL with `password` set (when given), rendered with it, for the processes only."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if password:
        u = u.set(password=password)
    return u.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- one process


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


def load_export(path: str) -> Any:
    """Import an exported engine module from its file."""
    spec = importlib.util.spec_from_file_location("poolwise_fleet_export", path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"--export {path!r} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def export_engine(module: Any, endpoint: str, url: str) -> Any:
    """The AsyncEngine an exported module (`python -m wizard export`) builds for `endpoint`.

    The module reads its URL from the environment variable it names in URL_ENV
    (DATABASE_URL for the primary, DATABASE_REPLICA_N_URL for a replica); `url` goes there.
    """
    check_export(module, endpoint)
    os.environ[module.URL_ENV[endpoint]] = url
    return module.create_engine_for(endpoint)


def check_export(module: Any, endpoint: str) -> None:
    """Raise ScenarioError unless `module` is an engine module with that endpoint."""
    url_env = getattr(module, "URL_ENV", None)
    if not callable(getattr(module, "create_engine_for", None)) or not isinstance(url_env, dict):
        raise ScenarioError("--export is not a poolwise engine module (no create_engine_for / "
                            "URL_ENV); write one with `python -m wizard export --kind module`")
    if endpoint not in url_env:
        raise ScenarioError(f"the exported module has no {endpoint!r} engine; valid choices: "
                            f"{', '.join(url_env)}")


def export_settings(module: Any, endpoint: str, name: str) -> PoolSettings:
    """The pool settings an exported module gives `endpoint` (for the report only)."""
    es = dict(getattr(module, "ENGINE_SETTINGS", {}).get(endpoint, {}))
    args = dict(getattr(module, "CONNECT_ARGS", {}).get(endpoint, {}))
    null = "poolclass" in es and "NullPool" in str(es["poolclass"])
    return PoolSettings(
        name=name, poolclass="NullPool" if null else "AsyncAdaptedQueuePool",
        pool_size=int(es.get("pool_size", 5)), max_overflow=int(es.get("max_overflow", 10)),
        pool_timeout=float(es.get("pool_timeout", 30.0)),
        pool_recycle=int(es.get("pool_recycle", -1)),
        pool_pre_ping=bool(es.get("pool_pre_ping", False)),
        pool_use_lifo=bool(es.get("pool_use_lifo", False)), connect_args=args,
        formula="exported module")


def _build_engine(target: Target) -> Any:
    if target.export_path:
        return export_engine(load_export(target.export_path), target.endpoint, target.url)
    from sqlalchemy.ext.asyncio import create_async_engine

    assert target.settings is not None
    return create_async_engine(target.url, **target.settings.engine_kwargs())


async def request(engine: Any, sql: Any, params: dict[str, Any] | None = None) -> Any:
    """One request: `sql` in a READ ONLY transaction on a pooled connection; its scalar."""
    async with engine.connect() as conn:
        await conn.execution_options(postgresql_readonly=True)
        async with conn.begin():
            return (await conn.execute(sql, params or {})).scalar()


async def _drive(target: Target, engine: Any, workload: Workload, index: int, t0: float,
                 start: float, end: float) -> dict[str, Any]:
    from sqlalchemy import text

    if workload.query == "compute":
        sql, params = compute_sql(), {"n": workload.compute_rows}
    else:
        sql, params = text("SELECT pg_sleep(:s)"), {"s": workload.hold_s}
    secrets = secrets_of(target.url)
    sched: list[float] = []
    lat: list[float] = []
    outcome: list[int] = []
    messages: dict[str, str] = {}

    def record(at: float, code: int, exc: BaseException | None = None) -> None:
        sched.append(at)
        lat.append(time.time() - t0 - at)
        outcome.append(code)
        if exc is not None and OUTCOMES[code] not in messages:
            messages[OUTCOMES[code]] = scrub(f"{type(exc).__name__}: {exc}", secrets)[:300]

    async def one(at: float) -> None:
        try:
            await request(engine, sql, params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
            record(at, classify(exc), exc)
        else:
            record(at, OK)

    pending: set[asyncio.Task] = set()
    loop_now = lambda: time.time() - t0  # noqa: E731
    try:
        await asyncio.sleep(max(0.0, start - loop_now()))
        if workload.rate > 0 or workload.spike_size > 0:
            for at in schedule(workload, start, end, index):
                delay = at - loop_now()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(at))
                pending.add(task)
                task.add_done_callback(pending.discard)
        else:
            async def closed() -> None:
                while (at := loop_now()) < end:
                    await one(at)

            for _ in range(workload.concurrency):
                task = asyncio.create_task(closed())
                pending.add(task)
                task.add_done_callback(pending.discard)
        await asyncio.sleep(max(0.0, end - loop_now()))
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
    if workload.rate > 0 or workload.spike_size > 0:
        planned = schedule(workload, start, end, index)
        # Requests still queued when the drain ended are lost, not silently dropped.
        seen = sorted(sched)
        missing = _missing(planned, seen)
        for at in missing:
            sched.append(at)
            lat.append(float("nan"))
            outcome.append(UNFINISHED)
    return {"index": index, "sched": sched, "lat": lat, "outcome": outcome,
            "messages": messages}


def compute_sql() -> Any:
    """The "compute" workload's statement: CPU in the backend, no I/O, no sleeping."""
    from sqlalchemy import text

    return text("SELECT sum(i % 7) FROM generate_series(1, CAST(:n AS int)) AS i")


def _missing(planned: list[float], seen: list[float]) -> list[float]:
    """Planned arrival times without a recorded outcome (multiset difference)."""
    from collections import Counter

    left = Counter(planned)
    left.subtract(seen)
    return [t for t, n in left.items() for _ in range(max(0, n))]


async def _warm(engine: Any, n: int) -> None:
    """Open `n` connections and give them back: the pool keeps up to pool_size idle."""
    held = [await engine.connect() for _ in range(n)]
    for conn in held:
        await conn.close()


def _worker(target: Target, workload: Workload, index: int, start: float, end: float,
            ready: Any, go: Any, t0: Any, results: Any) -> None:
    """Process entry point: wait for the common start, drive the load, report."""
    told = False
    try:
        # Imports and the engine (no connection yet) are ready before the clock starts.
        engine = _build_engine(target)
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


# --------------------------------------------------------------------------- the monitor


class Monitor:
    """Samples the server connections of one role every MONITOR_INTERVAL seconds."""

    def __init__(self, url: str, user: str | None = None, connect_args: dict | None = None):
        self.url = url
        self.user = user
        self.connect_args = dict(connect_args or {})
        self.samples: list[tuple[float, int]] = []
        self.baseline = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._started = threading.Event()

    def _kwargs(self) -> dict[str, Any]:
        from sqlalchemy.engine import make_url

        u = make_url(self.url)
        kw: dict[str, Any] = {"host": u.host, "port": u.port, "user": u.username,
                              "password": u.password, "database": u.database,
                              "statement_cache_size": 0, "timeout": 10}
        ssl = u.query.get("ssl") or self.connect_args.get("ssl")
        if ssl:
            kw["ssl"] = ssl
        if isinstance(u.query.get("host"), str):  # unix socket in ?host=
            kw["host"] = u.query["host"]
        return {k: v for k, v in kw.items() if v is not None}

    async def _count(self, conn: Any) -> int:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 "
            "AND datname = current_database() AND pid <> pg_backend_pid()",
            self.user))

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(**self._kwargs())
        try:
            if self.user is None:
                self.user = await conn.fetchval("SELECT current_user")
            self.baseline = await self._count(conn)
            self._started.set()
            while not self._stop.is_set():
                t = time.time()
                n = await self._count(conn)
                if self._t0:
                    self.samples.append((t - self._t0, n - self.baseline))
                await asyncio.sleep(max(0.0, MONITOR_INTERVAL - (time.time() - t)))
        finally:
            await conn.close()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as exc:  # noqa: BLE001
            self.error = scrub(f"{type(exc).__name__}: {exc}", secrets_of(self.url))
            self._started.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="fleet-monitor", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self.error:
            raise RuntimeError(f"monitor could not connect: {self.error}")

    def mark(self, t0: float) -> None:
        self._t0 = t0

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(15)

    def peak(self, start: float, end: float) -> int:
        """Most connections sampled in [start, end) seconds after the run's start."""
        return max((n for t, n in self.samples if start <= t < end), default=0)

    def settled(self, timeout: float = 15.0) -> bool:
        """Wait until the counted role has no connections beyond the baseline."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.samples and self.samples[-1][1] <= 0:
                return True
            time.sleep(MONITOR_INTERVAL)
        return False


# --------------------------------------------------------------------------- the fleet


def run_fleet(target: Target, workload: Workload, phases: Sequence[Phase],
              monitor: Monitor | None = None, progress: Callable[[str], None] | None = None,
              ) -> FleetResult:
    """Run the phases with real spawned processes; return the figures per phase."""
    if not phases:
        raise ScenarioError("a fleet run needs at least one phase")
    total = sum(p.seconds for p in phases)
    if total > MAX_SECONDS:
        raise ScenarioError(f"a fleet run is bounded to {MAX_SECONDS} s, got {total:g}")
    counts = [p.processes for p in phases]
    if any(b < a for a, b in zip(counts, counts[1:], strict=False)) or counts[0] < 1:
        raise ScenarioError("phases must start with at least one process and never shrink")
    if counts[-1] > MAX_PROCESSES:
        raise ScenarioError(f"at most {MAX_PROCESSES} processes, got {counts[-1]}")
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    t0 = ctx.Value("d", 0.0)
    procs: list[mp.process.BaseProcess] = []
    starts: list[float] = []
    begin = 0.0
    have = 0
    for p in phases:
        for _ in range(p.processes - have):
            starts.append(begin)
        have = p.processes
        begin += p.seconds
    own_monitor = monitor is None
    if monitor is None:
        monitor = Monitor(target.monitor_url or target.url, target.count_user,
                          target.settings.connect_args if target.settings else None)
    say = progress or (lambda _msg: None)
    try:
        if own_monitor:
            monitor.start()
        for i, start in enumerate(starts):
            proc = ctx.Process(target=_worker, name=f"fleet-{i}", daemon=True,
                               args=(target, workload, i, start, total, ready, go, t0, results))
            proc.start()
            procs.append(proc)
        for _ in procs:  # every process imported its libraries before the clock starts
            try:
                ready.get(timeout=120)
            except queue.Empty:
                raise RuntimeError("a fleet process did not start within 120 s") from None
        t0.value = time.time() + 0.3
        monitor.mark(t0.value)
        go.set()
        say(f"{target.settings.name if target.settings else 'export'}: {len(procs)} processes, "
            f"{total:g} s")
        outs: list[dict[str, Any]] = []
        deadline = time.time() + total + DRAIN_SECONDS + 60
        while len(outs) < len(procs):
            try:
                outs.append(results.get(timeout=max(1.0, deadline - time.time())))
            except queue.Empty:
                break
        for proc in procs:
            proc.join(10)
        time.sleep(2 * MONITOR_INTERVAL)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        if own_monitor:
            monitor.stop()
    fatal = [o["fatal"] for o in outs if "fatal" in o]
    if fatal or len(outs) < len(procs):
        raise RuntimeError("fleet process failed: " + (fatal[0] if fatal else
                                                       f"{len(procs) - len(outs)} never reported"))
    return _figures(target, phases, outs, monitor)


def _figures(target: Target, phases: Sequence[Phase], outs: list[dict[str, Any]],
             monitor: Monitor) -> FleetResult:
    settings = target.settings
    per = settings.per_process if settings else 0
    messages: dict[str, str] = {}
    for o in outs:
        for k, v in o["messages"].items():
            messages.setdefault(k, v)
    figures = []
    begin = 0.0
    for n, p in enumerate(phases):
        end = begin + p.seconds
        # The last phase also owns the drain after the clock stopped.
        peak_end = end if n < len(phases) - 1 else math.inf
        counts = [0] * len(OUTCOMES)
        lat_ok: list[float] = []
        for o in outs:
            for at, la, code in zip(o["sched"], o["lat"], o["outcome"], strict=True):
                if begin <= at < end:
                    counts[code] += 1
                    if code == OK:
                        lat_ok.append(la)
        offered = sum(counts)
        p50, p99 = percentile(lat_ok, 50), percentile(lat_ok, 99)
        figures.append(PhaseFigures(
            phase=p.name, processes=p.processes, seconds=p.seconds, offered=offered,
            ok=counts[OK], connection_errors=counts[CONN_ERROR],
            checkout_timeouts=counts[CHECKOUT_TIMEOUT], other_errors=counts[OTHER_ERROR],
            unfinished=counts[UNFINISHED], throughput=counts[OK] / p.seconds,
            offered_rate=offered / p.seconds,
            p50_ms=None if p50 is None else p50 * 1000,
            p99_ms=None if p99 is None else p99 * 1000,
            peak_server_connections=monitor.peak(begin, peak_end), ceiling=per * p.processes))
        begin = end
    return FleetResult(setting=settings.name if settings else "export", phases=tuple(figures),
                       messages=messages, samples=tuple(monitor.samples), per_process=per)


# --------------------------------------------------------------------------- output


def table(results: Sequence[FleetResult]) -> list[list[str]]:
    """Rows (one per setting and phase) of the figures, as strings."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    rows = []
    for r in results:
        for f in r.phases:
            rows.append([r.setting, f.phase, str(f.processes), str(r.per_process or "-"),
                         f"{f.offered_rate:,.1f}", f"{f.throughput:,.1f}",
                         str(f.connection_errors), str(f.checkout_timeouts),
                         str(f.other_errors + f.unfinished), ms(f.p50_ms), ms(f.p99_ms),
                         str(f.peak_server_connections)])
    return rows


HEADER = ["setting", "phase", "processes", "per process", "offered/s", "ok/s", "conn errors",
          "checkout timeouts", "other/lost", "p50 ms", "p99 ms", "peak server conns"]


def text_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def markdown_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the CLI verb


def setup(p: argparse.ArgumentParser) -> None:
    """Flags of `python -m wizard fleet`."""
    p.description = ("Run N real processes, each with its own engine, against your (staging) "
                     "database: read-only SELECT pg_sleep(...) load for a bounded time; "
                     "reports errors, checkout timeouts, throughput, latency and peak "
                     "server connections.")
    p.add_argument("--url", required=True,
                   help="SQLAlchemy URL (postgresql+asyncpg://user@host/db); the password "
                        f"comes from ${PASSWORD_ENV} or the URL and is never printed")
    p.add_argument("--export", metavar="PATH",
                   help="module written by `python -m wizard export`; each process imports "
                        "it and uses its engine (DATABASE_URL is set to --url)")
    p.add_argument("--endpoint", default="primary",
                   help="which engine of the exported module: primary or replica-N")
    p.add_argument("--processes", type=int, default=2, metavar="N")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S",
                   help=f"run time, at most {MAX_SECONDS}")
    p.add_argument("--concurrency", type=int, default=4, metavar="K",
                   help="request loops per process (closed loop, used without --rps)")
    p.add_argument("--rps", type=float, default=0.0,
                   help="open-loop requests/s per process instead of --concurrency loops")
    p.add_argument("--hold-ms", type=float, default=50.0,
                   help="how long each request holds its connection (pg_sleep)")
    p.add_argument("--pool-size", type=int, default=5,
                   help=f"without --export; 0..{MAX_POOL}")
    p.add_argument("--max-overflow", type=int, default=10,
                   help=f"without --export; 0..{MAX_POOL} (never -1, unbounded)")
    p.add_argument("--pool-timeout", type=float, default=30.0,
                   help=f"without --export; seconds in (0, {MAX_POOL_TIMEOUT:g}]")
    p.add_argument("--json", action="store_true")


def _check_args(args: argparse.Namespace) -> None:
    if not 0 < args.seconds <= MAX_SECONDS:
        raise ScenarioError(f"--seconds must be in (0, {MAX_SECONDS}], got {args.seconds:g}")
    if not 1 <= args.processes <= MAX_PROCESSES:
        raise ScenarioError(f"--processes must be 1..{MAX_PROCESSES}, got {args.processes}")
    if not 1 <= args.concurrency <= 1000:
        raise ScenarioError(f"--concurrency must be 1..1000, got {args.concurrency}")
    if not 0 < args.hold_ms <= MAX_HOLD_MS:
        raise ScenarioError(f"--hold-ms must be in (0, {MAX_HOLD_MS}], got {args.hold_ms:g}")
    if not 0 <= args.rps <= 10_000:
        raise ScenarioError(f"--rps must be 0..10000 per process, got {args.rps:g}")
    if not 0 <= args.pool_size <= MAX_POOL:
        raise ScenarioError(f"--pool-size must be 0..{MAX_POOL}, got {args.pool_size}")
    if not 0 <= args.max_overflow <= MAX_POOL:
        raise ScenarioError(f"--max-overflow must be 0..{MAX_POOL} (-1, unbounded, is "
                            f"refused: the run must stay bounded), got {args.max_overflow}")
    if not (math.isfinite(args.pool_timeout) and 0 < args.pool_timeout <= MAX_POOL_TIMEOUT):
        raise ScenarioError(f"--pool-timeout must be in (0, {MAX_POOL_TIMEOUT:g}] seconds, "
                            f"got {args.pool_timeout:g}")
    if args.export and not os.path.isfile(args.export):
        raise ScenarioError(f"--export {args.export!r}: no such file")
    from sqlalchemy.engine import make_url

    try:
        u = make_url(args.url)
    except Exception:  # noqa: BLE001 - the message could echo the URL
        raise ScenarioError("--url is not a SQLAlchemy URL "
                            "(postgresql+asyncpg://user@host:5432/db)") from None
    if not u.drivername.startswith("postgresql"):
        raise ScenarioError(f"--url must be a postgresql+asyncpg URL, got {u.drivername!r}")
    if u.drivername != "postgresql+asyncpg":
        raise ScenarioError("--url must use the asyncpg driver: postgresql+asyncpg://...")
    if _secret_query(u):
        raise ScenarioError(f"--url holds a password or token in its query string; put the "
                            f"password in ${PASSWORD_ENV} instead")
    from wizard.core.findings import url_findings

    for finding in url_findings(args.url):
        raise ScenarioError(f"--url: {finding.message} {finding.fix}")
    _check_allowed(u)


def _check_addresses(host: str, port: int) -> None:
    """The addresses `host` resolves to, judged like the live check's (metadata and
    link-local refused; address patterns of POOLWISE_LIVE_ALLOWED_HOSTS matched against
    them). A name that does not resolve passes only where any host may (the connection
    then reports it)."""
    import socket

    from wizard.live.target import _refused, blocked_address, host_allowed

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if any(blocked_address(a) for a in addrs) or not host_allowed(host, addrs):
        raise _refused()


def _check_allowed(u: Any) -> None:
    """The live check's operator controls apply to the fleet too: POOLWISE_LIVE_DISABLED
    switches it off, POOLWISE_LIVE_ALLOWED_HOSTS limits the hosts, and metadata /
    link-local addresses are always refused (the port list is for web visitors only)."""
    from wizard.live.errors import LiveError
    from wizard.live.target import LiveTarget, check_allowed

    target = LiveTarget(host=u.host or "", port=u.port or 5432, user=u.username or "",
                        database=u.database or "")
    try:
        check_allowed(target, visitor=False)
        _check_addresses(target.host, target.port)
    except LiveError as err:
        if err.code == "disabled":
            raise ScenarioError("fleet runs are switched off here (POOLWISE_LIVE_DISABLED "
                                "covers the live check and the fleet)") from None
        raise ScenarioError("--url: this host is not allowed for a fleet run here "
                            "(POOLWISE_LIVE_ALLOWED_HOSTS; metadata and link-local addresses "
                            "are always refused)") from None


def run(args: argparse.Namespace) -> int:
    """`python -m wizard fleet`: exit 0 without errors, 1 when any request failed."""
    _check_args(args)
    if make_url_password(args.url):
        print(f"warning: the URL holds a password; other users may see it in the process list "
              f"and it may stay in your shell history. Use ${PASSWORD_ENV} instead.",
              file=sys.stderr)
    url = with_password(args.url, os.environ.get(PASSWORD_ENV))
    export_path = os.path.abspath(args.export) if args.export else None
    if export_path:
        module = load_export(export_path)  # what every process will import, checked once here
        check_export(module, args.endpoint)
        label = f"export {os.path.basename(export_path)} [{args.endpoint}]"
        settings = export_settings(module, args.endpoint, label)
        ssl = None
        if callable(getattr(module, "connect_args", None)):
            from sqlalchemy.engine import make_url

            ssl = module.connect_args(args.endpoint, make_url(url)).get("ssl")
        monitor_args = {"ssl": ssl} if ssl else {}
        label += (f": pool_size={settings.pool_size} max_overflow={settings.max_overflow} "
                  f"pool_timeout={settings.pool_timeout:g}")
    else:
        label = (f"pool_size={args.pool_size} max_overflow={args.max_overflow} "
                 f"pool_timeout={args.pool_timeout:g}")
        settings = PoolSettings(label, pool_size=args.pool_size,
                                max_overflow=args.max_overflow, pool_timeout=args.pool_timeout)
        monitor_args = {}
    target = Target(url=url, settings=settings, export_path=export_path,
                    endpoint=args.endpoint)
    workload = Workload(hold_s=args.hold_ms / 1000, rate=args.rps, concurrency=args.concurrency)
    phase = Phase(f"{args.processes} processes", args.processes, args.seconds)
    if not args.json:
        print(f"fleet: {args.processes} processes x "
              + (f"{args.rps:g} req/s" if args.rps else f"{args.concurrency} loops")
              + f" of SELECT pg_sleep({args.hold_ms / 1000:g}) (read-only) for "
              f"{args.seconds:g} s against {_safe_url(args.url)}; {label}", flush=True)
    try:
        monitor = Monitor(url, connect_args=monitor_args)
        monitor.start()
        try:
            result = run_fleet(target, workload, [phase], monitor=monitor)
        finally:
            monitor.stop()
    except RuntimeError as exc:
        print(f"error: {scrub(str(exc), secrets_of(url))}", file=sys.stderr)
        return 1
    if args.json:
        d = result.to_dict()
        d["setting"] = label
        d["url"] = _safe_url(args.url)
        d.pop("samples")
        print(redact.redact(json.dumps(d, indent=2)))  # messages were scrubbed when caught
    else:
        result = dataclasses.replace(result, setting=label)
        print(redact.redact(text_table(table([result]))))
        for k, v in result.messages.items():
            print(redact.redact(f"  first {k}: {v}"))
        f = result.phases[0]
        print("peak server connections counts the URL's role on its database, minus what it "
              "held before the run")
        if f.errors == 0:
            print("no connection errors, checkout timeouts or lost requests")
    return 0 if all(f.errors == 0 for f in result.phases) else 1


def _register() -> None:
    from wizard import cli

    cli.VERBS["fleet"] = (setup, run)


_register()
