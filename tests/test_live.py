"""The live check against the real PostgreSQL and PgBouncer fixtures (no mocks).

Expected values come from how wizard/fleet/pgserver.py configures the servers (max_connections
60, superuser_reserved_connections 3, PostgreSQL 15) or from the admin account's own view
of pg_stat_activity, never from the live check's output.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace

import asyncpg
import pytest

from wizard.core.model import EngineSettings, Scenario
from wizard.core.plan import recommend
from wizard.fleet.pgserver import Bouncer, PgServer, free_port
from wizard.live import (
    APP_NAME,
    LiveError,
    LiveTarget,
    allowed_hosts,
    apply_overrides,
    exhaustion_plan,
    live_enabled,
    parse_target,
    report_overrides,
    run_exhaustion,
    run_live_check,
    stated_limit,
)
from wizard.scenario import links

pytestmark = pytest.mark.db

FAIL_TIMEOUT = 3.0  # connect timeout used by the bad-input tests


@pytest.fixture(autouse=True)
def _fixture_ports_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixtures listen on random ports; the port list itself is tested in test_security."""
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")


def settings(pool_size: int = 2, max_overflow: int = 1, pool_timeout: float = 1.0,
             poolclass: str = "AsyncAdaptedQueuePool") -> EngineSettings:
    return EngineSettings("primary", poolclass, pool_size, max_overflow, pool_timeout, -1,
                          True, False, {}, {})


def target_for(server: PgServer | Bouncer, *, user: str | None = None,
               password: str | None = None, database: str | None = None,
               port: int | None = None, query: str = "") -> LiveTarget:
    user = user or server.user
    url = (f"postgresql://{user}@{server.host}:{port or server.port}/"
           f"{database or server.database}{query}")
    return parse_target(url, server.password if password is None else password, env={})


def psql_int(pg: PgServer, sql: str) -> int:
    return int(pg.psql(sql).strip())


def role_sessions(pg: PgServer, role: str = "poolwise_app") -> int:
    return psql_int(pg, f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'")


def settle(read, expected: int, seconds: float = 5.0) -> int:
    """Backends exit a moment after the client closes: poll until the count matches."""
    deadline = time.monotonic() + seconds
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def assert_no_secret(secret: str, *texts: str) -> None:
    assert secret
    for text in texts:
        assert secret not in text


@pytest.fixture(autouse=True)
def _no_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POOLWISE_LIVE_DISABLED", "POOLWISE_LIVE_ALLOWED_HOSTS",
                 "POOLWISE_LIVE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def roles(pg: PgServer) -> Iterator[dict[str, str]]:
    """live_reader (role-level timeouts set) and live_limited (CONNECTION LIMIT 1)."""
    pw = {"live_reader": secrets.token_urlsafe(12), "live_limited": secrets.token_urlsafe(12)}
    pg.psql(
        "DROP ROLE IF EXISTS live_reader; DROP ROLE IF EXISTS live_limited;\n"
        f"CREATE ROLE live_reader LOGIN PASSWORD '{pw['live_reader']}';\n"
        "ALTER ROLE live_reader SET statement_timeout = '4s';\n"
        "ALTER ROLE live_reader SET idle_session_timeout = '5min';\n"
        "ALTER ROLE live_reader SET idle_in_transaction_session_timeout = '90s';\n"
        "ALTER ROLE live_reader SET tcp_keepalives_idle = 30;\n"
        f"CREATE ROLE live_limited LOGIN PASSWORD '{pw['live_limited']}' CONNECTION LIMIT 1;\n"
    )
    yield pw
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename IN ('live_reader', 'live_limited');\n"
            "DROP ROLE IF EXISTS live_reader; DROP ROLE IF EXISTS live_limited;")


# --------------------------------------------------------------------------- target


def test_target_keeps_password_out_of_repr_str_and_dict() -> None:
    t = parse_target("postgresql://app@db.example.com:6543/shop", "s3cret-Pw", env={})
    assert (t.host, t.port, t.user, t.database, t.password) == (
        "db.example.com", 6543, "app", "shop", "s3cret-Pw")
    assert_no_secret("s3cret-Pw", repr(t), str(t), json.dumps(t.to_dict()))
    assert str(t) == "postgresql://app@db.example.com:6543/shop"


def test_password_sources_in_order() -> None:
    env = {"POOLWISE_LIVE_PASSWORD": "from-env", "OTHER": "other-env"}
    url = "postgresql://u:from%40url@h/db"
    assert parse_target(url, "from-arg", env=env).password_from == "argument"
    t = parse_target(url, env=env)
    assert (t.password, t.password_from) == ("from@url", "url")
    t = parse_target("postgresql://u@h/db", env=env)
    assert (t.password, t.password_from) == ("from-env", "env")
    t = parse_target("postgresql://u@h/db", env=env, password_env="OTHER")
    assert t.password == "other-env"
    t = parse_target("postgres://u@h", env={})
    assert (t.password, t.port, t.database, t.ssl) == (None, 5432, "u", "prefer")
    assert parse_target("postgresql://u@h/d?sslmode=require", env={}).ssl == "require"
    assert parse_target("postgresql://u@[::1]:5/d", env={}).host == "::1"


@pytest.mark.parametrize("url", [
    "",
    "http://u@h/db",
    "postgresql://h:5432/db",
    "postgresql://u:MalformedPw1@h:notaport/db",
    "postgresql://u:MalformedPw1@h:99999/db",
    "postgresql://u:MalformedPw1@/db",
    "postgresql://u@h/db?password=MalformedPw1",
    "postgresql://u:MalformedPw1@h/db?sslmode=bogus",
    "postgresql://u:MalformedPw1@h/db?application_name=x",
    "postgresql://u:MalformedPw1@h/a/b",
])
def test_malformed_urls_name_a_fix_without_the_password(url: str) -> None:
    with pytest.raises(LiveError) as info:
        parse_target(url, env={})
    err = info.value
    assert err.code == "bad_url"
    assert err.fix and err.message
    assert_no_secret("MalformedPw1", str(err), err.message, err.fix)


# --------------------------------------------------------------------------- operator


def test_operator_switches() -> None:
    assert live_enabled({}) is True
    assert live_enabled({"POOLWISE_LIVE_DISABLED": "1"}) is False
    assert live_enabled({"POOLWISE_LIVE_DISABLED": "0"}) is True
    assert allowed_hosts({"POOLWISE_LIVE_ALLOWED_HOSTS": " DB.internal, *.corp ,"}) == (
        "db.internal", "*.corp")


async def test_disabled_refuses_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    # A closed port would answer "closed_port" if the check tried to connect.
    t = parse_target(f"postgresql://u@127.0.0.1:{free_port()}/d", "pw", env={})
    monkeypatch.setenv("POOLWISE_LIVE_DISABLED", "1")
    with pytest.raises(LiveError) as info:
        await run_live_check(t, pre_ping=0)
    assert info.value.code == "disabled"


async def test_allowlist(pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    t = target_for(pg)
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_HOSTS", "db.internal,*.example.com")
    with pytest.raises(LiveError) as info:
        await run_live_check(t, pre_ping=0)
    assert info.value.code == "host_not_allowed"
    # The refusal never lists the allowed patterns (a visitor learns nothing to aim at).
    assert "db.internal" not in str(info.value) and "example.com" not in str(info.value)
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_HOSTS", "db.internal,127.0.0.*")
    report = await run_live_check(t, pre_ping=0)
    assert report.readings is not None and report.readings.max_connections == 60


# --------------------------------------------------------------------------- readings


async def test_readings_as_app_role(pg: PgServer) -> None:
    holder = await asyncpg.connect(pg.dsn(), server_settings={"application_name": "holder-x"})
    try:
        report = await run_live_check(target_for(pg), pre_ping=0)
        others = psql_int(pg, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                              "'client backend' AND pid <> pg_backend_pid()")
    finally:
        await holder.close()
    r = report.readings
    assert r is not None and report.errors == ()
    version_num = psql_int(pg, "SHOW server_version_num")
    assert (r.max_connections, r.superuser_reserved_connections) == (60, 3)
    assert r.server_version_num == version_num and r.major_version == version_num // 10000
    assert r.reserved_connections is None  # PostgreSQL 15 has no reserved_connections
    assert (r.is_superuser, r.sees_all_sessions, r.user, r.database) == (
        False, False, "poolwise_app", "poolwise")
    # The admin sees every client backend; the check saw those plus its own connection.
    assert r.in_use == others + 1
    assert r.by_application.get("holder-x") == 1
    assert r.by_application.get(APP_NAME) == 1
    assert r.by_state.get("idle", 0) >= 1 and r.by_state.get("active", 0) >= 1
    assert r.free == 60 - 3 - r.in_use
    assert r.statement_timeout_ms == 0 and r.idle_session_timeout_ms == 0
    assert r.tcp_keepalives_idle_s is not None
    assert r.server_port == pg.port
    assert report.elapsed_s <= report.limit_s == stated_limit()


async def test_activity_is_counted_in_sql_top_names_and_the_rest(
        pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_stat_activity is read aggregated, never row by row: the TOP_APPS busiest names
    one by one, every other name in one "(N more names)" count; the counts still add up."""
    from wizard.live import check

    monkeypatch.setattr(check, "TOP_APPS", 2)
    # More than any other name holds (earlier tests' connections may linger).
    probe = await asyncpg.connect(pg.dsn())
    try:
        most = await probe.fetchval(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' GROUP BY application_name) c")
    finally:
        await probe.close()
    a, b = most + 7, most + 6
    names = ["top-a"] * a + ["top-b"] * b + ["rest-1", "rest-2", "rest-3"]
    held = [await asyncpg.connect(pg.dsn(), server_settings={"application_name": n})
            for n in names]
    try:
        report = await run_live_check(target_for(pg), pre_ping=0)
    finally:
        for c in held:
            await c.close()
    r = report.readings
    assert (r.by_application["top-a"], r.by_application["top-b"]) == (a, b)
    more = [k for k in r.by_application if k.endswith("more names)")]
    assert len(r.by_application) == 3 and len(more) == 1
    assert r.by_application[more[0]] >= 3  # rest-1..3, the check's own and any other
    assert sum(r.by_application.values()) == r.in_use


def test_activity_query_asks_for_a_bounded_number_of_rows() -> None:
    from wizard.live import check

    q = check._ACTIVITY.lower()
    assert "group by" in q and "limit $1" in q and "limit $2" in q and "left(" in q


async def test_readings_of_role_timeouts(pg: PgServer, roles: dict[str, str]) -> None:
    report = await run_live_check(
        target_for(pg, user="live_reader", password=roles["live_reader"]), pre_ping=0)
    r = report.readings
    assert r is not None
    assert r.statement_timeout_ms == 4_000
    assert r.idle_session_timeout_ms == 5 * 60_000
    assert r.idle_in_transaction_session_timeout_ms == 90_000
    assert r.tcp_keepalives_idle_s == 30


async def test_readings_as_superuser(pg: PgServer) -> None:
    t = target_for(pg, user=pg.admin_user, password=pg.admin_password)
    report = await run_live_check(t, pre_ping=0)
    r = report.readings
    assert r is not None and r.is_superuser and r.sees_all_sessions
    assert "(hidden)" not in r.by_state
    assert r.free == 60 - r.in_use
    assert_no_secret(pg.admin_password, json.dumps(report.to_dict()), repr(report))


@pytest.mark.pgbouncer
async def test_readings_through_pgbouncer_are_the_servers(pgbouncer: Bouncer,
                                                          pg: PgServer) -> None:
    report = await run_live_check(target_for(pgbouncer), pre_ping=0)
    r = report.readings
    assert r is not None and r.max_connections == 60
    assert r.server_port == pg.port != pgbouncer.port


# --------------------------------------------------------------------------- pooler


async def test_direct_server_is_not_a_pooler(pg: PgServer) -> None:
    p = (await run_live_check(target_for(pg), pre_ping=0)).pooler
    assert p is not None
    assert (p.kind, p.backend_changed, p.named_statements_break, p.port_differs) == (
        "direct-or-session", False, False, False)
    assert p.suggested_proxy is None and p.cache_off_works is None


@pytest.mark.pgbouncer
async def test_transaction_pooler_detected(pgbouncer: Bouncer) -> None:
    p = (await run_live_check(target_for(pgbouncer), pre_ping=0)).pooler
    assert p is not None
    assert p.kind == "transaction-pooler"
    assert p.named_statements_break is True
    assert "prepared statement" in p.driver_error and "__asyncpg_stmt_" in p.driver_error
    assert p.cache_off_works is True
    assert p.suggested_proxy == "pgbouncer-transaction"
    assert "pgbouncer-transaction" in p.message


@pytest.mark.pgbouncer
async def test_session_pooler_keeps_statements_but_shows_the_port(pgbouncer_factory) -> None:
    bouncer = pgbouncer_factory("session")
    p = (await run_live_check(target_for(bouncer), pre_ping=0)).pooler
    assert p is not None
    assert (p.kind, p.named_statements_break, p.port_differs) == (
        "direct-or-session", False, True)
    assert str(p.server_port) in p.message


@pytest.mark.pgbouncer
async def test_statement_pooler_rejects_the_check(pgbouncer_factory) -> None:
    bouncer = pgbouncer_factory("statement")
    with pytest.raises(LiveError) as info:
        await run_live_check(target_for(bouncer), pre_ping=0, connect_timeout=FAIL_TIMEOUT)
    assert info.value.code == "pooler_rejects"
    assert_no_secret(bouncer.password, str(info.value))


# --------------------------------------------------------------------------- pre-ping


async def test_pre_ping_figures(pg: PgServer) -> None:
    p = (await run_live_check(target_for(pg), pre_ping=30)).pre_ping
    assert p is not None and p.n == 30 and p.statement_cache is True
    assert p.connect_ms > 0 and p.engine_connect_ms > 0
    for t in (p.pre_ping_checkout, p.plain_checkout, p.select1):
        assert t.n == 30
        assert 0 < t.p50_ms <= t.p95_ms <= t.p99_ms
    assert p.ratio_p50 == pytest.approx(p.pre_ping_checkout.p50_ms / p.select1.p50_ms)


@pytest.mark.pgbouncer
async def test_pre_ping_through_transaction_pooler_uses_cache_off(pgbouncer: Bouncer) -> None:
    # With the statement cache on, the pre-ping engine would fail behind this pooler.
    p = (await run_live_check(target_for(pgbouncer), pre_ping=10)).pre_ping
    assert p is not None and p.statement_cache is False and p.select1.n == 10


# --------------------------------------------------------------------------- exhaustion


async def test_exhaustion_proof_and_release(pg: PgServer) -> None:
    before = settle(lambda: role_sessions(pg), role_sessions(pg))
    seen_while_holding: list[int] = []
    stage_start: list[str] = []

    def progress(stage: str, fraction: float) -> None:
        # Count the backends the check opened since the exhaustion stage began (earlier
        # tests' PgBouncer server connections carry the same application_name).
        if stage == "exhaustion" and fraction == 0.0:
            stage_start.append(pg.psql("SELECT clock_timestamp()").strip())
        if stage == "exhaustion" and fraction == 0.5:  # every holder open, extra not yet
            seen_while_holding.append(psql_int(
                pg, f"SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    f"'{APP_NAME}' AND backend_start >= '{stage_start[0]}'"))

    report = await run_live_check(target_for(pg), pre_ping=5, progress=progress,
                                  exhaustion=settings(2, 1, 1.0))
    plan, e = report.exhaustion_plan, report.exhaustion
    assert plan is not None and plan.allowed and plan.holders == 4
    assert e is not None
    assert (e.holders, e.opened, e.server_connections, e.timed_out) == (4, 3, 3, True)
    assert seen_while_holding == [3]
    assert e.waited_s >= 1.0 - 0.05  # SQLAlchemy waits pool_timeout before giving up
    assert "QueuePool limit of size 2 overflow 1 reached" in e.error
    assert report.limit_s == stated_limit(exhaustion=settings(2, 1, 1.0))
    assert settle(lambda: role_sessions(pg), before) == before


@pytest.mark.pgbouncer
async def test_exhaustion_through_pgbouncer(pgbouncer: Bouncer) -> None:
    clients = lambda: sum(1 for c in pgbouncer.admin("SHOW CLIENTS")  # noqa: E731
                          if c["user"] == pgbouncer.user)
    before = settle(clients, clients())
    report = await run_live_check(target_for(pgbouncer), pre_ping=5,
                                  exhaustion=settings(1, 1, 1.0))
    e = report.exhaustion
    assert e is not None and e.timed_out and e.opened == 2
    assert settle(clients, before) == before


async def test_exhaustion_refused_over_cap(pg: PgServer) -> None:
    report = await run_live_check(target_for(pg), pre_ping=0, exhaustion=settings(40, 20, 1))
    assert report.exhaustion is None
    assert report.exhaustion_plan is not None and not report.exhaustion_plan.allowed
    assert [e.code for e in report.errors] == ["exhaustion_refused"]
    assert "61" in report.errors[0].message


async def test_exhaustion_plan_against_free_connections(pg: PgServer) -> None:
    report = await run_live_check(target_for(pg), pre_ping=0)
    r = report.readings
    assert r is not None
    busy = replace(r, in_use=60 - 3 - 3)  # 3 free for a non-superuser
    assert exhaustion_plan(settings(2, 0), busy).allowed  # 3 holders
    refused = exhaustion_plan(settings(2, 1), busy)  # 4 holders
    assert not refused.allowed and "only 3 free" in refused.reason
    assert "opens 4 connections" in refused.summary
    assert not exhaustion_plan(settings(poolclass="NullPool"), r).allowed
    assert not exhaustion_plan(settings(), None).allowed
    with pytest.raises(LiveError) as info:
        await run_exhaustion(target_for(pg), settings(2, 1), busy)
    assert info.value.code == "exhaustion_refused"


# --------------------------------------------------------------------------- leaks, secrets


async def test_full_check_leaves_no_connection_and_no_secret(pg: PgServer) -> None:
    before = settle(lambda: role_sessions(pg), role_sessions(pg))
    report = await run_live_check(target_for(pg), pre_ping=10, exhaustion=settings(1, 1, 0.5))
    assert report.ok and report.exhaustion is not None and report.exhaustion.timed_out
    assert settle(lambda: role_sessions(pg), before) == before
    assert_no_secret(pg.password, json.dumps(report.to_dict()), repr(report))


# --------------------------------------------------------------------------- feed back


async def test_overrides_feed_the_scenario(pg: PgServer) -> None:
    report = await run_live_check(target_for(pg), pre_ping=0)
    flat = report_overrides(report)
    assert flat == {"max_connections": "60", "superuser_reserved": "3", "pg_version": "15",
                    "max_connections_source": report.source}
    assert report.source.startswith("measured 20") and report.source.endswith("Z")
    base = Scenario.flags(provider="self-hosted", instance_class=None, app_instances=2)
    s = apply_overrides(base, report)
    rec = recommend(s)
    primary = rec.endpoint("primary")
    assert primary.max_connections == 60
    assert primary.max_connections_source == report.source
    assert not primary.max_connections_estimated
    superuser = [i for i in primary.reserves if i.name == "superuser_reserved_connections"]
    assert [(i.count, i.source) for i in superuser] == [(3, "you")]
    # The same numbers through the share/CLI parameters.
    assert links.from_flat({**links.to_flat(base), **flat}).max_connections == 60


# --------------------------------------------------------------------------- bad input


async def _fail(t: LiveTarget, secret: str) -> LiveError:
    t0 = time.monotonic()
    with pytest.raises(LiveError) as info:
        await run_live_check(t, pre_ping=0, connect_timeout=FAIL_TIMEOUT)
    elapsed = time.monotonic() - t0
    err = info.value
    assert elapsed < FAIL_TIMEOUT + 1.5, f"{err.code} took {elapsed:.1f} s"
    assert err.message and err.fix
    assert_no_secret(secret, str(err), err.message, err.fix, repr(err))
    return err


async def test_unknown_host() -> None:
    t = parse_target("postgresql://u@no-such-db.invalid:5432/d", "Unknown-Pw1", env={})
    assert (await _fail(t, "Unknown-Pw1")).code == "unknown_host"


async def test_closed_port() -> None:
    t = parse_target(f"postgresql://u@127.0.0.1:{free_port()}/d", "Closed-Pw1", env={})
    err = await _fail(t, "Closed-Pw1")
    assert err.code == "closed_port" and "5432" in err.fix


@pytest.mark.parametrize("sslmode", ["", "?sslmode=disable", "?sslmode=require"])
async def test_port_that_is_not_postgres(sslmode: str) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t = parse_target(f"postgresql://u@127.0.0.1:{port}/d{sslmode}", "Http-Pw1", env={})
        assert (await _fail(t, "Http-Pw1")).code == "not_postgres"
    finally:
        server.close()
        await server.wait_closed()


async def test_wrong_password(pg: PgServer) -> None:
    wrong = "Wrong-" + secrets.token_urlsafe(8)
    err = await _fail(target_for(pg, password=wrong), wrong)
    assert err.code == "wrong_password" and "poolwise_app" in err.message


@pytest.mark.pgbouncer
async def test_wrong_password_through_pgbouncer(pgbouncer: Bouncer) -> None:
    wrong = "Wrong-" + secrets.token_urlsafe(8)
    assert (await _fail(target_for(pgbouncer, password=wrong), wrong)).code == "wrong_password"


async def test_missing_database(pg: PgServer) -> None:
    err = await _fail(target_for(pg, database="no_such_db"), pg.password)
    assert err.code == "no_database" and "no_such_db" in err.message


@pytest.mark.pgbouncer
async def test_missing_database_through_pgbouncer(pgbouncer: Bouncer) -> None:
    err = await _fail(target_for(pgbouncer, database="no_such_db"), pgbouncer.password)
    assert err.code == "no_database"


async def test_tls_required_by_client_refused_by_server(pg: PgServer) -> None:
    err = await _fail(target_for(pg, query="?sslmode=require"), pg.password)
    assert err.code == "tls_refused" and "sslmode" in err.fix


async def test_too_many_connections(pg: PgServer, roles: dict[str, str]) -> None:
    pw = roles["live_limited"]
    holder = await asyncpg.connect(pg.dsn(user="live_limited", password=pw))
    try:
        err = await _fail(target_for(pg, user="live_limited", password=pw), pw)
    finally:
        await holder.close()
    assert err.code == "too_many_connections"
