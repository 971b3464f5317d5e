"""Step 4 (optional): traffic, reserves and the pool settings running today."""

from __future__ import annotations

import streamlit as st

from wizard.core.model import field_name
from wizard.ui import observe, state
from wizard.ui.labels import HELP

KEEP = {"persist_state": "session"}
POOLCLASSES = ("AsyncAdaptedQueuePool", "NullPool", "QueuePool")


def render() -> None:
    st.subheader("4 · Load (optional)")
    if state.service_count(st.session_state):
        st.caption("Each service's load, split and the pool it runs today are set with the "
                   "service in step 3.")
        _reserves()
        return
    observe.measured_note()  # a measured load (the live step's observe) sizes first
    st.toggle("I know my traffic", key="load_on", help=HELP["load_on"], **KEEP)
    if st.session_state.get("load_on"):
        c1, c2, c3 = st.columns(3)
        state.number_field(c1, "Requests/s per instance", "rps", step=10.0, format="%g")
        state.number_field(c2, "Mean hold time (ms)", "hold_ms", step=5.0, format="%g")
        state.number_field(c3, "p95 hold time (ms)", "p95_hold_ms", step=5.0, format="%g",
                           value=None, placeholder="unknown")
    else:
        st.caption("Without load the pools stop at a safe default below the budget ceiling.")
    st.slider("pool_size share of the budget", 0.1, 1.0, step=0.05, key="split",
              help=HELP["split"], **KEEP)
    _reserves()
    with st.expander("Check the settings you run today"):
        st.toggle("Compare with my current pool", key="current_on", help=HELP["current_on"],
                  **KEEP)
        if st.session_state.get("current_on"):
            c1, c2 = st.columns(2)
            state.number_field(c1, "Current pool_size", "current_pool_size", value=None)
            state.number_field(c2, "Current max_overflow", "current_max_overflow", value=None)
            state.number_field(c1, "Current pool_recycle (s, -1 = off)", "current_pool_recycle",
                               value=None)
            state.number_field(c1, field_name("current_statement_cache_size"),
                               "current_statement_cache_size", value=None)
            with c2:
                st.selectbox("Current poolclass", POOLCLASSES, key="current_poolclass",
                             **KEEP)


def _reserves() -> None:
    """The connections kept back from the pools: the database's, whatever the services."""
    with st.expander("Reserved connections"):
        c1, c2 = st.columns(2)
        state.number_field(c1, "superuser_reserved_connections", "superuser_reserved", value=None,
                           placeholder="provider default")
        state.number_field(c2, "Provider-reserved", "provider_reserved", value=None,
                           placeholder="documented")
        state.number_field(c1, "Monitoring / admin", "admin_reserve")
        state.number_field(c2, "Migrations", "migrations_reserve")
        state.number_field(c1, "Replication / CDC", "replication_reserve")
