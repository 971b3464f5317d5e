"""The serverless chart: the client connections the invocations open on the pooler against
its client limit, per endpoint."""

from __future__ import annotations

import altair as alt

from wizard.charts.style import WIDTH, marker_color
from wizard.core.model import Recommendation


def serverless_chart(rec: Recommendation) -> alt.LayerChart | None:
    """Serverless behind a pooler: the connections the invocations open on the pooler against
    its client limit, per endpoint; None without a client-side limit or when not serverless."""
    made = serverless_data(rec)
    return None if made is None else serverless_structure(*made[0]).properties(datasets=made[1])


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


def serverless_structure(n: int) -> alt.LayerChart:
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
        color=marker_color([], None, legend=False), tooltip=tip)
    return alt.layer(bars, tick).properties(
        width=WIDTH, height=70 * n + 170,
        title="Concurrency vs the pooler")

