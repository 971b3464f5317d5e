"""Human labels and "how to find this value" help texts shared by the steps."""

from __future__ import annotations

import re

from wizard.core import params
from wizard.core.model import field_name

PROVIDERS = {
    "aws-rds": "AWS RDS for PostgreSQL",
    "aws-aurora": "AWS Aurora PostgreSQL",
    "gcp-cloudsql": "Google Cloud SQL",
    "azure-flexible": "Azure Database for PostgreSQL (Flexible Server)",
    "supabase": "Supabase",
    "neon": "Neon",
    "self-hosted": "Self-hosted PostgreSQL",
}

PROXIES = {
    "none": "No proxy: the app connects straight to PostgreSQL",
    "pgbouncer-transaction": "PgBouncer, transaction mode (self-managed)",
    "pgbouncer-session": "PgBouncer, session mode (self-managed)",
    "rds-proxy": "Amazon RDS Proxy",
    "cloudsql-auth-proxy": "Cloud SQL Auth Proxy (no pooling)",
    "cloudsql-connector": "Cloud SQL Python Connector (no pooling)",
    "azure-pgbouncer": "Azure built-in PgBouncer (port 6432)",
    "supavisor-transaction": "Supavisor, transaction mode (port 6543)",
    "supavisor-session": "Supavisor, session mode (port 5432 via pooler)",
    "neon-pooler": "Neon pooler (-pooler host)",
}

NETWORK = {
    "aws-nat-gateway": "AWS NAT gateway (350 s idle cut-off)",
    "aws-nlb": "AWS Network Load Balancer",
    "azure-load-balancer": "Azure Load Balancer",
    "gcp-cloud-nat": "GCP Cloud NAT",
    "gcp-vpc": "GCP VPC firewall connection tracking",
}

SEVERITY_ICON = {"error": ":material/error:", "warning": ":material/warning:",
                 "info": ":material/info:"}

# The form's help: each parameter's hint (the parameter table's), and the form's own
# widgets (catalog or measured, the on/off toggles).
HELP = {
    **params.hints(),
    "mc_mode": "Use the catalog's documented default, or the number your server reports. "
               "A measured number always wins: run `SHOW max_connections;` in psql.",
    "serverless_on": "Lambda, Cloud Run, Cloud Functions, Vercel: each invocation is its own "
                     "process.",
    "load_on": "Size pools from your traffic (Little's law and Erlang C) instead of the "
               "budget ceiling.",
    "current_on": "Check the settings your service runs today against this budget.",
}

# Each finding's step, field and export answer live in the codes table (wizard/core/codes.py).
STEP_NAMES = {"database": "1 Database", "proxy": "2 Proxy", "topology": "3 Fleet",
              "load": "4 Load", "results": "5 Results", "export": "6 Export"}

# A message from the core names the field the visitor sees (model.field_name) instead of
# a command-line flag.
_FLAG = re.compile(r"--([a-z0-9][a-z0-9-]*)")
_CLI_HINT = re.compile(r"\s*\(see `python -m wizard[^`]*`\)")


def app_words(message: str) -> str:
    """A core message with its command-line flags named as the app's fields
    ("--replicas must be ..." -> "Read replicas must be ...")."""
    def name(m: re.Match[str]) -> str:
        return field_name(m.group(1).replace("-", "_"))

    return _FLAG.sub(name, _CLI_HINT.sub("", message))
