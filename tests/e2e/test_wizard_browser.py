"""The wizard in real headless Chromium against `streamlit run app.py`: walk the steps,
see the charts, download the engine module and open a shared link in a fresh page.

Screenshots of every step land in tests/artifacts/e2e/.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from wizard import share, sizing

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def settle(page) -> None:
    """Wait for the script run that an interaction started to finish."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector('[data-test-script-state="running"]', timeout=700)
    except PlaywrightTimeout:
        pass  # the run was already over (or never needed)
    page.wait_for_selector(IDLE, timeout=20_000)


def pick(page, key: str, text: str) -> None:
    """Choose an option of a selectbox by typing part of its label."""
    box = page.locator(f".st-key-{key} input[role='combobox']")
    box.click()
    box.fill(text)
    page.locator("[role='option']").filter(has_text=text).first.click()
    settle(page)


def number(page, key: str, value: int) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Enter")
    settle(page)


def step(page, label: str) -> None:
    page.locator(".st-key-step label").filter(has_text=label).click()
    settle(page)


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def link_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_walk_the_wizard_download_and_share(app_url, browser, artifacts):
    context = browser.new_context(viewport={"width": 1366, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    # First screen: a result already, for the defaults.
    default = sizing.recommend(share.from_flat({"provider": "aws-rds",
                                                "instance_class": "db.r6g.large"}))
    assert metric(page, "pool_size") == str(default.engines[0].pool_size)
    page.screenshot(path=str(artifacts / "1-database-default.png"), full_page=True)

    pick(page, "provider", "Azure")
    pick(page, "instance_class", "B2s ·")
    # Azure's documented B2s default: 429 max_connections, 15 reserved by Azure, 3 + 1 ours
    assert metric(page, "usable") == str(429 - 15 - 3 - 1)
    page.screenshot(path=str(artifacts / "1-database-azure.png"), full_page=True)

    step(page, "2 Proxy")
    page.screenshot(path=str(artifacts / "2-proxy.png"), full_page=True)
    step(page, "3 Fleet")
    number(page, "workers", 4)
    number(page, "max_app_instances", 6)
    page.screenshot(path=str(artifacts / "3-fleet.png"), full_page=True)
    step(page, "4 Load")
    page.screenshot(path=str(artifacts / "4-load.png"), full_page=True)

    step(page, "5 Results")
    params = link_params(page.url)
    assert params == {"provider": "azure-flexible", "instance_class": "B2s",
                      "max_app_instances": "6", "workers": "4"}
    rec = sizing.recommend(share.from_flat(params))
    # 8 instances at peak (6 + 25% surge) x 4 workers = 32 engines share 410 usable
    assert rec.endpoints[0].clients == 32
    assert metric(page, "pool_size") == str(rec.engines[0].pool_size)
    assert metric(page, "worst case") == f"{rec.endpoints[0].worst_case:,}"
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.first.locator("canvas, svg").first.wait_for(timeout=15_000)
    assert charts.count() >= 2
    box = charts.first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 60
    page.screenshot(path=str(artifacts / "5-results.png"), full_page=True)
    charts.first.scroll_into_view_if_needed()
    charts.first.screenshot(path=str(artifacts / "5-budget-chart-light.png"))

    step(page, "6 Export")
    page.screenshot(path=str(artifacts / "6-export.png"), full_page=True)
    export = pytest.importorskip("wizard.export")
    with page.expect_download() as info:
        page.locator(".st-key-download_module button").click()
    download = info.value
    assert download.suggested_filename == "db.py"
    body = open(download.path(), encoding="utf-8").read()
    # The download links back to the address the browser used (no POOLWISE_PUBLIC_URL set).
    assert body == export.render_module(rec, share_base=app_url)

    # A colleague opens the link in a fresh browser context (in dark mode): same scenario,
    # same numbers.
    shared = page.url
    fresh = browser.new_context(viewport={"width": 1366, "height": 900},
                                color_scheme="dark").new_page()
    fresh.goto(shared)
    fresh.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(fresh)
    assert "Azure" in fresh.locator(".st-key-provider input").input_value()
    step(fresh, "5 Results")
    assert metric(fresh, "pool_size") == str(rec.engines[0].pool_size)
    assert metric(fresh, "worst case") == f"{rec.endpoints[0].worst_case:,}"
    assert link_params(fresh.url) == params
    fresh.screenshot(path=str(artifacts / "7-shared-link-dark.png"), full_page=True)
    dark_chart = fresh.locator('[data-testid="stVegaLiteChart"]').first
    dark_chart.locator("canvas, svg").first.wait_for(timeout=15_000)
    dark_chart.scroll_into_view_if_needed()
    dark_chart.screenshot(path=str(artifacts / "7-budget-chart-dark.png"))
    fresh.context.close()
    context.close()


def test_tampered_link_shows_a_notice_not_a_crash(app_url, browser, artifacts):
    page = browser.new_page()
    page.goto(f"{app_url}/?provider=aws-rds&workers=lots")
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    assert "could not be read" in page.locator('[data-testid="stAlert"]').first.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert link_params(page.url) == {"provider": "aws-rds", "instance_class": "db.r6g.large"}
    page.screenshot(path=str(artifacts / "8-tampered-link.png"), full_page=True)
    page.close()
