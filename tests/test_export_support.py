"""Scenarios and helpers shared by the export tests (no tests here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from wizard.core.model import Recommendation
from wizard.core.plan import recommend
from wizard.scenario import links

ROOT = Path(__file__).resolve().parent.parent
RUFF = ROOT / ".venv" / "bin" / "ruff"

# Every provider x proxy combination the export must get right, as CLI/share parameters.
SCENARIOS: dict[str, dict[str, str]] = {
    "direct-rds": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                   "app_instances": "4", "workers": "2"},
    "rds-iam": {"provider": "aws-rds", "instance_class": "db.r6g.large", "iam_auth": "1"},
    "aurora-rds-proxy-iam": {"provider": "aws-aurora", "instance_class": "db.r6g.large",
                             "proxy": "rds-proxy", "iam_auth": "1", "app_instances": "6"},
    "rds-proxy": {"provider": "aws-rds", "instance_class": "db.r6g.large", "proxy": "rds-proxy",
                  "app_instances": "10", "workers": "4"},
    "pgbouncer-tx-1.18": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                          "proxy": "pgbouncer-transaction", "pgbouncer_version": "1.18",
                          "app_instances": "4", "workers": "2"},
    "pgbouncer-tx-1.24": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                          "proxy": "pgbouncer-transaction", "pgbouncer_version": "1.24",
                          "app_instances": "4", "workers": "2"},
    "pgbouncer-session": {"provider": "self-hosted", "max_connections": "200",
                          "proxy": "pgbouncer-session", "pgbouncer_version": "1.18",
                          "pgbouncer_pool_size": "60", "pgbouncer_reserve_pool": "5",
                          "app_instances": "3", "workers": "2"},
    "azure-pgbouncer": {"provider": "azure-flexible", "instance_class": "D4s_v3",
                        "proxy": "azure-pgbouncer", "app_instances": "4"},
    "azure-entra": {"provider": "azure-flexible", "instance_class": "D4s_v3",
                    "iam_auth": "1"},
    "supavisor-tx": {"provider": "supabase", "instance_class": "Micro",
                     "proxy": "supavisor-transaction"},
    "neon-pooler": {"provider": "neon", "instance_class": "0.5cu", "proxy": "neon-pooler"},
    "cloudsql-auth-proxy": {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
                            "proxy": "cloudsql-auth-proxy", "network": "gcp-vpc"},
    "cloudsql-connector": {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
                           "proxy": "cloudsql-connector", "iam_auth": "1"},
    "lambda-rds-proxy": {"provider": "aws-rds", "instance_class": "db.r6g.large",
                         "proxy": "rds-proxy", "serverless_concurrency": "200"},
    "two-replicas": {"provider": "aws-rds", "instance_class": "db.r6g.large", "replicas": "2",
                     # RDS replicas need at least the primary's max_connections (hot standby).
                     "replica_instance_class": "db.r6g.xlarge,db.r6g.large",
                     "app_instances": "6", "workers": "2"},
    "pgbouncer-tx-replica": {"provider": "self-hosted", "max_connections": "300",
                             "proxy": "pgbouncer-transaction", "pgbouncer_version": "1.18",
                             "replicas": "1", "replica_max_connections": "400",
                             "pgbouncer_reserve_pool": "3", "user_db_pairs": "2",
                             "app_instances": "8", "workers": "3"},
}
# Poolers that cannot keep asyncpg's prepared statements. Neon's pooler can (PgBouncer 1.22+,
# max_prepared_statements=1000), so it is not here: the local PgBouncer 1.18 cannot stand in.
TRANSACTION_POOLER_SCENARIOS = ("pgbouncer-tx-1.18", "azure-pgbouncer", "supavisor-tx")


def rec_for(name: str) -> Recommendation:
    return recommend(links.from_flat(SCENARIOS[name]))


def load_module(path: Path, name: str) -> ModuleType:
    """Import a generated file under a unique module name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def ruff_check(source: str, filename: str = "db.py") -> subprocess.CompletedProcess:
    """`ruff check` with the repository's config, reading the file from stdin."""
    return subprocess.run([str(RUFF), "check", "--stdin-filename", filename, "-"],
                          input=source, capture_output=True, text=True, cwd=ROOT, timeout=60)
