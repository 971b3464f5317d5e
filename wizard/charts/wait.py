"""The wait chart: Erlang C per process, how often a checkout waits for each pool_size."""

from __future__ import annotations

import altair as alt

from wizard.charts.style import EXPORTED, SCHEME, WIDTH
from wizard.core import queueing
from wizard.core.model import Recommendation


def wait_chart(rec: Recommendation) -> alt.LayerChart | None:
    """P(a checkout waits) against connections per process, the exported pool_size +
    max_overflow and the 5% target marked; None without load."""
    made = wait_data(rec)
    return None if made is None else wait_structure().properties(datasets=made[1])


def wait_data(rec: Recommendation) -> tuple[tuple, dict[str, list[dict]]] | None:
    """(shape, datasets) of the wait chart; None without load."""
    if rec.load is None:
        return None
    data = {"curve": [{"pool_size": n, "p_wait": p} for n, p in rec.load.curve],
            "chosen": [{"pool_size": rec.endpoints[0].pool_size
                        + rec.endpoints[0].max_overflow, "marker": EXPORTED}],
            "target": [{"p_wait": queueing.WAIT_TARGET, "marker": "target"}]}
    return (), data


def wait_structure() -> alt.LayerChart:
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
