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


def app_address() -> str | None:
    """Where exported files link back to: POOLWISE_PUBLIC_URL, else this request's own
    address (when its Host is one the deployment serves); never a made-up localhost."""
    from wizard.live.target import request_host_allowed

    configured = share.public_url()
    if configured:
        return configured
    try:
        url, host = st.context.url, st.context.headers.get("Host")
    except Exception:  # no request context (AppTest)
        return None
    return share.app_base((url or "").split("?")[0]) if request_host_allowed(host) else None


@st.cache_data(max_entries=128, show_spinner=False)
def rendered(key: tuple[tuple[str, str], ...], base: str | None = None) -> dict[str, str | None]:
    """The three exports of one scenario, exactly as wizard.export renders them."""
    export = _exporter()
    rec, _, _ = state._recommend(key)
    return {"module": export.render_module(rec, share_base=base),
            "report": export.render_report(rec, share_base=base),
            "ini": export.render_pgbouncer_ini(rec, share_base=base)}


def render(rec: Recommendation | None, key: tuple[tuple[str, str], ...]) -> None:
    st.subheader("6 · Export")
    if rec is None:
        st.warning("Fix the scenario first (see Results): there is nothing to export yet.")
        return
    if _exporter() is None:
        st.warning("Export is not available in this installation (wizard.export is missing). "
                   "The engine settings are on the Results step.")
        return
    files = rendered(key, app_address())
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
