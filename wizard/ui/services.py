"""Step 3 with several services: one row per service (add, rename, remove in a table), each
with its fleet, load, path and share weight, and its less common settings folded below.

Each service's values live in session state under its share key (`s2_workers`), so the
share link, the saved scenario and the result read them like any other parameter. Names
are visitor text: the table and st.text show them as typed, never as Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from wizard import share
from wizard.model import SERVICE_KINDS
from wizard.ui import state
from wizard.ui.labels import HELP
from wizard.ui.text import md_escape

VERSION = "_services_v"  # bumped on every applied edit: the table starts afresh from state
TABLE = "services_table"  # the container around the table (st-key-services_table)
# The table's columns (share keys); the rest of share.SERVICE_KEYS are folded per service.
COLUMNS = ("name", "kind", "app_instances", "max_app_instances", "workers", "engines",
           "serverless_concurrency", "rps", "hold_ms", "weight", "endpoints", "proxy")
INTEGER = ("app_instances", "max_app_instances", "workers", "engines",
           "serverless_concurrency")
NUMBER = ("rps", "hold_ms", "weight")
FOLDED = ("deploy_surge_percent", "app_vcpus", "split", "p95_hold_ms", "current_pool_size",
          "current_max_overflow", "current_pool_recycle", "current_poolclass")
POOLCLASSES = ("AsyncAdaptedQueuePool", "NullPool", "QueuePool")
# A new row: a worker fleet of one instance (the first free name of these).
NEW_NAMES = ("worker", "cron", "jobs", "api", "web")
NEW_ROW = {"kind": "worker", "app_instances": 1, "workers": 1, "engines": 1,
           "deploy_surge_percent": 25, "app_vcpus": 2, "split": 0.7, "weight": 1.0,
           "current_poolclass": "AsyncAdaptedQueuePool"}
SHORT_PROXY = {"": "the path of step 2"}


def editor_key() -> str:
    return f"services_editor_{st.session_state.get(VERSION, 0)}"


def _free_name(taken: set[str], i: int) -> str:
    for name in NEW_NAMES:
        if name not in taken:
            return name
    return f"service-{i}"


def new_row(taken: set[str], i: int) -> dict[str, Any]:
    return {**NEW_ROW, "name": _free_name(taken, i)}


def write_rows(rows: list[Mapping[str, Any]]) -> None:
    """Replace every service in session state by these rows (renumbered from 1)."""
    state.clear_services()
    for i, row in enumerate(rows, start=1):
        for key in share.SERVICE_KEYS:
            st.session_state[share.service_key(i, key)] = row.get(key)
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1


def start() -> None:
    """Button callback: the one fleet becomes service 1 ("app"), and a worker fleet joins it."""
    v = state.current_values()
    first: dict[str, Any] = {
        "name": "app", "kind": "serverless" if v.get("serverless_on") else "web",
        "app_instances": v["app_instances"], "max_app_instances": v.get("max_app_instances"),
        "deploy_surge_percent": v["deploy_surge_percent"], "workers": v["workers"],
        "engines": v["engines"], "app_vcpus": v["app_vcpus"], "split": v["split"],
        "serverless_concurrency": v.get("serverless_concurrency") if v.get("serverless_on")
        else None, "weight": 1.0, "current_poolclass": "AsyncAdaptedQueuePool"}
    if v.get("load_on"):
        first.update(rps=v["rps"], hold_ms=v["hold_ms"], p95_hold_ms=v.get("p95_hold_ms"))
    if v.get("current_on"):
        first.update({k: v.get(k) for k in ("current_pool_size", "current_max_overflow",
                                            "current_pool_recycle", "current_poolclass")})
    write_rows([first, new_row({"app"}, 2)])


def add() -> None:
    """Button callback: one more service (a worker fleet with a free name)."""
    if not state.room_for_service(st.session_state):
        return  # the documented maximum: the button says so
    rows = state.service_rows(st.session_state)
    write_rows([*rows, new_row({str(r["name"]) for r in rows}, len(rows) + 1)])


def back_to_one() -> None:
    """Button callback: drop the services; the one-fleet form shows its own values again."""
    state.clear_services()
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1


def _cell(key: str, value: Any) -> Any:
    """A table cell for a stored value."""
    if key == "endpoints":
        return list(value or [])
    if key in ("name", "kind", "proxy"):
        return "" if value is None else str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _stored(key: str, value: Any) -> Any:
    """A stored value for a table cell (empty cells are None; numbers as typed)."""
    import pandas as pd  # loaded with the table already

    if key == "endpoints":
        items = [] if value is None or isinstance(value, float) else list(value)
        return [str(x) for x in items] or None
    if value is None or pd.isna(value):
        return None
    if key == "proxy":
        return str(value) or None
    if key in ("name", "kind"):
        return str(value)
    number = float(value)
    return int(number) if number.is_integer() and key in INTEGER else number


def table(rows: list[Mapping[str, Any]]):
    """The rows as the table's DataFrame (typed columns, so cells edit as numbers)."""
    import pandas as pd

    data = {key: [_cell(key, r.get(key)) for r in rows] for key in COLUMNS}
    df = pd.DataFrame(data, columns=list(COLUMNS))
    for key in INTEGER:
        df[key] = pd.array([None if x is None else x for x in data[key]], dtype="Float64")
    for key in NUMBER:
        df[key] = pd.array(data[key], dtype="Float64")
    return df


def rows_of(df) -> list[tuple[int | None, dict[str, Any]]]:
    """(row of the stored services it edits, or None for a new row; its stored values) for
    every row of a table: the editor keeps each row's index, new rows get new ones."""
    out = []
    for idx, record in zip(df.index, df.to_dict("records"), strict=True):
        try:
            at: int | None = int(idx)
        except (TypeError, ValueError):
            at = None
        out.append((at, {key: _stored(key, record.get(key)) for key in COLUMNS}))
    return out


def _config(provider: str, roles: list[str]) -> dict[str, Any]:
    cc = st.column_config
    whole = {"step": 1, "format": "%g"}
    return {
        "name": cc.TextColumn("service", help="Lower-case letters, digits, - or _; it "
                              "becomes the engines' application_name.", max_chars=40,
                              pinned=True),
        "kind": cc.SelectboxColumn("kind", options=list(SERVICE_KINDS),
                                   help="web (requests), worker (queue consumers), cron "
                                        "(short jobs, migrations: a small fixed share) or "
                                        "serverless (one connection per invocation).",
                                   default="worker"),
        "app_instances": cc.NumberColumn("instances", help=HELP["app_instances"], default=1,
                                         **whole),
        "max_app_instances": cc.NumberColumn("autoscaling max", help=HELP["max_app_instances"],
                                             **whole),
        "workers": cc.NumberColumn("workers", help=HELP["workers"], default=1, **whole),
        "engines": cc.NumberColumn("engines", help=HELP["engines"], default=1, **whole),
        "serverless_concurrency": cc.NumberColumn(
            "concurrency", help=HELP["serverless_concurrency"] + " Serverless only.", **whole),
        "rps": cc.NumberColumn("req/s per inst.", help=HELP["rps"] + " Empty: no load.",
                               format="%g"),
        "hold_ms": cc.NumberColumn("hold ms", help=HELP["hold_ms"], format="%g"),
        "weight": cc.NumberColumn("weight", help="Without a load, each of its engines gets "
                                  "this times what an engine of weight 1 gets of what is "
                                  "left (default 1).", default=1.0, format="%g"),
        "endpoints": cc.MultiselectColumn("endpoints", options=roles,
                                          help="Where it connects; empty: every endpoint. "
                                               "With replicas, list the primary too."),
        "proxy": cc.SelectboxColumn("own path", options=["", *state.proxies_for(provider)],
                                    format_func=lambda p: SHORT_PROXY.get(p, p),
                                    help="Its own proxy (e.g. cron straight to PostgreSQL "
                                         "while the API goes through PgBouncer); empty: the "
                                         "path of step 2."),
    }


def _apply(before: list[tuple[int | None, dict[str, Any]]],
           edited: list[tuple[int | None, dict[str, Any]]]) -> bool:
    """Store the table's edits: kept rows keep their folded settings, new rows get a free
    name and the defaults for what they leave empty. True when anything changed."""
    if edited == before:
        return False
    stored = state.service_rows(st.session_state)
    taken = {str(r["name"]) for _, r in edited if r.get("name")}
    out = []
    for i, (at, row) in enumerate(edited, start=1):
        if at is not None and 0 <= at < len(stored):
            out.append({**stored[at], **row})
            continue
        base = new_row(taken, i)
        taken.add(base["name"])
        out.append({**base, **{k: v for k, v in row.items() if v is not None}})
    write_rows(out)
    return True


def _problem_here() -> tuple[str | None, str]:
    where, message = state._problem(state.flat_key(state.current_flat()))
    return where, message


def _flag_table() -> None:
    """Under the table: the core's message when it refuses one of the table's values."""
    where, message = _problem_here()
    m = state.SERVICE_KEY.fullmatch(where or "")
    if message and (where == "services" or (m and m.group(2) in COLUMNS)):
        st.error(md_escape(message), icon=":material/error:")


def render() -> None:
    """The services table, its buttons, and each service's folded settings."""
    provider = st.session_state["provider"]
    n_rep = state._count(st.session_state.get("replicas")) or 0
    roles = ["primary", *(f"replica-{i}" for i in range(1, min(n_rep, state.MAX_REPLICAS) + 1))]
    rows = [{k: r.get(k) for k in COLUMNS} for r in state.service_rows(st.session_state)]
    st.caption("Every service that opens connections to this database, each at its "
               "autoscaling peak at once. Add, rename or remove rows; the result beside "
               "shows each one's pool.")
    with st.container(key=TABLE):
        edited = st.data_editor(table(rows), key=editor_key(), num_rows="dynamic",
                                hide_index=True, column_config=_config(provider, roles),
                                column_order=list(COLUMNS), width="stretch",
                                placeholder="")
    if _apply(rows_of(table(rows)), rows_of(edited)):
        # Draw the table afresh from the stored rows: the edited one on screen would keep
        # its edits apart from them and the next edit would be lost.
        st.rerun()
    _flag_table()
    bar = st.container(horizontal=True, gap="small")
    room = state.room_for_service(st.session_state)
    bar.button("Add a service", key="services_add", on_click=add, icon=":material/add:",
               disabled=not room, help=None if room else
               f"At most {state.budget.MAX_SERVICES} services share one database.")
    bar.button("Back to one fleet", key="services_off", on_click=back_to_one,
               icon=":material/undo:", type="tertiary",
               help="Drop the services: the single-fleet form comes back with its values.")
    for i, row in enumerate(state.service_rows(st.session_state), start=1):
        _folded(i, row)


def _folded(i: int, row: Mapping[str, Any]) -> None:
    """Service i's less common settings, in an expander named after it (as typed)."""
    key = share.service_key
    name = row.get("name") or f"service {i}"
    with st.expander(f"{md_escape(name, 60)}: deploy surge, vCPUs, split, p95, today's pool"):
        c1, c2 = st.columns(2)
        state.number_field(c1, "Rolling-deploy surge (%)", key(i, "deploy_surge_percent"))
        state.number_field(c2, "vCPUs per app instance", key(i, "app_vcpus"))
        state.number_field(c1, "pool_size share of the budget", key(i, "split"), step=0.05,
                           format="%g")
        state.number_field(c2, "p95 hold time (ms)", key(i, "p95_hold_ms"), step=5.0,
                           format="%g", value=None, placeholder="unknown")
        st.caption("The pool it runs today (empty: not compared).")
        c1, c2 = st.columns(2)
        state.number_field(c1, "Current pool_size", key(i, "current_pool_size"), value=None)
        state.number_field(c2, "Current max_overflow", key(i, "current_max_overflow"),
                           value=None)
        state.number_field(c1, "Current pool_recycle (s, -1 = off)",
                           key(i, "current_pool_recycle"), value=None)
        pc = key(i, "current_poolclass")
        if st.session_state.get(pc) not in POOLCLASSES:
            st.session_state[pc] = POOLCLASSES[0]
        with c2:
            st.selectbox("Current poolclass", POOLCLASSES, key=pc, persist_state="session")
            state.flag(pc)
