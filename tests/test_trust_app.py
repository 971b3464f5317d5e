"""One answer in the app too: the results step's metrics, for random scenarios across
providers and proxies, are the Recommendation's numbers (the JSON's, the export's)."""

from __future__ import annotations

import json

import streamlit as st
from hypothesis import HealthCheck, given, settings

from tests.test_app import answers, go, new_app
from tests.test_trust import any_scenario, engine_settings_of
from wizard import cli, share, sizing
from wizard.export import render_module
from wizard.model import ScenarioError, SizingError


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(any_scenario())
def test_results_metrics_are_the_json_and_the_export(tmp_path, monkeypatch, s):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    st.cache_resource.clear()
    flat = share.to_flat(s)
    try:
        rec = sizing.recommend(share.from_flat(flat))
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
            assert m["P(checkout waits)"] == sizing.percent(jep["p_wait"])
        if "breaks at (inst.)" in m:
            n = jep["breaks_at"]
            assert m["breaks at (inst.)"] == ("never" if n is None else f"{n:,}")
