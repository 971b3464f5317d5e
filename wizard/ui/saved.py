"""Saved scenarios: save, search, page, load, delete (with undo), and compare side by side.

Every name and stored value is visitor text: shown escaped, never as Markdown. The list is
read one page at a time in SQL, so the page costs the same with 10 or 10,000 scenarios.
"""

from __future__ import annotations

import os

import streamlit as st

from wizard import charts
from wizard.core.model import ScenarioError
from wizard.export import cells
from wizard.scenario import store
from wizard.ui import state
from wizard.ui.text import md_escape

MSG = "_store_msg"
CONFIRM_SAVE = "_store_confirm_save"
CONFIRM_DELETE = "_store_confirm_delete"
UNDO = "_store_undo"
PAGE = "saved_page"
SEARCH = "saved_search"


@st.cache_resource(show_spinner=False)
def get_store(url: str) -> store.ScenarioStore:
    """One store (engine) per URL for the server; engines are thread-safe."""
    return store.ScenarioStore(url)


def _store() -> store.ScenarioStore:
    return get_store(store.store_url())


def _say(kind: str, text: str, undo: str | None = None) -> None:
    st.session_state[MSG] = (kind, text)
    st.session_state[UNDO] = undo


def _save(flat: dict[str, str], confirmed: bool = False) -> None:
    name = st.session_state.get("save_name", "")
    st.session_state.pop(CONFIRM_SAVE, None)
    try:
        if not confirmed and _store().exists(store.check_name(name)):
            st.session_state[CONFIRM_SAVE] = (name, flat)  # ask first
            return
        _store().save(name, flat)
    except store.StoreError as exc:
        _say("error", str(exc))
    else:
        _say("success", f"Saved {name!r}." + (" The earlier version is kept." if confirmed
                                              else ""), name if confirmed else None)


def _confirm_save() -> None:
    pending = st.session_state.get(CONFIRM_SAVE)
    if pending:
        st.session_state["save_name"] = pending[0]
        _save(pending[1], confirmed=True)


def _load(name: str) -> None:
    try:
        state.load_flat(_store().load(name))
    except (store.StoreError, ScenarioError) as exc:
        _say("error", f"Could not load {name!r}: {exc}")
    else:
        # Loading is for looking at it: open the Results with a note of what was loaded.
        st.session_state[state.FLASH_KEY] = (  # the page escapes it when it shows it
            f"Loaded {name!r}: the steps now hold it; back to Saved & compare to pick another.")
        state.go("results")


def _delete(name: str) -> None:
    st.session_state.pop(CONFIRM_DELETE, None)
    try:
        if _store().delete(name):
            _say("success", f"Deleted {name!r}.", name)
    except store.StoreError as exc:
        _say("error", str(exc))


def _undo(name: str) -> None:
    try:
        _store().restore(name)
    except store.StoreError as exc:
        _say("error", str(exc))
    else:
        _say("success", f"Restored the earlier version of {name!r}.")


def _first_page() -> None:
    st.session_state[PAGE] = 1


def _messages() -> None:
    msg = st.session_state.pop(MSG, None)
    undo = st.session_state.pop(UNDO, None)
    if msg:
        (st.error if msg[0] == "error" else st.success)(md_escape(msg[1], 600))
    if undo:
        st.button("Undo", key="store_undo", on_click=_undo, args=(undo,),
                  help="Brings back the version kept before this change.")


def _ask_save() -> None:
    pending = st.session_state.get(CONFIRM_SAVE)
    if not pending:
        return
    st.warning(md_escape(f"A scenario named {pending[0]!r} already exists. Replace it? "
                         "The earlier version is kept and can be restored."))
    c1, c2, _ = st.columns([1, 1, 3])
    c1.button("Replace it", key="store_confirm_save", on_click=_confirm_save, type="primary")
    c2.button("Cancel", key="store_cancel_save",
              on_click=lambda: st.session_state.pop(CONFIRM_SAVE, None))


def _row(item: store.SavedScenario) -> None:
    c1, c2, c3 = st.columns([4, 1, 1])
    if item.problem:
        c1.markdown(f"**{md_escape(item.name)}** · cannot be used: {md_escape(item.problem)}")
    else:
        c1.markdown(f"**{md_escape(item.name)}** · {md_escape(item.params.get('provider'))} "
                    f"{md_escape(item.params.get('instance_class', ''))} · "
                    f"updated {item.updated_at:%Y-%m-%d %H:%M} UTC")
        c2.button("Load", key=f"load_{item.name}", on_click=_load, args=(item.name,))
    if st.session_state.get(CONFIRM_DELETE) == item.name:
        c3.button("Really delete?", key=f"delete_yes_{item.name}", on_click=_delete,
                  args=(item.name,), type="primary",
                  help="Deletes it; Undo brings it back.")
    else:
        c3.button("Delete", key=f"delete_{item.name}",
                  on_click=lambda n=item.name: st.session_state.__setitem__(CONFIRM_DELETE, n))


def render(flat: dict[str, str]) -> None:
    st.subheader("Saved scenarios")
    try:
        s = _store()
        search = st.session_state.get(SEARCH, "") or ""
        total = s.count(search)
    except store.StoreError as exc:
        st.error(md_escape(str(exc), 600))
        return
    except Exception as exc:  # an unknown driver error must not break the wizard
        st.error(md_escape(store.describe_failure(exc, store.store_url()), 600))
        return
    _messages()
    with st.form("save_form", border=True):
        st.text_input("Name", key="save_name", max_chars=store.MAX_NAME,
                      help="1 to 80 printable characters. Saving an existing name asks "
                           "first and keeps the earlier version.")
        st.form_submit_button("Save the current scenario", on_click=_save, args=(flat,))
    _ask_save()
    where = "the shared database" if os.environ.get(store.ENV_URL) else "a local SQLite file"
    st.caption(f"Stored in {where} ({store.ENV_URL} selects another).")
    st.text_input("Search saved scenarios by name", key=SEARCH, on_change=_first_page)
    if not total:
        st.info("No saved scenarios match." if search else "No saved scenarios yet.")
        return
    pages = -(-total // store.PAGE_SIZE)
    if not 1 <= int(st.session_state.get(PAGE, 1) or 1) <= pages:
        st.session_state[PAGE] = 1
    page = int(st.number_input(f"Page (of {pages:,})", 1, pages, key=PAGE, step=1))
    try:
        saved = s.page((page - 1) * store.PAGE_SIZE, store.PAGE_SIZE, search)
    except store.StoreError as exc:
        st.error(md_escape(str(exc), 600))
        return
    first = (page - 1) * store.PAGE_SIZE + 1
    st.caption(f"Showing {first:,}–{first + len(saved) - 1:,} of {total:,}.")
    for item in saved:
        _row(item)
    _compare([item for item in saved if not item.problem])


def _compare(saved: list[store.SavedScenario]) -> None:
    st.markdown("#### Compare")
    names = [s.name for s in saved]
    # No key: a new page of names starts a fresh selection of its first four.
    chosen = st.multiselect("Scenarios to compare (from this page)", names,
                            default=names[:4], format_func=lambda n: n)
    recs, failed = {}, []
    for item in saved:
        if item.name not in chosen:
            continue
        try:
            # Through the same checks as a link before anything is computed: a stored row
            # with extreme values is refused here, not sized.
            state.validate_link(item.params)
        except (ScenarioError, ValueError) as exc:
            failed.append(f"{item.name}: {exc}")
            continue
        rec, error, _ = state.recommendation(item.params)
        if rec is None:
            failed.append(f"{item.name}: {error}")
        else:
            recs[item.name] = rec
    for line in failed:
        st.warning(md_escape(line, 600))
    if len(recs) >= 2:
        # CSV-injection safe: its toolbar downloads the cells as shown.
        st.dataframe(cells.safe_rows(charts.compare_rows(recs)), hide_index=True,
                     width="stretch")
        st.altair_chart(charts.compare_chart(recs), width="stretch")
    elif chosen:
        st.caption("Pick at least two scenarios to compare.")
