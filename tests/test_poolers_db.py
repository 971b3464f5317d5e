"""Poolers counted as they really are, proven against the real PgBouncer the fixtures start:
reserve_pool_size per pool, one URL is one pair, and pool_pre_ping across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from wizard.core import proxies
from wizard.core.model import ProxySettings, Scenario
from wizard.core.plan import recommend
from wizard.export import render_pgbouncer_ini
from wizard.fleet.pgserver import Bouncer, PgServer, _pg_os_user, _wait_tcp, find_pgbouncer

pytestmark = [pytest.mark.db, pytest.mark.pgbouncer]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=90))


def _servers(bouncer: Bouncer) -> int:
    """Server connections PgBouncer holds open now (SHOW SERVERS)."""
    return len(bouncer.admin("SHOW SERVERS"))


def test_reserve_pool_size_is_per_pool(pgbouncer_factory, pg: PgServer) -> None:
    # 3 pools (user/database pairs) of default_pool_size 2 with reserve_pool_size 1.
    bouncer = pgbouncer_factory(pool_mode="transaction", default_pool_size=2,
                                reserve_pool_size=1, reserve_pool_timeout=0.2)
    pairs = [(pg.user, pg.password, pg.database), (pg.admin_user, pg.admin_password, pg.database),
             (pg.admin_user, pg.admin_password, "postgres")]

    async def hold(user: str, password: str, db: str) -> None:
        conn = await asyncpg.connect(host=bouncer.host, port=bouncer.port, user=user,
                                     password=password, database=db, statement_cache_size=0)
        try:
            await conn.execute("SELECT pg_sleep(2.5)")
        finally:
            await conn.close()

    async def main() -> int:
        # Three clients per pool: two take the pool, the third the reserve after 0.2 s.
        tasks = [asyncio.create_task(hold(*pair)) for pair in pairs for _ in range(3)]
        await asyncio.sleep(1.2)
        opened = await asyncio.to_thread(_servers, bouncer)
        await asyncio.gather(*tasks)
        return opened

    opened = run(main())
    assert opened == 9
    # poolwise counts what PgBouncer opens: (2 + 1) x 3, not 2 x 3 + 1.
    assert proxies.pgbouncer_server_connections(2, 1, 3) == opened
    rec = recommend(Scenario(provider="self-hosted", instance_class=None, max_connections=60,
                             proxy="pgbouncer-transaction",
                             proxy_settings=ProxySettings(pool_size=2, reserve_pool=1,
                                                          user_db_pairs=3)))
    assert rec.endpoint("primary").server_side.configured == opened


def _ini_values(rec) -> dict[str, str]:
    out = {}
    for line in render_pgbouncer_ini(rec).splitlines():
        key, sep, value = line.partition(" = ")
        if sep and not line.startswith(";"):
            out[key.strip()] = value.strip()
    return out


def test_one_url_is_one_pair_in_session_mode(pgbouncer_factory, pg: PgServer) -> None:
    # Two user/database pairs through a session-mode PgBouncer; the service connects with one
    # URL, so its sessions get one pool. Sized as two pools, half of them would wait until
    # query_wait_timeout and fail.
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=60,
                       proxy="pgbouncer-session", app_instances=2, workers=2,
                       deploy_surge_percent=0,
                       proxy_settings=ProxySettings(pool_size=4, user_db_pairs=2))
    rec = recommend(s)
    ep, eng = rec.endpoint("primary"), rec.services[0].rec.engine("primary")
    ini = _ini_values(rec)
    bouncer = pgbouncer_factory(pool_mode="session", query_wait_timeout=2,
                                default_pool_size=ini["default_pool_size"],
                                reserve_pool_size=ini["reserve_pool_size"])
    sessions = ep.clients * (eng.pool_size + eng.max_overflow)

    async def session() -> None:
        conn = await asyncpg.connect(bouncer.dsn(), timeout=10)
        try:
            await conn.execute("SELECT 1")
            await asyncio.sleep(3)  # the session keeps its server connection
        finally:
            await conn.close()

    async def main() -> list:
        return await asyncio.gather(*(session() for _ in range(sessions)),
                                    return_exceptions=True)

    results = run(main())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert sessions >= 1 and not failed, failed


def _restart(bouncer: Bouncer, stack: contextlib.ExitStack) -> None:
    """Stop the PgBouncer process and start it again on the same port and ini."""
    subprocess.run(["kill", "-TERM", str(bouncer.pid)], check=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if subprocess.run(["kill", "-0", str(bouncer.pid)], capture_output=True).returncode:
            break
        time.sleep(0.05)
    owner = _pg_os_user()
    kw: dict = {}
    if owner is not None:
        kw = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    proc = subprocess.Popen([find_pgbouncer(), bouncer.config_file], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)

    def stop() -> None:
        proc.terminate()
        proc.wait(timeout=10)

    stack.callback(stop)
    assert _wait_tcp(bouncer.host, bouncer.port, 20, alive=lambda: proc.poll() is None)


@pytest.mark.parametrize("pre_ping", [True, False])
def test_pre_ping_survives_a_pgbouncer_restart(pgbouncer_factory, pre_ping: bool) -> None:
    # The exported engine behind a transaction pooler: pre-ping on by default, off by opt-out.
    rec = recommend(Scenario(provider="self-hosted", instance_class=None, max_connections=60,
                             proxy="pgbouncer-transaction", pre_ping=pre_ping))
    eng = rec.services[0].rec.engine("primary")
    assert eng.pool_pre_ping is pre_ping
    bouncer = pgbouncer_factory(pool_mode="transaction")

    async def main(stack: contextlib.ExitStack) -> int:
        engine = create_async_engine(
            bouncer.url(), pool_size=eng.pool_size, max_overflow=eng.max_overflow,
            pool_pre_ping=eng.pool_pre_ping, pool_recycle=eng.pool_recycle,
            connect_args=dict(eng.connect_args))
        failed = 0
        try:
            async with engine.connect() as conn:  # one idle connection in the pool
                await conn.execute(text("SELECT 1"))
            await asyncio.to_thread(_restart, bouncer, stack)
            for _ in range(3):
                try:
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                except Exception:  # noqa: BLE001 - a failed request is what is counted
                    failed += 1
        finally:
            await engine.dispose()
        return failed

    with contextlib.ExitStack() as stack:
        failed = run(main(stack))
    assert failed == (0 if pre_ping else 1)
