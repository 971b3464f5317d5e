"""Observe for 30 s from the live step: each service's measured busy connections beside what
the plan assumed, applied in one click.

Same rules as the live check: the operator's switches and allowlists (check_allowed with
the port list), the visitor's rate and the process-wide slots (wizard/live/limits.py), the
password in a form cleared on submit and dropped after the run. Application names are
server text: shown in a table (never Markdown), cut to 64 characters.
"""

from __future__ import annotations

import asyncio
import time

import streamlit as st

from wizard.core import measured as core_measured
from wizard.core.model import MeasuredLoad, Recommendation, ScenarioError
from wizard.scenario import links, redact
from wizard.ui import state
from wizard.ui.text import md_escape

SECONDS = 30.0
INTERVAL_MS = 100
LIMIT_S = SECONDS + 30.0  # connect, samples, close: the whole run, bounded


def _take_secrets() -> None:
    """Submit callback: the URL and password leave the widgets before the run; a URL that
    holds a secret does not stay in its field."""
    url = st.session_state.get("observe_url", "") or ""
    st.session_state["_observe_pending"] = (url, st.session_state.get("observe_password", ""))
    st.session_state["observe_url"] = redact.url_to_keep(url)
    st.session_state["observe_password"] = ""


def _processes(rec: Recommendation, name: str) -> int | None:
    svc = next((v for v in rec.scenario.services if v.name == name), None)
    if svc is None:
        return None
    if svc.serverless_concurrency is not None:
        return svc.serverless_concurrency
    return svc.app_instances * svc.workers


def rows(o, rec: Recommendation | None) -> list[dict[str, object]]:
    """One row per application_name: measured busy, and the plan's assumption when a
    service of the plan has that name (offered load per process x processes)."""
    out = []
    for s in o.services:
        row: dict[str, object] = {"application_name": s.application_name[:64],
                                  "busy mean": round(s.busy_mean, 2), "busy p95": s.busy_p95,
                                  "busy max": s.busy_max, "open max": s.open_max,
                                  "plan assumed (busy)": None, "service in the plan": ""}
        if rec is not None:
            for v in rec.services:
                if v.name == s.application_name:
                    procs = _processes(rec, v.name) or 0
                    ld = v.rec.load
                    row["service in the plan"] = v.name
                    row["plan assumed (busy)"] = (round(ld.offered_load * procs, 2)
                                                  if ld is not None else "no load given")
        out.append(row)
    return out


def overrides(o, rec: Recommendation, flat: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Flat parameters that size each matching service from its measurement (the
    `measured_*` keys of the parameter table: links, saved scenarios and files keep them,
    the rps x hold time given stays beside them as the guess), and what that changes."""
    out: dict[str, str] = {}
    words: list[str] = []
    names = {flat.get(links.service_key(i, "name")): i for i in range(1, 100)
             if links.service_key(i, "name") in flat}
    for s in o.services:
        svc = next((v for v in rec.scenario.services if v.name == s.application_name),
                   None)
        if svc is None or s.busy_mean <= 0:
            continue
        procs = _processes(rec, svc.name) or 1
        m = core_measured.check(MeasuredLoad(round(s.busy_mean, 4), s.busy_p95, procs,
                                             o.started_at, o.where, round(o.seconds, 3)))
        i = names.get(svc.name)
        prefix = links.service_key(i, "") if i else ""
        out.update({prefix + k: links.flat_text(v) for k, v in core_measured.flat(m).items()})
        words.append(f"{svc.name}: {m.busy_mean:.2f} busy (p95 {m.busy_p95:g}) over {procs} "
                     "processes")
    return out, words


def measured_words(values, prefix: str = "") -> str | None:
    """The measured load a form row carries (keys `prefix` + measured_*), in words; None
    when it has none. Plain text: the caller escapes it (md_escape)."""
    mean = values.get(prefix + "measured_busy_mean")
    if not isinstance(mean, int | float):
        return None
    p95 = values.get(prefix + "measured_busy_p95")
    p95 = f"{p95:g}" if isinstance(p95, int | float) else str(p95)
    return (f"load measured: {mean:g} busy connections (p95 {p95}) over "
            f"{values.get(prefix + 'measured_processes')} processes (poolwise observe, "
            f"{values.get(prefix + 'measured_where')}, {values.get(prefix + 'measured_at')})")


def forget(prefix: str = "") -> None:
    """Button callback: drop the measured load of the one fleet ("") or of a service
    ("s2_"); its rps x hold time, if given, sizes it again."""
    for key in state.MEASURED_KEYS:
        st.session_state[prefix + key] = None
    st.session_state.pop("_observe_applied", None)


def measured_note(prefix: str = "") -> None:
    """On the load forms: that the load is measured (it sizes, not the numbers below), and
    a button to forget it."""
    words = measured_words(st.session_state, prefix)
    if words is None:
        return
    st.info(md_escape(words[:1].upper() + words[1:], 400) + ". It sizes the pools; the "
            "requests/s and hold time below are kept as the guess it is compared with.",
            icon=":material/monitoring:")
    st.button("Forget the measured load", key=f"forget_measured_{prefix}", on_click=forget,
              args=(prefix,), icon=":material/backspace:")


def _apply() -> None:
    kept = st.session_state.get("_observe_result")
    rec = st.session_state.get("_observe_rec")
    if kept is None or rec is None:
        return
    before = state.current_flat()
    new, words = overrides(kept, rec, before)
    if not new:
        st.session_state["_observe_msg"] = ("error", "No service of the plan was seen busy: "
                                            "nothing to apply.")
        return
    try:
        state.load_flat({**before, **new})
    except ScenarioError as exc:
        st.session_state["_observe_msg"] = ("error", "Could not apply the measured load: "
                                            + md_escape(exc))
        return
    st.session_state["_observe_applied"] = (new, words, kept.where, kept.started_at)
    st.session_state["_observe_msg"] = (
        "ok", "Applied the measured load (poolwise observe, "
        f"{md_escape(kept.where, 120)}, {kept.started_at}): "
        + "; ".join(md_escape(w, 200) for w in words)
        + ". The pools follow the measured busy connections; share links, saved scenarios "
          "and scenario files keep the measurement.")


def _still_applied() -> None:
    """While the plan's load is the one applied from a measurement, say so (the share
    link, saved scenarios and files carry the measurement as `measured_*` keys)."""
    applied = st.session_state.get("_observe_applied")
    if applied is None:
        return
    new, words, where, at = applied
    flat = state.current_flat()
    if any(flat.get(k) != v for k, v in new.items()):
        st.session_state.pop("_observe_applied", None)  # changed since: no longer measured
        return
    st.info(f"The plan's load is measured (poolwise observe, {md_escape(where, 120)}, {at}): "
            + "; ".join(md_escape(w, 200) for w in words) + ".",
            icon=":material/monitoring:")


def render(live, rec: Recommendation | None) -> None:
    """The "Observe for 30 s" form and its result (called from the live step)."""
    from wizard.live import limits
    from wizard.live import observe as obs

    st.markdown("#### Observe the real load (optional)")
    st.caption(f"Samples pg_stat_activity every {INTERVAL_MS} ms for {SECONDS:g} s: one small "
               "read-only aggregate query per sample, the busy connections (state active) of "
               "each application_name. By Little's law that is each service's offered load, "
               "measured instead of guessed. The exported modules set application_name to the "
               "service's name.")
    if "observe_url" not in st.session_state:  # the live check's URL, if it held no secret
        st.session_state["observe_url"] = st.session_state.get("_live_url_kept", "")
    with st.form("observe_form", clear_on_submit=False):
        st.text_input("Database URL (without the password)", key="observe_url")
        st.text_input("Password", type="password", key="observe_password")
        submitted = st.form_submit_button(f"Observe for {SECONDS:g} s",
                                          on_click=_take_secrets)
    url, password = st.session_state.pop("_observe_pending", ("", ""))
    if submitted:
        started = time.monotonic()
        try:
            target = live.parse_target(url, password or None)
            if target.database == "pgbouncer":
                st.error("PgBouncer's admin console is read from the command line only "
                         "(python -m wizard observe --url .../pgbouncer); here, observe the "
                         "database itself, directly or through PgBouncer.")
                return
            live.check_allowed(target)
            limits.take_token(st.session_state.setdefault("_live_history", []))
            acc = obs.Accumulator()
            at = obs.utc_now()
            with st.spinner(f"Observing for {SECONDS:g} s…"):
                limits.run_gated(lambda: asyncio.wait_for(obs.observe(
                    target, acc, seconds=SECONDS, interval_ms=INTERVAL_MS, visitor=True),
                    timeout=LIMIT_S), started, live.CONNECT_TIMEOUT)
        except Exception as exc:  # one line, as the live check shows it
            err = limits.for_visitor(exc) if hasattr(exc, "code") else limits.GENERIC
            st.error("Observe failed: " + md_escape(redact.redact(
                getattr(err, "message", type(err).__name__)), 400))
            if getattr(err, "fix", ""):
                st.info("**Fix:** " + md_escape(redact.redact(err.fix), 400))
            return
        st.session_state["_observe_result"] = obs.result(target, acc, at, INTERVAL_MS)
    _still_applied()
    kept = st.session_state.get("_observe_result")
    if kept is None:
        return
    st.session_state["_observe_rec"] = rec
    st.caption(f"Measured at {md_escape(kept.where, 120)} from {kept.started_at}: "
               f"{kept.samples} samples over {kept.seconds:g} s.")
    st.dataframe(rows(kept, rec), hide_index=True, key="observe_table")
    for note in kept.notes:
        st.caption(md_escape(note, 400))
    if rec is not None:
        st.button("Use the measured load", key="observe_apply", on_click=_apply,
                  help="Sizes each service of the plan seen here from its measured busy "
                       "connections (busy mean over its processes; bursts from the p95).")
    msg = st.session_state.pop("_observe_msg", None)
    if msg:
        (st.success if msg[0] == "ok" else st.error)(msg[1])
