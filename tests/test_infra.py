"""The test servers are real: these tests connect to them and can fail."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from wizard.fleet.pgserver import Bouncer, PgServer

pytestmark = pytest.mark.db


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def test_pg_settings_as_app_role(pg: PgServer) -> None:
    async def main():
        conn = await asyncpg.connect(pg.dsn())
        try:
            return (
                await conn.fetchval("SHOW max_connections"),
                await conn.fetchval("SHOW superuser_reserved_connections"),
                await conn.fetchval("SELECT current_user"),
                await conn.fetchval("SELECT current_database()"),
                await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"),
                await conn.fetchval("SHOW server_version_num"),
            )
        finally:
            await conn.close()

    max_conn, reserved, user, db, is_super, version = run(main())
    assert max_conn == "60"
    assert reserved == "3"
    assert (user, db) == ("poolwise_app", "poolwise")
    assert is_super is False
    assert int(version) // 10000 == 15


def test_app_role_cannot_do_superuser_things(pg: PgServer) -> None:
    async def main():
        conn = await asyncpg.connect(pg.dsn())
        try:
            await conn.execute("ALTER SYSTEM SET work_mem = '8MB'")
        finally:
            await conn.close()

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        run(main())


def test_psql_helper_runs_as_admin(pg: PgServer) -> None:
    out = pg.psql("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;")
    assert out.strip() == "poolwise_admin|t"
    assert pg.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'poolwise_app'").strip() == "f"


def test_sqlalchemy_url(pg: PgServer) -> None:
    async def main():
        engine = create_async_engine(pg.url())
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text("SELECT current_user"))).scalar_one()
        finally:
            await engine.dispose()

    assert run(main()) == "poolwise_app"


def test_wrong_password_rejected(pg: PgServer) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        run(asyncpg.connect(pg.dsn(password="wrong-" + pg.password)))


@pytest.mark.pgbouncer
def test_query_through_pgbouncer(pg: PgServer, pgbouncer: Bouncer) -> None:
    assert pgbouncer.port != pg.port
    assert pgbouncer.pool_mode == "transaction"

    async def main():
        # Transaction pooling: asyncpg >= 0.31 needs only its statement cache off.
        conn = await asyncpg.connect(pgbouncer.dsn(), statement_cache_size=0)
        try:
            return (
                await conn.fetchval("SELECT 1"),
                await conn.fetchval("SELECT current_setting('max_connections')"),
                await conn.fetchval("SELECT current_user"),
            )
        finally:
            await conn.close()

    assert run(main()) == (1, "60", "poolwise_app")
    pools = [p for p in pgbouncer.admin("SHOW POOLS") if p["database"] == pg.database]
    assert pools and pools[0]["pool_mode"] == "transaction"
    config = {row["key"]: row["value"] for row in pgbouncer.admin("SHOW CONFIG")}
    assert config["default_pool_size"] == "10"
    assert config["max_client_conn"] == "400"


@pytest.mark.pgbouncer
def test_pgbouncer_rejects_wrong_password(pgbouncer: Bouncer) -> None:
    # PgBouncer 1.18 answers a failed SCRAM exchange with FATAL 08P01 "SASL authentication
    # failed" (md5: "password authentication failed"), not PostgreSQL's 28P01.
    with pytest.raises(asyncpg.ProtocolViolationError, match="authentication failed") as exc:
        run(asyncpg.connect(pgbouncer.dsn(password="wrong-" + pgbouncer.password)))
    assert exc.value.sqlstate == "08P01"


@pytest.mark.pgbouncer
def test_pgbouncer_factory_session_mode(pgbouncer_factory) -> None:
    bouncer = pgbouncer_factory(pool_mode="session", default_pool_size=2)
    assert bouncer.pool_mode == "session"

    async def main():
        conns = [await asyncpg.connect(bouncer.dsn()) for _ in range(2)]
        try:
            # Session mode keeps prepared statements working with the default cache.
            return [await c.fetchval("SELECT $1::int + 1", 41) for c in conns]
        finally:
            for c in conns:
                await c.close()

    assert run(main()) == [42, 42]
    config = {row["key"]: row["value"] for row in bouncer.admin("SHOW CONFIG")}
    assert (config["pool_mode"], config["default_pool_size"]) == ("session", "2")


def test_missing_binaries_fail_with_hint(pg: PgServer, pgbouncer_factory, monkeypatch) -> None:
    """A machine without the Debian packages must fail loudly, not skip."""
    import shutil

    from wizard.fleet import pgserver

    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(pgserver.glob, "glob", lambda *a, **k: [])
    monkeypatch.delenv("POOLWISE_PG_BINDIR", raising=False)
    with pytest.raises(pgserver.InfraMissingError, match="make test"):
        pgserver.find_pg_bindir()
    with pytest.raises(pytest.fail.Exception, match=r"pgbouncer.*make test"):
        pgbouncer_factory(pool_mode="session")
