"""Human labels and "how to find this value" help texts shared by the steps."""

from __future__ import annotations

import re

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

HELP = {
    "provider": "Where your PostgreSQL runs. It decides the default max_connections, the "
                "reserved connections and which proxies exist.",
    "mc_mode": "Use the catalog's documented default, or the number your server reports. "
               "A measured number always wins: run `SHOW max_connections;` in psql.",
    "instance_class": "Type to search. The class decides the default max_connections. Find it "
                      "in your provider's console (RDS: 'Class'; Cloud SQL: machine type; Azure: "
                      "'Compute + storage').",
    "max_connections": "Run `SHOW max_connections;` against the server (psql, any SQL client). "
                       "A custom parameter group or flag overrides the catalog default.",
    "pg_version": "`SHOW server_version;`. PostgreSQL 16+ adds reserved_connections.",
    "proxy": "What sits between the app and PostgreSQL. Only proxies available for your "
             "provider are listed.",
    "pgbouncer_version": "`SHOW VERSION;` on the PgBouncer admin console, or "
                         "`pgbouncer --version`. 1.21+ keeps prepared statements in "
                         "transaction mode.",
    "pgbouncer_pool_size": "default_pool_size in pgbouncer.ini (Azure: the pgbouncer."
                           "default_pool_size server parameter). Empty = the default.",
    "pgbouncer_reserve_pool": "reserve_pool_size in pgbouncer.ini (0 = off).",
    "pgbouncer_max_client_conn": "max_client_conn in pgbouncer.ini / the pooler's client limit. "
                                 "Empty = the documented default.",
    "max_prepared_statements": "max_prepared_statements in pgbouncer.ini (1.21+; 200 by default "
                               "since 1.24). Empty = the version's default.",
    "user_db_pairs": "How many distinct (database user, database) pairs go through the pooler: "
                     "each gets its own server pool.",
    "rds_proxy_max_connections_percent": "Proxy > Target group > Connection pool maximum "
                                         "connections (MaxConnectionsPercent).",
    "network": "Anything that cuts idle TCP connections between the app and the database "
               "(NAT gateways, load balancers). pool_recycle is set below the shortest.",
    "iam_auth": "You connect with short-lived IAM / Entra ID tokens instead of a password.",
    "pre_ping": "On by default: each checkout first runs one pooled round trip, so a connection "
                "a restart, failover or Neon's scale to zero closed is replaced instead of "
                "failing the request. Off saves that round trip per checkout.",
    "serverless_on": "Lambda, Cloud Run, Cloud Functions, Vercel: each invocation is its own "
                     "process.",
    "serverless_concurrency": "Peak concurrent invocations: Lambda reserved concurrency, or "
                              "Cloud Run max instances x concurrency.",
    "app_instances": "Pods / tasks / VMs running the service today (kubectl get deploy, ECS "
                     "desired count).",
    "max_app_instances": "Use the maximum of your autoscaling range (HPA maxReplicas, ECS max "
                         "capacity). Empty = no autoscaling.",
    "deploy_surge_percent": "Extra instances during a rolling deploy: Kubernetes maxSurge "
                            "(default 25%), ECS maximumPercent - 100.",
    "workers": "Worker processes per instance: WEB_CONCURRENCY, `gunicorn -w` or "
               "`uvicorn --workers`. Each process has its own engine and pool.",
    "engines": "create_async_engine calls per process for this database (a second engine for "
               "background jobs counts twice).",
    "app_vcpus": "vCPUs per app instance (the Prisma rule of thumb uses it).",
    "replicas": "Read replicas your app reads from. Each has its own max_connections.",
    "replica_class": "The replica's own instance class (it may be smaller than the primary).",
    "replica_mc": "SHOW max_connections on the replica, if you measured it.",
    "replica_readers": "App instances that open a read engine to this replica. Empty = all.",
    "superuser_reserved": "SHOW superuser_reserved_connections. Empty = the provider's default.",
    "provider_reserved": "Connections the provider keeps for itself. Empty = documented value.",
    "admin_reserve": "Keep some for psql, monitoring agents and dashboards.",
    "migrations_reserve": "Connections your migration job (alembic upgrade) needs while the "
                          "fleet runs.",
    "replication_reserve": "Replication slots / CDC (Debezium, DMS) connections on the primary.",
    "split": "Share of each engine's budget kept open as pool_size; the rest is max_overflow "
             "for bursts.",
    "load_on": "Size pools from your traffic (Little's law and Erlang C) instead of the "
               "budget ceiling.",
    "rps": "Requests per second per app instance at peak (your APM, or load balancer "
           "requests / instances).",
    "hold_ms": "Mean time a request holds a connection (checkout to return), in ms. "
               "Roughly the DB time per request from your APM.",
    "p95_hold_ms": "95th percentile of the hold time; sizes max_overflow for bursts.",
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
