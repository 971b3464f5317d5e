"""Altair charts of a Recommendation: pure functions, no Streamlit.

Channels are built with `alt.X(field=..., type=...)` objects (shorthand strings cost
milliseconds each to parse) and data is inlined as plain values. No colour is
hard-coded: categories use the "tableau10" scheme and everything else follows the
theme, so the charts stay readable in light and dark mode.
"""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt

from wizard import sizing
from wizard.model import Recommendation

SCHEME = "tableau10"
PARTS = ("reserved", "pools", "overflow", "proxy server pool", "headroom")
WIDTH = "container"


def budget_rows(rec: Recommendation) -> list[dict]:
    """One row per (endpoint, part): reserved, pools and overflow (or, behind a pooler, the
    proxy's server pool: what the database sees at worst) and headroom, which add up to
    max_connections while the fleet fits."""
    rows = []
    for ep in rec.endpoints:
        proxied = ep.server_side is not None
        pools = 0 if proxied else min(ep.worst_case, ep.clients * ep.pool_size)
        overflow = 0 if proxied else ep.worst_case - pools
        parts = {"reserved": ep.reserved, "pools": pools, "overflow": overflow,
                 "proxy server pool": ep.worst_case if proxied else 0,
                 "headroom": max(0, ep.usable - ep.worst_case)}
        for order, part in enumerate(PARTS):
            rows.append({"endpoint": ep.role, "part": part, "connections": parts[part],
                         "order": order, "max_connections": ep.max_connections,
                         "usable": ep.usable})
    return rows


def _color(field: str, domain: list[str] | None = None, title: str | None = None) -> alt.Color:
    scale = alt.Scale(scheme=SCHEME, domain=domain) if domain else alt.Scale(scheme=SCHEME)
    return alt.Color(field=field, type="nominal", scale=scale, title=title)


def budget_chart(rec: Recommendation) -> alt.LayerChart:
    """Connection budget of every endpoint: stacked bar with a tick at max_connections."""
    rows = budget_rows(rec)
    limits = [{"endpoint": ep.role, "max_connections": ep.max_connections,
               "source": ep.max_connections_source} for ep in rec.endpoints]
    # Explicit band scale and bar size: with the tick layer sharing the y scale, Streamlit's
    # theme otherwise draws the bars as hairlines.
    y = alt.Y(field="endpoint", type="nominal", title=None, sort=[e.role for e in rec.endpoints],
              scale=alt.Scale(type="band", paddingInner=0.3))
    bars = alt.Chart(alt.Data(values=rows)).mark_bar(size=28).encode(
        x=alt.X(field="connections", type="quantitative", stack="zero",
                title="connections at the autoscaling peak"),
        y=y,
        color=alt.Color(field="part", type="nominal", title=None,
                        scale=alt.Scale(scheme=SCHEME, domain=list(PARTS))),
        order=alt.Order(field="order", type="quantitative"),
        tooltip=[alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="part", type="nominal"),
                 alt.Tooltip(field="connections", type="quantitative", format=","),
                 alt.Tooltip(field="usable", type="quantitative", format=","),
                 alt.Tooltip(field="max_connections", type="quantitative", format=",")],
    )
    rule = alt.Chart(alt.Data(values=limits)).mark_tick(
        thickness=4, size=40).encode(
        x=alt.X(field="max_connections", type="quantitative"),
        y=y,
        tooltip=[alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="max_connections", type="quantitative", format=","),
                 alt.Tooltip(field="source", type="nominal")],
    )
    return alt.layer(bars, rule).properties(
        width=WIDTH, height=50 * len(rec.endpoints) + 100,
        title="Connection budget per endpoint (tick: max_connections)")


def breaking_points(rec: Recommendation, up_to: int | None = None) -> dict[str, int | None]:
    """Per endpoint, the smallest app instance count whose worst case exceeds the
    usable connections (None if it never does within the range)."""
    out: dict[str, int | None] = {ep.role: None for ep in rec.endpoints}
    for row in sizing.scale_out(rec, up_to):
        if out[row["endpoint"]] is None and row["worst_case"] > row["usable"]:
            out[row["endpoint"]] = row["instances"]
    return out


def first_break(rec: Recommendation, up_to: int, cap: int = 4096,
                ) -> dict[str, int | None]:
    """Per endpoint, where the fleet breaks even beyond the charted range: widen the
    range (x4) until every endpoint breaks, stops growing (a proxy caps it) or `cap`.
    None: it never breaks within `cap` instances."""
    points = breaking_points(rec, up_to)
    top = up_to
    while any(v is None for v in points.values()) and top < cap:
        top = min(cap, top * 4)
        rows = sizing.scale_out(rec, top)
        worst = {(r["endpoint"], r["instances"]): r["worst_case"] for r in rows}
        for row in rows:
            if points[row["endpoint"]] is None and row["worst_case"] > row["usable"]:
                points[row["endpoint"]] = row["instances"]
        if all(n is not None or worst[(role, top)] == worst[(role, top // 2)]
               for role, n in points.items()):
            break  # the rest stopped growing: a proxy caps what the database sees
    return points


def scale_out_chart(rec: Recommendation, up_to: int | None = None) -> alt.LayerChart | None:
    """Worst-case connections per endpoint as the fleet grows, with each endpoint's
    max_connections and the autoscaling peak marked; None for serverless scenarios."""
    rows = sizing.scale_out(rec, up_to)
    if not rows:
        return None
    limits = [{"endpoint": ep.role, "max_connections": ep.max_connections, "usable": ep.usable}
              for ep in rec.endpoints]
    peak = [{"instances": rec.scenario.peak_instances, "label": "autoscaling max + surge"}]
    color = _color("endpoint", [ep.role for ep in rec.endpoints], "endpoint")
    x = alt.X(field="instances", type="quantitative", title="app instances",
              axis=alt.Axis(tickMinStep=1))
    lines = alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=x,
        y=alt.Y(field="worst_case", type="quantitative", title="worst-case connections"),
        color=color,
        tooltip=[alt.Tooltip(field="instances", type="quantitative"),
                 alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="worst_case", type="quantitative", format=","),
                 alt.Tooltip(field="client_connections", type="quantitative", format=","),
                 alt.Tooltip(field="usable", type="quantitative", format=","),
                 alt.Tooltip(field="max_connections", type="quantitative", format=",")],
    )
    # Same scheme and domain as the lines, so the same colours; no second legend.
    limit_color = alt.Color(field="endpoint", type="nominal", legend=None,
                            scale=alt.Scale(scheme=SCHEME,
                                            domain=[ep.role for ep in rec.endpoints]))
    limit = alt.Chart(alt.Data(values=limits)).mark_rule(strokeDash=[6, 3], size=2).encode(
        y=alt.Y(field="max_connections", type="quantitative"),
        color=limit_color,
        tooltip=[alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="max_connections", type="quantitative", format=","),
                 alt.Tooltip(field="usable", type="quantitative", format=",")],
    )
    # The peak rule gets a scheme colour and a legend entry of its own: the theme's default
    # rule colour vanishes on a dark background.
    peak_rule = alt.Chart(alt.Data(values=peak)).mark_rule(strokeDash=[2, 2], size=2).encode(
        x=alt.X(field="instances", type="quantitative"),
        color=_color("label", ["autoscaling max + surge"], "marker"),
        tooltip=[alt.Tooltip(field="label", type="nominal"),
                 alt.Tooltip(field="instances", type="quantitative")],
    )
    return alt.layer(lines, limit, peak_rule).resolve_scale(color="independent").properties(
        width=WIDTH, height=320,
        title="Worst case as the fleet scales out (dashed: max_connections)")


def wait_chart(rec: Recommendation) -> alt.LayerChart | None:
    """P(a checkout waits) against pool size per process, the recommended pool_size and
    the 5% target marked; None without load."""
    if rec.load is None:
        return None
    rows = [{"pool_size": n, "p_wait": p} for n, p in rec.load.curve]
    chosen = [{"pool_size": rec.endpoints[0].pool_size, "label": "recommended pool_size"}]
    target = [{"p_wait": sizing.WAIT_TARGET, "label": "target"}]
    x = alt.X(field="pool_size", type="quantitative", title="pool_size per process",
              axis=alt.Axis(tickMinStep=1))
    curve = alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=x,
        y=alt.Y(field="p_wait", type="quantitative", title="P(checkout waits)",
                axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip(field="pool_size", type="quantitative"),
                 alt.Tooltip(field="p_wait", type="quantitative", format=".1%")],
    )
    mark = alt.Chart(alt.Data(values=chosen)).mark_rule(size=2).encode(
        x=alt.X(field="pool_size", type="quantitative"),
        color=_color("label", None, None),
        tooltip=[alt.Tooltip(field="label", type="nominal"),
                 alt.Tooltip(field="pool_size", type="quantitative")],
    )
    goal = alt.Chart(alt.Data(values=target)).mark_rule(strokeDash=[4, 4], opacity=0.6).encode(
        y=alt.Y(field="p_wait", type="quantitative"),
        tooltip=[alt.Tooltip(field="label", type="nominal"),
                 alt.Tooltip(field="p_wait", type="quantitative", format=".0%")],
    )
    return alt.layer(curve, mark, goal).properties(
        width=WIDTH, height=280, title="Probability a checkout waits (Erlang C)")


def compare_rows(recs_by_name: Mapping[str, Recommendation]) -> list[dict]:
    """One row per (scenario, endpoint) with the numbers a comparison shows."""
    rows = []
    for name, rec in recs_by_name.items():
        s = rec.scenario
        fleet = (f"serverless {s.serverless_concurrency}" if s.serverless else
                 f"{s.peak_instances} inst. x {s.workers} workers")
        setup = (f"{s.provider} {s.instance_class or 'measured'}"
                 f"{'' if s.proxy == 'none' else ' + ' + s.proxy} · {fleet}")
        for ep, eng in zip(rec.endpoints, rec.engines, strict=True):
            rows.append({"scenario": name, "setup": setup, "endpoint": ep.role,
                         "max_connections": ep.max_connections, "usable": ep.usable,
                         "processes": ep.processes, "pool_size": eng.pool_size,
                         "max_overflow": eng.max_overflow, "worst_case": ep.worst_case,
                         "headroom": ep.headroom})
    return rows


def compare_chart(recs_by_name: Mapping[str, Recommendation]) -> alt.LayerChart:
    """Worst case per endpoint for several scenarios side by side, usable marked."""
    rows = compare_rows(recs_by_name)
    x = alt.X(field="scenario", type="nominal", title=None, sort=list(recs_by_name),
              axis=alt.Axis(labelAngle=0))
    xo = alt.XOffset(field="endpoint", type="nominal")
    tip = [alt.Tooltip(field=f, type="nominal" if f in ("scenario", "endpoint") else
                       "quantitative") for f in ("scenario", "endpoint", "worst_case",
                                                 "usable", "max_connections", "pool_size",
                                                 "max_overflow")]
    bars = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=x, xOffset=xo,
        y=alt.Y(field="worst_case", type="quantitative", title="worst-case connections"),
        color=_color("endpoint", None, "endpoint"), tooltip=tip)
    usable = alt.Chart(alt.Data(values=rows)).mark_tick(thickness=3, strokeDash=[4, 2]).encode(
        x=x, xOffset=xo, y=alt.Y(field="usable", type="quantitative"),
        color=_color("endpoint", None, "endpoint"), tooltip=tip)
    return alt.layer(bars, usable).properties(
        width=WIDTH, height=300, title="Worst case per endpoint (tick: usable connections)")
