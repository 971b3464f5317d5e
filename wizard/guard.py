"""`poolwise check --scenario FILE.toml`: the connection budget as code.

Each [[service]] may declare the pool it runs today (current_pool_size, current_max_overflow,
current_pool_recycle, current_poolclass); the check puts every service at its autoscaling
peak with those settings (its recommended pool where it declares none; max_overflow without
pool_size counts SQLAlchemy's default pool_size 5) and fails when an endpoint would exceed
its usable connections or an error-severity finding holds. A setting the check cannot see
may be declared too: current_statement_cache_size = 0 says the service turns asyncpg's
statement caches off, so no prepared-statement warning is raised for it.

Exit 0: every endpoint fits (the headroom is printed); 1: the budget breaks (each failure
names the service, the endpoint and the fix); 2: the file is invalid (file and line).
The numbers and findings come from the core (plan.recommend, current.current_use; each
finding's services, endpoint and, in the codes table, the keys it points at); this module only
words them as text, JSON or GitHub workflow commands. Pure except for `_run`'s printing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass

from wizard import cli
from wizard.core import current, plan
from wizard.core.codes import CODES
from wizard.core.model import Scenario, ScenarioError, SizingError
from wizard.scenario import files

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_FILE = 2
FORMATS = ("text", "json", "github")

@dataclass(frozen=True)
class Problem:
    """A finding as the check reports it: the services it concerns and where in the file."""

    code: str
    severity: str
    services: tuple[str, ...]
    endpoint: str | None
    message: str
    fix: str
    lines: tuple[int, ...]  # per service, the line an annotation points at


@dataclass(frozen=True)
class Report:
    path: str
    endpoints: tuple[current.EndpointUse, ...]
    problems: tuple[Problem, ...]

    @property
    def failures(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.failures and not any(e.over for e in self.endpoints)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED


def _service_index(s: Scenario, name: str) -> int | None:
    """1-based position of a named service's [[service]] table (None: the flags form)."""
    names = [v.name for v in s.services] if s.named else []
    return names.index(name) + 1 if name in names else None


def check(text: str, path: str) -> Report:
    """The check of a scenario file's text (ScenarioFileError when the file is invalid)."""
    s = files.parse(text, path)
    try:
        rec = plan.recommend(s)
    except SizingError as exc:
        # Not even one connection per engine fits: the budget breaks whatever the pools.
        names = (exc.service,) if exc.service else tuple(v.name for v in s.services)
        keys = CODES["CANNOT_FIT"].keys
        lines = tuple(files.line_of(text, keys, _service_index(s, n)) for n in names)
        problem = Problem("CANNOT_FIT", "error", names, exc.endpoint, exc.message,
                          exc.fix[:1].upper() + exc.fix[1:], lines)
        return Report(path, (), (problem,))
    except ScenarioError as exc:
        raise files.ScenarioFileError(str(exc), path, _error_line(text, s, exc),
                                       exc.key) from None
    problems = []
    for f in rec.warnings:  # errors first; each names its services and endpoint
        keys = CODES[f.code].keys
        problems.append(Problem(
            f.code, f.severity, f.services, f.endpoint, f.message, f.fix,
            tuple(files.line_of(text, keys, _service_index(s, n)) for n in f.services)))
    return Report(path, current.current_use(rec), tuple(problems))


def _error_line(text: str, s: Scenario, exc: ScenarioError) -> int:
    """The line of a value the sizing refused: the key in its service's table (the service
    the error names, or the one its flat key `s2_workers` does)."""
    index = _service_index(s, exc.service) if exc.service else None
    key = exc.key
    if key and (flat := re.fullmatch(r"s(\d+)_(.+)", key)):  # a service's own key: s2_workers
        index, key = int(flat.group(1)), flat.group(2)
    return files.line_of(text, (key,) if key else (), index)


# --- rendering --------------------------------------------------------------------------

def _services(names: tuple[str, ...]) -> str:
    return ", ".join(names)


def _said(p: Problem) -> str:
    """The problem's message after its endpoint (the services are worded beside it)."""
    return (f"{p.endpoint}: " if p.endpoint else "") + p.message


def render_text(report: Report) -> str:
    """The report for people: verdict, every endpoint's headroom, failures with their fix."""
    return "\n".join(text_lines(report))


def text_lines(report: Report) -> list[str]:
    """render_text's lines (a value may hold a line break: see render_github)."""
    failures = report.failures
    if report.ok:
        head = "OK: every endpoint fits at every service's autoscaling peak"
    else:
        head = f"FAILED: {len(failures)} problem{'s' * (len(failures) != 1)}"
    out = [f"poolwise check {report.path}: {head}"]
    for e in report.endpoints:
        total = "no limit" if e.total is None else f"{e.total:,}"
        verdict = (f"headroom {e.headroom:,}" if not e.over else
                   "over: no limit" if e.headroom is None else f"over by {-e.headroom:,}")
        out.append(f"{e.role}: {total} of {e.usable:,} usable connections at the peak; "
                   f"{verdict}")
        width = max(len(u.service) for u in e.services)
        for u in e.services:
            seen = "-" if u.connections is None else f"{u.connections:,}"
            out.append(f"  {u.service.ljust(width)}  {seen:>7}  {u.detail}")
    for p in failures:
        where = ", ".join(f"line {n}" for n in sorted(set(p.lines)))
        out.append(f"error: {_services(p.services)} ({where}): {p.code}: {_said(p)}")
        out.append(f"  fix: {p.fix}")
    rest = [p for p in report.problems if p.severity == "warning"]
    for p in rest:
        out.append(f"warning: {_services(p.services)}: {p.code}: {_said(p)}")
        out.append(f"  fix: {p.fix}")
    return out


def _problem_json(p: Problem) -> dict:
    return {"code": p.code, "severity": p.severity, "services": list(p.services),
            "endpoint": p.endpoint, "message": p.message, "fix": p.fix,
            "lines": list(p.lines)}


def render_json(report: Report) -> dict:
    """The documented --json shape of a check."""
    return {
        "file": report.path,
        "ok": report.ok,
        "exit_code": report.exit_code,
        "endpoints": [{
            "endpoint": e.role, "usable": e.usable, "connections": e.total,
            "headroom": e.headroom, "over": e.over,
            "services": [{
                "service": u.service, "counted": "today" if u.today else "recommended",
                "engines": u.engines, "per_engine": u.per_engine,
                "client_connections": u.clients, "connections": u.connections,
                "pooler": u.pooler, "detail": u.detail,
                "recommended": {"pool_size": u.recommended_pool_size,
                                "max_overflow": u.recommended_max_overflow,
                                "connections": u.recommended}}
                for u in e.services]}
            for e in report.endpoints],
        "failures": [_problem_json(p) for p in report.failures],
        "warnings": [_problem_json(p) for p in report.problems if p.severity != "error"],
    }


def escape_data(value: str) -> str:
    """A workflow command's message, escaped as actions/toolkit's command.ts does."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A workflow command's property value (file, title): the message's escapes plus : and ,."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def annotation(kind: str, path: str, line: int, title: str, message: str) -> str:
    """`::error file=F,line=N,title=T::M`, GitHub's workflow command for an annotation."""
    return (f"::{kind} file={escape_property(path)},line={line},"
            f"title={escape_property(title)}::{escape_data(message)}")


# GitHub shows at most 10 error and 10 warning annotations per step: past that, one notice
# says how many more there are (the text report above them lists every one).
MAX_ANNOTATIONS = 10


def render_github(report: Report) -> str:
    """The text report, then one annotation per problem and file line (errors, warnings).

    Every line is either a workflow command whose values are escaped (annotation) or plain
    text that cannot be read as one (cli.one_line): a line break in a file value or in the
    file's path never starts a command of its own."""
    out = [cli.one_line(line) for line in text_lines(report)]
    shown = {"error": 0, "warning": 0}
    more = {"error": 0, "warning": 0}
    for p in report.problems:
        if p.severity == "info":
            continue
        kind = "error" if p.severity == "error" else "warning"
        where = f" on {p.endpoint}" if p.endpoint else ""
        for line in dict.fromkeys(p.lines):  # one annotation per line, naming its services
            if shown[kind] == MAX_ANNOTATIONS:
                more[kind] += 1
                continue
            shown[kind] += 1
            names = _services(tuple(n for n, at in zip(p.services, p.lines, strict=True)
                                    if at == line))
            out.append(annotation(kind, report.path, line, f"poolwise: {names}{where}: {p.code}",
                                  f"{names}: {_said(p)} Fix: {p.fix}"))
    for kind, n in more.items():
        if n:
            out.append(notice(report.path, f"poolwise: {n} more {kind}s",
                              f"{n} more {kind} annotation{'s' * (n != 1)} not shown: GitHub "
                              f"shows {MAX_ANNOTATIONS} per step. The log above lists every "
                              "problem."))
    return "\n".join(out)


def notice(path: str, title: str, message: str) -> str:
    """`::notice file=F,title=T::M` (escaped as annotation's)."""
    return (f"::notice file={escape_property(path)},title={escape_property(title)}::"
            f"{escape_data(message)}")


def render_bad_file(exc: files.ScenarioFileError, fmt: str) -> str:
    """An invalid file in the chosen format (stdout); stderr gets the one-line error."""
    if fmt == "json":
        return json.dumps({"file": exc.path, "ok": False, "exit_code": EXIT_BAD_FILE,
                           "error": {"line": exc.line, "message": str(exc)}}, indent=2)
    if fmt == "github":
        return annotation("error", exc.path, exc.line or 1, "poolwise: invalid scenario file",
                          str(exc))
    return ""


# --- the verb ---------------------------------------------------------------------------

def _setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", required=True, metavar="FILE.toml",
                   help="the scenario file: database keys and one [[service]] table per "
                   "service, each with the current_* settings it runs today")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="text (default), json, or github (workflow annotations on the file)")
    p.add_argument("--json", action="store_true", help="same as --format json")


def _run(args: argparse.Namespace) -> int:
    fmt = "json" if args.json else (args.format or "text")
    if args.json and args.format not in (None, "json"):
        raise ScenarioError(f"--json cannot be combined with --format {args.format}")
    try:
        report = check(files.read(args.scenario), args.scenario)
    except files.ScenarioFileError as exc:
        shown = render_bad_file(exc, fmt)
        if shown:
            print(shown)
        print(cli.one_line(f"error: {exc}"), file=sys.stderr)
        return EXIT_BAD_FILE
    if fmt == "json":
        print(json.dumps(render_json(report), indent=2))
    elif fmt == "github":
        print(render_github(report))
    else:
        print(render_text(report))
    return report.exit_code
