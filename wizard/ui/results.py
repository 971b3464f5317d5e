"""Step 5: the recommendation: engine settings, budget in words, warnings, charts."""

from __future__ import annotations

import re

import streamlit as st

from wizard import charts, sizing
from wizard.model import Recommendation, Scenario
from wizard.ui import state
from wizard.ui.labels import SEVERITY_ICON

SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}
RANGES = {"2x": 2, "4x": 4, "10x": 10}


def engine_code(rec: Recommendation) -> str:
    """A create_async_engine call per endpoint with the recommended settings."""
    null = any(e.poolclass == "NullPool" for e in rec.engines)
    lines = ["import os", ""]
    if null:
        lines.append("from sqlalchemy.pool import NullPool")
    lines += ["from sqlalchemy.ext.asyncio import create_async_engine", ""]
    for eng in rec.engines:
        role = eng.endpoint
        var = "engine" if role == "primary" else f"{role.replace('-', '_')}_engine"
        env = "DATABASE_URL" if role == "primary" else f"{role.replace('-', '_').upper()}_URL"
        args = [f'os.environ["{env}"]']
        if eng.poolclass == "NullPool":
            args.append("poolclass=NullPool")
        else:
            args += [f"pool_size={eng.pool_size}", f"max_overflow={eng.max_overflow}",
                     f"pool_timeout={eng.pool_timeout:g}", f"pool_recycle={eng.pool_recycle}",
                     f"pool_pre_ping={eng.pool_pre_ping}", f"pool_use_lifo={eng.pool_use_lifo}"]
        if eng.connect_args:
            args.append(f"connect_args={eng.connect_args!r}")
        body = ",\n    ".join(args)
        lines += [f"{var} = create_async_engine(\n    {body},\n)", ""]
    return "\n".join(lines).rstrip() + "\n"


def engine_rows(rec: Recommendation) -> list[dict]:
    rows = []
    for eng in rec.engines:
        for name in ("poolclass", "pool_size", "max_overflow", "pool_timeout", "pool_recycle",
                     "pool_pre_ping", "pool_use_lifo", "connect_args"):
            rows.append({"endpoint": eng.endpoint, "setting": name,
                         "value": str(getattr(eng, name)), "why": eng.reasons.get(name, "")})
    return rows


def budget_words(rec: Recommendation) -> list[str]:
    """The budget of each endpoint as one sentence per step of the arithmetic."""
    out = []
    for ep in rec.endpoints:
        cls = f" ({ep.instance_class})" if ep.instance_class else ""
        if ep.role.startswith("replica-"):
            region = rec.scenario.replicas[int(ep.role.split("-")[1]) - 1].region
            cls += f" in {region}" if region else ""
        steps = " → ".join(part.strip() for part in ep.explanation.split(";"))
        verdict = (f"**{ep.headroom:,} to spare**" if ep.headroom >= 0 else
                   f"**{-ep.headroom:,} over the limit**")
        out.append(f"**{ep.role}**{cls}: {steps}; the database sees at most "
                   f"**{ep.worst_case:,}** of {ep.usable:,} usable: {verdict}.")
    return out


# Where each part of an unsizable scenario is changed, in the order people try them.
FIX_STEPS = (("topology", "Change the fleet (step 3)"),
             ("proxy", "Add a pooling proxy (step 2)"),
             ("database", "Pick a bigger database (step 1)"))


def fleet_words(s: Scenario | None) -> str:
    """How the client engine count comes about, so an error's number is traceable."""
    if s is None:
        return ""
    if s.serverless:
        return (f"Client engines at the peak: {s.serverless_concurrency:,} concurrent "
                f"invocations × {s.engines_per_process} engine(s) = "
                f"{s.serverless_concurrency * s.engines_per_process:,}.")
    base = s.max_app_instances or s.app_instances
    kind = "autoscaling maximum" if s.max_app_instances else "instances"
    return (f"Client engines at the peak: {base} {kind} + {s.deploy_surge_percent}% "
            f"rolling-deploy surge = {s.peak_instances} instances × {s.workers} worker(s) × "
            f"{s.engines_per_process} engine(s) = "
            f"{s.peak_instances * s.workers * s.engines_per_process:,} per endpoint.")


def show_error(error: str, fix: str, scenario: Scenario | None = None,
               here: str = "results") -> None:
    """An unsizable scenario: the reason, the fix, the arithmetic behind the numbers in
    the message and buttons to the steps where the fix is made (no dead end)."""
    st.error(f"This scenario cannot be sized: {error}", icon=":material/error:")
    if fix:
        st.info(f"**Fix:** {fix}")
    words = fleet_words(scenario)
    if words:
        st.caption(words)
    for step, label in FIX_STEPS:
        if step != here:
            st.button(label, key=f"fix_go_{step}", on_click=state.go, args=(step,),
                      icon=":material/arrow_forward:")


def _linked(source: str) -> str:
    """A source text with its bare URL turned into a short Markdown link."""
    return re.sub(r"\(?(https?://[^\s)]+)\)?", r"([source](\1))", source)


def summary(rec: Recommendation | None, error: str, fix: str,
            scenario: Scenario | None = None, here: str = "database") -> None:
    """Compact result shown beside every input step, so each change shows its effect.
    Two columns at most: three metrics side by side get truncated on a laptop."""
    st.markdown("##### Result so far")
    if rec is None:
        show_error(error, fix, scenario, here)
        return
    ep, eng = rec.endpoints[0], rec.engines[0]
    c1, c2 = st.columns(2)
    c1.metric("pool_size", eng.pool_size, help=eng.reasons["pool_size"])
    c2.metric("max_overflow", eng.max_overflow, help=eng.reasons["max_overflow"])
    c1.metric("usable", f"{ep.usable:,}", help=ep.explanation)
    c2.metric("worst case", f"{ep.worst_case:,}", help="What the primary sees when every "
              "engine of the peak fleet opens pool_size + max_overflow.")
    st.caption(f"Per engine, in each of {ep.clients:,} engines. Primary: max_connections "
               f"**{ep.max_connections:,}**, {_linked(ep.max_connections_source)}; "
               f"worst case {ep.worst_case:,} of {ep.usable:,} usable.")
    errors = [w for w in rec.warnings if w.severity == "error"]
    warns = [w for w in rec.warnings if w.severity == "warning"]
    for w in errors[:2]:
        st.error(f"{w.message} **Fix:** {w.fix}", icon=SEVERITY_ICON["error"])
    if warns:
        st.caption(f"{len(warns)} warning(s), each with its fix: see 5 Results.")


@st.cache_data(max_entries=512, show_spinner=False)
def chart_spec(key: tuple[tuple[str, str], ...], which: str, up_to: int | None = None,
               ) -> dict | None:
    """Vega-Lite spec of one chart, cached per scenario (building one costs ~10 ms)."""
    rec, _, _ = state._recommend(key)
    if rec is None:
        return None
    chart = {"budget": lambda: charts.budget_chart(rec),
             "scale": lambda: charts.scale_out_chart(rec, up_to),
             "wait": lambda: charts.wait_chart(rec)}[which]()
    return None if chart is None else chart.to_dict(validate=False)


@st.cache_data(max_entries=512, show_spinner=False)
def _break_text(key: tuple[tuple[str, str], ...], up_to: int) -> str:
    rec, _, _ = state._recommend(key)
    points = charts.first_break(rec, up_to)
    peak = rec.scenario.peak_instances
    parts = []
    for role, n in points.items():
        if n is None:
            parts.append(f"{role} never runs out as the fleet grows (what it sees stops "
                         "growing or stays below usable up to 4,096 instances)")
        else:
            when = ("already at the peak" if n <= peak else
                    f"{n - peak} beyond the peak of {peak}")
            outside = "" if n <= up_to else ", past the right edge of the chart"
            parts.append(f"{role} breaks at **{n} instances** ({when}{outside})")
    return "Where it breaks (worst case above usable): " + "; ".join(parts) + "."


@st.fragment
def charts_section(key: tuple[tuple[str, str], ...]) -> None:
    """The three charts; changing the range reruns only this fragment."""
    rec, _, _ = state._recommend(key)
    st.vega_lite_chart(chart_spec(key, "budget"), width="stretch")
    if rec.scenario.serverless:
        st.caption("Serverless: every invocation opens its own connection, no scale-out curve.")
    else:
        mult = RANGES[st.radio("Scale-out range", list(RANGES), key="scale_range",
                               horizontal=True, format_func=lambda r: f"{r} the peak")]
        peak = rec.scenario.peak_instances
        up_to = max(mult * peak, peak + 4)
        st.vega_lite_chart(chart_spec(key, "scale", up_to), width="stretch")
        st.markdown(_break_text(key, up_to))
    wait = chart_spec(key, "wait")
    if wait is not None:
        st.vega_lite_chart(wait, width="stretch")
        load = rec.load
        chosen = rec.engines[0].pool_size
        at_chosen = dict(load.curve).get(chosen)
        tail = (f" The recommended pool_size {chosen} (marked) waits "
                f"{at_chosen:.2%} of the time." if at_chosen is not None and
                chosen != load.needed_pool else "")
        st.caption(f"Offered load per process {load.offered_load:.2f} Erlangs "
                   f"({load.arrival_rate:g} req/s × {load.hold_s * 1000:g} ms, Little's law). "
                   f"Erlang C: the mean load needs pool_size {load.needed_pool} for "
                   f"P(wait) = {load.p_wait:.1%} (target {sizing.WAIT_TARGET:.0%}, "
                   f"dashed), mean wait {load.mean_wait_ms:.1f} ms; bursts (p95 hold or "
                   f"twice the rate) need {load.needed_with_overflow}.{tail}")
    else:
        st.caption("Give your traffic in step 4 to see how often a checkout waits.")


def render(rec: Recommendation | None, error: str, fix: str,
           key: tuple[tuple[str, str], ...], scenario: Scenario | None = None) -> None:
    st.subheader("5 · Results")
    if rec is None:
        show_error(error, fix, scenario)
        return
    s = rec.scenario
    fleet = (f"serverless, {s.serverless_concurrency} concurrent invocations" if s.serverless
             else f"{s.peak_instances} instances at peak × {s.workers} worker(s)")
    st.caption(f"{s.provider} · {s.instance_class or 'measured'} · proxy {s.proxy} · {fleet} "
               f"× {s.engines_per_process} engine(s)")
    for ep, eng in zip(rec.endpoints, rec.engines, strict=True):
        cols = st.columns(5)
        label = "" if ep.role == "primary" else f" ({ep.role})"
        cols[0].metric(f"pool_size{label}", eng.pool_size, help=eng.reasons["pool_size"])
        cols[1].metric(f"max_overflow{label}", eng.max_overflow,
                       help=eng.reasons["max_overflow"])
        cols[2].metric(f"max_connections{label}", f"{ep.max_connections:,}",
                       help=f"Source: {ep.max_connections_source}")
        cols[3].metric(f"usable{label}", f"{ep.usable:,}",
                       help=" - ".join(f"{r.count} {r.name} ({r.source})" for r in ep.reserves))
        cols[4].metric(f"worst case{label}", f"{ep.worst_case:,}",
                       delta=f"{ep.headroom:,} headroom", delta_color="normal",
                       help=ep.explanation)
    st.markdown("#### The budget in words")
    for line in budget_words(rec):
        st.markdown(line)
    st.caption(f"What binds: {rec.binding}")
    st.markdown("#### Warnings")
    ranked = sorted(rec.warnings, key=lambda w: SEVERITY_RANK.get(w.severity, 3))
    if not ranked:
        st.success("No warnings for this scenario.")
    show = {"error": st.error, "warning": st.warning, "info": st.info}
    for w in ranked:
        show.get(w.severity, st.info)(f"**{w.code}**: {w.message}\n\n**Fix:** {w.fix}",
                                      icon=SEVERITY_ICON.get(w.severity))
    st.markdown("#### Engine settings (per process)")
    tab_table, tab_code = st.tabs(["Table", "Code"])
    with tab_table:
        # st.table wraps the long "why" texts a dataframe would cut off.
        for eng in rec.engines:
            if len(rec.engines) > 1:
                st.markdown(f"**{eng.endpoint}**")
            st.table([{k: v for k, v in row.items() if k != "endpoint"}
                      for row in engine_rows(rec) if row["endpoint"] == eng.endpoint])
    with tab_code:
        st.code(engine_code(rec), language="python")
    st.markdown("#### Charts")
    charts_section(key)
    with st.expander("Rules of thumb people copy, for this scenario"):
        st.dataframe([{"rule": r.name, "formula": r.formula, "per engine": r.per_process,
                       "fleet total": r.fleet_total, "fits the primary": r.fits,
                       "source": r.source} for r in rec.rules], hide_index=True,
                     width="stretch")
    with st.expander("Sources of every number"):
        for src in rec.sources:
            st.markdown(f"- [{src.label}]({src.url})" + (f" (read {src.read_on})"
                                                         if src.read_on else ""))
