"""Exports users take away: the engine module, the sizing report and a PgBouncer ini.

Registers `python -m wizard export <scenario flags> -o PATH [--kind module|report|pgbouncer]`.
The UI calls the same pure functions for its download buttons.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from wizard import cli
from wizard.export.render import (
    KINDS,
    export,
    pool_size_per_pair,
    render_module,
    render_pgbouncer_ini,
    render_report,
)
from wizard.sizing import recommend

__all__ = [
    "KINDS",
    "export",
    "pool_size_per_pair",
    "render_module",
    "render_pgbouncer_ini",
    "render_report",
    "write_atomically",
]


def write_atomically(path: Path, text: str) -> None:
    """Write through a temp file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _setup(p: argparse.ArgumentParser) -> None:
    cli.add_scenario_flags(p)
    p.add_argument("-o", "--output", required=True, help="file to write, or - for stdout")
    p.add_argument("--kind", default="module", help="module (db.py), report (Markdown) "
                   "or pgbouncer (ini snippet)")


def _run(args: argparse.Namespace) -> int:
    text = export(recommend(cli.scenario_from_args(args)), args.kind)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_atomically(Path(args.output), text)
        print(f"wrote {args.kind} to {args.output}", file=sys.stderr)
    return 0


cli.VERBS["export"] = (_setup, _run)
