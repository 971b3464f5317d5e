"""Live check: read max_connections and friends from the real server, feed them back.

The URL and password live only in a form that is cleared on submit; neither is ever
shown, cached, stored or put into the link.
"""

from __future__ import annotations

import asyncio
import importlib
import time

import streamlit as st

from wizard.core.model import TRANSACTION_POOLERS, Recommendation, ScenarioError
from wizard.export import cells
from wizard.scenario import redact
from wizard.ui import state
from wizard.ui.text import md_escape

LIMIT_S = 120.0  # a rerun does not cancel a pending await: bound the whole check


def _live():
    """wizard.live, or None while it is not available (built separately)."""
    try:
        mod = importlib.import_module("wizard.live")
    except ImportError:
        return None
    need = ("parse_target", "run_live_check", "report_overrides", "endpoint_overrides",
            "service_usage")
    return mod if all(hasattr(mod, f) for f in need) else None


def _scrub(text: str, *_secrets: str) -> str:
    """By structure (redact.redact): the core scrubbed the server's texts already."""
    return redact.redact(text)


def changes(before: dict[str, str], overrides: dict[str, str]) -> list[str]:
    """What applying `overrides` changes, in the Database step's words ("max_connections
    1,741 → 1,000"); values that stay the same are left out."""
    out = []
    for key, new in overrides.items():
        old = before.get(key, "")
        if old == new:
            continue
        word = _WORDS.get(key, key)
        out.append(f"{word} {old or 'not set'} → {new}" if key != "max_connections_source"
                   else f"{word}: {new}")
    return out


def _apply(overrides: dict[str, str]) -> None:
    before = state.current_flat()
    flat = {**before, **overrides}
    try:
        state.load_flat(flat)
    except ScenarioError as exc:
        st.session_state["_live_msg"] = ("error", "Could not apply the measured values: "
                                         + md_escape(exc))
    else:
        done = changes(before, overrides)
        st.session_state["_live_msg"] = ("ok", (
            "Applied: " + "; ".join(md_escape(c, 200) for c in done) if done
            else "The measured values were already the ones in use")
            + ". Every step, the answer table and the findings now use them.")


def _take_secrets() -> None:
    """Submit callback: move URL and password out of the widgets before the run, so the
    password is gone from the form on the server too; the run pops them and drops them
    when done. The URL stays in its field unless it holds a secret."""
    url = st.session_state.get("live_url", "") or ""
    st.session_state["_live_pending"] = (url, st.session_state.get("live_password", ""))
    st.session_state["live_url"] = st.session_state["_live_url_kept"] = redact.url_to_keep(url)
    st.session_state["live_password"] = ""


# What each measured parameter is called on the Database step (never a CLI flag).
_WORDS = {"max_connections": "max_connections", "superuser_reserved":
          "superuser_reserved_connections", "provider_reserved": "reserved_connections",
          "pg_version": "PostgreSQL major version", "max_connections_source": "source",
          "replica_max_connections": "replica max_connections"}


def _engines(rec: Recommendation, role: str) -> list[tuple[str, object]]:
    """(service, its recommended engine on `role`) for every service using `role`."""
    return [(svc.name, svc.rec.engine(role)) for svc in rec.services if role in svc.endpoints]


def _against_plan(report, overrides: dict[str, str], rec: Recommendation | None,
                  role: str) -> None:
    """Measured against assumed, and what the recommendation becomes with the measured
    values (both numbers from the core's recommendation of each scenario)."""
    r = report.readings
    if r is None or rec is None or not overrides:
        return
    try:
        before = rec.endpoint(role)
    except StopIteration:
        return
    after_rec, error, fix = state.recommendation({**state.current_flat(), **overrides})
    lines = [f"You assumed max_connections {before.max_connections:,} on {role} "
             f"({md_escape(before.max_connections_source, 120)}); the server says "
             f"{r.max_connections:,}."]
    if after_rec is None:
        lines.append(f"With the measured values the scenario cannot fit: "
                     f"{md_escape(error, 300)} Fix: {md_escape(fix, 300)}")
    else:
        a = after_rec.endpoint(role)
        after = dict(_engines(after_rec, role))
        parts = []
        for name, eb in _engines(rec, role):
            ea = after.get(name)
            if ea is None:
                continue
            same = (eb.pool_size, eb.max_overflow) == (ea.pool_size, ea.max_overflow)
            parts.append(f"{name}: pool {eb.pool_size} + {eb.max_overflow} "
                         + ("stays as it is" if same else
                            f"becomes {ea.pool_size} + {ea.max_overflow}"))
        lines.append("Per engine, " + "; ".join(parts)
                     + f"; usable {before.usable:,} → {a.usable:,}; at the peak the database "
                     f"sees {before.worst_case:,} → {a.worst_case:,}.")
    (st.info if after_rec is not None else st.warning)(" ".join(lines))


def _exhaustion_engine(rec: Recommendation | None, whose: str | None, role: str):
    """The recommended engine the exhaustion test proves (ScenarioError: none on `role`)."""
    if rec is None or whose is None:
        return None
    svc = rec.service(whose)
    if role not in svc.endpoints:
        raise ScenarioError(f"{whose} does not connect to {role}; pick another service or "
                            "endpoint for the exhaustion test.")
    return svc.rec.engine(role)


_STATUS = {"ok": "ok", "over_plan": "over plan", "over_allotment": "over allotment"}


def _usage(live, report, rec: Recommendation | None, role: str) -> None:
    """Connections per service now, against each service's part of the plan (core figures
    from wizard.live.usage; names from the server are shown as plain text only)."""
    r = report.readings
    if r is None or rec is None:
        return
    try:
        u = live.service_usage(rec, role, r.by_application, live.APP_NAME)
    except ScenarioError:
        return
    st.markdown(f"**Connections by service on {md_escape(role)}** (now, against the plan "
                "at the autoscaling peak)")
    rows = [{"application_name": s.service, "connections now": s.connections,
             "peak in the plan": s.worst_case,
             "allotment": None if s.allotment is None or s.pooled else s.allotment,
             "status": _STATUS[s.status]} for s in u.services]
    rows += [{"application_name": o.application_name, "connections now": o.connections,
              "peak in the plan": None, "allotment": None, "status": o.why}
             for o in u.others]
    st.dataframe(cells.safe_rows(rows), hide_index=True, width="stretch")  # CSV-injection safe
    for s in u.services:
        if s.status != "ok":
            st.warning(md_escape(s.message, 600))
    for note in u.notes:
        st.caption(md_escape(note, 600))


def pooler_words(p, rec: Recommendation | None, role: str) -> str:
    """The pooler detection in words; when the plan already goes through a transaction-mode
    proxy on this endpoint, say that it matches instead of advising to pick one."""
    proxies = set()
    if rec is not None:
        plans = [v.rec.scenario for v in rec.services if role in v.endpoints] \
            or [rec.scenario]
        proxies = {s.proxy for s in plans}
    planned = sorted(proxies & TRANSACTION_POOLERS)
    if p.kind != "transaction-pooler" or not planned:
        return p.message
    said = (f"a transaction-mode pooler, which matches the plan ({', '.join(planned)}). ")
    if p.named_statements_break:
        said += (f"Named prepared statements break here ({p.driver_error}); the exported "
                 "module keeps asyncpg's statement caches off, which "
                 + ("works (checked)." if p.cache_off_works else "it needs."))
    else:
        said += "Prepared statements keep working through it."
    return said[0].upper() + said[1:]


def _exhaustion_words(e) -> str:
    """The exhaustion proof in a sentence."""
    if not e.timed_out:
        return f"Exhaustion not proven: {md_escape(e.error, 300)}."
    return (f"Exhaustion proven: the pool held {e.opened} connections (pool_size + "
            f"max_overflow; the server saw {e.server_connections}); one more checkout "
            f"waited {e.waited_s:.1f} s and failed with TimeoutError, as pool_timeout "
            f"{e.pool_timeout:g} s says. Under a burst past the pool your app's requests "
            "fail this way instead of overloading the database; all connections were "
            "released.")


def _show(live, report, overrides: dict[str, str], rec: Recommendation | None = None,
          role: str = "primary") -> None:
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
    _against_plan(report, overrides, rec, role)
    _usage(live, report, rec, role)
    if report.pooler is not None:
        st.info(f"Pooler: {md_escape(pooler_words(report.pooler, rec, role), 600)}")
    if report.pre_ping is not None:
        p = report.pre_ping
        st.caption(f"pool_pre_ping: checkout p50 {p.pre_ping_checkout.p50_ms:.2f} ms with it, "
                   f"{p.plain_checkout.p50_ms:.2f} ms without, SELECT 1 "
                   f"{p.select1.p50_ms:.2f} ms ({p.n} checkouts each).")
    if report.exhaustion is not None:
        st.info(_exhaustion_words(report.exhaustion))
    from wizard.live import limits

    for err in report.errors:
        err = limits.for_visitor(err)
        st.warning(f"{err.stage if hasattr(err, 'stage') else 'check'}: "
                   f"{md_escape(err.message, 600)} **Fix:** {md_escape(err.fix, 600)}")
    if overrides:
        st.button("Use the measured values", key="live_apply", on_click=_apply,
                  args=(overrides,), type="primary")
        st.caption("This sets on the Database step: " + "; ".join(
            f"{_WORDS.get(k, k)} {md_escape(v, 80)}" for k, v in overrides.items()) + ".")
    _applied()


def _applied() -> None:
    """Beside the button: what applying the measured values changed (or why it could not)."""
    msg = st.session_state.pop("_live_msg", None)
    if msg:
        kind, text = msg
        (st.success if kind == "ok" else st.error)(text, icon=":material/check_circle:"
                                                   if kind == "ok" else ":material/error:")


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


def _port_refused(port: int) -> None:
    """The port is the reason: say so, and where the operator allows ports (the list itself
    stays with the operator)."""
    st.error(f"Live check refused because of the port: this deployment does not allow "
             f"live checks on port {port}.", icon=":material/block:")
    st.info("**Fix:** check the port your app really connects to (the database's or its "
            "pooler's), or ask the operator to add this one to "
            "`POOLWISE_LIVE_ALLOWED_PORTS`.")


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
    roles = [e.role for e in rec.endpoints] if rec is not None else ["primary"]
    if "live_url" not in st.session_state:  # back from another step: the URL is still here
        st.session_state["live_url"] = st.session_state.get("_live_url_kept", "")
    with st.form("live_form", clear_on_submit=False):
        st.text_input("Database URL (without the password)", key="live_url",
                      placeholder="postgresql://app_user@db.example.com:5432/app"
                                  "?sslmode=require",
                      help="The host your app connects to. Put the password in the "
                           "next field, not in the URL.")
        st.text_input("Password", type="password", key="live_password",
                      help="Used for this check only; cleared when you submit.")
        role = st.selectbox("Which endpoint of the plan is this?", roles, key="live_role",
                            help="The measured max_connections replaces the one assumed for "
                                 "this endpoint; check each replica with its own URL.")
        pre_ping = st.slider("Pre-ping checkouts to time", 0, 50, 20, key="live_pre_ping")
        exhaust = st.checkbox("Also prove the recommended pool runs out as expected "
                              "(opens pool_size + max_overflow connections briefly)",
                              key="live_exhaust", disabled=rec is None)
        names = [svc.name for svc in rec.services] if rec is not None else []
        whose = names[0] if names else None
        if len(names) > 1:
            whose = st.selectbox("Whose recommended pool the exhaustion test proves", names,
                                 key="live_service")
        submitted = st.form_submit_button("Run the live check", type="primary",
                                          on_click=_take_secrets)
    url, password = st.session_state.pop("_live_pending", ("", ""))
    if submitted:
        target = None
        try:
            target = live.parse_target(url, password or None)
            live.check_allowed(target)
            engine = _exhaustion_engine(rec, whose, role) if exhaust else None
            limits.take_token(st.session_state.setdefault("_live_history", []))
        except ScenarioError as exc:
            st.error(md_escape(exc, 300))
            return
        except Exception as exc:
            if getattr(exc, "code", "") == "port_not_allowed" and target is not None:
                _port_refused(target.port)
                return
            _fail(exc, password, url, limits)
            return
        failure = None
        started = time.monotonic()
        with st.status("Running the live check…", expanded=True) as status:
            def progress(stage: str, fraction: float) -> None:
                if fraction == 0.0:
                    status.write(f"{stage}…")

            try:  # the slot is held through the pad (limits.run_gated)
                report = limits.run_gated(lambda: asyncio.wait_for(live.run_live_check(
                    target, pre_ping=pre_ping,
                    exhaustion=engine,
                    progress=progress), timeout=LIMIT_S), started, live.CONNECT_TIMEOUT)
            except Exception as exc:
                failure = exc
                status.update(label="Live check failed: see below", state="error",
                              expanded=False)
            else:
                status.update(label="Live check done", state="complete", expanded=False)
        if failure is not None:
            # Outside the status box: a collapsed box would hide the reason and its fix.
            _fail(failure, password, url, limits)
            st.session_state.pop("_live_report", None)
            return
        st.session_state["_live_report"] = (report, role)
    kept = st.session_state.get("_live_report")
    if kept is not None:
        report, role = kept
        flat = state.current_flat()
        _show(live, report, live.endpoint_overrides(flat, report, role), rec, role)
    from wizard.ui import observe as observe_ui  # issue 22: "Observe for 30 s"

    observe_ui.render(live, rec)
