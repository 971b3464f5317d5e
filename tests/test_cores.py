"""The cores-based bound (HikariCP's and the PostgreSQL wiki's formula) and its findings.

Expected values come from the documented formula, connections = (core_count x 2) +
effective_spindle_count, and from the provider catalog's vCPUs, never from the output.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from wizard.core import catalog, cores, proxies
from wizard.core.model import TRANSACTION_POOLERS, CurrentPool, Load, ProxySettings, Scenario
from wizard.core.plan import recommend


def test_hikari_wiki_example():
    # HikariCP's wiki: a 4-core server with one hard disk: ((4 * 2) + 1) = 9.
    bound = cores.executable(4, spindles=1)
    assert bound is not None
    assert bound.executable == 9
    assert bound.cores == 4
    assert "4 cores x 2 + 1 spindle = 9" == bound.formula
    assert {s.url for s in bound.sources} == {cores.HIKARI.url, cores.PG_WIKI.url}


@pytest.mark.parametrize(("vcpu", "expected"), [
    (2, 2 * 2 + 1), (64, 64 * 2 + 1), (0.5, 1 * 2 + 1), (2.9, 2 * 2 + 1), (1, 3)])
def test_bound_from_vcpus_with_one_spindle(vcpu, expected):
    assert cores.executable(vcpu).executable == expected


@pytest.mark.parametrize("vcpu", [None, 0, -2, math.nan, math.inf])
def test_unknown_or_bad_vcpus_give_no_bound(vcpu):
    assert cores.executable(vcpu) is None


def test_fully_cached_data_counts_no_spindle():
    assert cores.executable(8, spindles=0).executable == 16


def test_busy_connections_is_littles_law_over_the_processes():
    assert cores.busy_connections(0.5, 10) == pytest.approx(5.0)
    # Behind a pooler sizing already has the fleet's figure: it wins.
    assert cores.busy_connections(0.5, 10, fleet_offered=7.25) == 7.25
    assert cores.busy_connections(None, 10) is None


def test_oversubscription_threshold():
    bound = 2 * 2 + 1
    assert cores.oversubscription(2, bound * cores.FAR - 1, None) is None
    over = cores.oversubscription(2, bound * cores.FAR, None)
    assert over is not None and not over.busy_over
    assert over.ratio == pytest.approx(cores.FAR)
    # Busy connections above the bound fire even when the ceiling is small.
    busy = cores.oversubscription(2, bound, bound + 0.5)
    assert busy is not None and busy.busy_over
    assert cores.oversubscription(None, 10_000, 10_000) is None


def _rds(**kw) -> Scenario:
    return Scenario.flags(provider="aws-rds", instance_class="db.r6g.large", **kw)


def _found(rec, code):
    return [w for w in rec.warnings if w.code == code]


def test_worst_case_far_above_cores_recommends_the_providers_pooler():
    s = _rds(app_instances=4, workers=2)  # no load: each engine gets the 20 cap
    rec = recommend(s)
    ep = rec.endpoint("primary")
    vcpu = catalog.instance_class("aws-rds", "db.r6g.large").vcpu
    bound = int(vcpu) * 2 + 1
    assert ep.worst_case >= cores.FAR * bound  # the premise of the finding
    (f,) = _found(rec, "DB_CORES_WORST_CASE")
    assert f.severity == "info"
    assert f"{ep.worst_case:,} connections active at once" in f.message
    assert f"about {bound} at once" in f.message
    assert cores.HIKARI.url in f.message
    assert proxies.POOLER_ADVICE["aws-rds"] in f.fix
    assert not _found(rec, "DB_CORES_BUSY")


def test_small_fleet_near_the_bound_has_no_cores_finding():
    rec = recommend(_rds(app_instances=1, max_app_instances=1, deploy_surge_percent=0,
                         load=Load(rps=20, hold_ms=10)))
    ep = rec.endpoint("primary")
    assert ep.worst_case < cores.FAR * (2 * 2 + 1)
    assert not _found(rec, "DB_CORES_WORST_CASE") and not _found(rec, "DB_CORES_BUSY")


def test_load_busier_than_the_cores_is_a_warning_with_the_numbers():
    # 13 instances at the peak (10 + 25 % surge, rounded up) x 200 req/s x 30 ms = 78 busy.
    rec = recommend(_rds(app_instances=10, workers=4, load=Load(rps=200, hold_ms=30)))
    (f,) = _found(rec, "DB_CORES_BUSY")
    assert f.severity == "warning"
    assert "78.0 busy" in f.message
    assert "bigger class" in f.fix


def test_behind_a_pooler_the_fix_is_the_server_pool():
    s = _rds(app_instances=8, workers=4, proxy="pgbouncer-transaction",
             proxy_settings=ProxySettings(pool_size=100))
    rec = recommend(s)
    side = rec.endpoint("primary").server_side
    assert side is not None and rec.endpoint("primary").worst_case >= cores.FAR * 5
    (f,) = _found(rec, "DB_CORES_WORST_CASE")
    assert "server pool toward 5" in f.fix


def test_self_hosted_without_vcpus_has_no_cores_finding():
    rec = recommend(Scenario.flags(provider="self-hosted", instance_class=None, max_connections=500,
                                   app_instances=20, workers=4))
    assert not [w for w in rec.warnings if w.code.startswith("DB_CORES")]


def test_cores_module_is_pure():
    code = ("import sys, wizard.core.cores, wizard.core.findings; "
            "bad = {'streamlit', 'asyncpg', 'wizard.core.sizing', 'wizard.core.plan'} "
            "& set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("proxy", sorted(TRANSACTION_POOLERS))
def test_pre_ping_behind_a_transaction_pooler_is_on_unless_opted_out(proxy):
    # Issue 18: a pooler restart drops every client connection; pre-ping is the default.
    provider = {"azure-pgbouncer": "azure-flexible", "supavisor-transaction": "supabase",
                "neon-pooler": "neon"}.get(proxy, "aws-rds")
    cls = catalog.catalog(provider)[-1].instance_class
    for opt_in in (True, False):
        rec = recommend(Scenario(provider=provider, instance_class=cls, proxy=proxy,
                                 pre_ping=opt_in))
        for g in rec.services[0].rec.engines:
            assert g.pool_pre_ping is opt_in
            assert g.reasons["pool_pre_ping"].startswith("on" if opt_in else "off")


@pytest.mark.parametrize("proxy", ["none", "pgbouncer-session", "rds-proxy"])
def test_pre_ping_stays_where_the_engine_reaches_the_database(proxy):
    rec = recommend(Scenario(proxy=proxy))
    assert rec.services[0].rec.engine("primary").pool_pre_ping is True
    assert "failover" in rec.services[0].rec.engine("primary").reasons["pool_pre_ping"]


def test_recycle_fix_matches_the_exported_pre_ping():
    for proxy, ping in (("none", True), ("pgbouncer-transaction", True),
                        ("pgbouncer-transaction", False)):
        rec = recommend(Scenario.flags(proxy=proxy, network=("aws-nat-gateway",), pre_ping=ping,
                                       current=CurrentPool(pool_recycle=-1)))
        (f,) = [w for w in rec.warnings if w.code == "RECYCLE_MISSING"]
        assert ("pool_pre_ping=True" in f.fix) is ping


def test_database_vcpus_typed_for_a_self_hosted_server_feed_the_bound_and_the_rule() -> None:
    """Without a catalog class the server's vCPUs are what the user types (--db-vcpus)."""
    from wizard.core.model import Replica, ScenarioError
    from wizard.scenario import links

    base = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=300,
                          app_instances=20, workers=4)
    assert recommend(base).endpoint("primary").vcpu is None
    assert not any(r.name == "HikariCP" for r in recommend(base).rules)
    s = links.from_flat({**links.to_flat(base), "db_vcpus": "4", "replicas": "1"})
    rec = recommend(s)
    assert s.db_vcpus == 4 and all(ep.vcpu == 4 for ep in rec.endpoints)
    hikari = next(r for r in rec.services[0].rec.rules if r.name == "HikariCP")
    assert "= 9 for the server" in hikari.formula  # 4 cores x 2 + 1 spindle
    assert any(f.code.startswith("DB_CORES") for f in rec.warnings)
    # A replica with its own class keeps the class's vCPUs.
    rds = Scenario(provider="aws-rds", instance_class="db.r6g.large", db_vcpus=3,
                   replicas=(Replica("db.r6g.xlarge"),))
    got = {ep.role: ep.vcpu for ep in recommend(rds).endpoints}
    assert got == {"primary": 3, "replica-1": catalog.instance_class(
        "aws-rds", "db.r6g.xlarge").vcpu}
    for bad in ("0", "nan", "-2", "5000"):
        with pytest.raises(ScenarioError, match="Database vCPUs"):
            links.from_flat({"provider": "self-hosted", "max_connections": "100",
                             "db_vcpus": bad})
