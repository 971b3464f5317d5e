"""Step 4 (optional): traffic, reserves and the pool settings running today."""

from __future__ import annotations

import streamlit as st

from wizard.ui import state
from wizard.ui.labels import HELP

KEEP = {"persist_state": "session"}
# No min/max: a value out of range is kept and flagged by the core's message instead of
# being replaced; whole numbers are typed as floats so "1e9" is read whole.
WHOLE = {"step": 1.0, "format": "%.0f", **KEEP}
POOLCLASSES = ("AsyncAdaptedQueuePool", "NullPool", "QueuePool")


def _number(where, label: str, key: str, **kw) -> None:
    with where:
        st.number_input(label, key=key, help=HELP.get(key), **{**WHOLE, **kw})
        state.flag(key)


def render() -> None:
    st.subheader("4 · Load (optional)")
    st.toggle("I know my traffic", key="load_on", help=HELP["load_on"], **KEEP)
    if st.session_state.get("load_on"):
        c1, c2, c3 = st.columns(3)
        _number(c1, "Requests/s per instance", "rps", step=10.0, format="%g")
        _number(c2, "Mean hold time (ms)", "hold_ms", step=5.0, format="%g")
        _number(c3, "p95 hold time (ms)", "p95_hold_ms", step=5.0, format="%g", value=None,
                placeholder="unknown")
    else:
        st.caption("Without load the pools stop at a safe default below the budget ceiling.")
    st.slider("pool_size share of the budget", 0.1, 1.0, step=0.05, key="split",
              help=HELP["split"], **KEEP)
    with st.expander("Reserved connections"):
        c1, c2 = st.columns(2)
        _number(c1, "superuser_reserved_connections", "superuser_reserved", value=None,
                placeholder="provider default")
        _number(c2, "Provider-reserved", "provider_reserved", value=None,
                placeholder="documented")
        _number(c1, "Monitoring / admin", "admin_reserve")
        _number(c2, "Migrations", "migrations_reserve")
        _number(c1, "Replication / CDC", "replication_reserve")
    with st.expander("Check the settings you run today"):
        st.toggle("Compare with my current pool", key="current_on", help=HELP["current_on"],
                  **KEEP)
        if st.session_state.get("current_on"):
            c1, c2 = st.columns(2)
            _number(c1, "Current pool_size", "current_pool_size", value=None)
            _number(c2, "Current max_overflow", "current_max_overflow", value=None)
            _number(c1, "Current pool_recycle (s, -1 = off)", "current_pool_recycle",
                    value=None)
            with c2:
                st.selectbox("Current poolclass", POOLCLASSES, key="current_poolclass",
                             **KEEP)
