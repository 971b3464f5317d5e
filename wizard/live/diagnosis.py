"""Diagnosis: a failed connect or query, turned into one LiveError that names the likely
cause and its fix (DNS, refused port, timeout, TLS, pooler mode, password, pg_hba.conf,
connection slots). When TLS fails, one 8-byte SSLRequest probe tells a PostgreSQL server
from another service. Never echoes the password: driver text passes through `scrub`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
import struct

import asyncpg

from wizard.live.errors import MAX_SERVER_TEXT, LiveError, address, scrub, short
from wizard.live.target import resolve_checked

# What a PostgreSQL server answers to an SSLRequest: "S" (TLS on) or "N" (TLS off).
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


async def probe_postgres(host: str, port: int, timeout: float) -> str:
    """What listens on host:port: "tls", "plain" (PostgreSQL without TLS) or "other".

    Sends only PostgreSQL's 8-byte SSLRequest and reads one byte: used to tell a
    TLS refusal from a port that does not speak PostgreSQL at all.
    """
    writer = None
    try:
        async with asyncio.timeout(timeout):
            addrs = await resolve_checked(host, port)
            reader, writer = await asyncio.open_connection(addrs[0], port)
            writer.write(_SSL_REQUEST)
            await writer.drain()
            first = await reader.read(1)
    except (OSError, TimeoutError, LiveError):
        return "other"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    return {b"S": "tls", b"N": "plain"}.get(first, "other")


def _says(exc: BaseException, low: str, kind: type, sqlstate: str, text: str) -> bool:
    """The driver's exception class, the server's SQLSTATE or the (lower-cased) message
    `low` says it."""
    return isinstance(exc, kind) or getattr(exc, "sqlstate", None) == sqlstate or text in low


async def classify(
    exc: BaseException,
    *,
    host: str,
    port: int,
    user: str,
    database: str,
    ssl: str,
    timeout: float,
    password: str | None,
) -> LiveError:
    """Turn a connect or query failure into one LiveError (never echoing the password)."""
    where = address(host, port)
    raw = str(exc)[:MAX_SERVER_TEXT * 4]  # never more than a few hundred bytes of it
    detail = short(scrub(raw, password))
    low = raw.lower()

    if isinstance(exc, LiveError):
        return exc
    if isinstance(exc, socket.gaierror):
        return LiveError(
            f"Cannot resolve the host name {host!r}.",
            "check the host in the URL; from a container or another network the database "
            "may have a different (private) name.", "unknown_host")
    if isinstance(exc, ConnectionRefusedError):
        return LiveError(
            f"Nothing accepts connections on {where} (connection refused).",
            "check the port (PostgreSQL listens on 5432, PgBouncer often on 6432) and that "
            "the server listens on this address (listen_addresses, security group, firewall).",
            "closed_port")
    if isinstance(exc, TimeoutError):
        return LiveError(
            f"No answer from {where} within {timeout:g} s.",
            "a firewall or security group drops the packets, or the host is down: check the "
            "network path (VPN, VPC peering, allowed client IPs).", "timeout")
    if "rejected ssl upgrade" in low or isinstance(exc, ssl_module.SSLError) or (
        isinstance(exc, asyncpg.ConnectionDoesNotExistError)
        and "transaction blocks not allowed" not in low
    ):
        kind = await probe_postgres(host, port, min(timeout, 3.0))
        if kind == "other":
            return LiveError(
                f"{where} does not speak the PostgreSQL protocol (maybe an HTTP or other "
                "service).",
                "point the URL at the PostgreSQL or PgBouncer port, not a web or admin port.",
                "not_postgres")
        if kind == "plain" and ssl in ("require", "verify-ca", "verify-full"):
            return LiveError(
                f"The server at {where} refuses TLS, but the URL requires it (sslmode={ssl}).",
                "enable TLS on the server, or use sslmode=prefer / disable if the network "
                "path is private.", "tls_refused")
        if kind == "tls" and isinstance(exc, ssl_module.SSLError):
            return LiveError(
                f"The TLS handshake with {where} failed: {detail}.",
                "use sslmode=require (encrypt without verifying) or give the provider's CA "
                "bundle for verify-full.", "tls_failed")
    if "transaction blocks not allowed" in low:
        return LiveError(
            f"The pooler at {where} rejects transactions (statement pooling mode), so the "
            "read-only check cannot run there.",
            "run the live check against the database directly or a session/transaction-mode "
            "pooler port; statement mode also breaks SQLAlchemy's transactions.",
            "pooler_rejects")
    if "unsupported startup parameter" in low:
        return LiveError(
            f"The pooler at {where} rejects a startup parameter: {detail}.",
            "add the parameter to the pooler's ignore_startup_parameters, or check against "
            "the database directly.", "pooler_rejects")
    if _says(exc, low, asyncpg.InvalidPasswordError, "28P01", "authentication failed"):
        return LiveError(
            f"The server at {where} rejected the password for user {user!r}.",
            "check the password (password field or the POOLWISE_LIVE_PASSWORD environment "
            "variable) and the user name; with IAM auth, generate a fresh token.",
            "wrong_password")
    if isinstance(exc, asyncpg.InvalidCatalogNameError) or (
        "database" in low and "does not exist" in low
    ):
        return LiveError(
            f"Database {database!r} does not exist on {where}.",
            "put an existing database in the URL path (…/DBNAME); list them with \\l in psql.",
            "no_database")
    if "pg_hba.conf rejects connection" in low:
        # A `reject` line in pg_hba.conf matched: TLS does not change that (unless the line
        # is hostnossl, which only an unencrypted connection matches).
        unencrypted = "no encryption" in low and ssl not in ("require", "verify-ca",
                                                             "verify-full")
        return LiveError(
            f"The server at {where} refuses user {user!r} on database {database!r} from "
            "this client's address: a pg_hba.conf `reject` rule matches.",
            "ask the database's operator to allow this user and address in pg_hba.conf (or "
            "the provider's access rules), or use another user"
            + ("; if the rule only rejects unencrypted connections (hostnossl), add "
               "?sslmode=require." if unencrypted else "."), "hba_reject")
    if "no pg_hba.conf entry" in low:
        unencrypted = "no encryption" in low
        return LiveError(
            f"The server at {where} has no pg_hba.conf entry for user {user!r} on database "
            f"{database!r} from this client's address"
            + (" without TLS." if unencrypted else "."),
            ("add ?sslmode=require if the server accepts this user only over TLS "
             "(hostssl); otherwise " if unencrypted else "")
            + "ask its operator to add an entry for this user and address.", "not_allowed")
    if "no encryption" in low or ("ssl" in low and "required" in low):
        return LiveError(
            f"The server at {where} requires TLS.",
            "add ?sslmode=require to the URL.", "tls_required")
    if _says(exc, low, asyncpg.TooManyConnectionsError, "53300", "no more connections allowed"):
        return LiveError(
            f"The server at {where} has no free connection slot for {user!r}: {detail}.",
            "close idle sessions or wait for load to drop; this is the exhaustion the sizing "
            "is meant to prevent (see the recommendation's budget).", "too_many_connections")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return LiveError(
            f"The server at {where} refused user {user!r}: {detail}.",
            "allow this user and client address in pg_hba.conf (or the provider's access "
            "rules).", "not_allowed")
    if isinstance(exc, OSError):
        return LiveError(
            f"Cannot reach {where}: {detail or type(exc).__name__}.",
            "check the host, port and network path.", "unreachable")
    return LiveError(
        f"The live check against {where} failed: {type(exc).__name__}: {detail}.",
        "check the URL and that the endpoint is PostgreSQL or a PostgreSQL pooler.", "failed")
