"""Budget and sizing: worked examples from documented numbers, and Hypothesis invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wizard.core import model
from wizard.core.model import Load, ProxySettings, Replica, Reserves, Scenario
from wizard.core.plan import recommend
from wizard.core.queueing import erlang_c, smallest_pool


def test_azure_b2s_budget_by_hand():
    # Azure documents 429 for B2s and reserves 15 (10 superuser + 5 reserved_connections).
    s = Scenario.flags(provider="azure-flexible", instance_class="B2s", app_instances=3,
                       deploy_surge_percent=0, workers=2,
                       reserves=Reserves(admin=4, migrations=1))
    ep = recommend(s).endpoint("primary")
    assert ep.max_connections == 429
    assert ep.reserved == 15 + 4 + 1
    assert ep.usable == 409
    assert ep.clients == 6
    assert ep.per_process_budget == 409 // 6


def test_explicit_max_connections_and_surge():
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=100,
                       app_instances=4, max_app_instances=8, deploy_surge_percent=25, workers=2,
                       reserves=Reserves(superuser=3, admin=2, migrations=1))
    rec = recommend(s)
    ep = rec.endpoint("primary")
    # 8 at the maximum + ceil(25% of 8) = 10 instances x 2 workers
    assert ep.processes == 20
    assert ep.usable == 94
    assert ep.per_process_budget == 4  # 94 // 20
    assert ep.pool_size + ep.max_overflow == 4
    assert ep.worst_case == 80 <= ep.usable


def _fleet(s: Scenario, **fleet) -> Scenario:
    """The flags form with its one service's fleet changed."""
    return replace(s, services=(replace(s.services[0], **fleet),))


def test_second_engine_counts_twice():
    one = recommend(Scenario.flags(provider="self-hosted", instance_class=None, max_connections=100,
                                   app_instances=5, deploy_surge_percent=0))
    two = recommend(_fleet(one.scenario, engines_per_process=2))
    assert two.endpoint("primary").clients == 2 * one.endpoint("primary").clients
    assert two.endpoint("primary").worst_case <= two.endpoint("primary").usable


def test_cannot_fit_is_an_explicit_error_with_a_fix():
    s = Scenario.flags(provider="gcp-cloudsql", instance_class="db-f1-micro", app_instances=20,
                       workers=4)
    with pytest.raises(model.SizingError) as exc:
        recommend(s)
    assert "proxy" in exc.value.fix and "fewer processes" in exc.value.fix


def test_proxy_rescues_a_fleet_too_big_for_direct():
    s = Scenario.flags(provider="gcp-cloudsql", instance_class="db-g1-small", app_instances=20,
                       workers=4, proxy="pgbouncer-transaction")
    rec = recommend(s)
    ep = rec.endpoint("primary")
    assert ep.server_side is not None and ep.worst_case <= ep.usable
    assert ep.client_side.worst_case == ep.clients * (ep.pool_size + ep.max_overflow)
    # PgBouncer 1.18 (version unknown) cannot keep named prepared statements
    assert rec.services[0].rec.engine("primary").connect_args["statement_cache_size"] == 0


def test_pgbouncer_124_keeps_the_statement_cache():
    s = Scenario(proxy="pgbouncer-transaction",
                 proxy_settings=ProxySettings(pgbouncer_version="1.24"))
    assert "statement_cache_size" not in recommend(s).services[0].rec.engine("primary").connect_args


def test_replica_has_its_own_budget():
    # Aurora readers keep their own class's max_connections (no hot-standby rule ties them).
    base = Scenario.flags(provider="aws-aurora", app_instances=20, workers=2,
                          replicas=(Replica(instance_class="db.r6g.large"),))
    small = replace(base, replicas=(Replica(instance_class="db.t3.medium"),))
    a, b = recommend(base), recommend(small)
    assert a.endpoint("primary") == b.endpoint("primary")
    assert b.endpoint("replica-1").max_connections < a.endpoint("replica-1").max_connections
    assert any(w.code == "REPLICA_SMALLER" for w in b.warnings)


def test_rds_proxy_server_side_is_a_percent_of_max_connections():
    s = Scenario.flags(proxy="rds-proxy", app_instances=10, workers=4,
                       proxy_settings=ProxySettings(rds_proxy_max_connections_percent=50))
    ep = recommend(s).endpoint("primary")
    assert ep.server_side.limit == ep.max_connections * 50 // 100


def test_serverless_gets_nullpool_and_counts_each_invocation():
    s = Scenario.flags(serverless_concurrency=300, proxy="rds-proxy")
    rec = recommend(s)
    assert rec.services[0].rec.engine("primary").poolclass == "NullPool"
    assert rec.endpoint("primary").clients == 300
    assert "command_timeout" in rec.services[0].rec.engine("primary").connect_args


def test_erlang_c_matches_textbook_values():
    # M/M/2 with a = 1 Erlang: P(wait) = 1/3; M/M/1 with a = 0.5: P(wait) = rho = 0.5.
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(3, 3.0) == 1.0
    assert smallest_pool(1.0) == 4  # P(wait) 2.04% <= 5%, while 3 servers give 9.1%


def test_load_caps_the_pool_below_the_budget():
    s = Scenario.flags(load=Load(rps=100, hold_ms=10))  # 1 Erlang per process
    rec = recommend(s)
    ep = rec.endpoint("primary")
    # pool_size holds the burst need (overflow connections are closed on return);
    # the overflow adds the gap between burst and mean need.
    assert ep.pool_size == rec.services[0].rec.load.needed_with_overflow
    gap = rec.services[0].rec.load.needed_with_overflow - rec.services[0].rec.load.needed_pool
    assert ep.max_overflow == gap
    assert ep.pool_size + ep.max_overflow < ep.per_process_budget
    assert "load" in rec.services[0].rec.binding


def test_load_above_the_budget_is_an_unstable_queue():
    # 200 req/s per process x 50 ms = 10 busy connections; 53 usable / 14 engines = 3 each.
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=60,
                       app_instances=5, workers=2, load=Load(rps=400, hold_ms=50))
    rec = recommend(s)
    ep = rec.endpoint("primary")
    assert ep.pool_size + ep.max_overflow <= rec.services[0].rec.load.offered_load
    assert any(w.code == "LOAD_OVER_BUDGET" and w.severity == "error" for w in rec.warnings)
    assert ep.p_wait == 1.0  # the P(wait) shown is the exported pool's: every checkout waits


def test_budget_between_mean_and_target_is_flagged_with_its_wait():
    # 10 busy connections per process; 12 per engine fits the mean but waits > 5 %.
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=31,
                       app_instances=2, deploy_surge_percent=0, workers=1,
                       load=Load(rps=200, hold_ms=50))
    rec = recommend(s)
    ep = rec.endpoint("primary")
    per = ep.pool_size + ep.max_overflow
    assert rec.services[0].rec.load.offered_load < per < rec.services[0].rec.load.needed_pool
    found = [w for w in rec.warnings if w.code == "BUDGET_BELOW_LOAD"]
    assert found and found[0].severity == "error"
    assert ep.p_wait == pytest.approx(erlang_c(per, 10.0))
    assert f"{ep.p_wait:.0%}" in found[0].message


scenarios = st.builds(
    Scenario.flags,
    provider=st.just("self-hosted"),
    instance_class=st.none(),
    max_connections=st.integers(20, 6000),
    app_instances=st.integers(1, 60),
    deploy_surge_percent=st.sampled_from([0, 25, 50, 100]),
    workers=st.integers(1, 16),
    engines_per_process=st.integers(1, 3),
    pool_split=st.floats(0.05, 1.0),
    proxy=st.sampled_from(["none", "pgbouncer-transaction", "pgbouncer-session"]),
    load=st.one_of(st.none(), st.builds(Load, rps=st.floats(1, 2000),
                                        hold_ms=st.floats(1, 200))),
    replicas=st.lists(st.builds(Replica, instance_class=st.none(),
                                max_connections=st.integers(20, 6000)), max_size=2).map(tuple),
).map(lambda s: replace(s, replicas=tuple(
    # A hot standby runs only with at least the primary's max_connections.
    replace(r, max_connections=max(r.max_connections, s.max_connections))
    for r in s.replicas)))


def recommend_or_fix(s):
    """The recommendation, or None when the scenario cannot fit (which must say the fix)."""
    try:
        return recommend(s)
    except model.SizingError as exc:
        assert exc.fix
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios)
def test_worst_case_never_exceeds_usable(s):
    rec = recommend_or_fix(s)
    if rec is None:
        return
    for ep in rec.endpoints:
        assert ep.pool_size >= 1
        assert ep.max_overflow >= 0
        assert ep.worst_case <= ep.usable
        if ep.server_side is None:
            assert ep.clients * (ep.pool_size + ep.max_overflow) <= ep.usable


@settings(max_examples=200, deadline=None)
@given(scenarios, st.integers(1, 40))
def test_more_instances_never_raise_per_process_pools(s, extra):
    try:
        small = recommend(s)
        big = recommend(_fleet(s, app_instances=s.services[0].app_instances + extra))
    except model.SizingError:
        return
    for a, b in zip(small.endpoints, big.endpoints, strict=True):
        assert b.pool_size <= a.pool_size
        assert b.pool_size + b.max_overflow <= a.pool_size + a.max_overflow


@settings(max_examples=200, deadline=None)
@given(scenarios, st.integers(20, 6000))
def test_replica_change_never_changes_the_primary(s, other):
    assume(s.replicas)
    changed = replace(s, replicas=(replace(s.replicas[0],
                                           max_connections=max(other, s.max_connections)),
                                   *s.replicas[1:]))
    try:
        a, b = recommend(s), recommend(changed)
    except model.SizingError:
        return
    assert a.endpoint("primary") == b.endpoint("primary")
    assert a.services[0].rec.engine("primary") == b.services[0].rec.engine("primary")


def test_transaction_pooler_gets_a_small_client_pool():
    direct = recommend(Scenario.flags(app_instances=2))
    pooled = recommend(Scenario.flags(app_instances=2, proxy="pgbouncer-transaction"))
    p, d = pooled.endpoint("primary"), direct.endpoint("primary")
    assert p.pool_size + p.max_overflow < d.pool_size + d.max_overflow
    assert p.pool_size + p.max_overflow <= 10  # below SQLAlchemy's own 5 + 10


@pytest.mark.parametrize("proxy", ["pgbouncer-transaction", "supavisor-transaction",
                                   "neon-pooler", "azure-pgbouncer"])
def test_transaction_pooler_with_load_gets_a_fixed_pool(proxy):
    # 100 req/s per process (2 workers) x 10 ms = 1 Erlang; bursts at twice the rate.
    # Erlang C by hand: 1 Erlang needs 4 connections for P(wait) <= 5 % (9.1 % at 3,
    # 2.0 % at 4); 2 Erlang need 6 (17.4 % at 4, 5.97 % at 5, 1.8 % at 6). The load
    # rule's total is burst + (burst - need) = 6 + 2.
    load = Load(rps=200, hold_ms=10)
    need, burst = 4, 6
    assert (smallest_pool(1.0), smallest_pool(2.0)) == (need, burst)
    total = burst + (burst - need)
    kw = dict(app_instances=2, workers=2, load=load)
    if proxy == "pgbouncer-transaction":
        kw["proxy_settings"] = ProxySettings(max_client_conn=400)
    if proxy == "supavisor-transaction":
        kw.update(provider="supabase", instance_class="Small")
    if proxy == "neon-pooler":
        kw.update(provider="neon", instance_class=None, max_connections=104)
    if proxy == "azure-pgbouncer":
        kw.update(provider="azure-flexible", instance_class="D2ds_v5")
    rec = recommend(Scenario.flags(proxy=proxy, **kw))
    ep, eng = rec.endpoint("primary"), rec.services[0].rec.engine("primary")
    assert ep.per_process_budget is None or ep.per_process_budget >= total
    # The whole total is pool_size: an idle client connection holds no server connection.
    assert (eng.pool_size, eng.max_overflow) == (total, 0)
    assert eng.reasons["max_overflow"].startswith("0: a fixed pool")
    assert "transaction pooler" in eng.reasons["pool_size"]
    # Direct and through a session pooler the same load keeps pool = burst need + overflow.
    for other in ("none", "pgbouncer-session"):
        o = recommend(Scenario.flags(**{**kw, "provider": "self-hosted", "instance_class": None,
                                        "max_connections": 400}, proxy=other)
                      ).services[0].rec.engine("primary")
        assert (o.pool_size, o.max_overflow) == (burst, burst - need), other
        assert "fixed pool" not in o.reasons["max_overflow"]


def test_supavisor_client_limit_comes_from_the_compute_size():
    # Supabase documents 400 pooler clients for the Small compute size.
    rec = recommend(Scenario.flags(provider="supabase", instance_class="Small",
                                   proxy="supavisor-transaction", app_instances=4, workers=2))
    ep = rec.endpoint("primary")
    assert ep.client_side.limit == 400
    assert ep.client_side.worst_case <= 400
    assert ep.max_connections == 90 and ep.worst_case <= ep.usable


def test_aurora_serverless_v2_low_minimum_caps_at_2000():
    # AWS: 16 ACU maximum -> 3,360; a minimum of 0 or 0.5 ACU caps max_connections at 2,000.
    free = recommend(Scenario(provider="aws-aurora", instance_class="db.serverless-16acu",
                              min_acu=1))
    low = recommend(Scenario(provider="aws-aurora", instance_class="db.serverless-16acu",
                             min_acu=0.5))
    assert free.endpoint("primary").max_connections == 3360
    assert low.endpoint("primary").max_connections == 2000
    assert "0.5 ACU" in low.endpoint("primary").max_connections_source


def _runnable_replicas(s):
    """Replicas the provider can run next to this primary (else: the primary's class)."""
    from wizard.core.limits import validate_topology
    try:
        validate_topology(s)
    except model.ScenarioError:
        return replace(s, replicas=tuple(replace(r, instance_class=s.instance_class)
                                         for r in s.replicas))
    return s


def _catalog_scenarios():
    from wizard.core import catalog
    from wizard.core.limits import PROXY_PROVIDERS
    from wizard.core.model import PROVIDERS, PROXIES

    def for_provider(provider):
        classes = [r.instance_class for r in catalog.catalog(provider)]
        proxies = [p for p in PROXIES if provider in PROXY_PROVIDERS.get(p, (provider,))]
        if provider == "azure-flexible":
            classes = [c for c in classes if not c.startswith("B")]  # built-in PgBouncer
        return st.builds(
            Scenario.flags, provider=st.just(provider), instance_class=st.sampled_from(classes),
            proxy=st.sampled_from(proxies), app_instances=st.integers(1, 80),
            workers=st.integers(1, 8), engines_per_process=st.integers(1, 2),
            serverless_concurrency=st.one_of(st.none(), st.integers(1, 2000)),
            load=st.one_of(st.none(), st.builds(Load, rps=st.floats(1, 500),
                                                hold_ms=st.floats(1, 100))),
            replicas=st.lists(st.builds(Replica, instance_class=st.sampled_from(classes)),
                              max_size=1).map(tuple)).map(_runnable_replicas)

    return st.sampled_from([p for p in PROVIDERS if p != "self-hosted"]).flatmap(for_provider)


@settings(max_examples=150, deadline=None)
@given(_catalog_scenarios())
def test_every_provider_and_proxy_keeps_the_worst_case_within_usable(s):
    rec = recommend_or_fix(s)
    if rec is None:
        return
    for ep in rec.endpoints:
        assert ep.worst_case <= ep.usable
        assert ep.pool_size >= 1
        if ep.client_side is not None and ep.client_side.limit:
            assert ep.client_side.worst_case <= ep.client_side.limit
