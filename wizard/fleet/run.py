"""A fleet run: spawn the processes of one or several groups on one clock, collect their
rows, and turn them into figures per group and phase."""

from __future__ import annotations

import math
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

from wizard.core.model import ScenarioError
from wizard.fleet.monitor import MONITOR_INTERVAL, Monitor
from wizard.fleet.process import worker
from wizard.fleet.results import FleetResult, phase_figures
from wizard.fleet.settings import (
    DRAIN_SECONDS,
    MAX_PROCESSES,
    MAX_SECONDS,
    Group,
    Phase,
    Target,
    Workload,
)


def run_fleet(target: Target, workload: Workload, phases: Sequence[Phase],
              monitor: Monitor | None = None, progress: Callable[[str], None] | None = None,
              ) -> FleetResult:
    """Run the phases with real spawned processes; return the figures per phase."""
    if not phases:
        raise ScenarioError("a fleet run needs at least one phase")
    group = Group(target, workload, tuple(p.processes for p in phases))
    return run_groups([group], [(p.name, p.seconds) for p in phases], monitor, progress)[0]


def _check(groups: Sequence[Group], phases: Sequence[tuple[str, float]]) -> None:
    if not phases or not groups:
        raise ScenarioError("a fleet run needs at least one phase and one group")
    total = sum(sec for _, sec in phases)
    if total > MAX_SECONDS:
        raise ScenarioError(f"a fleet run is bounded to {MAX_SECONDS} s, got {total:g}")
    for g in groups:
        counts = g.processes
        if (len(counts) != len(phases) or counts[0] < 1
                or any(b < a for a, b in zip(counts, counts[1:], strict=False))):
            raise ScenarioError("phases must start with at least one process and never shrink")
    if (most := sum(g.processes[-1] for g in groups)) > MAX_PROCESSES:
        raise ScenarioError(f"at most {MAX_PROCESSES} processes, got {most}")


def run_groups(groups: Sequence[Group], phases: Sequence[tuple[str, float]],
               monitor: Monitor | None = None, progress: Callable[[str], None] | None = None,
               ) -> list[FleetResult]:
    """Every group at once, phase by phase (name, seconds), on one clock; one FleetResult
    per group. Without `monitor`, one is started on the first group's target."""
    _check(groups, phases)
    total = sum(sec for _, sec in phases)
    starts = [sum(sec for _, sec in phases[:i]) for i in range(len(phases))]
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    t0 = ctx.Value("d", 0.0)
    procs: list[mp.process.BaseProcess] = []
    owner: list[int] = []  # process index -> group index
    own_monitor = monitor is None
    if monitor is None:
        first = groups[0].target
        monitor = Monitor(first.monitor_url or first.url, first.count_user,
                          first.settings.connect_args if first.settings else None)
    say = progress or (lambda _msg: None)
    outs: list[dict[str, Any]] = []
    try:
        if own_monitor:
            monitor.start()
        for gi, g in enumerate(groups):
            have = 0
            for count, begin in zip(g.processes, starts, strict=True):
                for _ in range(count - have):
                    i = len(procs)
                    proc = ctx.Process(target=worker, name=f"fleet-{i}", daemon=True,
                                       args=(g.target, g.workload, i, begin, total, ready, go,
                                             t0, results))
                    proc.start()
                    procs.append(proc)
                    owner.append(gi)
                have = count
        for _ in procs:  # every process imported its libraries before the clock starts
            try:
                ready.get(timeout=120)
            except queue.Empty:
                raise RuntimeError("a fleet process did not start within 120 s") from None
        t0.value = time.time() + 0.3
        monitor.mark(t0.value)
        go.set()
        names = ", ".join(_setting(g) for g in groups)
        say(f"{names}: {len(procs)} processes, {total:g} s")
        deadline = time.time() + total + DRAIN_SECONDS + 60
        while len(outs) < len(procs):
            try:
                outs.append(results.get(timeout=max(1.0, deadline - time.time())))
            except queue.Empty:
                break
        for proc in procs:
            proc.join(10)
        time.sleep(2 * MONITOR_INTERVAL)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        if own_monitor:
            monitor.stop()
    fatal = [o["fatal"] for o in outs if "fatal" in o]
    if fatal or len(outs) < len(procs):
        raise RuntimeError("fleet process failed: " + (fatal[0] if fatal else
                                                       f"{len(procs) - len(outs)} never reported"))
    several = len(groups) > 1
    return [_figures(g, phases, [o for o in outs if owner[o["index"]] == gi], monitor, several)
            for gi, g in enumerate(groups)]


def _setting(g: Group) -> str:
    return g.target.settings.name if g.target.settings else "export"


def _figures(group: Group, phases: Sequence[tuple[str, float]], outs: list[dict[str, Any]],
             monitor: Monitor, several: bool) -> FleetResult:
    settings = group.target.settings
    per = settings.per_process if settings else 0
    messages: dict[str, str] = {}
    for o in outs:
        for k, v in o["messages"].items():
            messages.setdefault(k, v)
    rows = [r for o in outs for r in o["rows"]]
    figures = []
    begin = 0.0
    for n, ((name, seconds), processes) in enumerate(zip(phases, group.processes, strict=True)):
        # The last phase also owns the drain after the clock stopped.
        peak_end = begin + seconds if n < len(phases) - 1 else math.inf
        figures.append(phase_figures(
            name, seconds, processes, per, rows, begin,
            peak=monitor.peak(begin, peak_end, group.app),
            peak_all=monitor.peak(begin, peak_end) if several else None))
        begin += seconds
    return FleetResult(setting=_setting(group), phases=tuple(figures), messages=messages,
                       samples=tuple(monitor.samples), per_process=per, app=group.app)
