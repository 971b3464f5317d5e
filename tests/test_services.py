"""Several services share one database: shares, per-service sizing, scenario files, CLI.

Expected values come from the documented rules (the tiers of shares.shares, the flags form
as the one-service case) or from independent arithmetic, never from copied outputs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support import load_module, ruff_check
from wizard import cli
from wizard.core import limits, proxies
from wizard.core.model import Load, Replica, Scenario, ScenarioError, Service, SizingError
from wizard.core.plan import recommend
from wizard.core.shares import FIXED_SHARE_PER_ENGINE, TIERS, Claim, shares
from wizard.export import render_module
from wizard.scenario import files, links

ROOT = Path(__file__).resolve().parent.parent

ESTATE = """\
provider = "aws-rds"
instance_class = "db.r6g.large"
replicas = 1

[[service]]
name = "api"
app_instances = 10
max_app_instances = 20
workers = 4
rps = 200
hold_ms = 20

[[service]]
name = "worker"
kind = "worker"
app_instances = 5
workers = 2
endpoints = ["primary"]

[[service]]
name = "cron"
kind = "cron"
app_instances = 1
endpoints = ["primary"]
"""


def _py(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "wizard", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env=env)


# ------------------------------------------------------------------ shares.shares

def test_one_member_gets_the_whole_limit_whatever_it_asks() -> None:
    for tier in TIERS:
        for demand in (1, 50, 10_000):
            for weight in (0.1, 1, 7.3):
                assert shares(1000, [Claim("a", tier, demand, weight)])[0].value == 1000


def test_fixed_shares_come_first_then_needs_then_weights() -> None:
    got = shares(100, [Claim("web", "weight", 500), Claim("api", "need", 60),
                       Claim("cron", "fixed", 4)])
    web, api, cron = (s.value for s in got)
    # cron's 4 and api's 60 are served in full; the weighted web takes the 36 left.
    assert (cron, api, web) == (4, 60, 36)


def test_a_tier_that_does_not_fit_is_cut_pro_rata() -> None:
    got = shares(90, [Claim("a", "need", 100), Claim("b", "need", 50), Claim("c", "weight", 9)])
    a, b, c = (s.value for s in got)
    # Every member keeps its floor (1: one engine each); the 87 left go to the needs pro
    # rata 99 : 49 (58.2, 28.8, largest remainder); nothing is left for the weighted c.
    assert (a, b, c) == (1 + 58, 1 + 29, 1)
    assert "pro rata" in got[0].how


def test_a_need_is_cut_at_its_burst_margin_first() -> None:
    # 15 engines: floors 15; burst needs (firm) 60 + 30 fit in the 85 left; the margins
    # (20 + 10) share the last 10 pro rata (6.7, 3.3).
    got = shares(100, [Claim("api", "need", 80, engines=10, firm=60),
                       Claim("jobs", "need", 40, engines=5, firm=30)])
    assert [s.value for s in got] == [60 + 7, 30 + 3]
    assert "burst margin cut first" in got[0].how


def test_weights_are_per_client_engine() -> None:
    # Issue 18: a 1-process and a 16-process service without load, same kind and weight,
    # get the same per engine (17 x 17 = 289 of 300; 18 per engine would take 306).
    one, many = shares(300, [Claim("one", "weight", 20, engines=1),
                             Claim("many", "weight", 320, engines=16)])
    assert abs(one.value // 1 - many.value // 16) <= 1
    assert many.value // 16 == 17
    # weight scales the per-engine share: 2 : 1 with the same engines.
    a, b = shares(300, [Claim("a", "weight", 1000, 2, engines=10),
                        Claim("b", "weight", 1000, 1, engines=10)])
    assert (a.value // 10, b.value // 10) == (20, 10)


def test_floors_come_first_and_only_floors_over_the_limit_refuse() -> None:
    # A serverless service's 20 invocations are a hard floor, cron's fixed share 2 per
    # engine, 1 per engine for the others: 20 + 4 + 10 = 34 fit in 34 however big the
    # needs, and the needs get nothing more.
    got = shares(34, [Claim("fn", "need", 20, engines=20, floor=20),
                      Claim("cron", "fixed", 4, engines=2),
                      Claim("api", "need", 500, engines=10, firm=300)])
    assert [s.value for s in got] == [20, 4, 10]
    with pytest.raises(SizingError) as err:
        shares(33, [Claim("fn", "need", 20, engines=20, floor=20),
                    Claim("cron", "fixed", 4, engines=2),
                    Claim("api", "need", 500, engines=10, firm=300)], "primary: 33 usable")
    assert "fn 20" in err.value.message and "cron 4" in err.value.message
    assert "api 10" in err.value.message and "1 over" in err.value.message


@given(st.integers(1, 300_000), st.lists(st.tuples(
    st.sampled_from(TIERS), st.integers(1, 500_000), st.floats(0.01, 100),
    st.integers(1, 600)), min_size=1, max_size=32))
def test_shares_never_exceed_the_limit(limit: int, raw: list) -> None:
    claims = [Claim(f"m{i}", t, d, w, e) for i, (t, d, w, e) in enumerate(raw)]
    if len(claims) > 1 and sum(c.base for c in claims) > limit:
        with pytest.raises(SizingError):
            shares(limit, claims)
        return
    got = shares(limit, claims)
    assert sum(s.value for s in got) == limit
    if len(claims) > 1:
        assert all(s.value >= c.base for s, c in zip(got, claims, strict=True))
    fits = sum(c.demand for c in claims) <= limit
    if fits:  # everyone gets at least what it can use
        assert all(s.value >= c.demand for s, c in zip(got, claims, strict=True))


# ---------------------------------------------------------- per-service sizing

def _svc(name: str, **kw) -> Service:
    return Service(name=name, **kw)


def test_a_scenario_is_a_database_and_its_services() -> None:
    # No fleet fields of its own: the flags form is one Service ("app", unnamed), a file's
    # [[service]] tables are named services, and a scenario without a service is refused.
    flags = Scenario.flags(workers=4, serverless_concurrency=None)
    assert flags.services == (Service(workers=4),) and not flags.named
    assert links.from_flat({"provider": "aws-rds", "workers": "4"}) == flags
    assert not hasattr(flags, "workers") and not hasattr(Scenario(), "load")
    assert Scenario.flags(serverless_concurrency=9).services[0].kind == "serverless"
    one = files.parse('provider = "aws-rds"\n[[service]]\nname = "api"\nworkers = 4\n')
    assert one.named and one.services == (Service(name="api", workers=4),)
    assert links.from_flat(links.to_flat(one)) == one
    with pytest.raises(ScenarioError, match="at least one service"):
        recommend(Scenario(services=()))
    rec = recommend(files.parse(ESTATE))
    assert [v.service for v in rec.services] == list(files.parse(ESTATE).services)


def test_estate_example_sums_and_sizes_each_service() -> None:
    s = files.parse(ESTATE)
    rec = recommend(s)
    assert [v.name for v in rec.services] == ["api", "worker", "cron"]
    primary = rec.endpoint("primary")
    assert primary.worst_case == sum(b.worst_case for b in primary.by_service)
    assert primary.worst_case <= primary.usable
    cron = next(b for b in primary.by_service if b.service == "cron")
    # cron without load: the fixed small share per engine.
    assert cron.pool_size + cron.max_overflow == FIXED_SHARE_PER_ENGINE
    # replica-1 is used by the api only.
    assert [b.service for b in rec.endpoint("replica-1").by_service] == ["api"]
    api = rec.service("api").rec
    # The api's load: 50 req/s per process x 20 ms; its pool holds the burst need.
    assert api.load is not None and api.load.arrival_rate == pytest.approx(200 / 4)
    assert api.engine("primary").pool_size == api.load.needed_with_overflow
    for v in rec.services:
        for g in v.rec.engines:
            assert g.connect_args["server_settings"] == {"application_name": v.name}


def test_break_point_counts_the_other_services_at_their_peaks() -> None:
    rec = recommend(files.parse(ESTATE))
    primary = rec.endpoint("primary")
    api = next(b for b in primary.by_service if b.service == "api")
    others = primary.worst_case - api.worst_case
    per = api.pool_size + api.max_overflow
    assert api.break_limit == primary.usable - others
    # At the break point (surge 25 %, 4 workers) the api's clients exceed what others leave.
    n = api.breaks_at
    assert (n + math.ceil(n * 0.25)) * 4 * per > api.break_limit
    assert (n - 1 + math.ceil((n - 1) * 0.25)) * 4 * per <= api.break_limit
    sentence = recommend(files.parse(ESTATE)).services and __import__(
        "wizard.core.projection", fromlist=["break_sentence"]).break_sentence(rec)
    assert f"at {api.breaks_at:,} instances" in sentence


def test_services_over_the_budget_is_refused_with_the_service_named() -> None:
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=40,
                 services=(_svc("api", app_instances=30), _svc("jobs", app_instances=30)))
    with pytest.raises(SizingError, match="service 'api'|service 'jobs'"):
        recommend(s)


def test_errors_carry_their_service_and_endpoint_as_fields() -> None:
    # One service's engines cannot fit its share: the error says which service and which
    # endpoint as fields (guard and the app read them), and its text words them in front.
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=40,
                 services=(_svc("api", app_instances=30), _svc("jobs", app_instances=1)))
    with pytest.raises(SizingError) as err:
        recommend(s)
    exc = err.value
    assert (exc.service, exc.endpoint) == (None, "primary")  # the floors: every service's
    assert str(exc) == f"primary: {exc.message} Fix: {exc.fix}"
    assert "api 38 " in exc.message  # 30 instances + the 25% deploy surge
    one = Scenario(provider="self-hosted", instance_class=None, max_connections=40,
                   proxy="pgbouncer-session", services=(_svc("api", app_instances=30),))
    with pytest.raises(SizingError) as err:
        recommend(one)
    exc = err.value
    assert (exc.service, exc.endpoint) == ("api", "primary")
    assert not exc.message.startswith(("service", "primary"))
    assert exc.said == f"service 'api': primary: {exc.message}"
    assert str(exc) == f"{exc.said} Fix: {exc.fix}"
    bad = Scenario(provider="self-hosted", instance_class=None, max_connections=100,
                   services=(_svc("api"), _svc("jobs", workers=5000)))
    with pytest.raises(ScenarioError) as err:
        recommend(bad)
    assert (err.value.service, err.value.key) == ("jobs", "s2_workers")
    assert str(err.value) == f"service 'jobs': {err.value.message}"


def test_feasible_estate_with_a_big_no_load_service_is_sized() -> None:
    # Issue 18: exited 3 ("cannot give each of 32 client engines even one connection")
    # although the floors (60 + 32 + 2) and the api's need fit in 293.
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=300,
                 replicas=(Replica(),), services=(
                     _svc("api", app_instances=6, max_app_instances=12, workers=4,
                          load=Load(120, 10)),
                     _svc("worker", kind="worker", app_instances=3, workers=8),
                     _svc("one", kind="worker", app_instances=1)))
    rec = recommend(s)
    for ep in rec.endpoints:
        assert ep.worst_case == sum(b.worst_case for b in ep.by_service) <= ep.usable
        by = {b.service: b for b in ep.by_service}
        assert by["worker"].clients == 32 and by["one"].clients == 2
        # Same kind, weight and path: the same per engine (within 1).
        per = {n: by[n].allotment // by[n].clients for n in ("worker", "one")}
        assert abs(per["worker"] - per["one"]) <= 1, per
        # The api keeps at least its burst need per engine.
        api = rec.service("api").rec
        assert by["api"].pool_size >= api.load.needed_with_overflow


def test_serverless_floor_beside_a_load_and_cron_is_sized() -> None:
    # Issue 18: an api with load + cron + 20 invocations on max_connections 100 exited 3.
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=100, services=(
        _svc("api", app_instances=4, workers=2, load=Load(100, 20)),
        _svc("cron", kind="cron", app_instances=1),
        _svc("fn", kind="serverless", serverless_concurrency=20)))
    rec = recommend(s)
    ep = rec.endpoint("primary")
    by = {b.service: b for b in ep.by_service}
    assert ep.worst_case == sum(b.worst_case for b in ep.by_service) <= ep.usable
    assert by["fn"].allotment >= 20 and by["fn"].worst_case == 20  # its hard floor
    assert by["cron"].pool_size + by["cron"].max_overflow == FIXED_SHARE_PER_ENGINE
    # The api's need is cut at its burst margin, never below its burst need.
    api = rec.service("api").rec
    assert by["api"].pool_size >= api.load.needed_with_overflow
    assert "burst margin" in by["api"].allotment_how


def test_floors_over_the_limit_name_every_service_and_the_excess() -> None:
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=40, services=(
        _svc("api", app_instances=8, workers=2, load=Load(100, 20)),
        _svc("cron", kind="cron", app_instances=1),
        _svc("fn", kind="serverless", serverless_concurrency=20)))
    # usable 33; floors: api 20 engines, fn 20 invocations, cron 2 x 2 = 44, 11 over.
    with pytest.raises(SizingError) as err:
        recommend(s)
    msg = err.value.message
    assert "api 20" in msg and "fn 20" in msg and "cron 4" in msg and "11 over" in msg
    assert "1 per concurrent invocation x 20" in msg


def test_pooled_services_get_one_pgbouncer_pool_each() -> None:
    # One URL is one user/database pair: each service's engines reach one PgBouncer pool
    # (default_pool_size + reserve_pool_size), and the pools add up on the endpoint.
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=200,
                 proxy="pgbouncer-transaction",
                 services=(_svc("api", app_instances=20, workers=2, load=Load(100, 30)),
                           _svc("jobs", kind="worker", app_instances=10),
                           _svc("migrate", kind="cron", app_instances=1, proxy="none")))
    rec = recommend(s)
    ep = rec.endpoint("primary")
    by = {b.service: b for b in ep.by_service}
    assert ep.worst_case == sum(b.worst_case for b in ep.by_service) <= ep.usable
    api_ep = rec.service("api").rec.endpoint("primary")
    jobs_ep = rec.service("jobs").rec.endpoint("primary")
    pool = api_ep.server_side.limit
    assert jobs_ep.server_side.limit == pool  # one default_pool_size for every pair
    assert api_ep.server_side.pairs == 2 and api_ep.server_side.total == 2 * pool
    for name, own in (("api", api_ep), ("jobs", jobs_ep)):
        assert by[name].worst_case == min(pool, own.client_side.worst_case)
    # The cron job goes direct: its connections come out of usable beside the pools.
    assert by["migrate"].worst_case + 2 * pool <= ep.usable


@st.composite
def _estates(draw) -> Scenario:
    n = draw(st.integers(1, 4))
    services = []
    for i in range(n):
        kind = draw(st.sampled_from(["web", "worker", "cron"]))
        load = draw(st.none() | st.builds(Load, st.floats(1, 300), st.floats(1, 80)))
        services.append(Service(
            name=f"s{i}", kind=kind, app_instances=draw(st.integers(1, 6)),
            workers=draw(st.integers(1, 4)), load=load,
            proxy=draw(st.sampled_from([None, "none"])),
            weight=draw(st.sampled_from([1.0, 2.0, 0.5]))))
    proxy = draw(st.sampled_from(["none", "pgbouncer-transaction", "pgbouncer-session"]))
    return Scenario(provider="self-hosted", instance_class=None,
                    max_connections=draw(st.integers(150, 3000)),
                    replicas=draw(st.sampled_from([(), (Replica(),)])),
                    proxy=proxy, services=tuple(services))


def _pair_pool_moved(before, after) -> bool:
    """Whether a PgBouncer's default_pool_size (one for every pair, one pair per service)
    moved: a new pair must fit beside the others, so each pair's pool shrinks and what it
    frees may go to services not behind it; or a new pair's need raises the one size every
    pair gets. That is the uniform pool's arithmetic, not a share taken from a service."""
    def dps(rec) -> dict[str, int]:
        return {ep.role: ep.server_side.pool_size_per_pair for v in rec.services
                for ep in v.rec.endpoints if ep.server_side is not None
                and ep.server_side.pool_size_per_pair is not None
                and v.rec.scenario.proxy.startswith("pgbouncer")}
    old, new = dps(before), dps(after)
    return any(new.get(role, n) != n for role, n in old.items())


def _fit(s: Scenario):
    try:
        return recommend(s)
    except SizingError:
        return None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_estates())
def test_services_together_never_exceed_usable(s: Scenario) -> None:
    rec = _fit(s)
    if rec is None:
        return
    for ep in rec.endpoints:
        assert ep.worst_case == sum(b.worst_case for b in ep.by_service)
        assert ep.worst_case <= ep.usable, ep.explanation


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_estates(), st.builds(Service, name=st.just("extra"),
                             kind=st.sampled_from(["web", "worker", "cron"]),
                             app_instances=st.integers(1, 8),
                             load=st.none() | st.builds(Load, st.floats(1, 300),
                                                        st.floats(1, 80))))
def test_adding_a_service_never_raises_another_services_pools(s: Scenario,
                                                              extra: Service) -> None:
    before = _fit(s)
    after = _fit(replace(s, services=(*s.services, extra)))
    if before is None or after is None or _pair_pool_moved(before, after):
        return
    for v in before.services:
        for g in v.rec.engines:
            h = after.service(v.name).rec.engine(g.endpoint)
            assert (h.pool_size, h.pool_size + h.max_overflow) <= (
                g.pool_size, g.pool_size + g.max_overflow) or (
                h.pool_size <= g.pool_size and h.max_overflow <= g.max_overflow), repr((s, extra))


_FLAGS = st.fixed_dictionaries({
    "provider": st.sampled_from(["aws-rds", "self-hosted", "supabase", "neon"]),
}, optional={
    "app_instances": st.integers(1, 30).map(str), "workers": st.integers(1, 8).map(str),
    "max_app_instances": st.integers(30, 60).map(str), "engines": st.integers(1, 3).map(str),
    "rps": st.floats(1, 200).map(lambda x: f"{x:.1f}"),
    "hold_ms": st.floats(1, 50).map(lambda x: f"{x:.1f}"),
    "replicas": st.integers(0, 2).map(str),
})


def _flags_scenario(flat: dict[str, str]) -> dict[str, str]:
    flat = dict(flat)
    if flat["provider"] == "self-hosted":
        flat["max_connections"] = "500"
    elif flat["provider"] == "aws-rds":
        flat["instance_class"] = "db.r6g.xlarge"
    elif flat["provider"] == "supabase":
        flat["instance_class"] = "large"
    else:
        flat["instance_class"] = "2"
    if ("rps" in flat) != ("hold_ms" in flat):
        flat.pop("rps", None)
        flat.pop("hold_ms", None)
    return flat


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FLAGS)
def test_a_one_service_file_equals_the_flags(raw: dict[str, str]) -> None:
    flat = _flags_scenario(raw)
    try:
        flags = recommend(links.from_flat(flat))
    except (SizingError, ScenarioError):
        return
    # The same keys written as a file, numbers as TOML numbers.
    lines = [f'{k} = {v}' if k in ("app_instances", "workers", "max_app_instances",
                                     "engines", "rps", "hold_ms", "replicas",
                                     "max_connections") else f'{k} = "{v}"'
             for k, v in flat.items()]
    from_file = recommend(files.parse("\n".join(lines)))
    assert from_file.to_dict() == flags.to_dict()
    # One [[service]] table: the same numbers, the engines named after the service.
    top = [ln for ln in lines if ln.split(" =")[0] in links.BY_KEY
           and ln.split(" =")[0] not in links.FLEET_KEYS]
    fleet = [ln for ln in lines if ln.split(" =")[0] in links.FLEET_KEYS]
    one = recommend(files.parse("\n".join([*top, "[[service]]", 'name = "api"', *fleet])))
    for a, b in zip(one.endpoints, flags.endpoints, strict=True):
        assert (a.pool_size, a.max_overflow, a.worst_case, a.usable, a.breaks_at) == (
            b.pool_size, b.max_overflow, b.worst_case, b.usable, b.breaks_at)


# ------------------------------------------------------------ flat form and files

def test_services_round_trip_through_share_links_and_files() -> None:
    s = files.parse(ESTATE)
    flat = links.to_flat(s)
    assert flat["s2_name"] == "worker" and flat["s3_kind"] == "cron"
    assert "app_instances" not in flat  # fleet keys live in the services
    assert links.from_flat(flat) == s
    assert files.parse(files.dump(s)) == s


@pytest.mark.parametrize(("text", "line", "words"), [
    ('provider = "self-hosted"\nmax_conections = 100\n', 2, "unknown key 'max_conections'"),
    ('provider = "self-hosted"\nmax_connections = 100\n\n[[service]]\nname = "api"\n'
     'wrokers = 4\n', 6, "unknown key 'wrokers' in [[service]] 1"),
    ('provider = "self-hosted"\nmax_connections = 100\nworkers = 2\n\n[[service]]\n'
     'name = "api"\n', 3, "set per service"),
    ('provider = "self-hosted"\nmax_connections = 100\n\n[[service]]\nname = "api"\n\n'
     '[[service]]\nname = "jobs"\nworkers = -3\n', 9, "Workers per instance must be"),
    ('provider = "self-hosted"\nmax_connections = 100\n\n[[service]]\nworkers = 2\n', 4,
     "has no name"),
    ('provider = "self-hosted"\nmax_connections = [100\n', 2, "not valid TOML"),
    ('provider = "self-hosted"\nmax_connections = 100\nname = "x"\n', 3,
     "belongs in a [[service]] table"),
])
def test_bad_files_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(files.ScenarioFileError) as err:
        files.parse(text, "estate.toml")
    assert str(err.value).startswith(f"estate.toml:{line}: ")
    assert words in str(err.value)


def test_bad_services_are_refused_in_one_line() -> None:
    base = Scenario(provider="self-hosted", instance_class=None, max_connections=100)
    cases = [
        (replace(base, services=(_svc("api"), _svc("api"))), "used twice"),
        (replace(base, services=(_svc("API ok"),)), "name must be"),
        (replace(base, services=(_svc("api", endpoints=("primary", "replica-9")),)),
         "unknown endpoint"),
        (replace(base, services=(_svc("api", endpoints=()),)), "must include the primary"),
        (replace(base, services=(_svc("api", kind="batch"),)), "unknown kind"),
        (replace(base, services=(_svc("api", weight=float("nan")),)), "Share weight"),
        (replace(base, services=tuple(_svc(f"s{i}") for i in range(33))), "at most 32"),
        (replace(base, services=(_svc("api", workers=5000),)), "service 'api'"),
    ]
    for s, words in cases:
        with pytest.raises(ScenarioError, match=words):
            recommend(s)
    with pytest.raises(ScenarioError, match="at most 32"):
        links.from_flat({"provider": "self-hosted", "s99_name": "x"})
    with pytest.raises(ScenarioError, match="service 2 is missing"):
        links.from_flat({"provider": "self-hosted", "s1_name": "a", "s3_name": "b"})


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("# x\n" * 100_000)
    with pytest.raises(files.ScenarioFileError, match="over 256 KiB"):
        files.load(path)


# --------------------------------------------------------------------------- CLI

def test_cli_recommend_json_has_services_and_by_service(tmp_path: Path) -> None:
    path = tmp_path / "estate.toml"
    path.write_text(ESTATE)
    out = _py("recommend", "--scenario", str(path), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [v["name"] for v in data["services"]] == ["api", "worker", "cron"]
    primary = data["endpoints"][0]
    assert primary["worst_case"] == sum(b["worst_case"] for b in primary["by_service"])
    assert {b["service"] for b in primary["by_service"]} == {"api", "worker", "cron"}
    assert all(v["engines"] for v in data["services"])
    text_out = _py("recommend", "--scenario", str(path), cwd=tmp_path)
    assert "breaks it first" in text_out.stdout and "== service cron (cron) ==" in text_out.stdout


def test_cli_refuses_bad_files_and_mixing_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "estate.toml"
    path.write_text(ESTATE.replace("workers = 2", "wrkers = 2"))
    out = _py("recommend", "--scenario", str(path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"error: {path}:17: unknown key 'wrkers'")
    path.write_text(ESTATE)
    out = _py("recommend", "--scenario", str(path), "--workers", "3")
    assert out.returncode == 2 and "cannot be combined with --workers" in out.stderr
    out = _py("export", "--scenario", str(path), "-o", "-")
    assert out.returncode == 2 and "--service" in out.stderr and "api, worker, cron" in out.stderr
    out = _py("export", "--scenario", str(path), "--service", "nope", "-o", "-")
    assert out.returncode == 2 and "no service named 'nope'" in out.stderr


def test_exported_service_module_compiles_passes_ruff_and_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "estate.toml"
    path.write_text(ESTATE)
    out = _py("export", "--scenario", str(path), "--service", "worker", "-o", "-")
    assert out.returncode == 0, out.stderr
    src = out.stdout
    compile(src, "db.py", "exec")
    assert ruff_check(src).returncode == 0, ruff_check(src).stdout
    rec = recommend(files.parse(ESTATE))
    assert src == render_module(rec, service="worker",
                                generated_on=src.split("Generated on ")[1].split()[0])
    assert "application_name" in src and "replica-1" not in src.split("ENGINE_SETTINGS")[1]
    assert "poolwise export --scenario poolwise-scenario.toml --service worker -o db_worker.py" \
        in src


@pytest.mark.db
def test_service_module_runs_and_pg_sees_its_application_name(pg, tmp_path: Path,
                                                             monkeypatch) -> None:
    s = files.parse(ESTATE.replace('provider = "aws-rds"\ninstance_class = "db.r6g.large"',
                                    'provider = "self-hosted"\nmax_connections = 2000'))
    rec = recommend(s)
    path = tmp_path / "db_worker.py"
    path.write_text(render_module(rec, service="worker"))
    mod = load_module(path, f"poolwise_db_services_{id(tmp_path)}")
    monkeypatch.setenv("DATABASE_URL", pg.url())
    monkeypatch.setenv("DATABASE_SSL", "disable")

    async def main() -> str:
        engines = mod.create_engines()
        try:
            async with engines.write_session() as sess:
                return (await sess.execute(text(
                    "select application_name from pg_stat_activity "
                    "where pid = pg_backend_pid()"))).scalar_one()
        finally:
            await mod.dispose_engines(engines)

    assert asyncio.run(asyncio.wait_for(main(), 60)) == "worker"


def test_cli_flag_error_keys_are_not_made_into_flags() -> None:
    # A service field's key (s2_workers) has no flag: the message names the service instead.
    parser = cli.build_parser()
    assert parser is not None
    with pytest.raises(ScenarioError) as err:
        links.from_flat({"provider": "self-hosted", "s1_name": "api", "s1_workers": "0"})
    assert err.value.key == "s1_workers" and "service 1 (api)" in str(err.value)


# ------------------------------------------------ issue 18: random estates, every proxy

# (provider, instance class, proxy): every proxy with a provider it runs with.
_PATHS = [
    ("self-hosted", None, "none"), ("self-hosted", None, "pgbouncer-transaction"),
    ("self-hosted", None, "pgbouncer-session"), ("aws-rds", "db.r6g.large", "rds-proxy"),
    ("aws-rds", "db.t3.medium", "none"), ("aws-aurora", "db.r6g.large", "rds-proxy"),
    ("gcp-cloudsql", "db-custom-2-7680", "cloudsql-auth-proxy"),
    ("gcp-cloudsql", "db-custom-2-7680", "cloudsql-connector"),
    ("azure-flexible", "D2s_v3", "azure-pgbouncer"),
    ("supabase", "large", "supavisor-transaction"), ("supabase", "large", "supavisor-session"),
    ("neon", "1cu", "neon-pooler"),
]
# Findings that speak of a load: a service without one never gets them.
_LOAD_CODES = {"DB_CORES_BUSY", "PROXY_SERVER_POOL_BELOW_LOAD", "LOAD_OVER_BUDGET",
               "BUDGET_BELOW_LOAD"}


@st.composite
def _any_estates(draw) -> Scenario:
    provider, cls, proxy = draw(st.sampled_from(_PATHS))
    n = draw(st.integers(1, 32))
    services = []
    for i in range(n):
        kind = draw(st.sampled_from(["web", "worker", "cron", "serverless"]))
        serverless = kind == "serverless"
        services.append(Service(
            name=f"s{i}", kind=kind, app_instances=draw(st.integers(1, 4)),
            workers=1 if serverless else draw(st.integers(1, 8)),
            serverless_concurrency=draw(st.integers(1, 40)) if serverless else None,
            load=draw(st.none() | st.builds(Load, st.integers(1, 300).map(float),
                                            st.integers(1, 50).map(float))),
            proxy=draw(st.sampled_from([None, None, "none"])),
            weight=draw(st.sampled_from([1.0, 1.0, 2.0]))))
    return Scenario(provider=provider, instance_class=cls,
                    max_connections=draw(st.integers(100, 2000)) if cls is None else None,
                    replicas=draw(st.sampled_from([(), (Replica(),)])),
                    proxy=proxy, services=tuple(services))


def _floors_fit(s: Scenario) -> bool:
    """Whether every service's floor fits, counted independently of shares.shares: per
    endpoint, 1 per client engine (cron without load 2, serverless 1 per invocation) for
    direct services and session-pooled ones, 1 server connection per transaction pooler;
    behind a pooler with a client limit, 1 client connection per engine."""
    from wizard.core.model import POOLERS, SESSION_POOLERS
    use: dict[str, list[tuple[Service, Scenario, limits.EndpointSpec]]] = {}
    for svc in s.services:
        view = s.through(svc)
        for sp in limits.endpoint_specs(s, svc):
            use.setdefault(sp.role, []).append((svc, view, sp))
    for role, rows in use.items():
        usable = rows[0][2].usable
        total, poolers = 0, {}
        for svc, view, sp in rows:
            floor = sp.clients * (2 if svc.kind == "cron" and svc.load is None else 1)
            pooled = view.proxy in POOLERS and not (
                role != "primary" and proxies.rds_proxy_skips_replicas(view))
            if not pooled or view.proxy in SESSION_POOLERS:
                total += floor
            if pooled:
                poolers.setdefault(view.proxy, []).append((view, sp))
        total += sum(1 for name in poolers if name not in SESSION_POOLERS)
        if "pgbouncer-session" in poolers:
            # One default_pool_size for every pair (one per service): each pair's pool must
            # hold the largest service's engines, so pairs x that floor, not the sum.
            group = poolers["pgbouncer-session"]
            pairs = max(group[0][0].proxy_settings.user_db_pairs, len(group))
            total += (pairs * max(sp.clients for _, sp in group)
                      - sum(sp.clients for _, sp in group))
        if total > usable:
            return False
        for name, group in poolers.items():
            limit = proxies.proxy_limits(group[0][0], group[0][1], None).client_limit
            if name not in SESSION_POOLERS and limit is not None and (
                    sum(sp.clients for _, sp in group) > limit):
                return False
    return True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_any_estates())
def test_any_estate_whose_floors_fit_is_sized_fairly(s: Scenario) -> None:
    fit = _floors_fit(s)
    try:
        rec = recommend(s)
    except SizingError as exc:
        assert not fit, str(exc)
        return
    views = {v.name: s.through(v) for v in s.services}
    for ep in rec.endpoints:
        # Each endpoint's services sum within usable.
        assert ep.worst_case == sum(b.worst_case for b in ep.by_service) <= ep.usable
        # Same kind, weight and path without load: the same per engine, within 1.
        peers: dict[tuple, list[int]] = {}
        for b in ep.by_service:
            svc = next(v for v in s.services if v.name == b.service)
            # Behind PgBouncer in session mode a service may be held to its pair's pool,
            # the same for every pair whatever its engines: fair per pair, not per engine.
            if svc.load is None and svc.kind != "serverless" and (
                    views[svc.name].proxy != "pgbouncer-session"):
                peers.setdefault((svc.kind, svc.weight, views[svc.name].proxy), []).append(
                    b.pool_size + b.max_overflow)
        for key, totals in peers.items():
            assert max(totals) - min(totals) <= 1, (ep.role, key, totals)
    # No service's finding cites another service's load.
    for v in rec.services:
        svc = next(x for x in s.services if x.name == v.name)
        for f in v.rec.warnings:
            if svc.load is None:
                assert f.code not in _LOAD_CODES, (v.name, f)
                assert "busy on average" not in f.message, (v.name, f)
            elif f.code == "DB_CORES_BUSY":
                role = f.endpoint
                # Direct: its own load; behind a pooler: the loads of the services on that
                # path (the finding is the path's, the same from each of them).
                path = [x for x in rec.services if role in x.endpoints and (
                    x.rec.endpoint(role).server_side is not None) and (
                    x.rec.scenario.proxy == v.rec.scenario.proxy)]
                on = path if "load behind it" in f.message else [v]
                busy = sum(x.rec.load.offered_load * (
                    1 if x.kind == "serverless" else x.rec.endpoint(role).processes)
                    for x in on if x.rec.load is not None)
                # The finding's own figure (its facts), not its wording; rounded to 0.1 there.
                assert f.facts["busy"] == pytest.approx(busy, abs=0.051), (v.name, f)
