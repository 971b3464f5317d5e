"""The Streamlit wizard driven through streamlit.testing.v1.AppTest: every step, every
provider/proxy pair, the share link round trip and the saved-scenario store.

Expected numbers come from the provider documentation in data/ (e.g. Azure B2s: 429) and
from arithmetic done here, or from `recommend()` on parameters the test writes itself.
"""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from tests.support import (
    answers,
    chart_tab,
    go,
    new_app,
    no_exception,
    open_details,
    switch_on,
    texts,
    unescape,
)
from wizard.core import findings, plan, queueing
from wizard.scenario import links, store
from wizard.ui import results
from wizard.ui.labels import PROXIES as LABELS
from wizard.ui.text import as_read

# Which proxies each provider offers (rds-proxy only on AWS, Cloud SQL connectors only on
# GCP, ...), written out from the providers' docs rather than read from the code.
VALID_PROXIES = {
    "aws-rds": ["none", "pgbouncer-transaction", "pgbouncer-session", "rds-proxy"],
    "aws-aurora": ["none", "pgbouncer-transaction", "pgbouncer-session", "rds-proxy"],
    "gcp-cloudsql": ["none", "pgbouncer-transaction", "pgbouncer-session",
                     "cloudsql-auth-proxy", "cloudsql-connector"],
    "azure-flexible": ["none", "pgbouncer-transaction", "pgbouncer-session", "azure-pgbouncer"],
    "supabase": ["none", "pgbouncer-transaction", "pgbouncer-session",
                 "supavisor-transaction", "supavisor-session"],
    "neon": ["none", "pgbouncer-transaction", "pgbouncer-session", "neon-pooler"],
    "self-hosted": ["none", "pgbouncer-transaction", "pgbouncer-session"],
}


@pytest.fixture(autouse=True)
def _isolated(isolated_app):
    """Every test here runs the app isolated (tests/conftest.py)."""


def metrics(at: AppTest) -> dict[str, str]:
    """The first endpoint's metrics (the answer card repeats the labels per endpoint)."""
    return answers(at)[0] if answers(at) else {}


def test_first_screen_shows_a_result_with_defaults():
    at = new_app()
    no_exception(at)
    expected = plan.recommend(links.from_flat({"provider": "aws-rds",
                                                 "instance_class": "db.r6g.large"}))
    m = metrics(at)
    assert m["pool_size"] == str(expected.services[0].rec.engines[0].pool_size)
    assert m["max_overflow"] == str(expected.services[0].rec.engines[0].max_overflow)
    # AWS: superuser_reserved_connections 3 + rds_superuser_reserved 2 (Knowledge Center)
    # + rds.rds_reserved_connections 4 (16.5+, the current minor), plus the default 3 admin
    # and 1 migrations connections.
    ep = expected.endpoints[0]
    assert m["usable"] == f"{ep.max_connections - 3 - 2 - 4 - 3 - 1:,}"
    assert at.selectbox(key="provider").value == "aws-rds"
    assert at.selectbox(key="instance_class").value == "db.r6g.large"
    assert dict(at.query_params) == {"provider": "aws-rds", "instance_class": "db.r6g.large"}


def test_azure_b2s_budget_matches_the_documented_numbers():
    at = new_app()
    at.selectbox(key="provider").set_value("azure-flexible").run()
    at.selectbox(key="instance_class").set_value("B2s").run()
    go(at, "topology")
    at.number_input(key="workers").set_value(4).run()
    at.number_input(key="max_app_instances").set_value(6).run()
    go(at, "results")
    open_details(at)
    no_exception(at)
    m = metrics(at)
    # Azure's concepts-limits table: B2s max_connections 429; Azure keeps 15 (10 superuser
    # + 5 reserved_connections); we keep 3 admin + 1 migrations.
    usable = 429 - 15 - 3 - 1
    words = " ".join(texts(at, "markdown"))
    assert "**primary**: 429 max_connections" in words
    assert m["usable"] == f"{usable:,}"
    # 6 instances at the autoscaling max + 25% surge rounded up = 8 instances x 4 workers.
    engines = (6 + math.ceil(6 * 25 / 100)) * 4
    share_per_engine = usable // engines
    pool = math.floor(share_per_engine * 0.7)
    assert m["pool_size"] == str(pool)
    assert m["max_overflow"] == str(share_per_engine - pool)
    assert m["database sees at peak"] == f"{engines * share_per_engine:,}"
    assert f"= {usable} usable" in words and f"/ {engines} = {share_per_engine}" in words


def test_every_provider_and_proxy_pair_is_offered_and_sized():
    at = new_app()
    for provider, proxies in VALID_PROXIES.items():
        go(at, "database")
        at.selectbox(key="provider").set_value(provider).run()
        cls = at.selectbox(key="instance_class").value
        assert cls, provider
        go(at, "proxy")
        assert list(at.selectbox(key="proxy").options) == [LABELS[p] for p in proxies]
        for proxy in proxies:
            at.selectbox(key="proxy").set_value(proxy).run()
            no_exception(at)
            go(at, "results")
            no_exception(at)
            try:
                expected = plan.recommend(links.from_flat(
                    {"provider": provider, "instance_class": cls, "proxy": proxy}))
            except ValueError as exc:  # SizingError/ScenarioError: shown as an error
                assert any(getattr(exc, "message", str(exc))[:40] in e
                           for e in texts(at, "error")), (provider, proxy)
            else:
                m = metrics(at)
                first = expected.services[0].rec
                assert m["pool_size"] == str(first.engines[0].pool_size), (provider, proxy)
                assert m["usable"] == f"{expected.endpoints[0].usable:,}", (provider, proxy)
                assert m["database sees at peak"] == f"{expected.endpoints[0].worst_case:,}"
            assert dict(at.query_params)["provider"] == provider
            assert dict(at.query_params).get("proxy", "none") == proxy
            go(at, "proxy")


def test_provider_change_resets_class_and_invalid_proxy():
    at = new_app()
    go(at, "proxy")
    at.selectbox(key="proxy").set_value("rds-proxy").run()
    go(at, "database")
    at.selectbox(key="provider").set_value("gcp-cloudsql").run()
    no_exception(at)
    from wizard.core import catalog
    assert at.selectbox(key="instance_class").value in [
        c.instance_class for c in catalog.catalog("gcp-cloudsql")]
    go(at, "proxy")
    assert at.selectbox(key="proxy").value == "none"
    assert LABELS["rds-proxy"] not in at.selectbox(key="proxy").options


def test_measured_max_connections_overrides_the_catalog():
    at = new_app()
    at.radio(key="mc_mode").set_value("measured").run()
    at.number_input(key="max_connections").set_value(500).run()
    no_exception(at)
    # 500 - 3 superuser - 4 rds.rds_reserved_connections - 2 rds_superuser reserved
    # - 3 admin - 1 migrations
    assert metrics(at)["usable"] == "487"
    assert dict(at.query_params)["max_connections"] == "500"


def test_replica_gets_its_own_budget():
    at = new_app()
    go(at, "topology")
    at.number_input(key="replicas").set_value(1).run()
    at.selectbox(key="replica_class_0").set_value("db.r6g.xlarge").run()
    go(at, "results")
    no_exception(at)
    m = answers(at)[1]
    expected = plan.recommend(links.from_flat({
        "provider": "aws-rds", "instance_class": "db.r6g.large", "replicas": "1",
        "replica_instance_class": "db.r6g.xlarge"}))
    rep = expected.endpoint("replica-1")
    assert any("**replica-1** · db.r6g.xlarge" in t for t in texts(at, "markdown"))
    assert m["pool_size"] == str(expected.services[0].rec.engine("replica-1").pool_size)
    # A replica keeps no migrations reserve: 3 superuser + 4 rds_reserved + 2 AWS + 3 admin.
    assert m["usable"] == f"{rep.max_connections - 12:,}"
    assert len(at.get("vega_lite_chart")) == 1  # the open chart tab only
    chart_tab(at, "Scale-out")
    assert '"title": "As the fleet scales out"' in at.get("vega_lite_chart")[0].proto.spec


def test_serverless_uses_nullpool_and_warns_without_proxy():
    at = new_app()
    go(at, "topology")
    at.toggle(key="serverless_on").set_value(True).run()
    at.number_input(key="serverless_concurrency").set_value(50).run()
    go(at, "results")
    no_exception(at)
    open_details(at)
    m = metrics(at)
    assert m["poolclass"] == "NullPool"
    code = "\n".join(c.value for c in at.code)
    assert '"poolclass": NullPool' in code
    severities = [w.severity for w in plan.recommend(links.from_flat({
        "provider": "aws-rds", "instance_class": "db.r6g.large",
        "serverless_concurrency": "50"})).warnings]
    shown = len(texts(at, "error")) + len(texts(at, "warning")) + len(texts(at, "info"))
    assert shown >= len(severities)


def test_load_sizes_the_pool_and_draws_the_wait_chart():
    at = switch_on(new_app(), "load_on", rps=400.0, hold_ms=25.0)
    no_exception(at)
    # 400 req/s x 0.025 s = 10 Erlangs per process: the pool must exceed 10, and it holds
    # the burst need (twice the rate without a p95 hold time: 20 Erlangs).
    pool = int(metrics(at)["pool_size"])
    assert pool > 20
    assert pool == queueing.smallest_pool(20.0)
    assert [t.label for t in at.tabs][:3] == ["Budget at the peak", "Scale-out",
                                              "Checkout waits"]
    chart_tab(at, "Checkout waits")
    assert '"title": "P(checkout waits)"' in at.get("vega_lite_chart")[0].proto.spec
    open_details(at)
    captions = texts(at, "caption")
    rec = plan.recommend(links.from_flat(dict(at.query_params)))
    assert all(line in captions for line in queueing.load_lines(rec))


def test_unsizable_scenario_shows_the_error_and_its_fix():
    at = new_app()
    at.selectbox(key="provider").set_value("self-hosted").run()
    go(at, "topology")
    at.number_input(key="app_instances").set_value(40).run()
    at.number_input(key="workers").set_value(4).run()
    no_exception(at)
    errors = texts(at, "error")
    assert any("cannot be sized" in e for e in errors)
    assert any("Fix:" in i for i in texts(at, "info"))
    go(at, "results")
    no_exception(at)
    assert any("cannot be sized" in e for e in texts(at, "error"))


def test_warnings_are_ranked_by_severity_with_fixes():
    at = switch_on(new_app(), "current_on", current_pool_size=500, current_max_overflow=300)
    open_details(at)
    no_exception(at)
    rec = plan.recommend(links.from_flat({
        "provider": "aws-rds", "instance_class": "db.r6g.large", "current_pool_size": "500",
        "current_max_overflow": "300"}))
    assert any(w.severity == "error" for w in rec.warnings)
    every = next(e for e in at.expander if e.label.startswith("All findings"))
    order = [(k, unescape(v)) for k, v in _alerts(every)]
    ranks = [{"error": 0, "warning": 1, "info": 2}[k] for k, v in order if "**Fix:**" in v]
    assert ranks and ranks == sorted(ranks)
    assert len(order) == len(rec.warnings)
    for w in rec.warnings:
        # each with what it is about before it ("primary: ..."), from its fields
        assert any(findings.said(w, rec) in v and w.fix in v for _, v in order)
    # the answer card, above the charts, starts with the error and links to where it is fixed
    card = [(k, unescape(v)) for node in at.main.children.values() for k, v in _alerts(node)]
    assert card[0][0] == "error"
    assert [b.key for b in at.button if b.key and b.key.startswith("finding_go_")]


def _alerts(node) -> list[tuple[str, str]]:
    kind = getattr(node, "type", "")
    if kind in ("error", "warning", "info"):
        return [(kind, node.value)]
    out = []
    for child in getattr(node, "children", {}).values():
        out.extend(_alerts(child))
    return out


def test_share_link_round_trips_to_a_fresh_session():
    at = new_app()
    at.selectbox(key="provider").set_value("neon").run()
    at.selectbox(key="instance_class").set_value("2cu").run()
    go(at, "proxy")
    at.selectbox(key="proxy").set_value("neon-pooler").run()
    go(at, "topology")
    at.number_input(key="workers").set_value(3).run()
    at.number_input(key="replicas").set_value(1).run()
    at.selectbox(key="replica_class_0").set_value("1cu").run()
    go(at, "load")
    at.toggle(key="load_on").set_value(True).run()
    go(at, "results")
    link = dict(at.query_params)
    assert link["proxy"] == "neon-pooler" and link["replica_instance_class"] == "1cu"
    # the link is exactly the share module's parameters for this scenario
    assert links.from_flat(link) == links.from_flat(links.to_flat(links.from_flat(link)))
    first = metrics(at)
    colleague = new_app(link)
    no_exception(colleague)
    assert not texts(colleague, "warning")
    assert colleague.selectbox(key="provider").value == "neon"
    assert colleague.selectbox(key="instance_class").value == "2cu"
    go(colleague, "results")
    assert metrics(colleague) == first
    assert dict(colleague.query_params) == link


DEFAULT_LINK = {"provider": "aws-rds", "instance_class": "db.r6g.large"}


@pytest.mark.parametrize(("query", "kept"), [
    ({"provider": "aws-rds", "workers": "many"}, DEFAULT_LINK),
    ({"provider": "oracle"}, DEFAULT_LINK),
    ({"provider": "neon", "proxy": "rds-proxy", "workers": "3"},
     {"provider": "neon", "instance_class": "1cu", "workers": "3"}),
    ({"provider": "aws-rds", "instance_class": "db.nope.huge", "workers": "2"},
     DEFAULT_LINK | {"workers": "2"}),
    ({"provider": "aws-rds", "split": "7", "app_instances": "5"},
     DEFAULT_LINK | {"app_instances": "5"}),
])
def test_tampered_link_drops_the_bad_value_and_keeps_the_rest(query, kept):
    at = new_app(query)
    no_exception(at)
    notice = [w for w in texts(at, "warning") if "could not be read" in w]
    assert notice and "--" not in notice[0]  # the app's words, not the CLI's flags
    assert dict(at.query_params) == kept


def test_link_with_tracker_parameters_keeps_the_scenario():
    # chat and mail tools append utm_*, fbclid and gclid to shared links
    link = {"provider": "azure-flexible", "instance_class": "B2s", "workers": "4"}
    at = new_app(link | {"utm_source": "slack", "utm_medium": "chat", "fbclid": "IwAR0x",
                         "gclid": "Cj0K", "password": "hunter2"})
    no_exception(at)
    assert not texts(at, "warning")
    assert at.selectbox(key="provider").value == "azure-flexible"
    go(at, "topology")
    assert at.number_input(key="workers").value == 4
    assert dict(at.query_params) == link
    assert "hunter2" not in str(dict(at.query_params))


def test_notice_names_the_field_not_the_flag():
    at = new_app({"provider": "aws-rds", "replicas": "-2"})
    notice = next(w for w in texts(at, "warning") if "could not be read" in w)
    assert "read replicas must be" in notice.lower() and "--replicas" not in notice


def test_store_save_list_load_delete_and_compare(tmp_path):
    at = new_app()
    go(at, "saved")
    no_exception(at)
    assert any("No saved scenarios" in i for i in texts(at, "info"))
    at.text_input(key="save_name").input(" bad name")
    at.button[0].click()  # form submit
    at.run()
    assert any("must not start or end with a space" in e for e in texts(at, "error"))
    at.text_input(key="save_name").input("rds 2 pods")
    at.button[0].click()
    at.run()
    assert any("Saved 'rds 2 pods'" in s for s in texts(at, "success"))
    # change the scenario, save it under a second name
    go(at, "topology")
    at.number_input(key="workers").set_value(4).run()
    go(at, "saved")
    at.text_input(key="save_name").input("rds 4 workers")
    at.button[0].click()
    at.run()
    saved = store.ScenarioStore().list()
    assert [s.name for s in saved] == ["rds 2 pods", "rds 4 workers"]
    assert saved[1].params["workers"] == "4"
    # compare: the two saved scenarios side by side
    rows = at.dataframe[0].value
    assert list(rows["scenario"]) == ["rds 2 pods", "rds 4 workers"]
    expected = [plan.recommend(links.from_flat(s.params)).endpoints[0].worst_case
                for s in saved]
    assert list(rows["worst_case"]) == expected
    assert len(at.get("vega_lite_chart")) == 1
    # load the first: workers back to 1
    at.button(key="load_rds 2 pods").click().run()
    assert any("Loaded" in s for s in texts(at, "success"))
    go(at, "topology")
    assert at.number_input(key="workers").value == 1
    go(at, "saved")
    at.button(key="delete_rds 4 workers").click().run()
    assert len(store.ScenarioStore().names()) == 2  # deleting asks first
    at.button(key="delete_yes_rds 4 workers").click().run()
    assert store.ScenarioStore().names() == ["rds 2 pods"]


def test_export_step_shows_exactly_what_the_export_renders():
    export = pytest.importorskip("wizard.export")
    at = new_app()
    go(at, "proxy")
    at.selectbox(key="proxy").set_value("pgbouncer-transaction").run()
    go(at, "export")
    no_exception(at)
    rec = plan.recommend(links.from_flat({"provider": "aws-rds",
                                            "instance_class": "db.r6g.large",
                                            "proxy": "pgbouncer-transaction"}))
    codes = [c.value for c in at.code]  # st.code drops the final newline
    assert export.render_module(rec).rstrip("\n") in codes
    assert export.render_pgbouncer_ini(rec).rstrip("\n") in codes
    labels = [b.label for b in at.get("download_button")]
    # One service renders like several: its module, the scenario file, the report, the ini.
    assert labels == ["Download db.py", "Download poolwise-scenario.toml",
                      "Download poolwise-report.md", "Download pgbouncer.ini"]


def test_every_step_renders_with_next_and_back():
    at = new_app()
    seen = []
    for _ in range(5):
        seen.append(at.radio(key="step").value)
        at.button(key="nav_next").click().run()
        no_exception(at)
    seen.append(at.radio(key="step").value)
    assert seen == ["database", "proxy", "topology", "load", "results", "export"]
    at.button(key="nav_back").click().run()
    assert at.radio(key="step").value == "results"


def _live_submit(at: AppTest, url: str, password: str) -> AppTest:
    at.text_input(key="live_url").input(url)
    at.text_input(key="live_password").input(password)
    at.slider(key="live_pre_ping").set_value(3)
    next(b for b in at.button if b.label == "Run the live check").click()
    return at.run(timeout=60)


def _everything_shown(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "code", "metric"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "")))
    return "\n".join(parts)


@pytest.mark.db
def test_live_check_against_real_postgres_feeds_back_without_the_password(pg):
    pytest.importorskip("wizard.live")
    at = new_app()
    go(at, "live")
    no_exception(at)
    measured = int(pg.psql("SHOW max_connections").strip())
    url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
    _live_submit(at, url, pg.password)
    no_exception(at)
    assert metrics(at)["max_connections (measured)"] == f"{measured:,}"
    assert not at.text_input(key="live_password").value  # the form cleared it
    assert at.text_input(key="live_url").value == url  # kept for the next run: no secret in it
    assert pg.password not in _everything_shown(at)
    assert pg.password not in str(dict(at.query_params))
    at.button(key="live_apply").click().run()
    assert dict(at.query_params)["max_connections"] == str(measured)
    go(at, "database")
    assert at.radio(key="mc_mode").value == "measured"
    assert at.number_input(key="max_connections").value == measured
    for key in ("live_password", "_live_pending"):
        assert key not in at.session_state or not at.session_state[key]


def test_live_check_bad_url_shows_a_fix_and_never_echoes_the_secret():
    pytest.importorskip("wizard.live")
    at = new_app()
    go(at, "live")
    _live_submit(at, "mysql://root:s3cr3t-in-url@db/app", "pw-s3cr3t")
    no_exception(at)
    shown = _everything_shown(at)
    assert texts(at, "error")
    assert "s3cr3t" not in shown
    assert "s3cr3t" not in str(dict(at.query_params))


NOFIT = {"provider": "self-hosted", "max_connections": "50", "app_instances": "40",
         "workers": "4"}


def test_input_step_summary_fits_two_columns_and_shows_worst_case():
    at = new_app()
    ep = plan.recommend(links.from_flat({"provider": "aws-rds",
                                           "instance_class": "db.r6g.large"})).endpoints[0]
    m = metrics(at)
    assert set(m) == {"pool_size", "max_overflow", "usable", "database sees at peak",
                      "breaks at (inst.)", results.SERVICE_AT_PEAK}
    assert m["breaks at (inst.)"] == f"{ep.breaks_at:,}"
    assert m["database sees at peak"] == f"{ep.worst_case:,}"
    caption = " ".join(texts(at, "caption"))
    assert f"max_connections {ep.max_connections:,}, {ep.max_connections_source}" in caption


def test_unsizable_scenario_explains_the_count_and_links_to_the_steps():
    at = new_app(NOFIT)
    go(at, "topology")
    # 40 instances + 25% surge = 50 at the peak, x 4 workers = 200 client engines
    assert any("surge (10) = 50 instances x 4 worker(s) x 1 engine(s) = 200" in c
               for c in texts(at, "caption"))
    keys = [b.key for b in at.button if b.key and b.key.startswith("fix_go_")]
    assert keys == ["fix_go_proxy", "fix_go_database"]  # not the step we are on
    go(at, "results")
    at.button(key="fix_go_topology").click().run()
    assert at.radio(key="step").value == "topology"
    at.button(key="fix_go_proxy").click().run()
    assert at.radio(key="step").value == "proxy"


def test_results_show_the_core_break_point_per_endpoint_with_its_region():
    # Aurora readers may be smaller than the writer (RDS replicas may not: hot standby).
    at = new_app({"provider": "aws-aurora", "instance_class": "db.r6g.xlarge", "replicas": "2",
                  "replica_instance_class": "db.r6g.large,db.t4g.medium",
                  "replica_regions": "eu-west-1,us-east-1", "app_instances": "4",
                  "workers": "2"})
    go(at, "results")
    no_exception(at)
    words = " ".join(texts(at, "markdown"))
    assert "**replica-1** · db.r6g.large · eu-west-1" in words
    rec = plan.recommend(links.from_flat(dict(at.query_params)))
    for ep, shown in zip(rec.endpoints, answers(at), strict=True):
        assert shown["breaks at (inst.)"] == ("never" if ep.breaks_at is None else
                                        f"{ep.breaks_at:,}")


def test_engine_settings_table_keeps_every_reason_whole():
    at = new_app()
    go(at, "results")
    assert not at.table  # folded: nothing built until it is opened
    open_details(at)
    rec = plan.recommend(links.from_flat({"provider": "aws-rds",
                                            "instance_class": "db.r6g.large"}))
    table = at.table[0].value
    assert list(table["setting"])[:3] == ["poolclass", "pool_size", "max_overflow"]
    why = rec.services[0].rec.engines[0].reasons
    assert list(table["why"]) == [why.get(k, "") for k in table["setting"]]


def test_wait_caption_explains_the_recommended_pool_not_only_the_mean_need():
    q = {"provider": "azure-flexible", "instance_class": "D4ds_v5", "proxy": "azure-pgbouncer",
         "app_instances": "6", "workers": "4", "rps": "200", "hold_ms": "15",
         "p95_hold_ms": "60"}
    at = new_app(q)
    go(at, "results")
    open_details(at)
    rec = plan.recommend(links.from_flat(q))
    # 200 req/s per instance over 4 workers = 50 req/s per process x 15 ms = 0.75 Erlangs
    assert rec.services[0].rec.load.offered_load == pytest.approx(0.75)
    ep = rec.endpoints[0]
    # the burst need, not the mean need
    assert ep.pool_size != rec.services[0].rec.load.needed_pool
    captions = texts(at, "caption")
    assert queueing.load_lines(rec.services[0].rec)[0] in captions
    exported = f"pool {ep.pool_size} + overflow {ep.max_overflow}"
    assert any(exported in c and f"P(wait) {queueing.percent(ep.p_wait)}" in c
               for c in captions)
    assert any(f"marks the exported pool_size + max_overflow ({ep.pool_size + ep.max_overflow})"
               in c for c in captions)


def test_loading_a_saved_scenario_opens_its_results():
    at = new_app(NOFIT | {"max_connections": "5000"})
    go(at, "saved")
    at.text_input(key="save_name").input("big")
    at.button[0].click()
    at.run()
    at.query_params.clear()
    at.sidebar.button(key="reset").click().run()
    go(at, "saved")
    at.button(key="load_big").click().run()
    assert at.radio(key="step").value == "results"
    assert any("Loaded 'big'" in s for s in texts(at, "success"))
    open_details(at)
    assert "**primary**: 5,000 max_connections" in " ".join(texts(at, "markdown"))


def _outside_status(node) -> list[tuple[str, str]]:
    """Alerts not inside an expander/status box (those can be collapsed)."""
    kind = getattr(node, "type", "")
    if kind in ("error", "warning", "info"):
        return [(kind, node.value)]
    if kind == "expandable":
        return []
    out = []
    for child in getattr(node, "children", {}).values():
        out.extend(_outside_status(child))
    return out


@pytest.mark.db
def test_live_check_failure_shows_reason_and_fix_outside_the_status_box(pg):
    pytest.importorskip("wizard.live")
    at = new_app()
    go(at, "live")
    url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
    _live_submit(at, url, "definitely-wrong-pw")
    no_exception(at)
    shown = [v for node in at.main.children.values() for v in _outside_status(node)]
    assert any(k == "error" and "Live check failed" in v for k, v in shown), shown
    assert any(k == "info" and "Fix:" in v for k, v in shown), shown
    assert "definitely-wrong-pw" not in _everything_shown(at)


def test_aurora_serverless_minimum_acu_cap_is_shown_on_the_database_step():
    # AWS: 16 ACU maximum -> 3,360, capped at 2,000 when the minimum is 0.5 ACU.
    at = new_app()
    at.selectbox(key="provider").set_value("aws-aurora").run()
    at.selectbox(key="instance_class").set_value("db.serverless-16acu").run()
    at.number_input(key="min_acu").set_value(0.5).run()
    no_exception(at)
    assert any("**2,000**" in c and "3,360" in c for c in texts(at, "caption"))
    assert metrics(at).get("usable", "").replace(",", "").isdigit()
    assert int(metrics(at)["usable"].replace(",", "")) < 2000


def test_out_of_range_numbers_are_flagged_beside_the_field_not_replaced():
    at = new_app()
    go(at, "topology")
    at.number_input(key="workers").set_value(-5).run()
    no_exception(at)
    assert at.number_input(key="workers").value == -5  # kept as typed, not clamped to 1
    flagged = [e for e in texts(at, "error") if "workers per instance" in e.lower()]
    assert flagged, texts(at, "error")
    # the core's own message, in the app's words
    from wizard.core import limits
    from wizard.core.model import ScenarioError
    with pytest.raises(ScenarioError) as exc:
        limits.validate(links.from_flat({"workers": "-5"}))
    assert str(exc.value) in flagged[0]
    # a large number is read whole (an integer field would read "1e9" as 1)
    at.number_input(key="workers").set_value(1e9).run()
    assert at.number_input(key="workers").value == 1e9
    assert dict(at.query_params).get("workers") == "1000000000"


def test_replica_count_far_out_of_range_is_refused_without_building_anything():
    at = new_app()
    go(at, "topology")
    at.number_input(key="replicas").set_value(20_000_000).run(timeout=10)
    no_exception(at)
    assert any("at most 5 replicas" in e for e in texts(at, "error"))
    assert not [k for k in at.session_state if str(k).startswith("replica_class_")
                and str(k)[-1].isdigit() and int(str(k).split("_")[-1]) > 5]


def test_visitor_text_is_shown_as_text_not_markdown():
    # a saved scenario's name and a link's max_connections_source come from visitors
    at = new_app({"provider": "self-hosted", "max_connections": "300",
                  "max_connections_source": "read :smile: _now_ (http://x.test)"})
    no_exception(at)
    assert not texts(at, "warning")  # the link was read whole
    raw = " ".join(c.value for c in at.caption)
    assert "read :smile: _now_ (http://x.test)" in as_read(raw)  # all of it, as typed
    # nothing Markdown, Streamlit or GFM's autolinks would act on is left live
    assert ":smile:" not in raw and "_now_" not in raw and "http://" not in raw
    go(at, "saved")
    at.text_input(key="save_name").input("**bold** [x](http://evil.test)")
    at.button[0].click()
    at.run()
    at.button(key="load_**bold** [x](http://evil.test)").click().run()
    flash = [s.value for s in at.success if "Loaded" in s.value][0]
    assert "**bold** [x](http://evil.test)" in as_read(flash)
    assert "**" not in flash and "](" not in flash and "http://" not in flash


def test_answer_comes_before_the_charts_and_the_tables_are_folded():
    at = new_app({"provider": "aws-rds", "instance_class": "db.r6g.large", "workers": "2"})
    go(at, "results")
    open_details(at)
    order = []

    def walk(node, folded=False):
        kind = getattr(node, "type", "")
        if kind in ("expander", "popover"):  # the table's copy is in a popover
            folded = True
        if kind in ("metric", "vega_lite_chart", "table", "arrow_table", "code"):
            order.append((kind, folded))
        for child in getattr(node, "children", {}).values():
            walk(child, folded)

    for node in at.main.children.values():
        walk(node)
    kinds = [k for k, _ in order]
    assert kinds.index("metric") < kinds.index("vega_lite_chart")
    assert all(folded for k, folded in order if k in ("table", "arrow_table", "code"))


def test_code_tab_is_the_exported_engine_block():
    # Cloud SQL through the connector with a replica: the snippet the app shows is the
    # module's own text (same env names, same connector), byte for byte.
    export = pytest.importorskip("wizard.export")
    q = {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
         "proxy": "cloudsql-connector", "replicas": "1"}
    at = new_app(q)
    go(at, "results")
    open_details(at)
    rec = plan.recommend(links.from_flat(dict(at.query_params)))
    module = export.render_module(rec)
    code = next(c.value for c in at.code if "ENGINE_SETTINGS" in c.value)
    assert "async_creator=getconn" in code and "CLOUDSQL_REPLICA_1_INSTANCE" in code
    for chunk in code.split("\n\n\n"):
        assert chunk.strip() in module


def test_export_shows_what_changes_and_the_next_steps():
    q = {"provider": "aws-rds", "instance_class": "db.r6g.large", "current_pool_size": "40",
         "current_max_overflow": "10"}
    at = new_app(q)
    go(at, "export")
    no_exception(at)
    rec = plan.recommend(links.from_flat(q))
    table = at.table[0].value
    assert list(table["setting"]) == ["poolclass", "pool_size", "max_overflow"]
    assert list(table["today"])[1:] == ["40", "10"]
    assert list(table["primary"])[1] == f"{rec.services[0].rec.engines[0].pool_size} (was 40)"
    # the module itself is folded
    assert any(unescape(e.label).startswith("db.py") for e in at.expander)
    at.button(key="export_go_live").click().run()
    assert at.radio(key="step").value == "live"
    go(at, "export")
    at.button(key="export_reset").click().run()
    assert at.radio(key="step").value == "database"
    assert dict(at.query_params) == {"provider": "aws-rds", "instance_class": "db.r6g.large"}


def test_modules_imported_since_the_last_rerun_are_frozen_once():
    # Streamlit collects garbage after every rerun; what the imports left (Altair,
    # SQLAlchemy, ...) lives as long as the server and is frozen out of that walk, once
    # per batch of imports (bench/ui.md).
    import gc
    import importlib
    import sys
    import types

    from wizard.ui import page

    for module in page.HEAVY:  # what the warm-up thread would import meanwhile
        importlib.import_module(module)
    page._freeze_new_modules()
    frozen = gc.get_freeze_count()
    keep = [[] for _ in range(100)]  # new objects, but no new module: nothing frozen
    page._freeze_new_modules()
    assert gc.get_freeze_count() == frozen
    sys.modules["_poolwise_probe"] = types.ModuleType("_poolwise_probe")
    try:
        page._freeze_new_modules()
        assert gc.get_freeze_count() >= frozen + len(keep)
    finally:
        del sys.modules["_poolwise_probe"]


def _blocks_holding(node, want) -> list:
    """The blocks from the page down to the first element `want(element)` accepts."""
    for child in getattr(node, "children", {}).values():
        if want(child):
            return [node]
        inner = _blocks_holding(child, want)
        if inner:
            return [node, *inner]
    return []


def _descendants(node) -> list:
    out = []
    for child in getattr(node, "children", {}).values():
        out += [child, *_descendants(child)]
    return out


def test_a_refused_link_shows_its_own_values_and_the_error_beside_the_field():
    """Issue 20: a link with db.r6g.xlarge and a smaller replica opened as db.r6g.large (a
    scenario that fits) and blamed the replica. Now the fields hold exactly the link's values
    and the refusal sits in the replica's own box."""
    link = {"provider": "aws-rds", "instance_class": "db.r6g.xlarge", "replicas": "1",
            "replica_instance_class": "db.r6g.large"}
    at = new_app(link)
    no_exception(at)
    assert dict(at.query_params) == link  # the address still says what the link said
    notice = " ".join(texts(at, "warning"))
    assert "shown as they are" in notice and "below the primary" in notice
    assert "marked in 3 Fleet" in notice
    assert at.radio(key="step").value == "topology"  # it opens where the error is shown
    assert at.selectbox(key="replica_class_0").value == "db.r6g.large"
    go(at, "database")
    assert at.selectbox(key="instance_class").value == "db.r6g.xlarge"
    go(at, "topology")
    no_exception(at)
    assert at.number_input(key="replicas").value == 1
    assert at.selectbox(key="replica_class_0").value == "db.r6g.large"
    assert dict(at.query_params) == link
    path = _blocks_holding(at.main, lambda e: getattr(e, "key", None) == "replica_class_0")
    assert path, "no replica class field"
    # the replica's own box: the innermost block with its heading ("replica-1")
    box = next(b for b in reversed(path) if any(
        "replica-1" in str(getattr(e, "value", "")) for e in _descendants(b)
        if type(e).__name__ == "Markdown"))
    assert not any(getattr(e, "key", None) == "replicas" for e in _descendants(box))
    errors = [as_read(e.value) for e in _descendants(box) if type(e).__name__ == "Error"]
    assert any("replica 1" in m and "below the primary" in m for m in errors), errors
    # ... and not beside another field
    beside = [as_read(e.value) for e in at.error]
    assert beside.count(errors[0]) == 1  # shown once, in that box


def test_compare_table_neutralises_formula_names(tmp_path):
    """Issue 21: every exported table (the compare table has a "Download as CSV") keeps a
    saved name that looks like a formula as text (OWASP CSV injection)."""
    at = new_app()
    go(at, "saved")
    for name in ("=HYPERLINK(x)", "@SUM(a)"):
        at.text_input(key="save_name").input(name)
        at.button[0].click()
        at.run()
    assert sorted(s.name for s in store.ScenarioStore().list()) == ["=HYPERLINK(x)", "@SUM(a)"]
    rows = at.dataframe[0].value
    assert sorted(rows["scenario"]) == ["'=HYPERLINK(x)", "'@SUM(a)"]
