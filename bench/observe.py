"""observe against known loads: measured busy vs the true offered load, and the pools each
gives, direct and through PgBouncer (transaction mode). Results: bench/observe.md.

    .venv/bin/python bench/observe.py [--seconds 10] [--interval-ms 100]

Each level is a run of the fleet harness (wizard/fleet: run_groups, spawned processes on
one clock) in its open-loop mode: PROCESSES processes, each with its own SQLAlchemy
AsyncEngine (pool_size 16, application_name `web`), Poisson arrivals at RPS / PROCESSES
per second, each holding a connection for HOLD ms (SELECT pg_sleep), on a throwaway
PostgreSQL and PgBouncer (wizard/fleet/pgserver.py); `observe` samples it meanwhile, in
this process. The true offered load is RPS x HOLD. The scenario is the same 2 app
processes (2 instances x 1 worker) on a self-hosted server with max_connections 200:
`recommend` from the true rps and hold (rps per instance = RPS / 2), against `recommend`
from the measurement alone ([service.measured], no guess).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wizard.core.measured import as_load  # noqa: E402
from wizard.core.model import Load, MeasuredLoad, Scenario, Service  # noqa: E402
from wizard.core.plan import recommend  # noqa: E402
from wizard.fleet import Group, PoolSettings, Target, Workload, run_groups  # noqa: E402
from wizard.fleet.pgserver import pgbouncer_server, postgres_server  # noqa: E402
from wizard.live import observe as obs  # noqa: E402
from wizard.live.target import parse_target  # noqa: E402

LEVELS = ((40.0, 25.0), (100.0, 50.0), (160.0, 60.0))  # (rps, hold ms): 1.0, 5.0, 9.6 busy
PROCESSES = 2


def plan(load: Load) -> tuple[int, int]:
    base = Scenario(provider="self-hosted", instance_class=None, max_connections=200)
    svc = Service(name="web", app_instances=PROCESSES, workers=1, load=load)
    eng = recommend(replace(base, services=(svc,))).service("web").rec.engine("primary")
    return eng.pool_size, eng.max_overflow


WARMUP_S = 1.5  # the processes' engines connect before observe starts
# asyncpg through PgBouncer 1.18 in transaction mode: no server-side prepared statements
NO_CACHE = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


def level(url: str, watch, rps: float, hold: float, seconds: float, interval_ms: float,
          pooled: bool) -> obs.Observation:
    """One fleet run (open loop) with observe sampling it from WARMUP_S on."""
    acc = obs.Accumulator()
    at: list[str] = []
    connect = {**(NO_CACHE if pooled else {}), "server_settings": {"application_name": "web"}}
    group = Group(Target(url=url, settings=PoolSettings(
        "web", pool_size=16, max_overflow=0, connect_args=connect)),
        Workload(hold_s=hold / 1000, rate=rps / PROCESSES), (PROCESSES,), app="web")

    started = threading.Event()

    def watcher() -> None:
        if not started.wait(180):  # the harness's clock starts once every process is ready
            return
        time.sleep(WARMUP_S)  # the engines open their first connections
        at.append(obs.utc_now())
        asyncio.run(obs.observe(watch, acc, seconds=seconds, interval_ms=interval_ms,
                                visitor=False))

    thread = threading.Thread(target=watcher)
    thread.start()
    try:
        run_groups([group], [("run", seconds + WARMUP_S + 1.0)],
                   progress=lambda _msg: started.set())
    finally:
        started.set()
        thread.join()
    return obs.result(watch, acc, at[0], interval_ms)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval-ms", type=float, default=100.0)
    args = ap.parse_args()
    rows = []
    with postgres_server() as pg, pgbouncer_server(pg, pool_mode="transaction",
                                                   default_pool_size=40) as bouncer:
        for path, server in (("direct", pg), ("PgBouncer", bouncer)):
            watch = parse_target(f"postgresql://{server.user}@{server.host}:{server.port}/"
                                 f"{server.database}",
                                 env={"POOLWISE_LIVE_PASSWORD": server.password})
            for rps, hold in LEVELS:
                o = level(server.url(), watch, rps, hold, args.seconds, args.interval_ms,
                          pooled=path == "PgBouncer")
                web = next(s for s in o.services if s.application_name == "web")
                true = rps * hold / 1000
                m = MeasuredLoad(web.busy_mean, web.busy_p95, PROCESSES,
                                 obs.utc_now(), o.where, o.seconds)
                from_true = plan(Load(rps / PROCESSES, hold))
                from_measured = plan(as_load(m, workers=1))
                rows.append((path, rps, hold, true, web.busy_mean, web.busy_p95, o.samples,
                             from_true, from_measured))
                print(rows[-1], file=sys.stderr, flush=True)
    print("| path | rps | hold ms | true busy (rps x hold) | measured busy mean | error "
          "| busy p95 | samples | pool from true rps/hold | pool from measurement |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for path, rps, hold, true, mean, p95, n, (tp, to), (mp, mo) in rows:
        print(f"| {path} | {rps:g} | {hold:g} | {true:.2f} | {mean:.2f} | "
              f"{(mean - true) / true:+.1%} | {p95:g} | {n} | {tp} + {to} | {mp} + {mo} |")


if __name__ == "__main__":
    main()
