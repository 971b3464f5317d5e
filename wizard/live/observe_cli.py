"""`python -m wizard observe`: measure each application_name's busy connections.

    python -m wizard observe --url postgresql://USER@HOST:PORT/DB [--password-env NAME]
        [--seconds 60] [--interval-ms 100] [--json] [--scenario FILE.toml [--write]]

Samples pg_stat_activity (wizard/live/observe.py) for --seconds (at most 3600) every
--interval-ms (at least 50); Ctrl-C ends early and reports what it has. With --scenario,
each [[service]] whose name is an application_name seen is compared with its guess; with
--write the measurement is recorded there ([service.measured]) and `recommend --scenario`
sizes from it. Exit codes: 0 ok, 2 bad input, 4 observe failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from wizard import cli as core_cli
from wizard.core import measured
from wizard.core.findings import url_findings
from wizard.core.model import ScenarioError
from wizard.live import observe as obs
from wizard.live import observe_pgbouncer as pgb
from wizard.live.check import CONNECT_TIMEOUT
from wizard.live.errors import LiveError
from wizard.live.target import ENV_PASSWORD, parse_target
from wizard.scenario import files, record
from wizard.scenario.redact import redact

EXIT_FAILED = 4
BAR = 30


def setup(p: argparse.ArgumentParser) -> None:
    p.description = ("Measure each application_name's busy connections (pg_stat_activity, "
                     "read-only) and size from them instead of guessed traffic.")
    p.add_argument("--url", required=True, help="postgresql://USER@HOST:PORT/DB[?sslmode=...]")
    p.add_argument("--password-env", default=ENV_PASSWORD, metavar="NAME",
                   help="environment variable holding the password (default %(default)s)")
    p.add_argument("--seconds", type=float, default=obs.DEFAULT_SECONDS, metavar="N",
                   help=f"how long to sample (default %(default)g, at most {obs.MAX_SECONDS:g})")
    p.add_argument("--interval-ms", type=float, default=obs.DEFAULT_INTERVAL_MS, metavar="M",
                   help=f"sample every M ms (default %(default)g, at least "
                        f"{obs.MIN_INTERVAL_MS})")
    p.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT, metavar="S",
                   help="per connection attempt and per sample, in (0, 600] seconds")
    p.add_argument("--scenario", metavar="FILE.toml",
                   help="compare with the [[service]] tables named like the application_names")
    p.add_argument("--write", action="store_true",
                   help="record the measurement in --scenario's matching [[service]] tables")
    p.add_argument("--processes", action="append", default=[], metavar="NAME=N",
                   help="app processes NAME ran while observed (repeatable); default for "
                        "--write: the file's app_instances x workers")
    p.add_argument("--json", action="store_true")


def parse_processes(items: list[str]) -> dict[str, int]:
    """--processes NAME=N values (LiveError naming the bad one, exit 2)."""
    out: dict[str, int] = {}
    for item in items[:100]:
        name, _, n = item.partition("=")
        try:
            value = int(n)
        except ValueError:
            value = 0
        if not name or not 1 <= value <= measured.MAX_PROCESSES:
            raise LiveError(f"--processes must be NAME=N with N in 1.."
                            f"{measured.MAX_PROCESSES:,}, got {item[:60]!r}.", "", "bad_input")
        out[name] = value
    if len(items) > 100:
        raise LiveError("--processes is given more than 100 times.", "", "bad_input")
    return out


class _Bar:
    """A progress bar on stderr (redrawn in place on a terminal, else one line at 0)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tty = sys.stderr.isatty()
        self.last = -1
        print(f"[observe] sampling for {seconds:g} s (Ctrl-C ends early)", file=sys.stderr,
              flush=True)

    def __call__(self, fraction: float, samples: int) -> None:
        filled = int(fraction * BAR)
        if not self.tty or filled == self.last:
            return
        self.last = filled
        print(f"\r[observe] [{'#' * filled}{'.' * (BAR - filled)}] "
              f"{fraction * self.seconds:5.1f}/{self.seconds:g} s, {samples} samples",
              end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty and self.last >= 0:
            print(file=sys.stderr, flush=True)


def render(o: obs.Observation) -> str:
    head = (f"poolwise observe: {o.target}, {o.seconds:g} s, {o.samples} samples every "
            f"{o.interval_ms:g} ms (from {o.started_at})")
    cols = ["application_name", "open_max", "busy_mean", "busy_p95", "busy_max",
            "idle_in_tx_max", "samples"]
    rows = [[core_cli.one_line(s.application_name)[:40], str(s.open_max), f"{s.busy_mean:.2f}",
             f"{s.busy_p95:g}", str(s.busy_max), str(s.idle_in_transaction_max),
             str(s.samples)] for s in o.services]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    line = "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(cols, widths, strict=True)))
    out = [head, line]
    out += ["  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                             for i, (v, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows]
    if not rows:
        out.append("  (no other client connection was seen)")
    out += [f"  note: {n}" for n in o.notes]
    return "\n".join(out)


def compare(o: obs.Observation, path: str,
            processes: dict[str, int] | None = None) -> list[str]:
    """Each [[service]] of the file next to the measurement of its application_name
    (over `processes` by name when given, else the file's fleet)."""
    s = files.load(path)
    busy = {x.application_name: x for x in o.services}
    out = [f"Against {path}:"]
    for svc in s.services:
        seen = busy.get(svc.name)
        if processes and svc.name in processes:
            procs = processes[svc.name]
        elif svc.serverless_concurrency is not None:
            procs = svc.serverless_concurrency
        else:
            procs = svc.app_instances * svc.workers
        plan = ""
        if svc.load is not None and svc.load.measured is None:
            per = 1 if svc.serverless_concurrency is not None else svc.app_instances
            guess = svc.load.rps * per * svc.load.hold_ms / 1000
            plan = f"the plan assumed {guess:,.2f} busy (rps x hold_ms x {per} instances)"
        elif svc.load is not None:
            plan = (f"the file holds a measurement: {svc.load.measured.busy_mean:,.2f} busy "
                    f"({svc.load.measured.at})")
        else:
            plan = "no load in the file (sized by the caps)"
        now = (f"measured {seen.busy_mean:,.2f} busy (p95 {seen.busy_p95:g}) over {procs} "
               "processes" if seen else "not seen (no connection with that application_name)")
        out.append(f"  {svc.name:<16} {now}; {plan}")
    return out


def run(args: argparse.Namespace) -> int:
    try:
        obs.check_bounds(args.seconds, args.interval_ms)
        if not (0 < args.connect_timeout <= 600):
            raise LiveError("--connect-timeout must be in (0, 600] seconds.", "", "bad_input")
        processes = parse_processes(args.processes)
        if args.write and not args.scenario:
            raise LiveError("--write needs --scenario FILE.toml.", "", "bad_input")
        if args.scenario:
            files.load(args.scenario)  # a bad file is refused before anything connects
        target = parse_target(args.url, env=os.environ, password_env=args.password_env)
    except LiveError as err:
        print(core_cli.one_line(f"error: {err.message}" + (f" Fix: {err.fix}" if err.fix
                                                            else "")), file=sys.stderr)
        return core_cli.EXIT_BAD_INPUT
    except ScenarioError as err:
        print(core_cli.one_line(f"error: {err}"), file=sys.stderr)
        return core_cli.EXIT_BAD_INPUT
    for finding in url_findings(args.url):
        print(f"warning: {finding.message} Fix: {finding.fix}", file=sys.stderr)
    if target.password_from == "url":
        print("warning: the URL holds a password; it may stay in your shell history. "
              "Put it in an environment variable and pass --password-env NAME instead.",
              file=sys.stderr)
    if target.database == pgb.ADMIN_DB:
        return _run_admin(args, target)
    acc = obs.Accumulator()
    started = obs.utc_now()
    failed, interrupted = _sample(args, acc, lambda bar: obs.observe(
        target, acc, seconds=args.seconds, interval_ms=args.interval_ms,
        connect_timeout=args.connect_timeout, progress=bar, visitor=False))
    if failed is not None and acc.samples == 0:
        return EXIT_FAILED
    o = obs.result(target, acc, started, args.interval_ms,
                   interrupted=interrupted or failed is not None)
    extra: list[str] = []
    written = None
    try:
        if args.scenario and not args.json:  # against the file as it was (before --write)
            extra = compare(o, args.scenario, processes)
        if args.scenario and args.write and o.samples:
            written = record.write(args.scenario, o.busy(), at=started, where=o.where,
                                   seconds=o.seconds, processes=processes)
    except ScenarioError as err:
        print(core_cli.one_line(f"error: {err}"), file=sys.stderr)
        return core_cli.EXIT_BAD_INPUT
    if args.json:
        d = o.to_dict()
        if written is not None:
            d["written"] = {"file": args.scenario, "services": list(written.updated),
                            "not_in_file": list(written.unknown)}
        print(redact(json.dumps(d, indent=2)))
    else:
        text = render(o)
        if extra:
            text += "\n\n" + "\n".join(extra)
        if written is not None:
            text += (f"\n\nWrote [service.measured] for {', '.join(written.updated) or 'none'}"
                     f" in {args.scenario}; `poolwise recommend --scenario {args.scenario}` "
                     "sizes from it.")
            if written.unknown:
                text += ("\nSeen but not in the file: "
                         + ", ".join(core_cli.one_line(n)[:40] for n in written.unknown))
            if written.suggestion:
                text += "\nTo add them:\n" + written.suggestion
        print(redact(text))
    if failed is not None:
        print(redact(core_cli.one_line(f"error: {failed.message} Fix: {failed.fix}")),
              file=sys.stderr)
        return EXIT_FAILED
    return 0


def _sample(args: argparse.Namespace, acc: Any, run: Any) -> tuple[LiveError | None, bool]:
    """Run a sampler (`run(bar)` makes its coroutine) with a progress bar: (the error that
    ended it, whether Ctrl-C did). An error before any sample is printed here, in one line;
    after some samples the caller reports what it has."""
    bar = _Bar(args.seconds)
    failed: LiveError | None = None
    interrupted = False
    try:
        asyncio.run(run(bar))
    except KeyboardInterrupt:
        interrupted = True
    except LiveError as err:
        failed = err
    finally:
        bar.done()
    if failed is not None and acc.samples == 0:
        print(redact(core_cli.one_line(f"error: {failed.message} Fix: {failed.fix}")),
              file=sys.stderr)
    return failed, interrupted


def _run_admin(args: argparse.Namespace, target) -> int:
    """The URL is PgBouncer's admin console: SHOW POOLS / SHOW STATS, no application_name."""
    if args.scenario:
        print("error: the admin console has no application_name to match services; observe "
              "the database (directly or through PgBouncer) for --scenario.", file=sys.stderr)
        return core_cli.EXIT_BAD_INPUT
    acc = pgb.PoolAccumulator()
    started = obs.utc_now()
    failed, interrupted = _sample(args, acc, lambda bar: pgb.observe_pgbouncer(
        target, acc, seconds=args.seconds, interval_ms=args.interval_ms,
        connect_timeout=args.connect_timeout, progress=bar))
    if failed is not None and acc.samples == 0:
        return EXIT_FAILED
    o = pgb.PoolerObservation(str(target), started, round(acc.elapsed, 3), acc.samples,
                              args.interval_ms, acc.pools(),
                              interrupted or failed is not None)
    print(redact(json.dumps(o.to_dict(), indent=2) if args.json else pgb.render(o)))
    if failed is not None:
        print(redact(core_cli.one_line(f"error: {failed.message} Fix: {failed.fix}")),
              file=sys.stderr)
        return EXIT_FAILED
    return 0


