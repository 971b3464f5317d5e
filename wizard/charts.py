"""Altair charts of a Recommendation: pure functions, no Streamlit, no sizing of their own.

Every number drawn is a field of the Recommendation (or a row of `projection.scale_out`): the
charts never decide where a fleet breaks, they mark the core's `breaks_at`.

Channels are built with `alt.X(field=..., type=...)` objects (shorthand strings cost
milliseconds each to parse). Each chart is two halves: its structure, which depends only
on the shape of the scenario (the endpoints, which parts are present) and is serialised
once per shape, and its data, passed as named `datasets`. `*_chart` returns the Altair
object; `spec(kind, rec)` returns its Vega-Lite dict, data written into the layers, at the
cost of the data alone.
Titles are short (a phone shows about 40 characters) and carry no subtitle: Vega draws
subtitles in a fixed dark grey that vanishes on the dark theme, so the app says what the
ticks and lines mean in a caption (CAPTIONS). No colour is hard-coded: everything takes a
colour from the "tableau10" scheme by its place in a domain, so red (the scheme's third
colour) is only ever "over the limit", and every marker line has a scheme colour of its
own, visible on light and dark themes.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import altair as alt

from wizard.core import projection, queueing
from wizard.core.model import EndpointBudget, Recommendation

SCHEME = "tableau10"
EXPORTED = "exported pool_size + max_overflow"
WIDTH = "container"
OVER = "over max_connections"
# Order = colour: tableau10 is blue, orange, red, teal, green, yellow, purple, ... so only
# OVER is red and headroom is green.
PARTS = ("pools", "overflow", OVER, "proxy server pool", "headroom", "reserved")
STACK = ("reserved", "pools", "overflow", "proxy server pool", OVER, "headroom")
# Marker lines: their own colours from the same scheme (purple, pink, brown, grey).
MARKERS = ("max_connections", "usable", "autoscaling peak", "breaks at")
CAPTIONS = {
    "budget": "Per endpoint at the autoscaling peak: reserved, pools, overflow (or the "
              "proxy's server pool) and headroom; the tick is max_connections, and anything "
              "past it is drawn in red.",
    "scale": "What each endpoint sees as the fleet grows, the recommended settings held "
             "fixed; the flat line of the same style is that endpoint's usable connections, "
             "the dotted lines the autoscaling peak and where it breaks.",
    "serverless": "Client connections the invocations open on the pooler; the tick is the "
                  "pooler's client limit.",
    "services": "Each service grown alone (instances, or invocations for a serverless "
                "one) while the others stay at their peaks: its connections on each endpoint "
                "against what the others leave it (the flat line of its colour); the dot is "
                "today, the dotted lines mark where each one breaks.",
    "budget_services": "Per endpoint at everyone's autoscaling peak: reserved, each "
                       "service's part, headroom; the tick is max_connections, and anything "
                       "past it is drawn in red.",
    "wait": "Erlang C per process: how often a checkout waits for each pool_size; the "
            "exported pool_size + max_overflow and the 5 % target are marked.",
}


def _marker_color(present: list[str], title: str | None = "marker",
                  legend: bool = True) -> alt.Color:
    """Colour for marker lines and ticks: scheme colours 7.. so they never collide with the
    parts (the theme's default grey vanishes on a dark background)."""
    domain = ["_", "_1", "_2", "_3", "_4", "_5", *MARKERS]
    return alt.Color(field="marker", type="nominal", title=title,
                     scale=alt.Scale(scheme=SCHEME, domain=domain),
                     legend=alt.Legend(values=present, orient="bottom") if legend else None)


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


def service_colors(names: list[str]) -> list[str]:
    """A colour domain for service names and the budget's own parts: every name gets a
    tableau10 colour of its own that is not red (kept for "over the limit"); the scheme
    cycles after ten, so every tenth place from the third is left out too."""
    fixed = {2: OVER, 4: "headroom", 5: "reserved"}
    domain: list[str] = []
    pending = list(names)
    i = 0
    while pending or i <= max(fixed):
        if i in fixed:
            domain.append(fixed[i])
        elif i % 10 == 2:
            domain.append(f"_{i}")
        elif pending:
            domain.append(pending.pop(0))
        else:
            domain.append(f"_{i}")
        i += 1
    return domain


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
    return _budget(*shape).properties(datasets=data)


def _budget(roles: tuple[str, ...], present: tuple[str, ...],
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
        color=_marker_color([], None, legend=False),
        tooltip=[alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="max_connections", type="quantitative", format=","),
                 alt.Tooltip(field="source", type="nominal")],
    )
    return alt.layer(bars, tick).resolve_scale(color="independent").properties(
        width=WIDTH, height=70 * len(roles) + 190,
        title="Budget at the peak")


def _series_scale(roles: list[str]) -> alt.Scale:
    """One colour scale for endpoints and marker lines: endpoints skip the scheme's red (kept
    for "over the limit"), markers take the colours after them."""
    slots = [0, 1, 3, 4, 5, 7]
    domain = [f"·{i}" for i in range(10)]
    for slot, role in zip(slots, roles, strict=False):
        domain[slot] = role
    domain += [r for r in roles[len(slots):]]
    domain[6], domain[8] = "autoscaling peak", "usable"
    return alt.Scale(scheme=SCHEME, domain=domain)


def scale_out_chart(rec: Recommendation, up_to: int | None = None) -> alt.LayerChart | None:
    """What each endpoint sees as the fleet grows (the core's scale-out rows, recommended
    settings held fixed), against each endpoint's usable connections, with the autoscaling
    peak and the core's break point (`breaks_at`) marked; None for serverless scenarios.

    Endpoints get a colour and a dash each, drawn widest first, so equal lines never hide
    one another."""
    made = scale_out_data(rec, up_to)
    if made is None:
        return None
    shape, data = made
    return _scale_out(*shape).properties(datasets=data)


def scale_out_data(rec: Recommendation, up_to: int | None = None,
                   ) -> tuple[tuple, dict[str, list[dict]]] | None:
    """(shape, datasets) of the scale-out chart; None for serverless scenarios."""
    rows = projection.scale_out(rec, up_to)
    if not rows:
        return None
    usable = [{"endpoint": ep.role, "usable": ep.usable} for ep in rec.endpoints]
    # x is the autoscaling maximum (the core adds the deploy surge to every point).
    now = rec.sized.autoscaling_max
    marks = [{"instances": now, "endpoint": "autoscaling peak",
              "label": f"autoscaling max {now:,}"}]
    breaks = [(ep.role, n) for ep in rec.endpoints if (n := ep.breaks_at) is not None]
    # "slot": the label's pixel offset from the top, so labels at the same N do not overlap
    marks += [{"instances": n, "endpoint": role, "label": f"{role} breaks at {n:,}",
               "slot": 4 + 15 * i} for i, (role, n) in enumerate(breaks)]
    roles = tuple(ep.role for ep in rec.endpoints)
    return (roles, len(marks) > 1), {"scale": rows, "usable": usable, "marks": marks,
                                     "breaks": marks[1:]}


def _scale_out(roles_: tuple[str, ...], with_breaks: bool) -> alt.LayerChart:
    roles = list(roles_)
    scale = _series_scale(roles)
    dashes = [[1, 0], [8, 4], [2, 3], [12, 3, 2, 3], [4, 2], [1, 4]]
    dash_scale = alt.Scale(domain=roles, range=[dashes[i % 6] for i in range(len(roles))])
    x = alt.X(field="instances", type="quantitative", title="app instances",
              axis=alt.Axis(tickMinStep=1))
    color = alt.Color(field="endpoint", type="nominal", title=None, scale=scale,
                      legend=alt.Legend(values=[*roles, "autoscaling peak"], orient="bottom",
                                        columns=2, symbolStrokeWidth=3))
    lines = alt.Chart(alt.Data(name="scale")).mark_line().encode(
        x=x,
        y=alt.Y(field="worst_case", type="quantitative", title="the database sees"),
        color=color,
        strokeDash=alt.StrokeDash(field="endpoint", type="nominal", legend=None,
                                  scale=dash_scale),
        strokeWidth=alt.StrokeWidth(field="endpoint", type="nominal", legend=None,
                                    scale=alt.Scale(domain=roles, range=[
                                        max(1.5, 4.5 - 1.5 * i) for i in range(len(roles))])),
        order=alt.Order(field="instances", type="quantitative"),
        tooltip=[alt.Tooltip(field="instances", type="quantitative"),
                 alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="worst_case", type="quantitative", format=",",
                             title="database sees"),
                 alt.Tooltip(field="client_connections", type="quantitative", format=",",
                             title="clients open"),
                 alt.Tooltip(field="usable", type="quantitative", format=",")],
    )
    limit = alt.Chart(alt.Data(name="usable")).mark_rule(size=1.5, opacity=0.8).encode(
        y=alt.Y(field="usable", type="quantitative"),
        color=color,
        strokeDash=alt.StrokeDash(field="endpoint", type="nominal", legend=None,
                                  scale=dash_scale),
        tooltip=[alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="usable", type="quantitative", format=",")],
    )
    rules = alt.Chart(alt.Data(name="marks")).mark_rule(strokeDash=[2, 2], size=2).encode(
        x=alt.X(field="instances", type="quantitative"), color=color,
        tooltip=[alt.Tooltip(field="label", type="nominal")])
    labels = alt.Chart(alt.Data(name="breaks")).mark_text(
        align="left", dx=4, dy=4, baseline="top").encode(
        x=alt.X(field="instances", type="quantitative"),
        y=alt.Y(field="slot", type="quantitative", scale=None), text=alt.Text(
            field="label", type="nominal"), color=color)
    layers = [lines, limit, rules] + ([labels] if with_breaks else [])
    return alt.layer(*layers).properties(
        width=WIDTH, height=400,
        title="As the fleet scales out")


def services_scale_chart(rec: Recommendation, up_to: int | None = None
                         ) -> alt.LayerChart | None:
    """Several services: which one's growth breaks an endpoint first (the core's
    `projection.scale_out_services` rows and each ServiceShare's `breaks_at`); None without
    a series."""
    made = services_scale_data(rec, up_to)
    return None if made is None else _services_scale(*made[0]).properties(datasets=made[1])


def services_scale_range(rec: Recommendation) -> int:
    """The x axis end: the core's default range, and past every service's break point (not
    only the first one), so each break is on the chart."""
    last = max((b.breaks_at for ep in rec.endpoints for b in ep.by_service
                if b.breaks_at is not None), default=0)
    return max(projection.scale_out_services_range(rec), last + max(2, last // 10))


def services_scale_data(rec: Recommendation, up_to: int | None = None,
                        ) -> tuple[tuple, dict[str, list[dict]]] | None:
    """(shape, datasets) of the services scale-out chart; None without series."""
    rows = projection.scale_out_services(rec, up_to or services_scale_range(rec))
    if not rows:
        return None
    top = max(r["instances"] for r in rows)
    seen: dict[str, dict] = {}
    for r in rows:
        seen.setdefault(r["series"], r)
    limits = [{"series": k, "service": r["service"], "endpoint": r["endpoint"],
               "limit": r["limit"]} for k, r in seen.items()]
    marks = [{"instances": r["breaks_at"], "series": k, "service": r["service"],
              "endpoint": r["endpoint"],
              "label": f"{r['service']} breaks {r['endpoint']} at {r['breaks_at']:,}",
              "slot": 4 + 15 * i}
             for i, (k, r) in enumerate(
                 (k, r) for k, r in seen.items() if r["breaks_at"] and r["breaks_at"] <= top)]
    # Far-apart break points (13 and 517) on a log axis; the y axis up to a bit past the
    # highest limit (lines climbing past it are cut at the top: they broke long before).
    log = top > 60
    where = (lambda x: math.log(max(1, x)) / math.log(top)) if log else (lambda x: x / top)
    for m in marks:
        m["side"] = "left" if where(m["instances"]) > 0.5 else "right"
    ymax = int(max((r["limit"] for r in rows if r["limit"] is not None), default=0) * 1.5)
    ymax = max(ymax, max(r["connections"] for r in rows if r["instances"] <= 1) + 1, 10)
    today = [{"instances": r["today"], "series": k, "service": r["service"],
              "endpoint": r["endpoint"],
              "connections": next(x["connections"] for x in rows
                                  if x["series"] == k and x["instances"] == r["today"]),
              "label": f"{r['service']} today: {r['today']:,} {r['unit']}"}
             for k, r in seen.items() if r["today"] <= top]
    names = tuple(v.name for v in rec.services)
    roles = tuple(dict.fromkeys(r["endpoint"] for r in rows))
    return ((names, roles, log, ymax), {"services": rows, "limits": limits, "marks": marks,
                                        "today": today})


def _services_scale(names: tuple[str, ...], roles_: tuple[str, ...], log: bool = False,
                    ymax: int | None = None) -> alt.LayerChart:
    roles = list(roles_)
    dashes = [[1, 0], [8, 4], [2, 3], [12, 3, 2, 3], [4, 2], [1, 4]]
    dash_scale = alt.Scale(domain=roles, range=[dashes[i % 6] for i in range(len(roles))])
    color = alt.Color(field="service", type="nominal", title=None,
                      scale=alt.Scale(scheme=SCHEME, domain=service_colors(list(names))),
                      legend=alt.Legend(values=list(names), orient="bottom", columns=2,
                                        symbolStrokeWidth=3, labelLimit=110))
    # Two columns and one: both legends fit side by side under a 390 px phone's chart.
    dash = alt.StrokeDash(field="endpoint", type="nominal", scale=dash_scale,
                          legend=alt.Legend(orient="bottom", title=None, columns=1,
                                            labelLimit=90) if len(roles) > 1 else None)
    xscale = alt.Scale(type="log") if log else alt.Scale()
    x = alt.X(field="instances", type="quantitative", axis=alt.Axis(tickMinStep=1),
              title="instances of the growing service" + (" (log scale)" if log else ""),
              scale=xscale)
    yscale = alt.Scale(domain=[0, ymax]) if ymax else alt.Scale()
    lines = alt.Chart(alt.Data(name="services")).mark_line(strokeWidth=2.5, clip=True).encode(
        x=x, y=alt.Y(field="connections", type="quantitative", scale=yscale,
                     title="its connections on the endpoint"),
        color=color, strokeDash=dash, detail=alt.Detail(field="series", type="nominal"),
        order=alt.Order(field="instances", type="quantitative"),
        tooltip=[alt.Tooltip(field="service", type="nominal"),
                 alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="instances", type="quantitative"),
                 alt.Tooltip(field="connections", type="quantitative", format=","),
                 alt.Tooltip(field="limit", type="quantitative", format=",",
                             title="the others leave it"),
                 alt.Tooltip(field="breaks_at", type="quantitative", title="breaks at")])
    limit = alt.Chart(alt.Data(name="limits")).mark_rule(size=1.5, opacity=0.8).encode(
        y=alt.Y(field="limit", type="quantitative"), color=color, strokeDash=dash,
        tooltip=[alt.Tooltip(field="service", type="nominal"),
                 alt.Tooltip(field="endpoint", type="nominal"),
                 alt.Tooltip(field="limit", type="quantitative", format=",",
                             title="the others leave it")])
    now = alt.Chart(alt.Data(name="today")).mark_point(size=70, filled=True,
                                                       clip=True).encode(
        x=alt.X(field="instances", type="quantitative"),
        y=alt.Y(field="connections", type="quantitative"), color=color,
        tooltip=[alt.Tooltip(field="label", type="nominal")])
    rules = alt.Chart(alt.Data(name="marks")).mark_rule(strokeDash=[2, 2], size=2).encode(
        x=alt.X(field="instances", type="quantitative"), color=color,
        tooltip=[alt.Tooltip(field="label", type="nominal")])
    # Each label beside its line, on the side with room (never over the axis title).
    def labels(side: str) -> alt.Chart:
        right = side == "right"
        return alt.Chart(alt.Data(name="marks")).mark_text(
            align="left" if right else "right", dx=4 if right else -4, dy=4,
            baseline="top").encode(
            x=alt.X(field="instances", type="quantitative"),
            y=alt.Y(field="slot", type="quantitative", scale=None),
            text=alt.Text(field="label", type="nominal"), color=color
        ).transform_filter(alt.datum.side == side)

    where = (f"on {roles[0]}" if len(roles) == 1
             else "on " + ", ".join(roles) + " (one dash each)")
    return alt.layer(lines, limit, now, rules, labels("right"), labels("left")).properties(
        width=WIDTH, height=400,
        title=alt.TitleParams("Which service breaks it first", subtitle=where))


def serverless_chart(rec: Recommendation) -> alt.LayerChart | None:
    """Serverless behind a pooler: the connections the invocations open on the pooler against
    its client limit, per endpoint; None without a client-side limit or when not serverless."""
    made = serverless_data(rec)
    return None if made is None else _serverless(*made[0]).properties(datasets=made[1])


def serverless_data(rec: Recommendation) -> tuple[tuple, dict[str, list[dict]]] | None:
    """(shape, datasets) of the serverless chart; None when it does not apply."""
    if not rec.sized.serverless:
        return None
    rows = [{"endpoint": ep.role, "clients open": ep.client_side.worst_case,
             "client limit": ep.client_side.limit, "source": ep.client_side.limit_source,
             "marker": "max_connections"}
            for ep in rec.endpoints
            if ep.client_side is not None and ep.client_side.limit is not None]
    if not rows:
        return None
    return (len(rows),), {"serverless": rows}


def _serverless(n: int) -> alt.LayerChart:
    y = alt.Y(field="endpoint", type="nominal", title=None,
              scale=alt.Scale(type="band", paddingInner=0.3))
    tip = [alt.Tooltip(field="endpoint", type="nominal"),
           alt.Tooltip(field="clients open", type="quantitative", format=","),
           alt.Tooltip(field="client limit", type="quantitative", format=","),
           alt.Tooltip(field="source", type="nominal")]
    bars = alt.Chart(alt.Data(name="serverless")).mark_bar(size=28).encode(
        x=alt.X(field="clients open", type="quantitative",
                title="client connections at peak concurrency"),
        y=y, tooltip=tip)
    tick = alt.Chart(alt.Data(name="serverless")).mark_tick(thickness=4, size=40).encode(
        x=alt.X(field="client limit", type="quantitative"), y=y,
        color=_marker_color([], None, legend=False), tooltip=tip)
    return alt.layer(bars, tick).properties(
        width=WIDTH, height=70 * n + 170,
        title="Concurrency vs the pooler")


def wait_chart(rec: Recommendation) -> alt.LayerChart | None:
    """P(a checkout waits) against connections per process, the exported pool_size +
    max_overflow and the 5% target marked; None without load."""
    made = wait_data(rec)
    return None if made is None else _wait().properties(datasets=made[1])


def wait_data(rec: Recommendation) -> tuple[tuple, dict[str, list[dict]]] | None:
    """(shape, datasets) of the wait chart; None without load."""
    if rec.load is None:
        return None
    data = {"curve": [{"pool_size": n, "p_wait": p} for n, p in rec.load.curve],
            "chosen": [{"pool_size": rec.endpoints[0].pool_size
                        + rec.endpoints[0].max_overflow, "marker": EXPORTED}],
            "target": [{"p_wait": queueing.WAIT_TARGET, "marker": "target"}]}
    return (), data


def _wait() -> alt.LayerChart:
    marker = alt.Color(field="marker", type="nominal", title=None,
                       scale=alt.Scale(scheme=SCHEME,
                                       domain=["_", EXPORTED, "_2", "_3",
                                               "target"]),
                       legend=alt.Legend(values=[EXPORTED, "target"], orient="bottom",
                                         columns=1, labelLimit=0))  # never cut
    x = alt.X(field="pool_size", type="quantitative", title="pool_size per process",
              axis=alt.Axis(tickMinStep=1))
    curve = alt.Chart(alt.Data(name="curve")).mark_line(point=True).encode(
        x=x,
        y=alt.Y(field="p_wait", type="quantitative", title="P(checkout waits)",
                # labelFlush off: the theme's flush end labels sat above the 0 % line and
                # under the 100 % one, so the curve looked below 0 % and above 100 %.
                axis=alt.Axis(format="%", labelFlush=False),
                scale=alt.Scale(domainMin=0, clamp=True)),
        tooltip=[alt.Tooltip(field="pool_size", type="quantitative"),
                 alt.Tooltip(field="p_wait", type="quantitative", format=".1%")],
    )
    mark = alt.Chart(alt.Data(name="chosen")).mark_rule(size=2).encode(
        x=alt.X(field="pool_size", type="quantitative"), color=marker,
        tooltip=[alt.Tooltip(field="marker", type="nominal"),
                 alt.Tooltip(field="pool_size", type="quantitative")],
    )
    goal = alt.Chart(alt.Data(name="target")).mark_rule(strokeDash=[4, 4], size=2).encode(
        y=alt.Y(field="p_wait", type="quantitative"), color=marker,
        tooltip=[alt.Tooltip(field="marker", type="nominal"),
                 alt.Tooltip(field="p_wait", type="quantitative", format=".0%")],
    )
    return alt.layer(curve, mark, goal).properties(
        width=WIDTH, height=340,
        title="P(checkout waits)")


def compare_rows(recs_by_name: Mapping[str, Recommendation]) -> list[dict]:
    """One row per (scenario, endpoint) with the numbers a comparison shows; `used` and
    `spare` are the worst case and the headroom as shares of that endpoint's usable."""
    rows = []
    for name, rec in recs_by_name.items():
        s = rec.scenario
        n = len(rec.services)
        fleet = (f"{n} service{'' if n == 1 else 's'}: "
                 + " + ".join(_fleet_words(v.name, v.service) for v in rec.services))
        setup = (f"{s.provider} {s.instance_class or 'measured'}"
                 f"{'' if s.proxy == 'none' else ' + ' + s.proxy} · {fleet}")
        for ep in rec.endpoints:
            rows.append({"scenario": name, "setup": setup, "endpoint": ep.role,
                         "max_connections": ep.max_connections, "usable": ep.usable,
                         "processes": ep.processes, "pools": pools_words(rec, ep),
                         "worst_case": ep.worst_case, "headroom": ep.headroom,
                         **_shares(ep)})
    return rows


def _fleet_words(name: str, s: Any) -> str:
    """One service's fleet in a few words ("api 10 inst. x 2 workers")."""
    return name + " " + (f"serverless {s.serverless_concurrency}" if s.serverless else
                          f"{s.peak_instances} inst. x {s.workers} workers")


def pools_words(rec: Recommendation, ep: EndpointBudget) -> str:
    """The pools on an endpoint as text, each service's: "app 7 + 2" (pool_size +
    max_overflow), "api NullPool · queue 14 + 6"; "–" when none."""
    def one(eng) -> str:
        return "NullPool" if eng.poolclass == "NullPool" else \
            f"{eng.pool_size} + {eng.max_overflow}"

    parts = [f"{svc.name} {one(svc.rec.engine(ep.role))}" for svc in rec.services
             if ep.role in svc.endpoints]
    return " · ".join(parts) or "–"


def _shares(ep: EndpointBudget) -> dict[str, float]:
    usable = max(ep.usable, 1)
    return {"used": ep.worst_case / usable, "spare": max(ep.headroom, 0) / usable}


def compare_chart(recs_by_name: Mapping[str, Recommendation]) -> alt.LayerChart:
    """Several scenarios side by side, each endpoint normalised to its own usable (100 %),
    so a small database stays as visible as a big one: the part used, the headroom, and
    what goes past usable in the scheme's red."""
    rows = []
    for r in compare_rows(recs_by_name):
        fit = min(r["used"], 1.0)
        label = f"{r['scenario']} · {r['endpoint']}"
        for order, (part, share) in enumerate((("used at the peak", fit),
                                               ("over usable", r["used"] - fit),
                                               ("headroom", r["spare"]))):
            rows.append({**r, "bar": label, "part": part, "share": share, "order": order})
    y = alt.Y(field="bar", type="nominal", title=None, sort=list(dict.fromkeys(
        r["bar"] for r in rows)), axis=alt.Axis(labelLimit=180))
    tip = [alt.Tooltip(field="scenario", type="nominal"),
           alt.Tooltip(field="endpoint", type="nominal"),
           alt.Tooltip(field="part", type="nominal"),
           alt.Tooltip(field="share", type="quantitative", format=".0%"),
           alt.Tooltip(field="worst_case", type="quantitative", format=","),
           alt.Tooltip(field="usable", type="quantitative", format=","),
           alt.Tooltip(field="headroom", type="quantitative", format=","),
           alt.Tooltip(field="pools", type="nominal")]
    bars = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X(field="share", type="quantitative", stack="zero",
                title="share of each endpoint's usable connections",
                axis=alt.Axis(format="%")),
        y=y,
        color=alt.Color(field="part", type="nominal", title=None,
                        scale=alt.Scale(scheme=SCHEME,
                                        domain=["used at the peak", "_", "over usable", "_3",
                                                "headroom"]),
                        legend=alt.Legend(values=["used at the peak", "headroom",
                                                  "over usable"], orient="bottom")),
        order=alt.Order(field="order", type="quantitative"),
        tooltip=tip)
    return bars.properties(
        width=WIDTH, height=40 * len({r["bar"] for r in rows}) + 170,
        title="Scenarios compared")


# Each chart kind's data half (the structure half is _structure's).
_DATA: dict[str, Callable[[Recommendation], Any]] = {
    "budget": budget_data, "scale": scale_out_data, "serverless": serverless_data,
    "wait": wait_data, "services": services_scale_data}


@functools.lru_cache(maxsize=128)
def _structure(kind: str, shape: tuple) -> dict[str, Any]:
    build: Callable[..., alt.TopLevelMixin] = {"budget": _budget, "scale": _scale_out,
                                               "serverless": _serverless, "wait": _wait,
                                               "services": _services_scale}[kind]
    return build(*shape).to_dict(validate=False)


def spec(kind: str, rec: Recommendation) -> dict[str, Any] | None:
    """The Vega-Lite dict of one chart ("budget", "scale", "serverless", "wait" or
    "services"): the `*_chart(rec).to_dict(validate=False)` with each layer's named dataset
    written into the layer (`inline`), at the cost of the data alone: the structure is built
    once per shape. A fresh dict each call (Streamlit edits the spec it draws)."""
    made = _DATA[kind](rec)
    if made is None:
        return None
    shape, datasets = made
    return inline({**copy.deepcopy(_structure(kind, shape)), "datasets": datasets})


def inline(chart: dict[str, Any]) -> dict[str, Any]:
    """A layered chart's named `datasets` moved into the layers that draw them, in place.

    Streamlit converts top-level data (named datasets, `data.values`) to Arrow through
    pandas on the server and back to rows in the browser: 2.5 ms per chart here, and the
    first chart imports pandas, NumPy and pyarrow. Rows inside a layer stay plain JSON in
    the spec, which Vega-Lite reads as it is (bench/ui.md)."""
    datasets = chart.pop("datasets", {})
    for layer in chart.get("layer", ()):
        name = layer.get("data", {}).get("name")
        if name in datasets:  # the name stays: tests and readers find the rows by it
            layer["data"] = {"name": name, "values": datasets[name]}
    return chart
