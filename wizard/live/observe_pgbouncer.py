"""Observe through PgBouncer's admin console (URL database `pgbouncer`): a second source.

Every interval `SHOW POOLS` (per database/user pair: clients active and waiting, server
connections active); at the start and the end `SHOW STATS` (transactions and their time,
per database), so: transactions per second and the average transaction time over the run.
The admin console speaks only the simple query protocol, which asyncpg does not offer for
rows: this reader uses psycopg (a pinned dependency, requirements.txt) with a client-side
cursor, with every connection parameter given explicitly (host address checked like the
live check's, password only as given, no passfile, no client certificate, no service
file value left to the environment). A console listing more than MAX_POOLS pools is
refused. CLI only: the web app does not read admin consoles.

libpq buffers a whole answer before psycopg sees a row, so a row count alone does not bound
memory: psycopg talks to the console through a loopback relay (`_Relay`) that counts the
bytes the console sends for each answer and, past MAX_ANSWER_BYTES, cuts both sides, so
memory never follows the console (the live check's wire budget, wizard/live/wire.py, for a
driver that owns its socket). TLS stays end to end: the relay forwards bytes, libpq checks
the certificate against the host name (`host`), connecting to the relay (`hostaddr`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from wizard.live.check import NAME_CHARS, _text
from wizard.live.errors import LiveError
from wizard.live.observe import APP_NAME, Progress, _p95, _printable, check_bounds, every
from wizard.live.target import LiveTarget, check_allowed, resolve_checked
from wizard.live.wire import MAX_SERVER_BYTES
from wizard.scenario.redact import scrub

ADMIN_DB = "pgbouncer"
MAX_POOLS = 1000
# One answer of SHOW POOLS or SHOW STATS at MAX_POOLS rows is a few hundred KiB at most.
MAX_ANSWER_BYTES = MAX_SERVER_BYTES
_CHUNK = 64 * 1024
_NO_FILE = "/nonexistent/poolwise-none"


def _too_much() -> LiveError:
    return LiveError(f"PgBouncer's admin console sent more than {MAX_ANSWER_BYTES // 1024:,} "
                     "KiB for one answer; observe reads no more than that and stopped.",
                     "point observe at PgBouncer's admin console (SHOW POOLS is a few KiB), "
                     "or observe the database directly.", "oversized")


class _Relay:
    """A loopback relay for one connection: psycopg <-> the console, the console's bytes
    counted per answer (reset before each query); past the limit both sides are cut."""

    def __init__(self, addr: str, port: int, limit: int | None = None) -> None:
        self.addr, self.port = addr, port
        self.limit = MAX_ANSWER_BYTES if limit is None else limit
        self.seen = 0
        self.over = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        """Listen on loopback; the port psycopg connects to."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def reset(self) -> None:
        self.seen = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.server is not None:
            self.server.close()  # one connection, psycopg's: no other is relayed
        if self.writers:
            writer.transport.abort()
            return
        self.writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.addr, self.port)
        except OSError:
            self.close()
            return
        self.writers.append(up_writer)
        await asyncio.gather(self._pump(reader, up_writer, False),
                             self._pump(up_reader, writer, True), return_exceptions=True)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    counted: bool) -> None:
        try:
            while data := await src.read(_CHUNK):
                if counted:
                    self.seen += len(data)
                    if self.seen > self.limit:
                        self.over = True
                        return
                dst.write(data)
                await dst.drain()
        finally:
            self.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.writers:
            w.transport.abort()


@dataclass(frozen=True)
class PoolObservation:
    """One PgBouncer pool (database/user) over the samples."""

    database: str
    user: str
    cl_active_mean: float
    cl_active_max: int
    cl_waiting_mean: float
    cl_waiting_max: int
    sv_active_mean: float
    sv_active_p95: float
    sv_active_max: int
    xact_per_s: float | None  # per database, from SHOW STATS over the run
    avg_xact_ms: float | None


@dataclass(frozen=True)
class PoolerObservation:
    target: str
    started_at: str
    seconds: float
    samples: int
    interval_ms: float
    pools: tuple[PoolObservation, ...]
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = "pgbouncer admin console (SHOW POOLS, SHOW STATS)"
        return d


@dataclass
class PoolAccumulator:
    samples: int = 0
    elapsed: float = 0.0
    cl_active: dict[tuple[str, str], Counter[int]] = field(default_factory=dict)
    cl_waiting: dict[tuple[str, str], Counter[int]] = field(default_factory=dict)
    sv_active: dict[tuple[str, str], Counter[int]] = field(default_factory=dict)
    stats_start: dict[str, tuple[int, int]] = field(default_factory=dict)
    stats_end: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.samples += 1
        for r in rows:
            key = (_printable(_text(r.get("database", ""), NAME_CHARS)),
                   _printable(_text(r.get("user", ""), NAME_CHARS)))
            if key[0] == ADMIN_DB:
                continue
            for store, col in ((self.cl_active, "cl_active"), (self.cl_waiting, "cl_waiting"),
                               (self.sv_active, "sv_active")):
                store.setdefault(key, Counter())[int(r.get(col) or 0)] += 1

    def pools(self) -> tuple[PoolObservation, ...]:
        n = max(self.samples, 1)
        out = []
        dt = max(self.elapsed, 1e-9)

        def mean(h: Counter[int]) -> float:
            return round(sum(v * c for v, c in h.items()) / n, 3)

        for key in self.cl_active:
            db, user = key
            a, w, s = self.cl_active[key], self.cl_waiting[key], self.sv_active[key]
            for h in (a, w, s):
                h[0] += n - sum(h.values())
            xps = avg = None
            if db in self.stats_start and db in self.stats_end:
                dc = self.stats_end[db][0] - self.stats_start[db][0]
                du = self.stats_end[db][1] - self.stats_start[db][1]
                xps = round(dc / dt, 2)
                avg = round(du / dc / 1000, 3) if dc > 0 else None
            out.append(PoolObservation(db, user, mean(a), max(a), mean(w), max(w), mean(s),
                                       _p95(s, n), max(s), xps, avg))
        return tuple(sorted(out, key=lambda p: (-p.sv_active_mean, p.database, p.user)))


async def _connect(target: LiveTarget, timeout: float, relay: _Relay | None = None) -> Any:
    try:
        import psycopg
    except ImportError:
        raise LiveError("Reading PgBouncer's admin console needs psycopg, which is not "
                        "installed.", "pip install 'psycopg[binary]' (requirements.txt pins "
                        "it), or observe the database instead of the console.",
                        "bad_input") from None

    addrs = await resolve_checked(target.host, target.port)
    verify = target.ssl in ("verify-ca", "verify-full")
    hostaddr, port = addrs[0], target.port
    if relay is not None:  # the checked address behind the relay; libpq talks to the relay
        relay.addr, relay.port = addrs[0], target.port
        hostaddr, port = "127.0.0.1", await relay.start()
    kw = {
        "host": target.host, "hostaddr": hostaddr, "port": port, "user": target.user,
        "dbname": ADMIN_DB, "password": target.password or "", "passfile": _NO_FILE,
        "sslmode": target.ssl, "sslcert": _NO_FILE, "sslkey": _NO_FILE,
        "sslrootcert": "system" if verify else _NO_FILE, "sslcrl": _NO_FILE,
        "gssencmode": "disable", "target_session_attrs": "any", "options": "",
        "connect_timeout": max(1, math.ceil(timeout)), "application_name": APP_NAME,
    }
    try:
        async with asyncio.timeout(timeout):
            return await psycopg.AsyncConnection.connect(
                autocommit=True, cursor_factory=psycopg.AsyncClientCursor, **kw)
    except TimeoutError:
        raise LiveError(f"PgBouncer's admin console did not answer within {timeout:g} s.",
                        "check the host, port and network path.", "timeout") from None
    except psycopg.Error as exc:
        if relay is not None and relay.over:
            raise _too_much() from None
        msg = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else
                    type(exc).__name__, target.password)
        raise LiveError(f"Could not read PgBouncer's admin console: {msg[:200]}",
                        "the user must be in PgBouncer's admin_users or stats_users, and the "
                        "URL's database `pgbouncer`.", "failed") from None


async def _show(conn: Any, what: str, timeout: float,
                relay: _Relay | None = None) -> list[dict[str, Any]]:
    import psycopg

    if relay is not None:
        relay.reset()
    try:
        async with asyncio.timeout(timeout):
            cur = conn.cursor()
            await cur.execute(f"SHOW {what}")
            names = [d.name for d in cur.description or ()]
            rows = await cur.fetchmany(MAX_POOLS + 1)
    except psycopg.Error as exc:
        if relay is not None and relay.over:
            raise _too_much() from None
        msg = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else
                    type(exc).__name__)
        raise LiveError(f"PgBouncer's admin console failed on SHOW {what}: {msg[:200]}",
                        "check that the URL is PgBouncer's admin console.", "failed") from None
    if len(rows) > MAX_POOLS:
        raise LiveError(f"PgBouncer lists more than {MAX_POOLS:,} rows for SHOW {what}; "
                        "observe refused the answer.", "observe one database directly.",
                        "oversized")
    return [dict(zip(names, r, strict=False)) for r in rows]


def _stats(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    return {_text(r.get("database", ""), NAME_CHARS): (int(r.get("total_xact_count") or 0),
                                                       int(r.get("total_xact_time") or 0))
            for r in rows}


async def observe_pgbouncer(target: LiveTarget, acc: PoolAccumulator, *, seconds: float,
                            interval_ms: float, connect_timeout: float,
                            progress: Progress | None = None) -> None:
    """Sample SHOW POOLS into `acc` for `seconds`; SHOW STATS at the start and the end."""
    check_bounds(seconds, interval_ms)
    check_allowed(target, visitor=False)
    limit = seconds + 3 * connect_timeout + 5
    conn = None
    relay = _Relay(target.host, target.port)
    try:
        async with asyncio.timeout(limit):
            conn = await _connect(target, connect_timeout, relay)
            acc.stats_start = _stats(await _show(conn, "STATS", connect_timeout, relay))
            t0 = time.monotonic()

            async def pools() -> None:
                acc.add(await _show(conn, "POOLS", connect_timeout, relay))

            await every(interval_ms, seconds, pools, acc, progress)
            acc.stats_end = _stats(await _show(conn, "STATS", connect_timeout, relay))
            acc.elapsed = time.monotonic() - t0
    except TimeoutError:
        raise LiveError(f"observe went past its limit of {limit:g} s.",
                        "the admin console answers too slowly.", "over_limit") from None
    finally:
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 1)
            except Exception:  # noqa: BLE001  the close is best effort; the socket goes
                pass
        relay.close()


def render(o: PoolerObservation) -> str:
    out = [f"poolwise observe: PgBouncer admin console {o.target}, {o.seconds:g} s, "
           f"{o.samples} samples every {o.interval_ms:g} ms (from {o.started_at})",
           "  database/user            cl_active mean/max  cl_waiting mean/max  "
           "sv_active mean/p95/max  xact/s  avg xact ms"]
    for p in o.pools:
        pair = f"{p.database}/{p.user}"[:24]
        xps = "n/a" if p.xact_per_s is None else f"{p.xact_per_s:g}"
        avg = "n/a" if p.avg_xact_ms is None else f"{p.avg_xact_ms:g}"
        out.append(f"  {pair:<24} {p.cl_active_mean:>9.2f}/{p.cl_active_max:<8} "
                   f"{p.cl_waiting_mean:>10.2f}/{p.cl_waiting_max:<8} "
                   f"{p.sv_active_mean:>9.2f}/{p.sv_active_p95:g}/{p.sv_active_max:<6} "
                   f"{xps:>7} {avg:>11}")
    if not o.pools:
        out.append("  (no pools)")
    out.append("  note: sv_active is the pool's busy server connections (the offered load of "
               "its clients, Little's law: xact/s x avg xact time); cl_waiting > 0 means "
               "clients queued for a server connection.")
    return "\n".join(out)
