"""Trust: bounded inputs and compute, and one answer on every surface of one scenario.

Expected values come from definitions (Erlang C's recursion, the surge formula, the
budget arithmetic), computed here independently of the code under test.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import any_scenario, engine_settings_of
from wizard import cli
from wizard.core import bounds, limits, plan, projection, proxies, queueing
from wizard.core.model import Load, Replica, Scenario, ScenarioError, SizingError
from wizard.export import render_module, render_report
from wizard.scenario import links

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wizard", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def exact_erlang_c(n: int, a: float) -> float:
    """Erlang C from the textbook Erlang B recursion, term by term from k = 1."""
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return n * b / (n - a * (1 - b))


# ----------------------------------------------------------------------- bounds

def test_every_range_names_a_parameter():
    assert set(bounds.RANGES) <= set(links.BY_KEY) | set(links.SERVICE_BY_KEY)
    numeric = {p.key for p in links.PARAMS if p.kind in ("int", "float")}
    assert numeric <= set(bounds.RANGES), numeric - set(bounds.RANGES)


def test_postgresql_limit_is_max_backends():
    # PostgreSQL: MAX_BACKENDS = 0x3FFFF; max_connections above it is refused at start.
    assert bounds.RANGES["max_connections"].high == 2**18 - 1


HOSTILE = [
    ["--rps", "1e300", "--hold-ms", "15"],
    ["--rps", "inf", "--hold-ms", "15"],
    ["--rps", "nan", "--hold-ms", "15"],
    ["--rps", "1e7", "--hold-ms", "10"],
    ["--rps", "5", "--hold-ms", "-inf"],
    ["--replicas", "20000000"],
    ["--app-instances", "100000000000"],
    ["--max-app-instances", "1e11"],
    ["--max-connections", "300000"],
    ["--max-connections", "0"],
    ["--split", "nan"],
    ["--min-acu", "inf"],
    ["--workers", "99999999999999999999999"],
    ["--replica-max-connections", "nan", "--replicas", "1"],
]


@pytest.mark.parametrize("args", HOSTILE, ids=" ".join)
def test_hostile_numbers_are_refused_in_one_line(args):
    argv = ["recommend", "--provider", "self-hosted", "--max-connections", "100", *args]
    out = run_cli(*argv)  # the timeout is a hang guard, not a speed figure
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout == ""


def test_the_largest_load_in_range_is_answered_as_an_overload():
    out = run_cli("recommend", "--provider", "self-hosted", "--max-connections", "262143",
                  "--rps", "1000000", "--hold-ms", "3600000", "--app-instances", "100000",
                  "--workers", "1024", "--proxy", "pgbouncer-transaction", "--json")
    assert out.returncode in (0, 3), out.stderr
    if out.returncode == 0:
        codes = {w["code"] for w in json.loads(out.stdout)["warnings"]}
        assert "LOAD_OVER_BUDGET" in codes


def test_a_link_with_millions_of_replicas_is_refused_before_building_them():
    tracemalloc.start()
    try:
        with pytest.raises(ScenarioError) as exc:
            links.from_flat({"provider": "self-hosted", "max_connections": "100",
                             "replicas": "20000000"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.key == "replicas"
    assert peak < 5_000_000  # nothing per replica was built


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_load_must_be_finite_and_positive(value):
    with pytest.raises(ScenarioError):
        plan.recommend(Scenario.flags(load=Load(rps=value, hold_ms=10)))
    with pytest.raises(ScenarioError):
        plan.recommend(Scenario.flags(load=Load(rps=10, hold_ms=value)))


def test_messages_name_the_field_in_words_and_carry_its_key():
    with pytest.raises(ScenarioError) as exc:
        links.from_flat({"provider": "aws-rds", "workers": "0"})
    assert exc.value.key == "workers"
    assert "Workers per instance must be" in str(exc.value)
    assert "--" not in str(exc.value)  # the app shows it beside the field: no CLI flags


# ------------------------------------------------------------------ Erlang C

@settings(max_examples=300, deadline=None)
@given(st.floats(0.01, 600), st.integers(1, 80))
def test_erlang_c_matches_the_textbook_recursion(a, extra):
    n = math.floor(a) + extra
    assert queueing.erlang_c(n, a) == pytest.approx(exact_erlang_c(n, a), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("a", [0.2, 7.5, 480.0, 12_000.0, 150_000.0])
def test_smallest_pool_is_the_smallest_meeting_the_target(a):
    n = queueing.smallest_pool(a)
    assert queueing.erlang_c(n, a) <= queueing.WAIT_TARGET < queueing.erlang_c(n - 1, a)


def test_a_load_no_server_could_hold_has_no_pool():
    assert queueing.smallest_pool(bounds.PG_MAX_BACKENDS + 1.0) is None


# ---------------------------------------------------------------- break point

def clients_at(s: Scenario, n: int, per: int) -> int:
    surge = math.ceil(n * s.services[0].deploy_surge_percent / 100)
    return (n + surge) * s.services[0].workers * s.services[0].engines_per_process * per


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.sampled_from([0, 10, 25, 100]), st.integers(1, 8),
       st.integers(100, 5000), st.integers(1, 2))
def test_breaks_at_is_the_first_fleet_size_over_usable(instances, surge, workers, mc, engines):
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=mc,
                       app_instances=instances, deploy_surge_percent=surge, workers=workers,
                       engines_per_process=engines)
    try:
        rec = plan.recommend(s)
    except SizingError:
        return
    ep = rec.endpoint("primary")
    per = ep.pool_size + ep.max_overflow
    n = ep.breaks_at
    assert n is not None and n > instances
    assert clients_at(s, n, per) > ep.usable >= clients_at(s, n - 1, per)
    assert rec.services[0].rec.breaks_at == n


def test_scale_out_is_sampled_and_keeps_the_break_point():
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=262_143,
                       app_instances=5_000, max_app_instances=20_000)
    rec = plan.recommend(s)
    rows = projection.scale_out(rec)
    xs = sorted({r["instances"] for r in rows})
    assert len(xs) <= projection.SCALE_OUT_POINTS + 4
    b = rec.endpoint("primary").breaks_at
    assert b in xs and xs[-1] >= b
    at = {r["instances"]: r for r in rows}
    assert at[b]["client_connections"] > at[b]["usable"] >= at[b - 1]["client_connections"]
    assert at[20_000]["worst_case"] == rec.endpoint("primary").worst_case


def test_the_current_settings_break_counts_the_deploy_surge():
    # 10 instances at most, 25 % surge: SQLAlchemy's 15 per engine on 93 usable.
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=100,
                       app_instances=10)
    rec = plan.recommend(s)
    found = next(w for w in rec.warnings if w.code == "DEFAULTS_OVER_MAX")
    n = next(k for k in range(1, 100) if clients_at(s, k, 15) > 93)
    assert f"about {n:,}" in found.message


# --------------------------------------------------------- poolers: two sides

def test_rds_proxy_names_what_clients_open_and_what_the_database_sees():
    s = Scenario.flags(provider="aws-rds", instance_class="db.r6g.large", proxy="rds-proxy",
                       app_instances=4, workers=2)
    rec = plan.recommend(s)
    ep = rec.endpoint("primary")
    per = ep.pool_size + ep.max_overflow
    clients = ep.clients * per
    assert ep.client_side.worst_case == clients
    assert ep.worst_case == min(ep.server_side.limit, clients) == ep.server_side.worst_case
    assert ep.headroom == ep.usable - ep.worst_case > 0
    assert f"= {ep.worst_case:,}" in ep.explanation
    now = s.services[0].max_app_instances or s.services[0].app_instances
    row = next(r for r in projection.scale_out(rec)
               if r["instances"] == now and r["endpoint"] == "primary")
    assert row["worst_case"] == ep.worst_case and row["client_connections"] == clients


# ----------------------------------------------------------------- rules table

def test_rules_multiply_out_and_poolwise_fits():
    rec = plan.recommend(Scenario.flags(provider="aws-rds", instance_class="db.r6g.large",
                                    app_instances=40, workers=4))
    ep = rec.endpoint("primary")
    for r in rec.services[0].rec.rules:
        assert r.per_process * ep.clients == r.fleet_total
        assert r.fits == (r.per_process >= 1 and r.fleet_total <= r.limit)
    assert rec.services[0].rec.rules[0].name == "poolwise" and rec.services[0].rec.rules[0].fits
    hikari = next(r for r in rec.services[0].rec.rules if r.name == "HikariCP")
    # 2 vCPUs x 2 + 1 = 5 connections for the server cannot give 200 engines one each.
    assert hikari.per_process == 0 and not hikari.fits


# ----------------------------------------------------------------- reasons

def test_nullpool_reasons_do_not_claim_a_pool_or_a_ping():
    rec = plan.recommend(Scenario.flags(serverless_concurrency=50, proxy="rds-proxy"))
    g = rec.services[0].rec.engine("primary")
    assert g.poolclass == "NullPool" and not g.pool_pre_ping
    assert "checks each checkout" not in g.reasons["pool_pre_ping"]
    assert g.reasons["pool_pre_ping"].startswith("off")


def test_no_load_note_names_the_bound_that_binds():
    small = plan.recommend(Scenario.flags(provider="self-hosted", instance_class=None,
                                      max_connections=40, app_instances=3))
    ep = small.endpoint("primary")
    note = next(w for w in small.warnings if w.code == "NO_LOAD")
    assert ep.per_process_budget < proxies.NO_LOAD_TOTAL_CAP
    assert "below the budget ceiling" not in note.message
    assert f"budget ceiling of {ep.per_process_budget}" in note.message


# -------------------------------------------------------------- one answer


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_scenario())
def test_json_text_module_and_report_tell_one_answer(s):
    try:
        rec = plan.recommend(s)
    except (SizingError, ScenarioError):
        return
    data = json.loads(json.dumps(cli.recommendation_json(rec), default=str))
    text = cli.render_text(rec)
    module = render_module(rec)
    report = render_report(rec)
    settings_in_module = engine_settings_of(module)
    for ep, eng, jep, jeng in zip(rec.endpoints, rec.services[0].rec.engines, data["endpoints"],
                                  data["engines"], strict=True):
        assert (jep["pool_size"], jep["max_overflow"], jep["worst_case"], jep["usable"]) == (
            ep.pool_size, ep.max_overflow, ep.worst_case, ep.usable)
        assert jep["p_wait"] == ep.p_wait and jep["breaks_at"] == ep.breaks_at
        assert jeng["pool_size"] == eng.pool_size
        mod = settings_in_module[ep.role]
        if eng.poolclass == "NullPool":
            assert mod == {"poolclass": "NullPool"}
        else:
            assert (mod["pool_size"], mod["max_overflow"], mod["pool_recycle"]) == (
                eng.pool_size, eng.max_overflow, eng.pool_recycle)
        # The endpoints' table first (its last column: breaks_at), one row per service.
        row = next(ln for ln in text.splitlines() if ln.startswith(ep.role + " "))
        assert row.split()[-4:-1] == [str(ep.pool_size), str(ep.max_overflow),
                                      f"{ep.worst_case:,}"]
        assert ep.explanation in report and ep.explanation in text
        if ep.p_wait is not None:
            line = next(ln for ln in queueing.load_lines(rec.services[0].rec)
                        if ln.startswith(ep.role + ":"))
            assert line in text and line in report
        # The worst case is what the endpoint sees: never above usable, and the same
        # figure the scale-out series gives at today's autoscaling maximum.
        assert ep.worst_case <= ep.usable
        if not s.services[0].serverless:
            now = s.services[0].max_app_instances or s.services[0].app_instances
            row = next(r for r in projection.scale_out(rec)
                       if r["instances"] == now and r["endpoint"] == ep.role)
            assert row["worst_case"] == ep.worst_case
    assert rec.services[0].rec.rules[0].fits


@settings(max_examples=100, deadline=None)
@given(any_scenario(), st.integers(1, 50))
def test_more_instances_never_raise_the_break_point_above_a_smaller_fleet(s, extra):
    """A bigger fleet gets smaller or equal per-engine pools, so it breaks no earlier."""
    try:
        a = plan.recommend(s)
        one = s.services[0]
        b = plan.recommend(replace(s, services=(
            replace(one, app_instances=one.app_instances + extra),)))
    except (SizingError, ScenarioError):
        return
    if a.breaks_at is not None and b.breaks_at is not None:
        assert b.breaks_at >= a.breaks_at


def test_processes_at_counts_the_surge_like_the_peak():
    s = Scenario.flags(app_instances=7, max_app_instances=13, workers=3, deploy_surge_percent=25)
    svc = s.services[0]
    assert limits.processes_at(s, svc, "primary", 13) == (13 + 4) * 3
    assert limits.endpoint_specs(s, svc)[0].processes == (13 + 4) * 3


def test_rds_replicas_reached_directly_get_direct_pool_settings():
    # RDS Proxy fronts only the RDS writer: the replica's engine is a direct one.
    rec = plan.recommend(Scenario.flags(provider="aws-rds", instance_class="db.r6g.large",
                                    proxy="rds-proxy", replicas=(Replica(),),
                                    app_instances=2))
    first = rec.services[0].rec
    primary, replica = first.engine("primary"), first.engine("replica-1")
    assert primary.pool_use_lifo and not replica.pool_use_lifo
    assert rec.endpoint("replica-1").server_side is None
    rep = rec.endpoint("replica-1")
    assert rep.pool_size + rep.max_overflow == min(proxies.NO_LOAD_TOTAL_CAP,
                                                   rep.per_process_budget)
    assert "LIFO" not in replica.reasons["pool_use_lifo"]


def test_checks_read_the_recommendation_not_sizing():
    # Imports point one way (STYLE 4): plan imports findings, findings never imports the sizing
    # or the plan.
    code = ("import wizard.core.findings, sys; "
            "assert not {'wizard.core.sizing', 'wizard.core.plan'} & set(sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_a_typed_max_connections_source_stays_text_in_the_report():
    rec = plan.recommend(links.from_flat({
        "provider": "self-hosted", "max_connections": "100",
        "max_connections_source": "measured see http://evil.example/x"}))
    report = render_report(rec)
    assert "`measured see http://evil.example/x`" in report
