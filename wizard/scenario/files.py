"""Scenario files: one database and its services in TOML, with the flags' key names.

Database and proxy keys sit at the top level; each `[[service]]` table describes one
service with `name`, the fleet and load keys, `endpoints = ["primary", "replica-1"]`,
optionally `kind`, `proxy` and `weight`. A file without `[[service]]` tables is the flags
form (one service). Errors name the file and the line.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wizard.core import measured
from wizard.core.model import MeasuredLoad, Scenario, ScenarioError
from wizard.scenario import links
from wizard.scenario.redact import looks_like_credential

# A scenario file is a few hundred lines at most: refuse a huge one before parsing it.
MAX_BYTES = 256 * 1024


class ScenarioFileError(ScenarioError):
    """A scenario file is invalid; the message starts with `file:line:`."""

    def __init__(self, message: str, path: str, line: int | None, key: str | None = None):
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}", key=key)
        self.path = path
        self.line = line


# The TOML type each parameter kind takes: a value of another type is refused, never
# coerced (`workers = [4]`, `app_instances = true` and `name = ["api"]` are mistakes).
_KIND_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
               "str": "a quoted string", "list": 'an array of values, e.g. ["a", "b"]'}


def _typed(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list) and all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
            for v in value)
    return isinstance(value, str)


def _text(value: Any, kind: str = "str") -> str:
    """A TOML value as the flat text links.from_flat parses (ValueError when its type is
    not the parameter's)."""
    if not _typed(value, kind):
        raise ValueError(_KIND_WORDS[kind])
    if isinstance(value, int) and not isinstance(value, bool) and (
            value.bit_length() > 4 * links.MAX_NUMBER_CHARS):
        raise ValueError("a number of at most 32 digits")
    return links.flat_text(value)


def _lines(text: str) -> tuple[dict[str, int], list[dict[str, int]], list[int]]:
    """Line numbers of top-level keys, of each [[service]] table's keys, and of the tables."""
    top: dict[str, int] = {}
    tables: list[dict[str, int]] = []
    starts: list[int] = []
    current: dict[str, int] | None = top
    for no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[["):
            if re.fullmatch(r"\[\[\s*service\s*\]\]\s*(#.*)?", stripped):
                tables.append({})
                starts.append(no)
                current = tables[-1]
            else:
                current = None
            continue
        if stripped.startswith("["):
            current = None
            continue
        m = re.match(r"""\s*("?)([A-Za-z0-9_.-]+)\1\s*=""", line)
        if m and current is not None:
            current.setdefault(m.group(2), no)
    return top, tables, starts


def _measured_lines(text: str) -> dict[int, int]:
    """The line of each [[service]] table's `[service.measured]` header (1-based index)."""
    out: dict[int, int] = {}
    n = 0
    for no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if re.fullmatch(r"\[\[\s*service\s*\]\]\s*(#.*)?", stripped):
            n += 1
        elif n and re.fullmatch(r"\[\s*service\s*\.\s*measured\s*\]\s*(#.*)?", stripped):
            out.setdefault(n, no)
    return out


def parse(text: str, path: str = "<scenario>") -> Scenario:
    """The Scenario a scenario file's text describes (ScenarioFileError naming the line)."""
    if len(text.encode()) > MAX_BYTES:
        raise ScenarioFileError(f"the file is over {MAX_BYTES // 1024} KiB; a scenario file "
                                "is a few hundred lines", path, None)
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ScenarioFileError("not valid TOML for poolwise: arrays or tables nested too "
                                "deeply", path, None) from None
    except ValueError as exc:
        if not isinstance(exc, tomllib.TOMLDecodeError):  # e.g. int's 4,300-digit limit
            what = ("a number is too long (more than 4,300 digits)" if "digits" in str(exc)
                    else "a value cannot be read")
            raise ScenarioFileError(f"not valid TOML for poolwise: {what}", path,
                                    None) from None
        m = re.search(r"line (\d+)", str(exc))
        line = int(m.group(1)) if m else (
            max(1, len(text.splitlines())) if "end of document" in str(exc) else None)
        raise ScenarioFileError(f"not valid TOML: {str(exc).split(' (at')[0]}", path,
                                line) from None
    top_lines, svc_lines, starts = _lines(text)
    measured_lines = _measured_lines(text)
    flat: dict[str, str] = {}
    where: dict[str, int | None] = {}
    services = data.pop("service", None)
    allowed = set(links.BY_KEY)
    for key, value in data.items():
        line = top_lines.get(key)
        if key not in allowed:
            hint = (" (it belongs in a [[service]] table)" if key in links.SERVICE_BY_KEY
                    else "")
            raise ScenarioFileError(f"unknown key {key[:40]!r}{hint}; valid top-level keys: "
                                    + ", ".join(links.BY_KEY), path, line, key)
        if services is not None and key in links.FLEET_KEYS:
            raise ScenarioFileError(f"{key!r} is set per service: move it into each "
                                    "[[service]] table", path, line, key)
        flat[key], where[key] = _value(value, key, path, line), line
    if services is not None:
        if not isinstance(services, list) or not services:
            raise ScenarioFileError("'service' must be [[service]] tables", path,
                                    top_lines.get("service"))
        for i, table in enumerate(services, start=1):
            lines = svc_lines[i - 1] if i - 1 < len(svc_lines) else {}
            start = starts[i - 1] if i - 1 < len(starts) else None
            if not isinstance(table, dict):
                raise ScenarioFileError("'service' must be [[service]] tables", path,
                                        top_lines.get("service"))
            if "name" not in table:
                raise ScenarioFileError(f"[[service]] {i} has no name", path, start, "name")
            for key, value in table.items():
                line = lines.get(key, start)
                if key == "measured":  # [service.measured], written by `observe --write`
                    line = measured_lines.get(i) or line
                    m = read_measured(value, f"[[service]] {i}", path, line)
                    for k, x in measured.flat(m).items():
                        flat_key = links.service_key(i, k)
                        if flat_key in flat:
                            raise ScenarioFileError(
                                f"[[service]] {i} sets {k} and [service.measured]: keep one",
                                path, line, k)
                        flat[flat_key], where[flat_key] = links.flat_text(x), line
                    continue
                if key not in links.SERVICE_KEYS:
                    raise ScenarioFileError(
                        f"unknown key {key[:40]!r} in [[service]] {i}; valid: "
                        + ", ".join(links.SERVICE_KEYS), path, line, key)
                flat_key = links.service_key(i, key)
                flat[flat_key], where[flat_key] = _value(value, key, path, line), line
    try:
        return links.from_flat(flat)
    except ScenarioError as exc:
        line = where.get(exc.key) if exc.key else None
        raise ScenarioFileError(str(exc), path, line, exc.key) from None


def _value(value: Any, key: str, path: str, line: int | None) -> str:
    param = links.BY_KEY.get(key) or links.SERVICE_BY_KEY.get(key)
    kind = param.kind if param else "str"
    try:
        return _text(value, kind)
    except ValueError as exc:
        got = ("a table" if isinstance(value, dict) else "an array" if isinstance(value, list)
               else "true/false" if isinstance(value, bool) else "a longer number"
               if isinstance(value, int) else "a string" if isinstance(value, str)
               else "a decimal number" if isinstance(value, float) else "a date or time")
        raise ScenarioFileError(f"{key!r} must be {exc}, not {got}", path, line,
                                key) from None


def read(path: str | Path) -> str:
    """A scenario file's text (ScenarioFileError for a missing, huge or unreadable file).

    Only a regular file is read (a symbolic link to one is followed; to a device, a FIFO
    or a directory it is refused), opened without blocking and read up to MAX_BYTES + 1
    bytes: a pull request that commits a link to /dev/zero or a FIFO gets one line."""
    shown = str(path)
    try:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ScenarioFileError("no such file", shown, None) from None
    except (OSError, ValueError) as exc:
        raise ScenarioFileError(f"cannot open it ({type(exc).__name__})", shown,
                                None) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = ("a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO (named pipe)"
                    if stat.S_ISFIFO(info.st_mode) else "a device"
                    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                    else "not a regular file")
            raise ScenarioFileError(f"{what}: a scenario file must be a regular file", shown,
                                    None)
        if info.st_size > MAX_BYTES:
            raise ScenarioFileError(f"the file is over {MAX_BYTES // 1024} KiB; a scenario "
                                    "file is a few hundred lines", shown, None)
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:  # it grew while being read
            raise ScenarioFileError(f"the file is over {MAX_BYTES // 1024} KiB; a scenario "
                                    "file is a few hundred lines", shown, None)
        return b"".join(chunks).decode("utf-8")
    except ScenarioFileError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(f"cannot read it ({type(exc).__name__})", shown,
                                None) from None
    finally:
        os.close(fd)


def load(path: str | Path) -> Scenario:
    """Read and parse a scenario file (ScenarioFileError for a missing or bad file)."""
    return parse(read(path), str(path))


def line_of(text: str, keys: Sequence[str] = (), service: int | None = None) -> int:
    """The line to point at for a finding about `keys`: the first of them set in the
    `service`-th [[service]] table (1-based; None: the top level), else at the top level,
    else that table's header, else line 1."""
    top, tables, starts = _lines(text)
    if service is not None and 0 < service <= len(tables):
        for key in keys:
            if key in tables[service - 1]:
                return tables[service - 1][key]
    for key in keys:
        if key in top:
            return top[key]
    if service is not None and 0 < service <= len(starts):
        return starts[service - 1]
    return 1


def dump(s: Scenario) -> str:
    """A scenario as a scenario file (the inverse of parse for what poolwise sizes)."""
    flat = links.to_flat(s)
    top = [(k, v) for k, v in flat.items() if not links.SERVICE_KEY.fullmatch(k)]
    out = [f"{k} = {_toml(k, v)}" for k, v in top]
    for i in range(1, len(s.services) + 1 if s.named else 1):
        out += ["", "[[service]]"]
        prefix = f"s{i}_"
        own = [(k[len(prefix):], v) for k, v in flat.items() if k.startswith(prefix)]
        out += [f"{k} = {_toml(k, v)}" for k, v in own if not k.startswith("measured_")]
        kept = [(k.removeprefix("measured_"), _toml(k, v)) for k, v in own
                if k.startswith("measured_")]
        if kept:  # as `observe --write` records it
            out += ["", "[service.measured]"] + [f"{k} = {v}" for k, v in kept]
    return "\n".join(out) + "\n"


def _toml(key: str, value: str) -> str:
    param = links.BY_KEY.get(key) or links.SERVICE_BY_KEY.get(key)
    kind = param.kind if param else "str"
    if kind in ("int", "float"):
        return value
    if kind == "bool":
        return "true" if value == "1" else "false"
    if kind == "list":
        items = [v for v in value.split(",")]
        return "[" + ", ".join(_quote(v) for v in items) + "]"
    return _quote(value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------- [service.measured] (observe --write)

MEASURED_KEYS = ("busy_mean", "busy_p95", "processes", "at", "where")
_MEASURED_KINDS = {"busy_mean": "float", "busy_p95": "float", "processes": "int", "at": "str",
          "where": "str", "seconds": "float"}
_MEASURED_WORDS = {"float": "a number", "int": "a whole number", "str": "a quoted string"}


def _refuse(message: str, path: str, line: int | None, key: str | None = None) -> ScenarioError:
    return ScenarioFileError(message, path, line, key)


def _measured_typed(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "float":
        return isinstance(value, int | float)
    if kind == "int":
        return isinstance(value, int)
    return isinstance(value, str)


def read_measured(value: Any, label: str, path: str = "<scenario>",
                  line: int | None = None) -> MeasuredLoad:
    """The MeasuredLoad of one `[service.measured]` table (ScenarioFileError otherwise)."""
    if not isinstance(value, Mapping):
        raise _refuse(f"'measured' in {label} must be a table ([service.measured])", path, line,
                     "measured")
    for key in value:
        if key not in _MEASURED_KINDS:
            raise _refuse(f"unknown key {str(key)[:40]!r} in {label}'s [service.measured]; "
                         "valid: " + ", ".join(_MEASURED_KINDS), path, line, "measured")
    for key in MEASURED_KEYS:
        if key not in value:
            raise _refuse(f"{label}'s [service.measured] has no {key}", path, line, "measured")
    for key, kind in _MEASURED_KINDS.items():
        if key in value and not _measured_typed(value[key], kind):
            raise _refuse(f"measured {key} in {label} must be {_MEASURED_WORDS[kind]}", path, line,
                         "measured")
    if looks_like_credential(value["where"]):
        raise _refuse(f"measured where in {label} looks like it holds a password; it names "
                     "host:port/database only", path, line, "measured")
    m = MeasuredLoad(busy_mean=float(value["busy_mean"]), busy_p95=float(value["busy_p95"]),
                     processes=value["processes"], at=value["at"], where=value["where"],
                     seconds=float(value.get("seconds", 0.0)))
    try:
        return measured.check(m)
    except ScenarioError as exc:
        raise _refuse(f"{label}: {exc}", path, line, "measured") from None
