exit 0
# poolwise export: engine module (db.py) for SQLAlchemy 2.x + asyncpg
# Generated on YYYY-MM-DD by poolwise 0.1.0 for this scenario:
#   service api: one of 2 services sharing this database (api, fn); each budget below is its
#     share
#   primary: self-hosted (no class), max_connections 150, 143 usable
#   proxy: pgbouncer-transaction (PgBouncer 1.24, max_prepared_statements default)
#   fleet: 13 instances at peak (10 + 25% deploy surge) x 2 workers x 1 engine(s) = 26 engines
#     on the primary
#   primary budget: 150 max_connections - 3 superuser_reserved_connections - 3 monitoring/admin
#     - 1 migrations = 143 usable; per engine: no client limit = unbounded; pool 4 + overflow 0
#     x 26 engines = 104; the database sees at most min(server pool 21, 104) = 21
# Reproduce in the app:
#   (the app's address is not known here: set POOLWISE_PUBLIC_URL, or download this file from
#     the app, to get the link)
# Reproduce on the command line:
#   poolwise export --scenario poolwise-scenario.toml --service api -o db_api.py
#   (poolwise-scenario.toml: the whole estate, from the app's Export step)
# Requires: sqlalchemy[asyncio]>=2.0.21, asyncpg>=0.31
#
# Environment (secrets live there, never in this file):
#   DATABASE_URL           primary: postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB
#   DB_HOST ...            or parts: DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME
#   DATABASE_SSL           TLS mode for asyncpg (disable, require, verify-full)
#   POOLWISE_POOL_TIMEOUT  optional override of pool_timeout, in seconds
"""SQLAlchemy 2.x + asyncpg engines sized by poolwise for the scenario in the header above.

Create the engines once per worker process (they are neither fork-safe nor shareable
across event loops) and dispose them on shutdown; `lifespan` does both for FastAPI:

    from fastapi import FastAPI
    import db_api as db

    app = FastAPI(lifespan=db.lifespan)
    # in a handler: async with app.state.db.write_session() as session: ...
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Environment variables this module reads: names only, the values stay in the environment.
URL_ENV: dict[str, str] = {
    "primary": "DATABASE_URL",
}
# Pool settings per endpoint, each with the reason and the number it came from.
ENGINE_SETTINGS: dict[str, dict[str, Any]] = {
    "primary": {
        # poolclass: AsyncAdaptedQueuePool: create_async_engine's default
        # pool_size: load; budget no client limit = unbounded per engine; a fixed pool
        # (max_overflow 0): behind a transaction pooler an idle client connection holds no
        # server connection, so the engine keeps all of them: overflow ones would be closed on
        # check-in and reopened, a new login each, at every burst
        "pool_size": 4,
        # max_overflow: 0: a fixed pool, pool_size = 4 connections at most per engine (load);
        # behind a transaction pooler an idle client connection holds no server connection, so
        # the engine keeps all of them: overflow ones would be closed on check-in and reopened,
        # a new login each, at every burst
        "max_overflow": 0,
        # pool_timeout: 10 s: surfaces exhaustion before a typical 30 s load-balancer timeout
        # turns it into a 504; the proxy may then hold a query up to 120 s more waiting for a
        # server connection (query_wait_timeout): keep request timeouts above pool_timeout +
        # that, or lower it on the proxy
        "pool_timeout": 10.0,
        # pool_recycle: no idle cut-off known on the path; 1800 s spreads reconnects after
        # failovers
        "pool_recycle": 1800,
        # pool_pre_ping: on: behind a transaction pooler the engine's connections end at the
        # pooler, and a pooler restart or failover drops every one of them; without a pre-ping
        # the first request on each fails (measured: one failed request per worker process with
        # it off, none with it on); costs one pooled round trip per checkout
        # (https://docs.sqlalchemy.org/en/20/core/pooling.html#disconnect-handling-pessimistic);
        # opt out with pre_ping=false
        "pool_pre_ping": True,
        # pool_use_lifo: LIFO: surplus connections stay idle so the proxy can reclaim them
        "pool_use_lifo": True,
    },
}

# asyncpg / dialect connect arguments per endpoint (TLS comes from DATABASE_SSL).
CONNECT_ARGS: dict[str, dict[str, Any]] = {
    "primary": {
        # timeout=10: fail a connect in 10 s, not asyncpg's 60
        # statement caches on: this transaction pooler tracks protocol-level prepared statements
        # (max_prepared_statements > 0)
        # server_settings application_name=api: pg_stat_activity and the live check tell the
        # services apart
        "timeout": 10,
        "server_settings": {"application_name": "api"},
    },
}


# Alternative to a full URL: host/port/user/password/name parts, e.g. DB_HOST, DB_PASSWORD.
PART_ENV_PREFIX: dict[str, str] = {
    "primary": "DB_",
}
DEFAULT_HOST: str | None = None
DEFAULT_PORT = 6432
SSL_ENV = "DATABASE_SSL"
# TLS: asyncpg's default (prefer) unless DATABASE_SSL says otherwise
SSL_DEFAULT: str | None = None
POOL_TIMEOUT_ENV = "POOLWISE_POOL_TIMEOUT"


# SQLAlchemy's asyncpg dialect pops these from connect_args; the rest go to asyncpg.connect.
DIALECT_ARGS = ("prepared_statement_cache_size", "prepared_statement_name_func")


def database_url(role: str = "primary") -> URL:
    """The endpoint's URL from its environment variable, or from host/user/... parts."""
    raw = os.environ.get(URL_ENV[role])
    if raw:
        url = make_url(raw)
    else:
        prefix = PART_ENV_PREFIX[role]

        def part(name: str) -> str | None:
            return os.environ.get(prefix + name) or os.environ.get("DB_" + name)

        host = os.environ.get(prefix + "HOST") or DEFAULT_HOST
        if not host:
            raise RuntimeError(f"set {URL_ENV[role]} (or {prefix}HOST and DB_USER, "
                               "DB_PASSWORD, DB_NAME) for the " + role + " endpoint")
        url = URL.create("postgresql+asyncpg", username=part("USER"), password=part("PASSWORD"),
                         host=host, port=int(part("PORT") or DEFAULT_PORT),
                         database=part("NAME"))
    # postgres:// and postgresql:// URLs (Heroku style) get the asyncpg driver.
    return url.set(drivername="postgresql+asyncpg")


def ssl_mode(url: URL) -> str | None:
    """TLS mode for asyncpg: DATABASE_SSL, else a libpq sslmode in the URL, else the default."""
    return os.environ.get(SSL_ENV) or url.query.get("sslmode") or SSL_DEFAULT


def connect_args(role: str, url: URL) -> dict[str, Any]:
    """asyncpg connect arguments for one endpoint, TLS included."""
    args = dict(CONNECT_ARGS[role])
    ssl = ssl_mode(url)
    if ssl:
        args["ssl"] = ssl  # asyncpg takes libpq's modes: disable, require, verify-full, ...
    return args


def engine_settings(role: str) -> dict[str, Any]:
    """create_async_engine keyword arguments for one endpoint."""
    settings = dict(ENGINE_SETTINGS[role])
    override = os.environ.get(POOL_TIMEOUT_ENV)
    if override and "pool_timeout" in settings:
        settings["pool_timeout"] = float(override)
    return settings


def create_engine_for(role: str) -> AsyncEngine:
    """One engine for one endpoint; call it once per worker process."""
    url = database_url(role)
    engine = create_async_engine(
        url.difference_update_query(["sslmode"]),  # asyncpg refuses libpq's sslmode
        connect_args=connect_args(role, url),
        **engine_settings(role),
    )
    return engine


POOL_STATS: dict[str, dict[str, int]] = {}


def register_pool_metrics(engine: AsyncEngine, name: str = "primary") -> dict[str, int]:
    """Track checkouts of an engine's pool; returns the live stats dict (also POOL_STATS[name]).

    Export the numbers to your metrics system: checked_out near size + overflow limit
    means requests are about to wait for pool_timeout.
    """
    pool = engine.sync_engine.pool
    stats = {"checkouts": 0, "checkins": 0, "checked_out": 0, "peak_checked_out": 0,
             "overflow": 0, "size": 0}

    def sample(returning: int = 0) -> None:
        if hasattr(pool, "checkedout"):  # NullPool keeps no counts
            # The checkin event fires before the pool takes the connection back.
            stats["checked_out"] = max(0, pool.checkedout() - returning)
            stats["overflow"] = pool.overflow()
            stats["size"] = pool.size()
        else:
            stats["checked_out"] = stats["checkouts"] - stats["checkins"]
        stats["peak_checked_out"] = max(stats["peak_checked_out"], stats["checked_out"])

    def on_checkout(*_: Any) -> None:
        stats["checkouts"] += 1
        sample()

    def on_checkin(*_: Any) -> None:
        stats["checkins"] += 1
        sample(returning=1)

    event.listen(engine.sync_engine, "checkout", on_checkout)
    event.listen(engine.sync_engine, "checkin", on_checkin)
    POOL_STATS[name] = stats
    return stats


@dataclass
class Engines:
    """The engines of one worker process and their session factories."""

    write: AsyncEngine
    reads: list[AsyncEngine]
    write_session: async_sessionmaker[AsyncSession]
    read_sessions: list[async_sessionmaker[AsyncSession]]
    _next_read: int = 0

    def read_session(self) -> AsyncSession:
        """A session on the next replica (round robin), or on the primary without replicas."""
        if not self.read_sessions:
            return self.write_session()
        self._next_read = (self._next_read + 1) % len(self.read_sessions)
        return self.read_sessions[self._next_read]()


def create_engines() -> Engines:
    """The primary's engine and one per replica, with metrics registered."""
    write = create_engine_for("primary")
    reads = [create_engine_for(role) for role in ENGINE_SETTINGS if role != "primary"]
    register_pool_metrics(write, "primary")
    for role, engine in zip([r for r in ENGINE_SETTINGS if r != "primary"], reads, strict=True):
        register_pool_metrics(engine, role)
    return Engines(
        write=write,
        reads=reads,
        write_session=async_sessionmaker(write, expire_on_commit=False),
        read_sessions=[async_sessionmaker(e, expire_on_commit=False) for e in reads],
    )


async def dispose_engines(engines: Engines) -> None:
    """Close every pooled connection (on shutdown, or before a fork)."""
    for engine in [engines.write, *engines.reads]:
        await engine.dispose()


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """FastAPI lifespan: engines per worker process on startup, disposed on shutdown."""
    engines = create_engines()
    app.state.db = engines
    try:
        yield
    finally:
        await dispose_engines(engines)
