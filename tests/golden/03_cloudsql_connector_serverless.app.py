exit 0
# poolwise export: engine module (db.py) for SQLAlchemy 2.x + asyncpg
# Generated on YYYY-MM-DD by poolwise 0.1.0 for this scenario:
#   primary: gcp-cloudsql db-custom-4-15360, max_connections 500, 493 usable
#   proxy: cloudsql-connector
#   fleet: 40 concurrent invocations (serverless), one NullPool engine each = 40 engines on the
#     primary
#   primary budget: 500 max_connections - 3 superuser_reserved_connections - 3 monitoring/admin
#     - 1 migrations = 493 usable; per engine: (500 - 7) / 40 = 12; pool 1 + overflow 0 x 40
#     engines = 40
# Reproduce in the app:
#   (the app's address is not known here: set POOLWISE_PUBLIC_URL, or download this file from
#     the app, to get the link)
# Reproduce on the command line:
#   poolwise export --provider gcp-cloudsql --instance-class db-custom-4-15360 \
#     --proxy cloudsql-connector --serverless-concurrency 40 --rps 200 --hold-ms 20 \
#     --output db.py
# Requires: sqlalchemy[asyncio]>=2.0.21, asyncpg>=0.31, cloud-sql-python-connector[asyncpg]>=1.10
#
# Environment (secrets live there, never in this file):
#   CLOUDSQL_INSTANCE      primary: PROJECT:REGION:INSTANCE
#   DB_USER, DB_NAME       database user and name
#   DB_PASSWORD            unless IAM database authentication is on
#   POOLWISE_POOL_TIMEOUT  optional override of pool_timeout, in seconds
"""SQLAlchemy 2.x + asyncpg engines sized by poolwise for the scenario in the header above.

Create the engines once per worker process (they are neither fork-safe nor shareable
across event loops) and dispose them on shutdown; `lifespan` does both for FastAPI:

    from fastapi import FastAPI
    import db

    app = FastAPI(lifespan=db.lifespan)
    # in a handler: async with app.state.db.write_session() as session: ...

Serverless (Lambda / Cloud Run jobs): NullPool engines hold no connection between
invocations and survive a new event loop per invocation, so `ENGINES = create_engines()`
at module level is fine there; keep the proxy in front.
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
from sqlalchemy.pool import NullPool

# Environment variables this module reads: names only, the values stay in the environment.
URL_ENV: dict[str, str] = {
    "primary": "DATABASE_URL",
}
# Pool settings per endpoint, each with the reason and the number it came from.
ENGINE_SETTINGS: dict[str, dict[str, Any]] = {
    "primary": {
        # poolclass: NullPool: each serverless invocation opens and closes its own connection; a
        # pooled engine breaks across event loops
        "poolclass": NullPool,
    },
}

# asyncpg / dialect connect arguments per endpoint (TLS comes from DATABASE_SSL).
CONNECT_ARGS: dict[str, dict[str, Any]] = {
    "primary": {
        # timeout=10: fail a connect in 10 s, not asyncpg's 60
        # command_timeout=10: a serverless invocation must not hang on the database
        "timeout": 10,
        "command_timeout": 10,
    },
}


# Alternative to a full URL: host/port/user/password/name parts, e.g. DB_HOST, DB_PASSWORD.
PART_ENV_PREFIX: dict[str, str] = {
    "primary": "DB_",
}
DEFAULT_HOST: str | None = None
DEFAULT_PORT = 5432
SSL_ENV = "DATABASE_SSL"
# TLS: the Cloud SQL connector encrypts and authorises the connection itself
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


CLOUDSQL_INSTANCE_ENV: dict[str, str] = {
    "primary": "CLOUDSQL_INSTANCE",
}
CLOUDSQL_IAM_AUTH = False
# ip_type: public, the connector's default (no VPC on the scenario's path); set
# CLOUDSQL_IP_TYPE=private for a private IP instance
CLOUDSQL_IP_TYPE = "public"
CLOUDSQL_IP_TYPE_ENV = "CLOUDSQL_IP_TYPE"
# refresh_strategy: lazy, serverless: a background refresh is throttled when the CPU scales to
# zero, so certificates are fetched when a connection needs them (connector >= 1.10;
# https://github.com/googleapis/langchain-google-cloud-sql-mssql-python/issues/55)
CLOUDSQL_REFRESH_STRATEGY = "lazy"
_CONNECTORS: list[Any] = []


async def _connector() -> Any:
    # The Cloud SQL Python Connector is an optional extra
    # (pip install "cloud-sql-python-connector[asyncpg]"), imported only when a connection
    # opens, and created inside the running event loop.
    from google.cloud.sql.connector import create_async_connector

    if not _CONNECTORS:
        connector = await create_async_connector(
            ip_type=os.environ.get(CLOUDSQL_IP_TYPE_ENV) or CLOUDSQL_IP_TYPE,
            refresh_strategy=CLOUDSQL_REFRESH_STRATEGY,
        )
        if _CONNECTORS:  # another connection won the race
            await connector.close_async()
        else:
            _CONNECTORS.append(connector)
    return _CONNECTORS[0]


def create_engine_for(role: str) -> AsyncEngine:
    """One engine for one endpoint through the Cloud SQL Python Connector (TLS and auth by it)."""
    instance = os.environ.get(CLOUDSQL_INSTANCE_ENV[role])
    if not instance:
        raise RuntimeError(f"set {CLOUDSQL_INSTANCE_ENV[role]} to PROJECT:REGION:INSTANCE")
    # async_creator ignores connect_args: driver options go to connect_async, dialect ones
    # into the URL query.
    driver_args = {k: v for k, v in CONNECT_ARGS[role].items() if k not in DIALECT_ARGS}
    dialect_args = {k: str(v) for k, v in CONNECT_ARGS[role].items() if k in DIALECT_ARGS}
    auth: dict[str, Any] = {"enable_iam_auth": CLOUDSQL_IAM_AUTH}
    if os.environ.get("DB_PASSWORD") and not CLOUDSQL_IAM_AUTH:
        auth["password"] = os.environ["DB_PASSWORD"]

    async def getconn() -> Any:
        connector = await _connector()
        return await connector.connect_async(
            instance, "asyncpg", user=os.environ.get("DB_USER"), db=os.environ.get("DB_NAME"),
            **auth, **driver_args,
        )

    return create_async_engine(
        URL.create("postgresql+asyncpg", query=dialect_args),
        async_creator=getconn,
        **engine_settings(role),
    )


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
    while _CONNECTORS:
        await _CONNECTORS.pop().close_async()


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """FastAPI lifespan: engines per worker process on startup, disposed on shutdown."""
    engines = create_engines()
    app.state.db = engines
    try:
        yield
    finally:
        await dispose_engines(engines)
