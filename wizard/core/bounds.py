"""The documented range of every numeric scenario input, checked before anything is built.

The ranges are the parameter table's (wizard.core.params) and serve the CLI, share links,
saved scenarios and the app: a value outside its range (NaN and infinity included) is
refused with one plain line naming the field, so no work downstream can grow with a
number a visitor typed.
"""

from __future__ import annotations

import math

from wizard.core import params
from wizard.core.errors import ScenarioError
from wizard.core.model import field_name
from wizard.core.params import (  # noqa: F401 - re-exported: the limits live with the table
    MAX_REPLICAS,
    MAX_REPLICAS_SOURCE,
    MAX_SERVICES,
    PG_MAX_BACKENDS,
    PG_MAX_BACKENDS_SOURCE,
    Range,
)

# Generated from the parameter table (wizard.core.params): a row's `range`.
RANGES: dict[str, Range] = params.ranges()


def check(key: str, value: float | int | None) -> None:
    """Raise ScenarioError (with `.key`) when a value lies outside its documented range."""
    if value is None or key not in RANGES:
        return
    r = RANGES[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > r.low if r.above else value >= r.low) and value <= r.high
        ok = ok and (not r.integer or float(value).is_integer())
    if not ok:
        shown = (f"{value:,}" if isinstance(value, int) else f"{value:g}"
                 if isinstance(value, float) else repr(value))
        why = f" ({r.why})" if r.why else ""
        raise ScenarioError(f"{field_name(key)} must be {r.words()}{why}, got {shown}", key=key)
