"""Two services, one database: poolwise's shared plan against each service sized alone.

    .venv/bin/python bench/services.py            # about 3.5 minutes on 2 cores
    .venv/bin/python bench/services.py --quick    # 6 s per setting, a smoke run

Reads the estate from bench/services.toml (an API fleet and a worker fleet, the same file
`python -m wizard recommend --scenario` takes), starts a throwaway PostgreSQL 15 with that
file's max_connections, then, for each setting side by side, both fleets at once as real
spawned processes with their own async engines: each service's normal instances x workers
for the first part, then every service at its autoscaling maximum plus its deploy surge.
Every process offers its service's open-loop load (Poisson arrivals plus spikes; the mean
is the file's rps / workers, each request holding a connection for the file's hold_ms), so
throughput = successful requests/s and a setting that errors loses throughput.

Settings: poolwise's per-service settings (`recommend(s).service(name).rec.engines`)
against each service sized as if it had the database to itself: poolwise's one-service
sizing (`recommend(s.alone(svc))`), SQLAlchemy's defaults (5 + 10) and 70/30 of the
usable budget per instance. Writes bench/artifacts/services.json and the results section
of bench/services.md (between the services:results markers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wizard.core.model import Scenario, Service
from wizard.core.plan import recommend
from wizard.fleet.monitor import Monitor
from wizard.fleet.results import markdown_table, measured_against, text_table, write_section
from wizard.fleet.run import run_groups
from wizard.fleet.settings import Group, PoolSettings, Target, Workload
from wizard.scenario import files

SCENARIO = ROOT / "bench" / "services.toml"
SQLALCHEMY_TIMEOUT = 30.0  # create_async_engine's default pool_timeout, kept by every rule
# Spikes per service (requests per process, every S seconds, all processes at once): an API
# traffic jump, a batch of tasks enqueued. The Poisson rate is the rest of the file's load.
SPIKES = {"api": (10, 2.0), "worker": (10, 5.0)}
SETTINGS = ("poolwise", "poolwise, each alone", "SQLAlchemy defaults", "70/30 per instance")


# --------------------------------------------------------------------------- inputs


def workload_for(svc: Service, seed: int) -> Workload:
    """The open-loop load one process of `svc` offers: the file's rps per instance / workers,
    `SPIKES` of it in spikes, the rest Poisson; each request holds the file's hold_ms."""
    if svc.load is None:
        raise SystemExit(f"{SCENARIO.name}: service {svc.name!r} needs rps and hold_ms")
    size, every = SPIKES.get(svc.name, (0, 0.0))
    mean = svc.load.rps / svc.workers
    rate = mean - (size / every if every else 0.0)
    if rate <= 0:
        raise SystemExit(f"{svc.name}: spikes of {size} every {every:g} s exceed the "
                         f"file's {mean:g} requests/s per process")
    return Workload(hold_s=svc.load.hold_ms / 1000, rate=rate, spike_every=every,
                    spike_size=size, seed=seed)


def _named(settings: PoolSettings, service: str) -> PoolSettings:
    """The same pool, its connections labelled with the service's name (for counting)."""
    server = {**settings.connect_args.get("server_settings", {}), "application_name": service}
    return replace(settings, connect_args={**settings.connect_args, "server_settings": server})


def settings_under_test(s: Scenario) -> dict[str, dict[str, PoolSettings]]:
    """setting -> service -> pool settings, each computed from its own formula."""
    rec = recommend(s)
    out: dict[str, dict[str, PoolSettings]] = {name: {} for name in SETTINGS}
    for svc in s.services:
        shared = rec.service(svc.name).rec
        share = next(b for b in rec.endpoint("primary").by_service if b.service == svc.name)
        out["poolwise"][svc.name] = PoolSettings.from_engine(
            shared.engine("primary"), "poolwise",
            f"recommend(estate).service({svc.name!r}): {share.allotment_how} -> allotment "
            f"{share.allotment}; worst case {share.worst_case}")
        alone = recommend(s.alone(svc))
        ep = alone.endpoint("primary")
        out["poolwise, each alone"][svc.name] = _named(PoolSettings.from_engine(
            alone.services[0].rec.engine("primary"), "poolwise, each alone",
            f"recommend(s.alone({svc.name!r})): {ep.explanation}"), svc.name)
        out["SQLAlchemy defaults"][svc.name] = _named(PoolSettings(
            "SQLAlchemy defaults", pool_size=5, max_overflow=10,
            pool_timeout=SQLALCHEMY_TIMEOUT, formula="pool_size=5, max_overflow=10"), svc.name)
        per_instance = ep.usable // svc.max_app_instances
        pool = int(per_instance * 0.7)
        out["70/30 per instance"][svc.name] = _named(PoolSettings(
            "70/30 per instance", pool_size=pool, max_overflow=per_instance - pool,
            pool_timeout=SQLALCHEMY_TIMEOUT,
            formula=f"usable {ep.usable} / {svc.max_app_instances} instances = {per_instance}, "
                    "70% pool / 30% overflow, workers not counted"), svc.name)
    return out


def run_estate(url: str, monitor: Monitor, fleets: list[Group],
               phases: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Every service's fleet at once, phase by phase, on one clock (wizard.fleet.run_groups);
    figures per service and phase."""
    figures = []
    for f, result in zip(fleets, run_groups(fleets, phases, monitor), strict=True):
        for p in result.phases:
            figures.append({
                "setting": result.setting, "service": f.app, "phase": p.phase,
                "processes": p.processes, "per_process": result.per_process,
                "offered": p.offered, "ok": p.ok, "connection_errors": p.connection_errors,
                "checkout_timeouts": p.checkout_timeouts,
                "other_errors": p.other_errors + p.unfinished, "errors": p.errors,
                "offered_rate": p.offered_rate, "throughput": p.throughput,
                "p50_ms": p.p50_ms, "p99_ms": p.p99_ms,
                # What pg_sleep(hold) really held a connection for on this machine (checkout
                # to return): CPU contention stretches it, and with it the pool each needs.
                "held_ms": p.held_ms, "peak_connections": p.peak_server_connections,
                "peak_all_services": p.peak_all_groups, "messages": result.messages})
    return figures


def fleet(url: str, service: str, settings: PoolSettings, workload: Workload,
          processes: tuple[int, ...]) -> Group:
    """One service's part of a run: its settings, its load and its processes per phase."""
    return Group(Target(url=url, settings=settings), workload, processes, app=service)


# --------------------------------------------------------------------------- output


HEADER = ["setting", "service", "phase", "processes", "per process", "offered/s", "ok/s",
          "conn errors", "checkout timeouts", "other/lost", "p50 ms", "p99 ms", "held ms",
          "peak conns", "peak, both services"]


def rows_of(figures: list[dict[str, Any]]) -> list[list[str]]:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    return [[f["setting"], f["service"], f["phase"], str(f["processes"]),
             str(f["per_process"]), f"{f['offered_rate']:,.1f}", f"{f['throughput']:,.1f}",
             str(f["connection_errors"]), str(f["checkout_timeouts"]), str(f["other_errors"]),
             ms(f["p50_ms"]), ms(f["p99_ms"]), ms(f["held_ms"]), str(f["peak_connections"]),
             str(f["peak_all_services"])] for f in figures]


def ratios(figures: list[dict[str, Any]], services: list[str]) -> list[list[str]]:
    """At the peak, per setting and service: errors, throughput and p99 against poolwise's."""
    peak = {(f["setting"], f["service"]): f for f in figures if f["phase"] == "peak"}
    out = []
    for setting in dict.fromkeys(f["setting"] for f in figures):
        for name in services:
            f, pw = peak.get((setting, name)), peak.get(("poolwise", name))
            if f is None:
                continue
            tput = f["throughput"] / pw["throughput"] if pw and pw["throughput"] else math.nan
            p99 = (f["p99_ms"] / pw["p99_ms"] if pw and pw["p99_ms"] and f["p99_ms"]
                   else math.nan)
            out.append([setting, name, f"{f['errors']:,}", f"{tput:.2f}", f"{p99:.2f}"])
    return out


RATIO_HEADER = ["setting", "service", "failed at the peak", "ok/s vs poolwise",
                "p99 vs poolwise"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default=str(SCENARIO), help="the estate file")
    p.add_argument("--seconds", type=float, default=30.0,
                   help="per setting: a third at the normal size, the rest at the peak")
    p.add_argument("--quick", action="store_true", help="6 s per setting, no docs written")
    p.add_argument("--only", help="comma-separated setting names to run")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = 6.0
    s = files.load(args.scenario)
    if len(s.services) < 2 or s.max_connections is None:
        raise SystemExit(f"{args.scenario}: needs a measured max_connections and 2+ services")
    names = [svc.name for svc in s.services]
    matrix = settings_under_test(s)
    if args.only:
        keep = {n.strip() for n in args.only.split(",")}
        matrix = {k: v for k, v in matrix.items() if k in keep}
    base_s = round(args.seconds / 3, 1)
    phases = [("base", base_s), ("peak", args.seconds - base_s)]
    loads = {svc.name: workload_for(svc, seed=i + 1) for i, svc in enumerate(s.services)}
    counts = {svc.name: (svc.app_instances * svc.workers,
                         svc.peak_instances * svc.workers) for svc in s.services}
    print(f"estate: {args.scenario}; max_connections {s.max_connections}")
    for setting, per in matrix.items():
        for name, x in per.items():
            print(f"  {setting} / {name}: pool_size={x.pool_size} max_overflow={x.max_overflow} "
                  f"pool_timeout={x.pool_timeout:g} ({x.formula})")
    figures: list[dict[str, Any]] = []
    load_avg: dict[str, tuple[float, float]] = {}  # 1-minute load before and after
    started = time.time()
    from wizard.fleet.pgserver import postgres_server

    with postgres_server(settings={"max_connections": s.max_connections,
                                   "superuser_reserved_connections": 3}) as pg, \
            Monitor(pg.dsn(user=pg.admin_user), pg.user) as monitor:
        # Warm-up, not recorded: the first setting must not pay for a cold server.
        warm = [fleet(pg.url(), n, PoolSettings("warm-up", pool_size=2, max_overflow=0),
                      loads[n], (1,)) for n in names]
        run_estate(pg.url(), monitor, warm, [("warm-up", 3.0)])
        for setting, per in matrix.items():
            monitor.settled()
            before = os.getloadavg()[0]
            fleets = [fleet(pg.url(), n, per[n], loads[n], counts[n]) for n in names]
            print(f"running {setting}: {sum(counts[n][1] for n in names)} processes at the "
                  f"peak, {args.seconds:g} s", flush=True)
            got = run_estate(pg.url(), monitor, fleets, phases)
            figures += got
            load_avg[setting] = (before, os.getloadavg()[0])
            print(text_table(rows_of(got), HEADER), flush=True)
            for f in got:
                for k, v in f["messages"].items():
                    print(f"    {f['service']} first {k}: {v}")
    elapsed = time.time() - started
    pw_peak = [f for f in figures if f["setting"] == "poolwise" and f["phase"] == "peak"]
    ok = bool(pw_peak) and all(f["errors"] == 0 for f in figures if f["setting"] == "poolwise")
    usable = recommend(s).endpoint("primary").usable
    print()
    print(text_table(rows_of(figures), HEADER))
    print()
    print(text_table(ratios(figures, names), RATIO_HEADER))
    verdict = ("poolwise had zero failed requests in every phase" if ok else
               "poolwise HAD failed requests")
    print(f"verdict: {verdict}; {elapsed:.0f} s in total")
    art = ROOT / "bench" / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    (art / "services.json").write_text(json.dumps({
        "scenario": asdict(s), "usable": usable, "phases": phases,
        "workloads": {n: asdict(w) for n, w in loads.items()},
        "settings": {k: {n: asdict(x) for n, x in v.items()} for k, v in matrix.items()},
        "figures": figures, "samples": monitor.by_app, "verdict": ok,
        "load_average_after_each": load_avg, "elapsed_s": elapsed, "cpus": os.cpu_count()},
        indent=1, default=str))
    print(f"wrote {art / 'services.json'}")
    if not (args.quick or args.only):
        lines = [
            measured_against(elapsed, s.max_connections, usable) + " Fleets: "
            + "; ".join(f"{n} {counts[n][0]} processes, then {counts[n][1]} at the peak, "
                        f"{loads[n].mean_rate:g} requests/s per process ({loads[n].rate:g} "
                        f"Poisson + {loads[n].spike_size} every {loads[n].spike_every:g} s) "
                        f"holding pg_sleep({loads[n].hold_s:g})" for n in names)
            + f"; both scale out at {base_s:g} s.",
            "",
            "| setting | service | pool_size | max_overflow | pool_timeout | formula |",
            "|---|---|---|---|---|---|",
            *[f"| {k} | {n} | {x.pool_size} | {x.max_overflow} | {x.pool_timeout:g} | "
              f"{x.formula} |" for k, v in matrix.items() for n, x in v.items()],
            "",
            markdown_table(rows_of(figures), HEADER),
            "",
            "At the peak, side by side (ratios against poolwise's figure for the same service):",
            "",
            markdown_table(ratios(figures, names), RATIO_HEADER),
            "",
            "- 1-minute load average before -> after each setting's run (2 CPUs, shared "
            "with other work): "
            + ", ".join(f"{k} {a:.1f} -> {b:.1f}" for k, (a, b) in load_avg.items()),
            f"- **Verdict: {verdict}.**",
        ]
        write_section(ROOT / "bench" / "services.md", "services:results", "\n".join(lines))
        print("updated bench/services.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
