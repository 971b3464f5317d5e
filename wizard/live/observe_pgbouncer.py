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
from wizard.live.observe import APP_NAME, Progress, _p95, _printable, check_bounds
from wizard.live.target import LiveTarget, check_allowed, resolve_checked
from wizard.scenario.redact import scrub

ADMIN_DB = "pgbouncer"
MAX_POOLS = 1000
_NO_FILE = "/nonexistent/poolwise-none"


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


async def _connect(target: LiveTarget, timeout: float) -> Any:
    try:
        import psycopg
    except ImportError:
        raise LiveError("Reading PgBouncer's admin console needs psycopg, which is not "
                        "installed.", "pip install 'psycopg[binary]' (requirements.txt pins "
                        "it), or observe the database instead of the console.",
                        "bad_input") from None

    addrs = await resolve_checked(target.host, target.port)
    verify = target.ssl in ("verify-ca", "verify-full")
    kw = {
        "host": target.host, "hostaddr": addrs[0], "port": target.port, "user": target.user,
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
        msg = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else
                    type(exc).__name__, target.password)
        raise LiveError(f"Could not read PgBouncer's admin console: {msg[:200]}",
                        "the user must be in PgBouncer's admin_users or stats_users, and the "
                        "URL's database `pgbouncer`.", "failed") from None


async def _show(conn: Any, what: str, timeout: float) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        cur = conn.cursor()
        await cur.execute(f"SHOW {what}")
        names = [d.name for d in cur.description or ()]
        rows = await cur.fetchmany(MAX_POOLS + 1)
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
    try:
        async with asyncio.timeout(limit):
            conn = await _connect(target, connect_timeout)
            acc.stats_start = _stats(await _show(conn, "STATS", connect_timeout))
            step, t0, k = interval_ms / 1000, time.monotonic(), 0
            while True:
                acc.add(await _show(conn, "POOLS", connect_timeout))
                now = acc.elapsed = time.monotonic() - t0
                if progress is not None:
                    progress(min(1.0, now / seconds), acc.samples)
                k = max(k + 1, math.ceil(now / step))
                if k * step >= seconds:
                    break
                await asyncio.sleep(max(0.0, k * step - (time.monotonic() - t0)))
            acc.stats_end = _stats(await _show(conn, "STATS", connect_timeout))
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
