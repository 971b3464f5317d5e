"""The live step against the plan (issue 11): measured vs assumed, what one click changes,
the exhaustion proof in words, the URL kept (never the password), each replica checkable.

Driven through AppTest against the real PostgreSQL fixture (max_connections 60). Expected
figures come from the server (SHOW max_connections) and from the core's recommendation of
the scenario with that value put in by hand, never from the step's own output.
"""

from __future__ import annotations

import pytest

from tests.support import live_app as app
from tests.support import run_check, shown, url_of
from wizard.core import plan
from wizard.fleet.pgserver import PgServer
from wizard.scenario import links

pytestmark = pytest.mark.db


@pytest.fixture(autouse=True)
def _isolated(isolated_app):
    """Every test here runs the app isolated (tests/conftest.py)."""


def test_measured_against_assumed_and_what_the_click_changes(pg: PgServer) -> None:
    query = {"provider": "aws-rds", "instance_class": "db.r6g.large", "app_instances": "6",
             "workers": "2"}
    measured = int(pg.psql("SHOW max_connections").strip())
    before = plan.recommend(links.from_flat(query))
    after = plan.recommend(links.from_flat({**query, "max_connections": str(measured)}))
    at = run_check(app(query), url_of(pg), pg.password)
    assert not at.exception
    text = shown(at)
    b, a = before.services[0].rec.engine("primary"), after.services[0].rec.engine("primary")
    assert (f"You assumed max_connections {before.endpoint('primary').max_connections:,}"
            in text)
    assert f"the server says {measured:,}" in text
    assert f"pool {b.pool_size} + {b.max_overflow} becomes {a.pool_size} + {a.max_overflow}" \
        in text
    assert "This sets on the Database step: max_connections " + str(measured) in text
    at.button(key="live_apply").click().run()
    assert dict(at.query_params)["max_connections"] == str(measured)


def test_url_stays_in_the_field_the_password_never(pg: PgServer) -> None:
    at = run_check(app({"provider": "aws-rds", "instance_class": "db.r6g.large"}),
                   url_of(pg), pg.password)
    assert at.text_input(key="live_url").value == url_of(pg)
    assert not at.text_input(key="live_password").value
    with_secret = f"postgresql://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{pg.database}"
    at = run_check(at, with_secret, "")
    assert at.text_input(key="live_url").value == ""  # a URL holding a password is dropped
    assert pg.password not in shown(at)


def test_each_replica_can_be_checked(pg: PgServer) -> None:
    # Aurora readers keep their own max_connections (an RDS replica smaller than its
    # primary is refused: hot standby), so the measured value can stand for one.
    query = {"provider": "aws-aurora", "instance_class": "db.r6g.large", "replicas": "2"}
    measured = int(pg.psql("SHOW max_connections").strip())
    at = run_check(app(query), url_of(pg), pg.password, role="replica-2")
    assert not at.exception
    assert "on replica-2" in shown(at)
    at.button(key="live_apply").click().run()
    params = dict(at.query_params)
    assert params["replica_max_connections"].split(",")[1] == str(measured)
    assert "max_connections" not in params  # the primary keeps its own


def test_exhaustion_result_in_words(pg: PgServer) -> None:
    query = {"provider": "self-hosted", "max_connections": "60", "app_instances": "20",
             "workers": "2"}
    eng = plan.recommend(links.from_flat(query)).services[0].rec.engine("primary")
    at = run_check(app(query), url_of(pg), pg.password, exhaust=True)
    assert not at.exception
    text = shown(at)
    assert f"the pool held {eng.pool_size + eng.max_overflow} connections" in text
    assert "failed with TimeoutError" in text and f"pool_timeout {eng.pool_timeout:g} s" in text


def test_web_fixes_never_name_cli_settings(pg: PgServer) -> None:
    at = run_check(app({"provider": "aws-rds", "instance_class": "db.r6g.large"}),
                   url_of(pg), "wrong-password")
    text = shown(at)
    assert "Fix" in text
    assert "POOLWISE_" not in text and "--" not in text and "python -m" not in text


def test_url_is_still_there_after_visiting_another_step(pg: PgServer) -> None:
    at = run_check(app({"provider": "aws-rds", "instance_class": "db.r6g.large"}),
                   url_of(pg), pg.password)
    at.radio(key="step").set_value("database").run()
    at.radio(key="step").set_value("live").run()
    assert at.text_input(key="live_url").value == url_of(pg)
    assert not at.text_input(key="live_password").value


def test_blank_password_never_borrows_the_servers(pg: PgServer, monkeypatch,
                                                  tmp_path) -> None:
    """Finding 1 through the web form: the server's PGPASSWORD, PGPASSFILE, ~/.pgpass and
    POOLWISE_LIVE_PASSWORD all hold the real password; a blank field still fails auth."""
    line = f"*:*:*:*:{pg.password}\n"
    (tmp_path / "pgpass").write_text(line)
    (tmp_path / "pgpass").chmod(0o600)
    (tmp_path / ".pgpass").write_text(line)
    (tmp_path / ".pgpass").chmod(0o600)
    for name, value in (("PGPASSWORD", pg.password), ("PGPASSFILE", str(tmp_path / "pgpass")),
                        ("HOME", str(tmp_path)), ("POOLWISE_LIVE_PASSWORD", pg.password)):
        monkeypatch.setenv(name, value)
    at = run_check(app({"provider": "aws-rds", "instance_class": "db.r6g.large"}),
                   url_of(pg), "")
    assert not at.exception
    assert not [m for m in at.metric if "measured" in m.label]
    assert any("rejected the password" in str(e.value) for e in at.error)
