"""The sizing report, the PgBouncer ini snippet and the `export` CLI verb."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, SCENARIOS, rec_for
from wizard.core import findings
from wizard.core.model import ScenarioError
from wizard.export import (
    export,
    pool_size_per_pair,
    render_module,
    render_pgbouncer_ini,
    render_report,
)
from wizard.fleet.pgserver import PgServer
from wizard.scenario import links

PGBOUNCER_SCENARIOS = ("pgbouncer-tx-1.18", "pgbouncer-tx-1.24", "pgbouncer-session",
                       "pgbouncer-tx-replica")


def _budget_rows(report: str) -> dict[str, dict[str, str]]:
    lines = report.split("## Budget per endpoint")[1].strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_report_budget_table_matches_the_recommendation(name: str) -> None:
    rec = rec_for(name)
    rows = _budget_rows(render_report(rec))
    assert list(rows) == [e.role for e in rec.endpoints]
    for e in rec.endpoints:
        row = rows[e.role]
        assert int(row["max_connections"].split()[0].replace(",", "")) == e.max_connections
        assert ("estimate" in row["max_connections"]) is e.max_connections_estimated
        assert int(row["reserved"]) == sum(r.count for r in e.reserves)
        assert int(row["usable"]) == e.max_connections - int(row["reserved"])
        assert int(row["engines"]) == e.clients
        assert (int(row["pool_size"]), int(row["max_overflow"])) == (e.pool_size, e.max_overflow)
        assert int(row["worst case"]) == e.worst_case
        assert int(row["headroom"]) == int(row["usable"]) - int(row["worst case"])


def test_report_engines_follow_the_fleet() -> None:
    # 6 instances + 25% surge (rounded up: 2) = 8 at peak, x 2 workers = 16 engines on the
    # primary and on each replica (every instance reads).
    rows = _budget_rows(render_report(rec_for("two-replicas")))
    assert {r["engines"] for r in rows.values()} == {"16"}
    # 4 instances + 1 surge = 5 at peak, x 2 workers = 10 engines.
    rows = _budget_rows(render_report(rec_for("direct-rds")))
    assert rows["primary"]["engines"] == "10"
    # Without a proxy the worst case is every engine at pool_size + max_overflow.
    r = rows["primary"]
    assert int(r["worst case"]) == 10 * (int(r["pool_size"]) + int(r["max_overflow"]))


@pytest.mark.parametrize("name", ["direct-rds", "pgbouncer-tx-1.18", "lambda-rds-proxy"])
def test_report_has_settings_warnings_sources_and_link(name: str) -> None:
    rec = rec_for(name)
    report = render_report(rec, share_base="https://pw.example/")
    assert links.share_url(rec.scenario, "https://pw.example/") in report
    for w in rec.warnings:
        assert f"**{w.severity}** `{w.code}`: {findings.said(w, rec)}" in report
        assert w.fix in report
    for src in rec.sources:
        assert src.url in report
    for rule in rec.services[0].rec.rules:
        assert f"| {rule.name} | {rule.formula} | {rule.per_process} | {rule.fleet_total} |" \
            in report
    g = rec.services[0].rec.engine("primary")
    assert f"| poolclass | `{g.poolclass}` |" in report
    if g.poolclass != "NullPool":
        assert f"| pool_size | `{g.pool_size}` | {g.reasons['pool_size']} |" in report
    for r in rec.endpoint("primary").reserves:
        assert f"reserved {r.count} for {r.name}" in report


def _ini_text(name: str) -> str:
    text = render_pgbouncer_ini(rec_for(name))
    assert text is not None
    return text


def _ini(name: str) -> configparser.ConfigParser:
    text = render_pgbouncer_ini(rec_for(name))
    assert text is not None
    cp = configparser.ConfigParser(inline_comment_prefixes=None, comment_prefixes=(";",))
    cp.read_string(text)
    return cp


@pytest.mark.parametrize("name", PGBOUNCER_SCENARIOS)
def test_ini_consistent_with_the_recommendation(name: str) -> None:
    rec = rec_for(name)
    s = rec.scenario
    b = _ini(name)["pgbouncer"]
    pairs = s.proxy_settings.user_db_pairs
    dps, reserve = int(b["default_pool_size"]), int(b["reserve_pool_size"])
    primary = rec.endpoint("primary")
    # reserve_pool_size is per pool: one URL reaches one pool, the pairs add up.
    assert dps + reserve == primary.server_side.limit
    assert (dps + reserve) * pairs == primary.server_side.total <= primary.usable
    assert f"= {(dps + reserve) * pairs} <= {primary.usable} usable" in _ini_text(name)
    assert reserve == s.proxy_settings.reserve_pool
    clients = sum(e.client_side.worst_case for e in rec.endpoints)
    assert int(b["max_client_conn"]) >= clients
    assert b["pool_mode"] == ("session" if s.proxy == "pgbouncer-session" else "transaction")
    assert int(b["server_idle_timeout"]) <= rec.services[0].rec.engine("primary").pool_recycle
    assert (dps, reserve) == pool_size_per_pair(rec)


def test_ini_numbers_from_independent_reasoning() -> None:
    # The user typed default_pool_size 60 and reserve 5; 200 - 7 reserved = 193 usable fits.
    b = _ini("pgbouncer-session")["pgbouncer"]
    assert (b["default_pool_size"], b["reserve_pool_size"]) == ("60", "5")
    # 1.18 cannot track prepared statements; 1.24 defaults to 200.
    assert _ini("pgbouncer-tx-1.18")["pgbouncer"]["max_prepared_statements"] == "0"
    assert _ini("pgbouncer-tx-1.24")["pgbouncer"]["max_prepared_statements"] == "200"
    # Two user/db pairs share the primary's server pool; the replica gets its own entry.
    cp = _ini("pgbouncer-tx-replica")
    assert "app_replica_1" in cp["databases"]
    rec = rec_for("pgbouncer-tx-replica")
    replica = rec.endpoint("replica-1")
    per = int(re.search(r"pool_size=(\d+)", cp["databases"]["app_replica_1"]).group(1))
    assert (per + 3) * 2 <= replica.usable


@pytest.mark.pgbouncer
def test_ini_settings_start_a_real_pgbouncer(pgbouncer_factory, pg: PgServer) -> None:
    b = _ini("pgbouncer-tx-replica")["pgbouncer"]
    keep = ("default_pool_size", "reserve_pool_size", "max_client_conn", "server_idle_timeout",
            "server_lifetime", "client_idle_timeout")  # 1.18 has no max_prepared_statements
    bouncer = pgbouncer_factory(pool_mode=b["pool_mode"], **{k: b[k] for k in keep})
    config = {row["key"]: row["value"] for row in bouncer.admin("SHOW CONFIG")}
    for k in keep:
        assert config[k] == b[k]
    assert config["pool_mode"] == "transaction"


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - set(PGBOUNCER_SCENARIOS)))
def test_no_ini_without_self_managed_pgbouncer(name: str) -> None:
    rec = rec_for(name)
    assert render_pgbouncer_ini(rec) is None
    with pytest.raises(ScenarioError, match="no PgBouncer"):
        export(rec, "pgbouncer")


def _flags(flat: dict[str, str]) -> list[str]:
    out = []
    for k, v in flat.items():
        out += [f"--{k.replace('_', '-')}"] + ([] if k == "iam_auth" else [v])
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wizard", "export", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_writes_each_kind(tmp_path: Path) -> None:
    name = "pgbouncer-tx-1.18"
    rec = rec_for(name)
    flags = _flags(SCENARIOS[name])
    target = tmp_path / "out" / "db.py"  # parent created on the way
    res = _cli(*flags, "-o", str(target))
    assert res.returncode == 0, res.stderr
    assert target.read_text() == render_module(rec)
    res = _cli(*flags, "--kind", "report", "-o", "-")
    assert res.returncode == 0 and res.stdout == render_report(rec)
    res = _cli(*flags, "--kind", "pgbouncer", "-o", str(tmp_path / "pgbouncer.ini"))
    assert res.returncode == 0
    assert (tmp_path / "pgbouncer.ini").read_text() == render_pgbouncer_ini(rec)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["db.py"]  # no temp file left


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    flags = _flags(SCENARIOS["direct-rds"])
    res = _cli(*flags, "--kind", "pgbouncer", "-o", str(tmp_path / "x.ini"))
    assert res.returncode == 2
    assert "no PgBouncer" in res.stderr and "pgbouncer-transaction" in res.stderr
    assert not (tmp_path / "x.ini").exists()
    res = _cli(*flags, "--kind", "yaml", "-o", "-")
    assert res.returncode == 2 and "module, report, pgbouncer" in res.stderr
    res = _cli(*flags)  # -o is required
    assert res.returncode == 2 and "output" in res.stderr
