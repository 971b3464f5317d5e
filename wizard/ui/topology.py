"""Step 3: app instances, autoscaling, workers, engines, serverless and read replicas."""

from __future__ import annotations

import re

import streamlit as st

from wizard.ui import services, state
from wizard.ui.labels import HELP
from wizard.ui.text import md_escape

KEEP = {"persist_state": "session"}


def render() -> None:
    st.subheader("3 · Your application fleet")
    if state.service_count(st.session_state):
        services.render()
    else:
        _one_fleet()
    _replicas()


def pair():
    """Two cells of one row that share its width on every screen (a horizontal container
    does not stack below 640 px as st.columns does)."""
    row = st.container(horizontal=True, gap="small")
    return row.container(), row.container()


def _one_fleet() -> None:
    """The one-service form (the flags), and the way to several services."""
    st.toggle("Serverless (one process per invocation)", key="serverless_on",
              help=HELP["serverless_on"], **KEEP)
    if st.session_state.get("serverless_on"):
        state.number_field(st.container(), "Peak concurrent invocations", "serverless_concurrency")
    else:
        # Pairs in rows that stay side by side on a phone too (st.columns would stack them).
        c1, c2 = pair()
        state.number_field(c1, "App instances (normal)", "app_instances")
        state.number_field(c2, "Autoscaling maximum", "max_app_instances", value=None,
                           placeholder="no autoscaling")
        c1, c2 = pair()
        state.number_field(c1, "Workers per instance", "workers")
        state.number_field(c2, "Engines per process", "engines")
        c1, c2 = pair()
        with c1:
            st.slider("Rolling-deploy surge (%)", 0, 100, step=5, key="deploy_surge_percent",
                      help=HELP["deploy_surge_percent"], **KEEP)
        state.number_field(c2, "vCPUs per app instance", "app_vcpus")
    st.button("Several services share this database", key="services_on",
              on_click=services.start, icon=":material/add:", type="tertiary",
              help="An API, background workers, cron jobs, serverless functions: size them "
                   "together against one budget. This fleet becomes the first service.")


def replica_problem() -> tuple[int | None, str]:
    """(replica number, message) when the core refuses one replica's values (it names the
    replica first: "replica 2: ..."), else (None, message or "")."""
    where, message = state._problem(state.flat_key(state.current_flat()))
    if where != "replicas" or not message:
        return None, ""
    m = re.match(r"replica ([0-9]+):", message)
    return (int(m.group(1)) if m else None), message


def same_as_primary(i: int) -> None:
    """Button callback: replica i takes the primary's class and its max_connections."""
    st.session_state[f"replica_class_{i}"] = ""
    st.session_state[f"replica_mc_{i}"] = None


def primary_measured(i: int, n: int) -> None:
    """Button callback: replica i's max_connections is the primary's measured value."""
    st.session_state[f"replica_mc_{i}"] = n


def clear_measured(i: int) -> None:
    """Button callback: replica i's max_connections from its class's catalog again."""
    st.session_state[f"replica_mc_{i}"] = None


def _replica_fixes(i: int, message: str) -> None:
    """Beside a refused replica: the core's message and the fixes for a replica (its class
    or its max_connections), not a proxy or a bigger primary."""
    st.error(md_escape(message), icon=":material/error:")
    bar = st.container(horizontal=True, gap="small")
    if st.session_state.get(f"replica_class_{i}"):
        bar.button("Use the primary's class and max_connections", key=f"replica_same_{i}",
                   on_click=same_as_primary, args=(i,), icon=":material/content_copy:")
    primary = state._count(st.session_state.get("max_connections")) \
        if st.session_state.get("mc_mode") == "measured" else None
    if primary:
        bar.button(f"Use the primary's max_connections ({primary:,}) for this replica",
                   key=f"replica_primary_mc_{i}", on_click=primary_measured,
                   args=(i, primary), icon=":material/content_copy:")
    if st.session_state.get(f"replica_mc_{i}") is not None:
        bar.button("Clear its measured max_connections", key=f"replica_clear_mc_{i}",
                   on_click=clear_measured, args=(i,), icon=":material/backspace:")


def _replicas() -> None:
    at, message = replica_problem()
    st.number_input("Read replicas", key="replicas", help=HELP.get("replicas"), **state.WHOLE)
    if at is None:
        state.flag("replicas")
    n = state._count(st.session_state.get("replicas")) or 0
    if not 0 <= n <= state.MAX_REPLICAS:
        return  # flagged above; no widgets are drawn for a count the app refuses
    provider = st.session_state["provider"]
    classes = [""] + state.class_names(provider)
    for i in range(n):
        with st.container(border=True):
            st.markdown(f"**replica-{i + 1}**")
            # Two to a row (never four narrow columns: "max_connections" would break
            # mid-word), side by side on a phone too.
            c1, c4 = pair()
            c1.selectbox("Instance class", classes, key=f"replica_class_{i}",
                         format_func=lambda c: c or "same as the primary",
                         help=HELP["replica_instance_class"], **KEEP)
            c4.text_input("Region", key=f"replica_region_{i}", placeholder="same region",
                          help=HELP["replica_regions"], max_chars=40, **KEEP)
            c2, c3 = pair()
            c2.number_input("Measured max_connections", value=None, key=f"replica_mc_{i}",
                            placeholder="catalog", help=HELP["replica_max_connections"],
                            **state.WHOLE)
            c3.number_input("Reader instances", value=None, key=f"replica_readers_{i}",
                            placeholder="all", help=HELP["replica_readers"], **state.WHOLE)
            if at == i + 1:
                _replica_fixes(i, message)
