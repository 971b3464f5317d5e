"""Live check: read max_connections and friends from the real server, feed them back.

The URL and password live only in a form that is cleared on submit; neither is ever
shown, cached, stored or put into the link.
"""

from __future__ import annotations

import asyncio
import importlib
import time

import streamlit as st

from wizard import redact
from wizard.model import Recommendation, ScenarioError
from wizard.ui import state
from wizard.ui.text import md_escape

LIMIT_S = 120.0  # a rerun does not cancel a pending await: bound the whole check


def _live():
    """wizard.live, or None while it is not available (built separately)."""
    try:
        mod = importlib.import_module("wizard.live")
    except ImportError:
        return None
    need = ("parse_target", "run_live_check", "report_overrides")
    return mod if all(hasattr(mod, f) for f in need) else None


_scrub = redact.scrub


def _apply(overrides: dict[str, str]) -> None:
    flat = state.current_flat()
    flat.update(overrides)
    try:
        state.load_flat(flat)
    except ScenarioError as exc:
        st.session_state["_live_msg"] = ("Could not apply the measured values: "
                                         + md_escape(exc))
    else:
        st.session_state["_live_msg"] = "Measured values applied: see the Database step."


def _take_secrets() -> None:
    """Submit callback: move URL and password out of the widgets before the run, so the
    form is empty on the server too; the run pops them and drops them when done."""
    st.session_state["_live_pending"] = (st.session_state.get("live_url", ""),
                                         st.session_state.get("live_password", ""))
    st.session_state["live_url"] = ""
    st.session_state["live_password"] = ""


def _show(report, overrides: dict[str, str]) -> None:
    r = report.readings
    st.success(f"Checked {md_escape(report.target)} in {report.elapsed_s:g} s.")
    if r is not None:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("max_connections (measured)", f"{r.max_connections:,}")
        c2.metric("reserved", r.reserved)
        c3.metric("in use now", r.in_use)
        c4.metric("free for this role", r.free)
        st.caption(f"PostgreSQL {md_escape(r.server_version)}; superuser_reserved_connections "
                   f"{r.superuser_reserved_connections}, reserved_connections "
                   f"{r.reserved_connections if r.reserved_connections is not None else 'n/a'}.")
    if report.pooler is not None:
        st.info(f"Pooler: {md_escape(report.pooler.message, 600)}")
    if report.pre_ping is not None:
        p = report.pre_ping
        st.caption(f"pool_pre_ping: checkout p50 {p.pre_ping_checkout.p50_ms:.2f} ms with it, "
                   f"{p.plain_checkout.p50_ms:.2f} ms without, SELECT 1 "
                   f"{p.select1.p50_ms:.2f} ms ({p.n} checkouts each).")
    if report.exhaustion is not None:
        e = report.exhaustion
        st.caption(f"Exhaustion: {e.holders} holders, {e.opened} opened, timed out: "
                   f"{e.timed_out} after {e.waited_s:.1f} s.")
    for err in report.errors:
        st.warning(f"{err.stage}: {md_escape(err.message, 600)} **Fix:** "
                   f"{md_escape(err.fix, 600)}")
    if overrides:
        st.button("Use the measured values", key="live_apply", on_click=_apply,
                  args=(overrides,), type="primary")


def _refusal(live) -> str | None:
    """Why this request may not run a live check at all (None: it may)."""
    if not live.live_enabled():
        return ("The live check is switched off on this deployment. Run it from your own "
                "machine: python -m wizard live --url ...")
    try:
        host = st.context.headers.get("Host")
    except Exception:  # no request context (AppTest)
        host = None
    if not live.request_host_allowed(host):
        return ("This page was opened under an address this deployment does not serve, so "
                "the live check is off here. Open poolwise at its usual address.")
    return None


def _fail(failure: BaseException, password: str, url: str, limits) -> None:
    """Show why the check failed, in one generic sentence for network failures."""
    if isinstance(failure, TimeoutError):
        failure = limits.GENERIC
    if hasattr(failure, "code"):
        failure = limits.for_visitor(failure)
    text = getattr(failure, "message", None) or type(failure).__name__
    fix = getattr(failure, "fix", "") or ("check the URL (host, port, database, user) and the "
                                          "password, then run it again.")
    st.error("Live check failed: " + md_escape(_scrub(text, password, url), 600))
    st.info("**Fix:** " + md_escape(_scrub(fix, password, url), 600))


def render(rec: Recommendation | None) -> None:
    st.subheader("Live check (optional)")
    live = _live()
    if live is None:
        st.warning("The live check is not available in this installation "
                   "(wizard.live is missing).")
        return
    from wizard.live import limits

    refused = _refusal(live)
    if refused:
        st.info(refused)
        st.session_state.pop("_live_pending", None)
        return
    st.caption("Connects read-only to your database (or pooler), reads max_connections, the "
               "reserves and who is connected, detects a transaction pooler and times "
               "pre-ping. Nothing is written; every connection is closed at the end. The "
               "password is used for this check only and never stored or shown; the "
               "server's own credentials are never used.")
    msg = st.session_state.pop("_live_msg", None)
    if msg:
        st.info(msg)
    with st.form("live_form", clear_on_submit=True):
        st.text_input("Database URL (without the password)", key="live_url",
                      placeholder="postgresql://app_user@db.example.com:5432/app"
                                  "?sslmode=require",
                      help="The host your app connects to. Put the password in the "
                           "next field, not in the URL.")
        st.text_input("Password", type="password", key="live_password",
                      help="Used for this check only; cleared when you submit.")
        pre_ping = st.slider("Pre-ping checkouts to time", 0, 50, 20, key="live_pre_ping")
        exhaust = st.checkbox("Also prove the recommended pool runs out as expected "
                              "(opens pool_size + max_overflow connections briefly)",
                              key="live_exhaust", disabled=rec is None)
        submitted = st.form_submit_button("Run the live check", type="primary",
                                          on_click=_take_secrets)
    url, password = st.session_state.pop("_live_pending", ("", ""))
    if submitted:
        try:
            target = live.parse_target(url, password or None)
            live.check_allowed(target)
            limits.take_token(st.session_state.setdefault("_live_history", []))
        except Exception as exc:
            _fail(exc, password, url, limits)
            return
        failure = None
        started = time.monotonic()
        with st.status("Running the live check…", expanded=True) as status:
            def progress(stage: str, fraction: float) -> None:
                if fraction == 0.0:
                    status.write(f"{stage}…")

            try:
                with limits.GATE.slot():
                    report = asyncio.run(asyncio.wait_for(live.run_live_check(
                        target, pre_ping=pre_ping,
                        exhaustion=rec.engines[0] if (exhaust and rec is not None) else None,
                        progress=progress), timeout=LIMIT_S))
            except Exception as exc:
                failure = exc
                if getattr(exc, "code", "") in limits.NETWORK_CODES \
                        and not limits.detailed_errors():
                    limits.pad(started, live.CONNECT_TIMEOUT)
                status.update(label="Live check failed: see below", state="error",
                              expanded=False)
            else:
                status.update(label="Live check done", state="complete", expanded=False)
        if failure is not None:
            # Outside the status box: a collapsed box would hide the reason and its fix.
            _fail(failure, password, url, limits)
            st.session_state.pop("_live_report", None)
            return
        st.session_state["_live_report"] = report
    report = st.session_state.get("_live_report")
    if report is not None:
        _show(report, live.report_overrides(report))
