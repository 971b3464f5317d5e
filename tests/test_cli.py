"""The `python -m wizard` CLI as a user runs it: real subprocesses, real output."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wizard", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_catalog_json_lists_documented_azure_values():
    out = run("catalog", "--provider", "azure-flexible", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["instance_class"]: r for r in json.loads(out.stdout)}
    assert rows["B2s"]["max_connections"] == 429
    assert rows["B2s"]["vcpu"] == 2 and rows["B2s"]["memory_gib"] == 4
    assert rows["B2s"]["source"]["url"].startswith("https://learn.microsoft.com/")


def test_catalog_text_marks_rds_estimates():
    out = run("catalog", "--provider", "aws-rds")
    assert out.returncode == 0
    assert "db.t3.medium" in out.stdout and "(estimate)" in out.stdout
    assert "SHOW max_connections" in out.stdout


def test_recommend_json_shape():
    out = run("recommend", "--provider", "aws-rds", "--instance-class", "db.r6g.large",
              "--replicas", "1", "--replica-instance-class", "db.r6g.xlarge",
              "--app-instances", "4", "--max-app-instances", "8", "--workers", "3",
              "--rps", "50", "--hold-ms", "20", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [e["role"] for e in data["endpoints"]] == ["primary", "replica-1"]
    for ep in data["endpoints"]:
        for key in ("role", "instance_class", "max_connections", "max_connections_source",
                    "reserved", "usable", "processes", "pool_size", "max_overflow",
                    "worst_case"):
            assert key in ep
        assert ep["worst_case"] <= ep["usable"]
        assert ep["processes"] == (8 + 2) * 3  # 8 at max + 25% surge, 3 workers
    assert data["endpoints"][1]["max_connections"] > data["endpoints"][0]["max_connections"]
    for eng in data["engines"]:
        for key in ("endpoint", "poolclass", "pool_size", "max_overflow", "pool_timeout",
                    "pool_recycle", "pool_pre_ping", "connect_args"):
            assert key in eng
    assert all({"code", "severity", "message"} <= set(w) for w in data["warnings"])
    assert any(s["url"].startswith("https://docs.aws.amazon.com/") for s in data["sources"])


def test_recommend_text_explains_the_budget():
    out = run("recommend", "--provider", "azure-flexible", "--instance-class", "B2s",
              "--app-instances", "2")
    assert out.returncode == 0, out.stderr
    assert "429 max_connections - 10 superuser_reserved_connections" in out.stdout
    assert "usable" in out.stdout and "Sources:" in out.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["--provider", "oracle"], "oracle"),
    (["--provider", "aws-rds", "--instance-class", "db.x9.huge"], "db.x9.huge"),
    (["--provider", "aws-rds", "--workers", "0"], "workers"),
    (["--provider", "aws-rds", "--app-instances", "-3"], "--app-instances: App instances"),
    (["--provider", "aws-rds", "--workers", "two"], "--workers"),
    (["--provider", "aws-rds", "--split", "1.5"], "split"),
    (["--provider", "aws-rds", "--split", "-0.1"], "split"),
    (["--provider", "aws-rds", "--proxy", "haproxy"], "haproxy"),
    (["--provider", "aws-rds", "--proxy", "azure-pgbouncer"], "azure-pgbouncer"),
    (["--provider", "aws-rds", "--rps", "10"], "--hold-ms"),
    (["--provider", "aws-rds", "--max-app-instances", "1", "--app-instances", "3"],
     "--max-app-instances: the autoscaling maximum"),
    (["--provider", "gcp-cloudsql", "--instance-class", "db-f1-micro", "--app-instances", "30",
      "--workers", "4"], "cannot fit"),
    (["--provider", "aws-rds", "--bogus-flag", "1"], "bogus"),
])
def test_bad_input_is_one_clear_line(args, needle):
    out = run("recommend", *args)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]
    assert out.stdout == ""


def test_unknown_class_names_valid_choices():
    out = run("recommend", "--provider", "azure-flexible", "--instance-class", "B3")
    assert "valid choices" in out.stderr and "B2s" in out.stderr


def test_azure_builtin_pgbouncer_is_refused_on_burstable():
    # Azure: the built-in PgBouncer exists only on General Purpose and Memory Optimized.
    out = run("recommend", "--provider", "azure-flexible", "--instance-class", "B2s",
              "--proxy", "azure-pgbouncer")
    assert out.returncode == 2 and "Burstable" in out.stderr
    ok = run("recommend", "--provider", "azure-flexible", "--instance-class", "D2s_v3",
             "--proxy", "azure-pgbouncer")
    assert ok.returncode == 0, ok.stderr


# A verb runs in a process that imports only that verb's module: the pure ones never pay for
# the database driver, the async engine or the web stack.
HEAVY = ("asyncpg", "sqlalchemy", "streamlit", "altair", "pandas")
_LOADED = """
import runpy, sys
sys.argv = ["wizard", *sys.argv[1:]]
try:
    runpy.run_module("wizard", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("LOADED", " ".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def _loaded(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    out = subprocess.run([sys.executable, "-c", _LOADED.format(heavy=HEAVY), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("LOADED"))
    return out, set(line.split()[1:])


GOLDEN = "tests/golden/05_supabase_two_services.toml"


@pytest.mark.parametrize("args", [
    ("recommend", "--scenario", GOLDEN, "--json"),
    ("recommend", "--provider", "aws-rds", "--instance-class", "db.r6g.large"),
    ("export", "--scenario", GOLDEN, "--service", "api", "-o", "-"),
    ("export", "--scenario", "tests/golden/07_selfhosted_session_estate.toml", "--kind",
     "pgbouncer", "-o", "-"),
    ("check", "--scenario", GOLDEN, "--format", "github"),
    ("catalog", "--provider", "aws-rds"),
    ("recommend", "--help"),
    ("--help",),
])
def test_pure_verbs_never_import_the_driver_the_engine_or_the_web_stack(args):
    out, loaded = _loaded(*args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()  # the verb really ran
    assert loaded == set(), f"{args[0]} imported {sorted(loaded)}"


def test_the_import_probe_sees_a_heavy_verb():
    """The probe above can fail: the live verb does import the driver."""
    out, loaded = _loaded("live", "--help")
    assert out.returncode == 0, out.stderr
    assert {"asyncpg", "sqlalchemy"} <= loaded


def test_every_verb_in_the_table_sets_up_and_lists_itself():
    from wizard import cli

    parser = cli.build_parser()  # every verb's module imported and set up
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli.VERBS)
    for name in cli.VERBS:
        assert callable(sub.choices[name].get_default("run")), name
    # Only the chosen verb is set up when the command line names one.
    chosen = cli.build_parser(["recommend", "--json"])
    sub = next(a for a in chosen._actions if isinstance(a, argparse._SubParsersAction))
    assert callable(sub.choices["recommend"].get_default("run"))
    assert sub.choices["live"].get_default("run") is None
