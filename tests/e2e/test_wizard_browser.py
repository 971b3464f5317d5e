"""The wizard in real headless Chromium against `streamlit run app.py`: walk the steps,
see the charts, download the engine module and open a shared link in a fresh page.

Screenshots of every step land in tests/artifacts/e2e/.
"""

from __future__ import annotations

import pytest

from tests.support import OVERFLOW_JS, link_params, settle, step, top, visit_step
from wizard.core import plan
from wizard.scenario import links

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_walk_the_wizard_download_and_share(app_url, browser, artifacts):
    context = browser.new_context(viewport={"width": 1366, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    # First screen: a result already, for the defaults.
    default = plan.recommend(links.from_flat({"provider": "aws-rds",
                                                "instance_class": "db.r6g.large"}))
    assert metric(page, "pool_size") == str(default.services[0].rec.engines[0].pool_size)
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
    rec = plan.recommend(links.from_flat(params))
    # 8 instances at peak (6 + 25% surge) x 4 workers = 32 engines share 410 usable
    assert rec.endpoints[0].clients == 32
    assert metric(page, "pool_size") == str(rec.services[0].rec.engines[0].pool_size)
    assert metric(page, "database sees at peak") == f"{rec.endpoints[0].worst_case:,}"
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.first.locator("canvas, svg").first.wait_for(timeout=15_000)
    assert charts.count() == 1  # the open chart tab only: the others are built on click
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
    assert metric(fresh, "pool_size") == str(rec.services[0].rec.engines[0].pool_size)
    assert metric(fresh, "database sees at peak") == f"{rec.endpoints[0].worst_case:,}"
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
    notice = page.locator('[data-testid="stAlert"]').first.inner_text()
    assert "could not be read" in notice and "Workers per instance" in notice
    assert page.locator('[data-testid="stException"]').count() == 0
    assert link_params(page.url) == {"provider": "aws-rds", "instance_class": "db.r6g.large"}
    page.screenshot(path=str(artifacts / "8-tampered-link.png"), full_page=True)
    page.close()


WALK = {"provider": "aws-rds", "instance_class": "db.r6g.large", "replicas": "1",
        "replica_instance_class": "db.r6g.xlarge", "max_app_instances": "10", "workers": "4",
        "rps": "50", "hold_ms": "20"}
TRACKERS = {"utm_source": "slack", "utm_medium": "chat", "fbclid": "IwAR0x", "gclid": "Cj0K"}
STEPS = ("1 Database", "2 Proxy", "3 Fleet", "4 Load", "5 Results", "6 Export",
         "Saved & compare", "Live check")


@pytest.mark.parametrize("width", [1440, 390])
def test_answer_first_at_desktop_and_phone_width_with_a_tracked_link(app_url, browser,
                                                                      artifacts, width):
    from urllib.parse import urlencode

    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(f"{app_url}/?{urlencode(WALK | TRACKERS)}")
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    # the tracker parameters are dropped, the scenario is kept: no notice, same link
    assert page.locator('[data-testid="stAlert"]').filter(
        has_text="could not be read").count() == 0
    assert link_params(page.url) == WALK
    rec = plan.recommend(links.from_flat(WALK))
    for label in STEPS:
        name = label.split(" ")[0] if label[0].isdigit() else label.split(" ")[0].lower()
        visit_step(page, label, width, artifacts / f"w{width}-{name}.png")
        if label == "3 Fleet" and width < 640:
            # on a phone the result so far is one line above the inputs, with a jump link
            brief = page.locator(".st-key-phone_summary")
            assert brief.is_visible()
            assert f"sees {rec.endpoints[0].worst_case:,}" in brief.inner_text()
            assert top(brief) < top(page.locator(".st-key-workers"))
            # its link jumps to the full card below the inputs
            assert page.locator("#result-so-far").count() == 1
            brief.get_by_role("link").click()
            page.wait_for_timeout(500)
            card = page.locator(".st-key-result_so_far").bounding_box()
            assert card and 0 <= card["y"] < 900
        elif label == "3 Fleet":
            assert not page.locator(".st-key-phone_summary").is_visible()
        if label == "5 Results":
            answer = page.locator(".st-key-answer")
            assert metric(page, "pool_size") == str(rec.services[0].rec.engines[0].pool_size)
            assert metric(page, "database sees at peak") == f"{rec.endpoints[0].worst_case:,}"
            # the answer card starts within the first screenful
            page.locator('[data-testid="stMain"]').evaluate("m => m.scrollTo(0, 0)")
            assert answer.bounding_box()["y"] < 900
            first_chart = page.locator('[data-testid="stVegaLiteChart"]')
            page.locator('[data-testid="stExpander"] summary').filter(
                has_text="Engine settings").click()
            table = page.locator('[data-testid="stTable"]')
            table.first.wait_for(timeout=10_000)
            assert top(answer) < top(first_chart) < top(table)
            problems = page.evaluate(OVERFLOW_JS)
            assert not problems, (width, problems)
    context.close()


def test_urls_in_visitor_text_are_never_links(app_url, browser):
    # Streamlit's Markdown links bare URLs and addresses after parsing, escapes or not.
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    source = "measured see http://evil.example/x and www.evil.test"
    page.goto(f"{app_url}/?provider=self-hosted&max_connections=100&"
              f"max_connections_source={source.replace(' ', '+')}")
    page.wait_for_selector(".st-key-step", timeout=30_000)
    settle(page)
    shown = " ".join(page.locator('[data-testid="stCaptionContainer"]').all_inner_texts())
    assert "evil.example/x" in shown  # the visitor's note is there, as text
    hrefs = [a.get_attribute("href") or "" for a in page.locator("a").all()]
    assert not [h for h in hrefs if "evil" in h]
    page.close()
