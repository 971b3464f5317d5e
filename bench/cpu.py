"""Where the database is the bottleneck: poolwise against the rules people copy, two workloads,
direct, through PgBouncer in transaction mode, and on a replica stand-in.

PostgreSQL runs pinned to one core (taskset-style affinity on the postmaster and every
backend it forks); the fleet's processes and PgBouncer run on the other, so the clients do
not starve the server. Two workloads side by side:

- wait: SELECT pg_sleep(0.04), the database waits (bench/fleet.py's load);
- compute: a query that keeps its backend on the CPU (sum over generate_series), sized so
  that the fleet's peak uses most of the database's one core.

Each setting runs the fleet benchmark's two phases (4 processes, then 10 after the
scale-out), repeated; the database's CPU (postmaster + backends, from /proc) is sampled
with the connections. A closed-loop sweep first measures what more active connections
than the core can execute do to throughput and p99 (wizard/core/cores.py's FAR).

Writes bench/artifacts/cpu.json, bench/cpu.png and the results section of bench/cpu.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wizard.core import cores
from wizard.core.model import Load, ProxySettings, Replica, Reserves, Scenario
from wizard.core.plan import recommend
from wizard.fleet.monitor import Monitor
from wizard.fleet.pgserver import pgbouncer_server, postgres_server
from wizard.fleet.results import FleetResult, percentile, write_section
from wizard.fleet.run import run_fleet
from wizard.fleet.settings import Phase, PoolSettings, Target, Workload

SQLALCHEMY_TIMEOUT = 30.0
DB_CPU, CLIENT_CPU = 1, 0  # the server's core and the clients' core
DB_CORES = 1
PRE_PING_FLIPPED = "poolwise, pre-ping flipped"
PREVIOUS_SPLIT = "poolwise, previous split"
ONCE = {"70/30 per instance", "oversized 50 + 50"}
NO_CACHE = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
TICK = os.sysconf("SC_CLK_TCK")
# wizard.fleet.compute_sql's statement in asyncpg's placeholder style (calibration, sweep).
SQL = "SELECT sum(i % 7) FROM generate_series(1, $1::int) AS i"


# --------------------------------------------------------------------------- the server's CPU


def postmaster_pid(pg: Any) -> int:
    return int((Path(pg.data_dir) / "postmaster.pid").read_text().splitlines()[0])


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and (st := _stat(int(d))) and int(st[1]) == pid:
            out.append(int(d))
    return out


# Other sessions share this machine: the server and PgBouncer get a slightly higher
# priority, so a busy neighbour or the fleet's own Python processes do not starve them
# (without it PgBouncer, one process among a dozen busy ones on its core, added seconds).
PRIORITY = -5


def pin(pid: int, cpu: int, with_children: bool = False) -> None:
    """A process (and its children: backends forked later inherit it) on one core."""
    for p in [pid, *(children(pid) if with_children else [])]:
        try:
            os.sched_setaffinity(p, {cpu})
            os.setpriority(os.PRIO_PROCESS, p, PRIORITY)
        except OSError:
            pass


def db_cpu_seconds(pid: int) -> float:
    """CPU seconds the server has used: the postmaster, its reaped backends (cutime,
    cstime) and its live ones."""
    st = _stat(pid)
    if st is None:
        return 0.0
    total = sum(int(x) for x in st[11:15])  # utime, stime, cutime, cstime
    for c in children(pid):
        if cs := _stat(c):
            total += int(cs[11]) + int(cs[12])
    return total / TICK


class CpuMonitor(Monitor):
    """The fleet monitor, also sampling the server's CPU seconds at each sample."""

    def __init__(self, url: str, user: str | None, pid: int):
        super().__init__(url, user)
        self.pid = pid
        self.cpu: list[tuple[float, float]] = []

    async def _count(self, conn: Any) -> int:
        n = await super()._count(conn)
        if self._t0:
            # A backend that exited but is not reaped yet is briefly in neither sum: the
            # counter never goes back, so such a dip is not read as negative CPU.
            seen = max(db_cpu_seconds(self.pid), self.cpu[-1][1] if self.cpu else 0.0)
            self.cpu.append((time.time() - self._t0, seen))
        return n

    def cpu_series(self, window: float = 0.5) -> list[tuple[float, float]]:
        """(t, cores busy) averaged over `window` seconds."""
        out = []
        last = None
        for t, c in self.cpu:
            if last is None:
                last = (t, c)
            elif t - last[0] >= window:
                out.append((round(t, 2), (c - last[1]) / (t - last[0])))
                last = (t, c)
        return out

    def cpu_mean(self, start: float, end: float) -> float | None:
        pts = [(t, c) for t, c in self.cpu if start <= t <= end]
        if len(pts) < 2:
            return None
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Case:
    workload: str  # wait | compute
    path: str  # direct | pgbouncer | replica


def scenario(path: str, workload: Workload, hold_ms: float, max_connections: int) -> Scenario:
    """The stand-in as a poolwise user would describe it, with the load actually offered."""
    s = Scenario.flags(
        provider="self-hosted", instance_class=None, max_connections=max_connections,
        max_connections_source="benchmark server: SHOW max_connections",
        app_instances=2, max_app_instances=4, deploy_surge_percent=25, workers=2,
        pg_version=15, reserves=Reserves(superuser=3),
        load=Load(rps=round(2 * workload.mean_rate, 2), hold_ms=round(hold_ms, 2)))
    if path == "pgbouncer":
        s = replace(s, proxy="pgbouncer-transaction",
                    proxy_settings=ProxySettings(pgbouncer_version="1.18", max_client_conn=400))
    if path == "replica":
        s = replace(s, replicas=(Replica(max_connections=max_connections),))
    return s


def settings_for(s: Scenario, path: str) -> list[PoolSettings]:
    """poolwise's engine for the endpoint under test and each alternative's formula."""
    role = "replica-1" if path == "replica" else "primary"
    rec = recommend(s)
    ep = rec.endpoint(role)
    args = NO_CACHE if path == "pgbouncer" else {}  # asyncpg through PgBouncer 1.18 needs it
    hikari = DB_CORES * 2 + 1
    per_instance = ep.usable // s.services[0].autoscaling_max
    split = int(per_instance * 0.7)
    plan = rec.services[0].rec  # the flags form: one service
    eng = plan.engine(role)
    pw = PoolSettings.from_engine(eng, "poolwise", f"recommend() [{role}]: {ep.explanation}")
    out = [
        pw,
        PoolSettings("SQLAlchemy defaults", pool_size=5, max_overflow=10,
                     pool_timeout=SQLALCHEMY_TIMEOUT, connect_args=dict(args),
                     formula="pool_size=5, max_overflow=10"),
        PoolSettings("HikariCP cores x 2 + 1", pool_size=hikari, max_overflow=0,
                     pool_timeout=SQLALCHEMY_TIMEOUT, connect_args=dict(args),
                     formula=f"{DB_CORES} database core x 2 + 1 = {hikari} per process, fixed"),
    ]
    burst = plan.load.needed_with_overflow if plan.load else None
    if path == "pgbouncer" and burst and eng.max_overflow == 0 and eng.pool_size > burst:
        # Behind a transaction pooler the engine is now a fixed pool (wizard/core/sizing.py
        # _split): the split it replaced (pool = the burst need, the rest overflow), in the
        # same run, so the change is measured rather than assumed.
        out.append(replace(pw, name=PREVIOUS_SPLIT, pool_size=burst,
                           max_overflow=eng.pool_size - burst,
                           formula=f"the same total, pool = burst need {burst} + overflow "
                                   f"{eng.pool_size - burst} (the split before the fixed pool)"))
    if path != "replica":
        # The pre-ping's cost, measured rather than assumed: the same engine, flipped.
        flip = not pw.pool_pre_ping
        out.append(replace(pw, name=PRE_PING_FLIPPED, pool_pre_ping=flip,
                           formula=f"poolwise's engine with pool_pre_ping={flip}"))
        out.append(PoolSettings(
            "70/30 per instance", pool_size=split, max_overflow=per_instance - split,
            pool_timeout=SQLALCHEMY_TIMEOUT, connect_args=dict(args),
            formula=f"usable {ep.usable} / {s.services[0].autoscaling_max} instances = "
                    f"{per_instance}, "
                    "70% pool / 30% overflow, workers not counted"))
    if path == "direct":
        out.append(PoolSettings("oversized 50 + 50", pool_size=50, max_overflow=50,
                                pool_timeout=SQLALCHEMY_TIMEOUT,
                                formula="pool_size=50, max_overflow=50"))
    return out


# --------------------------------------------------------------------------- measurements


async def _calibrate(dsn: str, rows: int, n: int = 40) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        sql = SQL
        for _ in range(5):
            await conn.fetchval(sql, rows)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            await conn.fetchval(sql, rows)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000
    finally:
        await conn.close()


def calibrate(dsn: str, target_ms: float) -> tuple[int, float]:
    """Rows of generate_series for one compute query of about target_ms, and its median."""
    rows = 20_000
    ms = asyncio.run(_calibrate(dsn, rows))
    rows = max(1000, int(rows * target_ms / ms))
    return rows, asyncio.run(_calibrate(dsn, rows))


async def _sweep_one(dsn: str, rows: int, n: int, seconds: float) -> dict[str, float]:
    import asyncpg

    conns = [await asyncpg.connect(dsn) for _ in range(n)]
    lat: list[float] = []
    sql = SQL
    stop = time.perf_counter() + seconds + 0.5
    measure_from = time.perf_counter() + 0.5

    async def loop(c: Any) -> None:
        while (t := time.perf_counter()) < stop:
            await c.fetchval(sql, rows)
            if t >= measure_from:
                lat.append(time.perf_counter() - t)

    try:
        await asyncio.gather(*(loop(c) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return {"connections": n, "throughput": len(lat) / seconds,
            "p50_ms": (percentile(lat, 50) or 0) * 1000,
            "p99_ms": (percentile(lat, 99) or 0) * 1000}


def sweep(dsn: str, rows: int, counts: list[int], seconds: float) -> list[dict[str, float]]:
    """Closed loop, N connections each running the compute query back to back."""
    return [asyncio.run(_sweep_one(dsn, rows, n, seconds)) for n in counts]


async def _settle(admin_dsn: str, user: str, timeout: float) -> int:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        deadline = time.time() + timeout
        while True:
            n = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                                    user)
            if n == 0 or time.time() > deadline:
                return n
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def one_run(url: str, monitor_url: str, user: str, pid: int, settings: PoolSettings,
            workload: Workload, phases: list[Phase]) -> dict[str, Any]:
    # Every run starts with none of the app role's connections left on the server: the
    # previous run's backends would otherwise take slots this run's settings counted on.
    behind_bouncer = url.split("@")[-1] != monitor_url.split("@")[-1]  # another host:port
    # Behind PgBouncer its server connections stay open by design: nothing to wait for.
    left = 0 if behind_bouncer else asyncio.run(_settle(
        monitor_url.replace("postgresql+asyncpg", "postgresql"), user, 20.0))
    if left:
        print(f"  warning: {left} connections of {user} still open before {settings.name}")
    mon = CpuMonitor(monitor_url, user, pid)
    mon.start()
    try:
        r = run_fleet(Target(url=url, settings=settings), workload, phases, monitor=mon)
    finally:
        mon.stop()
    begin, cpu = 0.0, []
    for ph in phases:
        cpu.append(mon.cpu_mean(begin, begin + ph.seconds))
        begin += ph.seconds
    return {"result": r, "cpu_phase": cpu, "cpu_series": mon.cpu_series()}


# --------------------------------------------------------------------------- verdict and docs


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarise(runs: list[dict[str, Any]], phase_names: list[str]) -> list[dict[str, Any]]:
    """Per case, setting and phase: median / min / max over the repeats."""
    keys: dict[tuple, list[dict]] = {}
    for r in runs:
        keys.setdefault((r["workload"], r["path"], r["setting"]), []).append(r)
    rows = []
    for (wl, path, name), rs in keys.items():
        for i, ph in enumerate(phase_names):
            figs = [x["result"].phases[i] for x in rs]
            p99 = [f.p99_ms or 0.0 for f in figs]
            thr = [f.throughput for f in figs]
            cpu = [x["cpu_phase"][i] for x in rs if x["cpu_phase"][i] is not None]
            rows.append({
                "workload": wl, "path": path, "setting": name, "phase": ph,
                "per_process": rs[0]["result"].per_process, "runs": len(rs),
                "errors": sum(f.errors for f in figs),
                "conn_errors": sum(f.connection_errors for f in figs),
                "offered": med([f.offered_rate for f in figs]),
                "throughput": med(thr), "thr_min": min(thr), "thr_max": max(thr),
                "p50": med([f.p50_ms or 0.0 for f in figs]),
                "p99": med(p99), "p99_min": min(p99), "p99_max": max(p99),
                "peak_conns": max(f.peak_server_connections for f in figs),
                "db_cpu": med(cpu) if cpu else None})
    return rows


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets per case and phase: poolwise p99 <= 1.1x and throughput >= 0.95x
    the best error-free alternative, zero errors."""
    out = []
    cases = sorted({(r["workload"], r["path"], r["phase"]) for r in rows},
                   key=lambda k: (k[0], ["direct", "pgbouncer", "replica"].index(k[1]), k[2]))
    for wl, path, ph in cases:
        here = [r for r in rows if (r["workload"], r["path"], r["phase"]) == (wl, path, ph)]
        pw = next((r for r in here if r["setting"] == "poolwise"), None)
        clean = [r for r in here if not r["setting"].startswith("poolwise")
                 and r["errors"] == 0]
        if pw is None:
            continue
        best_p99 = min((r["p99"] for r in clean), default=None)
        best_thr = max((r["throughput"] for r in clean), default=None)
        p99_ratio = pw["p99"] / best_p99 if best_p99 else None
        thr_ratio = pw["throughput"] / best_thr if best_thr else None
        ok = pw["errors"] == 0 and (p99_ratio is None or p99_ratio <= 1.1) and (
            thr_ratio is None or thr_ratio >= 0.95)
        out.append({"workload": wl, "path": path, "phase": ph, "errors": pw["errors"],
                    "p99": pw["p99"], "best_p99": best_p99,
                    "best_p99_by": next((r["setting"] for r in clean
                                         if r["p99"] == best_p99), None),
                    "p99_ratio": p99_ratio, "thr_ratio": thr_ratio, "ok": ok})
    return out


def chart(runs: list[dict[str, Any]], rows: list[dict[str, Any]], half: float,
          path: Path) -> None:
    import altair as alt
    import pandas as pd

    order = ["poolwise", PRE_PING_FLIPPED, PREVIOUS_SPLIT, "SQLAlchemy defaults",
             "HikariCP cores x 2 + 1", "70/30 per instance", "oversized 50 + 50"]
    palette = ["#1f4e9c", "#9ecae9", "#6b6ecf", "#f28e2b", "#59a14f", "#e15759", "#8e5ea2"]
    color = alt.Color("setting:N", sort=order, scale=alt.Scale(domain=order, range=palette),
                      legend=alt.Legend(orient="top", title=None))
    cpu = pd.DataFrame([{"workload": r["workload"], "path": r["path"], "setting": r["setting"],
                         "t": t, "database CPU (cores)": c}
                        for r in runs if r["repeat"] == 0 and r["path"] in ("direct", "pgbouncer")
                        for t, c in r["cpu_series"] if t >= 0])
    cpu["case"] = cpu["workload"] + ", " + cpu["path"]
    # Clipped at 1.05 cores: backends reaped at the end of a run reach the postmaster's
    # counters in a batch, a spike that is bookkeeping, not load.
    lines = alt.Chart(cpu).mark_line(strokeWidth=1.5, clip=True).encode(
        x=alt.X("t:Q", title=f"seconds (scale-out at {half:g} s)"),
        y=alt.Y("database CPU (cores):Q", scale=alt.Scale(domain=[0, 1.05])),
        color=color).properties(width=300, height=150)
    top = lines.facet(facet=alt.Facet("case:N", title="database CPU over the run (first repeat)"),
                      columns=2)
    bars = pd.DataFrame([r for r in rows if r["phase"] == "peak"])
    bars["case"] = bars["workload"] + ", " + bars["path"]
    base = alt.Chart(bars).encode(x=alt.X("setting:N", sort=order, title=None,
                                          axis=alt.Axis(labels=False, ticks=False)))
    p99 = (base.mark_bar().encode(y=alt.Y("p99:Q", title="peak-phase p99 ms (median, min-max)"),
                                  color=color)
           + base.mark_rule(color="black").encode(y="p99_min:Q", y2="p99_max:Q")
           ).properties(width=140, height=150)
    bottom = p99.facet(facet=alt.Facet("case:N", title=None), columns=3)
    full = alt.vconcat(top, bottom).resolve_scale(color="shared")
    import vl_convert as vlc

    png = vlc.vegalite_to_png(full.to_json(), scale=1)
    try:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128).save(
            buf, "PNG", optimize=True)
        png = buf.getvalue()
    except ImportError:
        pass
    path.write_bytes(png)


def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="per run (half at peak)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workloads", default="wait,compute")
    p.add_argument("--paths", default="direct,pgbouncer,replica")
    p.add_argument("--only", help="comma-separated setting names")
    p.add_argument("--compute-ms", type=float, default=4.0,
                   help="target database time of one compute query")
    p.add_argument("--sweep-seconds", type=float, default=2.5)
    p.add_argument("--no-docs", action="store_true")
    p.add_argument("--tag", help="artifact name and cpu.md section (cpu-NAME -> cpu:NAME)")
    p.add_argument("--prewarm", action="store_true",
                   help="every process opens pool_size connections before the clock starts; "
                        "results go to their own section of cpu.md and cpu-prewarm.json")
    args = p.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("needs 2 CPUs: one for the server, one for the clients", file=sys.stderr)
        return 2
    started = time.time()
    wls = [w.strip() for w in args.workloads.split(",")]
    paths = [x.strip() for x in args.paths.split(",")]
    half = args.seconds / 2
    phases = [Phase("base", 4, half), Phase("peak", 10, half)]
    runs: list[dict[str, Any]] = []
    described: dict[str, Any] = {}
    conf = {"max_connections": 100, "superuser_reserved_connections": 3}
    with postgres_server(settings=conf) as pg, postgres_server(settings=conf) as rep:
        pids = {"primary": postmaster_pid(pg), "replica": postmaster_pid(rep)}
        for pid in pids.values():
            pin(pid, DB_CPU, with_children=True)
        rows_n, compute_ms = calibrate(pg.dsn(), args.compute_ms)
        print(f"compute query: {rows_n:,} rows, median {compute_ms:.2f} ms unloaded", flush=True)
        sweep_rows = sweep(pg.dsn(), rows_n, [1, 3, 6, 12, 24, 48],
                           args.sweep_seconds) if args.sweep_seconds > 0 else []
        for sw in sweep_rows:
            print(f"  sweep {sw['connections']:>3} connections: {sw['throughput']:.0f}/s, "
                  f"p99 {sw['p99_ms']:.1f} ms", flush=True)
        workloads = {
            "wait": (Workload(hold_s=0.04, rate=30.0, spike_every=2.0, spike_size=20,
                              prewarm=args.prewarm), 40.0),
            # 10 processes x (12 + 6/2) req/s x ~4 ms: about 60% of the one core at the peak.
            "compute": (Workload(hold_s=compute_ms / 1000, rate=12.0, spike_every=2.0,
                                 spike_size=6, query="compute", compute_rows=rows_n,
                                 prewarm=args.prewarm),
                        compute_ms),
        }
        plans = []
        for wl in wls:
            workload, hold_ms = workloads[wl]
            for path in paths:
                s = scenario(path, workload, hold_ms, conf["max_connections"])
                settings = settings_for(s, path)
                if args.only:
                    keep = {n.strip() for n in args.only.split(",")}
                    settings = [x for x in settings if x.name in keep]
                rec = recommend(s)
                described[f"{wl}/{path}"] = {
                    "scenario": asdict(s), "settings": [asdict(x) for x in settings],
                    "findings": [(f.code, f.message) for f in rec.warnings]}
                plans.append((wl, path, workload, s, settings, rec))
        # One PgBouncer for every setting, with the server pool poolwise recommends.
        bouncer_pool = next((rec.endpoint("primary").server_side.pool_size_per_pair
                             for _, path, _, _, _, rec in plans if path == "pgbouncer"), 20)
        with pgbouncer_server(pg, default_pool_size=bouncer_pool, max_client_conn=400) as bx:
            pin(bx.pid, CLIENT_CPU)  # PgBouncer beside the clients, not on the database's core
            urls = {"direct": (pg.url(), pg.url(user=pg.admin_user), pids["primary"]),
                    "pgbouncer": (bx.url(), pg.url(user=pg.admin_user), pids["primary"]),
                    "replica": (rep.url(), rep.url(user=rep.admin_user), pids["replica"])}
            warm = PoolSettings("warm-up", pool_size=3, max_overflow=0, connect_args=NO_CACHE)
            for url, mon_url, pid in urls.values():
                one_run(url, mon_url, pg.user, pid, warm, workloads["wait"][0],
                        [Phase("warm-up", 2, 2.0)])
            for rep_i in range(args.repeats):
                for wl, path, workload, _s, settings, _rec in plans:
                    url, mon_url, pid = urls[path]
                    order = settings if rep_i % 2 == 0 else settings[::-1]
                    if rep_i > 0:  # their errors repeat run to run (fleet.md): once is enough
                        order = [x for x in order if x.name not in ONCE]
                    for x in order:
                        if path != "pgbouncer" and "pgbouncer" in paths:
                            # PgBouncer keeps its idle server connections on the primary
                            # (server_idle_timeout 600 s); drop them so they do not take
                            # slots a direct run's settings counted on.
                            bx.admin(f"KILL {pg.database}")
                            bx.admin(f"RESUME {pg.database}")
                        out = one_run(url, mon_url, pg.user, pid, x, workload, phases)
                        r: FleetResult = out["result"]
                        out.update(workload=wl, path=path, setting=x.name, repeat=rep_i,
                                   load=os.getloadavg()[0])
                        runs.append(out)
                        f = r.phases[-1]
                        print(f"[{time.time() - started:5.0f} s] {wl}/{path} #{rep_i + 1} "
                              f"{x.name} ({x.pool_size}+{x.max_overflow}): peak {f.throughput:.1f}"
                              f"/{f.offered_rate:.1f} ok/s, {f.errors} errors, p99 "
                              f"{fmt(f.p99_ms)} ms, db cpu {fmt(out['cpu_phase'][-1], '.2f')}",
                              flush=True)
                        time.sleep(0.5)
    elapsed = time.time() - started
    rows = summarise(runs, [ph.name for ph in phases])
    vs = verdicts(rows)
    art = ROOT / "bench" / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    tag = args.tag or ("cpu-prewarm" if args.prewarm else "cpu")
    (art / f"{tag}.json").write_text(json.dumps({
        "compute_rows": rows_n, "compute_ms": compute_ms, "sweep": sweep_rows,
        "bouncer_default_pool_size": bouncer_pool, "cases": described, "rows": rows,
        "verdicts": vs, "elapsed_s": elapsed,
        "runs": [{k: (v.to_dict() if k == "result" else v) for k, v in r.items()}
                 for r in runs]}, indent=1, default=str))
    for v in vs:
        print(f"{v['workload']}/{v['path']} {v['phase']}: errors {v['errors']}, p99 "
              f"{fmt(v['p99'])} vs best {fmt(v['best_p99'])} ({v['best_p99_by']}) = "
              f"{fmt(v['p99_ratio'], '.2f')}x, throughput {fmt(v['thr_ratio'], '.3f')}x -> "
              f"{'meets' if v['ok'] else 'MISSES'}")
    png = art / f"{tag}-quick.png" if args.no_docs else ROOT / "bench" / f"{tag}.png"
    chart(runs, rows, half, png)
    print(f"{elapsed:.0f} s in total; wrote {art / tag}.json and {png}")
    if not args.no_docs:
        write_section(ROOT / "bench" / "cpu.md",
                      tag.replace("cpu-", "cpu:") if tag != "cpu" else "cpu:results",
                      body(args, rows, vs, sweep_rows, rows_n, compute_ms, bouncer_pool,
                           described, elapsed, runs, png.name))
        print("updated bench/cpu.md")
    return 0 if all(v["ok"] for v in vs) else 1


def body(args, rows, vs, sweep_rows, rows_n, compute_ms, bouncer_pool, described, elapsed,
         runs, png_name) -> str:
    bound = cores.executable(DB_CORES)
    best = max((sw["throughput"] for sw in sweep_rows), default=1.0)
    loads = [r["load"] for r in runs]
    out = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPUs, {elapsed:.0f} s in "
        f"total, {args.repeats} repeats (order reversed every other repeat); 1-minute load "
        f"average during the runs {min(loads):.1f}-{max(loads):.1f} (other sessions share "
        "the machine). PostgreSQL 15 pinned to CPU 1, PgBouncer to CPU 0, clients unpinned. "
        + ("**Every process opened its pool_size connections before the clock started.** "
           if args.prewarm else "") +
        f"Compute query: sum over {rows_n:,} rows of generate_series, {compute_ms:.2f} ms "
        f"unloaded. PgBouncer 1.18, transaction mode, default_pool_size {bouncer_pool} "
        "(poolwise's recommendation for this fleet), max_client_conn 400.",
        "",
    ]
    if sweep_rows:
        out += [
            f"### Sweep: one core, N connections running the compute query back to back "
            f"(cores bound {bound.formula})",
            "",
            "| connections | x bound | queries/s | vs best | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
            *[f"| {sw['connections']} | {sw['connections'] / bound.executable:.1f} | "
              f"{sw['throughput']:,.0f} | {sw['throughput'] / best:.2f} | {sw['p50_ms']:.1f} | "
              f"{sw['p99_ms']:.1f} |" for sw in sweep_rows],
            ""]
    out += [
        "### Settings",
        "",
        "| case | setting | pool_size | max_overflow | pre_ping | formula |",
        "|---|---|---|---|---|---|",
    ]
    for case, d in described.items():
        for x in d["settings"]:
            out.append(f"| {case} | {x['name']} | {x['pool_size']} | {x['max_overflow']} | "
                       f"{x['pool_pre_ping']} | {x['formula']} |")
    out += ["", "### Figures (median over repeats; min-max in brackets)", "",
            "| workload | path | setting | phase | per process | offered/s | ok/s | errors | "
            "p50 ms | p99 ms | peak conns | db CPU (cores) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['workload']} | {r['path']} | {r['setting']} | {r['phase']} | "
            f"{r['per_process']} | {r['offered']:.1f} | {r['throughput']:.1f} "
            f"({r['thr_min']:.1f}-{r['thr_max']:.1f}) | {r['errors']} | {r['p50']:.0f} | "
            f"{r['p99']:.0f} ({r['p99_min']:.0f}-{r['p99_max']:.0f}) | {r['peak_conns']} | "
            f"{fmt(r['db_cpu'], '.2f')} |")
    out += ["", "### Targets: poolwise against the best error-free alternative", "",
            "| workload | path | phase | poolwise errors | poolwise p99 | best p99 (by) | "
            "p99 ratio (<= 1.1) | throughput ratio (>= 0.95) | verdict |",
            "|---|---|---|---|---|---|---|---|---|"]
    for v in vs:
        out.append(f"| {v['workload']} | {v['path']} | {v['phase']} | {v['errors']} | "
                   f"{fmt(v['p99'])} | {fmt(v['best_p99'])} ({v['best_p99_by']}) | "
                   f"{fmt(v['p99_ratio'], '.2f')} | {fmt(v['thr_ratio'], '.3f')} | "
                   f"{'meets' if v['ok'] else '**misses**'} |")
    out += ["", f"![database CPU over the run and peak-phase p99 per setting]({png_name})"]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
