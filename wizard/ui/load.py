"""Step 4 (optional): traffic, reserves and the pool settings running today."""

from __future__ import annotations

import streamlit as st

from wizard.ui.labels import HELP

KEEP = {"persist_state": "session"}
POOLCLASSES = ("AsyncAdaptedQueuePool", "NullPool", "QueuePool")


def render() -> None:
    st.subheader("4 · Load (optional)")
    st.toggle("I know my traffic", key="load_on", help=HELP["load_on"], **KEEP)
    if st.session_state.get("load_on"):
        c1, c2, c3 = st.columns(3)
        c1.number_input("Requests/s per instance", min_value=0.1, step=10.0, key="rps",
                        help=HELP["rps"], **KEEP)
        c2.number_input("Mean hold time (ms)", min_value=0.1, step=5.0, key="hold_ms",
                        help=HELP["hold_ms"], **KEEP)
        c3.number_input("p95 hold time (ms)", min_value=0.1, step=5.0, value=None,
                        key="p95_hold_ms", placeholder="unknown", help=HELP["p95_hold_ms"],
                        **KEEP)
    else:
        st.caption("Without load the pools stop at a safe default below the budget ceiling.")
    st.slider("pool_size share of the budget", 0.1, 1.0, step=0.05, key="split",
              help=HELP["split"], **KEEP)
    with st.expander("Reserved connections"):
        c1, c2 = st.columns(2)
        c1.number_input("superuser_reserved_connections", min_value=0, step=1, value=None,
                        key="superuser_reserved", placeholder="provider default",
                        help=HELP["superuser_reserved"], **KEEP)
        c2.number_input("Provider-reserved", min_value=0, step=1, value=None,
                        key="provider_reserved", placeholder="documented",
                        help=HELP["provider_reserved"], **KEEP)
        c1.number_input("Monitoring / admin", min_value=0, step=1, key="admin_reserve",
                        help=HELP["admin_reserve"], **KEEP)
        c2.number_input("Migrations", min_value=0, step=1, key="migrations_reserve",
                        help=HELP["migrations_reserve"], **KEEP)
        c1.number_input("Replication / CDC", min_value=0, step=1, key="replication_reserve",
                        help=HELP["replication_reserve"], **KEEP)
    with st.expander("Check the settings you run today"):
        st.toggle("Compare with my current pool", key="current_on", help=HELP["current_on"],
                  **KEEP)
        if st.session_state.get("current_on"):
            c1, c2 = st.columns(2)
            c1.number_input("Current pool_size", min_value=0, step=1, value=None,
                            key="current_pool_size", **KEEP)
            c2.number_input("Current max_overflow", min_value=-1, step=1, value=None,
                            key="current_max_overflow", **KEEP)
            c1.number_input("Current pool_recycle (s, -1 = off)", min_value=-1, step=1,
                            value=None, key="current_pool_recycle", **KEEP)
            c2.selectbox("Current poolclass", POOLCLASSES, key="current_poolclass", **KEEP)
