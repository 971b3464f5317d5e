"""Several services in real headless Chromium at 1440 and 390 px: a shared link with three
services opens with every service's numbers (the core's), the services table and the
charts fit the screen, a service is added with its button, and each service's module
downloads as wizard.export renders it.

Screenshots land in tests/artifacts/e2e/ (services-w<width>-<step>.png).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.support import OVERFLOW_JS, charts_drawn, link_params, settle, step, top, visit_step
from tests.support import SERVICES_ESTATE as ESTATE
from wizard.core import plan, projection
from wizard.scenario import links

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("width", [1440, 390])
def test_services_link_results_and_exports_fit_the_screen(app_url, browser, artifacts,
                                                          width):
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.goto(f"{app_url}/?{urlencode(ESTATE)}")
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    assert link_params(page.url) == ESTATE
    rec = plan.recommend(links.from_flat(ESTATE))
    for label in ("1 Database", "3 Fleet", "4 Load", "5 Results", "6 Export"):
        visit_step(page, label, width, artifacts / f"services-w{width}-{label.split(' ')[0]}.png")
        if label == "3 Fleet":
            # Each service a form: its essentials on screen, side by side, none cut off.
            for i in (1, 2, 3):
                for key in ("name", "kind", "app_instances", "max_app_instances", "workers"):
                    field = page.locator(f".st-key-s{i}_{key}")
                    field.wait_for(timeout=10_000)
                    box = field.bounding_box()
                    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 1
            one = page.locator(".st-key-s1_app_instances").bounding_box()
            most = page.locator(".st-key-s1_max_app_instances").bounding_box()
            assert one and most and abs(one["y"] - most["y"]) < 2  # paired, also on a phone
        if label == "5 Results":
            # The answer table: every service's pool on every endpoint it uses.
            rows = page.locator("table.answer_table tbody tr")
            shown = [(rows.nth(i).get_attribute("data-service"),
                      rows.nth(i).locator("td[data-label='pool_size']").inner_text(),
                      rows.nth(i).locator("td[data-label='max_overflow']").inner_text())
                     for i in range(rows.count())]
            want = [(svc.name, str(b.pool_size), str(b.max_overflow))
                    for svc in rec.services for role in svc.endpoints
                    for b in rec.endpoint(role).by_service if b.service == svc.name]
            assert shown == want
            answer = page.locator(".st-key-answer")
            assert projection.break_sentence(rec) in answer.inner_text()
            assert top(answer) < top(page.locator('[data-testid="stVegaLiteChart"]'))
            page.get_by_role("tab", name="Which service breaks it").click()
            settle(page)
            charts_drawn(page)
            assert not page.evaluate(OVERFLOW_JS)
            chart = page.locator('[data-testid="stVegaLiteChart"]').first
            chart.scroll_into_view_if_needed()
            chart.screenshot(path=str(artifacts / f"services-w{width}-scale-chart.png"))
        if label == "6 Export" and width == 1440:
            export = pytest.importorskip("wizard.export")
            svc = rec.service("worker")
            with page.expect_download() as info:
                page.locator(".st-key-download_module_worker button").click()
            assert info.value.suggested_filename == "db_worker.py"
            body = open(info.value.path(), encoding="utf-8").read()
            assert body == export.render_module(rec, share_base=app_url, service=svc.name)
            assert '"application_name": "worker"' in body
    # A fourth service joins with one click; the link carries it.
    step(page, "3 Fleet")
    page.locator(".st-key-services_add button").click()
    settle(page)
    params = link_params(page.url)
    assert params["s4_name"] == "jobs" and params["s4_kind"] == "worker"
    assert not page.evaluate(OVERFLOW_JS)
    context.close()
