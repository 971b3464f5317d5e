"""Step 1: provider, instance class (from the catalog or measured), PostgreSQL version."""

from __future__ import annotations

import streamlit as st

from wizard.core import catalog
from wizard.core.model import PROVIDERS
from wizard.ui import state
from wizard.ui.labels import HELP
from wizard.ui.labels import PROVIDERS as PROVIDER_LABELS

PG_VERSIONS = (12, 13, 14, 15, 16, 17, 18)


def _class_label(provider: str):
    rows = {c.instance_class: c for c in catalog.catalog(provider)}

    def label(name: str) -> str:
        row = rows.get(name)
        if row is None:
            return name
        cpu = f"{row.vcpu:g} vCPU" if row.vcpu else "shared vCPU"
        mem = f"{row.memory_gib:g} GiB" if row.memory_gib else "? GiB"
        est = " est." if row.estimated else ""
        # The number that matters first: a phone's field cuts the end, never mid-number.
        return f"{name} · {row.max_connections:,} conn.{est} · {cpu} · {mem}"

    return label


def render() -> None:
    st.subheader("1 · Your database")
    st.selectbox("Provider", PROVIDERS, key="provider", format_func=PROVIDER_LABELS.get,
                 on_change=state.on_provider_change, help=HELP["provider"],
                 persist_state="session")
    provider = st.session_state["provider"]
    names = state.class_names(provider)
    st.radio("max_connections", ("catalog", "measured"), key="mc_mode", horizontal=True,
             format_func={"catalog": "Use the catalog default",
                          "measured": "I measured it"}.get,
             help=HELP["mc_mode"], persist_state="session")
    st.selectbox("Instance class", names, key="instance_class",
                 format_func=_class_label(provider), help=HELP["instance_class"],
                 accept_new_options=provider == "gcp-cloudsql", persist_state="session",
                 placeholder="type to search")
    state.flag("instance_class")
    cls = st.session_state.get("instance_class")
    if cls:
        try:
            row = catalog.instance_class(provider, cls)
        except ValueError:
            pass  # flagged just above, in the core's words
        else:
            est = " — an estimate, measure it if you can" if row.estimated else ""
            st.caption(f"Default max_connections **{row.max_connections:,}**{est}. "
                       f"Source: [{row.source_label.split(' (')[0]}]({row.source.url}), "
                       f"read {row.source.read_on}.")
            if row.note:
                with st.expander("How this number was found"):
                    st.write(row.note)
            if row.family == "serverless-v2":
                st.number_input("Minimum ACU", step=0.5,
                                value=None, key="min_acu", placeholder="not set",
                                help=HELP["min_acu"],
                                persist_state="session")
                state.flag("min_acu")
                low = st.session_state.get("min_acu")
                cap, _ = catalog.provider_int(provider, "serverless_v2_low_min_acu_cap") or (
                    2000, "")
                if (low is None or low <= 0.5) and row.max_connections > cap:
                    given = ("No minimum ACU given" if low is None
                             else f"With a minimum of {low:g} ACU")
                    st.caption(f"{given}: AWS caps max_connections at **{cap:,}** at 0 or 0.5 "
                               f"ACU (not the {row.max_connections:,} of the maximum); a "
                               "minimum of 1 ACU or more lifts it.")
    if st.session_state.get("mc_mode") == "measured":
        st.number_input("max_connections you measured", step=1.0, format="%.0f", value=None,
                        key="max_connections", help=HELP["max_connections"],
                        on_change=state.forget_measured_source,
                        placeholder="SHOW max_connections", persist_state="session")
        state.flag("max_connections")
    st.number_input("Database vCPUs", step=1.0, value=None, key="db_vcpus",
                    placeholder="the class's" if cls else "not known",
                    help=HELP["db_vcpus"],
                    persist_state="session")
    state.flag("db_vcpus")
    st.selectbox("PostgreSQL major version", PG_VERSIONS, key="pg_version",
                 help=HELP["pg_version"], persist_state="session")
    if provider == "aws-rds":
        st.number_input("Minor version", min_value=0, max_value=99, step=1, value=None,
                        key="pg_minor", placeholder="current",
                        help=HELP["pg_minor"],
                        persist_state="session")
