"""One answer in the app too: the results step's metrics, for random scenarios across
providers and proxies, are the Recommendation's numbers (the JSON's, the export's)."""

from __future__ import annotations

import json

import streamlit as st
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

from tests.support import answers, any_scenario, engine_settings_of, go, new_app
from wizard import cli
from wizard.core import plan, queueing
from wizard.core.model import ScenarioError, SizingError
from wizard.export import render_module
from wizard.scenario import links


def app_examples(n: int) -> settings:
    """Hypothesis settings for n app runs: no deadline (a run takes a while), and the
    function-scoped fixtures are fine (each example isolates its store, `fresh_store`)."""
    return settings(max_examples=n, deadline=None, suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def fresh_store(tmp_path, monkeypatch) -> None:
    """An example's own saved-scenario store and no cached resources from the one before."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    st.cache_resource.clear()


@app_examples(12)
@given(any_scenario())
def test_results_metrics_are_the_json_and_the_export(tmp_path, monkeypatch, s):
    fresh_store(tmp_path, monkeypatch)
    flat = links.to_flat(s)
    try:
        rec = plan.recommend(links.from_flat(flat))
    except (SizingError, ScenarioError):
        return
    at = new_app(flat)
    go(at, "results")
    shown = answers(at)
    data = json.loads(json.dumps(cli.recommendation_json(rec), default=str))
    module = engine_settings_of(render_module(rec))
    assert len(shown) == len(rec.endpoints)
    for m, ep, jep in zip(shown, rec.endpoints, data["endpoints"], strict=True):
        assert m["database sees at peak"] == f"{jep['worst_case']:,}" == f"{ep.worst_case:,}"
        assert m["usable"] == f"{jep['usable']:,}"
        if "pool_size" in m:
            assert int(m["pool_size"]) == jep["pool_size"] == module[ep.role]["pool_size"]
            assert int(m["max_overflow"]) == module[ep.role]["max_overflow"]
        else:
            assert m["poolclass"] == "NullPool" == module[ep.role]["poolclass"]
        if ep.p_wait is not None:
            assert m["P(checkout waits)"] == queueing.percent(jep["p_wait"])
        if "breaks at (inst.)" in m:
            n = jep["breaks_at"]
            assert m["breaks at (inst.)"] == ("never" if n is None else f"{n:,}")


@st_.composite
def any_estate(draw) -> dict[str, str]:
    """Link parameters of 2 or 3 services (web, worker, cron, serverless) on one database,
    with or without a replica and a pooler, some with a load or their own path."""
    proxy = draw(st_.sampled_from(["none", "pgbouncer-transaction"]))
    flat = {"provider": "self-hosted", "instance_class": "default",
            "max_connections": str(draw(st_.integers(100, 3000))), "proxy": proxy}
    replicas = draw(st_.integers(0, 1))
    if replicas:
        flat["replicas"] = "1"
    for i in range(1, draw(st_.integers(2, 3)) + 1):
        kind = draw(st_.sampled_from(["web", "worker", "cron", "serverless"]))
        flat[f"s{i}_name"] = f"{kind}{i}"
        flat[f"s{i}_kind"] = kind
        if kind == "serverless":
            flat[f"s{i}_serverless_concurrency"] = str(draw(st_.integers(1, 200)))
        else:
            n = draw(st_.integers(1, 12))
            flat[f"s{i}_app_instances"] = str(n)
            flat[f"s{i}_max_app_instances"] = str(n + draw(st_.integers(0, 10)))
            flat[f"s{i}_workers"] = str(draw(st_.integers(1, 4)))
        if kind == "web" and draw(st_.booleans()):
            flat[f"s{i}_rps"], flat[f"s{i}_hold_ms"] = "30", "20"
        if replicas and draw(st_.booleans()):
            flat[f"s{i}_endpoints"] = "primary"
        if proxy != "none" and kind == "cron":
            flat[f"s{i}_proxy"] = "none"
    return flat


@app_examples(6)
@given(any_estate())
def test_every_service_on_the_results_step_is_the_json(tmp_path, monkeypatch, flat):
    from tests.support import service_answer
    from wizard.ui.results import BREAKS_LABEL, SERVICE_AT_PEAK

    fresh_store(tmp_path, monkeypatch)
    try:
        rec = plan.recommend(links.from_flat(flat))
    except (SizingError, ScenarioError):
        return
    data = json.loads(json.dumps(cli.recommendation_json(rec), default=str))
    at = new_app(flat)
    go(at, "results")
    shown = iter(service_answer(at))
    for jep in data["endpoints"]:
        kind, m = next(shown)
        assert kind == "endpoint"
        assert m["database sees at peak"] == f"{jep['worst_case']:,}"
        assert m["usable"] == f"{jep['usable']:,}"
        for b in jep["by_service"]:
            kind, m = next(shown)
            assert kind == "service"
            assert m[SERVICE_AT_PEAK] == f"{b['worst_case']:,}"
            if "pool_size" in m:
                assert (int(m["pool_size"]), int(m["max_overflow"])) == (
                    b["pool_size"], b["max_overflow"])
            n = b["breaks_at"]
            label = BREAKS_LABEL if BREAKS_LABEL in m else "breaks at (inv.)"
            assert m[label] == ("never" if n is None else f"{n:,}")
    assert next(shown, None) is None
