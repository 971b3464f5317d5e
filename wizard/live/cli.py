"""`python -m wizard live`: the live check from the terminal.

    python -m wizard live --url postgresql://USER@HOST:PORT/DB [--pre-ping N] [--exhaustion]
        [--pool-size 2 --max-overflow 1 --pool-timeout 2 | scenario flags] [--json]

The password comes from --password-env NAME (default POOLWISE_LIVE_PASSWORD) or the URL
(accepted with a warning: it may stay in shell history); it is never printed.
With scenario flags (--provider ...) or --scenario FILE.toml, the measured values are
applied to the scenario, it is re-sized, the connections per application_name are mapped to
its services on --endpoint (default primary) and compared with each service's part of the
plan, and --exhaustion uses the recommended engine settings on that endpoint (of --service
NAME when there are several); without them, --exhaustion uses
--pool-size/--max-overflow/--pool-timeout (defaults 2/1/2).
Exit codes: 0 ok, 2 bad input, 3 the scenario cannot fit, 4 the live check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from dataclasses import replace

from wizard import cli as core_cli
from wizard.core.findings import url_findings
from wizard.core.model import EngineSettings, Recommendation, Scenario, ScenarioError
from wizard.core.plan import recommend
from wizard.live.check import (
    CHECK_TIMEOUT,
    EXHAUSTION_CAP,
    MAX_POOL_TIMEOUT,
    MAX_PRE_PING,
    exhaustion_plan,
    run_exhaustion,
    run_live_check,
)
from wizard.live.connect import APP_NAME, CONNECT_TIMEOUT
from wizard.live.errors import LiveError
from wizard.live.report import LiveReport, StageError, apply_overrides, report_overrides
from wizard.live.target import ENV_PASSWORD, parse_target
from wizard.live.usage import EndpointUsage, service_usage
from wizard.scenario.redact import redact

EXIT_LIVE_FAILED = 4


def setup(p: argparse.ArgumentParser) -> None:
    p.description = "Measure a live database or pooler (read-only) and feed the facts back."
    p.add_argument("--url", required=True, help="postgresql://USER@HOST:PORT/DB[?sslmode=...]")
    p.add_argument("--password-env", default=ENV_PASSWORD, metavar="NAME",
                   help="environment variable holding the password (default %(default)s)")
    p.add_argument("--pre-ping", type=int, default=20, metavar="N",
                   help="checkouts with pool_pre_ping vs SELECT 1 round trips "
                        f"(0 = skip, at most {MAX_PRE_PING})")
    p.add_argument("--exhaustion", action="store_true",
                   help="prove pool_size + max_overflow + 1 holders time out (opt-in)")
    p.add_argument("--pool-size", type=int, default=2, help="exhaustion test pool_size")
    p.add_argument("--max-overflow", type=int, default=1, help="exhaustion test max_overflow")
    p.add_argument("--pool-timeout", type=float, default=2.0,
                   help="exhaustion test pool_timeout in seconds")
    p.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT, metavar="S",
                   help="per connection attempt, in (0, 600] seconds")
    p.add_argument("--timeout", type=float, default=CHECK_TIMEOUT, metavar="S",
                   help="limit for the whole check, in (0, 600] seconds (exhaustion adds "
                        "its pool_timeout)")
    p.add_argument("--endpoint", default="primary", metavar="ROLE",
                   help="which endpoint of the scenario the URL is: primary or replica-N "
                        "(default %(default)s)")
    p.add_argument("--service", metavar="NAME",
                   help="with several services: whose recommended pool --exhaustion proves")
    p.add_argument("--json", action="store_true")
    core_cli.add_scenario_flags(p)


MAX_TIMEOUT = 600.0  # seconds: --timeout and --connect-timeout


def _in(value: float, lo: float, hi: float) -> bool:
    return math.isfinite(value) and lo < value <= hi


def check_bounds(args: argparse.Namespace) -> None:
    """Refuse numbers that would make the check unbounded (ScenarioError, exit 2).

    --pre-ping 0..MAX_PRE_PING; --timeout and --connect-timeout in (0, 600] s;
    --pool-size 0..EXHAUSTION_CAP, --max-overflow 0..EXHAUSTION_CAP, --pool-timeout
    in (0, 60] s. NaN and infinity are refused (NaN compares false with every bound).
    """
    if not 0 <= args.pre_ping <= MAX_PRE_PING:
        raise ScenarioError(f"--pre-ping must be 0..{MAX_PRE_PING}, got {args.pre_ping}")
    for flag, value in (("--timeout", args.timeout), ("--connect-timeout", args.connect_timeout)):
        if not _in(value, 0, MAX_TIMEOUT):
            raise ScenarioError(f"{flag} must be a number of seconds in (0, {MAX_TIMEOUT:g}], "
                                f"got {value:g}")
    if not 0 <= args.pool_size <= EXHAUSTION_CAP or not 0 <= args.max_overflow <= EXHAUSTION_CAP:
        raise ScenarioError(f"--pool-size and --max-overflow must be 0..{EXHAUSTION_CAP}")
    if not _in(args.pool_timeout, 0, MAX_POOL_TIMEOUT):
        raise ScenarioError(f"--pool-timeout must be in (0, {MAX_POOL_TIMEOUT:g}] seconds, "
                            f"got {args.pool_timeout:g}")


def check_plan(args: argparse.Namespace, scenario: Scenario | None) -> None:
    """Refuse --endpoint and --service values the scenario does not have (exit 2), before
    anything connects."""
    if scenario is None:
        if args.service or args.endpoint != "primary":
            raise ScenarioError("--endpoint and --service need a scenario (--scenario FILE "
                                "or the scenario flags)")
        return
    roles = ("primary", *(f"replica-{i}" for i in range(1, len(scenario.replicas) + 1)))
    if args.endpoint not in roles:
        raise ScenarioError(f"--endpoint {args.endpoint[:20]!r} is not in this scenario; "
                            f"valid choices: {', '.join(roles)}")
    names = [svc.name for svc in scenario.services]
    if args.service is not None and args.service not in names:
        raise ScenarioError(f"--service {args.service[:40]!r} is not in this scenario; "
                            f"valid choices: {', '.join(names)}")
    if args.exhaustion and len(names) > 1 and args.service is None:
        raise ScenarioError("--exhaustion with several services needs --service NAME; "
                            f"valid choices: {', '.join(names)}")


def _exhaustion_engine(rec: Recommendation, args: argparse.Namespace) -> EngineSettings:
    """The recommended engine the exhaustion test proves: the chosen service's on --endpoint."""
    svc = rec.service(args.service) if args.service else rec.services[0]
    if args.endpoint not in svc.endpoints:
        raise ScenarioError(f"service {svc.name!r} does not connect to {args.endpoint}; it "
                            f"uses {', '.join(svc.endpoints)}")
    return svc.rec.engine(args.endpoint)


def _flag_settings(args: argparse.Namespace) -> EngineSettings:
    """The exhaustion test's settings from the flags (run() has checked them: check_bounds)."""
    return EngineSettings(endpoint="primary", poolclass="AsyncAdaptedQueuePool",
                          pool_size=args.pool_size, max_overflow=args.max_overflow,
                          pool_timeout=args.pool_timeout, pool_recycle=-1, pool_pre_ping=True,
                          pool_use_lifo=False, connect_args={}, reasons={})


def _fmt_ms(v: int | None) -> str:
    if v is None:
        return "n/a"
    return "off" if v == 0 else f"{v / 1000:g} s"


def render_report(report: LiveReport) -> str:
    """A terminal report of a live check."""
    out = [f"poolwise live check: {report.target} ({report.source}, {report.elapsed_s:.2f} s "
           f"of {report.limit_s:g} s limit)"]
    r = report.readings
    if r:
        out += [
            f"  server             PostgreSQL {r.server_version}, user {r.user}"
            + (" (superuser)" if r.is_superuser else ""),
            f"  max_connections    {r.max_connections}",
            "  reserved           superuser_reserved_connections "
            f"{r.superuser_reserved_connections}"
            + (f", reserved_connections {r.reserved_connections}"
               if r.reserved_connections is not None else ", reserved_connections n/a (< 16)"),
            f"  in use             {r.in_use} client connections (this check's included"
            + ("" if r.sees_all_sessions else "; other roles' states are hidden") + ")",
            "  by state           " + ", ".join(f"{k} {v}" for k, v in r.by_state.items()),
            "  by application     " + ", ".join(f"{k} {v}" for k, v in r.by_application.items()),
            f"  free for this role {r.free}",
            f"  timeouts           idle_session {_fmt_ms(r.idle_session_timeout_ms)}, "
            f"idle_in_transaction {_fmt_ms(r.idle_in_transaction_session_timeout_ms)}, "
            f"statement {_fmt_ms(r.statement_timeout_ms)}, tcp_keepalives_idle "
            + ("system default" if not r.tcp_keepalives_idle_s else f"{r.tcp_keepalives_idle_s} s"),
        ]
    if report.pooler:
        out.append(f"  endpoint           {report.pooler.kind}: {report.pooler.message}")
    p = report.pre_ping
    if p:
        out += [
            f"  connect            {p.connect_ms:.1f} ms (engine first checkout "
            f"{p.engine_connect_ms:.1f} ms)",
            f"  pre-ping (n={p.n})   checkout p50/p95/p99 {p.pre_ping_checkout.p50_ms:.2f}/"
            f"{p.pre_ping_checkout.p95_ms:.2f}/{p.pre_ping_checkout.p99_ms:.2f} ms; without "
            f"pre-ping {p.plain_checkout.p50_ms:.2f}/{p.plain_checkout.p95_ms:.2f}/"
            f"{p.plain_checkout.p99_ms:.2f} ms",
            f"  SELECT 1           p50/p95/p99 {p.select1.p50_ms:.2f}/{p.select1.p95_ms:.2f}/"
            f"{p.select1.p99_ms:.2f} ms; a pre-pinged checkout costs {p.ratio_p50:.1f}x "
            "a SELECT 1 round trip",
        ]
    if report.exhaustion_plan:
        out.append(f"  exhaustion plan    {report.exhaustion_plan.summary}")
    e = report.exhaustion
    if e:
        verdict = ("the extra holder got TimeoutError after "
                   f"{e.waited_s:.2f} s (pool_timeout {e.pool_timeout:g} s)"
                   if e.timed_out else f"NOT proven: {e.error}")
        out.append(f"  exhaustion         held {e.opened} connections; {verdict}; all released")
    overrides = report_overrides(report)
    if overrides:
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in overrides.items())
        out.append(f"  feed back          {flags}   ({report.source})")
    return "\n".join(out)


def render_usage(usage: EndpointUsage) -> str:
    """Connections per service on the checked endpoint, against each one's part of the plan."""
    out = [f"  by service         {usage.role}: {usage.in_use} client connections now; the "
           f"services' peak {usage.planned:,} of {usage.usable:,} usable"]
    for u in usage.services:
        mark = {"ok": "ok", "over_plan": "OVER PLAN", "over_allotment": "OVER ALLOTMENT"}
        out.append(f"    {u.service:<16} {u.connections:>5} now  [{mark[u.status]}] {u.message}")
    for o in usage.others:
        out.append(f"    {o.application_name[:40]:<16} {o.connections:>5} now  ({o.why})")
    out += [f"    note: {n}" for n in usage.notes]
    return "\n".join(out)


def _stage_printer(stage: str, fraction: float) -> None:
    if fraction == 0.0:
        print(f"[{stage}] ...", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    check_bounds(args)
    try:
        target = parse_target(args.url, env=os.environ, password_env=args.password_env)
    except LiveError as err:
        print(f"error: {err.message} Fix: {err.fix}", file=sys.stderr)
        return core_cli.EXIT_BAD_INPUT
    for finding in url_findings(args.url):  # e.g. an IAM token baked into the URL
        print(f"warning: {finding.message} Fix: {finding.fix}", file=sys.stderr)
    if target.password_from == "url":
        print("warning: the URL holds a password; it may stay in your shell history. "
              "Put it in an environment variable and pass --password-env NAME instead.",
              file=sys.stderr)
    flat = {k.key: getattr(args, core_cli.flag_dest(k.key)) for k in core_cli.links.PARAMS
            if getattr(args, core_cli.flag_dest(k.key), None) is not None}
    scenario = core_cli.scenario_from_args(args) if flat or args.scenario else None
    check_plan(args, scenario)
    settings = None if scenario is not None or not args.exhaustion else _flag_settings(args)
    progress = None if args.json else _stage_printer
    rec = usage = None
    try:
        report = asyncio.run(run_live_check(
            target, pre_ping=args.pre_ping, timeout=args.timeout,
            connect_timeout=args.connect_timeout, progress=progress, visitor=False))
        if scenario is not None:
            rec = recommend(apply_overrides(scenario, report, args.endpoint))
            if report.readings is not None:
                usage = service_usage(rec, args.endpoint, report.readings.by_application,
                                      APP_NAME)
            settings = _exhaustion_engine(rec, args) if args.exhaustion else None
        if settings is not None:
            plan = exhaustion_plan(settings, report.readings)
            print(f"exhaustion test: {plan.summary}", file=sys.stderr, flush=True)
            if plan.allowed:
                cache = not (report.pooler and report.pooler.named_statements_break)
                result = asyncio.run(run_exhaustion(
                    target, settings, report.readings, statement_cache=cache,
                    connect_timeout=args.connect_timeout, progress=progress, visitor=False))
                report = replace(report, exhaustion_plan=plan, exhaustion=result)
            else:
                report = replace(report, exhaustion_plan=plan, errors=report.errors + (
                    StageError("exhaustion", "exhaustion_refused",
                               f"Exhaustion test refused: {plan.reason}",
                               "lower --pool-size/--max-overflow for the test, or run it when "
                               "the server has more free connections."),))
    except LiveError as err:
        print(redact(f"error: {err.message} Fix: {err.fix}"), file=sys.stderr)
        return EXIT_LIVE_FAILED
    if args.json:
        d = report.to_dict()
        if usage is not None:
            d["service_usage"] = usage.to_dict()
        if rec is not None:
            d["recommendation"] = core_cli.recommendation_json(rec)
        text = json.dumps(d, indent=2, default=str)
    else:
        text = render_report(report)
        if usage is not None:
            text += "\n" + render_usage(usage)
        if rec is not None:
            text += "\n\nRe-sized with the measured values:\n" + core_cli.render_text(rec)
    # By structure only: the report holds no password, and its server texts were scrubbed
    # one by one (wizard.scenario.redact.scrub) where they were read.
    print(redact(text))
    for e in report.errors:
        print(redact(f"error: {e.message} Fix: {e.fix}"), file=sys.stderr)
    return EXIT_LIVE_FAILED if report.errors else 0
