"""`python -m wizard live` as a user runs it: a subprocess against the real servers.

Every test checks that the password never reaches stdout or stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.fleet.pgserver import Bouncer, PgServer, free_port

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[1]


def live(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POOLWISE_LIVE_")}
    return subprocess.run([sys.executable, "-m", "wizard", "live", *args], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


def url(s: PgServer | Bouncer, password: str | None = None, database: str | None = None) -> str:
    auth = s.user + (f":{password}" if password else "")
    return f"postgresql://{auth}@{s.host}:{s.port}/{database or s.database}"


def clean(proc: subprocess.CompletedProcess, secret: str) -> None:
    assert secret not in proc.stdout and secret not in proc.stderr


def test_text_report(pg: PgServer) -> None:
    proc = live(["--url", url(pg), "--pre-ping", "5"], {"POOLWISE_LIVE_PASSWORD": pg.password})
    assert proc.returncode == 0, proc.stderr
    assert "max_connections    60" in proc.stdout
    assert "--max-connections 60 --superuser-reserved 3" in proc.stdout
    assert "pre-ping (n=5)" in proc.stdout
    assert "[readings] ..." in proc.stderr  # progress per stage
    clean(proc, pg.password)


def test_json_with_exhaustion_and_password_env_name(pg: PgServer) -> None:
    proc = live(["--url", url(pg), "--password-env", "MY_DB_PW", "--pre-ping", "3",
                 "--exhaustion", "--pool-size", "1", "--max-overflow", "1",
                 "--pool-timeout", "0.5", "--json"], {"MY_DB_PW": pg.password})
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["readings"]["max_connections"] == 60
    assert d["overrides"]["max_connections"] == "60"
    assert d["exhaustion_plan"]["holders"] == 3
    assert d["exhaustion"]["timed_out"] is True and d["exhaustion"]["opened"] == 2
    # The count is shown before the test runs.
    assert "exhaustion test: opens 3 connections" in proc.stderr
    clean(proc, pg.password)


def test_password_in_url_warns_and_is_never_printed(pg: PgServer) -> None:
    proc = live(["--url", url(pg, password=pg.password), "--pre-ping", "0"])
    assert proc.returncode == 0, proc.stderr
    assert "shell history" in proc.stderr
    clean(proc, pg.password)


def test_scenario_flags_resize_with_measured_values(pg: PgServer) -> None:
    proc = live(["--url", url(pg), "--pre-ping", "0", "--provider", "self-hosted",
                 "--app-instances", "2", "--json"], {"POOLWISE_LIVE_PASSWORD": pg.password})
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    primary = d["recommendation"]["endpoints"][0]
    assert primary["max_connections"] == 60
    assert primary["max_connections_source"] == d["source"]
    assert d["source"].startswith("measured ")
    clean(proc, pg.password)


def test_wrong_password_exits_4_with_fix(pg: PgServer) -> None:
    wrong = "Wrong-cli-Pw-123"
    proc = live(["--url", url(pg, password=wrong), "--pre-ping", "0"])
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines()[-1].startswith("error: The server at")
    assert "Fix:" in proc.stderr
    clean(proc, wrong)


@pytest.mark.pgbouncer
def test_pooler_detected_in_text(pgbouncer: Bouncer) -> None:
    proc = live(["--url", url(pgbouncer), "--pre-ping", "0"],
                {"POOLWISE_LIVE_PASSWORD": pgbouncer.password})
    assert proc.returncode == 0, proc.stderr
    assert "transaction-pooler" in proc.stdout and "pgbouncer-transaction" in proc.stdout
    clean(proc, pgbouncer.password)


def test_bad_input_exits_2() -> None:
    proc = live(["--url", "postgresql://u:Bad-Pw-77@h:notaport/db"])
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    clean(proc, "Bad-Pw-77")
    assert live(["--url", "postgresql://u@h/db", "--pre-ping", "x"]).returncode == 2


def test_refused_exhaustion_exits_4(pg: PgServer) -> None:
    proc = live(["--url", url(pg), "--pre-ping", "0", "--exhaustion", "--pool-size", "45",
                 "--max-overflow", "10"], {"POOLWISE_LIVE_PASSWORD": pg.password})
    assert proc.returncode == 4
    assert "opens 56 connections" in proc.stderr and "refused" in proc.stderr
    clean(proc, pg.password)


def test_operator_disable_and_closed_port() -> None:
    target = f"postgresql://u@127.0.0.1:{free_port()}/d"
    proc = live(["--url", target], {"POOLWISE_LIVE_DISABLED": "1"})
    assert proc.returncode == 4 and "switched off" in proc.stderr
    proc = live(["--url", target, "--connect-timeout", "2"])
    assert proc.returncode == 4 and "connection refused" in proc.stderr
