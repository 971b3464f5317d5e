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

One module a chart: budget, scale (the fleet and the services growing), serverless, wait,
compare (saved scenarios); style holds what they share. This package puts them together
and draws any of them by kind (`spec`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import altair as alt

from wizard.charts.budget import (
    budget_chart,
    budget_data,
    budget_rows,
    budget_service_rows,
    budget_structure,
    by_service,
)
from wizard.charts.compare import compare_chart, compare_rows, pools_words
from wizard.charts.scale import (
    scale_out_chart,
    scale_out_data,
    scale_out_structure,
    services_scale_chart,
    services_scale_data,
    services_scale_range,
    services_scale_structure,
)
from wizard.charts.serverless import serverless_chart, serverless_data, serverless_structure
from wizard.charts.style import (
    CAPTIONS,
    EXPORTED,
    MARKERS,
    OVER,
    PARTS,
    SCHEME,
    STACK,
    WIDTH,
    service_colors,
)
from wizard.charts.wait import wait_chart, wait_data, wait_structure
from wizard.core.model import Recommendation

__all__ = [
    "CAPTIONS", "EXPORTED", "MARKERS", "OVER", "PARTS", "SCHEME", "STACK", "WIDTH",
    "budget_chart", "budget_data", "budget_rows", "budget_service_rows", "by_service",
    "compare_chart", "compare_rows", "inline", "pools_words", "scale_out_chart",
    "scale_out_data", "serverless_chart", "serverless_data", "service_colors",
    "services_scale_chart", "services_scale_data", "services_scale_range", "spec",
    "wait_chart", "wait_data",
]


# Each chart kind's data half (the structure half is _structure's).
_DATA: dict[str, Callable[[Recommendation], Any]] = {
    "budget": budget_data, "scale": scale_out_data, "serverless": serverless_data,
    "wait": wait_data, "services": services_scale_data}


@functools.lru_cache(maxsize=128)
def _structure(kind: str, shape: tuple) -> dict[str, Any]:
    build: Callable[..., alt.TopLevelMixin] = {
        "budget": budget_structure, "scale": scale_out_structure,
        "serverless": serverless_structure, "wait": wait_structure,
        "services": services_scale_structure}[kind]
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
