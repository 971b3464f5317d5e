"""`python -m wizard`: catalog, recommend (and the verbs other modules add).

A public interface: scripts and tests depend on its flags and JSON shape.
Bad input exits 2 with one line naming the bad value and the valid choices.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from wizard.core import catalog, findings, projection, queueing, sizing
from wizard.core.model import Recommendation, Scenario, ScenarioError, SizingError
from wizard.core.params import OWNER_WORDS
from wizard.core.plan import recommend
from wizard.scenario import files, links

EXIT_BAD_INPUT = 2
EXIT_CANNOT_FIT = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise ScenarioError(message)


def add_scenario_flags(p: argparse.ArgumentParser) -> None:
    """Every Scenario parameter as a flag (the parameter table's top-level rows, grouped by
    what they describe); values are parsed by links.from_flat."""
    groups = {owner: p.add_argument_group(words) for owner, words in OWNER_WORDS.items()}
    for param in links.PARAMS:
        flag = "--" + param.key.replace("_", "-")
        group = groups[param.owner]
        if param.kind == "bool" and _DEFAULT_ON.get(param.key):
            # On by default: the flag is the opt-out (`live --pre-ping N` is another flag).
            group.add_argument("--no-" + flag[2:], dest=flag_dest(param.key),
                               action="store_const", const="0", help=param.help)
        elif param.kind == "bool":
            group.add_argument(flag, dest=param.key, action="store_const", const="1",
                               help=param.help)
        else:
            group.add_argument(flag, dest=param.key, metavar=param.kind.upper(),
                               help=param.help)
    p.add_argument_group("scenario file").add_argument(
        "--scenario", metavar="FILE.toml", help="a scenario file: the database and its "
        "[[service]] tables (instead of the flags above)")


# Scenario booleans that are on by default (the parameter table's default): their flag is
# --no-<key>.
_DEFAULT_ON = {p.key: True for p in links.PARAMS if p.kind == "bool" and p.default is True}


def flag_dest(key: str) -> str:
    """The argparse dest of a parameter (an opt-out flag keeps clear of other commands')."""
    return f"scenario_{key}" if key in _DEFAULT_ON else key


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    flat = {p.key: getattr(args, flag_dest(p.key)) for p in links.PARAMS
            if getattr(args, flag_dest(p.key), None) is not None}
    if getattr(args, "scenario", None):
        if flat:
            first = next(iter(flat))
            raise ScenarioError(f"--scenario cannot be combined with --{first.replace('_', '-')}"
                                ": put every setting in the file")
        return files.load(args.scenario)
    if "provider" not in flat:
        raise ScenarioError("--provider is required; valid choices: "
                            + ", ".join(catalog_providers()))
    return links.from_flat(flat)


def catalog_providers() -> tuple[str, ...]:
    from wizard.core.model import PROVIDERS
    return PROVIDERS


def recommendation_json(rec: Recommendation) -> dict:
    """The documented --json shape: endpoints, engines, warnings, sources (and more)."""
    d = rec.to_dict()
    d["share_query"] = links.to_query(rec.scenario)
    return d


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render_text(rec: Recommendation) -> str:
    """A readable report of a recommendation for the terminal: the endpoints with every
    service's part, then each service's plan (one service renders like several)."""
    names = ", ".join(v.name for v in rec.services)
    out = [f"poolwise: {rec.scenario.provider} {rec.scenario.instance_class or ''}: "
           f"{_count(len(rec.services), 'service')} on the database ({names})", ""]
    rows = [[e.role, e.instance_class or "-", e.max_connections_label, str(e.reserved),
             f"{e.usable:,}", b.service, f"{b.clients:,}", str(b.pool_size),
             str(b.max_overflow), f"{b.worst_case:,}",
             f"{b.breaks_at:,}" if b.breaks_at is not None else "-"]
            for e in rec.endpoints for b in e.by_service]
    out.append(_table(rows, ["endpoint", "class", "max_conn", "reserved", "usable", "service",
                             "engines", "pool_size", "overflow", "worst_case", "breaks_at"]))
    for e in rec.endpoints:
        out.append(f"  {e.role}: {e.explanation}; headroom {e.headroom:,}")
    sentence = projection.break_sentence(rec)
    if sentence:
        out += ["", sentence]
    for svc in rec.services:
        out += ["", f"== service {svc.name} ({svc.kind}) ==", _render_one(svc.rec)]
    if rec.warnings:
        out += ["", "Warnings:"]
        for w in rec.warnings:
            out.append(f"  [{w.severity}] {w.code}: {findings.said(w, rec)}")
            out.append(f"      fix: {w.fix}")
    out += ["", "Sources:"]
    out += [f"  {src.label}: {src.url}" + (f" (read {src.read_on})" if src.read_on else "")
            for src in rec.sources]
    return "\n".join(out)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _render_one(rec: Recommendation) -> str:
    """One service's plan (the estate's findings and sources are shown once, after it)."""
    out = []
    s, own = rec.scenario, rec.sized
    out.append(f"poolwise: {s.provider} {s.instance_class or ''} via {s.proxy}; "
               f"{own.serverless_concurrency or own.peak_instances} "
               f"{'invocations' if own.serverless else 'instances at peak'} x {own.workers} "
               "workers")
    out.append("")
    rows = [[e.role, e.instance_class or "-", e.max_connections_label, str(e.reserved),
             f"{e.usable:,}", f"{e.clients:,}", str(e.pool_size),
             str(e.max_overflow), f"{e.worst_case:,}"] for e in rec.endpoints]
    out.append(_table(rows, ["endpoint", "class", "max_conn", "reserved", "usable", "engines",
                             "pool_size", "overflow", "worst_case"]))
    for e in rec.endpoints:
        out.append(f"  {e.role}: {e.explanation}")
        out.append(f"  {e.role} max_connections source: {e.max_connections_source}")
    if any(e.max_connections_estimated for e in rec.endpoints):
        out.append("  Estimates hold until measured: run SHOW max_connections.")
    out.append("")
    out.append("Engine settings (per process):")
    for g in rec.engines:
        out.append(f"  [{g.endpoint}] poolclass={g.poolclass} pool_size={g.pool_size} "
                   f"max_overflow={g.max_overflow} pool_timeout={g.pool_timeout:g} "
                   f"pool_recycle={g.pool_recycle} pool_pre_ping={g.pool_pre_ping} "
                   f"pool_use_lifo={g.pool_use_lifo} connect_args={g.connect_args}")
    if rec.load:
        out.append("")
        out.append("Load:")
        out += [f"  {line}" for line in queueing.load_lines(rec)]
    out += [f"  {line}" for line in projection.break_lines(rec)]
    out.append("")
    out.append("Rules people copy (per engine x engines = fleet total, against "
               f"{sizing.rules_limit(rec)} on the primary):")
    out.append(_table([[r.name, r.formula, str(r.per_process), f"{r.fleet_total:,}",
                        "fits" if r.fits else "OVER"] for r in rec.rules],
                      ["rule", "formula", "per engine", "fleet", "primary"]))
    out.append(f"Binding bound: {rec.binding}")
    return "\n".join(out)


def cmd_catalog(args: argparse.Namespace) -> int:
    provider = catalog.check_provider(args.provider)
    rows = catalog.catalog(provider)
    if args.json:
        print(json.dumps([{
            "instance_class": r.instance_class, "family": r.family, "vcpu": r.vcpu,
            "memory_gib": r.memory_gib, "max_connections": r.max_connections,
            "basis": r.basis, "estimated": r.estimated, "source": asdict(r.source),
            "note": r.note} for r in rows], indent=2))
        return 0
    if not rows:
        print(f"{provider}: no catalog; give --max-connections N (run SHOW max_connections).")
        return 0
    print(_table([[r.instance_class, f"{r.vcpu:g}" if r.vcpu else "-",
                   f"{r.memory_gib:g}" if r.memory_gib else "-",
                   f"{r.max_connections:,}" + (" (estimate)" if r.estimated else ""), r.basis,
                   r.source.url] for r in rows],
                 ["instance_class", "vcpu", "memory_gib", "max_connections", "basis", "source"]))
    if any(r.estimated for r in rows):
        print("(estimate) = estimate from the provider's formula until measured with "
              "SHOW max_connections")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    rec = recommend(scenario_from_args(args))
    if args.json:
        print(json.dumps(recommendation_json(rec), indent=2, default=str))
    else:
        print(render_text(rec))
    return 0


def setup_catalog(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", required=True)
    p.add_argument("--json", action="store_true")


def setup_recommend(p: argparse.ArgumentParser) -> None:
    add_scenario_flags(p)
    p.add_argument("--json", action="store_true")


@dataclass(frozen=True)
class Verb:
    """A verb of the command: the module that defines it (imported only when that verb
    runs), the names there of its set-up (flags) and run functions, and its --help line."""

    module: str
    help: str
    setup: str = "setup"
    run: str = "run"


# The verb table, in --help order. Adding a verb is one row. A verb's module is imported
# only when that verb runs: `recommend`, `export` and `check` never pay for asyncpg,
# SQLAlchemy or Streamlit (tests/test_cli.py checks it).
VERBS: dict[str, Verb] = {
    "catalog": Verb("wizard.cli", "list a provider's instance classes",
                    "setup_catalog", "cmd_catalog"),
    "recommend": Verb("wizard.cli", "size pools for a scenario",
                      "setup_recommend", "cmd_recommend"),
    "export": Verb("wizard.export", "write the engine module, the report or the PgBouncer ini",
                   "_setup", "_run"),
    "live": Verb("wizard.live.cli",
                 "measure a real server: limits, pre-ping cost, exhaustion, pooler"),
    "observe": Verb("wizard.live.observe_cli",
                    "measure each application_name's busy connections (the real load)"),
    "fleet": Verb("wizard.fleet.cli", "run a bounded read-only fleet load against a database"),
    "app": Verb("wizard.web", "serve the web app (Streamlit)", "_setup", "_run"),
    "check": Verb("wizard.guard",
                  "fail when a scenario file's current pools break the connection budget",
                  "_setup", "_run"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command's parser. With `argv`, only the verb it names is set up (its module
    imported); the others are listed by name and help. Without, every verb is set up."""
    prog = "poolwise" if Path(sys.argv[0]).name == "poolwise" else "python -m wizard"
    parser = _Parser(prog=prog, description="Size SQLAlchemy async pools "
                     "for managed PostgreSQL.")
    sub = parser.add_subparsers(dest="verb", parser_class=_Parser)
    # The top level takes no option with a value: the first word that is not an option
    # is the verb.
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, verb in VERBS.items():
        p = sub.add_parser(name, help=verb.help)
        if chosen is None or chosen == name:
            module = importlib.import_module(verb.module)
            getattr(module, verb.setup)(p)
            p.set_defaults(run=getattr(module, verb.run))
    return parser


# Exit status when the reader of stdout goes away (`poolwise ... | head`): 128 + SIGPIPE,
# as a shell reports a command a closed pipe stopped.
EXIT_CLOSED_PIPE = 141

# Characters that end a line for a terminal or a CI log reader (GitHub's runner reads
# stdout and stderr line by line and runs any line starting with `::` as a command).
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` as one line of plain text: line breaks and control characters shown as
    escapes (\\n, \\x1b), and never readable as a workflow command (`::cmd` at its
    start, or the runner's older `##[cmd]` anywhere)."""
    out = _BREAKS.sub(lambda m: repr(m.group())[1:-1], text).replace("##[", "# #[")
    return "| " + out if out.lstrip().startswith("::") else out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe can still end quietly
        return code
    except BrokenPipeError:
        # The reader left: nothing more is written (not even Python's own flush at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_CLOSED_PIPE


def _main(argv: Sequence[str] | None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "verb", None):
            parser.print_help()
            return EXIT_BAD_INPUT
        return args.run(args)
    except SizingError as exc:
        print(one_line(f"error: cannot fit: {exc}"), file=sys.stderr)
        return EXIT_CANNOT_FIT
    except ScenarioError as exc:
        # The message is in plain words (the app shows it beside its field); name the flag.
        flag = (f"--{exc.key.replace('_', '-')}: " if exc.key and exc.key in links.BY_KEY
                and not isinstance(exc, files.ScenarioFileError) else "")
        print(one_line(f"error: {flag}{exc}"), file=sys.stderr)
        return EXIT_BAD_INPUT
