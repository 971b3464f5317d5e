"""Altair chart builders: data comes from the Recommendation, limits sit where they must."""

from __future__ import annotations

import json
from dataclasses import replace

import altair as alt
import pytest

from tests.support import ESTATE
from wizard import charts
from wizard.core import plan, projection
from wizard.core.model import Load, Replica, Scenario
from wizard.scenario import links


def rec_for(**kw):
    return plan.recommend(Scenario.flags(**kw))


def layer_values(spec: dict, i: int) -> list[dict]:
    """The rows a layer draws (named datasets in the Altair charts, inline in charts.spec)."""
    data = spec["layer"][i].get("data") or spec["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


def test_budget_chart_stacks_reserved_pools_overflow_headroom_to_max_connections():
    rec = rec_for(instance_class="db.r6g.large", replicas=(Replica("db.r6g.xlarge"),),
                  max_app_instances=4)
    spec = charts.budget_chart(rec).to_dict()
    rows = layer_values(spec, 0)
    for ep in rec.endpoints:
        parts = {r["part"]: r["connections"] for r in rows if r["endpoint"] == ep.role}
        assert set(parts) == {"reserved", "pools", "overflow", "proxy server pool", "headroom",
                              charts.OVER}
        assert parts["proxy server pool"] == 0  # no proxy in this scenario
        assert parts[charts.OVER] == 0  # the fleet fits
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


def test_budget_chart_shows_going_over_the_limit_in_red_only():
    rec = rec_for(provider="self-hosted", instance_class="default", app_instances=2)
    ep = rec.endpoints[0]
    over = replace(ep, worst_case=ep.usable + 50)  # 50 past usable = 50 past max_connections
    rows = charts.budget_rows(replace(rec, endpoints=(over,)))
    parts = {r["part"]: r["connections"] for r in rows}
    assert parts[charts.OVER] == 50
    assert parts["headroom"] == 0
    assert sum(parts.values()) == ep.max_connections + 50  # the bar runs past the tick
    assert {r["headroom"] for r in rows} == {-50}  # not clamped where it is reported
    spec = charts.budget_chart(replace(rec, endpoints=(over,))).to_dict()
    color = spec["layer"][0]["encoding"]["color"]
    # tableau10's third colour is its red: only "over max_connections" may take it
    assert color["scale"]["domain"].index(charts.OVER) == 2
    assert charts.OVER in color["legend"]["values"]
    fits = charts.budget_chart(rec).to_dict()["layer"][0]["encoding"]["color"]
    assert charts.OVER not in fits["legend"]["values"]
    assert "pools" in fits["legend"]["values"]


def test_budget_rows_on_a_tight_server_are_non_negative_and_add_up():
    # stock PostgreSQL (100) shared by 16 engines: the budget, not the default cap, binds
    rec = rec_for(provider="self-hosted", instance_class="default", app_instances=8, workers=2)
    rows = charts.budget_rows(rec)
    assert all(r["connections"] >= 0 for r in rows)
    ep = rec.endpoints[0]
    assert sum(r["connections"] for r in rows) == ep.max_connections


def test_scale_out_chart_draws_the_core_rows_against_usable():
    rec = rec_for(app_instances=2, max_app_instances=4, workers=4, replicas=(Replica(),))
    spec = charts.scale_out_chart(rec).to_dict()
    rows = layer_values(spec, 0)
    assert rows == projection.scale_out(rec)
    usable = layer_values(spec, 1)
    assert usable == [{"endpoint": ep.role, "usable": ep.usable} for ep in rec.endpoints]
    assert spec["layer"][1]["encoding"]["y"]["field"] == "usable"
    # x is the autoscaling maximum; the rows count its 25 % surge (4 -> 5 instances)
    assert layer_values(spec, 2)[0]["instances"] == 4
    at_max = next(r for r in rows if r["instances"] == 4 and r["endpoint"] == "primary")
    assert at_max["client_connections"] == 5 * 4 * (rec.endpoints[0].pool_size
                                                     + rec.endpoints[0].max_overflow)


def test_scale_out_lines_never_hide_each_other():
    # primary and an identical replica see the same numbers: the lines coincide
    rec = rec_for(app_instances=3, replicas=(Replica(),))
    enc = charts.scale_out_chart(rec).to_dict()["layer"][0]["encoding"]
    dashes = enc["strokeDash"]["scale"]["range"]
    widths = enc["strokeWidth"]["scale"]["range"]
    assert dashes[0] != dashes[1]  # one solid, one dashed
    assert widths[0] > widths[1]  # the wider one drawn under shows around the thinner
    domain = enc["color"]["scale"]["domain"]
    assert domain.index("primary") != 2 and domain.index("replica-1") != 2  # red is for over


def test_scale_out_marks_the_core_break_point():
    rec = rec_for(provider="self-hosted", instance_class="default", app_instances=2,
                  workers=2)
    if not hasattr(rec.endpoints[0], "breaks_at"):
        pytest.skip("the core does not give breaks_at yet")
    spec = charts.scale_out_chart(rec).to_dict()
    marks = {r["endpoint"]: r["instances"] for r in layer_values(spec, 2)}
    assert marks["primary"] == rec.endpoints[0].breaks_at


def test_scale_out_chart_is_none_for_serverless():
    rec = rec_for(serverless_concurrency=20, proxy="rds-proxy")
    assert charts.scale_out_chart(rec) is None


def test_serverless_chart_is_concurrency_against_the_pooler_client_limit():
    rec = rec_for(provider="supabase", instance_class="Small", proxy="supavisor-transaction",
                  serverless_concurrency=150)
    ep = rec.endpoints[0]
    rows = layer_values(charts.serverless_chart(rec).to_dict(), 0)
    assert rows[0]["clients open"] == ep.client_side.worst_case
    assert rows[0]["client limit"] == ep.client_side.limit
    assert charts.serverless_chart(rec_for(app_instances=3)) is None


def test_wait_chart_marks_the_recommended_pool_and_needs_load():
    assert charts.wait_chart(rec_for().services[0].rec) is None
    rec = rec_for(load=Load(rps=200, hold_ms=20))
    spec = charts.wait_chart(rec.services[0].rec).to_dict()
    curve = layer_values(spec, 0)
    assert [(r["pool_size"], r["p_wait"]) for r in curve] == list(rec.services[0].rec.load.curve)
    # offered load 200/s x 0.02 s = 4 Erlangs: with 4 connections every checkout waits
    assert next(r["p_wait"] for r in curve if r["pool_size"] == 4) == 1.0
    ep = rec.endpoints[0]  # the P(wait) shown is for the connections actually exported
    assert layer_values(spec, 1)[0]["pool_size"] == ep.pool_size + ep.max_overflow
    assert layer_values(spec, 2)[0]["p_wait"] == 0.05
    # the target line takes a scheme colour: the theme's default grey vanishes in dark mode
    assert spec["layer"][2]["encoding"]["color"]["scale"]["scheme"] == charts.SCHEME


def test_compare_chart_is_normalised_to_each_usable_with_headroom():
    a = rec_for()
    b = rec_for(workers=4, replicas=(Replica(),))
    spec = charts.compare_chart({"small": a, "big": b}).to_dict()
    rows = spec["data"]["values"]
    bars = list(dict.fromkeys((r["scenario"], r["endpoint"]) for r in rows))
    assert bars == [("small", "primary"), ("big", "primary"), ("big", "replica-1")]
    for rec, name in ((a, "small"), (b, "big")):
        for ep in rec.endpoints:
            share = {r["part"]: r["share"] for r in rows
                     if (r["scenario"], r["endpoint"]) == (name, ep.role)}
            assert share["used at the peak"] == pytest.approx(ep.worst_case / ep.usable)
            assert share["headroom"] == pytest.approx(ep.headroom / ep.usable)
            assert share["over usable"] == 0
            assert sum(share.values()) == pytest.approx(1.0)  # every bar ends at its usable
    assert spec["encoding"]["x"]["axis"]["format"] == "%"


def test_no_hard_coded_colours_and_no_shorthand():
    rec = rec_for(load=Load(rps=100, hold_ms=10), replicas=(Replica(),))
    sless = rec_for(provider="supabase", instance_class="Small",
                    proxy="supavisor-transaction", serverless_concurrency=50)
    for chart in (charts.budget_chart(rec), charts.scale_out_chart(rec),
                  charts.wait_chart(rec.services[0].rec),
                  charts.compare_chart({"a": rec, "b": rec}),
                  charts.serverless_chart(sless)):
        text = json.dumps(chart.to_dict())
        assert '"#' not in text and "rgb(" not in text
        # colours come from the scheme or the theme: no literal colour anywhere
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
    rec = plan.recommend(links.from_flat(flat))
    ticks = layer_values(charts.budget_chart(rec).to_dict(), 1)
    assert ticks[0]["max_connections"] == 429  # Azure's documented B2s default


def test_budget_chart_shows_the_proxy_server_pool_not_client_pools():
    # Supabase Small documents 90 max_connections; behind Supavisor the database sees the
    # pooler's server connections, not the client pools.
    rec = rec_for(provider="supabase", instance_class="Small", proxy="supavisor-transaction",
                  app_instances=4, workers=2)
    ep = rec.endpoints[0]
    parts = {r["part"]: r["connections"] for r in charts.budget_rows(rec)}
    assert parts["pools"] == 0 and parts["overflow"] == 0
    assert parts["proxy server pool"] == ep.worst_case
    assert sum(parts.values()) == 90


def test_spec_is_the_chart_without_building_it_again():
    for rec in (rec_for(replicas=(Replica("db.r6g.xlarge"),), load=Load(rps=50, hold_ms=20)),
                rec_for(provider="supabase", instance_class="Small",
                        proxy="supavisor-transaction", serverless_concurrency=150),
                rec_for(app_instances=7)):
        for kind, build in (("budget", charts.budget_chart), ("scale", charts.scale_out_chart),
                            ("serverless", charts.serverless_chart),
                            ("wait", charts.wait_chart)):
            chart = build(rec)
            got = charts.spec(kind, rec)
            if chart is None:
                assert got is None, kind
                continue
            expected = chart.to_dict()  # valid against the Vega-Lite schema
            # the same chart, each layer drawing the rows of the dataset it names
            assert "datasets" not in got and all("values" in layer["data"]
                                                 for layer in got["layer"]), kind
            assert [layer_values(got, i) for i in range(len(got["layer"]))] == [
                layer_values(expected, i) for i in range(len(expected["layer"]))], kind
            for spec in (got, expected):
                spec.pop("datasets", None)
                for layer in spec["layer"]:
                    layer.pop("data")
            assert got == expected, kind
            alt.LayerChart.from_dict(charts.spec(kind, rec))  # valid as it is drawn
    first = charts.spec("budget", rec)
    first["layer"].clear()  # Streamlit edits the dict it draws: the cache must not see it
    assert charts.spec("budget", rec)["layer"]


def test_scale_out_marks_whatever_break_point_the_core_gives():
    # the chart draws the core's breaks_at, never its own: give it one and find it drawn
    rec = rec_for(provider="self-hosted", instance_class="default", app_instances=2,
                  workers=2, replicas=(Replica(),))
    eps = tuple(replace(ep, breaks_at=n)
                for ep, n in zip(rec.endpoints, (7, None), strict=True))
    spec = charts.spec("scale", replace(rec, endpoints=eps))
    marks = layer_values(spec, 2)
    # x is the autoscaling maximum: the core adds the deploy surge to every point
    assert [(m["endpoint"], m["instances"]) for m in marks] == [
        ("autoscaling peak", rec.sized.app_instances), ("primary", 7)]
    assert layer_values(spec, 3)[0]["label"] == "primary breaks at 7"
    assert len(spec["layer"]) == 4  # lines, usable, marker rules, break labels


def test_services_chart_reaches_past_every_break_point_and_names_its_endpoint():
    rec = plan.recommend(links.from_flat(ESTATE))  # break points far apart: 13 .. 517
    spec = charts.spec("services", rec)
    rows = layer_values(spec, 0)
    breaks = {(b.service, ep.role): b.breaks_at for ep in rec.endpoints
              for b in ep.by_service if b.breaks_at is not None}
    assert len(breaks) == 4 and max(breaks.values()) > 2 * min(breaks.values())
    top = max(r["instances"] for r in rows)
    assert all(top > n for n in breaks.values())
    marks = next(layer_values(spec, i) for i, layer in enumerate(spec["layer"])
                 if layer["data"]["name"] == "marks")
    assert {(m["service"], m["endpoint"]) for m in marks} == set(breaks)
    for m in marks:  # each label names its endpoint and the core's break point
        assert m["label"] == f"{m['service']} breaks {m['endpoint']} at " \
                             f"{breaks[(m['service'], m['endpoint'])]:,}"
    title = spec["title"]
    assert "primary" in title["subtitle"] and "replica-1" in title["subtitle"]


def test_wait_chart_never_goes_below_zero_and_its_legend_is_never_cut():
    rec = rec_for(load=Load(rps=200, hold_ms=20))
    spec = charts.spec("wait", rec.services[0].rec)
    y = spec["layer"][0]["encoding"]["y"]
    assert y["scale"]["domainMin"] == 0 and y["scale"]["clamp"] is True
    # End labels centred on their ticks: flush, "0 %" sat above the line the curve ends on.
    assert y["axis"]["labelFlush"] is False
    legend = spec["layer"][1]["encoding"]["color"]["legend"]
    assert legend["labelLimit"] == 0 and legend["columns"] == 1


def test_services_with_a_load_get_a_wait_chart_each():
    from wizard.ui import results

    rec = plan.recommend(links.from_flat(ESTATE))
    kinds = [k for _, k in results.chart_tabs(rec)]
    assert kinds == ["budget", "services", "wait"]
    assert [v.name for v in rec.services if charts.spec("wait", v.rec)] == ["api"]
