"""Step 3: app instances, autoscaling, workers, engines, serverless and read replicas."""

from __future__ import annotations

import streamlit as st

from wizard.ui import state
from wizard.ui.labels import HELP

KEEP = {"persist_state": "session"}


def render() -> None:
    st.subheader("3 · Your application fleet")
    st.toggle("Serverless (one process per invocation)", key="serverless_on",
              help=HELP["serverless_on"], **KEEP)
    if st.session_state.get("serverless_on"):
        st.number_input("Peak concurrent invocations", min_value=1, step=1,
                        key="serverless_concurrency", help=HELP["serverless_concurrency"], **KEEP)
    else:
        c1, c2 = st.columns(2)
        c1.number_input("App instances (normal)", min_value=1, step=1, key="app_instances",
                        help=HELP["app_instances"], **KEEP)
        c2.number_input("Autoscaling maximum", min_value=1, step=1, value=None,
                        key="max_app_instances", placeholder="no autoscaling",
                        help=HELP["max_app_instances"], **KEEP)
        c1.number_input("Workers per instance", min_value=1, step=1, key="workers",
                        help=HELP["workers"], **KEEP)
        c2.number_input("Engines per process", min_value=1, step=1, key="engines",
                        help=HELP["engines"], **KEEP)
        c1.slider("Rolling-deploy surge (%)", 0, 100, step=5, key="deploy_surge_percent",
                  help=HELP["deploy_surge_percent"], **KEEP)
        c2.number_input("vCPUs per app instance", min_value=1, step=1, key="app_vcpus",
                        help=HELP["app_vcpus"], **KEEP)
    st.number_input("Read replicas", min_value=0, max_value=state.MAX_REPLICAS, step=1,
                    key="replicas", help=HELP["replicas"], **KEEP)
    n = int(st.session_state.get("replicas") or 0)
    provider = st.session_state["provider"]
    classes = [""] + state.class_names(provider)
    for i in range(n):
        with st.container(border=True):
            st.markdown(f"**replica-{i + 1}**")
            c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
            c1.selectbox("Instance class", classes, key=f"replica_class_{i}",
                         format_func=lambda c: c or "same as the primary",
                         help=HELP["replica_class"], **KEEP)
            c2.number_input("Measured max_connections", min_value=1, step=1, value=None,
                            key=f"replica_mc_{i}", placeholder="catalog",
                            help=HELP["replica_mc"], **KEEP)
            c3.number_input("Reader instances", min_value=1, step=1, value=None,
                            key=f"replica_readers_{i}", placeholder="all",
                            help=HELP["replica_readers"], **KEEP)
            c4.text_input("Region", key=f"replica_region_{i}", placeholder="same region",
                          help="A label only, e.g. eu-west-1: a cross-region replica counts "
                               "the same way, with its own class and its own readers.",
                          max_chars=40, **KEEP)
