"""Step 5: the answer first (settings, what the database sees, where it breaks, what to
fix), then the charts, then the details folded. Every number is a field of the
Recommendation; this module words nothing the core already says."""

from __future__ import annotations

from typing import Any

import streamlit as st

from wizard.core import findings, limits, measured, projection, queueing
from wizard.core.codes import CODES
from wizard.core.model import (
    EndpointBudget,
    EngineSettings,
    Finding,
    Recommendation,
    Scenario,
    ServiceShare,
)
from wizard.export.module import create_engine_block, engine_block
from wizard.ui import answer as table
from wizard.ui import state
from wizard.ui.labels import SEVERITY_ICON, STEP_NAMES
from wizard.ui.text import md_escape

TOP_FINDINGS = 3
METRIC_WIDTH = 150  # two metrics to a row on a 390 px phone, five or more on a laptop
SETTINGS = ("poolclass", "pool_size", "max_overflow", "pool_timeout", "pool_recycle",
            "pool_pre_ping", "pool_use_lifo", "connect_args")


def engine_code(rec: Recommendation) -> str:
    """The engine block of the exported module (db.py), exactly as exported."""
    return engine_block(rec) + "\n\n" + create_engine_block(rec)


def engine_rows(rec: Recommendation) -> list[dict]:
    return [{"endpoint": eng.endpoint, "setting": name, "value": str(getattr(eng, name)),
             "why": eng.reasons.get(name, "")} for eng in rec.engines for name in SETTINGS]


# Where each part of an unsizable scenario is changed, in the order people try them.
FIX_STEPS = (("topology", "Change the fleet (step 3)"),
             ("proxy", "Add a pooling proxy (step 2)"),
             ("database", "Pick a bigger database (step 1)"))
REPLICA_FIX = (("topology", "Fix the replica (step 3)"),)


def show_error(error: str, fix: str, scenario: Scenario | None = None,
               here: str = "results") -> None:
    """An unsizable scenario: the reason, the fix, the arithmetic behind the numbers in
    the message and buttons to the steps where the fix is made (no dead end)."""
    st.error(f"This scenario cannot be sized: {md_escape(error)}", icon=":material/error:")
    if fix:
        st.info(f"**Fix:** {md_escape(fix)}")
    if scenario is not None:
        st.caption(md_escape(limits.fleet_sentence(scenario.services[0])))
    where, _ = state._problem(state.flat_key(state.current_flat()))
    # A refused replica is fixed on the replica (its class or max_connections, step 3),
    # not with a proxy or a bigger primary.
    steps = REPLICA_FIX if where == "replicas" else FIX_STEPS
    for step, label in steps:
        if step != here:
            st.button(label, key=f"fix_go_{step}", on_click=state.go, args=(step,),
                      icon=":material/arrow_forward:")


BREAKS_LABEL = "breaks at (inst.)"


def _breaks_words(ep: EndpointBudget | Recommendation) -> str:
    """The core's break point as a metric value."""
    return "never" if ep.breaks_at is None else f"{ep.breaks_at:,}"


def _pool_metrics(eng: EngineSettings) -> Any:
    """A row of metrics starting with the engine's pool (or NullPool), each with its reason."""
    row = st.container(horizontal=True, gap="small")
    if eng.poolclass == "NullPool":
        row.metric("poolclass", "NullPool", width=METRIC_WIDTH,
                   help=md_escape(eng.reasons.get("poolclass", "")))
    else:
        row.metric("pool_size", eng.pool_size, width=METRIC_WIDTH,
                   help=md_escape(eng.reasons.get("pool_size", "")))
        row.metric("max_overflow", eng.max_overflow, width=METRIC_WIDTH,
                   help=md_escape(eng.reasons.get("max_overflow", "")))
    return row


def _seen_metrics(row: Any, ep: EndpointBudget, error: bool = False) -> None:
    """What the database sees at the peak against its usable connections, added to `row`;
    with an error on the endpoint the headroom is never green (the error says why)."""
    spare = ep.headroom >= 0
    row.metric("database sees at peak", f"{ep.worst_case:,}", width=METRIC_WIDTH,
               delta=(f"{ep.headroom:,} to spare" if spare else f"{-ep.headroom:,} over")
               + (", error above" if error else ""),
               delta_color="inverse" if error or not spare else "normal",
               delta_arrow="off", help=md_escape(ep.explanation))
    row.metric("usable", f"{ep.usable:,}", width=METRIC_WIDTH,
               help=md_escape(f"max_connections {ep.max_connections:,} ("
                          f"{ep.max_connections_source}) - " + " - ".join(
                              f"{r.count} {r.name}" for r in ep.reserves)))


def exported(rec: Recommendation, w: Finding) -> bool:
    """Whether the exported module already does what the finding asks (its code's
    `answered_by`): every engine it exports carries the setting."""
    key = CODES[w.code].answered_by
    engines = [e for v in rec.services for e in v.rec.engines]
    return bool(key and engines and all(key in e.connect_args for e in engines))


def _finding(rec: Recommendation, w: Finding, i: int, with_button: bool = True,
             done: bool = False) -> None:
    """One finding: its services and endpoint before its message (findings.said), its fix,
    and a button to the step that fixes it (the codes table)."""
    said = md_escape(findings.said(w, rec))
    if done:
        st.info(f"Already in the exported module: {md_escape(w.fix)}  \n{said}",
                icon=":material/task_alt:")
        return
    show = {"error": st.error, "warning": st.warning}.get(w.severity, st.info)
    show(f"{said}  \n**Fix:** {md_escape(w.fix)}", icon=SEVERITY_ICON.get(w.severity))
    code = CODES[w.code]
    if with_button and code.step:
        st.button(f"Fix it in {STEP_NAMES[code.step]}", key=f"finding_go_{i}",
                  on_click=state.go, args=(code.step, code.field),
                  icon=":material/arrow_forward:", type="tertiary")


_where = table._where


def answer_table(rec: Recommendation, copy: bool = True) -> None:
    """The compact answer table (ui/answer.py), with a button to copy it as text."""
    st.html(table.CSS)
    with st.container(key="answer_box"):
        st.html(table.as_html(rec))
    if copy:
        with st.popover("Copy the table", icon=":material/content_copy:"):
            st.caption("Tab-separated: paste into a sheet, a ticket or a chat.")
            st.code(table.as_text(rec), language=None)


def _errors(rec: Recommendation, with_button: bool = True) -> list[Finding]:
    """The error findings, each shown above the table (the rows they concern say so)."""
    errors = [w for w in rec.warnings if w.severity == "error"]
    for i, w in enumerate(errors):
        _finding(rec, w, 300 + i, with_button)
    return errors


def answer(rec: Recommendation) -> None:
    """The first screenful: the errors, the answer table (per service and endpoint: its
    pool, what the database sees at everyone's peak, headroom, where it breaks, what binds),
    which service breaks it first; then the top warnings with a way to fix each, and the
    metric cards below."""
    with st.container(border=True, key="answer"):
        errors = _errors(rec)
        answer_table(rec)
        for line in measured.answer_lines(rec):  # the load is measured, not guessed
            st.caption(md_escape(line), help="poolwise observe: busy connections sampled in "
                       "pg_stat_activity (Little's law); the sizing reads them instead of "
                       "requests/s x hold time.")
        sentence = projection.break_sentence(rec)
        if sentence:
            st.info(md_escape(sentence), icon=":material/trending_up:")
        # findings.run_checks lists errors first, then warnings, then info; a warning the
        # exported module already answers comes after the others, said to be done.
        warns = [w for w in rec.warnings if w.severity == "warning"]
        top = sorted(warns, key=lambda w: exported(rec, w))[:TOP_FINDINGS]
        for i, w in enumerate(top):
            _finding(rec, w, i, done=exported(rec, w))
        if not top and not errors:
            st.success("Nothing to fix: every endpoint fits at the autoscaling peak.",
                       icon=":material/check_circle:")
        rest = len(rec.warnings) - len(top) - len(errors)
        if rest > 0:
            st.caption(f"{rest} more finding(s) under Details below.")
        with st.expander("Each service as metric cards", expanded=True):
            services_answer(rec, sentence=False)


SERVICE_AT_PEAK = "at everyone's peak"


def _service_metrics(rec: Recommendation, ep: EndpointBudget, b: ServiceShare) -> None:
    """One service's answer on one endpoint: its pool, what it adds at everyone's peak
    and the fleet size from which it breaks the endpoint (the others at their peaks)."""
    svc = rec.service(b.service)
    eng = svc.rec.engine(ep.role)
    row = _pool_metrics(eng)
    share_words = ("no limit on its side" if b.allotment is None
                   else f"it may use {b.allotment:,} ({b.allotment_how})")
    mine = svc.rec.endpoint(ep.role)
    row.metric(SERVICE_AT_PEAK, f"{b.worst_case:,}", width=METRIC_WIDTH,
               help=md_escape(f"{b.processes:,} processes, {b.clients:,} engines; "
                              f"{share_words}. {mine.explanation}"))
    if mine.client_side is not None:
        row.metric("clients open", f"{mine.client_side.worst_case:,}", width=METRIC_WIDTH,
                   help=md_escape(mine.client_side.detail))
    if mine.p_wait is not None:
        row.metric("P(checkout waits)", queueing.percent(mine.p_wait), width=METRIC_WIDTH,
                   help="Erlang C for the pool exported on this endpoint.")
    now = svc.service.fleet_size
    unit = "invocations" if svc.service.serverless else "instances"
    limit = ("" if b.break_limit is None
             else f" (the {b.break_limit:,} connections the other services leave it)")
    row.metric(BREAKS_LABEL if not svc.service.serverless else "breaks at (inv.)",
               _breaks_words(b), width=METRIC_WIDTH,
               help=md_escape(f"The {unit} from which its connections exceed what the "
                              f"others at their peaks leave it{limit}; today: {now:,}."))


def services_answer(rec: Recommendation, sentence: bool = True) -> None:
    """Per endpoint what the database sees against usable, then each service's pool on
    it; the core's sentence on which service breaks it first."""
    for ep in rec.endpoints:
        st.markdown(f"**{md_escape(ep.role)}**{md_escape(_where(rec, ep))}")
        _seen_metrics(st.container(horizontal=True, gap="small"), ep,
                      any(table.errors_for(rec, b.service, ep.role) for b in ep.by_service))
        for b in ep.by_service:
            how = measured.label(rec.service(b.service).rec.load)  # measured, not guessed
            st.caption(md_escape(f"{b.service} ({rec.service(b.service).kind}"
                                 + (f"; {how})" if how else ")")))
            _service_metrics(rec, ep, b)
    said = projection.break_sentence(rec) if sentence else ""
    if said:
        st.info(md_escape(said), icon=":material/trending_up:")


def brief(rec: Recommendation | None, error: str) -> None:
    """One line of the result for narrow screens, linking down to the full card."""
    if rec is None:
        line = f"Cannot be sized yet: {md_escape(error)}"
    else:
        ep = rec.endpoints[0]
        pools = " · ".join(f"{v.name} {_pool_words(v.rec.engine(ep.role))}"
                           for v in rec.services if ep.role in v.endpoints)
        line = md_escape(f"{pools} · the database sees {ep.worst_case:,} of "
                         f"{ep.usable:,} usable")
    st.markdown(f"{line} · [result so far ↓](#result-so-far)")


def _pool_words(eng: EngineSettings) -> str:
    return ("NullPool" if eng.poolclass == "NullPool" else
            f"pool {eng.pool_size} + {eng.max_overflow}")


def summary(rec: Recommendation | None, error: str, fix: str,
            scenario: Scenario | None = None, here: str = "database") -> None:
    """Compact result shown beside every input step, so each change shows its effect."""
    st.markdown("##### Result so far")
    if rec is None:
        show_error(error, fix, scenario, here)
        return
    answer_table(rec, copy=False)
    services_answer(rec)
    st.caption(md_escape(f"Primary: max_connections {rec.endpoints[0].max_connections:,}, "
                     f"{rec.endpoints[0].max_connections_source}."))
    errors = [w for w in rec.warnings if w.severity == "error"]
    for i, w in enumerate(errors[:2]):
        _finding(rec, w, 100 + i, with_button=False)
    warns = sum(w.severity == "warning" for w in rec.warnings)
    if warns:
        st.caption(f"{warns} warning(s), each with its fix: see 5 Results.")


def _draw(spec: dict | None, key: str) -> None:
    if spec is not None:
        st.vega_lite_chart(spec, width="stretch", key=key)


def chart_tabs(rec: Recommendation) -> list[tuple[str, str]]:
    """(tab label, chart kind) of the charts this scenario has."""
    tabs = [("Budget at the peak", "budget")]
    if shared(rec):
        tabs.append(("Scale-out: which service breaks it", "services"))
    else:  # each service alone on its endpoints: its own scale-out
        if any(not v.service.serverless for v in rec.services):
            tabs.append(("Scale-out", "scale"))
        if any(v.service.serverless for v in rec.services):
            tabs.append(("Serverless concurrency", "serverless"))
    if any(svc.rec.load is not None for svc in rec.services):
        tabs.append(("Checkout waits", "wait"))
    return tabs


def shared(rec: Recommendation) -> bool:
    """Whether services share an endpoint: then the scale-out grows each one with the
    others at their peaks; otherwise each service's own scale-out says it all."""
    return any(len(ep.by_service) > 1 for ep in rec.endpoints)


def charts_section(rec: Recommendation) -> None:
    """The charts, one tab each; only the open tab's chart is built and drawn (its spec is
    the chart's cached structure plus this scenario's data: charts.spec)."""
    from wizard import charts  # Altair: not needed before the first Results page

    tabs = chart_tabs(rec)
    containers = st.tabs([label for label, _ in tabs], key="chart_tab", on_change="rerun")
    for (_, kind), tab in zip(tabs, containers, strict=True):
        if not tab.open:
            continue
        with tab:
            if kind in ("wait", "scale", "serverless"):
                _per_service(rec, charts, kind)
                continue
            spec = charts.spec(kind, rec)
            _draw(spec, f"chart_{kind}")
            if spec is not None:
                st.caption(charts.CAPTIONS["budget_services" if kind == "budget"
                                           and charts.by_service(rec) else kind])
    if all(svc.rec.load is None for svc in rec.services):
        st.caption("Give your traffic in step 4 to see how often a checkout waits.")


def _per_service(rec: Recommendation, charts: Any, kind: str) -> None:
    """A chart of each service's own plan (checkout waits, scale-out, serverless
    concurrency) under its name; a line for a service the chart does not apply to."""
    drawn = False
    for svc in rec.services:
        spec = charts.spec(kind, svc.rec)
        if spec is None:
            why = {"wait": "no load given, no wait chart",
                   "scale": "serverless: see its concurrency chart",
                   "serverless": "no pooler client limit: every invocation opens its own "
                                 "connection to the database (see the budget)"}[kind]
            if kind != "scale" or svc.service.serverless:
                st.caption(md_escape(f"{svc.name}: {why}."))
            continue
        st.markdown(f"**{md_escape(svc.name)}** ({md_escape(svc.kind)})")
        _draw(spec, f"chart_{kind}_{svc.name}")
        drawn = True
    if drawn:
        st.caption(charts.CAPTIONS[kind])


FOLDS = {"findings": "All findings", "budget": "The budget, step by step",
         "settings": "Engine settings and why", "rules": "Rules of thumb people copy",
         "sources": "Sources of every number", "load": "The load, in numbers"}


def details(rec: Recommendation) -> None:
    """Everything behind the answer, folded."""
    for name, draw in (("findings", _findings), ("budget", _budget_steps),
                       ("settings", _settings), ("rules", _rules), ("sources", _sources),
                       ("load", _load)):
        if name == "load" and not any(v.rec.load for v in rec.services):
            continue
        box = st.expander(FOLDS[name] + (f" ({len(rec.warnings)})" if name == "findings"
                                          else ""), key=f"fold_{name}", on_change="rerun")
        if box.open:
            with box:
                draw(rec)


def _findings(rec: Recommendation) -> None:
    if not rec.warnings:
        st.success("No findings for this scenario.")
    for i, w in enumerate(rec.warnings):
        st.caption(md_escape(w.code))
        _finding(rec, w, 200 + i)


def _each_service(rec: Recommendation, draw) -> None:
    """`draw` for each service's own plan under its name."""
    for svc in rec.services:
        st.markdown(f"**{md_escape(svc.name)}** ({md_escape(svc.kind)})")
        draw(svc.rec)


def _budget_steps(rec: Recommendation) -> None:
    for ep in rec.endpoints:
        st.markdown(f"**{md_escape(ep.role)}**: {md_escape(ep.explanation)}")
    for ep in rec.endpoints:
        for b in ep.by_service:
            how = ("no limit on its side" if b.allotment is None
                   else f"may use {b.allotment:,}: {b.allotment_how}")
            st.caption(md_escape(f"{ep.role}, {b.service}: {how}; "
                                 + rec.service(b.service).rec.endpoint(ep.role)
                                 .explanation))
    st.caption(md_escape(f"What binds: {rec.binding}"))


def _settings(rec: Recommendation) -> None:
    _each_service(rec, _plan_settings)


def _plan_settings(rec: Recommendation) -> None:
    """One service's engine settings: a table with the reasons, and the exported code."""
    tab_table, tab_code = st.tabs(["Table", "Code"])
    with tab_table:
        # st.table wraps the long "why" texts a dataframe would cut off.
        for eng in rec.engines:
            if len(rec.engines) > 1:
                st.markdown(f"**{md_escape(eng.endpoint)}**")
            st.table([{k: v for k, v in row.items() if k != "endpoint"}
                      for row in engine_rows(rec) if row["endpoint"] == eng.endpoint])
    with tab_code:
        st.caption("From the exported db.py (step 6), as it is there.")
        st.code(engine_code(rec), language="python")


def _rules(rec: Recommendation) -> None:
    _each_service(rec, lambda plan: st.table([
        {"rule": r.name, "formula": r.formula, "per engine": r.per_process,
         "fleet total": r.fleet_total, "fits": "yes" if r.fits else "no"}
        for r in plan.rules]))


def _sources(rec: Recommendation) -> None:
    for src in rec.sources:
        read = f" (read {src.read_on})" if src.read_on else ""
        st.markdown(f"- [{md_escape(src.label)}]({src.url}){md_escape(read)}")


def _load(rec: Recommendation) -> None:
    """Each service's load lines as the core words them."""
    _each_service(rec, lambda r: _plan_load(r) if r.load is not None else st.caption(
        "No load given: its pools stop at the safe default."))


def _plan_load(rec: Recommendation) -> None:
    """One service's load lines; the chart marks the exported connections."""
    for line in queueing.load_lines(rec):
        st.caption(md_escape(line))
    ep = rec.endpoints[0]
    st.caption(md_escape(f"The wait chart marks the exported pool_size + max_overflow "
                     f"({ep.pool_size + ep.max_overflow}) on {ep.role}."))


def render(rec: Recommendation | None, error: str, fix: str,
           key: tuple[tuple[str, str], ...], scenario: Scenario | None = None) -> None:
    st.subheader("5 · Results")
    if rec is None:
        show_error(error, fix, scenario)
        return
    answer(rec)
    st.markdown("#### Charts")
    charts_section(rec)
    st.markdown("#### Details")
    details(rec)
