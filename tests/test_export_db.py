"""Exported modules run against the real PostgreSQL and PgBouncer test servers.

The hammer: 120 concurrent sessions of repeated parameterised queries through PgBouncer
1.18 in transaction mode. The exported transaction-pooler modules must see no
prepared-statement errors while a default engine fails the same hammer in the same test.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import types
from pathlib import Path

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from tests.support import TRANSACTION_POOLER_SCENARIOS, load_module, rec_for
from wizard.export import render_module
from wizard.fleet.pgserver import Bouncer, PgServer

pytestmark = pytest.mark.db

SESSIONS = 120
# (SQL, what it must return) for parameters x, y.
QUERIES = (("select cast(:x as int) + :y", lambda x, y: x + y),
           ("select cast(:x as int) * 2 + :y", lambda x, y: 2 * x + y),
           ("select cast(:x as int) - cast(:y as int)", lambda x, y: x - y))


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _module(tmp_path: Path, name: str):
    path = tmp_path / "db.py"
    path.write_text(render_module(rec_for(name)))
    return load_module(path, "poolwise_db_" + re.sub(r"\W", "_", name) + f"_{id(tmp_path)}")


async def hammer(sessionmaker) -> tuple[int, list[BaseException]]:
    """SESSIONS concurrent sessions, each running parameterised queries in two transactions."""

    async def one(i: int) -> int:
        total = 0
        async with sessionmaker() as session:
            for tx in range(2):
                for q, (sql, _) in enumerate(QUERIES):
                    total += (await session.execute(text(sql), {"x": i, "y": q + tx})).scalar_one()
                await session.commit()
        return total

    results = await asyncio.gather(*(one(i) for i in range(SESSIONS)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return sum(r for r in results if isinstance(r, int)), errors


def _expected_total() -> int:
    return sum(fn(i, q + tx) for i in range(SESSIONS) for tx in range(2)
               for q, (_, fn) in enumerate(QUERIES))


def _prepared_errors(errors: list[BaseException]) -> list[BaseException]:
    return [e for e in errors if "prepared statement" in str(e)]


def test_direct_module_queries_and_times_out_when_exhausted(pg: PgServer, tmp_path: Path,
                                                            monkeypatch) -> None:
    rec = rec_for("direct-rds")
    g = rec.services[0].rec.engine("primary")
    mod = _module(tmp_path, "direct-rds")
    monkeypatch.setenv("DATABASE_URL", pg.url())
    monkeypatch.setenv("DATABASE_SSL", "disable")  # the test server has no TLS
    monkeypatch.setenv("POOLWISE_POOL_TIMEOUT", "1")
    assert mod.ENGINE_SETTINGS["primary"]["pool_timeout"] == g.pool_timeout
    holders = g.pool_size + g.max_overflow

    async def main() -> tuple[str, float, dict[str, int]]:
        engines = mod.create_engines()
        try:
            async with engines.write_session() as s:
                user = (await s.execute(text("select current_user"))).scalar_one()
            release = asyncio.Event()
            held = 0

            async def hold() -> None:
                nonlocal held
                async with engines.write_session() as s:
                    await s.execute(text("select pg_backend_pid()"))
                    held += 1
                    await release.wait()

            tasks = [asyncio.create_task(hold()) for _ in range(holders)]
            while held < holders:
                await asyncio.sleep(0.01)
            start = time.monotonic()
            with pytest.raises(exc.TimeoutError, match="QueuePool limit"):
                async with engines.write_session() as s:
                    await s.execute(text("select 1"))
            waited = time.monotonic() - start
            stats = dict(mod.POOL_STATS["primary"])
            release.set()
            await asyncio.gather(*tasks)
            return user, waited, stats
        finally:
            await mod.dispose_engines(engines)

    user, waited, stats = run(main())
    assert user == pg.user
    assert 0.9 <= waited < 3.0  # POOLWISE_POOL_TIMEOUT=1
    assert stats["peak_checked_out"] == holders
    assert stats["size"] == g.pool_size
    assert stats["overflow"] == g.max_overflow


def test_module_from_host_and_password_variables(pg: PgServer, tmp_path: Path,
                                                 monkeypatch) -> None:
    mod = _module(tmp_path, "direct-rds")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for part, value in (("HOST", pg.host), ("PORT", str(pg.port)), ("USER", pg.user),
                        ("PASSWORD", pg.password), ("NAME", pg.database)):
        monkeypatch.setenv("DB_" + part, value)
    monkeypatch.setenv("DATABASE_SSL", "disable")

    async def main() -> str:
        engines = mod.create_engines()
        try:
            async with engines.write_session() as s:
                return (await s.execute(text("select current_database()"))).scalar_one()
        finally:
            await mod.dispose_engines(engines)

    assert run(main()) == pg.database


def test_pool_metrics_report_nothing_checked_out_when_idle(pg: PgServer, tmp_path: Path,
                                                          monkeypatch) -> None:
    # The checkin event fires before the pool takes the connection back: an idle pool must
    # still report 0 checked out, not 1 after each check-in.
    mod = _module(tmp_path, "direct-rds")
    monkeypatch.setenv("DATABASE_URL", pg.url())
    monkeypatch.setenv("DATABASE_SSL", "disable")

    async def main() -> tuple[dict[str, int], dict[str, int]]:
        engines = mod.create_engines()
        try:
            async with engines.write_session() as s:
                await s.execute(text("select 1"))
                busy = dict(mod.POOL_STATS["primary"])
            for _ in range(3):
                async with engines.write_session() as s:
                    await s.execute(text("select 1"))
            return busy, dict(mod.POOL_STATS["primary"])
        finally:
            await mod.dispose_engines(engines)

    busy, idle = run(main())
    assert busy["checked_out"] == 1
    assert idle["checked_out"] == 0
    assert idle["checkouts"] == idle["checkins"] == 4 and idle["peak_checked_out"] == 1


def test_replica_engines_round_robin(pg: PgServer, tmp_path: Path, monkeypatch) -> None:
    mod = _module(tmp_path, "two-replicas")
    for var in ("DATABASE_URL", "DATABASE_REPLICA_1_URL", "DATABASE_REPLICA_2_URL"):
        monkeypatch.setenv(var, pg.url())
    monkeypatch.setenv("DATABASE_SSL", "disable")

    async def main() -> dict[str, int]:
        engines = mod.create_engines()
        try:
            for _ in range(4):
                async with engines.read_session() as s:
                    assert (await s.execute(text("select 1"))).scalar_one() == 1
            return {k: v["checkouts"] for k, v in mod.POOL_STATS.items()}
        finally:
            await mod.dispose_engines(engines)

    checkouts = run(main())
    assert checkouts == {"primary": 0, "replica-1": 2, "replica-2": 2}


def test_iam_module_fetches_a_token_per_new_connection(pg: PgServer, tmp_path: Path,
                                                       monkeypatch) -> None:
    mod = _module(tmp_path, "rds-iam")
    calls: list[dict] = []

    class FakeRds:  # stands in for boto3's RDS client; the database and driver are real
        def generate_db_auth_token(self, **kw) -> str:
            calls.append(kw)
            return pg.password

    fake = types.ModuleType("boto3")
    fake.client = lambda service, region_name=None: FakeRds()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boto3", fake)
    no_password = URL.create("postgresql+asyncpg", username=pg.user, host=pg.host,
                             port=pg.port, database=pg.database)
    monkeypatch.setenv("DATABASE_URL", no_password.render_as_string(hide_password=False))
    monkeypatch.setenv("DATABASE_SSL", "disable")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    async def main() -> list[str]:
        engines = mod.create_engines()
        try:
            async def one() -> str:
                async with engines.write_session() as s:
                    user = (await s.execute(text("select current_user"))).scalar_one()
                    await asyncio.sleep(0.2)
                    return user

            first = await asyncio.gather(*(one() for _ in range(3)))
            again = await one()  # reuses a pooled connection: no new token
            return [*first, again]
        finally:
            await mod.dispose_engines(engines)

    assert run(main()) == [pg.user] * 4
    assert len(calls) == 3
    assert all(c == {"DBHostname": pg.host, "Port": pg.port, "DBUsername": pg.user,
                     "Region": "eu-west-1"} for c in calls)


def test_serverless_module_survives_a_new_event_loop_per_invocation(
        pg: PgServer, tmp_path: Path, monkeypatch) -> None:
    mod = _module(tmp_path, "lambda-rds-proxy")
    monkeypatch.setenv("DATABASE_URL", pg.url())
    monkeypatch.setenv("DATABASE_SSL", "disable")
    engines = mod.create_engines()  # module level on Lambda: created once, outside any loop

    async def invocation() -> int:
        async with engines.write_session() as s:
            return (await s.execute(text("select 41 + 1"))).scalar_one()

    try:
        # Each Lambda invocation runs its own event loop.
        assert [asyncio.run(invocation()) for _ in range(3)] == [42, 42, 42]
        assert isinstance(engines.write.sync_engine.pool, NullPool)
        stats = mod.POOL_STATS["primary"]
        assert (stats["checkouts"], stats["checked_out"]) == (3, 0)
    finally:
        asyncio.run(mod.dispose_engines(engines))


@pytest.mark.pgbouncer
@pytest.mark.parametrize("name", TRANSACTION_POOLER_SCENARIOS)
def test_transaction_pooler_module_survives_the_hammer(name: str, pgbouncer: Bouncer,
                                                       tmp_path: Path, monkeypatch) -> None:
    assert pgbouncer.pool_mode == "transaction"
    mod = _module(tmp_path, name)
    monkeypatch.setenv("DATABASE_URL", pgbouncer.url())
    monkeypatch.setenv("DATABASE_SSL", "disable")

    async def main() -> tuple[tuple[int, list], tuple[int, list]]:
        default = create_async_engine(pgbouncer.url())  # what people write first
        try:
            baseline = await hammer(async_sessionmaker(default))
        finally:
            await default.dispose()
        engines = mod.create_engines()
        try:
            exported = await hammer(engines.write_session)
        finally:
            await mod.dispose_engines(engines)
        return baseline, exported

    (_, default_errors), (total, errors) = run(main())
    assert _prepared_errors(default_errors), "the default engine should fail behind PgBouncer"
    assert errors == []
    assert total == _expected_total()


@pytest.mark.pgbouncer
def test_module_for_pgbouncer_1_24_keeps_caches_and_so_fails_on_1_18(
        pgbouncer: Bouncer, tmp_path: Path, monkeypatch) -> None:
    """The 1.24 export trusts max_prepared_statements; on a 1.18 bouncer that trust breaks,
    which proves the version the user gives decides the exported settings."""
    mod = _module(tmp_path, "pgbouncer-tx-1.24")
    monkeypatch.setenv("DATABASE_URL", pgbouncer.url())
    monkeypatch.setenv("DATABASE_SSL", "disable")

    async def main() -> list[BaseException]:
        engines = mod.create_engines()
        try:
            return (await hammer(engines.write_session))[1]
        finally:
            await mod.dispose_engines(engines)

    assert _prepared_errors(run(main()))
