"""`python -m wizard fleet`: an exported module's engines (or explicit pool settings) as N
real processes against your own staging database, for a bounded time, read-only."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Any

from wizard.core.model import ScenarioError
from wizard.fleet.monitor import Monitor
from wizard.fleet.results import table, text_table
from wizard.fleet.run import run_fleet
from wizard.fleet.settings import (
    MAX_HOLD_MS,
    MAX_POOL,
    MAX_POOL_TIMEOUT,
    MAX_PROCESSES,
    MAX_SECONDS,
    PASSWORD_ENV,
    Phase,
    PoolSettings,
    Target,
    Workload,
    check_export,
    export_settings,
    load_export,
)
from wizard.fleet.urls import (
    make_url_password,
    safe_url,
    scrub,
    secret_query,
    secrets_of,
    with_password,
)
from wizard.scenario import redact


def setup(p: argparse.ArgumentParser) -> None:
    """Flags of `python -m wizard fleet`."""
    p.description = ("Run N real processes, each with its own engine, against your (staging) "
                     "database: read-only SELECT pg_sleep(...) load for a bounded time; "
                     "reports errors, checkout timeouts, throughput, latency and peak "
                     "server connections.")
    p.add_argument("--url", required=True,
                   help="SQLAlchemy URL (postgresql+asyncpg://user@host/db); the password "
                        f"comes from ${PASSWORD_ENV} or the URL and is never printed")
    p.add_argument("--export", metavar="PATH",
                   help="module written by `python -m wizard export`; each process imports "
                        "it and uses its engine (DATABASE_URL is set to --url)")
    p.add_argument("--endpoint", default="primary",
                   help="which engine of the exported module: primary or replica-N")
    p.add_argument("--processes", type=int, default=2, metavar="N")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S",
                   help=f"run time, at most {MAX_SECONDS}")
    p.add_argument("--concurrency", type=int, default=4, metavar="K",
                   help="request loops per process (closed loop, used without --rps)")
    p.add_argument("--rps", type=float, default=0.0,
                   help="open-loop requests/s per process instead of --concurrency loops")
    p.add_argument("--hold-ms", type=float, default=50.0,
                   help="how long each request holds its connection (pg_sleep)")
    p.add_argument("--pool-size", type=int, default=5,
                   help=f"without --export; 0..{MAX_POOL}")
    p.add_argument("--max-overflow", type=int, default=10,
                   help=f"without --export; 0..{MAX_POOL} (never -1, unbounded)")
    p.add_argument("--pool-timeout", type=float, default=30.0,
                   help=f"without --export; seconds in (0, {MAX_POOL_TIMEOUT:g}]")
    p.add_argument("--json", action="store_true")


def _check_args(args: argparse.Namespace) -> None:
    if not 0 < args.seconds <= MAX_SECONDS:
        raise ScenarioError(f"--seconds must be in (0, {MAX_SECONDS}], got {args.seconds:g}")
    if not 1 <= args.processes <= MAX_PROCESSES:
        raise ScenarioError(f"--processes must be 1..{MAX_PROCESSES}, got {args.processes}")
    if not 1 <= args.concurrency <= 1000:
        raise ScenarioError(f"--concurrency must be 1..1000, got {args.concurrency}")
    if not 0 < args.hold_ms <= MAX_HOLD_MS:
        raise ScenarioError(f"--hold-ms must be in (0, {MAX_HOLD_MS}], got {args.hold_ms:g}")
    if not 0 <= args.rps <= 10_000:
        raise ScenarioError(f"--rps must be 0..10000 per process, got {args.rps:g}")
    if not 0 <= args.pool_size <= MAX_POOL:
        raise ScenarioError(f"--pool-size must be 0..{MAX_POOL}, got {args.pool_size}")
    if not 0 <= args.max_overflow <= MAX_POOL:
        raise ScenarioError(f"--max-overflow must be 0..{MAX_POOL} (-1, unbounded, is "
                            f"refused: the run must stay bounded), got {args.max_overflow}")
    if not (math.isfinite(args.pool_timeout) and 0 < args.pool_timeout <= MAX_POOL_TIMEOUT):
        raise ScenarioError(f"--pool-timeout must be in (0, {MAX_POOL_TIMEOUT:g}] seconds, "
                            f"got {args.pool_timeout:g}")
    if args.export and not os.path.isfile(args.export):
        raise ScenarioError(f"--export {args.export!r}: no such file")
    from sqlalchemy.engine import make_url

    try:
        u = make_url(args.url)
    except Exception:  # noqa: BLE001 - the message could echo the URL
        raise ScenarioError("--url is not a SQLAlchemy URL "
                            "(postgresql+asyncpg://user@host:5432/db)") from None
    if not u.drivername.startswith("postgresql"):
        raise ScenarioError(f"--url must be a postgresql+asyncpg URL, got {u.drivername!r}")
    if u.drivername != "postgresql+asyncpg":
        raise ScenarioError("--url must use the asyncpg driver: postgresql+asyncpg://...")
    if secret_query(u):
        raise ScenarioError(f"--url holds a password or token in its query string; put the "
                            f"password in ${PASSWORD_ENV} instead")
    from wizard.core.findings import url_findings

    for finding in url_findings(args.url):
        raise ScenarioError(f"--url: {finding.message} {finding.fix}")
    _check_allowed(u)


def _check_addresses(host: str, port: int) -> None:
    """The addresses `host` resolves to, judged like the live check's (metadata and
    link-local refused; address patterns of POOLWISE_LIVE_ALLOWED_HOSTS matched against
    them). A name that does not resolve passes only where any host may (the connection
    then reports it)."""
    import socket

    from wizard.live.target import blocked_address, host_allowed, refused

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if any(blocked_address(a) for a in addrs) or not host_allowed(host, addrs):
        raise refused()


def _check_allowed(u: Any) -> None:
    """The live check's operator controls apply to the fleet too: POOLWISE_LIVE_DISABLED
    switches it off, POOLWISE_LIVE_ALLOWED_HOSTS limits the hosts, and metadata /
    link-local addresses are always refused (the port list is for web visitors only)."""
    from wizard.live.errors import LiveError
    from wizard.live.target import LiveTarget, check_allowed

    target = LiveTarget(host=u.host or "", port=u.port or 5432, user=u.username or "",
                        database=u.database or "")
    try:
        check_allowed(target, visitor=False)
        _check_addresses(target.host, target.port)
    except LiveError as err:
        if err.code == "disabled":
            raise ScenarioError("fleet runs are switched off here (POOLWISE_LIVE_DISABLED "
                                "covers the live check and the fleet)") from None
        raise ScenarioError("--url: this host is not allowed for a fleet run here "
                            "(POOLWISE_LIVE_ALLOWED_HOSTS; metadata and link-local addresses "
                            "are always refused)") from None


def run(args: argparse.Namespace) -> int:
    """`python -m wizard fleet`: exit 0 without errors, 1 when any request failed."""
    _check_args(args)
    if make_url_password(args.url):
        print(f"warning: the URL holds a password; other users may see it in the process list "
              f"and it may stay in your shell history. Use ${PASSWORD_ENV} instead.",
              file=sys.stderr)
    url = with_password(args.url, os.environ.get(PASSWORD_ENV))
    export_path = os.path.abspath(args.export) if args.export else None
    if export_path:
        module = load_export(export_path)  # what every process will import, checked once here
        check_export(module, args.endpoint)
        label = f"export {os.path.basename(export_path)} [{args.endpoint}]"
        settings = export_settings(module, args.endpoint, label)
        ssl = None
        if callable(getattr(module, "connect_args", None)):
            from sqlalchemy.engine import make_url

            ssl = module.connect_args(args.endpoint, make_url(url)).get("ssl")
        monitor_args = {"ssl": ssl} if ssl else {}
        label += (f": pool_size={settings.pool_size} max_overflow={settings.max_overflow} "
                  f"pool_timeout={settings.pool_timeout:g}")
    else:
        label = (f"pool_size={args.pool_size} max_overflow={args.max_overflow} "
                 f"pool_timeout={args.pool_timeout:g}")
        settings = PoolSettings(label, pool_size=args.pool_size,
                                max_overflow=args.max_overflow, pool_timeout=args.pool_timeout)
        monitor_args = {}
    target = Target(url=url, settings=settings, export_path=export_path,
                    endpoint=args.endpoint)
    workload = Workload(hold_s=args.hold_ms / 1000, rate=args.rps, concurrency=args.concurrency)
    phase = Phase(f"{args.processes} processes", args.processes, args.seconds)
    if not args.json:
        print(f"fleet: {args.processes} processes x "
              + (f"{args.rps:g} req/s" if args.rps else f"{args.concurrency} loops")
              + f" of SELECT pg_sleep({args.hold_ms / 1000:g}) (read-only) for "
              f"{args.seconds:g} s against {safe_url(args.url)}; {label}", flush=True)
    try:
        monitor = Monitor(url, connect_args=monitor_args)
        monitor.start()
        try:
            result = run_fleet(target, workload, [phase], monitor=monitor)
        finally:
            monitor.stop()
    except RuntimeError as exc:
        print(f"error: {scrub(str(exc), secrets_of(url))}", file=sys.stderr)
        return 1
    if args.json:
        d = result.to_dict()
        d["setting"] = label
        d["url"] = safe_url(args.url)
        d.pop("samples")
        print(redact.redact(json.dumps(d, indent=2)))  # messages were scrubbed when caught
    else:
        result = dataclasses.replace(result, setting=label)
        print(redact.redact(text_table(table([result]))))
        for k, v in result.messages.items():
            print(redact.redact(f"  first {k}: {v}"))
        f = result.phases[0]
        print("peak server connections counts the URL's role on its database, minus what it "
              "held before the run")
        if f.errors == 0:
            print("no connection errors, checkout timeouts or lost requests")
    return 0 if all(f.errors == 0 for f in result.phases) else 1
