"""What a fleet run measured: outcomes per request, figures per phase, and their tables."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Outcome codes per request.
OK, CONN_ERROR, CHECKOUT_TIMEOUT, OTHER_ERROR, UNFINISHED = range(5)
OUTCOMES = ("ok", "connection_error", "checkout_timeout", "other_error", "unfinished")


@dataclass(frozen=True)
class PhaseFigures:
    """What one fleet phase measured."""

    phase: str
    processes: int
    seconds: float
    offered: int
    ok: int
    connection_errors: int
    checkout_timeouts: int
    other_errors: int
    unfinished: int
    throughput: float
    offered_rate: float
    p50_ms: float | None
    p99_ms: float | None
    peak_server_connections: int
    ceiling: int
    # Mean time a successful request held its connection (checkout to return): CPU
    # contention stretches pg_sleep(hold), and with it the pool each process needs.
    held_ms: float | None = None
    # With several groups in one run: the peak of all of them together (the role's total).
    peak_all_groups: int | None = None

    @property
    def errors(self) -> int:
        return self.connection_errors + self.checkout_timeouts + self.other_errors + self.unfinished


@dataclass(frozen=True)
class FleetResult:
    """One run: the setting, its figures per phase, sample error messages, the samples."""

    setting: str
    phases: tuple[PhaseFigures, ...]
    messages: dict[str, str]
    samples: tuple[tuple[float, int], ...]
    per_process: int
    app: str | None = None  # the group's application_name when several ran at once

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for p, fig in zip(d["phases"], self.phases, strict=True):
            p["errors"] = fig.errors
        d["samples"] = [list(s) for s in self.samples]
        return d


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def phase_figures(phase: str, seconds: float, processes: int, per_process: int,
                  rows: Sequence[tuple[float, float, int, float]], begin: float, peak: int,
                  peak_all: int | None = None) -> PhaseFigures:
    """The figures of one phase from the processes' rows (arrival, latency, outcome, held
    seconds) that arrived in [begin, begin + seconds)."""
    end = begin + seconds
    counts = [0] * len(OUTCOMES)
    lat_ok: list[float] = []
    held: list[float] = []
    for at, latency, code, held_s in rows:
        if begin <= at < end:
            counts[code] += 1
            if code == OK:
                lat_ok.append(latency)
                held.append(held_s)
    offered = sum(counts)
    p50, p99 = percentile(lat_ok, 50), percentile(lat_ok, 99)
    return PhaseFigures(
        phase=phase, processes=processes, seconds=seconds, offered=offered,
        ok=counts[OK], connection_errors=counts[CONN_ERROR],
        checkout_timeouts=counts[CHECKOUT_TIMEOUT], other_errors=counts[OTHER_ERROR],
        unfinished=counts[UNFINISHED], throughput=counts[OK] / seconds,
        offered_rate=offered / seconds,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        peak_server_connections=peak, ceiling=per_process * processes,
        held_ms=sum(held) / len(held) * 1000 if held else None, peak_all_groups=peak_all)


# --------------------------------------------------------------------------- output


def table(results: Sequence[FleetResult]) -> list[list[str]]:
    """Rows (one per setting and phase) of the figures, as strings."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    rows = []
    for r in results:
        for f in r.phases:
            rows.append([r.setting, f.phase, str(f.processes), str(r.per_process or "-"),
                         f"{f.offered_rate:,.1f}", f"{f.throughput:,.1f}",
                         str(f.connection_errors), str(f.checkout_timeouts),
                         str(f.other_errors + f.unfinished), ms(f.p50_ms), ms(f.p99_ms),
                         str(f.peak_server_connections)])
    return rows


HEADER = ["setting", "phase", "processes", "per process", "offered/s", "ok/s", "conn errors",
          "checkout timeouts", "other/lost", "p50 ms", "p99 ms", "peak server conns"]


def text_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def markdown_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_section(md_path: Path, mark: str, body: str) -> None:
    """Put `body` between the `<!-- mark -->` and `<!-- /mark -->` lines of a Markdown file
    (a benchmark's results section), adding the markers at its end when it has none."""
    start, end = f"<!-- {mark} -->", f"<!-- /{mark} -->"
    text = md_path.read_text() if md_path.exists() else f"{start}\n{end}\n"
    if start not in text:
        text += f"\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    md_path.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def measured_against(elapsed: float, max_connections: int, usable: int) -> str:
    """The first sentences of a fleet benchmark's results: when, on how many CPUs and for
    how long it ran, and the server's limit (3 superuser slots, the rest the app role's)
    beside the connections poolwise counts usable."""
    return (f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPUs, {elapsed:.0f} s in "
            f"total. Server: max_connections={max_connections}, "
            f"superuser_reserved_connections=3 (the app role can hold {max_connections - 3}); "
            f"poolwise counts {usable} usable.")
