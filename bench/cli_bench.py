"""`poolwise check` against importing the async driver stack, side by side.

    .venv/bin/python bench/cli_bench.py [--runs 9] [--checkout DIR]

A = `python -m wizard check --scenario tests/golden/01_rds_proxy_replica.toml` (the verb a
pull request runs), B = `python -c "import sqlalchemy.ext.asyncio, asyncpg"` (what a pure
verb would pay if it imported the driver stack). Each a whole process, run in turn
(A B A B ...) after one warm-up each; reported: the median wall and CPU seconds of each and
the median of the pairwise ratios A / B (a pair shares the machine's noise). The goal
(issue 19) is A / B <= 0.5. --checkout DIR times another checkout's `wizard` (an older
commit in a git worktree, say) with this venv's Python.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = "tests/golden/01_rds_proxy_replica.toml"
BASELINE = "import sqlalchemy.ext.asyncio, asyncpg"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one whole process; its output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=60)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--checkout", type=Path, default=ROOT,
                   help="the checkout whose `python -m wizard check` is timed")
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 100:
        raise SystemExit("--runs must be 1..100")
    a = [sys.executable, "-m", "wizard", "check", "--scenario", SCENARIO]
    b = [sys.executable, "-c", BASELINE]
    cwd = args.checkout.resolve()
    timed(a, cwd), timed(b, cwd)  # warm-up: the file cache, .pyc files
    ra, rb = [], []
    for _ in range(args.runs):
        ra.append(timed(a, cwd))
        rb.append(timed(b, cwd))
    med = statistics.median
    print(f"{os.cpu_count()} CPUs, {args.runs} runs each, in turn; checkout {cwd}")
    for label, runs in (("A poolwise check", ra), ("B import drivers", rb)):
        print(f"{label}   wall {med(w for w, _ in runs):.3f} s  "
              f"cpu {med(c for _, c in runs):.3f} s")
    print(f"A/B wall {med(x[0] / y[0] for x, y in zip(ra, rb, strict=True)):.2f}  "
          f"cpu {med(x[1] / y[1] for x, y in zip(ra, rb, strict=True)):.2f}  (goal <= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
