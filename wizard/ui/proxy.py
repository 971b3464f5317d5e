"""Step 2: the proxy or pooler between the app and PostgreSQL, and the network path."""

from __future__ import annotations

import streamlit as st

from wizard.core.model import NETWORK_CUTOFFS, field_name
from wizard.scenario import links
from wizard.ui import state
from wizard.ui.labels import HELP, NETWORK, PROXIES

POOL_SIZE_PROXIES = ("pgbouncer-transaction", "pgbouncer-session", "azure-pgbouncer",
                     "supavisor-transaction", "supavisor-session")
CLIENT_LIMIT_PROXIES = POOL_SIZE_PROXIES + ("neon-pooler",)


def render() -> None:
    st.subheader("2 · Proxy and network")
    provider = st.session_state["provider"]
    options = state.proxies_for(provider)
    if st.session_state.get("proxy") not in options:
        st.session_state["proxy"] = "none"
    st.selectbox("Proxy or pooler", options, key="proxy", format_func=PROXIES.get,
                 help=HELP["proxy"], persist_state="session")
    state.flag("proxy")
    proxy = st.session_state["proxy"]
    optional = {"value": None, "placeholder": "default"}
    if proxy.startswith("pgbouncer"):
        st.text_input("PgBouncer version", key="pgbouncer_version", placeholder="e.g. 1.24",
                      help=HELP["pgbouncer_version"], persist_state="session",
                      max_chars=links.max_chars("pgbouncer_version"))
        state.flag("pgbouncer_version")
    if proxy in POOL_SIZE_PROXIES:
        c1, c2 = st.columns(2)
        state.number_field(c1, "default_pool_size", "pgbouncer_pool_size", **optional)
        state.number_field(c2, "user/database pairs", "user_db_pairs")
    elif proxy == "neon-pooler":
        state.number_field(None, "user/database pairs", "user_db_pairs")
    if proxy in CLIENT_LIMIT_PROXIES:
        state.number_field(None, "max_client_conn", "pgbouncer_max_client_conn", **optional)
    if proxy.startswith("pgbouncer"):
        c1, c2 = st.columns(2)
        state.number_field(c1, "reserve_pool_size", "pgbouncer_reserve_pool")
        state.number_field(c2, "max_prepared_statements", "max_prepared_statements", **optional)
        state.number_field(c1, field_name("pgbouncer_max_db_connections"),
                           "pgbouncer_max_db_connections", **optional)
    if proxy == "rds-proxy":
        st.slider("MaxConnectionsPercent", 1, 100, key="rds_proxy_max_connections_percent",
                  help=HELP["rds_proxy_max_connections_percent"], persist_state="session")
    st.multiselect("Idle cut-offs on the network path", NETWORK_CUTOFFS, key="network",
                   format_func=NETWORK.get, help=HELP["network"], persist_state="session")
    st.checkbox("pool_pre_ping", key="pre_ping", help=HELP["pre_ping"], persist_state="session")
    if provider in ("aws-rds", "aws-aurora", "azure-flexible", "gcp-cloudsql"):
        st.checkbox("IAM / Entra ID token authentication", key="iam_auth",
                    help=HELP["iam_auth"], persist_state="session")
