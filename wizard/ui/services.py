"""Step 3 with several services: each service a small form (its essentials on one row: name,
kind, instances, autoscaling maximum, workers; where it connects, its load, its path and
today's pool folded under it), with buttons to add (up to limits.MAX_SERVICES) and remove.

Each service's values live in session state under its share key (`s2_workers`), so the
share link, the saved scenario and the result read them like any other parameter. Names
are visitor text: the fields show them as typed, labels escape them (never Markdown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from wizard.core.limits import MAX_SERVICES
from wizard.core.model import SERVICE_KINDS, field_name
from wizard.scenario import links
from wizard.ui import observe, state
from wizard.ui.labels import HELP
from wizard.ui.text import md_escape

TABLE = "services_table"  # the container around the services (st-key-services_table)
POOLCLASSES = ("AsyncAdaptedQueuePool", "NullPool", "QueuePool")
# A new row: a worker fleet of one instance (the first free name of these).
NEW_NAMES = ("worker", "cron", "jobs", "api", "web")
NEW_ROW = {"kind": "worker", "app_instances": 1, "workers": 1, "engines": 1,
           "deploy_surge_percent": 25, "app_vcpus": 2, "split": 0.7, "weight": 1.0,
           "current_poolclass": "AsyncAdaptedQueuePool"}
SHORT_PROXY = {"": "the path of step 2"}


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
        for key in links.SERVICE_KEYS:
            st.session_state[links.service_key(i, key)] = row.get(key)


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
    first.update({k: v[k] for k in state.MEASURED_KEYS if v.get(k) is not None})
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


def remove(i: int) -> None:
    """Button callback: drop service i; the ones below move up with all their values."""
    rows = state.service_rows(st.session_state)
    write_rows([r for j, r in enumerate(rows, start=1) if j != i])


def _sync_endpoints(i: int) -> None:
    """Multiselect callback: an empty choice is the default (every endpoint)."""
    chosen = st.session_state.get(f"_svc_ep_{i}") or []
    st.session_state[links.service_key(i, "endpoints")] = list(chosen) or None


ESSENTIALS = (("app_instances", "instances", 76), ("max_app_instances", "autoscale max", 104),
              ("workers", "workers", 72))
# Per-service fields that are whole numbers: "%g" shows 2.5 as typed (the core refuses it
# beside the field) where "%.0f" would show 3.
WHOLE = {"format": "%g", "value": None}


def _number(label: str, key: str, width: int | str = "stretch", **kw) -> None:
    st.number_input(label, key=key, help=HELP.get(key.split("_", 1)[1]),
                    **{**state.WHOLE, **WHOLE, **kw}, width=width)


def _problems(i: int) -> None:
    """Under service i's row: the core's message when it refuses one of its values."""
    where, message = _problem_here()
    m = state.SERVICE_KEY.fullmatch(where or "")
    if message and m and int(m.group(1)) == i:
        st.error(md_escape(message), icon=":material/error:")


def _endpoints_words(row: Mapping[str, Any], roles: list[str]) -> str:
    chosen = row.get("endpoints")
    if not chosen:
        return ("every endpoint (the default): " + ", ".join(roles)) if len(roles) > 1 \
            else "the primary"
    return ", ".join(str(x) for x in chosen)


def _summary(row: Mapping[str, Any], roles: list[str]) -> str:
    """One line under a service's essentials: where it connects, its load, today's pool."""
    load = (f"{row['rps']:g} req/s per instance x {row.get('hold_ms') or 0:g} ms"
            if isinstance(row.get("rps"), int | float) else "no load given")
    load = observe.measured_words(row) or load
    pool = row.get("current_pool_size")
    today = (f"today {pool} + {row.get('current_max_overflow') or 0}"
             if isinstance(pool, int | float) else "today's pool not given")
    return f"Connects to {_endpoints_words(row, roles)} · {load} · {today}"


def render() -> None:
    """Each service as a small form: its essentials on one row, where it connects, its load
    and today's pool folded under it; buttons to add (up to the core's maximum) or go back."""
    provider = st.session_state["provider"]
    n_rep = state._count(st.session_state.get("replicas")) or 0
    roles = ["primary", *(f"replica-{i}" for i in range(1, min(n_rep, state.MAX_REPLICAS) + 1))]
    rows = state.service_rows(st.session_state)
    st.caption("Every service that opens connections to this database, each at its "
               "autoscaling peak at once. The result beside shows each one's pool.")
    with st.container(key=TABLE):
        for i, row in enumerate(rows, start=1):
            _service(i, row, provider, roles)
        where, message = _problem_here()
        if message and where == "services":
            st.error(md_escape(message), icon=":material/error:")
    bar = st.container(horizontal=True, gap="small")
    full = len(rows) >= MAX_SERVICES
    bar.button("Add a service", key="services_add", on_click=add, icon=":material/add:",
               disabled=full, help=(f"At most {MAX_SERVICES} services share one database."
                                    if full else None))
    bar.button("Back to one fleet", key="services_off", on_click=back_to_one,
               icon=":material/undo:", type="tertiary",
               help="Drop the services: the single-fleet form comes back with its values.")
    if full:
        st.caption(f"{MAX_SERVICES} services: the most one database is sized for.")


def _service(i: int, row: Mapping[str, Any], provider: str, roles: list[str]) -> None:
    key = links.service_key
    kind = key(i, "kind")
    if st.session_state.get(kind) not in SERVICE_KINDS:
        st.session_state[kind] = ("serverless" if row.get("serverless_concurrency")
                                  else "web")
    with st.container(border=True, key=f"service_{i}"):
        # Two groups that wrap as wholes: on a phone the fleet's numbers (instances and
        # autoscaling maximum above all) stay side by side under the name and kind.
        line = st.container(horizontal=True, gap="small", vertical_alignment="bottom")
        who = line.container(horizontal=True, gap="small", width="content")
        size = line.container(horizontal=True, gap="small", width="content")
        with who:
            st.text_input("service", key=key(i, "name"), max_chars=links.max_chars("name"),
                          width=100, persist_state="session", help=HELP["name"])
            st.selectbox("kind", list(SERVICE_KINDS), key=kind, width=96,
                         persist_state="session", help=HELP["kind"])
        with size:
            for name, label, width in ESSENTIALS:
                _number(label, key(i, name), width=width,
                        placeholder="same" if name == "max_app_instances" else None)
        _problems(i)
        under = st.container(horizontal=True, gap="small", vertical_alignment="center")
        under.caption(md_escape(_summary(row, roles)))
        under.button("Remove", key=f"services_remove_{i}", on_click=remove, args=(i,),
                     icon=":material/delete:", type="tertiary",
                     help="Remove this service; the ones below move up.")
        _folded(i, row, provider, roles)


def _folded(i: int, row: Mapping[str, Any], provider: str, roles: list[str]) -> None:
    """Service i's endpoints, load, path and today's pool, in an expander named after it."""
    key = links.service_key
    name = row.get("name") or f"service {i}"
    with st.expander(f"{md_escape(name, 60)}: endpoints, load, path, today's pool"):
        ep = f"_svc_ep_{i}"
        st.session_state[ep] = [r for r in (row.get("endpoints") or []) if r in roles]
        st.multiselect("Endpoints it connects to", roles, key=ep, on_change=_sync_endpoints,
                       args=(i,), placeholder="every endpoint (default)",
                       help=HELP["endpoints"])
        st.caption(md_escape("Connects to " + _endpoints_words(row, roles) + "."))
        observe.measured_note(key(i, ""))
        c1, c2 = st.columns(2)
        state.number_field(c1, "Requests/s per instance", key(i, "rps"), step=1.0,
                           format="%g", value=None, placeholder="no load")
        state.number_field(c2, "Hold time per request (ms)", key(i, "hold_ms"), step=5.0,
                           format="%g", value=None, placeholder="unknown")
        state.number_field(c1, "p95 hold time (ms)", key(i, "p95_hold_ms"), step=5.0,
                           format="%g", value=None, placeholder="unknown")
        state.number_field(c2, "Engines per process", key(i, "engines"), format="%g",
                           value=None)
        pr = key(i, "proxy")
        options = ["", *state.proxies_for(provider)]
        if st.session_state.get(pr) is not None and st.session_state.get(pr) not in options:
            options.append(str(st.session_state[pr]))  # kept as given; the core flags it
        if st.session_state.get(pr) is None:
            st.session_state[pr] = ""
        with c1:
            st.selectbox("Its own path", options, key=pr, persist_state="session",
                         format_func=lambda p: SHORT_PROXY.get(p, p),
                         help="Its own proxy (e.g. cron straight to PostgreSQL while the "
                              "API goes through PgBouncer); empty: the path of step 2.")
            state.flag(pr)
        state.number_field(c2, "Serverless concurrency", key(i, "serverless_concurrency"),
                           format="%g", value=None, placeholder="not serverless")
        state.number_field(c1, "Share weight (no load)", key(i, "weight"), step=0.5,
                           format="%g", value=None)
        state.number_field(c2, "Rolling-deploy surge (%)", key(i, "deploy_surge_percent"),
                           format="%g", value=None)
        state.number_field(c1, "vCPUs per app instance", key(i, "app_vcpus"), format="%g",
                           value=None)
        state.number_field(c2, "pool_size share of the budget", key(i, "split"), step=0.05,
                           format="%g", value=None)
        st.caption("The pool it runs today (empty: not compared).")
        c1, c2 = st.columns(2)
        state.number_field(c1, "Current pool_size", key(i, "current_pool_size"), format="%g",
                           value=None)
        state.number_field(c2, "Current max_overflow", key(i, "current_max_overflow"),
                           format="%g", value=None)
        state.number_field(c1, "Current pool_recycle (s, -1 = off)",
                           key(i, "current_pool_recycle"), format="%g", value=None)
        pc = key(i, "current_poolclass")
        if st.session_state.get(pc) not in POOLCLASSES:
            st.session_state[pc] = POOLCLASSES[0]
        with c2:
            st.selectbox("Current poolclass", POOLCLASSES, key=pc, persist_state="session")
            state.flag(pc)
        state.number_field(c1, field_name("current_statement_cache_size"),
                           key(i, "current_statement_cache_size"), format="%g", value=None)


def _problem_here() -> tuple[str | None, str]:
    where, message = state._problem(state.flat_key(state.current_flat()))
    return where, message
