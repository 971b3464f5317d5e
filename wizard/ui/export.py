"""Step 6: the engine module, the Markdown report and the PgBouncer ini, as files."""

from __future__ import annotations

import streamlit as st

from wizard import share
from wizard.model import Recommendation
from wizard.ui import state

FILES = (("module", "db.py", "text/x-python"),
         ("report", "poolwise-report.md", "text/markdown"),
         ("ini", "pgbouncer.ini", "text/plain"))


def _exporter():
    """wizard.export, or None while it is not available (built separately)."""
    try:
        from wizard import export
    except ImportError:
        return None
    if not all(hasattr(export, f) for f in ("render_module", "render_report",
                                            "render_pgbouncer_ini")):
        return None
    return export


@st.cache_data(max_entries=128, show_spinner=False)
def rendered(key: tuple[tuple[str, str], ...]) -> dict[str, str | None]:
    """The three exports of one scenario, exactly as wizard.export renders them."""
    export = _exporter()
    rec, _, _ = state._recommend(key)
    return {"module": export.render_module(rec), "report": export.render_report(rec),
            "ini": export.render_pgbouncer_ini(rec)}


def render(rec: Recommendation | None, key: tuple[tuple[str, str], ...]) -> None:
    st.subheader("6 · Export")
    if rec is None:
        st.warning("Fix the scenario first (see Results): there is nothing to export yet.")
        return
    if _exporter() is None:
        st.warning("Export is not available in this installation (wizard.export is missing). "
                   "The engine settings are on the Results step.")
        return
    files = rendered(key)
    cols = st.columns(3)
    for col, (kind, name, mime) in zip(cols, FILES, strict=True):
        text = files[kind]
        if text is None:
            col.caption("No PgBouncer in this scenario: no ini to download.")
            continue
        col.download_button(f"Download {name}", text, file_name=name, mime=mime,
                            key=f"download_{kind}", on_click="ignore", width="stretch")
    st.markdown("**Engine module** (copy button at the top right of the block)")
    st.code(files["module"], language="python")
    if files["ini"]:
        with st.expander("pgbouncer.ini"):
            st.code(files["ini"], language="ini")
    with st.expander("Markdown report"):
        st.markdown(files["report"])
    st.markdown("**The same from the command line**")
    st.code(share.cli_command(rec.scenario, "recommend"), language="bash")
