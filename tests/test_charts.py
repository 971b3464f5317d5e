"""Altair chart builders: data comes from the Recommendation, limits sit where they must."""

from __future__ import annotations

import json
from dataclasses import replace

from wizard import charts, share, sizing
from wizard.model import Load, Replica, Scenario


def rec_for(**kw):
    return sizing.recommend(replace(Scenario(), **kw))


def layer_values(spec: dict, i: int) -> list[dict]:
    return spec["layer"][i]["data"]["values"]


def test_budget_chart_stacks_reserved_pools_overflow_headroom_to_max_connections():
    rec = rec_for(instance_class="db.r6g.large", replicas=(Replica("db.r6g.xlarge"),),
                  max_app_instances=4)
    spec = charts.budget_chart(rec).to_dict()
    rows = layer_values(spec, 0)
    for ep in rec.endpoints:
        parts = {r["part"]: r["connections"] for r in rows if r["endpoint"] == ep.role}
        assert set(parts) == {"reserved", "pools", "overflow", "proxy server pool", "headroom"}
        assert parts["proxy server pool"] == 0  # no proxy in this scenario
        assert parts["reserved"] == sum(r.count for r in ep.reserves)
        assert parts["pools"] == ep.clients * ep.pool_size  # no proxy: every engine's pool
        assert parts["overflow"] == ep.clients * ep.max_overflow
        # the fleet fits, so the stack adds up to max_connections exactly
        assert sum(parts.values()) == ep.max_connections
    ticks = {r["endpoint"]: r["max_connections"] for r in layer_values(spec, 1)}
    assert ticks == {ep.role: ep.max_connections for ep in rec.endpoints}
    assert spec["layer"][1]["encoding"]["x"]["field"] == "max_connections"
    assert spec["layer"][0]["encoding"]["color"]["scale"]["scheme"] == "tableau10"
    assert "tooltip" in spec["layer"][0]["encoding"]


def test_budget_rows_on_a_tight_server_are_non_negative_and_add_up():
    # stock PostgreSQL (100) shared by 16 engines: the budget, not the default cap, binds
    rec = rec_for(provider="self-hosted", instance_class="default", app_instances=8, workers=2)
    rows = charts.budget_rows(rec)
    assert all(r["connections"] >= 0 for r in rows)
    ep = rec.endpoints[0]
    assert sum(r["connections"] for r in rows) == ep.max_connections


def test_scale_out_chart_has_every_instance_count_and_the_limits():
    rec = rec_for(app_instances=2, max_app_instances=4, workers=4)
    spec = charts.scale_out_chart(rec).to_dict()
    rows = layer_values(spec, 0)
    peak = 4 + 1  # 4 + 25% surge rounded up
    assert rec.scenario.peak_instances == peak
    assert [r["instances"] for r in rows] == list(range(1, max(2 * peak, peak + 4) + 1))
    ep = rec.endpoints[0]
    per = ep.pool_size + ep.max_overflow
    for r in rows:  # no proxy: every process's engine can open pool + overflow
        assert r["worst_case"] == r["instances"] * 4 * per
    assert layer_values(spec, 1) == [{"endpoint": "primary", "max_connections":
                                      ep.max_connections, "usable": ep.usable}]
    assert layer_values(spec, 2)[0]["instances"] == peak


def test_breaking_point_is_the_first_instance_count_over_usable():
    rec = rec_for(provider="self-hosted", instance_class="default", app_instances=2,
                  workers=2)
    ep = rec.endpoints[0]
    per_instance = 2 * (ep.pool_size + ep.max_overflow)
    expected = ep.usable // per_instance + 1
    assert charts.breaking_points(rec, 50) == {"primary": expected}


def test_scale_out_chart_is_none_for_serverless():
    rec = rec_for(serverless_concurrency=20, proxy="rds-proxy")
    assert charts.scale_out_chart(rec) is None


def test_wait_chart_marks_the_recommended_pool_and_needs_load():
    assert charts.wait_chart(rec_for()) is None
    rec = rec_for(load=Load(rps=200, hold_ms=20))
    spec = charts.wait_chart(rec).to_dict()
    curve = layer_values(spec, 0)
    assert [(r["pool_size"], r["p_wait"]) for r in curve] == list(rec.load.curve)
    # offered load 200/s x 0.02 s = 4 Erlangs: with 4 connections every checkout waits
    assert next(r["p_wait"] for r in curve if r["pool_size"] == 4) == 1.0
    assert layer_values(spec, 1)[0]["pool_size"] == rec.endpoints[0].pool_size
    assert layer_values(spec, 2)[0]["p_wait"] == 0.05


def test_compare_chart_has_one_bar_per_scenario_and_endpoint():
    a = rec_for()
    b = rec_for(workers=4, replicas=(Replica(),))
    spec = charts.compare_chart({"small": a, "big": b}).to_dict()
    rows = layer_values(spec, 0)
    assert [(r["scenario"], r["endpoint"]) for r in rows] == [
        ("small", "primary"), ("big", "primary"), ("big", "replica-1")]
    assert rows[1]["worst_case"] == b.endpoints[0].worst_case
    assert rows[2]["usable"] == b.endpoints[1].usable


def test_no_hard_coded_colours_and_no_shorthand():
    rec = rec_for(load=Load(rps=100, hold_ms=10), replicas=(Replica(),))
    for chart in (charts.budget_chart(rec), charts.scale_out_chart(rec),
                  charts.wait_chart(rec), charts.compare_chart({"a": rec, "b": rec})):
        text = json.dumps(chart.to_dict())
        assert '"#' not in text and "rgb(" not in text
        # colours come from the scheme or the theme: no literal colour anywhere except the
        # scale resolution ("independent" is not a colour)
        assert not [v for v in _literal_colours(chart.to_dict())], text


def _literal_colours(node, parent: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("color", "fill", "stroke") and isinstance(value, str) \
                    and parent != "scale":
                yield value
            yield from _literal_colours(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _literal_colours(item, parent)


def test_charts_follow_the_share_round_trip():
    flat = {"provider": "azure-flexible", "instance_class": "B2s", "workers": "2"}
    rec = sizing.recommend(share.from_flat(flat))
    ticks = layer_values(charts.budget_chart(rec).to_dict(), 1)
    assert ticks[0]["max_connections"] == 429  # Azure's documented B2s default


def test_first_break_finds_the_break_past_the_charted_range():
    # db.t4g.large Aurora reader (an RDS replica may not be smaller than its primary):
    # usable = max_connections - reserves; each instance runs 2 workers x (pool_size +
    # max_overflow) against it.
    rec = rec_for(provider="aws-aurora", instance_class="db.r6g.xlarge", app_instances=4,
                  workers=2, replicas=(Replica("db.t4g.large"),))
    rep = rec.endpoint("replica-1")
    per_instance = 2 * (rep.pool_size + rep.max_overflow)
    expected = rep.usable // per_instance + 1
    assert expected > 10  # beyond the chart's default range for this fleet
    assert charts.breaking_points(rec, 10)["replica-1"] is None
    assert charts.first_break(rec, 10)["replica-1"] == expected


def test_first_break_is_none_when_a_proxy_caps_the_database_side():
    rec = rec_for(provider="azure-flexible", instance_class="D4ds_v5", proxy="azure-pgbouncer",
                  app_instances=2)
    assert charts.first_break(rec, 8) == {"primary": None}


def test_scale_out_peak_marker_has_a_legend_colour_of_its_own():
    # the theme's default rule colour is invisible on a dark background
    spec = charts.scale_out_chart(rec_for(app_instances=3)).to_dict()
    peak = spec["layer"][2]["encoding"]["color"]
    assert peak["field"] == "label" and peak["scale"]["scheme"] == charts.SCHEME
    assert spec["layer"][1]["encoding"]["color"]["legend"] is None  # one endpoint legend


def test_budget_chart_shows_the_proxy_server_pool_not_client_pools():
    # Supabase Small documents 90 max_connections; behind Supavisor the database sees the
    # pooler's server connections, not the client pools.
    rec = rec_for(provider="supabase", instance_class="Small", proxy="supavisor-transaction",
                  app_instances=4, workers=2)
    ep = rec.endpoints[0]
    parts = {r["part"]: r["connections"] for r in charts.budget_rows(rec)}
    assert parts["pools"] == 0 and parts["overflow"] == 0
    assert parts["proxy server pool"] == ep.server_side.limit
    assert sum(parts.values()) == 90
