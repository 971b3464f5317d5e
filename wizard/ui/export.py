"""Step 6: the engine module, the Markdown report and the PgBouncer ini, as files."""

from __future__ import annotations

import streamlit as st

from wizard.core.model import Recommendation
from wizard.scenario import links
from wizard.ui import state
from wizard.ui.text import md_escape

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

    configured = links.public_url()
    if configured:
        return configured
    try:
        url, host = st.context.url, st.context.headers.get("Host")
    except Exception:  # no request context (AppTest)
        return None
    return links.app_base((url or "").split("?")[0]) if request_host_allowed(host) else None


@st.cache_data(max_entries=128, show_spinner=False)
def rendered(key: tuple[tuple[str, str], ...], base: str | None = None
             ) -> dict[str, str | None]:
    """Every export of one scenario, exactly as wizard.export and wizard.scenario.files
    write them: each service's module (`module:NAME`), the report of every service, the
    PgBouncer ini (None without a self-managed PgBouncer) and the scenario file."""
    from wizard.scenario import files

    export = _exporter()
    rec, _, _ = state._recommend(key)
    out: dict[str, str | None] = {
        f"module:{svc.name}": export.render_module(rec, share_base=base, service=svc.name)
        for svc in rec.services}
    out["report"] = export.render_report(rec, share_base=base)
    out["ini"] = export.render_pgbouncer_ini(rec, share_base=base)
    out["scenario"] = files.dump(rec.scenario)
    return out


def module_file(rec: Recommendation, service: str) -> str:
    """The file name of a service's module: db.py for the flags form, else db_<name>.py
    (an importable name: - becomes _), as the export names it."""
    from wizard.export.common import named_service
    from wizard.export.module import module_file_name

    return module_file_name(named_service(rec, rec.service(service)))


def _download_key(rec: Recommendation, service: str) -> str:
    """The module's download button key: download_module, or download_module_<name>."""
    return "download_module" + ("" if module_file(rec, service) == "db.py" else f"_{service}")


def current_rows(rec: Recommendation) -> list[dict[str, str]]:
    """The settings the team runs today (as given in step 4) beside the exported ones."""
    cur = rec.sized.current
    if cur is None:
        return []
    rows = []
    for name, today in (("poolclass", cur.poolclass), ("pool_size", cur.pool_size),
                        ("max_overflow", cur.max_overflow), ("pool_recycle", cur.pool_recycle)):
        if today is None:
            continue
        row = {"setting": name, "today": str(today)}
        for eng in rec.engines:
            new = str(getattr(eng, name))
            row[eng.endpoint] = new if new == str(today) else f"{new} (was {today})"
        rows.append(row)
    return rows


def render(rec: Recommendation | None, key: tuple[tuple[str, str], ...]) -> None:
    """One module per service, the report of every service, the PgBouncer ini when the
    path has one, and the scenario file."""
    st.subheader("6 · Export")
    if rec is None:
        st.warning("Fix the scenario first (see Results): there is nothing to export yet.")
        return
    if _exporter() is None:
        st.warning("Export is not available in this installation (wizard.export is missing). "
                   "The engine settings are on the Results step.")
        return
    files = rendered(key, app_address())
    st.markdown("**One engine module per service** (its engines only; with named services "
                "application_name is the service's name, so pg_stat_activity and the live "
                "check tell them apart)")
    row = st.container(horizontal=True, gap="small")
    for svc in rec.services:
        name = module_file(rec, svc.name)
        row.download_button(f"Download {name}", files[f"module:{svc.name}"], file_name=name,
                            mime="text/x-python", key=_download_key(rec, svc.name),
                            on_click="ignore", type="primary", icon=":material/download:")
    row = st.container(horizontal=True, gap="small")
    row.download_button("Download poolwise-scenario.toml", files["scenario"],
                        file_name="poolwise-scenario.toml", mime="application/toml",
                        key="download_scenario", on_click="ignore",
                        icon=":material/download:")
    row.download_button("Download poolwise-report.md", files["report"],
                        file_name="poolwise-report.md", mime="text/markdown",
                        key="download_report", on_click="ignore", icon=":material/download:")
    if files["ini"]:
        row.download_button("Download pgbouncer.ini", files["ini"], file_name="pgbouncer.ini",
                            mime="text/plain", key="download_ini", on_click="ignore",
                            icon=":material/download:")
    diff = [(svc, current_rows(svc.rec)) for svc in rec.services]
    if any(rows for _, rows in diff):
        st.markdown("**What changes from the settings you run today** (step 3)")
        for svc, rows in diff:
            if rows:
                st.caption(md_escape(svc.name))
                st.table(rows)
    else:
        st.caption("Give the pool each service runs today (step 3, under the service) to see "
                   "what changes.")
    for svc in rec.services:
        with st.expander(f"{md_escape(module_file(rec, svc.name))}: "
                         f"{md_escape(svc.name)}'s engine module (copy button at the top "
                         "right)"):
            st.code(files[f"module:{svc.name}"], language="python")
    if files["ini"]:
        with st.expander("pgbouncer.ini"):
            st.code(files["ini"], language="ini")
    with st.expander("poolwise-scenario.toml: the whole estate in one file"):
        st.code(files["scenario"], language="toml")
    with st.expander("Markdown report"):
        st.code(files["report"], language="markdown", wrap_lines=True)
    with st.expander("The same from the command line"):
        from wizard.export.common import installed_command

        lines = [installed_command(links.cli_command(rec.scenario, "recommend"))]
        if rec.scenario.named:
            lines += [f"poolwise export --scenario poolwise-scenario.toml "
                      f"--service {svc.name} -o {module_file(rec, svc.name)}"
                      for svc in rec.services]
        st.code("\n".join(lines), language="bash", wrap_lines=True)
    _next()


def _next() -> None:
    st.markdown("**Next**")
    nxt = st.container(horizontal=True, gap="small")
    nxt.button("Check it against your database", key="export_go_live", on_click=state.go,
               args=("live",), icon=":material/network_check:")
    nxt.button("Save this scenario", key="export_go_saved", on_click=state.go,
               args=("saved",), icon=":material/bookmark:")
    nxt.button("Start over", key="export_reset", on_click=state.reset_defaults,
               icon=":material/restart_alt:", type="tertiary")
