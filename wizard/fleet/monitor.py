"""The monitor: samples one role's server connections while a fleet runs.

A thread with its own asyncpg connection reads pg_stat_activity every MONITOR_INTERVAL
seconds: the role's connections on the URL's database (minus what it held when the
monitor started), and the same split by application_name, so that several services in one
run are counted apart.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from wizard.fleet.urls import scrub, secrets_of

MONITOR_INTERVAL = 0.1


class Monitor:
    """Samples the server connections of one role every MONITOR_INTERVAL seconds."""

    def __init__(self, url: str, user: str | None = None, connect_args: dict | None = None):
        self.url = url
        self.user = user
        self.connect_args = dict(connect_args or {})
        self.samples: list[tuple[float, int]] = []  # (t, connections beyond the baseline)
        self.by_app: list[tuple[float, dict[str, int]]] = []  # (t, application_name -> n)
        self.baseline = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._started = threading.Event()
        self._apps: dict[str, int] = {}

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
        rows = await conn.fetch(
            "SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity "
            "WHERE usename = $1 AND datname = current_database() AND pid <> pg_backend_pid() "
            "GROUP BY 1", self.user)
        self._apps = {r["app"]: r["n"] for r in rows}
        return sum(self._apps.values())

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
                    self.by_app.append((t - self._t0, self._apps))
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
        """A new run's clock starts at `t0` (epoch seconds): earlier samples are dropped."""
        self._t0 = t0
        self.samples.clear()
        self.by_app.clear()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(15)

    def __enter__(self) -> Monitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def peak(self, start: float, end: float, app: str | None = None) -> int:
        """Most connections sampled in [start, end) seconds after the run's start: the
        role's beyond its baseline, or those of one application_name."""
        if app is not None:
            return max((n.get(app, 0) for t, n in self.by_app if start <= t < end), default=0)
        return max((n for t, n in self.samples if start <= t < end), default=0)

    def settled(self, timeout: float = 15.0) -> bool:
        """Wait until the counted role has no connections beyond the baseline."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.samples and self.samples[-1][1] <= 0:
                return True
            time.sleep(MONITOR_INTERVAL)
        return False
