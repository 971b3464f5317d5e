"""The fleet harness against real servers: real spawned processes, real connection limits.

Marked slow (3.5-5 s each, they spawn processes): test_sized_fleet_has_no_errors,
test_oversized_fleet_hits_the_limit and three test_cli_* runs; the file takes about 25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from wizard import fleet
from wizard.core.model import ScenarioError
from wizard.fleet import (
    Group,
    Monitor,
    Phase,
    PoolSettings,
    Target,
    Workload,
    run_fleet,
    run_groups,
)
from wizard.fleet.pgserver import PgServer, postgres_server

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- pure parts


def test_schedule_spikes_land_on_shared_instants() -> None:
    w = Workload(rate=0, spike_every=1.0, spike_size=5, spike_width=0.05)
    # Spikes at 1, 2 and 3 s fall inside [0.5, 3.5); each brings 5 requests within 50 ms.
    times = fleet.schedule(w, 0.5, 3.5, index=0)
    assert len(times) == 15
    for at in (1.0, 2.0, 3.0):
        assert sum(at <= t < at + 0.05 for t in times) == 5
    # Another process gets the same instants (fleet-wide spikes) but its own jitter.
    other = fleet.schedule(w, 0.5, 3.5, index=1)
    assert len(other) == 15 and other != times


def test_schedule_poisson_rate_is_close_to_the_asked_rate() -> None:
    times = fleet.schedule(Workload(rate=50), 0.0, 100.0, index=3)
    assert 4600 < len(times) < 5400  # 5000 expected, sd ~71
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 100


def test_mean_rate_counts_the_spikes() -> None:
    assert Workload(rate=30, spike_every=4, spike_size=20).mean_rate == 35


def test_percentile_nearest_rank() -> None:
    assert fleet.percentile([], 50) is None
    assert fleet.percentile([5, 1, 3, 2, 4], 50) == 3
    assert fleet.percentile(list(range(1, 101)), 99) == 99


def test_checkout_timeout_is_classified_apart_from_connection_errors() -> None:
    timeout = sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached")
    assert fleet.classify(timeout) == fleet.CHECKOUT_TIMEOUT
    assert fleet.classify(RuntimeError("sorry, too many clients already")) == fleet.CONN_ERROR
    assert fleet.classify(RuntimeError("relation does not exist")) == fleet.OTHER_ERROR


def test_pool_settings_from_a_recommendation() -> None:
    from wizard.core.model import Load, Scenario
    from wizard.core.plan import recommend

    rec = recommend(Scenario.flags(provider="self-hosted", instance_class=None, max_connections=100,
                                   app_instances=2, max_app_instances=4, workers=2,
                                   load=Load(rps=70, hold_ms=40)))
    s = PoolSettings.from_engine(rec.services[0].rec.engine("primary"))
    eng = rec.services[0].rec.engine("primary")
    assert (s.pool_size, s.max_overflow, s.pool_pre_ping) == (
        eng.pool_size, eng.max_overflow, eng.pool_pre_ping)
    kw = s.engine_kwargs()
    assert kw["pool_size"] + kw["max_overflow"] == s.per_process
    assert "pool_size" not in PoolSettings("n", poolclass="NullPool").engine_kwargs()


def test_bench_alternatives_follow_their_formulas() -> None:
    spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "bench" / "fleet.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(
        max_connections=100, instances=2, max_instances=4, surge=25, workers=2, hold_ms=40)
    scenario = bench.scenario_for(args, Workload(hold_s=0.04, rate=30, spike_every=4,
                                                 spike_size=20))
    assert scenario.services[0].load.rps == 70  # 2 workers x (30 + 20/4) req/s
    settings, facts = bench.settings_under_test(scenario)
    by = {s.name: s for s in settings}
    # 100 - 3 superuser - 3 admin - 1 migrations = 93 usable; / 4 instances = 23 -> 16 + 7
    assert facts["usable"] == 93
    assert (by["70/30 per instance"].pool_size, by["70/30 per instance"].max_overflow) == (16, 7)
    cores = os.cpu_count()
    assert by["HikariCP cores x 2 + 1"].per_process == cores * 2 + 1
    assert (by["SQLAlchemy defaults"].pool_size, by["SQLAlchemy defaults"].max_overflow) == (5, 10)
    # poolwise: 10 processes at the peak (5 instances with surge x 2 workers) must fit.
    assert by["poolwise"].per_process * 10 <= 93


def test_a_results_section_is_replaced_between_its_markers(tmp_path: Path) -> None:
    md = tmp_path / "bench.md"
    md.write_text("intro\n<!-- x:results -->\nold\n<!-- /x:results -->\nafter\n")
    fleet.write_section(md, "x:results", "new")
    assert md.read_text() == "intro\n<!-- x:results -->\nnew\n<!-- /x:results -->\nafter\n"
    fresh = tmp_path / "fresh.md"
    fleet.write_section(fresh, "y", "first")
    fleet.write_section(fresh, "y", "second")
    assert fresh.read_text() == "<!-- y -->\nsecond\n<!-- /y -->\n"


def test_the_package_runs_as_the_fleet_verb() -> None:
    """`python -m wizard.fleet ...` is `python -m wizard fleet ...`; a bad flag is one line."""
    out = subprocess.run([sys.executable, "-m", "wizard.fleet", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "wizard fleet" in out.stdout and "--processes" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "wizard.fleet", "--url",
                          "postgresql+asyncpg://u@127.0.0.1/db", "--processes", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --processes must be 1..64")


# --------------------------------------------------------------------------- real runs


@pytest.mark.db
def test_requests_run_read_only(pg: PgServer) -> None:
    async def main():
        engine = create_async_engine(pg.url(), pool_size=1, max_overflow=0)
        try:
            sql = text("SELECT current_setting('transaction_read_only')")
            ro = await fleet.request(engine, sql)
            with pytest.raises(sa_exc.DBAPIError, match="read-only transaction"):
                await fleet.request(engine, text("CREATE TABLE fleet_should_fail (x int)"))
            return ro
        finally:
            await engine.dispose()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == "on"


@pytest.mark.db
@pytest.mark.slow
def test_sized_fleet_has_no_errors(pg: PgServer) -> None:
    settings = PoolSettings("sized", pool_size=3, max_overflow=2, pool_timeout=10,
                            pool_pre_ping=True)
    target = Target(url=pg.url(), settings=settings, monitor_url=pg.url(user=pg.admin_user),
                    count_user=pg.user)
    workload = Workload(hold_s=0.02, rate=20, spike_every=1.0, spike_size=8)
    result = run_fleet(target, workload, [Phase("one", 1, 1.5), Phase("two", 2, 1.5)])
    one, two = result.phases
    assert (one.processes, two.processes) == (1, 2)
    for f in result.phases:
        assert f.errors == 0, result.messages
        assert f.ok == f.offered > 0
        assert f.p50_ms is not None and f.p50_ms >= 20  # pg_sleep(0.02) is a floor
    # The second phase offers twice the Poisson rate and twice the spike requests.
    assert two.offered > 1.4 * one.offered
    assert 0 < one.peak_server_connections <= 5
    assert 0 < two.peak_server_connections <= 2 * 5
    assert two.peak_server_connections > 0


@pytest.mark.db
@pytest.mark.slow
def test_oversized_fleet_hits_the_limit() -> None:
    # max_connections 20 - 3 superuser_reserved = 17 for the app role; 2 x 30 cannot fit.
    with postgres_server(settings={"max_connections": 20}) as small:
        settings = PoolSettings("oversized", pool_size=30, max_overflow=0, pool_timeout=30)
        target = Target(url=small.url(), settings=settings,
                        monitor_url=small.url(user=small.admin_user), count_user=small.user)
        workload = Workload(hold_s=0.2, rate=0, spike_every=1.0, spike_size=25)
        result = run_fleet(target, workload, [Phase("both", 2, 2.5)])
    f = result.phases[0]
    assert f.connection_errors > 0
    assert f.ok + f.connection_errors + f.checkout_timeouts + f.other_errors + f.unfinished \
        == f.offered == 2 * 2 * 25
    msg = result.messages["connection_error"]
    assert "too many clients" in msg or "remaining connection slots" in msg
    assert f.peak_server_connections <= 17
    assert f.throughput < f.offered_rate


@pytest.mark.db
@pytest.mark.slow
def test_groups_share_one_clock_and_are_counted_apart(pg: PgServer) -> None:
    """Two services in one run (bench/services.py's shape): each group's figures are its own,
    its peak counts its application_name only, and the role's total is beside it."""
    def group(app: str, pool: int, processes: tuple[int, ...]) -> Group:
        settings = PoolSettings(app, pool_size=pool, max_overflow=0, pool_timeout=10,
                                connect_args={"server_settings": {"application_name": app}})
        return Group(Target(url=pg.url(), settings=settings), Workload(
            hold_s=0.05, rate=0, spike_every=0.5, spike_size=pool + 2), processes, app=app)

    with Monitor(pg.dsn(user=pg.admin_user), pg.user) as monitor:
        api, jobs = run_groups([group("api", 3, (1, 2)), group("jobs", 1, (1, 1))],
                               [("base", 1.2), ("peak", 1.2)], monitor)
    assert (api.setting, api.app, jobs.app) == ("api", "api", "jobs")
    assert [f.processes for f in api.phases] == [1, 2]
    assert [f.processes for f in jobs.phases] == [1, 1]
    for f in api.phases + jobs.phases:
        assert f.errors == 0 and f.ok > 0, (api.messages, jobs.messages)
        assert f.held_ms is not None and f.held_ms >= 50  # pg_sleep(0.05) holds it that long
    assert 0 < api.phases[1].peak_server_connections <= 2 * 3
    assert 0 < jobs.phases[1].peak_server_connections <= 1
    for f in (api.phases[1], jobs.phases[1]):
        assert f.peak_all_groups is not None and f.peak_all_groups >= f.peak_server_connections
    # The processes of one group never share another group's settings.
    assert api.per_process == 3 and jobs.per_process == 1


def test_a_group_run_is_bounded_before_anything_starts() -> None:
    g = Group(Target(url="postgresql+asyncpg://u@127.0.0.1:9/db",
                     settings=PoolSettings("x")), Workload(), (40,))
    with pytest.raises(ScenarioError, match="at most 64 processes"):
        run_groups([g, g], [("one", 1.0)])
    with pytest.raises(ScenarioError, match="never shrink"):
        run_groups([Group(g.target, g.workload, (2, 1))], [("a", 1.0), ("b", 1.0)])
    with pytest.raises(ScenarioError, match="bounded to 600 s"):
        run_groups([Group(g.target, g.workload, (1,))], [("long", 601.0)])


def _cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != fleet.PASSWORD_ENV}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "wizard", "fleet", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.db
@pytest.mark.slow
def test_cli_reports_figures_without_the_password(pg: PgServer) -> None:
    no_password = pg.url().replace(f":{pg.password}@", "@")
    assert pg.password not in no_password
    proc = _cli(["--url", no_password, "--processes", "2", "--seconds", "2",
                 "--concurrency", "2", "--hold-ms", "20", "--pool-size", "2",
                 "--max-overflow", "0", "--json"],
                {"POOLWISE_FLEET_PASSWORD": pg.password})
    assert proc.returncode == 0, proc.stderr
    assert pg.password not in proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    f = out["phases"][0]
    assert f["errors"] == 0 and f["ok"] > 0
    # 2 processes x 2 loops, each request >= 20 ms: at most 4 / 0.02 = 200 requests/s.
    assert 0 < f["throughput"] <= 200
    assert 0 < f["peak_server_connections"] <= 4
    assert out["url"] == no_password


@pytest.mark.db
@pytest.mark.slow
def test_cli_detects_checkout_timeouts_and_hides_the_password(pg: PgServer) -> None:
    proc = _cli(["--url", pg.url(), "--processes", "1", "--seconds", "1.5",
                 "--concurrency", "4", "--hold-ms", "300", "--pool-size", "1",
                 "--max-overflow", "0", "--pool-timeout", "0.1"], {})
    assert proc.returncode == 1, proc.stderr
    assert pg.password not in proc.stdout + proc.stderr
    assert "checkout timeouts" in proc.stdout
    assert "first checkout_timeout: TimeoutError: QueuePool limit" in proc.stdout
    assert "***" in proc.stdout


def test_cli_refuses_unbounded_runs() -> None:
    proc = _cli(["--url", "postgresql+asyncpg://u@127.0.0.1/db", "--seconds", "601"], {})
    assert proc.returncode == 2
    assert "--seconds must be in (0, 600]" in proc.stderr
    proc = _cli(["--url", "postgresql://u:pw-secret@127.0.0.1/db"], {})
    assert proc.returncode == 2 and "asyncpg" in proc.stderr
    assert "pw-secret" not in proc.stderr + proc.stdout


@pytest.mark.db
@pytest.mark.slow
def test_cli_runs_an_exported_module(pg: PgServer, tmp_path: Path) -> None:
    from wizard.core.model import Load, Scenario
    from wizard.core.plan import recommend
    from wizard.export import render_module

    # The test server: max_connections 60; 2 instances x 2 workers, 20 req/s x 20 ms each.
    rec = recommend(Scenario.flags(provider="self-hosted", instance_class=None, max_connections=60,
                                   app_instances=2, workers=2, pg_version=15,
                                   load=Load(rps=20, hold_ms=20)))
    eng = rec.services[0].rec.engine("primary")
    path = tmp_path / "db.py"
    path.write_text(render_module(rec))
    proc = _cli(["--export", str(path), "--url", pg.url(), "--processes", "2",
                 "--seconds", "2", "--rps", "10", "--hold-ms", "20", "--json"], {})
    assert proc.returncode == 0, proc.stderr
    assert pg.password not in proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    f = out["phases"][0]
    assert f["errors"] == 0 and f["ok"] == f["offered"] > 0
    assert out["per_process"] == eng.pool_size + eng.max_overflow
    assert 0 < f["peak_server_connections"] <= 2 * (eng.pool_size + eng.max_overflow)
    # An endpoint the module does not have is refused before anything runs.
    proc = _cli(["--export", str(path), "--url", pg.url(), "--endpoint", "replica-1"], {})
    assert proc.returncode == 2 and "valid choices: primary" in proc.stderr


@pytest.mark.db
def test_cli_wrong_password_fails_cleanly(pg: PgServer) -> None:
    wrong = "not-the-" + pg.password
    proc = _cli(["--url", pg.url(password=wrong), "--processes", "1", "--seconds", "1"], {})
    assert proc.returncode == 1
    assert "password authentication failed" in proc.stderr
    assert wrong not in proc.stdout + proc.stderr


@pytest.mark.db
def test_compute_query_computes_in_the_database(pg: PgServer) -> None:
    async def main():
        engine = create_async_engine(pg.url(), pool_size=1, max_overflow=0)
        try:
            return await fleet.request(engine, fleet.compute_sql(), {"n": 1000})
        finally:
            await engine.dispose()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == sum(i % 7 for i in range(1, 1001))


@pytest.mark.db
@pytest.mark.slow
def test_prewarm_opens_the_pool_before_the_clock(pg: PgServer) -> None:
    # One closed loop needs one connection; only the pre-warm can have opened three.
    settings = PoolSettings("warm", pool_size=3, max_overflow=0, pool_timeout=10)
    target = Target(url=pg.url(), settings=settings, monitor_url=pg.url(user=pg.admin_user),
                    count_user=pg.user)
    workload = Workload(concurrency=1, query="compute", compute_rows=1000, prewarm=True)
    result = run_fleet(target, workload, [Phase("one", 1, 1.0)])
    (f,) = result.phases
    assert f.errors == 0 and f.ok > 0, result.messages
    assert f.peak_server_connections == 3
