"""The live step in real headless Chromium against `streamlit run app.py` and the real
PostgreSQL fixture: measured against assumed and connections by service after a check, and
the Host-header guard (POOLWISE_ALLOWED_HOSTS) as a browser meets it.

Screenshots land in tests/artifacts/e2e/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import IDLE, ROOT, settle, step
from wizard.core import plan
from wizard.fleet.pgserver import PgServer, free_port
from wizard.scenario import links
from wizard.web.local import start_streamlit, stop, wait_healthy

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]

QUERY = {"provider": "aws-rds", "instance_class": "db.r6g.large", "app_instances": "6",
         "workers": "2"}


@pytest.fixture(scope="module")
def guarded_url(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """The app serving 127.0.0.1 only (POOLWISE_ALLOWED_HOSTS), with the fixture ports
    allowed for the live check."""
    port = free_port()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path_factory.mktemp("xdg")),
           "POOLWISE_ALLOWED_HOSTS": "127.0.0.1", "POOLWISE_LIVE_ALLOWED_PORTS": "1024-65535"}
    for name in ("POOLWISE_STORE_URL", "POOLWISE_LIVE_DISABLED", "POOLWISE_PUBLIC_URL"):
        env.pop(name, None)
    proc = start_streamlit(ROOT / "app.py", port, env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}", port
    finally:
        stop(proc)


def test_measured_against_assumed_in_the_browser(guarded_url, browser, artifacts,
                                                 pg: PgServer) -> None:
    base, _ = guarded_url
    measured = int(pg.psql("SHOW max_connections").strip())
    before = plan.recommend(links.from_flat(QUERY)).services[0].rec.engine("primary")
    after = plan.recommend(links.from_flat({**QUERY, "max_connections": str(measured)}))
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        page.goto(f"{base}/?{links.to_query(links.from_flat(QUERY))}")
        page.wait_for_selector(IDLE, timeout=30_000)
        step(page, "Live check")
        url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
        page.locator(".st-key-live_url input").fill(url)
        page.locator(".st-key-live_password input").fill(pg.password)
        page.get_by_role("button", name="Run the live check").click()
        settle(page)
        page.get_by_text("You assumed max_connections").wait_for(timeout=30_000)
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
        page.get_by_text("is counted as its own").wait_for(timeout=30_000)
        text = page.locator('[data-testid="stMain"]').inner_text()
        a = after.services[0].rec.engine("primary")
        assert f"the server says {measured:,}" in text
        assert (f"pool {before.pool_size} + {before.max_overflow} becomes "
                f"{a.pool_size} + {a.max_overflow}") in text
        assert pg.password not in text
        # Connections by service: the flags form's one service ("app") against its plan.
        assert "Connections by service on primary" in text
        assert "every connection but the live check's is counted as its own" in text
        assert page.locator(".st-key-live_url input").input_value() == url
        assert page.locator(".st-key-live_password input").input_value() == ""
        page.screenshot(path=str(artifacts / "live-measured-vs-assumed.png"), full_page=True)
    finally:
        page.close()


def test_unlisted_host_header_gets_no_live_check(guarded_url, browser, artifacts) -> None:
    """The same server opened as "localhost" (a name a rebinding page could use): the page
    works, the live check is off."""
    _, port = guarded_url
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        page.goto(f"http://localhost:{port}/")
        page.wait_for_selector(IDLE, timeout=30_000)
        step(page, "Live check")
        page.get_by_text("address this deployment does not serve").wait_for(timeout=10_000)
        assert page.locator(".st-key-live_url").count() == 0
        page.screenshot(path=str(artifacts / "live-unlisted-host.png"), full_page=True)
    finally:
        page.close()
