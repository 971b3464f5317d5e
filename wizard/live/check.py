"""The live check: read-only readings, pooler detection, pre-ping cost, exhaustion proof.

What it found is a LiveReport (wizard/live/report.py); how it connects is
wizard/live/connect.py; why a connection failed, wizard/live/diagnosis.py.

Every query runs inside BEGIN READ ONLY (PgBouncer refuses default_transaction_read_only
as a startup parameter, and a session-level SET would leak to other clients through a
transaction pooler). Every connection is closed in a finally block and the whole check
runs under asyncio.timeout, so it never holds a connection or runs past its stated limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from wizard.core.model import EngineSettings
from wizard.live.connect import (
    CONNECT_TIMEOUT,
    as_live_error,
    close,
    connect,
    dispose,
    make_engine,
    within,
)
from wizard.live.errors import LiveError, scrub, short
from wizard.live.report import (
    Exhaustion,
    ExhaustionPlan,
    LiveReport,
    PoolerDetection,
    PrePing,
    Readings,
    StageError,
    Timing,
)
from wizard.live.target import LiveTarget, check_allowed

CHECK_TIMEOUT = 30.0  # seconds for readings, pooler detection and pre-ping together
EXHAUSTION_CAP = 50  # never open more holders than this, whatever the pool says
MAX_PRE_PING = 2000
MAX_POOL_TIMEOUT = 60.0

Progress = Callable[[str, float], None]

_SETTINGS = (
    "max_connections", "superuser_reserved_connections", "reserved_connections",
    "idle_session_timeout", "idle_in_transaction_session_timeout", "statement_timeout",
    "tcp_keepalives_idle", "server_version", "server_version_num",
)
_WHOAMI = """
SELECT left(current_user::text, 64) AS usr, left(current_database()::text, 64) AS db,
       r.rolsuper AS superuser, r.rolconnlimit AS connlimit,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
       pg_backend_pid() AS pid, inet_server_port() AS server_port
FROM pg_roles r WHERE r.rolname = current_user
"""
# Client backends only: background workers, autovacuum and WAL senders have their own
# slots. Other roles' backend_type and state are hidden from non-privileged users, so
# "no user or no database" rules out background processes for them (the logical
# replication launcher runs as the bootstrap superuser without a database).
# Counted in SQL, never row by row: at most MAX_STATES states, the TOP_APPS busiest
# application names (cut to NAME_CHARS) and one row for the rest, whatever the server holds.
_ACTIVITY = """
WITH a AS (
  SELECT coalesce(state, '(hidden)') AS state,
         coalesce(nullif(application_name, ''), '(none)') AS app
  FROM pg_stat_activity
  WHERE usesysid IS NOT NULL AND datid IS NOT NULL
    AND coalesce(backend_type, 'client backend') = 'client backend'
), apps AS (
  SELECT app, count(*)::int AS n FROM a GROUP BY app
), top AS (
  SELECT app, n FROM apps ORDER BY n DESC, app LIMIT $1
)
(SELECT 'state'::text AS kind, left(state, $3) AS name, count(*)::int AS n FROM a
 GROUP BY state ORDER BY 3 DESC LIMIT $2)
UNION ALL (SELECT 'app', left(app, $3), n FROM top)
UNION ALL (SELECT 'more', count(*)::text, coalesce(sum(n), 0)::int FROM apps
           WHERE app NOT IN (SELECT app FROM top))
"""
TOP_APPS = 50  # application names listed one by one; the rest as one "(N more names)"
MAX_STATES = 16
NAME_CHARS = 64  # PostgreSQL keeps 63 bytes of an application_name
TEXT_CHARS = 200  # any other server text kept or shown (versions, messages)
_PID_QUERY = "SELECT pg_backend_pid() + $1::int"


# --------------------------------------------------------------------------- helpers


def _noop(stage: str, fraction: float) -> None:
    return None


def stated_limit(
    *, timeout: float = CHECK_TIMEOUT, exhaustion: EngineSettings | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> float:
    """The most seconds a check may take, stated before it starts."""
    if exhaustion is None:
        return timeout
    # + a fresh reading under the lock, the holders' connects and the extra checkout
    return timeout + min(exhaustion.pool_timeout, MAX_POOL_TIMEOUT) + 3 * connect_timeout


def _ms_value(setting: str | None, unit: str | None) -> int | None:
    if setting is None:
        return None
    factor = {"ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}.get(unit or "ms", 1)
    return int(setting) * factor


def _timing(samples_s: list[float]) -> Timing:
    ms = [s * 1000 for s in samples_s]
    if len(ms) < 2:
        v = ms[0] if ms else 0.0
        return Timing(len(ms), v, v, v, v)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return Timing(len(ms), round(q[49], 4), round(q[94], 4), round(q[98], 4),
                  round(statistics.fmean(ms), 4))


# --------------------------------------------------------------------------- stages


def _too_many(what: str, n: int, most: int) -> LiveError:
    return LiveError(f"The server answered {n:,} rows for {what} where the query asks for at "
                     f"most {most}; the live check refused the answer.",
                     "point the check at a PostgreSQL server or pooler.", "oversized")


def _text(value: object, most: int = TEXT_CHARS) -> str:
    """Server text as kept and shown: one line, at most `most` characters."""
    return short(str(value)[:most * 4], most)


async def read_server(conn: asyncpg.Connection) -> Readings:
    """Settings, sessions by state and application, and the role, in a read-only transaction.

    Bounded whatever the server holds or sends: pg_stat_activity is counted in SQL (see
    _ACTIVITY), more rows than asked for are refused, and every text is cut short."""
    async with conn.transaction(readonly=True):
        rows = await conn.fetch("SELECT name, setting, unit FROM pg_settings "
                                "WHERE name = ANY($1::text[])", list(_SETTINGS))
        if len(rows) > len(_SETTINGS):
            raise _too_many("settings", len(rows), len(_SETTINGS))
        who = await conn.fetchrow(_WHOAMI)
        activity = await conn.fetch(_ACTIVITY, TOP_APPS, MAX_STATES, NAME_CHARS)
        if len(activity) > TOP_APPS + MAX_STATES + 1:
            raise _too_many("connections", len(activity), TOP_APPS + MAX_STATES + 1)
    s = {r["name"]: (r["setting"], r["unit"]) for r in rows}
    by_state: dict[str, int] = {}
    by_app: dict[str, int] = {}
    for r in activity:
        name, n = _text(r["name"], NAME_CHARS), int(r["n"])
        if r["kind"] == "state":
            by_state[name] = by_state.get(name, 0) + n
        elif r["kind"] == "app":
            by_app[name] = by_app.get(name, 0) + n
        elif n:
            by_app[f"({int(name):,} more names)"] = n
    reserved = s.get("reserved_connections")
    sees_all = bool(who["superuser"] or who["read_all_stats"])
    return Readings(
        server_version=_text(s["server_version"][0], 64),
        server_version_num=int(s["server_version_num"][0]),
        max_connections=int(s["max_connections"][0]),
        superuser_reserved_connections=int(s["superuser_reserved_connections"][0]),
        reserved_connections=int(reserved[0]) if reserved else None,
        in_use=sum(by_state.values()),
        by_state=dict(sorted(by_state.items())),
        by_application=dict(sorted(by_app.items())),
        sees_all_sessions=sees_all,
        idle_session_timeout_ms=_ms_value(*s.get("idle_session_timeout", (None, None))),
        idle_in_transaction_session_timeout_ms=_ms_value(
            *s.get("idle_in_transaction_session_timeout", (None, None))),
        statement_timeout_ms=_ms_value(*s.get("statement_timeout", (None, None))),
        tcp_keepalives_idle_s=int(s["tcp_keepalives_idle"][0])
        if "tcp_keepalives_idle" in s else None,
        is_superuser=bool(who["superuser"]),
        role_connection_limit=int(who["connlimit"]),
        user=_text(who["usr"], NAME_CHARS),
        database=_text(who["db"], NAME_CHARS),
        server_port=who["server_port"],
    )


async def _two_transactions(t: LiveTarget, timeout: float, cache: bool
                            ) -> tuple[int | None, int | None, str, bool]:
    """One client runs the same prepared query in two transactions, with a second client
    holding a server connection in between so a pooler must hand over another backend.

    Returns (backend pid 1, pid 2, driver error, queued) - queued means the second client
    waited for a server connection, which only a pooler makes it do.
    """
    a = b = None
    try:
        a = await connect(t, timeout, cache=cache)
        b = await connect(t, timeout, cache=cache)
        await a.execute("BEGIN READ ONLY")
        try:
            async with asyncio.timeout(2.0):
                await b.execute("BEGIN READ ONLY")
        except TimeoutError:
            b.terminate()
            await a.execute("ROLLBACK")
            return None, None, "", True
        pid1 = await a.fetchval(_PID_QUERY, 0)
        await a.execute("COMMIT")
        await b.execute("COMMIT")
        await a.execute("BEGIN READ ONLY")
        try:
            pid2 = await a.fetchval(_PID_QUERY, 0)
            error = ""
        except asyncpg.PostgresError as exc:
            pid2, error = None, _text(scrub(str(exc), t.password))
        await a.execute("ROLLBACK")
        return pid1, pid2, error, False
    except Exception as exc:  # a LiveError passes as it is
        raise await as_live_error(exc, t, timeout) from None
    finally:
        await close(a)
        await close(b)


async def detect_pooler(t: LiveTarget, readings: Readings | None,
                        timeout: float = CONNECT_TIMEOUT) -> PoolerDetection:
    """Tell a transaction-mode pooler from a direct (or session-pooled) server.

    Uses asyncpg's named-statement cache on purpose: a pooler that hands each transaction
    another backend loses the statement ("prepared statement ... does not exist").
    """
    pid1, pid2, error, queued = await within(_two_transactions(t, timeout, cache=True), None,
                                             "pooler detection", 3 * timeout)
    changed = pid1 is not None and pid2 is not None and pid1 != pid2
    breaks = bool(error) and "prepared statement" in error
    cache_off_works = None
    if breaks or changed or queued:
        p1, p2, err2, q2 = await within(_two_transactions(t, timeout, cache=False), None,
                                        "pooler detection", 3 * timeout)
        cache_off_works = not err2 and not q2
        changed = changed or (p1 is not None and p2 is not None and p1 != p2)
    server_port = readings.server_port if readings else None
    port_differs = server_port is not None and server_port != t.port
    pick = ("pick a transaction-mode proxy type (pgbouncer-transaction, or azure-pgbouncer, "
            "supavisor-transaction, neon-pooler for those providers)")
    if breaks:
        kind, suggested = "transaction-pooler", "pgbouncer-transaction"
        message = (f"A transaction-mode pooler: named prepared statements break ({error}); "
                   + ("with the statement cache off it works. " if cache_off_works else "")
                   + pick.capitalize() + ".")
    elif changed:
        kind, suggested = "transaction-pooler", "pgbouncer-transaction"
        message = ("A transaction-mode pooler that keeps prepared statements working (e.g. "
                   "PgBouncer >= 1.21 with max_prepared_statements): one client connection "
                   "was served by two backends. " + pick.capitalize() + ".")
    elif queued:
        kind, suggested = "pooler", None
        message = ("A pooler with a full server pool: a second client waited for a server "
                   "connection. Check the pooler's pool size.")
    else:
        kind, suggested = "direct-or-session", None
        message = "Direct to PostgreSQL or a session-mode pooler: prepared statements work."
        if port_differs:
            message += (f" The server listens on port {server_port}, not {t.port}: a proxy, "
                        "pooler or port forward sits in between.")
    return PoolerDetection(kind, changed, breaks, error, cache_off_works, server_port,
                           port_differs, message, suggested)


async def measure_pre_ping(t: LiveTarget, n: int, *, cache: bool,
                           timeout: float = CONNECT_TIMEOUT,
                           progress: Progress = _noop) -> PrePing:
    """n pre-pinged checkouts, n plain checkouts and n SELECT 1 round trips, side by side."""
    conn = None
    engines: list[AsyncEngine] = []
    try:
        t0 = time.perf_counter()
        conn = await connect(t, timeout, cache=cache)
        connect_s = time.perf_counter() - t0
        await conn.fetchval("SELECT 1")  # warm the statement (cache) like a pool would
        select1: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            select1.append(time.perf_counter() - t0)
        progress("pre-ping", 0.33)
        results: dict[bool, list[float]] = {}
        first_s = 0.0
        for pre_ping in (True, False):
            engine = make_engine(t, timeout, cache=cache, pre_ping=pre_ping, pool_timeout=timeout)
            engines.append(engine)
            t0 = time.perf_counter()
            async with engine.connect():
                pass
            if pre_ping:
                first_s = time.perf_counter() - t0
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                async with engine.connect():
                    pass
                samples.append(time.perf_counter() - t0)
            results[pre_ping] = samples
            progress("pre-ping", 0.66 if pre_ping else 1.0)
    except Exception as exc:  # a LiveError passes as it is
        raise await as_live_error(exc, t, timeout) from None
    finally:
        await close(conn)
        for engine in engines:
            await dispose(engine)
    return PrePing(n=n, connect_ms=round(connect_s * 1000, 3),
                   engine_connect_ms=round(first_s * 1000, 3),
                   pre_ping_checkout=_timing(results[True]),
                   plain_checkout=_timing(results[False]), select1=_timing(select1),
                   statement_cache=cache)


def exhaustion_plan(settings: EngineSettings, readings: Readings | None) -> ExhaustionPlan:
    """How many connections the exhaustion test opens, and whether it may run at all."""
    holders = settings.pool_size + settings.max_overflow + 1
    free = readings.free if readings else None
    args = (holders, settings.pool_size, settings.max_overflow, settings.pool_timeout, free,
            EXHAUSTION_CAP)
    if settings.poolclass == "NullPool":
        return ExhaustionPlan(*args, False, "NullPool has no limit to exhaust: nothing to prove.")
    if settings.pool_timeout > MAX_POOL_TIMEOUT:
        return ExhaustionPlan(*args, False, f"pool_timeout {settings.pool_timeout:g} s is over "
                              f"the test's limit of {MAX_POOL_TIMEOUT:g} s.")
    if holders > EXHAUSTION_CAP:
        return ExhaustionPlan(*args, False, f"{holders} holders is over the test's cap of "
                              f"{EXHAUSTION_CAP}: it would load the server for a proof.")
    if free is None:
        return ExhaustionPlan(*args, False, "free connections unknown: run the readings first.")
    if holders > free:
        return ExhaustionPlan(*args, False, f"the test needs {holders} connections but the "
                              f"server has only {free} free for this role.")
    return ExhaustionPlan(*args, True, "fits in the server's free connections.")


async def prove_exhaustion(t: LiveTarget, settings: EngineSettings, plan: ExhaustionPlan, *,
                           cache: bool, timeout: float = CONNECT_TIMEOUT,
                           progress: Progress = _noop) -> Exhaustion:
    """Hold pool_size + max_overflow connections, show the next one times out, release all."""
    if not plan.allowed:
        raise LiveError(f"Exhaustion test refused: {plan.reason}",
                        "lower pool_size/max_overflow for the test, or run it when the server "
                        "has more free connections.", "exhaustion_refused")
    engine = make_engine(t, timeout, cache=cache, pool_size=settings.pool_size,
                     max_overflow=settings.max_overflow, pool_timeout=settings.pool_timeout,
                     pre_ping=settings.pool_pre_ping, lifo=settings.pool_use_lifo)
    held = []
    timed_out, waited, error, checked_out = False, 0.0, "", 0
    try:
        for i in range(plan.holders - 1):
            held.append(await engine.connect())
            progress("exhaustion", 0.5 * (i + 1) / (plan.holders - 1))
        checked_out = engine.sync_engine.pool.checkedout()
        t0 = time.perf_counter()
        try:
            extra = await engine.connect()
        except sa_exc.TimeoutError as exc:
            timed_out, error = True, str(exc).splitlines()[0]
        else:
            await extra.close()
            error = "the extra checkout got a connection: the pool did not limit it"
        waited = time.perf_counter() - t0
        progress("exhaustion", 0.9)
    except Exception as exc:  # a LiveError passes as it is
        raise await as_live_error(exc, t, timeout) from None
    finally:
        for conn in held:
            with contextlib.suppress(Exception):
                await conn.close()
        await dispose(engine)
    return Exhaustion(holders=plan.holders, opened=len(held), server_connections=checked_out,
                      timed_out=timed_out, waited_s=round(waited, 3),
                      pool_timeout=settings.pool_timeout, error=error, released=True)


# One exhaustion test at a time in this process: parallel tests (several visitors, or one
# visitor's tabs) would each see the same free slots and together fill the database.
EXHAUSTION_LOCK = threading.Lock()


async def exhaustion_under_lock(t: LiveTarget, settings: EngineSettings, *, cache: bool,
                                timeout: float, progress: Progress = _noop,
                                confirmed: Readings | None = None,
                                ) -> tuple[ExhaustionPlan, Exhaustion | None, LiveError | None]:
    """Plan and run the exhaustion test holding EXHAUSTION_LOCK, with the free-connection
    figure measured again under the lock (readings taken before it may be stale); with
    `confirmed` readings (what the user agreed to), the smaller free figure wins."""
    if not EXHAUSTION_LOCK.acquire(blocking=False):
        err = LiveError("Another exhaustion test is running on this server right now.",
                        "try again in a minute; tests run one at a time so that together "
                        "they never fill the database.", "exhaustion_busy")
        return exhaustion_plan(settings, None), None, err
    try:
        conn = await connect(t, timeout)
        try:
            fresh = await within(read_server(conn), conn, "readings", timeout)
        except Exception as exc:
            raise await as_live_error(exc, t, timeout) from None
        finally:
            await close(conn)
        # `fresh.free` counts the reading connection as used: one slot of margin.
        if confirmed is not None and confirmed.free < fresh.free:
            fresh = confirmed
        plan = exhaustion_plan(settings, fresh)
        try:
            return plan, await prove_exhaustion(t, settings, plan, cache=cache,
                                                timeout=timeout, progress=progress), None
        except LiveError as err:
            return plan, None, err
    finally:
        EXHAUSTION_LOCK.release()


# --------------------------------------------------------------------------- the check


async def run_live_check(
    target: LiveTarget,
    *,
    pre_ping: int = 20,
    exhaustion: EngineSettings | None = None,
    timeout: float = CHECK_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    progress: Progress | None = None,
    visitor: bool = True,
) -> LiveReport:
    """Run the live check; raise LiveError if the endpoint cannot be checked at all.

    Stages report through progress(stage, fraction): connect, readings, pooler, pre-ping,
    exhaustion (only with `exhaustion` settings), done. A refused or failed later stage
    lands in report.errors. Nothing is written; every connection is closed on return.
    `visitor` (the web app) also applies the operator's port list; the CLI passes False.
    """
    progress = progress or _noop
    check_allowed(target, visitor=visitor)
    if not 0 <= pre_ping <= MAX_PRE_PING:
        raise LiveError(f"pre-ping count {pre_ping} is out of range.",
                        f"use 0 to {MAX_PRE_PING}.", "bad_input")
    started = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    limit = stated_limit(timeout=timeout, exhaustion=exhaustion, connect_timeout=connect_timeout)
    t_start = time.perf_counter()
    readings = pooler = pre = plan = result = None
    errors: list[StageError] = []
    try:
        async with asyncio.timeout(limit):
            progress("connect", 0.0)
            conn = await connect(target, connect_timeout)
            try:
                progress("readings", 0.0)
                readings = await within(read_server(conn), conn, "readings", connect_timeout)
            except Exception as exc:
                raise await as_live_error(exc, target, connect_timeout) from None
            finally:
                await close(conn)
            progress("readings", 1.0)
            progress("pooler", 0.0)
            pooler = await detect_pooler(target, readings, connect_timeout)
            progress("pooler", 1.0)
            cache = not pooler.named_statements_break
            if pre_ping:
                progress("pre-ping", 0.0)
                pre = await measure_pre_ping(target, pre_ping, cache=cache,
                                             timeout=connect_timeout, progress=progress)
            if exhaustion is not None:
                progress("exhaustion", 0.0)
                plan, result, err = await exhaustion_under_lock(
                    target, exhaustion, cache=cache, timeout=connect_timeout,
                    progress=progress)
                if err is not None:
                    errors.append(StageError("exhaustion", err.code, err.message, err.fix))
                progress("exhaustion", 1.0)
    except TimeoutError:
        raise LiveError(f"The live check went past its limit of {limit:g} s.",
                        "the endpoint answers too slowly: check the network path, or lower "
                        "--pre-ping.", "over_limit") from None
    progress("done", 1.0)
    return LiveReport(target=str(target), started_at=started, limit_s=limit,
                      elapsed_s=round(time.perf_counter() - t_start, 3), readings=readings,
                      pooler=pooler, pre_ping=pre, exhaustion_plan=plan, exhaustion=result,
                      errors=tuple(errors))


async def run_exhaustion(
    target: LiveTarget,
    settings: EngineSettings,
    readings: Readings,
    *,
    statement_cache: bool = True,
    connect_timeout: float = CONNECT_TIMEOUT,
    progress: Progress | None = None,
    visitor: bool = True,
) -> Exhaustion:
    """The exhaustion test alone (after the user confirmed exhaustion_plan), bounded.

    Runs under EXHAUSTION_LOCK with free connections measured again there; `readings` only
    states what the user confirmed."""
    check_allowed(target, visitor=visitor)
    limit = stated_limit(timeout=0, exhaustion=settings, connect_timeout=connect_timeout)
    try:
        async with asyncio.timeout(limit + 5):
            _, result, err = await exhaustion_under_lock(
                target, settings, cache=statement_cache, timeout=connect_timeout,
                progress=progress or _noop, confirmed=readings)
            if err is not None:
                raise err
            return result
    except TimeoutError:
        raise LiveError(f"The exhaustion test went past its limit of {limit + 5:g} s.",
                        "the endpoint answers too slowly: check the network path.",
                        "over_limit") from None


