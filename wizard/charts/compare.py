"""The comparison of saved scenarios: a table's rows and a chart with each endpoint
normalised to its own usable connections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt

from wizard.charts.style import SCHEME, WIDTH
from wizard.core.model import EndpointBudget, Recommendation


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

