"""A measured load in a scenario file: read `[service.measured]`, write it (`observe --write`).

    [[service]]
    name = "api"
    app_instances = 4
    rps = 50          # the guess, kept: the output says how far it was from the measurement
    hold_ms = 40

    [service.measured]  # poolwise observe; the sizing reads this instead of rps x hold_ms
    busy_mean = 1.93    # connections of application_name "api" in state active, mean
    busy_p95 = 4        # and p95 over the samples
    processes = 4       # app processes running when it was measured
    at = "2026-12-06T03:10:00Z"
    where = "db.internal:5432/app"
    seconds = 60

Types are strict (a number is a TOML number, `at` a string like the one above, `where`
printable text, never a password) and every number has a range (wizard/core/measured.py).
Writing keeps the file's comments and layout (tomlkit) and re-reads the result before it
replaces the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wizard.core.model import Scenario, ScenarioError
from wizard.scenario import files, links
from wizard.scenario.redact import looks_like_credential


@dataclass(frozen=True)
class Written:
    """What `observe --write` did: services updated, names seen but not in the file."""

    updated: tuple[str, ...]
    unknown: tuple[str, ...]  # application_names with no [[service]] of that name
    suggestion: str  # the lines to add for the unknown names that can be service names


def _processes(s: Scenario, name: str) -> int:
    svc = next(v for v in s.services if v.name == name)
    if svc.serverless_concurrency is not None:
        return svc.serverless_concurrency
    return svc.app_instances * svc.workers


def suggestion(names: Sequence[str], busy: Mapping[str, tuple[float, float]]) -> str:
    """[[service]] tables to add for names that can be service names (others are skipped)."""
    out = []
    for name in names:
        if not links.SERVICE_NAME.fullmatch(name):
            continue
        mean, p95 = busy[name]
        out += ["[[service]]", f'name = "{name}"', "app_instances = 1  # how many run it?",
                f"# measured: busy_mean {mean:.2f}, busy_p95 {p95:g}; run observe --write "
                "again once it is in the file", ""]
    return "\n".join(out).rstrip()


def write(path: str | Path, busy: Mapping[str, tuple[float, float]], *, at: str, where: str,
          seconds: float, processes: Mapping[str, int] | None = None) -> Written:
    """Record busy[name] = (mean, p95) in each [[service]] named `name` of the file at
    `path`, as a [service.measured] table, keeping comments and layout.

    `processes` (by name) when known; else the file's fleet (app_instances x workers).
    The new text is parsed as a scenario before it replaces the file (atomically)."""
    import tomlkit

    text = files.read(path)
    scenario = files.parse(text, str(path))
    if looks_like_credential(where):
        raise ScenarioError("the place measured looks like it holds a password; refused")
    doc = tomlkit.parse(text)
    tables = doc.get("service")
    if tables is None:
        raise ScenarioError(f"{path}: no [[service]] tables; add one per application_name "
                            "(name = the application_name its engines set) to record a "
                            "measurement")
    updated = []
    for table in tables:
        name = table.get("name")
        if name not in busy:
            continue
        mean, p95 = busy[name]
        m = tomlkit.table()
        m.comment("poolwise observe: sized from this instead of rps x hold_ms")
        m.add("busy_mean", round(float(mean), 3))
        m.add("busy_p95", round(float(p95), 3))
        m.add("processes", int((processes or {}).get(name) or _processes(scenario, name)))
        m.add("at", at)
        m.add("where", where)
        m.add("seconds", round(float(seconds), 1))
        m.add(tomlkit.nl())
        for key in [k for k in table if str(k).startswith("measured_")]:
            del table[key]  # an older measurement as flat keys (files.dump's form, a link's)
        table["measured"] = m
        updated.append(str(name))
    unknown = tuple(n for n in busy if n not in {str(t.get("name")) for t in tables})
    new = tomlkit.dumps(doc)
    files.parse(new, str(path))  # never write a file poolwise cannot read back
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.resolve().parent, prefix=".poolwise-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.chmod(tmp, os.stat(target).st_mode & 0o777)
        os.replace(tmp, target.resolve())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Written(tuple(updated), unknown, suggestion(unknown, busy))
