"""Poolers counted as they really are (issue 18, section 3): per-pool reserve, one pair per
URL, pre-ping behind transaction poolers, fixed pools without load, Neon and Supavisor."""

from __future__ import annotations

import configparser

import pytest

from wizard.core.model import Load, ProxySettings, Replica, Scenario, Service
from wizard.core.plan import recommend
from wizard.export import render_pgbouncer_ini


def _pgbouncer(max_connections: int, **ps) -> Scenario:
    return Scenario(provider="self-hosted", instance_class=None, max_connections=max_connections,
                    proxy="pgbouncer-transaction", proxy_settings=ProxySettings(**ps))


def test_reserve_pool_is_per_pool_so_fifty_plus_ten_times_three_is_an_error():
    # 175 - 3 superuser - 3 admin - 1 migrations = 168 usable. PgBouncer opens
    # default_pool_size + reserve_pool_size per user/database pool: (50 + 10) x 3 = 180.
    rec = recommend(_pgbouncer(175, pool_size=50, reserve_pool=10, user_db_pairs=3))
    ep = rec.endpoint("primary")
    assert ep.usable == 168
    assert ep.server_side.configured == 180
    over = [w for w in rec.warnings if w.code == "PROXY_SERVER_POOL_OVER_MAX"]
    assert over and over[0].severity == "error"
    # The fix names the ini values that fit: (46 + 10) x 3 = 168.
    assert "default_pool_size = 46 and reserve_pool_size = 10" in over[0].fix
    assert (ep.server_side.pool_size_per_pair, ep.server_side.reserve_pool) == (46, 10)
    assert ep.server_side.total == 168
    # The exported ini agrees with the plan and with PgBouncer's arithmetic.
    text = render_pgbouncer_ini(rec)
    assert "(46 + 10) x 3 pair(s) = 168 <= 168 usable" in text
    cp = configparser.ConfigParser(inline_comment_prefixes=None, comment_prefixes=(";",))
    cp.read_string(text)
    b = cp["pgbouncer"]
    assert (int(b["default_pool_size"]) + int(b["reserve_pool_size"])) * 3 <= ep.usable


def test_values_that_fit_raise_no_error():
    rec = recommend(_pgbouncer(175, pool_size=46, reserve_pool=10, user_db_pairs=3))
    assert "PROXY_SERVER_POOL_OVER_MAX" not in {w.code for w in rec.warnings}


def test_one_url_is_one_pair_session_mode():
    # Two pairs through PgBouncer, but the service's engines connect with one URL: they
    # reach one pool of default_pool_size (+ reserve), never both pairs' pools.
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=100,
                       proxy="pgbouncer-session", app_instances=2, workers=2,
                       deploy_surge_percent=0,
                       proxy_settings=ProxySettings(pool_size=4, user_db_pairs=2))
    rec = recommend(s)
    ep = rec.endpoint("primary")
    assert ep.server_side.limit == 4  # not 4 x 2
    assert ep.clients * (ep.pool_size + ep.max_overflow) <= 4


def test_a_pooled_service_needs_its_whole_load_on_one_pair():
    # The load needs N server connections; spread over 3 pairs it would get a third of them.
    s = Scenario.flags(provider="self-hosted", instance_class=None, max_connections=500,
                       proxy="pgbouncer-transaction", app_instances=10, workers=2,
                       load=Load(rps=200, hold_ms=20),
                       proxy_settings=ProxySettings(user_db_pairs=3, max_client_conn=2000))
    ep = recommend(s).endpoint("primary")
    # 10 x 200 req/s x 40 ms bursts = 80 busy: more than a third of the need on each pair.
    assert ep.server_side.needed is not None and ep.server_side.needed > 80
    assert ep.server_side.limit >= ep.server_side.needed
    assert ep.server_side.total == ep.server_side.limit * 3 <= ep.usable


def test_services_behind_one_pgbouncer_count_a_pair_each():
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=200,
                 proxy="pgbouncer-transaction",
                 services=tuple(Service(name=n, kind="worker", app_instances=2)
                                for n in ("a", "b", "c")))
    rec = recommend(s)
    sides = [v.rec.endpoint("primary").server_side for v in rec.services]
    assert {side.pairs for side in sides} == {3}
    assert sides[0].total == 3 * sides[0].limit <= rec.endpoint("primary").usable
    text = render_pgbouncer_ini(rec)
    assert f"x 3 pair(s) = {sides[0].total} <=" in text


TRANSACTION = {"pgbouncer-transaction": {}, "azure-pgbouncer": dict(
    provider="azure-flexible", instance_class="D2ds_v5"), "supavisor-transaction": dict(
    provider="supabase", instance_class="Small"), "neon-pooler": dict(
    provider="neon", instance_class="1cu")}


@pytest.mark.parametrize("proxy", sorted(TRANSACTION))
def test_pre_ping_is_on_behind_transaction_poolers_with_an_opt_out(proxy):
    eng = recommend(Scenario(proxy=proxy, **TRANSACTION[proxy])).services[0].rec.engine("primary")
    assert eng.pool_pre_ping is True
    assert "pooler restart" in eng.reasons["pool_pre_ping"]
    assert "pre_ping=false" in eng.reasons["pool_pre_ping"]
    off = recommend(Scenario(proxy=proxy, pre_ping=False, **TRANSACTION[proxy]))
    assert off.services[0].rec.engine("primary").pool_pre_ping is False
    assert "fails the request" in off.services[0].rec.engine("primary").reasons["pool_pre_ping"]


@pytest.mark.parametrize("proxy", sorted(TRANSACTION))
def test_without_load_a_transaction_pooler_gets_a_fixed_pool(proxy):
    eng = recommend(Scenario(proxy=proxy, **TRANSACTION[proxy])).services[0].rec.engine("primary")
    assert eng.max_overflow == 0 and eng.pool_size >= 1
    assert eng.reasons["max_overflow"].startswith("0: a fixed pool")


@pytest.mark.parametrize("proxy", ["none", "neon-pooler"])
@pytest.mark.parametrize("pre_ping", [True, False])
def test_every_neon_engine_survives_scale_to_zero(proxy, pre_ping):
    # Neon closes idle connections when the compute scales to zero after 5 minutes.
    eng = recommend(Scenario(provider="neon", instance_class="0.5cu", proxy=proxy,
                             pre_ping=pre_ping)).services[0].rec.engine("primary")
    assert eng.pool_pre_ping is pre_ping
    assert eng.pool_recycle < 300
    assert "scale to zero" in eng.reasons["pool_recycle"]
    if pre_ping:
        assert "scales an idle compute to zero" in eng.reasons["pool_pre_ping"] or (
            "scales to zero" in eng.reasons["pool_pre_ping"])


def test_pre_ping_opt_out_by_link_key_cli_flag_and_scenario_file(tmp_path):
    from wizard import cli
    from wizard.scenario import files, links

    s = links.from_flat({"provider": "neon", "instance_class": "1cu", "pre_ping": "false"})
    assert s.pre_ping is False
    assert links.to_flat(s)["pre_ping"] == "0"
    assert links.from_flat(links.to_flat(s)) == s
    assert "pre_ping" not in links.to_flat(Scenario())
    args = cli.build_parser().parse_args(["recommend", "--provider", "neon", "--instance-class",
                                          "1cu", "--no-pre-ping"])
    assert cli.scenario_from_args(args).pre_ping is False
    assert files.parse('provider = "neon"\ninstance_class = "1cu"\npre_ping = false\n'
                        ).pre_ping is False


def test_a_replica_reached_directly_never_cites_rds_proxy():
    rec = recommend(Scenario(provider="aws-rds", instance_class="db.r6g.large",
                             proxy="rds-proxy", replicas=(Replica(),)))
    replica = rec.services[0].rec.engine("replica-1")
    said = " ".join(replica.reasons.values()) + rec.endpoint("replica-1").explanation
    assert "RDS Proxy" not in said and "ConnectionBorrowTimeout" not in said
    assert "RDS Proxy IdleClientTimeout" in \
        rec.services[0].rec.engine("primary").reasons["pool_recycle"]


def test_the_same_max_connections_carries_the_same_estimate_label_everywhere():
    from wizard.cli import render_text
    from wizard.export import render_module, render_report

    s = Scenario(provider="aws-rds", instance_class="db.r6g.large",
                 services=(Service(name="api"), Service(name="jobs", kind="worker")))
    rec = recommend(s)
    label = rec.endpoint("primary").max_connections_label
    assert label.endswith(" (estimate)")
    number = label.split()[0]
    for text in (render_text(rec), render_report(rec),
                 render_module(rec, service="api")):
        shown = [ln for ln in text.splitlines()
                 if number in ln or number.replace(",", "") in ln]
        tables = [ln for ln in shown if ln.startswith(("|", "primary ", "#   primary:"))]
        assert tables and all("estimate" in ln for ln in tables), tables


def test_the_report_states_the_break_point_like_the_text():
    from wizard.cli import render_text
    from wizard.core.projection import break_lines
    from wizard.export import render_report

    rec = recommend(Scenario.flags(provider="aws-rds", instance_class="db.t3.micro",
                                   app_instances=4, max_app_instances=8, workers=4))
    (line,) = break_lines(rec)
    assert line.startswith("primary: breaks from about ")
    assert line in render_text(rec)
    assert f"- {line}." in render_report(rec)


def test_a_services_report_shows_the_endpoints_headroom_with_every_service_at_its_peak():
    import re

    from wizard.export import render_report

    s = Scenario(provider="self-hosted", instance_class=None, max_connections=300,
                 services=(Service(name="api", app_instances=4, workers=2),
                           Service(name="jobs", kind="worker", app_instances=3)))
    rec = recommend(s)
    total = rec.endpoint("primary")
    api = rec.service("api").rec.endpoint("primary")
    assert api.shared_headroom == total.headroom < api.headroom
    report = render_report(rec, service="api")
    assert "headroom (every service at its peak)" in report
    row = next(ln for ln in report.splitlines() if ln.startswith("| primary |"))
    assert re.split(r"\s*\|\s*", row.strip("| "))[-1] == str(total.headroom)


def test_supavisor_ports_share_one_pool_and_get_one_value():
    # Supavisor has one pool size per project, shared by the session (5432) and transaction
    # (6543) ports: services on both get one advised value, and the endpoint sees it once.
    s = Scenario(provider="supabase", instance_class="Large", proxy="supavisor-transaction",
                 services=(Service(name="api", app_instances=4, workers=2, load=Load(100, 20)),
                           Service(name="jobs", kind="worker", app_instances=2,
                                   proxy="supavisor-session")))
    rec = recommend(s)
    sides = [v.rec.endpoint("primary").server_side for v in rec.services]
    assert sides[0].limit == sides[1].limit
    assert sides[0].limit_source == sides[1].limit_source
    assert f"set {sides[0].limit} in Database Settings" in sides[0].limit_source
    total = rec.endpoint("primary")
    assert total.worst_case <= sides[0].limit <= total.usable


def test_max_db_connections_caps_the_server_side():
    # (50 + 10) x 3 = 180 capped by max_db_connections 150: 150 <= 168 usable fits.
    rec = recommend(_pgbouncer(175, pool_size=50, reserve_pool=10, user_db_pairs=3,
                               max_db_connections=150))
    ep = rec.endpoint("primary")
    assert ep.server_side.configured == 150
    # The cap bounds the database side: the typed 50 + 10 per pool is kept.
    assert (ep.server_side.pool_size_per_pair, ep.server_side.reserve_pool) == (50, 10)
    assert "PROXY_SERVER_POOL_OVER_MAX" not in {w.code for w in rec.warnings}
    text = render_pgbouncer_ini(rec)
    assert "max_db_connections = 150" in text
    assert "capped by max_db_connections 150 = 150 <= 168 usable" in text
