"""Helpers shared by the test modules, in one place: a test module imports helpers from here
(and wizard.fleet.pgserver, tests/fakepg.py, tests/installed.py), never from another test
module (tests/test_layout.py checks it).

- paths and the export scenarios: every provider x proxy the export must get right;
- the app through Streamlit's AppTest: open it, change step, read what it shows;
- random scenarios for the property tests;
- the browser tests' page helpers (Playwright is imported only when one runs).
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from hypothesis import strategies as st

from wizard.core.model import Load, Recommendation, Scenario
from wizard.core.plan import recommend
from wizard.fleet.pgserver import PgServer
from wizard.scenario import links
from wizard.ui import answer
from wizard.ui.text import as_read

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
RUFF = ROOT / ".venv" / "bin" / "ruff"

# --- the export scenarios --------------------------------------------------------------------

# Every provider x proxy combination the export must get right, as CLI/share parameters.
SCENARIOS: dict[str, dict[str, str]] = {
    "direct-rds": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                   "app_instances": "4", "workers": "2"},
    "rds-iam": {"provider": "aws-rds", "instance_class": "db.r6g.large", "iam_auth": "1"},
    "aurora-rds-proxy-iam": {"provider": "aws-aurora", "instance_class": "db.r6g.large",
                             "proxy": "rds-proxy", "iam_auth": "1", "app_instances": "6"},
    "rds-proxy": {"provider": "aws-rds", "instance_class": "db.r6g.large", "proxy": "rds-proxy",
                  "app_instances": "10", "workers": "4"},
    "pgbouncer-tx-1.18": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                          "proxy": "pgbouncer-transaction", "pgbouncer_version": "1.18",
                          "app_instances": "4", "workers": "2"},
    "pgbouncer-tx-1.24": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                          "proxy": "pgbouncer-transaction", "pgbouncer_version": "1.24",
                          "app_instances": "4", "workers": "2"},
    "pgbouncer-session": {"provider": "self-hosted", "max_connections": "200",
                          "proxy": "pgbouncer-session", "pgbouncer_version": "1.18",
                          "pgbouncer_pool_size": "60", "pgbouncer_reserve_pool": "5",
                          "app_instances": "3", "workers": "2"},
    "azure-pgbouncer": {"provider": "azure-flexible", "instance_class": "D4s_v3",
                        "proxy": "azure-pgbouncer", "app_instances": "4"},
    "azure-entra": {"provider": "azure-flexible", "instance_class": "D4s_v3",
                    "iam_auth": "1"},
    "supavisor-tx": {"provider": "supabase", "instance_class": "Micro",
                     "proxy": "supavisor-transaction"},
    "neon-pooler": {"provider": "neon", "instance_class": "0.5cu", "proxy": "neon-pooler"},
    "cloudsql-auth-proxy": {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
                            "proxy": "cloudsql-auth-proxy", "network": "gcp-vpc"},
    "cloudsql-connector": {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
                           "proxy": "cloudsql-connector", "iam_auth": "1"},
    "lambda-rds-proxy": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                         "proxy": "rds-proxy", "serverless_concurrency": "200"},
    "two-replicas": {"provider": "aws-rds", "instance_class": "db.r6g.large", "replicas": "2",
                     # RDS replicas need at least the primary's max_connections (hot standby).
                     "replica_instance_class": "db.r6g.xlarge,db.r6g.large",
                     "app_instances": "6", "workers": "2"},
    "pgbouncer-tx-replica": {"provider": "self-hosted", "max_connections": "300",
                             "proxy": "pgbouncer-transaction", "pgbouncer_version": "1.18",
                             "replicas": "1", "replica_max_connections": "400",
                             "pgbouncer_reserve_pool": "3", "user_db_pairs": "2",
                             "app_instances": "8", "workers": "3"},
}


# Poolers that cannot keep asyncpg's prepared statements. Neon's pooler can (PgBouncer 1.22+,
# max_prepared_statements=1000), so it is not here: the local PgBouncer 1.18 cannot stand in.
TRANSACTION_POOLER_SCENARIOS = ("pgbouncer-tx-1.18", "azure-pgbouncer", "supavisor-tx")


def rec_for(name: str) -> Recommendation:
    return recommend(links.from_flat(SCENARIOS[name]))


def load_module(path: Path, name: str) -> ModuleType:
    """Import a generated file under a unique module name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def ruff_check(source: str, filename: str = "db.py") -> subprocess.CompletedProcess:
    """`ruff check` with the repository's config, reading the file from stdin."""
    return subprocess.run([str(RUFF), "check", "--stdin-filename", filename, "-"],
                          input=source, capture_output=True, text=True, cwd=ROOT, timeout=60)


# --- the app through AppTest -----------------------------------------------------------------

APP = "../app.py"  # AppTest.from_file resolves it against this file's directory


def new_app(query: dict[str, str] | None = None, timeout: float = 30) -> AppTest:
    from streamlit.testing.v1 import AppTest  # Streamlit: only for the app's tests

    at = AppTest.from_file(APP, default_timeout=timeout)
    if query:
        at.query_params.update(query)
    return at.run()


def go(at: AppTest, step: str) -> AppTest:
    return at.radio(key="step").set_value(step).run()



def switch_on(at: AppTest, toggle: str, step: str = "load", **numbers: float) -> AppTest:
    """On `step`, turn `toggle` on and set its number inputs (by key); then open Results."""
    go(at, step)
    at.toggle(key=toggle).set_value(True).run()
    for key, value in numbers.items():
        at.number_input(key=key).set_value(value).run()
    return go(at, "results")

def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def live_app(query: dict[str, str]) -> AppTest:
    """The app opened on a link and moved to the Live step (a longer timeout: it connects)."""
    return go(new_app(query, timeout=60), "live")


# Issue 20's estate as a link: RDS db.r6g.xlarge with one replica, an API fleet 4..20 pods x 4
# workers at 300 req/s, a queue worker 2..6 pods x 8 processes and a nightly cron (both
# primary only). Its break points lie far apart.
ESTATE = {"provider": "aws-rds", "instance_class": "db.r6g.xlarge", "replicas": "1",
          "s1_name": "api", "s1_app_instances": "4", "s1_max_app_instances": "20",
          "s1_workers": "4", "s1_rps": "300", "s1_hold_ms": "20",
          "s2_name": "queue", "s2_kind": "worker", "s2_app_instances": "2",
          "s2_max_app_instances": "6", "s2_workers": "8", "s2_endpoints": "primary",
          "s3_name": "nightly", "s3_kind": "cron", "s3_app_instances": "1",
          "s3_endpoints": "primary"}

# An API fleet, background workers on the primary only and a nightly cron job.
SERVICES_ESTATE = {"provider": "aws-rds", "instance_class": "db.r6g.large",
                   "s1_name": "api", "s1_app_instances": "4", "s1_max_app_instances": "10",
                   "s1_workers": "4",
                   "s2_name": "worker", "s2_kind": "worker", "s2_app_instances": "3",
                   "s2_workers": "2",
                   "s3_name": "cron", "s3_kind": "cron", "s3_app_instances": "1"}

# Two services, a replica, the API through PgBouncer and the workers straight to PostgreSQL.
SERVICES_PATHS = {"provider": "self-hosted", "instance_class": "default",
                  "max_connections": "300", "proxy": "pgbouncer-transaction", "replicas": "1",
                  "s1_name": "api", "s1_app_instances": "6", "s1_rps": "40",
                  "s1_hold_ms": "15", "s2_name": "jobs", "s2_kind": "worker",
                  "s2_app_instances": "2", "s2_proxy": "none", "s2_endpoints": "primary"}


def unescape(text: str) -> str:
    """Text as the visitor reads it: the app escapes Markdown in everything it echoes."""
    return as_read(text)


def texts(at: AppTest, kind: str) -> list[str]:
    return [unescape(e.value) for e in getattr(at, kind)]


def answers(at: AppTest) -> list[dict[str, str]]:
    """Metrics grouped per endpoint, in page order: each group starts at what the
    database sees there, then each service's pool on it (one service here)."""
    groups: list[dict[str, str]] = []
    for m in at.metric:
        if m.label == "database sees at peak" or not groups:
            groups.append({})
        groups[-1][m.label] = m.value
    return groups


FOLDS = ("findings", "budget", "settings", "rules", "sources", "load")


def open_details(at: AppTest) -> AppTest:
    """Open every Details expander of the Results step (their content is built on open)."""
    for name in FOLDS:
        at.session_state[f"fold_{name}"] = True
    return at.run()


def chart_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["chart_tab"] = label
    return at.run()


def service_answer(at: AppTest) -> list[tuple[str, dict[str, str]]]:
    """The answer card read in page order: ('endpoint', totals) for each endpoint, then
    ('service', its metrics) for each service on it."""
    out: list[tuple[str, dict[str, str]]] = []
    for m in at.metric:
        if m.label == "database sees at peak":
            out.append(("endpoint", {}))
        elif m.label in ("pool_size", "poolclass"):
            out.append(("service", {}))
        out[-1][1][m.label] = m.value
    return out


class _Rows(HTMLParser):
    """Every <tr class="row..."> of the table: its data attributes and its cells by label."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._label: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and (a.get("class") or "").startswith("row"):
            self.rows.append({"_service": a.get("data-service") or "",
                              "_endpoint": a.get("data-endpoint") or "",
                              "class": a.get("class") or ""})
        elif tag == "td" and self.rows:
            self._label = a.get("data-label")
            if self._label:
                self.rows[-1][self._label + ".class"] = a.get("class") or ""
                self.rows[-1][self._label] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._label = None

    def handle_data(self, data):
        if self._label and self.rows:
            self.rows[-1][self._label] += data


def table_rows(at) -> list[dict[str, str]]:
    bodies = [h.proto.body for h in at.get("html")
              if h.proto.body.startswith(f"<table class=\"{answer.KEY}\"")]
    assert len(bodies) == 1, "one answer table"
    parser = _Rows()
    parser.feed(bodies[0])
    return parser.rows


def run_check(at: AppTest, url: str, password: str, role: str = "primary",
              exhaust: bool = False) -> AppTest:
    at.text_input(key="live_url").input(url)
    at.text_input(key="live_password").input(password)
    at.selectbox(key="live_role").set_value(role)
    at.slider(key="live_pre_ping").set_value(0)
    if exhaust:
        at.checkbox(key="live_exhaust").check()
    next(b for b in at.button if b.label == "Run the live check").click()
    return at.run()


def shown(at: AppTest) -> str:
    return "\n".join(str(e.value) for k in ("info", "warning", "error", "success", "caption")
                     for e in getattr(at, k)).replace("\\", "")


def url_of(pg: PgServer) -> str:
    return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"


# --- random scenarios for the property tests -------------------------------------------------

PROVIDER_CASES = [
    ("aws-rds", "db.r6g.large", ["none", "rds-proxy", "pgbouncer-transaction"]),
    ("aws-aurora", "db.r6g.xlarge", ["none", "rds-proxy"]),
    ("gcp-cloudsql", "db-custom-2-7680", ["none", "cloudsql-connector",
                                          "cloudsql-auth-proxy"]),
    ("azure-flexible", "D4ds_v5", ["none", "azure-pgbouncer"]),
    ("supabase", "Large", ["supavisor-transaction", "supavisor-session", "none"]),
    ("neon", "2cu", ["neon-pooler", "none"]),
    ("self-hosted", None, ["none", "pgbouncer-transaction", "pgbouncer-session"]),
]


@st.composite
def any_scenario(draw) -> Scenario:
    provider, cls, proxies = draw(st.sampled_from(PROVIDER_CASES))
    load = draw(st.one_of(st.none(), st.builds(
        Load, rps=st.floats(1, 400), hold_ms=st.floats(1, 80))))
    return Scenario.flags(provider=provider, instance_class=cls,
                          max_connections=400 if cls is None else None,
                          proxy=draw(st.sampled_from(proxies)),
                          app_instances=draw(st.integers(1, 30)),
                          workers=draw(st.integers(1, 4)),
                          serverless_concurrency=draw(st.one_of(st.none(), st.integers(1, 300))),
                          load=load)


def engine_settings_of(module_src: str) -> dict:
    """ENGINE_SETTINGS as written in an exported module (a literal: no import needed)."""
    for node in ast.walk(ast.parse(module_src)):
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        if any(getattr(t, "id", "") == "ENGINE_SETTINGS" for t in targets if t is not None):
            src = ast.get_source_segment(module_src, node.value)
            return eval(src, {"NullPool": "NullPool"})  # literal dict of literals
    raise AssertionError("no ENGINE_SETTINGS in the module")


# --- the browser tests ------------------------------------------------------------------------

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def settle(page) -> None:
    """Wait for the script run that an interaction started to finish."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector('[data-test-script-state="running"]', timeout=700)
    except PlaywrightTimeout:
        pass  # the run was already over (or never needed)
    page.wait_for_selector(IDLE, timeout=20_000)


def step(page, label: str) -> None:
    page.locator(".st-key-step label").filter(has_text=label).click()
    settle(page)


def link_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


# Elements of the page (not their scrolled insides) that stick out past the viewport.
OVERFLOW_JS = """() => {
  const w = window.innerWidth;
  const out = [];
  for (const el of document.querySelectorAll(
      '[data-testid="stMain"] [data-testid="stElementContainer"], '
      + '[data-testid="stMain"] [data-testid="stVegaLiteChart"] canvas, '
      + '[data-testid="stMain"] [data-testid="stVegaLiteChart"] svg')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > w + 1 || r.left < -1)) {
      out.push(`${el.dataset.testid || el.tagName} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
  }
  if (document.documentElement.scrollWidth > w + 1) out.push('page scrolls sideways');
  return out;
}"""


def shoot(page, path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    size = page.viewport_size
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=\"stMain\"], "
                           "[data-testid=\"stMainBlockContainer\"], section')]"
                           ".map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": size["width"], "height": min(max(height, 600), 12_000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def top(locator) -> float:
    locator.first.scroll_into_view_if_needed()
    box = locator.first.bounding_box()
    assert box, locator
    return box["y"] + page_scroll(locator.page)


def page_scroll(page) -> float:
    return page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                         " return (m ? m.scrollTop : 0) + window.scrollY; }")


def charts_drawn(page) -> None:
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        charts.nth(i).locator("canvas, svg").first.wait_for(timeout=15_000)


def visit_step(page, label: str, width: int, shot: Path) -> None:
    """Open a step and check it as a visitor sees it: no exception, nothing wider than the
    screen (OVERFLOW_JS), the charts drawn on Results; its screenshot written to `shot`."""
    step(page, label)
    if label == "5 Results":
        charts_drawn(page)
    assert page.locator('[data-testid="stException"]').count() == 0, label
    problems = page.evaluate(OVERFLOW_JS)
    assert not problems, (label, width, problems)
    shoot(page, shot)
