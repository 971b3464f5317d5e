"""Observe: sample pg_stat_activity and measure each application_name's busy connections.

By Little's law the connections a service keeps in state active are its offered load
(arrival rate x hold time), whatever the rate and hold time are. One connection, under
the live check's rules (operator allowlists, credentials only as given, connect and
stage time limits, at most MAX_SERVER_BYTES read per sample), runs one small aggregate
query per interval in a read-only transaction: counted in SQL per application_name and
state, its own backend excluded (pg_backend_pid()), at most TOP_APPS names one by one and
the rest as one row. Memory is bounded: at most MAX_NAMES names are kept, each with a
histogram of busy counts (integers up to max_connections).

Through PgBouncer in transaction mode a server connection carries the application_name
of the client it serves (PgBouncer 1.18 sets it on assignment) and keeps the last one
while idle: busy (active) counts per name are the clients', open counts are not.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from wizard.core import measured
from wizard.live.check import NAME_CHARS, TOP_APPS, _text
from wizard.live.connect import APP_NAME as LIVE_APP_NAME
from wizard.live.connect import CONNECT_TIMEOUT, as_live_error, close, isolated_connect, within
from wizard.live.errors import LiveError
from wizard.live.target import LiveTarget, check_allowed
from wizard.live.wire import BoundedLoop

APP_NAME = "poolwise-observe"
DEFAULT_SECONDS = 60.0
MAX_SECONDS = 3600.0
DEFAULT_INTERVAL_MS = 100
MIN_INTERVAL_MS = 50
MAX_INTERVAL_MS = 60_000
MAX_NAMES = 200  # names kept across samples; later ones are counted as OTHERS
OTHERS = "(other names)"
HIDDEN = "(state hidden)"

# Per sample: connections per application_name, busy (active) and idle in transaction,
# counted in SQL. Other roles' state is NULL for a role without pg_read_all_stats: such
# rows are counted as open, never as busy, and reported apart (hidden).
_SAMPLE = """
WITH a AS (
  SELECT coalesce(nullif(application_name, ''), '(none)') AS app, state
  FROM pg_stat_activity
  WHERE pid <> pg_backend_pid() AND usesysid IS NOT NULL AND datid IS NOT NULL
    AND coalesce(backend_type, 'client backend') = 'client backend'
), apps AS (
  SELECT app, count(*)::int AS open,
         count(*) FILTER (WHERE state = 'active')::int AS busy,
         count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int AS iit,
         count(*) FILTER (WHERE state IS NULL)::int AS hidden
  FROM a GROUP BY app
), top AS (
  SELECT * FROM apps ORDER BY open DESC, app LIMIT $1
)
SELECT left(app, $2) AS app, open, busy, iit, hidden FROM top
UNION ALL
SELECT NULL, coalesce(sum(open), 0)::int, coalesce(sum(busy), 0)::int,
       coalesce(sum(iit), 0)::int, coalesce(sum(hidden), 0)::int
FROM apps WHERE app NOT IN (SELECT app FROM top)
"""

Progress = Callable[[float, int], None]  # (fraction of the time, samples so far)


def check_bounds(seconds: float, interval_ms: float) -> None:
    """LiveError (code bad_input) for a duration or interval out of range (NaN included)."""
    if not (isinstance(seconds, int | float) and math.isfinite(seconds)
            and 0 < seconds <= MAX_SECONDS):
        raise LiveError(f"--seconds must be in (0, {MAX_SECONDS:g}], got {seconds!r:.20}.",
                        f"observe for at most {MAX_SECONDS:g} s.", "bad_input")
    if not (isinstance(interval_ms, int | float) and math.isfinite(interval_ms)
            and MIN_INTERVAL_MS <= interval_ms <= MAX_INTERVAL_MS):
        raise LiveError(f"--interval-ms must be {MIN_INTERVAL_MS}..{MAX_INTERVAL_MS:,}, got "
                        f"{interval_ms!r:.20}.",
                        f"sample at most every {MIN_INTERVAL_MS} ms.", "bad_input")


@dataclass(frozen=True)
class ServiceObservation:
    """One application_name over the samples (busy = state active)."""

    application_name: str
    open_max: int
    busy_mean: float
    busy_p95: float
    busy_max: int
    idle_in_transaction_max: int
    samples: int  # samples in which it had a connection


@dataclass(frozen=True)
class Observation:
    target: str  # postgresql://user@host:port/db, never a password
    where: str  # host:port/database
    started_at: str  # UTC
    seconds: float  # observed for
    samples: int
    interval_ms: float
    services: tuple[ServiceObservation, ...]
    interrupted: bool = False
    hidden_max: int = 0  # connections whose state this role could not see, at most
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["services"] = [asdict(s) for s in self.services]
        return d

    def busy(self) -> dict[str, tuple[float, float]]:
        """(busy mean, busy p95) by application_name, for scenario/record.write."""
        return {s.application_name: (s.busy_mean, s.busy_p95) for s in self.services
                if s.application_name not in (OTHERS, HIDDEN, "(none)", APP_NAME,
                                              LIVE_APP_NAME)}


def _printable(text: str) -> str:
    """A name as kept and shown: any control or format character as '?' (PostgreSQL does the
    same to application_name; a server that is not PostgreSQL might not)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _p95(hist: Counter[int], n: int) -> float:
    """Nearest-rank p95 of n values whose histogram is `hist`."""
    if n <= 0:
        return 0.0
    rank, seen = math.ceil(0.95 * n), 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return float(value)
    return float(max(hist, default=0))


@dataclass
class Accumulator:
    """What the samples said so far (kept by the caller: Ctrl-C keeps it)."""

    samples: int = 0
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    busy: dict[str, Counter[int]] = field(default_factory=dict)  # busy count -> samples
    open_max: dict[str, int] = field(default_factory=dict)
    iit_max: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    hidden_max: int = 0
    pooled: bool = False  # the server listens on another port than the URL's (a pooler)

    def add(self, rows: list[tuple[str | None, int, int, int, int]]) -> None:
        """One sample's rows: (application_name or None for the rest, open, busy, idle in
        transaction, hidden)."""
        merged: dict[str, list[int]] = {}
        hidden = 0
        for app, open_, busy, iit, hid in rows:
            hidden += hid
            if open_ <= 0:
                continue
            name = OTHERS if app is None else _printable(_text(app, NAME_CHARS))
            if (name not in self.busy and name not in merged
                    and len(self.busy.keys() | merged.keys()) >= MAX_NAMES):
                name = OTHERS
            cur = merged.setdefault(name, [0, 0, 0])
            cur[0] += open_
            cur[1] += busy
            cur[2] += iit
        self.samples += 1
        self.hidden_max = max(self.hidden_max, hidden)
        for name, (open_, busy, iit) in merged.items():
            self.busy.setdefault(name, Counter())[busy] += 1
            self.open_max[name] = max(self.open_max.get(name, 0), open_)
            self.iit_max[name] = max(self.iit_max.get(name, 0), iit)
            self.seen[name] = self.seen.get(name, 0) + 1

    def services(self) -> tuple[ServiceObservation, ...]:
        out = []
        n = self.samples
        for name, hist in self.busy.items():
            full = Counter(hist)
            full[0] += n - self.seen[name]  # samples without a connection: 0 busy
            total = sum(v * c for v, c in full.items())
            out.append(ServiceObservation(
                application_name=name, open_max=self.open_max[name],
                busy_mean=round(total / n, 3) if n else 0.0, busy_p95=_p95(full, n),
                busy_max=max(hist), idle_in_transaction_max=self.iit_max[name],
                samples=self.seen[name]))
        return tuple(sorted(out, key=lambda s: (-s.busy_mean, s.application_name)))


def result(target: LiveTarget, acc: Accumulator, started_at: str, interval_ms: float, *,
           interrupted: bool = False) -> Observation:
    """The observation the accumulator holds (also after Ctrl-C or a failed sample)."""
    notes = []
    if acc.hidden_max:
        notes.append(f"up to {acc.hidden_max} connections of other roles had their state "
                     "hidden (this role lacks pg_read_all_stats): they count as open, never "
                     "as busy; observe as a role with pg_read_all_stats to see them.")
    if acc.pooled:
        notes.append("through a transaction pooler each server connection carries the "
                     "application_name of the client it serves: busy counts per name are the "
                     "clients', open counts are the pooler's server connections by the last "
                     "client that used them.")
    if interrupted:
        notes.append(f"stopped early: {acc.samples} samples in {acc.elapsed:.1f} s.")
    where = measured.where(target.host, target.port, target.database)
    return Observation(target=str(target), where=where, started_at=started_at,
                       seconds=round(acc.elapsed, 3), samples=acc.samples,
                       interval_ms=interval_ms, services=acc.services(),
                       interrupted=interrupted, hidden_max=acc.hidden_max, notes=tuple(notes))


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def _connect(target: LiveTarget, timeout: float, loop: BoundedLoop) -> Any:
    kw = {"host": target.host, "port": target.port, "user": target.user,
          "database": target.database, "timeout": timeout, "sslmode": target.ssl,
          "password": target.password or "", "command_timeout": timeout,
          "statement_cache_size": 0,  # a transaction pooler cannot keep named statements
          "server_settings": {"application_name": APP_NAME}, "bounded_loop": loop}
    try:
        async with asyncio.timeout(timeout):
            return await isolated_connect(**kw)
    except Exception as exc:
        raise await as_live_error(exc, target, timeout) from None


# BEGIN READ ONLY ... COMMIT by hand: on a failure the driver's error is the one raised
# (a transaction context's exit on a dropped connection would hide it), and the
# connection is closed by the caller either way.
async def _port(conn: Any) -> int | None:
    await conn.execute("BEGIN READ ONLY")
    value = await conn.fetchval("SELECT current_setting('port')::int")
    await conn.execute("COMMIT")
    return value if isinstance(value, int) else None


async def _read(work: Any, conn: Any, target: LiveTarget, stage: str, seconds: float) -> Any:
    """One reading within `seconds` (a stalled server is cut off), any driver failure as
    one LiveError (a server past the byte budget as "oversized")."""
    try:
        return await within(work, conn, stage, seconds)
    except LiveError:
        raise
    except Exception as exc:
        raise await as_live_error(exc, target, seconds) from None


async def _sample(conn: Any) -> list[tuple[str | None, int, int, int, int]]:
    await conn.execute("BEGIN READ ONLY")
    rows = await conn.fetch(_SAMPLE, TOP_APPS, NAME_CHARS)
    await conn.execute("COMMIT")
    if len(rows) > TOP_APPS + 1:
        raise LiveError(f"The server answered {len(rows):,} rows where the query asks for at "
                        f"most {TOP_APPS + 1}; observe refused the answer.",
                        "point it at a PostgreSQL server or pooler.", "oversized")
    return [(r["app"], int(r["open"]), int(r["busy"]), int(r["iit"]), int(r["hidden"]))
            for r in rows]


async def every(interval_ms: float, seconds: float, read: Any, acc: Any,
                progress: Progress | None) -> None:
    """Call `read()` every interval for `seconds` (a read slower than the interval delays
    the next one, never two at once), keeping `acc.elapsed` and the progress bar; the
    sampler and the PgBouncer console reader both tick here."""
    step, t0, k = interval_ms / 1000, time.monotonic(), 0
    while True:
        await read()
        now = acc.elapsed = time.monotonic() - t0
        if progress is not None:
            progress(min(1.0, now / seconds), acc.samples)
        k = max(k + 1, math.ceil(now / step))
        if k * step >= seconds:
            break
        await asyncio.sleep(max(0.0, k * step - (time.monotonic() - t0)))
    acc.elapsed = time.monotonic() - t0


async def observe(target: LiveTarget, acc: Accumulator, *, seconds: float = DEFAULT_SECONDS,
                  interval_ms: float = DEFAULT_INTERVAL_MS,
                  connect_timeout: float = CONNECT_TIMEOUT, progress: Progress | None = None,
                  visitor: bool = True) -> None:
    """Sample for `seconds` into `acc` (LiveError when the endpoint cannot be observed).

    A sample slower than the interval delays the next one (never two at once); each
    sample has connect_timeout seconds, the whole run seconds + 2 x connect_timeout + 5.
    The connection is closed on return, on error and on cancellation (Ctrl-C)."""
    check_bounds(seconds, interval_ms)
    check_allowed(target, visitor=visitor)
    loop = BoundedLoop(asyncio.get_running_loop())
    limit = seconds + 2 * connect_timeout + 5
    try:
        async with asyncio.timeout(limit):
            conn = await _connect(target, connect_timeout, loop)
            try:
                port = await _read(_port(conn), conn, target, "readings", connect_timeout)
                acc.pooled = port != target.port  # a pooler listens elsewhere
                acc.started = time.monotonic()

                async def sample() -> None:
                    loop.new_allowance()
                    acc.add(await _read(_sample(conn), conn, target, "sample",
                                        connect_timeout))

                await every(interval_ms, seconds, sample, acc, progress)
            finally:
                await close(conn)
    except TimeoutError:
        raise LiveError(f"observe went past its limit of {limit:g} s.",
                        "the endpoint answers too slowly: check the network path.",
                        "over_limit") from None
