"""The answer table of the Results step (issue 20): one row per service and endpoint it uses
with the core's numbers (the CLI's JSON), errors in the rows they concern and above the
table (never a green headroom beside them), visitor text escaped, a copy of it as text.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.support import (
    ESTATE,
    go,
    new_app,
    no_exception,
    open_details,
    table_rows,
    texts,
)
from wizard import cli
from wizard.core import findings, plan
from wizard.core.model import Finding
from wizard.scenario import links
from wizard.ui import answer

# Today's pools of the API are far over a small server: errors while the recommended
# numbers leave headroom.
OVER = {"provider": "self-hosted", "instance_class": "default", "max_connections": "100",
        "replicas": "1",
        "s1_name": "api", "s1_app_instances": "4", "s1_workers": "2",
        "s1_current_pool_size": "20", "s1_current_max_overflow": "10",
        "s2_name": "jobs", "s2_kind": "worker", "s2_app_instances": "1",
        "s2_endpoints": "primary"}


@pytest.fixture(autouse=True)
def _isolated(isolated_app):
    """Every test here runs the app isolated (tests/conftest.py)."""


def test_the_table_is_the_cli_json_for_every_service_and_endpoint():
    rec = plan.recommend(links.from_flat(ESTATE))
    data = json.loads(json.dumps(cli.recommendation_json(rec), default=str))
    at = go(new_app(ESTATE), "results")
    no_exception(at)
    rows = table_rows(at)
    want = [(svc["name"], e["endpoint"], str(e["pool_size"]), str(e["max_overflow"]))
            for svc in data["services"] for e in svc["engines"]]
    assert [(r["_service"], r["_endpoint"], r["pool_size"], r["max_overflow"])
            for r in rows] == want
    for r in rows:
        ep = next(e for e in data["endpoints"] if e["role"] == r["_endpoint"])
        b = next(x for x in ep["by_service"] if x["service"] == r["_service"])
        assert r["sees at everyone's peak"] == (f"{ep['worst_case']:,} of {ep['usable']:,}"
                                                f"this service {b['worst_case']:,}")
        assert r["headroom"] == f"{ep['usable'] - ep['worst_case']:,} to spare"
        unit = "never" if b["breaks_at"] is None else f"{b['breaks_at']:,} instances"
        assert r["breaks at"].startswith(unit + " today ")
    # The table comes before any metric card or chart, and the copy holds the same rows.
    code = [c.value for c in at.code if c.value.startswith("service\t")]
    assert code == [answer.as_text(rec)]
    assert len(code[0].splitlines()) == 1 + len(want)


def test_errors_show_above_the_table_and_in_their_rows_never_green():
    rec = plan.recommend(links.from_flat(OVER))
    errors = [w for w in rec.warnings if w.severity == "error"]
    assert errors and all(ep.headroom >= 0 for ep in rec.endpoints)
    at = go(new_app(OVER), "results")
    no_exception(at)
    shown = texts(at, "error")
    for w in errors:
        assert any(findings.said(w, rec) in t for t in shown)  # "primary: ..."
    rows = table_rows(at)
    assert rows and all("error" in r["class"] for r in rows)
    assert all(r["headroom.class"] == "bad" and "see above" in r["headroom"] for r in rows)
    assert "Nothing to fix" not in " ".join(texts(at, "success"))


def test_visitor_text_in_the_table_is_escaped():
    rec = plan.recommend(links.from_flat(ESTATE))
    s = rec.scenario
    hostile = '<img src=x onerror="alert(1)">**bold**'
    rec = replace(rec, scenario=replace(s, replicas=(replace(s.replicas[0], region=hostile),)))
    out = answer.as_html(rec)
    assert "<img" not in out and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out


# A replica of a smaller class than the primary: RDS refuses such a hot standby.
SMALL_REPLICA = {"provider": "aws-rds", "instance_class": "db.r6g.xlarge", "replicas": "1",
                 "replica_instance_class": "db.t4g.micro"}


def test_a_refused_replica_is_flagged_on_the_replica_with_replica_fixes():
    from wizard.core.model import ScenarioError

    with pytest.raises(ScenarioError) as exc:
        plan.recommend(links.from_flat(SMALL_REPLICA))
    assert exc.value.key.startswith("replica_")
    # Chosen on step 3 (links are loaded by another part: ui/state.link_values).
    at = new_app({k: v for k, v in SMALL_REPLICA.items() if k != "replica_instance_class"})
    go(at, "topology")
    at.selectbox(key="replica_class_0").set_value("db.t4g.micro").run()
    no_exception(at)
    # The error sits with the replica, whose fixes are a replica's: never a proxy or a
    # bigger primary.
    labels = [b.label for b in at.button]
    assert "Use the primary's class and max_connections" in labels
    assert not [x for x in labels if "proxy" in x or "bigger database" in x]
    assert any(str(exc.value).split(" (")[0] in e for e in texts(at, "error"))
    go(at, "results")
    labels = [b.label for b in at.button]
    assert "Fix the replica (step 3)" in labels
    assert not [x for x in labels if "proxy" in x or "bigger database" in x]
    go(at, "topology")
    at.button(key="replica_same_0").click().run()
    no_exception(at)
    assert "replica_instance_class" not in dict(at.query_params)
    assert plan.recommend(links.from_flat(dict(at.query_params))).endpoint("replica-1")


def test_supabase_says_the_supavisor_pool_size_and_clients_of_the_limit():
    link = {"provider": "supabase", "instance_class": "Small",
            "proxy": "supavisor-transaction", "app_instances": "20", "workers": "2"}
    rec = plan.recommend(links.from_flat(link))
    ep = rec.endpoints[0]
    assert ep.client_side.limit and ep.server_side.configured
    at = go(new_app(link), "results")
    no_exception(at)
    (row,) = table_rows(at)
    seen = row["sees at everyone's peak"]
    assert f"clients on Supavisor: {ep.client_side.worst_case:,} of " \
           f"{ep.client_side.limit:,}" in seen
    assert f"set its pool size to {ep.server_side.configured:,}" in seen


def test_a_finding_the_export_answers_comes_after_the_others_and_says_so():
    link = {"provider": "supabase", "instance_class": "Small",
            "proxy": "supavisor-transaction", "rps": "200", "hold_ms": "30"}
    rec = plan.recommend(links.from_flat(link))
    codes = [w.code for w in rec.warnings if w.severity == "warning"]
    assert codes[0] == "PREPARED_STATEMENTS_TXN_POOLER" and len(codes) > 1  # the core's order
    prepared = rec.warnings[0]
    at = go(new_app(link), "results")
    no_exception(at)
    warned = texts(at, "warning")
    assert warned and "prepared" not in warned[0]
    done = [t for t in texts(at, "info") if t.startswith("Already in the exported module")]
    assert len(done) == 1 and prepared.message in done[0]
    assert all("statement_cache_size" in e.connect_args for e in rec.services[0].rec.engines)


def test_fix_it_in_goes_to_the_step_and_highlights_the_field():
    from wizard.core.codes import CODES

    link = {"provider": "aws-rds", "instance_class": "db.r6g.large"}
    rec = plan.recommend(links.from_flat(link))
    i = next(i for i, w in enumerate(rec.warnings) if w.code == "WORKERS_COUNTED")
    at = open_details(go(new_app(link), "results"))
    at.button(key=f"finding_go_{200 + i}").click().run()
    no_exception(at)
    assert at.radio(key="step").value == "topology"
    bodies = [h.proto.body for h in at.get("html")]
    field = CODES["WORKERS_COUNTED"].field
    assert any(f".st-key-{field} {{ outline" in b for b in bodies)
    assert any(f"querySelector('.st-key-{field}')" in b and "scrollIntoView" in b
               for b in bodies)
    at.run()  # once only: the next run draws no highlight
    assert not any("outline" in h.proto.body for h in at.get("html"))


def test_a_replica_measured_below_a_measured_primary_offers_the_primary_value():
    link = {"provider": "self-hosted", "instance_class": "", "max_connections": "400",
            "replicas": "1"}
    at = go(new_app(link), "topology")
    at.number_input(key="replica_mc_0").set_value(100).run()
    no_exception(at)
    labels = [b.label for b in at.button]
    assert "Use the primary's max_connections (400) for this replica" in labels
    at.button(key="replica_primary_mc_0").click().run()
    no_exception(at)
    assert dict(at.query_params).get("replica_max_connections") == "400"
    assert plan.recommend(links.from_flat(dict(at.query_params)))


def test_one_fleet_error_is_never_beside_a_green_headroom():
    link = {"provider": "self-hosted", "instance_class": "default", "max_connections": "100",
            "app_instances": "4", "workers": "2", "current_pool_size": "20",
            "current_max_overflow": "10"}
    rec = plan.recommend(links.from_flat(link))
    assert [w.severity for w in rec.warnings][0] == "error" and rec.endpoints[0].headroom >= 0
    at = go(new_app(link), "results")
    no_exception(at)
    seen = [m for m in at.metric if m.label == "database sees at peak"]
    assert seen and all("error above" in m.delta for m in seen)
    colors = seen[0].proto.DESCRIPTOR.fields_by_name["color"].enum_type.values_by_number
    assert {colors[m.proto.color].name for m in seen} == {"RED"}
    (row,) = table_rows(at)
    assert row["headroom.class"] == "bad"


def test_a_rows_errors_come_from_the_findings_fields_never_their_words():
    rec = plan.recommend(links.from_flat(OVER))
    # A finding about api on replica-1 whose words name the other service and endpoint.
    odd = Finding("SERVICES_OVER_USABLE", "error", "jobs on primary: see there.", "Fix it.",
                  endpoint="replica-1", service="api")
    marked = [(r.service, r.endpoint) for r in answer.rows(replace(rec, warnings=(odd,)))
              if r.errors]
    assert marked == [("api", "replica-1")]
    # An endpoint-scoped code concerns every service on its endpoint, not only those named.
    whole = replace(odd, endpoint="primary")
    marked = [(r.service, r.endpoint) for r in answer.rows(replace(rec, warnings=(whole,)))
              if r.errors]
    assert marked == [("api", "primary"), ("jobs", "primary")]
    # A service-scoped one only the services it names.
    own = replace(odd, code="WORST_CASE_OVER_MAX", endpoint="primary")
    marked = [(r.service, r.endpoint) for r in answer.rows(replace(rec, warnings=(own,)))
              if r.errors]
    assert marked == [("api", "primary")]
