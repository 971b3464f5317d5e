"""How the live check reaches a server: one isolated asyncpg connection (no libpq
environment, TLS context built here, at most 1 MiB read), or a SQLAlchemy engine built on
it; every phase bounded in time and every connection closed within a second.

Driver failures become a LiveError through wizard.live.diagnosis.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from wizard.live.diagnosis import classify
from wizard.live.errors import LiveError
from wizard.live.target import LiveTarget, resolve_checked
from wizard.live.wire import BoundedLoop

APP_NAME = "poolwise-live"
CONNECT_TIMEOUT = 5.0  # seconds per connection attempt


def connect_kwargs(t: LiveTarget, timeout: float, cache: bool) -> dict[str, Any]:
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


async def as_live_error(exc: BaseException, t: LiveTarget, timeout: float) -> LiveError:
    """The LiveError that names what went wrong (a LiveError is returned as it is)."""
    if isinstance(exc, LiveError):
        return exc
    return await classify(_unwrap(exc), host=t.host, port=t.port, user=t.user,
                          database=t.database, ssl=t.ssl, timeout=timeout, password=t.password)


async def connect(t: LiveTarget, timeout: float, *, cache: bool = False) -> asyncpg.Connection:
    try:
        async with asyncio.timeout(timeout):
            return await isolated_connect(**connect_kwargs(t, timeout, cache))
    except Exception as exc:
        raise await as_live_error(exc, t, timeout) from None


def _stalled(stage: str, seconds: float) -> LiveError:
    return LiveError(f"The server logged in, then sent no answer for the {stage} within "
                     f"{seconds:g} s; the live check stopped.",
                     "check the server's load and the network path, then run it again.",
                     "stalled")


async def within(work: Any, conn: asyncpg.Connection | None, stage: str, seconds: float) -> Any:
    """Await one phase of the check within `seconds`; a stalled server is cut off at once
    (its connection dropped, not closed politely), so no phase outlives its limit."""
    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        if conn is not None:
            conn.terminate()
        raise _stalled(stage, seconds) from None


async def close(conn: asyncpg.Connection | None) -> None:
    if conn is None or conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 1)
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:
        conn.terminate()


async def dispose(engine: AsyncEngine, seconds: float = 2.0) -> None:
    """engine.dispose(), given at most `seconds`: a stalled server cannot make the close
    outlive the check's limit (the sockets are dropped with the engine)."""
    try:
        await asyncio.wait_for(engine.dispose(), seconds)
    except (TimeoutError, OSError, asyncpg.PostgresError, sa_exc.SQLAlchemyError):
        pass


def make_engine(t: LiveTarget, timeout: float, *, cache: bool, pool_size: int = 1,
            max_overflow: int = 0, pool_timeout: float = 5.0, pre_ping: bool = True,
            lifo: bool = False) -> AsyncEngine:
    # The password goes in connect_args, never in a URL that could be logged or shown.
    url = URL.create("postgresql+asyncpg", username=t.user, host=t.host, port=t.port,
                     database=t.database)
    args = connect_kwargs(t, timeout, cache)
    for key in ("host", "port", "user", "database"):
        args.pop(key)
    if not cache:
        args["prepared_statement_cache_size"] = 0
    # SQLAlchemy's asyncpg adapter calls this instead of asyncpg.connect (same isolation).
    args["async_creator_fn"] = isolated_connect
    return create_async_engine(url, connect_args=args, pool_size=pool_size,
                               max_overflow=max_overflow, pool_timeout=pool_timeout,
                               pool_pre_ping=pre_ping, pool_use_lifo=lifo, pool_recycle=-1)
