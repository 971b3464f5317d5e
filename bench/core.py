"""recommend() over 10,000 random in-range scenarios, extremes included.

    .venv/bin/python bench/core.py [--n 10000] [--seed 7] [--out bench/core.md]

Each scenario draws every numeric input from its documented range (wizard/core/bounds.py),
a third of them at a bound (the hostile corners: 100,000 instances x 1,024 workers,
max_connections 262,143, a million requests/s held for an hour). Reports the median, p99
and max time of one recommend() call, side by side with the default scenario's median
timed in the same run (the ratio is what to compare between machines). A scenario that
cannot fit (SizingError) or is refused (ScenarioError) counts: refusing must be quick too.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard.core import bounds, catalog, limits  # noqa: E402
from wizard.core.limits import PROXY_PROVIDERS  # noqa: E402
from wizard.core.model import (  # noqa: E402
    PROVIDERS,
    PROXIES,
    Load,
    Replica,
    Scenario,
    ScenarioError,
    Service,
    SizingError,
)
from wizard.core.plan import recommend  # noqa: E402


def pick(rng: random.Random, key: str, extreme: bool) -> float:
    r = bounds.RANGES[key]
    low = r.low + (1 if r.above and r.integer else 0)
    if extreme:
        value = rng.choice([low if not r.above else max(low, 1e-3), r.high])
    else:  # log-uniform: most real inputs are small
        lo = max(low, 1e-3 if not r.integer else 1)
        value = lo * (r.high / lo) ** rng.random()
    return int(round(value)) if r.integer else float(value)


def scenario(rng: random.Random) -> Scenario:
    extreme = rng.random() < 1 / 3
    provider = rng.choice(PROVIDERS)
    classes = [c.instance_class for c in catalog.catalog(provider)]
    proxies = [p for p in PROXIES if provider in PROXY_PROVIDERS.get(p, (provider,))]
    measured = not classes or rng.random() < 0.3
    instances = pick(rng, "app_instances", extreme)
    load = None
    if rng.random() < 0.6:
        hold = pick(rng, "hold_ms", extreme)
        load = Load(pick(rng, "rps", extreme), hold,
                    hold * rng.choice([1, 2, 5]) if rng.random() < 0.3 else None)
    mc = pick(rng, "max_connections", extreme) if measured else None
    services = ()
    if rng.random() < 0.25:  # several services share the database (up to the 32 allowed)
        n = rng.choice([2, 3, 5, limits.MAX_SERVICES if extreme else 8])
        services = tuple(_service(rng, i, extreme) for i in range(n))
    s = Scenario.flags(
        provider=provider,
        instance_class=None if measured else rng.choice(classes),
        max_connections=mc,
        replicas=tuple(Replica(max_connections=mc) for _ in range(
            rng.choice([0, 0, 1, 2, bounds.MAX_REPLICAS if extreme else 3]))),
        proxy=rng.choice(proxies),
        app_instances=instances,
        max_app_instances=max(instances, pick(rng, "max_app_instances", extreme)),
        workers=pick(rng, "workers", extreme),
        engines_per_process=pick(rng, "engines", extreme),
        serverless_concurrency=(pick(rng, "serverless_concurrency", extreme)
                                if rng.random() < 0.15 else None),
        deploy_surge_percent=pick(rng, "deploy_surge_percent", extreme),
        load=load,
    )
    return replace(s, services=services) if services else s


def _service(rng: random.Random, i: int, extreme: bool) -> Service:
    instances = pick(rng, "app_instances", extreme)
    load = None
    if rng.random() < 0.5:
        load = Load(pick(rng, "rps", extreme), pick(rng, "hold_ms", extreme))
    kind = rng.choice(["web", "worker", "cron"])
    return Service(name=f"s{i}", kind=kind, app_instances=instances,
                   max_app_instances=max(instances, pick(rng, "max_app_instances", extreme)),
                   workers=pick(rng, "workers", extreme),
                   engines_per_process=pick(rng, "engines", extreme), load=load)


def summary(s: Scenario) -> str:
    if s.named:
        return (f"{s.provider} {s.instance_class or s.max_connections}, {len(s.replicas)} "
                f"replicas, {s.proxy}, {len(s.services)} services")
    one = s.services[0]
    load = f"{one.load.rps:,g} req/s x {one.load.hold_ms:g} ms" if one.load else "no load"
    return (f"{s.provider} {s.instance_class or s.max_connections}, {len(s.replicas)} "
            f"replicas, {s.proxy}, {one.max_app_instances:,} instances x {one.workers} workers x "
            f"{one.engines_per_process} engines, {load}")


def timed(s: Scenario) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        recommend(s)
        outcome = "answered"
    except SizingError:
        outcome = "cannot fit"
    except ScenarioError:
        outcome = "refused"
    return (time.perf_counter() - t0) * 1000, outcome


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    recommend(Scenario())  # warm the catalog caches, as a running app has them
    base = sorted(timed(Scenario())[0] for _ in range(200))
    times, outcomes, several = [], {}, []
    slowest = (0.0, None)
    for _ in range(args.n):
        s = scenario(rng)
        ms, outcome = timed(s)
        (several if s.named else times).append(ms)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if ms > slowest[0]:
            slowest = (ms, s)
    times.sort()
    several.sort()
    med, p99, mx = statistics.median(times), times[int(0.99 * len(times))], times[-1]
    ref = statistics.median(base)
    smed, sp99, smx = (statistics.median(several), several[int(0.99 * len(several))],
                       several[-1]) if several else (0.0, 0.0, 0.0)
    lines = [
        "# recommend() over random in-range scenarios",
        "",
        f"{args.n:,} scenarios (seed {args.seed}), a third at the bounds of bench/core.py's "
        "ranges; outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())),
        "",
        "| figure | ms | x default scenario's median |",
        "|---|---|---|",
        f"| default scenario, median | {ref:.3f} | 1.00 |",
        f"| median | {med:.3f} | {med / ref:.2f} |",
        f"| p99 | {p99:.3f} | {p99 / ref:.2f} |",
        f"| max | {mx:.3f} | {mx / ref:.2f} |",
        f"| {len(several):,} with 2 to {limits.MAX_SERVICES} services, median | {smed:.3f} | "
        f"{smed / ref:.2f} |",
        f"| with services, p99 | {sp99:.3f} | {sp99 / ref:.2f} |",
        f"| with services, max | {smx:.3f} | {smx / ref:.2f} |",
        "",
        f"Goal: max under 50 ms per service. Slowest scenario: {summary(slowest[1])}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
