"""The estate's answer at a glance, in real headless Chromium: a link with three services and
a replica opens, Results shows one table whose pool_size and max_overflow for every service
on every endpoint it uses are within the first screen at 1440x900, equal to
`python -m wizard recommend --scenario FILE --json` for the same estate; at 390x844 the first
service's row is within the first screen and nothing scrolls sideways.

Screenshots of both widths are written to docs/ (answer-w1440.png, answer-w390.png), the
ones the README shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support import ESTATE, OVERFLOW_JS, link_params, settle, step
from wizard.scenario import files, links

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SIZES = {1440: (1440, 900), 390: (390, 844)}


def cli_answer(tmp_path: Path) -> list[tuple[str, str, str, str]]:
    """(service, endpoint, pool_size, max_overflow) from the command line's JSON."""
    path = tmp_path / "estate.toml"
    path.write_text(files.dump(links.from_flat(ESTATE)))
    out = subprocess.run([sys.executable, "-m", "wizard", "recommend", "--scenario",
                          str(path), "--json"], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    data = json.loads(out.stdout)
    return [(svc["name"], eng["endpoint"], str(eng["pool_size"]), str(eng["max_overflow"]))
            for svc in data["services"] for eng in svc["engines"]]


ROWS_JS = """() => [...document.querySelectorAll('table.answer_table tbody tr')].map(tr => {
  const cell = (label) => tr.querySelector(`td[data-label="${label}"]`);
  const box = (el) => { const r = el.getBoundingClientRect();
                        return [r.top, r.bottom, r.left, r.right]; };
  return {service: tr.dataset.service, endpoint: tr.dataset.endpoint,
          pool_size: cell('pool_size').innerText.trim(),
          max_overflow: cell('max_overflow').innerText.trim(),
          boxes: [box(cell('pool_size')), box(cell('max_overflow')), box(tr)]};
})"""


@pytest.mark.parametrize("width", [1440, 390])
def test_estate_answer_table_in_the_first_screen(app_url, browser, tmp_path, width):
    w, h = SIZES[width]
    page = browser.new_context(viewport={"width": w, "height": h}).new_page()
    page.goto(f"{app_url}/?{urlencode(ESTATE)}")
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    assert link_params(page.url) == links.to_flat(links.from_flat(ESTATE))
    step(page, "5 Results")
    page.locator("table.answer_table").wait_for(timeout=15_000)
    page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                  " if (m) m.scrollTop = 0; window.scrollTo(0, 0); }")
    page.wait_for_timeout(300)
    rows = page.evaluate(ROWS_JS)
    want = cli_answer(tmp_path)
    shown = [(r["service"], r["endpoint"], r["pool_size"], r["max_overflow"]) for r in rows]
    assert shown == want
    assert len({s for s, *_ in want}) == 3 and any(e == "replica-1" for _, e, *_ in want)
    on_screen = rows if width == 1440 else rows[:1]
    for r in on_screen:
        for top, bottom, left, right in r["boxes"][:2]:
            assert 0 <= top and bottom <= h, (r["service"], r["endpoint"], top, bottom)
            assert 0 <= left and right <= w, (r["service"], r["endpoint"], left, right)
    problems = page.evaluate(OVERFLOW_JS)
    assert not problems, problems
    DOCS.mkdir(exist_ok=True)
    # The main area as it first shows (the sidebar's link would carry this run's port).
    page.locator('[data-testid="stMain"]').screenshot(path=str(DOCS / f"answer-w{width}.png"))
    # The share link: in the sidebar on a laptop, from the page itself on a phone.
    share_button = page.locator(".st-key-phone_share button")
    if width == 390:
        share_button.click()
        link = page.locator("[data-testid='stPopoverBody'] code").first
        link.wait_for(timeout=10_000)
        assert "s1_name=api" in link.inner_text().replace("\n", "")
    else:
        assert not share_button.is_visible()
    page.close()


# Every word of a label, a table header or a metric label on one line: none is broken
# mid-word ("max_connec / tions") or cut by an ellipsis.
BROKEN_WORDS_JS = """() => {
  const out = [];
  const sel = ['[data-testid="stWidgetLabel"]', 'table.answer_table th',
               '[data-testid="stMetricLabel"]', 'table.answer_table td[data-label]'];
  for (const el of document.querySelectorAll(
      sel.map(s => '[data-testid="stMain"] ' + s).join(', '))) {
    if (!el.getClientRects().length) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      let at = 0;
      for (const part of node.textContent.split(/(\\s+)/)) {
        if (part.trim().length > 3) {
          const r = document.createRange();
          r.setStart(node, at);
          r.setEnd(node, at + part.length);
          const tops = new Set([...r.getClientRects()].filter(x => x.width > 0)
                               .map(x => Math.round(x.top)));
          if (tops.size > 1) out.push(part);
        }
        at += part.length;
      }
    }
    const p = el.querySelector('p') || el;
    if (p.scrollWidth > p.clientWidth + 1 && getComputedStyle(p).textOverflow === 'ellipsis')
      out.push('cut: ' + p.innerText);
  }
  return out;
}"""


@pytest.mark.parametrize("width", [1440, 390])
def test_no_label_is_broken_mid_word(app_url, browser, width):
    w, h = SIZES[width]
    page = browser.new_context(viewport={"width": w, "height": h}).new_page()
    page.goto(f"{app_url}/?{urlencode(ESTATE)}")
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    for label in ("1 Database", "3 Fleet", "5 Results"):
        step(page, label)
        broken = page.evaluate(BROKEN_WORDS_JS)
        assert not broken, (label, width, broken)
    page.close()


def _fleet_step(app_url, browser, width: int, height: int):
    """A page of the estate's link at this size, on step 3."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{app_url}/?{urlencode(ESTATE)}")
    page.wait_for_selector(".st-key-provider", timeout=30_000)
    settle(page)
    step(page, "3 Fleet")
    return page


def test_a_fraction_typed_in_a_service_field_is_kept_and_refused_beside_it(app_url, browser):
    page = _fleet_step(app_url, browser, 390, 844)
    field = page.locator(".st-key-s1_app_instances input")
    field.fill("2.5")
    field.press("Enter")
    settle(page)
    assert page.locator(".st-key-s1_app_instances input").input_value() == "2.5"
    alert = page.locator(".st-key-service_1 [data-testid='stAlert']")
    assert "must be a whole number, got '2.5'" in alert.inner_text()
    # Beside the field: the refusal is drawn right under the service's row.
    box, where = alert.bounding_box(), page.locator(".st-key-s1_app_instances").bounding_box()
    assert box and where and 0 < box["y"] - (where["y"] + where["height"]) < 120
    page.close()


def test_removing_a_service_moves_the_next_one_up_in_the_fields(app_url, browser):
    page = _fleet_step(app_url, browser, 1440, 900)
    page.locator(".st-key-services_remove_1 button").first.click()
    settle(page)
    assert page.locator(".st-key-s1_name input").input_value() == "queue"
    assert page.locator(".st-key-s1_workers input").input_value() == "8"
    assert page.locator(".st-key-s2_name input").input_value() == "nightly"
    assert page.locator(".st-key-s3_name").count() == 0
    params = link_params(page.url)
    assert params["s1_name"] == "queue" and "s3_name" not in params
    page.close()
