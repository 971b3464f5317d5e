"""A measured load (`poolwise observe`) as the load the sizing reads.

Little's law read backwards: the connections a service keeps busy, sampled in
pg_stat_activity, are its offered load (arrival rate x hold time) whatever its rate and
hold time are. Per process, the offered load is busy_mean / processes (the processes
running when it was measured); the burst is busy_p95 / processes, at least twice the
offered load (the rule a guessed load without a p95 hold time gets). `as_load` turns that
into the `Load` every formula reads (rps and hold time chosen so that rps / workers x hold
is the measured offered load and rps / workers x p95 hold the measured burst), so the
sizing, the pooler's need and the cores findings all read the same measured figure.

The hold time is not measured: it only scales the waits (mean wait, P(wait past
pool_timeout)), never a pool size (Erlang C depends on the offered load alone). The
guessed hold time is kept when one was given, else NOMINAL_HOLD_MS; the lines say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from wizard.core import params
from wizard.core.errors import ScenarioError
from wizard.core.model import Load, LoadSizing, MeasuredLoad, Recommendation

BURST_FLOOR = 2.0  # a burst is at least twice the mean, as for a guessed load
NOMINAL_HOLD_MS = 100.0  # the hold time behind the waits when only a measurement is given
MAX_BUSY = float(params.PG_MAX_BACKENDS)  # no server has more busy connections
MAX_PROCESSES = params.MEASURED_MAX_PROCESSES  # app instances x workers at their maxima
MAX_SECONDS = float(params.MEASURED_MAX_SECONDS)
MAX_WHERE_CHARS = params.MEASURED_WHERE_CHARS
AT_SHAPE = re.compile(params.MEASURED_AT_SHAPE)
# host:port/database: a name or address ([v6] in brackets), a port, a plain database name;
# nothing a report or a page could render as a link or markup.
WHERE_SHAPE = re.compile(params.MEASURED_WHERE_SHAPE)
KEYS = ("busy_mean", "busy_p95", "processes", "at", "where", "seconds")
REQUIRED = ("busy_mean", "busy_p95", "processes", "at", "where")


def where(host: str, port: int, database: str) -> str:
    """`host:port/database` in WHERE_SHAPE: an IPv6 host in brackets, any other character
    of a database name as '_' (a name is recorded, never rendered as markup)."""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}/{re.sub(r'[^A-Za-z0-9_.-]', '_', database)[:63]}"


def check(m: MeasuredLoad) -> MeasuredLoad:
    """`m` if every field is in its range (ScenarioError with the key otherwise)."""
    def number(key: str, value: float, hi: float, integer: bool = False,
               above: bool = False) -> None:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value) and (value > 0 if above else value >= 0) and value <= hi
              and (not integer or float(value).is_integer()))
        if not ok:
            kind = "a whole number" if integer else "a number"
            low = "above 0" if above else "from 0"
            raise ScenarioError(f"measured {key} must be {kind} {low} to {hi:,g}, got "
                                f"{value!r:.40}", key=f"measured_{key}")
    number("busy_mean", m.busy_mean, MAX_BUSY)
    number("busy_p95", m.busy_p95, MAX_BUSY)
    number("processes", m.processes, MAX_PROCESSES, integer=True, above=True)
    number("seconds", m.seconds, MAX_SECONDS)
    if not isinstance(m.at, str) or not AT_SHAPE.fullmatch(m.at):
        raise ScenarioError("measured at must be a UTC time like 2026-12-06T03:10:00Z",
                            key="measured_at")
    if (not isinstance(m.where, str) or len(m.where) > MAX_WHERE_CHARS
            or not WHERE_SHAPE.fullmatch(m.where)):
        raise ScenarioError("measured where must be host:port/database (letters, digits, "
                            "'.', '-', '_'; an IPv6 address in brackets)", key="measured_where")
    return m


def as_load(m: MeasuredLoad, workers: int, guess: Load | None = None,
            serverless: bool = False) -> Load:
    """The Load a measurement stands for, per app instance (see the module's docstring).

    `guess` is the rps x hold time given beside it, if any: its hold time scales the
    waits, and its offered load per process is kept to say how far apart they were."""
    guess = guess.given if guess is not None else None  # re-measured: the guess stays
    per_instance = 1 if serverless else workers
    per_process = m.busy_mean if serverless else m.busy_mean / m.processes
    hold = guess.hold_ms if guess is not None else NOMINAL_HOLD_MS
    rps = per_process / (hold / 1000) * per_instance
    # The burst: the measured p95, at least twice the mean (the rule a guessed load without
    # a p95 hold time gets), so the two sources size the same load alike (bench/observe.md).
    ratio = max(BURST_FLOOR, m.busy_p95 / m.busy_mean) if m.busy_mean > 0 else BURST_FLOOR
    guess_busy = (guess.rps / per_instance * guess.hold_ms / 1000) if guess is not None else None
    return Load(rps, hold, hold * ratio, replace(m, guess_busy=guess_busy, guess=guess))


def from_values(v: Mapping[str, Any], guess: Load | None, workers: int,
                serverless: bool = False) -> Load | None:
    """The load parsed parameters describe: `guess` (rps x hold time, or None) alone, or,
    with `measured_*` values, the measured load beside it (ScenarioError with the key of a
    missing or out-of-range value)."""
    if not any(f"measured_{k}" in v for k in KEYS):
        return guess
    for k in REQUIRED:
        if f"measured_{k}" not in v:
            raise ScenarioError(f"a measured load needs measured_{k} too (poolwise observe "
                                "writes busy_mean, busy_p95, processes, at and where)",
                                key=f"measured_{k}")
    m = MeasuredLoad(busy_mean=float(v["measured_busy_mean"]),
                     busy_p95=float(v["measured_busy_p95"]),
                     processes=v["measured_processes"], at=v["measured_at"],
                     where=v["measured_where"], seconds=float(v.get("measured_seconds", 0.0)))
    return as_load(check(m), workers, guess, serverless)


def flat(m: MeasuredLoad) -> dict[str, Any]:
    """A measurement as parameter values, keyed `measured_<field>` (KEYS)."""
    return {f"measured_{k}": getattr(m, k) for k in KEYS}


def _gap(guess: float, measured: float) -> str:
    if measured <= 0:
        return "the measurement saw no busy connection"
    ratio = guess / measured
    if abs(ratio - 1) < 0.005:
        return "the same as the measurement"
    return (f"{ratio:.2f}x the measurement ({(ratio - 1):+.0%})" if ratio < 10
            else f"{ratio:,.0f}x the measurement")


def lines(ld: LoadSizing) -> list[str]:
    """The measured load in words (the first lines of sizing.load_lines when measured)."""
    m = ld.measured
    if m is None:
        return []
    per = "" if m.processes <= 0 else f" over {m.processes:,} processes"
    hold = (f"{ld.hold_s * 1000:g} ms hold time as given" if m.guess_busy is not None
            else f"a nominal {NOMINAL_HOLD_MS:g} ms hold time (not measured)")
    took = f", {m.seconds:g} s" if m.seconds else ""
    out = [f"Measured load (poolwise observe, {m.where}, {m.at}{took}): "
           f"{m.busy_mean:,.2f} busy connections (p95 {m.busy_p95:,g}){per} = "
           f"{ld.offered_load:,.2f} per process (Little's law); the waits below assume {hold}."]
    if m.guess_busy is not None:
        out.append(f"The guess (requests/s x hold time) gave {m.guess_busy:,.2f} busy "
                   f"connections per process: {_gap(m.guess_busy, ld.offered_load)}; the "
                   "sizing uses the measurement.")
    return out


def answer_lines(rec: Recommendation) -> list[str]:
    """The measured loads of a plan in words for its first screen (the app's answer, beside
    the table and the metric cards): each service sized from a measurement, where and when,
    and how far its guess was."""
    out = []
    for plan in rec.services:
        ld = plan.rec.load
        if ld is not None and ld.measured is not None:
            name = f"{plan.name}: " if len(rec.services) > 1 else ""
            out.append(name + " ".join(lines(ld)))
    return out


def label(ld: LoadSizing | None) -> str:
    """A few words naming a measured load where a service is named ("" when guessed)."""
    m = ld.measured if ld is not None else None
    return "" if m is None else f"load measured ({m.where}, {m.at})"
