"""Several services in the app (issue 12): the services table in step 3 (add, rename,
remove rows), each service's numbers on the Results step equal to the core's JSON, the
share link and the saved scenario carrying every service, bad values flagged in the core's
words, and one module per service on the Export step.

Expected numbers come from `recommend()` / the CLI's JSON on parameters written here, and
from the budget's documented arithmetic (the parts add up to the endpoint's total).
"""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.support import SERVICES_ESTATE as ESTATE
from tests.support import SERVICES_PATHS as PATHS
from tests.support import (
    chart_tab,
    go,
    new_app,
    no_exception,
    open_details,
    service_answer,
    texts,
)
from wizard import cli
from wizard.core import plan, projection
from wizard.core.model import ScenarioError
from wizard.scenario import links
from wizard.ui import state


@pytest.fixture(autouse=True)
def _isolated(isolated_app):
    """Every test here runs the app isolated (tests/conftest.py)."""


@pytest.mark.parametrize("link", [ESTATE, PATHS])
def test_every_service_shows_the_core_numbers(link):
    rec = plan.recommend(links.from_flat(link))
    data = json.loads(json.dumps(cli.recommendation_json(rec), default=str))
    at = new_app(link)
    go(at, "results")
    no_exception(at)
    shown = service_answer(at)
    expected: list[tuple[str, dict[str, str]]] = []
    for ep in data["endpoints"]:
        expected.append(("endpoint", {"database sees at peak": f"{ep['worst_case']:,}",
                                      "usable": f"{ep['usable']:,}"}))
        # The budget's arithmetic: the endpoint sees the sum of its services' parts.
        assert ep["worst_case"] == sum(b["worst_case"] for b in ep["by_service"])
        for b in ep["by_service"]:
            row = {"pool_size": str(b["pool_size"]), "max_overflow": str(b["max_overflow"]),
                   services_label(): f"{b['worst_case']:,}"}
            share_ = rec.endpoint(ep["role"]).by_service
            n = next(x.breaks_at for x in share_ if x.service == b["service"])
            row["breaks at (inst.)"] = "never" if n is None else f"{n:,}"
            expected.append(("service", row))
    assert [(k, {x: v[x] for x in e}) for (k, v), (_, e) in zip(shown, expected,
                                                               strict=True)] == expected
    sentence = projection.break_sentence(rec)
    assert sentence and sentence in texts(at, "info")


def services_label() -> str:
    from wizard.ui.results import SERVICE_AT_PEAK
    return SERVICE_AT_PEAK


def chart_data(at: AppTest) -> dict[str, list[dict]]:
    """The rows of the chart on screen per named dataset (each layer carries its rows)."""
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    return {layer["data"]["name"]: layer["data"]["values"]
            for layer in spec.get("layer", ()) if "name" in layer.get("data", {})}


def test_the_charts_stack_services_and_show_who_breaks_first():
    rec = plan.recommend(links.from_flat(ESTATE))
    at = new_app(ESTATE)
    go(at, "results")
    rows = [r for r in chart_data(at)["budget"] if r["endpoint"] == "primary"]
    parts = {r["part"]: r["connections"] for r in rows}
    ep = rec.endpoint("primary")
    for b in ep.by_service:  # every service is a part of the stack, with its worst case
        assert parts[b.service] == b.worst_case
    assert sum(parts.values()) == ep.max_connections  # the stack ends at max_connections
    chart_tab(at, "Scale-out: which service breaks it")
    no_exception(at)
    data = chart_data(at)
    series = data["services"]
    # Each line crosses what the others leave it exactly at the core's break point.
    for b in ep.by_service:
        own = [r for r in series if r["service"] == b.service]
        if b.breaks_at is None or b.breaks_at > max(r["instances"] for r in own):
            continue
        at_break = next(r for r in own if r["instances"] == b.breaks_at)
        before = next(r for r in own if r["instances"] == b.breaks_at - 1)
        assert before["connections"] <= b.break_limit < at_break["connections"]
    first = min((b for b in ep.by_service if b.breaks_at),
                key=lambda b: b.breaks_at / rec.service(b.service).service.autoscaling_max)
    assert any(m["service"] == first.service for m in data["marks"])


def test_link_with_services_round_trips_and_details_open():
    at = new_app(ESTATE)
    no_exception(at)
    assert links.from_flat(dict(at.query_params)) == links.from_flat(ESTATE)
    go(at, "topology")
    assert not at.data_editor  # a form per service, not a grid
    assert [at.text_input(key=f"s{i}_name").value for i in (1, 2, 3)] == [
        "api", "worker", "cron"]
    go(at, "results")
    open_details(at)
    no_exception(at)
    go(at, "export")
    no_exception(at)
    keys = {b.key for b in at.get("download_button")}
    assert {f"download_module_{n}" for n in ("api", "worker", "cron")} <= keys
    assert "download_scenario" in keys


def test_rows_are_added_renamed_and_removed():
    at = new_app()
    go(at, "topology")
    at.number_input(key="workers").set_value(4).run()
    at.button(key="services_on").click().run()
    no_exception(at)
    q = dict(at.query_params)
    # The one fleet became service 1 ("app") with its values; a worker fleet joined it.
    assert (q["s1_name"], q["s1_workers"], q["s2_name"], q["s2_kind"]) == (
        "app", "4", "worker", "worker")
    assert "workers" not in q  # with services the fleet is set per service
    at.text_input(key="s2_name").input("jobs").run()
    no_exception(at)
    assert dict(at.query_params)["s2_name"] == "jobs"
    at.button(key="services_add").click().run()
    at.text_input(key="s3_name").input("nightly").run()
    at.selectbox(key="s3_kind").set_value("cron").run()
    q = dict(at.query_params)
    assert (q["s3_name"], q["s3_kind"]) == ("nightly", "cron")
    # A folded setting of "jobs" follows it when the service above is removed.
    at.number_input(key="s2_deploy_surge_percent").set_value(50).run()
    at.button(key="services_remove_1").click().run()
    no_exception(at)
    q = dict(at.query_params)
    assert (q["s1_name"], q["s2_name"]) == ("jobs", "nightly")
    assert q["s1_deploy_surge_percent"] == "50" and "s3_name" not in q
    rec = plan.recommend(links.from_flat(q))
    assert [v.name for v in rec.services] == ["jobs", "nightly"]
    at.button(key="services_add").click().run()
    assert dict(at.query_params)["s3_name"] == "worker"
    at.button(key="services_off").click().run()
    q = dict(at.query_params)
    assert not [k for k in q if k.startswith("s1_")] and q["workers"] == "4"


def test_bad_values_are_flagged_in_the_core_words_and_kept():
    at = new_app(ESTATE)
    go(at, "topology")
    at.number_input(key="s2_workers").set_value(-5).run()
    no_exception(at)
    q = dict(at.query_params)
    assert q["s2_workers"] == "-5"  # kept as typed, never clamped
    with pytest.raises(ScenarioError) as exc:
        links.from_flat({**ESTATE, "s2_workers": "-5"})
    assert exc.value.key == "s2_workers"
    assert str(exc.value) in texts(at, "error")
    # A name used twice: the core's words, beside the table.
    at = new_app(ESTATE)
    go(at, "topology")
    at.text_input(key="s3_name").input("api").run()
    with pytest.raises(ScenarioError) as exc:
        plan.recommend(links.from_flat({**ESTATE, "s3_name": "api"}))
    assert exc.value.key == "s3_name"
    assert str(exc.value) in texts(at, "error")


def test_visitor_names_never_become_markdown():
    at = new_app(ESTATE)
    go(at, "topology")
    at.text_input(key="s1_name").input("**[x](http://evil.example)**").run()
    no_exception(at)
    assert dict(at.query_params)["s1_name"] == "**[x](http://evil.example)**"  # as typed
    shown = [e.value for kind in ("markdown", "caption", "error", "info", "warning")
             for e in getattr(at, kind)] + [e.label for e in at.expander]
    assert any("evil" in s for s in shown)  # the core refuses the name, and says so
    for s in shown:
        assert "](http" not in s and "**[x]" not in s


def test_one_service_is_the_flags_form():
    at = new_app({"provider": "aws-rds", "instance_class": "db.r6g.large", "workers": "3"})
    go(at, "topology")
    assert at.number_input(key="workers").value == 3
    assert not at.data_editor
    assert not [k for k in at.query_params if k.startswith("s1_")]


def test_saved_and_compare_take_an_estate():
    from wizard import charts

    estate = plan.recommend(links.from_flat(ESTATE))
    one = plan.recommend(links.from_flat({"provider": "aws-rds",
                                            "instance_class": "db.r6g.large"}))
    rows = charts.compare_rows({"estate": estate, "one": one})
    mine = [r for r in rows if r["scenario"] == "estate"]
    assert [r["worst_case"] for r in mine] == [ep.worst_case for ep in estate.endpoints]
    # Each service's own pools on the endpoint, never "None".
    want = " · ".join(f"{v.name} {v.rec.engine('primary').pool_size} + "
                      f"{v.rec.engine('primary').max_overflow}" for v in estate.services)
    assert mine[0]["pools"] == want
    theirs = [r for r in rows if r["scenario"] == "one"]
    eng = one.service("app").rec.engine("primary")
    assert theirs[0]["pools"] == f"app {eng.pool_size} + {eng.max_overflow}"
    assert "3 services" in mine[0]["setup"]
    charts.compare_chart({"estate": estate, "one": one}).to_dict()
    # Saved scenarios are the flat parameters: every service comes back when loaded.
    assert links.from_flat(state.flat_from_values(state.scenario_values(ESTATE))) == \
        estate.scenario


def test_a_service_with_a_path_its_provider_lacks_is_flagged_on_its_row():
    flat = {"provider": "self-hosted", "instance_class": "default",
            **{f"s{i}_name": f"svc{i}" for i in range(1, 6)}, "s5_proxy": "rds-proxy"}
    with pytest.raises(ScenarioError) as exc:
        plan.recommend(links.from_flat(flat))
    assert exc.value.key == "s5_proxy"  # the core names the service's own parameter
    assert state.culprit(flat) == ("s5_proxy", str(exc.value))


def test_database_vcpus_survive_the_link_and_reach_the_rules():
    flat = {"provider": "self-hosted", "instance_class": "", "max_connections": "300",
            "db_vcpus": "8"}
    at = new_app(flat)
    no_exception(at)
    assert at.session_state["db_vcpus"] == 8
    go(at, "results")
    no_exception(at)
    rec = plan.recommend(links.from_flat(flat))
    assert rec.endpoint("primary").vcpu == 8
    assert links.from_flat(dict(at.query_params)).db_vcpus == 8


def test_a_fraction_in_a_whole_number_field_is_kept_and_refused_beside_it():
    at = new_app(ESTATE)
    go(at, "topology")
    at.number_input(key="s1_app_instances").set_value(2.5).run()
    no_exception(at)
    assert at.number_input(key="s1_app_instances").value == 2.5  # as typed
    assert at.session_state["s1_app_instances"] == 2.5
    with pytest.raises(ScenarioError) as exc:
        links.from_flat({**ESTATE, "s1_app_instances": "2.5"})
    assert str(exc.value) in texts(at, "error")


def test_each_service_states_its_endpoints_and_changes_them():
    link = {**ESTATE, "replicas": "1"}
    at = new_app(link)
    go(at, "topology")
    shown = " ".join(texts(at, "caption"))
    assert "Connects to every endpoint (the default): primary, replica-1" in shown
    at.multiselect(key="_svc_ep_2").set_value(["primary"]).run()
    no_exception(at)
    q = dict(at.query_params)
    assert q["s2_endpoints"] == "primary"
    rec = plan.recommend(links.from_flat(q))
    assert rec.service("worker").endpoints == ("primary",)
    assert "Connects to primary" in " ".join(texts(at, "caption"))
    at.multiselect(key="_svc_ep_2").set_value([]).run()  # empty: back to the default
    assert "s2_endpoints" not in dict(at.query_params)


def test_adding_stops_at_the_core_maximum():
    from wizard.core.limits import MAX_SERVICES

    flat = {"provider": "self-hosted", "instance_class": "default", "max_connections": "5000",
            **{f"s{i}_name": f"svc{i}" for i in range(1, MAX_SERVICES + 1)}}
    at = new_app(flat, timeout=60)
    go(at, "topology")
    no_exception(at)
    assert at.button(key="services_add").disabled
    flat.pop(f"s{MAX_SERVICES}_name")
    at = new_app(flat, timeout=60)
    go(at, "topology")
    assert not at.button(key="services_add").disabled
