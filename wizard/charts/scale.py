"""The scale-out charts: what each endpoint sees as the fleet grows (the core's projection
rows, recommended settings held fixed), and with several services which one's growth breaks
an endpoint first."""

from __future__ import annotations

import math

import altair as alt

from wizard.charts.style import SCHEME, WIDTH, service_colors
from wizard.core import projection
from wizard.core.model import Recommendation


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
    return scale_out_structure(*shape).properties(datasets=data)


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


def scale_out_structure(roles_: tuple[str, ...], with_breaks: bool) -> alt.LayerChart:
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
    return None if made is None else \
        services_scale_structure(*made[0]).properties(datasets=made[1])


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


def services_scale_structure(names: tuple[str, ...], roles_: tuple[str, ...],
                             log: bool = False, ymax: int | None = None) -> alt.LayerChart:
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

