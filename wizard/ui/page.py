"""The wizard page: step navigation, the current step, and the result beside it."""

from __future__ import annotations

import gc
import importlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st

from wizard.scenario import links
from wizard.ui import database, export, load, proxy, results, state, topology
from wizard.ui.labels import STEP_NAMES
from wizard.ui.text import md_escape


@dataclass(frozen=True)
class Step:
    label: str
    render: Callable[..., None]
    beside_result: bool = False  # an input step: the result so far is drawn beside it


def _results(ctx: dict) -> None:
    results.render(ctx["rec"], ctx["error"], ctx["fix"], ctx["key"], ctx["scenario"])


STEPS: dict[str, Step] = {
    "database": Step(STEP_NAMES["database"], database.render, beside_result=True),
    "proxy": Step(STEP_NAMES["proxy"], proxy.render, beside_result=True),
    "topology": Step(STEP_NAMES["topology"], topology.render, beside_result=True),
    "load": Step(STEP_NAMES["load"], load.render, beside_result=True),
    "results": Step(STEP_NAMES["results"], _results),
    "export": Step(STEP_NAMES["export"], lambda ctx: export.render(ctx["rec"], ctx["key"])),
    # Imported when first shown: they pull in SQLAlchemy, Altair and the live check, which
    # the first page does not need (see bench/ui.md, cold start).
    "saved": Step("Saved & compare", lambda ctx: _lazy("saved").render(ctx["flat"])),
    "live": Step("Live check", lambda ctx: _lazy("live").render(ctx["rec"])),
}
ORDER = list(STEPS)
# The live check's own imports (asyncpg, SQLAlchemy's async engine and asyncpg dialect) too:
# cold, they made the first check settle seconds after the server was done.
HEAVY = ("altair", "wizard.charts", "wizard.ui.saved", "wizard.ui.live", "wizard.live",
         "sqlalchemy.dialects.postgresql.asyncpg")
_warm = threading.Lock()
_warmed: list[bool] = []


def _lazy(name: str):
    return importlib.import_module(f"wizard.ui.{name}")


def _warm_up() -> None:
    """Once per server: import what the later steps need in the background, a moment after
    the first page is drawn, so the first click on Results does not wait for Altair."""
    with _warm:
        if _warmed:
            return
        _warmed.append(True)

    def run() -> None:
        for module in HEAVY:
            importlib.import_module(module)
        _freeze_new_modules()

    timer = threading.Timer(1.0, run)
    timer.daemon = True
    timer.start()


_frozen_at: list[int] = [0]  # len(sys.modules) at the last gc.freeze()


def _freeze_new_modules() -> None:
    """Move every object alive into the collector's permanent generation when modules were
    imported since the last time (the first page's, the warm-up's, pandas for a first
    table): the import count bounds how often.

    Streamlit runs gc.collect(2) after every rerun (runner.postScriptGC) holding the GIL, so
    the rerun's last messages and "finished" wait for it; with Altair and SQLAlchemy loaded
    it walked ~115,000 module-level objects that live as long as the server (about 90 ms a
    rerun on 2 cores; bench/ui.md). Frozen, they are skipped; objects created later are
    collected as before."""
    with _warm:
        if len(sys.modules) == _frozen_at[0]:
            return
        _frozen_at[0] = len(sys.modules)
        gc.freeze()


# Streamlit stacks columns below 640 px: there the result beside the inputs would sit
# below all of them, so a one-line version with a jump link goes above them instead.
PHONE_CSS = """<style>
@media (min-width: 640px) { .st-key-phone_summary, .st-key-phone_share { display: none; } }
</style>"""


def _nav_buttons(step: str) -> None:
    i = ORDER.index(step)
    c1, _, c2 = st.columns([1, 3, 1])
    if 0 < i <= ORDER.index("export"):
        c1.button("← Back", key="nav_back", on_click=state.go, args=(ORDER[i - 1],))
    if i < ORDER.index("export"):
        c2.button("Next →", key="nav_next", on_click=state.go, args=(ORDER[i + 1],),
                  type="primary")


FOCUS_CSS = """<style>
.st-key-{key} {{ outline: 3px solid #ff4b4b; outline-offset: 4px; border-radius: 6px;
  scroll-margin-top: 6rem; }}
</style>"""
# Scrolls the highlighted field into view once it is drawn (the key is one of the app's
# own widget keys, codes.CODES[code].field: never visitor text).
FOCUS_JS = """<script>
(function () {{
  let tries = 0;
  const find = () => {{
    const el = document.querySelector('.st-key-{key}');
    if (el) {{ el.scrollIntoView({{block: 'center', behavior: 'smooth'}}); return; }}
    if (++tries < 40) setTimeout(find, 100);
  }};
  find();
}})();
</script>"""


def focus() -> None:
    """After "Fix it in ...": outline the field to fix (this run only) and scroll to it."""
    key = st.session_state.pop(state.FOCUS_KEY, None)
    if not key or not str(key).replace("_", "").isalnum():
        return
    st.html(FOCUS_CSS.format(key=key))
    st.html(FOCUS_JS.format(key=key), unsafe_allow_javascript=True)


def _link(flat: dict[str, str]) -> str:
    try:
        base = (st.context.url or "").split("?")[0]
    except Exception:  # no browser context (AppTest)
        base = ""
    return f"{base}?{urlencode(flat)}"


def _phone_share(flat: dict[str, str]) -> None:
    """On a phone (the sidebar folded away): the share link from the page itself."""
    with st.container(key="phone_share"):
        with st.popover("Share this scenario", icon=":material/share:"):
            st.caption("The whole scenario (never a password): send it to a colleague.")
            st.code(_link(flat), language=None, wrap_lines=True)


def _sidebar(flat: dict[str, str]) -> None:
    with st.sidebar:
        st.markdown("### Share")
        st.caption("The address bar always holds the whole scenario (never a password): "
                   "send it to a colleague.")
        st.code(_link(flat), language=None, wrap_lines=True)
        st.caption("The same from the command line:")
        scenario = state.scenario_or_none(flat)
        if scenario is not None:
            st.code(cli_line(scenario), language=None, wrap_lines=True)
        st.button("Reset to defaults", key="reset", on_click=state.reset_defaults)


def cli_line(scenario) -> str:
    """The installed command that reproduces the scenario (several services: from the
    scenario file the Export step downloads)."""
    from wizard.export.common import installed_command

    return installed_command(links.cli_command(scenario))


def _context(flat: dict[str, str]) -> dict:
    rec, error, fix = state.recommendation(flat)
    return {"flat": flat, "rec": rec, "error": error, "fix": fix,
            "key": state.flat_key(flat),
            "scenario": state.scenario_or_none(flat) if rec is None else None}


def main() -> None:
    state.init_session()
    if state.STEP_KEY not in st.session_state:
        st.session_state[state.STEP_KEY] = "database"
    st.title("poolwise")
    st.caption("How big should your SQLAlchemy async pool be, and what must your engine say?")
    notice = st.session_state.pop(state.NOTICE_KEY, None)
    if notice:
        st.warning(md_escape(notice, 600), icon=":material/link_off:")  # echoes the link
    flash = st.session_state.pop(state.FLASH_KEY, None)
    if flash:
        st.success(md_escape(flash), icon=":material/check_circle:")
    step = st.radio("Step", ORDER, key=state.STEP_KEY, format_func=lambda s: STEPS[s].label,
                    horizontal=True, label_visibility="collapsed")
    st.html(PHONE_CSS)
    focus()
    if STEPS[step].beside_result:
        phone = st.container(key="phone_summary")
        left, right = st.columns([3, 2], gap="large")
        with left:
            STEPS[step].render()
        # Widget changes above already show in this run: compute from the new state.
        ctx = _context(state.current_flat())
        with phone:
            results.brief(ctx["rec"], ctx["error"])
        with right, st.container(border=True, key="result_so_far"):
            results.summary(ctx["rec"], ctx["error"], ctx["fix"], ctx["scenario"], step)
    else:
        ctx = _context(state.current_flat())
        STEPS[step].render(ctx)
    _nav_buttons(step)
    _phone_share(ctx["flat"])
    state.sync_query_params(ctx["flat"])
    _sidebar(ctx["flat"])
    _warm_up()
    _freeze_new_modules()
