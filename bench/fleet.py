"""Fleet benchmark: poolwise's settings against the rules people copy, with real processes.

    .venv/bin/python bench/fleet.py            # about 2.5 minutes on 2 cores
    .venv/bin/python bench/fleet.py --quick    # 8 s per setting, a smoke run

Starts a throwaway PostgreSQL 15 on 127.0.0.1 with max_connections=100 (a small cloud
instance), then, for each setting side by side, a fleet of real spawned processes with
their own async engine: app_instances x workers processes for the first half, then the
autoscaling maximum plus the rolling-deploy surge for the second half. Every process
offers the same open-loop load (Poisson arrivals plus fleet-wide spikes), so
throughput = successful requests/s and a setting that errors also loses throughput.

Writes bench/artifacts/fleet.json, bench/fleet.png and the results section of
bench/fleet.md (between the fleet:results markers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wizard.core.model import Load, Reserves, Scenario
from wizard.core.plan import recommend
from wizard.fleet.pgserver import postgres_server
from wizard.fleet.results import (
    FleetResult,
    markdown_table,
    measured_against,
    table,
    text_table,
    write_section,
)
from wizard.fleet.run import run_fleet
from wizard.fleet.settings import Phase, PoolSettings, Target, Workload

SQLALCHEMY_TIMEOUT = 30.0  # create_async_engine's default pool_timeout, kept by every rule


def scenario_for(args: argparse.Namespace, workload: Workload) -> Scenario:
    """The stand-in as a poolwise user would describe it, with the load actually offered."""
    return Scenario.flags(
        provider="self-hosted", instance_class=None, max_connections=args.max_connections,
        max_connections_source="benchmark server: SHOW max_connections",
        app_instances=args.instances, max_app_instances=args.max_instances,
        deploy_surge_percent=args.surge, workers=args.workers, pg_version=15,
        reserves=Reserves(superuser=3),
        # rps per app instance = workers x the mean open-loop rate per process (spikes included)
        load=Load(rps=round(args.workers * workload.mean_rate, 2), hold_ms=args.hold_ms))


def settings_under_test(s: Scenario) -> tuple[list[PoolSettings], dict]:
    """poolwise's recommendation and each alternative, computed from its own formula."""
    rec = recommend(s)
    plan = rec.services[0].rec  # the flags form: one service
    primary = rec.endpoint("primary")
    usable = primary.usable
    per_instance = usable // (s.services[0].max_app_instances or s.services[0].app_instances)
    split_pool = int(per_instance * 0.7)
    cores = os.cpu_count() or 1  # the database host is this machine
    hikari = cores * 2 + 1
    out = [
        PoolSettings.from_engine(plan.engine("primary"), "poolwise",
                                 f"recommend(): {primary.explanation}"),
        PoolSettings("SQLAlchemy defaults", pool_size=5, max_overflow=10,
                     pool_timeout=SQLALCHEMY_TIMEOUT, formula="pool_size=5, max_overflow=10"),
        PoolSettings("70/30 per instance", pool_size=split_pool,
                     max_overflow=per_instance - split_pool, pool_timeout=SQLALCHEMY_TIMEOUT,
                     formula=f"usable {usable} / {s.services[0].max_app_instances} instances = "
                             f"{per_instance}, 70% pool / 30% overflow, workers not counted"),
        PoolSettings("HikariCP cores x 2 + 1", pool_size=hikari, max_overflow=0,
                     pool_timeout=SQLALCHEMY_TIMEOUT,
                     formula=f"{cores} database cores x 2 + 1 = {hikari} per process, fixed"),
        PoolSettings("oversized 50 + 50", pool_size=50, max_overflow=50,
                     pool_timeout=SQLALCHEMY_TIMEOUT, formula="pool_size=50, max_overflow=50"),
    ]
    return out, {"usable": usable, "max_connections": primary.max_connections,
                 "reserved": primary.reserved, "processes_at_peak": primary.processes,
                 "per_process_budget": primary.per_process_budget,
                 "load": asdict(plan.load) if plan.load else None,
                 "warnings": [w.code for w in rec.warnings], "binding": plan.binding}


def verdict(results: list[FleetResult]) -> tuple[bool, list[str]]:
    """The issue's bar: poolwise has zero errors in every phase and throughput within 10%
    of the best alternative that also had zero errors in that phase."""
    pw = next(r for r in results if r.setting == "poolwise")
    ok = True
    notes = []
    for i, f in enumerate(pw.phases):
        clean = [r.phases[i].throughput for r in results
                 if r.setting != "poolwise" and r.phases[i].errors == 0]
        best = max(clean, default=0.0)
        ratio = f.throughput / best if best else float("nan")
        good = f.errors == 0 and (not clean or f.throughput >= 0.9 * best)
        ok &= good
        notes.append(f"{f.phase}: poolwise {f.errors} failed requests, {f.throughput:.1f} ok/s; "
                     f"best error-free alternative {best:.1f} ok/s (ratio {ratio:.3f}) -> "
                     f"{'meets' if good else 'MISSES'} the bar")
    return ok, notes


def chart(results: list[FleetResult], usable: int, app_limit: int, half: float, path: Path):
    """Server connections over time per setting, and the phase figures as bars."""
    import altair as alt
    import pandas as pd

    series = pd.DataFrame([{"setting": r.setting, "t": t, "connections": n}
                           for r in results for t, n in r.samples if t >= 0])
    bars = pd.DataFrame([{"setting": r.setting, "phase": f.phase,
                          "failed requests": f.errors, "ok requests/s": f.throughput,
                          "p99 latency (ms)": f.p99_ms or 0.0}
                         for r in results for f in r.phases])
    order = [r.setting for r in results]
    palette = ["#1f4e9c", "#f28e2b", "#e15759", "#59a14f", "#8e5ea2", "#7f7f7f"]
    color = alt.Color("setting:N", sort=order, legend=alt.Legend(orient="top", title=None),
                      scale=alt.Scale(domain=order, range=palette[:len(order)]))
    base = alt.Chart(series).encode(
        x=alt.X("t:Q", title="seconds (fleet scales out at the dashed line)"),
        y=alt.Y("connections:Q", title="server connections (pg_stat_activity)"),
        color=color)
    # poolwise drawn last and thicker, so lines at the same height do not hide it
    lines = (base.transform_filter(alt.datum.setting != "poolwise")
             .mark_line(interpolate="step-after", strokeWidth=1.5)
             + base.transform_filter(alt.datum.setting == "poolwise")
             .mark_line(interpolate="step-after", strokeWidth=3))
    limits = pd.DataFrame([{"y": app_limit, "label": f"app role limit {app_limit}"},
                           {"y": usable, "label": f"poolwise usable {usable}"}])
    rules = alt.Chart(limits).mark_rule(strokeDash=[2, 2], color="#b00").encode(y="y:Q")
    rule_text = alt.Chart(limits).mark_text(align="left", dx=4, dy=-5, color="#b00",
                                            fontSize=10).encode(y="y:Q", x=alt.value(4),
                                                                text="label:N")
    scale = alt.Chart(pd.DataFrame([{"x": half}])).mark_rule(strokeDash=[6, 3],
                                                             color="#555").encode(x="x:Q")
    top = (lines + rules + rule_text + scale).properties(width=640, height=220,
                                                         title="Server connections per setting")
    panels = []
    for metric in ("failed requests", "ok requests/s", "p99 latency (ms)"):
        panels.append(alt.Chart(bars).mark_bar().encode(
            x=alt.X("setting:N", sort=order, title=None, axis=alt.Axis(labelAngle=-35)),
            xOffset=alt.XOffset("phase:N", sort=["base", "peak"]),
            y=alt.Y(f"{metric}:Q", title=metric),
            color=color,
            opacity=alt.Opacity("phase:N", sort=["base", "peak"],
                                scale=alt.Scale(range=[0.45, 1.0]),
                                legend=alt.Legend(orient="top", title="phase")),
        ).properties(width=190, height=170))
    full = alt.vconcat(top, alt.hconcat(*panels)).resolve_scale(color="shared")
    import vl_convert as vlc

    png = vlc.vegalite_to_png(full.to_json(), scale=1)
    try:  # a palette PNG is a quarter of the size, small enough to commit
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128).save(buf, "PNG",
                                                                            optimize=True)
        png = buf.getvalue()
    except ImportError:  # Pillow comes with Streamlit; without it keep the full PNG
        pass
    path.write_bytes(png)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="per setting (half at peak)")
    p.add_argument("--quick", action="store_true", help="8 s per setting, no docs written")
    p.add_argument("--max-connections", type=int, default=100)
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--max-instances", type=int, default=4)
    p.add_argument("--surge", type=int, default=25, help="rolling-deploy surge, percent")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--hold-ms", type=float, default=40.0)
    p.add_argument("--rate", type=float, default=30.0, help="Poisson req/s per process")
    p.add_argument("--spike-size", type=int, default=20, help="requests per process per spike")
    p.add_argument("--spike-every", type=float, default=3.0, help="seconds between spikes")
    p.add_argument("--only", help="comma-separated setting names to run")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = 8.0
    workload = Workload(hold_s=args.hold_ms / 1000, rate=args.rate,
                        spike_every=args.spike_every, spike_size=args.spike_size)
    s = scenario_for(args, workload)
    settings, facts = settings_under_test(s)
    if args.only:
        keep = {n.strip() for n in args.only.split(",")}
        settings = [x for x in settings if x.name in keep]
    base_procs = s.services[0].app_instances * s.services[0].workers
    peak_procs = s.services[0].peak_instances * s.services[0].workers
    half = args.seconds / 2
    phases = [Phase("base", base_procs, half), Phase("peak", peak_procs, half)]
    print(f"scenario: {json.dumps(asdict(s), default=str)}")
    for x in settings:
        print(f"  {x.name}: pool_size={x.pool_size} max_overflow={x.max_overflow} "
              f"pool_timeout={x.pool_timeout:g} pre_ping={x.pool_pre_ping} ({x.formula})")
    results: list[FleetResult] = []
    loads: dict[str, float] = {}  # other work on the machine skews latency, not errors
    started = time.time()
    with postgres_server(settings={"max_connections": args.max_connections,
                                   "superuser_reserved_connections": 3}) as pg:
        # Warm-up, not recorded: the first setting must not pay for a cold server and cache.
        run_fleet(Target(url=pg.url(), settings=PoolSettings("warm-up", pool_size=5,
                                                               max_overflow=0),
                         monitor_url=pg.url(user=pg.admin_user), count_user=pg.user),
                  workload, [Phase("warm-up", base_procs, 3.0)])
        for x in settings:
            target = Target(url=pg.url(), settings=x, monitor_url=pg.url(user=pg.admin_user),
                            count_user=pg.user)
            r = run_fleet(target, workload, phases, progress=lambda m: print("running " + m,
                                                                             flush=True))
            results.append(r)
            loads[x.name] = os.getloadavg()[0]
            print(text_table(table([r])), flush=True)
            for k, v in r.messages.items():
                print(f"    first {k}: {v}")
            time.sleep(1.0)  # let the server reap the last backends
    elapsed = time.time() - started
    ok, notes = verdict(results) if any(r.setting == "poolwise" for r in results) else (
        False, ["poolwise not run"])
    rows = table(results)
    print()
    print(text_table(rows))
    print("\n".join(notes))
    print(f"verdict: poolwise {'MEETS' if ok else 'MISSES'} the bar; {elapsed:.0f} s in total")
    art = ROOT / "bench" / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    (art / "fleet.json").write_text(json.dumps({
        "scenario": asdict(s), "facts": facts, "workload": asdict(workload),
        "phases": [asdict(ph) for ph in phases],
        "settings": [asdict(x) for x in settings], "results": [r.to_dict() for r in results],
        "verdict": ok, "notes": notes, "load_average_after_each": loads,
        "elapsed_s": elapsed, "cpus": os.cpu_count()},
        indent=1, default=str))
    app_limit = args.max_connections - 3
    png = (art / "fleet-quick.png") if args.quick or args.only else ROOT / "bench" / "fleet.png"
    chart(results, facts["usable"], app_limit, half, png)
    print(f"wrote {art / 'fleet.json'} and {png}")
    if not (args.quick or args.only):
        lines = [
            measured_against(elapsed, args.max_connections, facts["usable"]) + " Fleet: "
            f"{base_procs} processes (base), then {peak_procs} (peak: "
            f"{s.services[0].max_app_instances} instances + "
            f"{s.services[0].deploy_surge_percent}% surge, x "
            f"{s.services[0].workers} workers) from {half:g} s. Load per process: "
            f"{args.rate:g} req/s "
            f"Poisson + {args.spike_size} requests every {args.spike_every:g} s "
            f"(mean {workload.mean_rate:.1f} req/s), each holding a connection for "
            f"pg_sleep({args.hold_ms / 1000:g}).",
            "",
            "| setting | pool_size | max_overflow | pool_timeout | formula |",
            "|---|---|---|---|---|",
            *[f"| {x.name} | {x.pool_size} | {x.max_overflow} | {x.pool_timeout:g} | "
              f"{x.formula} |" for x in settings],
            "",
            markdown_table(rows),
            "",
            *[f"- {n}" for n in notes],
            "- 1-minute load average after each setting's run (2 CPUs; other work on the "
            "machine inflates latency, not errors): "
            + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()),
            f"- **Verdict: poolwise {'meets' if ok else 'misses'} the bar.**",
            "",
            "![server connections and figures per setting](fleet.png)",
        ]
        write_section(ROOT / "bench" / "fleet.md", "fleet:results", "\n".join(lines))
        print("updated bench/fleet.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
