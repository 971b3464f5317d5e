"""The budget chart: every endpoint's connections at the autoscaling peak, stacked by part
(reserved, pools, overflow or the proxy's server pool, headroom) or by service where services
share an endpoint, with max_connections marked."""

from __future__ import annotations

import altair as alt

from wizard.charts.style import OVER, PARTS, SCHEME, STACK, WIDTH, marker_color, service_colors
from wizard.core.model import Recommendation


def budget_rows(rec: Recommendation) -> list[dict]:
    """One row per (endpoint, part). Parts stack to max_connections while the fleet fits;
    when it does not, the connections past max_connections are their own part (OVER) and
    headroom is 0 in the stack, negative in the `headroom` field."""
    rows = []
    for ep in rec.endpoints:
        proxied = ep.server_side is not None
        app = ep.worst_case
        fit = min(app, ep.usable)
        if proxied:
            pools, overflow, server = 0, 0, fit
        else:
            pools = min(fit, ep.clients * ep.pool_size)
            overflow, server = fit - pools, 0
        parts = {"reserved": ep.reserved, "pools": pools, "overflow": overflow,
                 "proxy server pool": server, OVER: app - fit,
                 "headroom": max(0, ep.usable - app)}
        for order, part in enumerate(STACK):
            rows.append({"endpoint": ep.role, "part": part, "connections": parts[part],
                         "order": order, "max_connections": ep.max_connections,
                         "usable": ep.usable, "worst_case": app, "headroom": ep.headroom})
    return rows



def budget_service_rows(rec: Recommendation) -> list[dict]:
    """Several services: one row per (endpoint, part) with a part per service (its worst
    case at everyone's peak, `ServiceShare.worst_case`). Parts stack to max_connections
    while the endpoint fits; the connections past usable are their own part (OVER)."""
    rows = []
    for ep in rec.endpoints:
        left = ep.usable
        parts: list[tuple[str, int, int]] = [("reserved", ep.reserved, ep.reserved)]
        for b in ep.by_service:
            fit = max(0, min(b.worst_case, left))
            left -= fit
            parts.append((b.service, fit, b.worst_case))
        parts.append((OVER, ep.worst_case - (ep.usable - left), 0))
        parts.append(("headroom", max(0, ep.usable - ep.worst_case), 0))
        for order, (part, value, own) in enumerate(parts):
            rows.append({"endpoint": ep.role, "part": part, "connections": value,
                         "order": order, "service_worst_case": own,
                         "max_connections": ep.max_connections, "usable": ep.usable,
                         "worst_case": ep.worst_case, "headroom": ep.headroom})
    return rows


def by_service(rec: Recommendation) -> bool:
    """Whether the budget stacks by service: when services share an endpoint (else each
    endpoint's one part is drawn as its pools, overflow or proxy server pool)."""
    return any(len(ep.by_service) > 1 for ep in rec.endpoints)


def budget_data(rec: Recommendation) -> tuple[tuple, dict[str, list[dict]]]:
    """(shape, datasets) of the budget chart (stacked by service where services share an
    endpoint)."""
    if by_service(rec):
        rows = budget_service_rows(rec)
        names = [v.name for v in rec.services]
        present = tuple(p for p in ["reserved", *names, OVER, "headroom"]
                        if any(r["part"] == p and r["connections"] > 0 for r in rows))
        limits = [{"endpoint": ep.role, "max_connections": ep.max_connections,
                   "source": ep.max_connections_source, "marker": "max_connections"}
                  for ep in rec.endpoints]
        roles = tuple(ep.role for ep in rec.endpoints)
        return (roles, present, tuple(service_colors(names))), {"budget": rows,
                                                                "limits": limits}
    rows = budget_rows(rec)
    present = tuple(sorted({r["part"] for r in rows if r["connections"] > 0},
                           key=PARTS.index))
    limits = [{"endpoint": ep.role, "max_connections": ep.max_connections,
               "source": ep.max_connections_source, "marker": "max_connections"}
              for ep in rec.endpoints]
    roles = tuple(ep.role for ep in rec.endpoints)
    return (roles, present), {"budget": rows, "limits": limits}


def budget_chart(rec: Recommendation) -> alt.LayerChart:
    """Connection budget of every endpoint at the autoscaling peak: a stacked bar of
    reserved, pools, overflow (or the proxy's server pool), headroom and, in the scheme's
    red, whatever lies past max_connections; max_connections marked by a tick."""
    shape, data = budget_data(rec)
    return budget_structure(*shape).properties(datasets=data)


def budget_structure(roles: tuple[str, ...], present: tuple[str, ...],
            domain: tuple[str, ...] = PARTS) -> alt.LayerChart:
    # Explicit band scale and bar size: with the tick layer sharing the y scale, Streamlit's
    # theme otherwise draws the bars as hairlines.
    y = alt.Y(field="endpoint", type="nominal", title=None, sort=list(roles),
              scale=alt.Scale(type="band", paddingInner=0.3))
    bars = alt.Chart(alt.Data(name="budget")).mark_bar(size=28).encode(
        x=alt.X(field="connections", type="quantitative", stack="zero",
                title="connections at the autoscaling peak"),
        y=y,
        color=alt.Color(field="part", type="nominal", title=None,
                        scale=alt.Scale(scheme=SCHEME, domain=list(domain)),
                        legend=alt.Legend(values=list(present), orient="bottom", columns=3,
                                          labelLimit=150)),
        order=alt.Order(field="order", type="quantitative"),
        tooltip=[alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="part", type="nominal"),
                 alt.Tooltip(field="connections", type="quantitative", format=","),
                 alt.Tooltip(field="worst_case", type="quantitative", format=",",
                             title="database sees"),
                 alt.Tooltip(field="usable", type="quantitative", format=","),
                 alt.Tooltip(field="headroom", type="quantitative", format=","),
                 alt.Tooltip(field="max_connections", type="quantitative", format=",")],
    )
    tick = alt.Chart(alt.Data(name="limits")).mark_tick(thickness=4, size=40).encode(
        x=alt.X(field="max_connections", type="quantitative"),
        y=y,
        color=marker_color([], None, legend=False),
        tooltip=[alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="max_connections", type="quantitative", format=","),
                 alt.Tooltip(field="source", type="nominal")],
    )
    return alt.layer(bars, tick).resolve_scale(color="independent").properties(
        width=WIDTH, height=70 * len(roles) + 190,
        title="Budget at the peak")

