"""The wizard page: step navigation, the current step, and the result beside it."""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from wizard import share
from wizard.model import ScenarioError
from wizard.ui import database, export, live, load, proxy, results, saved, state, text, topology

STEPS = {
    "database": "1 Database",
    "proxy": "2 Proxy",
    "topology": "3 Fleet",
    "load": "4 Load",
    "results": "5 Results",
    "export": "6 Export",
    "saved": "Saved & compare",
    "live": "Live check",
}
INPUT_STEPS = {"database": database.render, "proxy": proxy.render,
               "topology": topology.render, "load": load.render}
ORDER = list(STEPS)


def _nav_buttons(step: str) -> None:
    i = ORDER.index(step)
    c1, _, c2 = st.columns([1, 3, 1])
    if i > 0 and step in INPUT_STEPS or step in ("results", "export"):
        c1.button("← Back", key="nav_back", on_click=state.go, args=(ORDER[i - 1],))
    if i < ORDER.index("export"):
        c2.button("Next →", key="nav_next", on_click=state.go, args=(ORDER[i + 1],),
                  type="primary")


def _sidebar(flat: dict[str, str]) -> None:
    with st.sidebar:
        st.markdown("### Share")
        try:
            base = (st.context.url or "").split("?")[0]
        except Exception:  # no browser context (AppTest)
            base = ""
        query = urlencode(flat)
        st.caption("The address bar always holds the whole scenario (never a password): "
                   "send it to a colleague.")
        st.code(f"{base}?{query}", language=None, wrap_lines=True)
        st.caption("The same from the command line:")
        try:
            st.code(share.cli_command(share.from_flat(flat)), language="bash",
                    wrap_lines=True)
        except ScenarioError:
            pass
        st.button("Reset to defaults", key="reset", on_click=state.reset_defaults)


def main() -> None:
    state.init_session()
    if state.STEP_KEY not in st.session_state:
        st.session_state[state.STEP_KEY] = "database"
    st.title("poolwise")
    st.caption("How big should your SQLAlchemy async pool be, and what must your engine say?")
    notice = st.session_state.pop(state.NOTICE_KEY, None)
    if notice:
        st.warning(text.md_escape(notice, 600), icon=":material/link_off:")  # echoes the link
    flash = st.session_state.pop(state.FLASH_KEY, None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    step = st.radio("Step", ORDER, key=state.STEP_KEY, format_func=STEPS.get,
                    horizontal=True, label_visibility="collapsed")
    flat = state.current_flat()
    rec, error, fix = state.recommendation(flat)
    key = state.flat_key(flat)
    if step in INPUT_STEPS:
        left, right = st.columns([3, 2], gap="large")
        with left:
            INPUT_STEPS[step]()
        # Widget changes above already show in this run: recompute from the new state.
        flat = state.current_flat()
        rec, error, fix = state.recommendation(flat)
        key = state.flat_key(flat)
        with right, st.container(border=True):
            results.summary(rec, error, fix,
                            state.scenario_or_none(flat) if rec is None else None, step)
    elif step == "results":
        results.render(rec, error, fix, key,
                       state.scenario_or_none(flat) if rec is None else None)
    elif step == "export":
        export.render(rec, key)
    elif step == "saved":
        saved.render(flat)
    else:
        live.render(rec)
    _nav_buttons(step)
    state.sync_query_params(flat)
    _sidebar(flat)
