"""Exports users take away: the engine module, the sizing report and a PgBouncer ini.

One renderer per artefact (module, report, ini; common holds what they all say), each a pure
function: every number comes from the Recommendation (never recomputed here) and no secret
can appear, because a Scenario holds none.

Registers `python -m wizard export <scenario flags> -o PATH [--kind module|report|pgbouncer]`.
The UI calls the same pure functions for its download buttons.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from wizard import cli
from wizard.core.model import Recommendation, ScenarioError
from wizard.core.plan import recommend
from wizard.export.ini import pool_size_per_pair, render_pgbouncer_ini
from wizard.export.module import render_module
from wizard.export.report import render_report

__all__ = [
    "KINDS",
    "export",
    "pool_size_per_pair",
    "render_module",
    "render_pgbouncer_ini",
    "render_report",
    "write_atomically",
    "write_export",
]

KINDS = ("module", "report", "pgbouncer")


def export(rec: Recommendation, kind: str = "module", **kw: Any) -> str:
    """Render one kind of export; ScenarioError when the kind does not apply."""
    if kind == "module":
        return render_module(rec, **kw)
    if kind == "report":
        return render_report(rec, **kw)
    if kind == "pgbouncer":
        ini = render_pgbouncer_ini(rec, share_base=kw.get("share_base"))
        if ini is None:
            raise ScenarioError("the scenario has no PgBouncer; pick --proxy "
                                "pgbouncer-transaction or pgbouncer-session")
        return ini
    raise ScenarioError(f"unknown --kind {kind!r}; valid choices: {', '.join(KINDS)}")


# Pseudo file systems: "files" there are kernel interfaces, never an export's place.
_SPECIAL_ROOTS = ("/proc", "/sys", "/dev")


def _umask() -> int:
    mask = os.umask(0o022)  # read it (the CLI is single-threaded); restored at once
    os.umask(mask)
    return mask


def _refuse(path: Path, why: str) -> ScenarioError:
    return ScenarioError(f"-o {str(path)!r} {why}; give the path of a regular file "
                         "(or - for stdout)")


def check_target(path: Path) -> int:
    """Refuse anything but a regular file (or a new one) in a normal directory; return the
    mode the written file gets: an existing file's own, else 0666 less the umask."""
    real_parent = os.path.realpath(path.parent if str(path.parent) else ".")
    if any(real_parent == r or real_parent.startswith(r + "/") for r in _SPECIAL_ROOTS):
        root = "/" + real_parent.split("/")[1]
        raise _refuse(path, f"is under {root}, a system directory")
    try:
        st_ = os.lstat(path)
    except FileNotFoundError:
        return 0o666 & ~_umask()
    except OSError as exc:
        raise _refuse(path, f"cannot be checked ({exc.strerror})") from None
    if stat.S_ISLNK(st_.st_mode):
        raise _refuse(path, "is a symbolic link (not followed)")
    if stat.S_ISDIR(st_.st_mode):
        raise _refuse(path, "is a directory")
    if not stat.S_ISREG(st_.st_mode):
        kind = ("a character device" if stat.S_ISCHR(st_.st_mode) else
                "a block device" if stat.S_ISBLK(st_.st_mode) else
                "a named pipe" if stat.S_ISFIFO(st_.st_mode) else
                "a socket" if stat.S_ISSOCK(st_.st_mode) else "not a regular file")
        raise _refuse(path, f"is {kind}")
    if st_.st_nlink > 1:
        raise _refuse(path, "has other hard links (replacing it would split them)")
    return stat.S_IMODE(st_.st_mode)


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Write through a temp file in the same directory and rename, so a reader never sees
    half a file; the file gets `mode` (default 0666 less the umask), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask() if mode is None else mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_export(path: Path, text: str) -> None:
    """`export -o PATH`: only a regular file, atomically, with normal permissions;
    ScenarioError (one line, exit 2) for anything else or when the write fails."""
    mode = check_target(path)
    try:
        write_atomically(path, text, mode)
    except OSError as exc:
        raise _refuse(path, f"cannot be written ({exc.strerror or type(exc).__name__})") \
            from None


def _setup(p: argparse.ArgumentParser) -> None:
    cli.add_scenario_flags(p)
    p.add_argument("-o", "--output", required=True, help="file to write, or - for stdout")
    p.add_argument("--kind", default="module", help="module (db.py), report (Markdown) "
                   "or pgbouncer (ini snippet)")
    p.add_argument("--service", metavar="NAME", help="with several services: the service "
                   "whose module to write (its engines only, application_name set)")


def _run(args: argparse.Namespace) -> int:
    rec = recommend(cli.scenario_from_args(args))
    if args.service:
        rec.service(args.service)  # an unknown name is refused for every kind
    text = export(rec, args.kind, **({"service": args.service} if args.kind != "pgbouncer"
                                     else {}))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_export(Path(args.output), text)
        print(f"wrote {args.kind} to {args.output}", file=sys.stderr)
    return 0
