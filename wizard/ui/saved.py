"""Saved scenarios: save, list, load, delete, and compare several side by side."""

from __future__ import annotations

import os

import streamlit as st

from wizard import charts, store
from wizard.model import ScenarioError
from wizard.ui import state


@st.cache_resource(show_spinner=False)
def get_store(url: str) -> store.ScenarioStore:
    """One store (engine) per URL for the server; engines are thread-safe."""
    return store.ScenarioStore(url)


def _store() -> store.ScenarioStore:
    return get_store(store.store_url())


def _save(flat: dict[str, str]) -> None:
    name = st.session_state.get("save_name", "")
    try:
        _store().save(name, flat)
    except store.StoreError as exc:
        st.session_state["_store_msg"] = ("error", str(exc))
    else:
        st.session_state["_store_msg"] = ("success", f"Saved {name!r}.")


def _load(name: str) -> None:
    try:
        state.load_flat(_store().load(name))
    except (store.StoreError, ScenarioError) as exc:
        st.session_state["_store_msg"] = ("error", f"Could not load {name!r}: {exc}")
    else:
        # Loading is for looking at it: open the Results with a note of what was loaded.
        st.session_state[state.FLASH_KEY] = (f"Loaded {name!r}: the steps now hold it; "
                                             "back to Saved & compare to pick another.")
        state.go("results")


def _delete(name: str) -> None:
    if _store().delete(name):
        st.session_state["_store_msg"] = ("success", f"Deleted {name!r}.")


def render(flat: dict[str, str]) -> None:
    st.subheader("Saved scenarios")
    try:
        saved = _store().list()
    except Exception as exc:  # a bad POOLWISE_STORE_URL must not break the wizard
        st.error(f"The scenario store is not reachable ({type(exc).__name__}). "
                 f"Check {store.ENV_URL}.")
        return
    msg = st.session_state.pop("_store_msg", None)
    if msg:
        (st.error if msg[0] == "error" else st.success)(msg[1])
    with st.form("save_form", border=True):
        st.text_input("Name", key="save_name", max_chars=store.MAX_NAME,
                      help="1 to 80 printable characters. Saving an existing name replaces it.")
        st.form_submit_button("Save the current scenario", on_click=_save, args=(flat,))
    where = "the shared database" if os.environ.get(store.ENV_URL) else "a local SQLite file"
    st.caption(f"Stored in {where} ({store.ENV_URL} selects another).")
    if not saved:
        st.info("No saved scenarios yet.")
        return
    for item in saved:
        c1, c2, c3 = st.columns([4, 1, 1])
        c1.markdown(f"**{item.name}** · {item.params.get('provider')} "
                    f"{item.params.get('instance_class', '')} · "
                    f"updated {item.updated_at:%Y-%m-%d %H:%M} UTC")
        c2.button("Load", key=f"load_{item.name}", on_click=_load, args=(item.name,))
        c3.button("Delete", key=f"delete_{item.name}", on_click=_delete, args=(item.name,))
    st.markdown("#### Compare")
    names = [s.name for s in saved]
    # No key: a new set of saved names starts a fresh selection of the first four.
    chosen = st.multiselect("Scenarios to compare", names, default=names[:4])
    recs, failed = {}, []
    for item in saved:
        if item.name in chosen:
            rec, error, _ = state.recommendation(item.params)
            if rec is None:
                failed.append(f"{item.name}: {error}")
            else:
                recs[item.name] = rec
    for line in failed:
        st.warning(line)
    if len(recs) >= 2:
        st.dataframe(charts.compare_rows(recs), hide_index=True, width="stretch")
        st.altair_chart(charts.compare_chart(recs), width="stretch")
    elif chosen:
        st.caption("Pick at least two scenarios to compare.")
