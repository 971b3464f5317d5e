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
sizing (`recommend(s.for_service(svc))`), SQLAlchemy's defaults (5 + 10) and 70/30 of the
usable budget per instance. Writes bench/artifacts/services.json and the results section
of bench/services.md (between the services:results markers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wizard import estate  # noqa: E402
from wizard.core.model import Scenario, Service  # noqa: E402
from wizard.core.plan import recommend  # noqa: E402
from wizard.fleet import (  # noqa: E402
    CHECKOUT_TIMEOUT,
    CONN_ERROR,
    OK,
    OTHER_ERROR,
    OUTCOMES,
    UNFINISHED,
    PoolSettings,
    Workload,
    classify,
    markdown_table,
    percentile,
    schedule,
    scrub,
    secrets_of,
    text_table,
)

MARK_START, MARK_END = "<!-- services:results -->", "<!-- /services:results -->"
SCENARIO = ROOT / "bench" / "services.toml"
SQLALCHEMY_TIMEOUT = 30.0  # create_async_engine's default pool_timeout, kept by every rule
DRAIN_SECONDS = 5.0  # in-flight requests get this long after the run before they count as lost
MONITOR_INTERVAL = 0.1
MONITOR_APP = "bench-monitor"
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
        alone = recommend(s.for_service(svc))
        ep = alone.endpoint("primary")
        out["poolwise, each alone"][svc.name] = _named(PoolSettings.from_engine(
            alone.services[0].rec.engine("primary"), "poolwise, each alone",
            f"recommend(s.for_service({svc.name!r})): {ep.explanation}"), svc.name)
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


@dataclass(frozen=True)
class Fleet:
    """One service's part of a run: its settings, its load and its process count per phase."""

    service: str
    settings: PoolSettings
    workload: Workload
    processes: tuple[int, ...]


# --------------------------------------------------------------------------- one process


async def _drive(url: str, settings: PoolSettings, workload: Workload, index: int, t0: float,
                 start: float, end: float) -> dict[str, Any]:
    """Offer the open-loop load from `start` to `end` (seconds after t0); every outcome."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, **settings.engine_kwargs())
    sql = text("SELECT pg_sleep(:s)")
    secrets = secrets_of(url)
    planned = schedule(workload, start, end, index)
    done: dict[int, tuple[float, int, float]] = {}  # latency, outcome, connection held
    messages: dict[str, str] = {}
    now = lambda: time.time() - t0  # noqa: E731

    async def one(k: int, at: float) -> None:
        got = math.nan
        try:
            # wizard.fleet.request's steps, timing how long the connection is held.
            async with engine.connect() as conn:
                got = now()
                await conn.execution_options(postgresql_readonly=True)
                async with conn.begin():
                    await conn.execute(sql, {"s": workload.hold_s})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
            code = classify(exc)
            messages.setdefault(OUTCOMES[code], scrub(f"{type(exc).__name__}: {exc}",
                                                      secrets)[:300])
            done[k] = (now() - at, code, math.nan)
        else:
            done[k] = (now() - at, OK, now() - got)

    tasks: set[asyncio.Task] = set()
    try:
        for k, at in enumerate(planned):
            if (delay := at - now()) > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(k, at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(max(0.0, end - now()))
        if tasks:
            await asyncio.wait(set(tasks), timeout=DRAIN_SECONDS)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(engine.dispose(), 10)
    rows = [(at, *done.get(k, (math.nan, UNFINISHED, math.nan)))
            for k, at in enumerate(planned)]
    return {"index": index, "rows": rows, "messages": messages}


def _process(url: str, settings: PoolSettings, workload: Workload, index: int, start: float,
             end: float, ready: Any, go: Any, t0: Any, results: Any) -> None:
    """Process entry point: imports done before the common clock starts, then the load."""
    try:
        import sqlalchemy.ext.asyncio  # noqa: F401 - paid before the clock starts

        ready.put(index)
        go.wait()
        out = asyncio.run(_drive(url, settings, workload, index, t0.value, start, end))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about it
        ready.put(index)
        out = {"index": index, "fatal": scrub(f"{type(exc).__name__}: {exc}",
                                              secrets_of(url))[:500]}
    results.put(out)


# --------------------------------------------------------------------------- the monitor


class Monitor:
    """Samples the app role's server connections per application_name (a superuser
    connection, every MONITOR_INTERVAL seconds)."""

    def __init__(self, dsn: str, user: str):
        self.dsn, self.user = dsn, user
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.t0 = 0.0
        self.error = ""
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="monitor")

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": MONITOR_APP})
        try:
            self._ready.set()
            while not self._stop.is_set():
                t = time.time()
                rows = await conn.fetch(
                    "SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity "
                    "WHERE usename = $1 GROUP BY 1", self.user)
                if self.t0:
                    self.samples.append((t - self.t0, {r["app"]: r["n"] for r in rows}))
                await asyncio.sleep(max(0.0, MONITOR_INTERVAL - (time.time() - t)))
        finally:
            await conn.close()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            self._ready.set()

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(30)
        if self.error:
            raise RuntimeError(f"monitor could not connect: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def peak(self, start: float, end: float, app: str | None = None) -> int:
        """Most connections of `app` (None: all of the role's) sampled in [start, end)."""
        return max((n.get(app, 0) if app else sum(n.values())
                    for t, n in self.samples if start <= t < end), default=0)

    def idle(self, timeout: float = 20.0) -> bool:
        """Wait until the role holds no connections (the last run's backends are gone)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.samples and not sum(self.samples[-1][1].values()):
                return True
            time.sleep(MONITOR_INTERVAL)
        return False


# --------------------------------------------------------------------------- a run


def run_estate(url: str, monitor: Monitor, fleets: list[Fleet], phases: list[tuple[str, float]],
               ) -> list[dict[str, Any]]:
    """Every fleet at once, phase by phase, in one clock; figures per service and phase."""
    ctx = mp.get_context("spawn")
    ready, results, go, t0 = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    total = sum(sec for _, sec in phases)
    starts = [sum(sec for _, sec in phases[:i]) for i in range(len(phases))]
    procs, owner = [], {}
    for f in fleets:
        have = 0
        for count, begin in zip(f.processes, starts, strict=True):
            for _ in range(count - have):
                index = len(procs)
                owner[index] = f.service
                proc = ctx.Process(target=_process, daemon=True, name=f"{f.service}-{index}",
                                   args=(url, f.settings, f.workload, index, begin, total,
                                         ready, go, t0, results))
                proc.start()
                procs.append(proc)
            have = max(have, count)
    outs: list[dict[str, Any]] = []
    try:
        for _ in procs:
            ready.get(timeout=120)
        monitor.samples.clear()
        t0.value = monitor.t0 = time.time() + 0.3
        go.set()
        deadline = time.time() + total + DRAIN_SECONDS + 60
        while len(outs) < len(procs):
            try:
                outs.append(results.get(timeout=max(1.0, deadline - time.time())))
            except queue.Empty:
                break
        for proc in procs:
            proc.join(10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    fatal = [o["fatal"] for o in outs if "fatal" in o]
    if fatal or len(outs) < len(procs):
        raise RuntimeError("a process failed: " + (fatal[0] if fatal else "no report"))
    figures = []
    for f in fleets:
        mine = [o for o in outs if owner[o["index"]] == f.service]
        messages: dict[str, str] = {}
        for o in mine:
            for k, v in o["messages"].items():
                messages.setdefault(k, v)
        for n, ((phase, sec), begin) in enumerate(zip(phases, starts, strict=True)):
            end = begin + sec
            rows = [r for o in mine for r in o["rows"] if begin <= r[0] < end]
            counts = [sum(1 for r in rows if r[2] == c) for c in range(len(OUTCOMES))]
            lat = [r[1] for r in rows if r[2] == OK]
            held = [r[3] for r in rows if r[2] == OK]
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            peak_end = end if n < len(phases) - 1 else math.inf  # the last phase owns the drain
            figures.append({
                "setting": f.settings.name, "service": f.service, "phase": phase,
                "processes": f.processes[n], "per_process": f.settings.per_process,
                "offered": len(rows), "ok": counts[OK],
                "connection_errors": counts[CONN_ERROR],
                "checkout_timeouts": counts[CHECKOUT_TIMEOUT],
                "other_errors": counts[OTHER_ERROR] + counts[UNFINISHED],
                "errors": len(rows) - counts[OK], "offered_rate": len(rows) / sec,
                "throughput": counts[OK] / sec,
                "p50_ms": None if p50 is None else p50 * 1000,
                "p99_ms": None if p99 is None else p99 * 1000,
                # What pg_sleep(hold) really held a connection for on this machine (checkout
                # to return): CPU contention stretches it, and with it the pool each needs.
                "held_ms": sum(held) / len(held) * 1000 if held else None,
                "peak_connections": monitor.peak(begin, peak_end, f.service),
                "peak_all_services": monitor.peak(begin, peak_end),
                "messages": messages})
    return figures


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


def write_docs(md_path: Path, body: str) -> None:
    text = md_path.read_text() if md_path.exists() else f"{MARK_START}\n{MARK_END}\n"
    if MARK_START not in text:
        text += f"\n{MARK_START}\n{MARK_END}\n"
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    md_path.write_text(f"{head}{MARK_START}\n{body}\n{MARK_END}{tail}")


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
    s = estate.load(args.scenario)
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
                         s.for_service(svc).peak_instances * svc.workers) for svc in s.services}
    print(f"estate: {args.scenario}; max_connections {s.max_connections}")
    for setting, per in matrix.items():
        for name, x in per.items():
            print(f"  {setting} / {name}: pool_size={x.pool_size} max_overflow={x.max_overflow} "
                  f"pool_timeout={x.pool_timeout:g} ({x.formula})")
    figures: list[dict[str, Any]] = []
    load_avg: dict[str, tuple[float, float]] = {}  # 1-minute load before and after
    started = time.time()
    from tests.pgserver import postgres_server

    with postgres_server(settings={"max_connections": s.max_connections,
                                   "superuser_reserved_connections": 3}) as pg, \
            Monitor(pg.dsn(user=pg.admin_user), pg.user) as monitor:
        # Warm-up, not recorded: the first setting must not pay for a cold server.
        warm = [Fleet(n, PoolSettings("warm-up", pool_size=2, max_overflow=0), loads[n],
                      (1,)) for n in names]
        run_estate(pg.url(), monitor, warm, [("warm-up", 3.0)])
        for setting, per in matrix.items():
            monitor.idle()
            before = os.getloadavg()[0]
            fleets = [Fleet(n, per[n], loads[n], counts[n]) for n in names]
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
    app_limit = s.max_connections - 3
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
        "figures": figures, "samples": monitor.samples, "verdict": ok,
        "load_average_after_each": load_avg, "elapsed_s": elapsed, "cpus": os.cpu_count()},
        indent=1, default=str))
    print(f"wrote {art / 'services.json'}")
    if not (args.quick or args.only):
        lines = [
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPUs, {elapsed:.0f} s in "
            f"total. Server: max_connections={s.max_connections}, "
            f"superuser_reserved_connections=3 (the app role can hold {app_limit}); poolwise "
            f"counts {usable} usable. Fleets: "
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
        write_docs(ROOT / "bench" / "services.md", "\n".join(lines))
        print("updated bench/services.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
