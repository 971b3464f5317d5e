"""The live check: read-only readings, pooler detection, pre-ping cost, exhaustion proof.

Every query runs inside BEGIN READ ONLY (PgBouncer refuses default_transaction_read_only
as a startup parameter, and a session-level SET would leak to other clients through a
transaction pooler). Every connection is closed in a finally block and the whole check
runs under asyncio.timeout, so it never holds a connection or runs past its stated limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from wizard.core.model import EngineSettings, Scenario
from wizard.live.errors import LiveError, classify, scrub, short
from wizard.live.target import LiveTarget, check_allowed, resolve_checked
from wizard.live.wire import BoundedLoop
from wizard.scenario import links

APP_NAME = "poolwise-live"
CONNECT_TIMEOUT = 5.0  # seconds per connection attempt
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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Readings:
    """What the server says about itself, read in one read-only transaction."""

    server_version: str
    server_version_num: int
    max_connections: int
    superuser_reserved_connections: int
    reserved_connections: int | None  # None before PostgreSQL 16
    in_use: int  # client backends visible to this role, this check's own included
    by_state: dict[str, int]
    by_application: dict[str, int]
    sees_all_sessions: bool
    idle_session_timeout_ms: int | None
    idle_in_transaction_session_timeout_ms: int | None
    statement_timeout_ms: int | None
    tcp_keepalives_idle_s: int | None
    is_superuser: bool
    role_connection_limit: int  # -1 = none
    user: str
    database: str
    server_port: int | None

    @property
    def major_version(self) -> int:
        return self.server_version_num // 10000

    @property
    def reserved(self) -> int:
        """Slots a non-superuser can never take."""
        return self.superuser_reserved_connections + (self.reserved_connections or 0)

    @property
    def free(self) -> int:
        """Connections this role could still open now (its own connection counted as used)."""
        cap = self.max_connections - self.in_use
        if not self.is_superuser:
            cap -= self.reserved
        return max(cap, 0)


@dataclass(frozen=True)
class Timing:
    """Latency percentiles of n samples, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float


@dataclass(frozen=True)
class PrePing:
    """What pool_pre_ping costs here: checkouts with and without it vs SELECT 1."""

    n: int
    connect_ms: float  # one raw asyncpg connect, TLS and auth included
    engine_connect_ms: float  # the engine's first checkout (connect + dialect setup)
    pre_ping_checkout: Timing
    plain_checkout: Timing
    select1: Timing
    statement_cache: bool

    @property
    def ratio_p50(self) -> float:
        """Pre-pinged checkout p50 over SELECT 1 p50."""
        return self.pre_ping_checkout.p50_ms / self.select1.p50_ms if self.select1.p50_ms else 0


@dataclass(frozen=True)
class PoolerDetection:
    """Whether the endpoint multiplexes server connections per transaction."""

    kind: str  # "direct-or-session", "transaction-pooler", "pooler"
    backend_changed: bool
    named_statements_break: bool
    driver_error: str
    cache_off_works: bool | None
    server_port: int | None
    port_differs: bool
    message: str
    suggested_proxy: str | None


@dataclass(frozen=True)
class ExhaustionPlan:
    """What the exhaustion test would open, shown before the user confirms."""

    holders: int
    pool_size: int
    max_overflow: int
    pool_timeout: float
    free: int | None
    cap: int
    allowed: bool
    reason: str

    @property
    def summary(self) -> str:
        free = "unknown" if self.free is None else str(self.free)
        return (f"opens {self.holders} connections (pool_size {self.pool_size} + max_overflow "
                f"{self.max_overflow} + 1 extra) for about {self.pool_timeout:g} s; "
                f"free on the server: {free}")


@dataclass(frozen=True)
class Exhaustion:
    """The proof: the holder past pool_size + max_overflow gets TimeoutError."""

    holders: int
    opened: int
    server_connections: int  # connections the pool really had checked out while holding
    timed_out: bool
    waited_s: float
    pool_timeout: float
    error: str
    released: bool


@dataclass(frozen=True)
class StageError:
    stage: str
    code: str
    message: str
    fix: str


@dataclass(frozen=True)
class LiveReport:
    """Everything one live check measured; holds no password."""

    target: str
    started_at: str
    limit_s: float
    elapsed_s: float
    readings: Readings | None = None
    pooler: PoolerDetection | None = None
    pre_ping: PrePing | None = None
    exhaustion_plan: ExhaustionPlan | None = None
    exhaustion: Exhaustion | None = None
    errors: tuple[StageError, ...] = ()

    @property
    def source(self) -> str:
        """How overrides from this check are labelled in the recommendation."""
        return f"measured {self.started_at}"

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = self.source
        if self.readings:
            d["readings"].update(free=self.readings.free, reserved=self.readings.reserved,
                                 major_version=self.readings.major_version)
        if self.pre_ping:
            d["pre_ping"]["ratio_p50"] = round(self.pre_ping.ratio_p50, 3)
        if self.exhaustion_plan:
            d["exhaustion_plan"]["summary"] = self.exhaustion_plan.summary
        d["overrides"] = report_overrides(self)
        return d


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


def _connect_kwargs(t: LiveTarget, timeout: float, cache: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "host": t.host, "port": t.port, "user": t.user, "database": t.database,
        "timeout": timeout, "sslmode": t.ssl, "password": t.password or "",
        "server_settings": {"application_name": APP_NAME},
        # Every query and the polite close wait at most this long for the server: a server
        # that stops answering cannot hold a pooled connection (or its close) open.
        "command_timeout": timeout,
    }
    if not cache:
        kw["statement_cache_size"] = 0
    return kw


def _ssl_context(mode: str) -> ssl_module.SSLContext:
    """A TLS context built here, never from PGSSLCERT/PGSSLKEY/PGSSLROOTCERT or ~/.postgresql:
    the server's client certificate must never be offered to a host a visitor typed."""
    if mode in ("verify-ca", "verify-full"):
        ctx = ssl_module.create_default_context()  # the system trust store
        ctx.check_hostname = mode == "verify-full"
        return ctx
    ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl_module.CERT_NONE
    return ctx


async def isolated_connect(*, sslmode: str = "prefer", password: str = "",
                           **kw: Any) -> asyncpg.Connection:
    """asyncpg.connect using only the given values: no libpq environment, ever.

    With password=None asyncpg would read PGPASSWORD, PGPASSFILE or ~/.pgpass, and with a
    string sslmode PGSSLCERT/PGSSLKEY and ~/.postgresql; an explicit password (possibly
    empty), an explicit SSLContext and explicit values for every other parameter asyncpg
    would take from the environment (PGSSLNEGOTIATION, PGTARGETSESSIONATTRS,
    PGKRBSRVNAME, PGGSSLIB) close each fallback. Host, port, user and database are always
    given, so PGHOST/PGPORT/PGUSER/PGDATABASE are never read either.
    """
    for key in ("host", "port", "user", "database"):
        if not kw.get(key):
            raise LiveError(f"internal: the live check needs an explicit {key}.",
                            "report this bug.", "failed")
    kw.pop("ssl", None)
    # A long reader (observe) passes its own BoundedLoop to renew the budget per reading.
    loop = kw.pop("bounded_loop", None) or BoundedLoop(asyncio.get_running_loop())
    addrs = await resolve_checked(kw["host"], int(kw["port"]))
    if sslmode != "verify-full":  # verify-full must check the certificate against the name
        kw["host"], kw["port"] = addrs, [int(kw["port"])] * len(addrs)
    kw.update(password=password or "", passfile=None, direct_tls=False,
              target_session_attrs="any", krbsrvname="postgres", gsslib="gssapi",
              loop=loop)  # at most 1 MiB read (wire.py)
    if sslmode == "disable":
        return await asyncpg.connect(ssl=False, **kw)
    try:
        return await asyncpg.connect(ssl=_ssl_context(sslmode), **kw)
    except (ConnectionError, ssl_module.SSLError) as exc:
        # prefer / allow: like libpq, fall back to plain text when the server has no TLS.
        if sslmode not in ("prefer", "allow") or (
            isinstance(exc, ConnectionError) and "rejected ssl upgrade" not in str(exc).lower()
            and not isinstance(exc, ssl_module.SSLError)
        ):
            raise
    return await asyncpg.connect(ssl=False, **kw)


def _unwrap(exc: BaseException) -> BaseException:
    """The driver's own exception behind SQLAlchemy's wrappers."""
    seen = 0
    # A TimeoutError from asyncio.timeout is caused by a CancelledError: keep the timeout.
    while seen < 5 and not isinstance(exc, TimeoutError):
        seen += 1
        inner = getattr(exc, "orig", None) or exc.__cause__
        if inner is None or inner is exc:
            break
        exc = inner
    return exc


async def _as_live_error(exc: BaseException, t: LiveTarget, timeout: float) -> LiveError:
    return await classify(_unwrap(exc), host=t.host, port=t.port, user=t.user,
                          database=t.database, ssl=t.ssl, timeout=timeout, password=t.password)


async def _connect(t: LiveTarget, timeout: float, *, cache: bool = False) -> asyncpg.Connection:
    try:
        async with asyncio.timeout(timeout):
            return await isolated_connect(**_connect_kwargs(t, timeout, cache))
    except Exception as exc:
        raise await _as_live_error(exc, t, timeout) from None


def _stalled(stage: str, seconds: float) -> LiveError:
    return LiveError(f"The server logged in, then sent no answer for the {stage} within "
                     f"{seconds:g} s; the live check stopped.",
                     "check the server's load and the network path, then run it again.",
                     "stalled")


async def _phase(work: Any, conn: asyncpg.Connection | None, stage: str, seconds: float) -> Any:
    """Await one phase of the check within `seconds`; a stalled server is cut off at once
    (its connection dropped, not closed politely), so no phase outlives its limit."""
    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        if conn is not None:
            conn.terminate()
        raise _stalled(stage, seconds) from None


async def _close(conn: asyncpg.Connection | None) -> None:
    if conn is None or conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 1)
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:
        conn.terminate()


async def _dispose(engine: AsyncEngine, seconds: float = 2.0) -> None:
    """engine.dispose(), given at most `seconds`: a stalled server cannot make the close
    outlive the check's limit (the sockets are dropped with the engine)."""
    try:
        await asyncio.wait_for(engine.dispose(), seconds)
    except (TimeoutError, OSError, asyncpg.PostgresError, sa_exc.SQLAlchemyError):
        pass


def _engine(t: LiveTarget, timeout: float, *, cache: bool, pool_size: int = 1,
            max_overflow: int = 0, pool_timeout: float = 5.0, pre_ping: bool = True,
            lifo: bool = False) -> AsyncEngine:
    # The password goes in connect_args, never in a URL that could be logged or shown.
    url = URL.create("postgresql+asyncpg", username=t.user, host=t.host, port=t.port,
                     database=t.database)
    args = _connect_kwargs(t, timeout, cache)
    for key in ("host", "port", "user", "database"):
        args.pop(key)
    if not cache:
        args["prepared_statement_cache_size"] = 0
    # SQLAlchemy's asyncpg adapter calls this instead of asyncpg.connect (same isolation).
    args["async_creator_fn"] = isolated_connect
    return create_async_engine(url, connect_args=args, pool_size=pool_size,
                               max_overflow=max_overflow, pool_timeout=pool_timeout,
                               pool_pre_ping=pre_ping, pool_use_lifo=lifo, pool_recycle=-1)


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
        a = await _connect(t, timeout, cache=cache)
        b = await _connect(t, timeout, cache=cache)
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
    except LiveError:
        raise
    except Exception as exc:
        raise await _as_live_error(exc, t, timeout) from None
    finally:
        await _close(a)
        await _close(b)


async def detect_pooler(t: LiveTarget, readings: Readings | None,
                        timeout: float = CONNECT_TIMEOUT) -> PoolerDetection:
    """Tell a transaction-mode pooler from a direct (or session-pooled) server.

    Uses asyncpg's named-statement cache on purpose: a pooler that hands each transaction
    another backend loses the statement ("prepared statement ... does not exist").
    """
    pid1, pid2, error, queued = await _phase(_two_transactions(t, timeout, cache=True), None,
                                             "pooler detection", 3 * timeout)
    changed = pid1 is not None and pid2 is not None and pid1 != pid2
    breaks = bool(error) and "prepared statement" in error
    cache_off_works = None
    if breaks or changed or queued:
        p1, p2, err2, q2 = await _phase(_two_transactions(t, timeout, cache=False), None,
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
        conn = await _connect(t, timeout, cache=cache)
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
            engine = _engine(t, timeout, cache=cache, pre_ping=pre_ping, pool_timeout=timeout)
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
    except LiveError:
        raise
    except Exception as exc:
        raise await _as_live_error(exc, t, timeout) from None
    finally:
        await _close(conn)
        for engine in engines:
            await _dispose(engine)
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
    engine = _engine(t, timeout, cache=cache, pool_size=settings.pool_size,
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
    except LiveError:
        raise
    except Exception as exc:
        raise await _as_live_error(exc, t, timeout) from None
    finally:
        for conn in held:
            with contextlib.suppress(Exception):
                await conn.close()
        await _dispose(engine)
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
        conn = await _connect(t, timeout)
        try:
            fresh = await _phase(read_server(conn), conn, "readings", timeout)
        except Exception as exc:
            raise await _as_live_error(exc, t, timeout) from None
        finally:
            await _close(conn)
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
            conn = await _connect(target, connect_timeout)
            try:
                progress("readings", 0.0)
                readings = await _phase(read_server(conn), conn, "readings", connect_timeout)
            except Exception as exc:
                raise await _as_live_error(exc, target, connect_timeout) from None
            finally:
                await _close(conn)
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


# --------------------------------------------------------------------------- feed back


def report_overrides(report: LiveReport) -> dict[str, str]:
    """Measured values as flat share/CLI parameters (see wizard.scenario.links.PARAMS).

    reserved_connections (PostgreSQL 16+) is the slot the providers use for their own
    roles, so a measured value replaces the provider-reserved default.
    """
    r = report.readings
    if r is None:
        return {}
    out = {"max_connections": str(r.max_connections),
           "superuser_reserved": str(r.superuser_reserved_connections),
           "pg_version": str(r.major_version)}
    if r.reserved_connections is not None:
        out["provider_reserved"] = str(r.reserved_connections)
    out["max_connections_source"] = report.source
    return out


def endpoint_overrides(flat: dict[str, str], report: LiveReport,
                       role: str = "primary") -> dict[str, str]:
    """The share parameters the measured values change when the check ran on endpoint
    `role`: the primary takes every measured setting, a replica its own max_connections."""
    measured = report_overrides(report)
    if not measured or report.readings is None:
        return {}
    if role == "primary":
        return measured
    n = int(flat.get("replicas") or 0)
    try:
        i = int(role.rsplit("-", 1)[1]) - 1
    except (IndexError, ValueError):
        return {}
    if not role.startswith("replica-") or not 0 <= i < n:
        return {}
    items = (flat.get("replica_max_connections") or "").split(",")
    items = (items + [""] * n)[:n]
    items[i] = str(report.readings.max_connections)
    return {"replica_max_connections": ",".join(items)}


def apply_overrides(scenario: Scenario, report: LiveReport, role: str = "primary") -> Scenario:
    """`scenario` with the values measured on endpoint `role` in place, sourced
    "measured <timestamp>" (see endpoint_overrides)."""
    if report.readings is None:
        return scenario
    flat = links.to_flat(scenario)
    return links.from_flat({**flat, **endpoint_overrides(flat, report, role)})
