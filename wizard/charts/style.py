"""What every chart shares: the colour scheme, the part and marker names (their order is
their colour), the captions the app shows under each chart, and the marker colour scale.

No colour is hard-coded: everything takes a colour from the "tableau10" scheme by its place
in a domain, so red (the scheme's third colour) is only ever "over the limit", and every
marker line has a scheme colour of its own, visible on light and dark themes.
"""

from __future__ import annotations

import altair as alt

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


def marker_color(present: list[str], title: str | None = "marker",
                  legend: bool = True) -> alt.Color:
    """Colour for marker lines and ticks: scheme colours 7.. so they never collide with the
    parts (the theme's default grey vanishes on a dark background)."""
    domain = ["_", "_1", "_2", "_3", "_4", "_5", *MARKERS]
    return alt.Color(field="marker", type="nominal", title=title,
                     scale=alt.Scale(scheme=SCHEME, domain=domain),
                     legend=alt.Legend(values=present, orient="bottom") if legend else None)

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
