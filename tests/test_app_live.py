"""The live step (issue 20): a port refusal says the port is the reason and names the
setting that allows ports; applying the measured values says what changed, right where the
button is, and the answer table shows the new state.
"""

from __future__ import annotations

import pytest

from tests.support import go, new_app, no_exception, run_check, shown, table_rows, url_of
from tests.support import live_app as app
from wizard.core import plan
from wizard.fleet.pgserver import PgServer
from wizard.scenario import links
from wizard.ui import live


@pytest.fixture(autouse=True)
def _isolated(isolated_app):
    """Every test here runs the app isolated (tests/conftest.py)."""


def page_order(at) -> list[tuple[str, str]]:
    """(element type, its key or value) of the main area, in page order."""
    out: list[tuple[str, str]] = []

    def walk(node):
        kind = getattr(node, "type", "")
        if kind == "button":
            out.append((kind, str(node.key)))
        elif kind in ("success", "info", "error", "warning"):
            out.append((kind, str(node.value)))
        for child in getattr(node, "children", {}).values():
            walk(child)

    for node in at.main.children.values():
        walk(node)
    return out


def test_a_refused_port_is_named_as_the_reason_with_the_setting(monkeypatch):
    pytest.importorskip("wizard.live")
    monkeypatch.delenv("POOLWISE_LIVE_ALLOWED_PORTS", raising=False)
    at = go(new_app(), "live")
    at.text_input(key="live_url").input("postgresql://u@127.0.0.1:6379/d")
    at.text_input(key="live_password").input("pw")
    next(b for b in at.button if b.label == "Run the live check").click()
    at.run()
    no_exception(at)
    (err,) = [str(e.value) for e in at.error]
    assert "because of the port" in err and "port 6379" in err
    assert "POOLWISE_LIVE_ALLOWED_PORTS" in " ".join(str(e.value) for e in at.info)


def test_changes_are_worded_from_the_values_before_and_after():
    before = {"max_connections": "1741", "pg_version": "16"}
    assert live.changes(before, {"max_connections": "100", "pg_version": "16",
                                 "superuser_reserved": "3"}) == [
        "max_connections 1741 → 100", "superuser_reserved_connections not set → 3"]


@pytest.mark.db
def test_applying_says_what_changed_beside_the_button_and_the_table_follows(pg: PgServer):
    query = {"provider": "aws-rds", "instance_class": "db.r6g.large", "app_instances": "6",
             "workers": "2"}
    measured = int(pg.psql("SHOW max_connections").strip())
    at = run_check(app(query), url_of(pg), pg.password)
    no_exception(at)
    at.button(key="live_apply").click().run()
    no_exception(at)
    text = shown(at)
    assert f"max_connections not set → {measured}" in text
    assert "Every step, the answer table and the findings now use them" in text
    # The message sits just after the apply button (where the visitor clicked), not above
    # the form.
    order = page_order(at)
    applied = next(i for i, (k, v) in enumerate(order) if k == "success" and "Applied" in v)
    button = order.index(("button", "live_apply"))
    form = order.index(("button", "FormSubmitter:live_form-Run the live check"))
    assert form < button < applied
    rec = plan.recommend(links.from_flat(dict(at.query_params)))
    assert rec.endpoint("primary").max_connections == measured
    go(at, "results")
    (row,) = table_rows(at)
    ep = rec.endpoint("primary")
    assert row["sees at everyone's peak"].startswith(f"{ep.worst_case:,} of {ep.usable:,}")


def test_a_transaction_pooler_the_plan_already_uses_is_said_to_match():
    from types import SimpleNamespace

    detected = SimpleNamespace(
        kind="transaction-pooler", named_statements_break=True, cache_off_works=True,
        driver_error='prepared statement "__asyncpg_stmt_1__" does not exist',
        message="A transaction-mode pooler: ... Pick a transaction-mode proxy type (...).")
    planned = plan.recommend(links.from_flat({
        "provider": "self-hosted", "instance_class": "default", "max_connections": "300",
        "proxy": "pgbouncer-transaction"}))
    words = live.pooler_words(detected, planned, "primary")
    assert "matches the plan (pgbouncer-transaction)" in words and "Pick" not in words
    assert "statement caches off, which works (checked)" in words
    direct = plan.recommend(links.from_flat({
        "provider": "self-hosted", "instance_class": "default", "max_connections": "300"}))
    assert live.pooler_words(detected, direct, "primary") == detected.message
