"""Every finding code in one table: its severity, a title, the wizard step and field that fix
it, the scenario keys a CI annotation points at, and whether the plan judges it.

The findings (findings.py) take their severity from here; the app (ui/results.py) its "Fix it
in ..." button; `poolwise check` (guard.py) the line an annotation points at. Pure: standard
library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wizard.core.results import Finding


@dataclass(frozen=True)
class Code:
    """One finding code.

    `severity` is the one it carries; `softer` a lower one it carries where the limit is
    enforced for the user (RDS Proxy stops at MaxConnectionsPercent). `step` is the wizard
    step that fixes it (None: no step does; the export or the user's own code) and `field`
    the widget of that step the app scrolls to. `keys` are the scenario keys whose line a
    CI annotation points at (the first one the service sets). `plan`: with several
    services, the plan judges it with every service's declared settings at once
    (findings.plan_failures) instead of each service alone. `answered_by`: the connect_args
    key with which the exported module already does what the fix asks. `scope`: "service"
    (it holds for the services it names) or "endpoint" (it holds for the endpoint and every
    service on it; `services` then names the ones to change, and its message says why).
    """

    severity: str
    title: str
    step: str | None = None
    field: str | None = None
    keys: tuple[str, ...] = ()
    plan: bool = False
    answered_by: str | None = None
    softer: str | None = None
    scope: str = "service"

    @property
    def severities(self) -> tuple[str, ...]:
        return (self.severity,) + ((self.softer,) if self.softer else ())


_CURRENT = ("current_pool_size", "current_max_overflow", "current_poolclass")

CODES: dict[str, Code] = {
    # The pools run today against the budget.
    "UNBOUNDED_OVERFLOW": Code(
        "error", "max_overflow=-1 opens connections without limit",
        keys=("current_max_overflow", "current_pool_size"), plan=True),
    "WORST_CASE_OVER_MAX": Code(
        "error", "Today's pools exceed the usable connections at the peak", "export",
        keys=_CURRENT, plan=True),
    "DEFAULTS_OVER_MAX": Code(
        "warning", "SQLAlchemy's default pool exceeds the usable connections at the peak",
        "export"),
    "CURRENT_OVER_CLIENT_LIMIT": Code(
        "error", "Today's pools exceed the proxy's client limit", keys=_CURRENT),
    "SERVICES_OVER_CLIENT_LIMIT": Code(
        "error", "The services together exceed the pooler's client limit", keys=_CURRENT,
        scope="endpoint"),
    "SERVICES_OVER_USABLE": Code(
        "error", "The services together exceed the usable connections", keys=_CURRENT,
        scope="endpoint"),
    "CANNOT_FIT": Code(
        "error", "Not even one connection per engine fits",
        keys=("max_app_instances", "serverless_concurrency", "app_instances")),
    # The database.
    "ESTIMATED_MAX_CONNECTIONS": Code(
        "info", "max_connections is an estimate", "database", "mc_mode"),
    "REPLICA_SMALLER": Code(
        "warning", "A replica is smaller than the primary", "topology", "replicas"),
    "PROVIDER_SERVICES_RESERVE": Code(
        "info", "The provider's own services hold connections"),
    "DB_CORES_BUSY": Code(
        "warning", "The load keeps more connections busy than the database's vCPUs execute"),
    "DB_CORES_WORST_CASE": Code(
        "info", "More connections may be active than the database's vCPUs execute"),
    # The proxy.
    "SERVERLESS_NO_PROXY": Code(
        "warning", "Serverless without a pooler", "proxy", "proxy"),
    "PREPARED_STATEMENTS_TXN_POOLER": Code(
        "warning", "Prepared statements behind a transaction pooler", "proxy", "proxy",
        keys=("current_statement_cache_size", "proxy"), answered_by="statement_cache_size"),
    "PROXY_SERVER_POOL_OVER_MAX": Code(
        "error", "The proxy's server pool exceeds the usable connections", "proxy", "proxy",
        keys=("pgbouncer_pool_size", "rds_proxy_max_connections_percent", "proxy"),
        softer="warning"),
    "PROXY_SERVER_POOL_BELOW_LOAD": Code(
        "warning", "The proxy's server pool is below the load's need", "proxy", "proxy"),
    "PROXY_CLIENT_LIMIT": Code(
        "error", "The fleet exceeds the proxy's client limit", "proxy", "proxy",
        keys=("pgbouncer_max_client_conn", "proxy")),
    "LARGE_POOL_BEHIND_PROXY": Code(
        "warning", "A large client pool behind a proxy", "export"),
    "RDS_PROXY_PINNING": Code("info", "RDS Proxy pins sessions", "export"),
    "RDS_PROXY_WRITER_ONLY": Code("info", "RDS Proxy serves only the writer"),
    "NULLPOOL_INTROSPECTION": Code(
        "info", "NullPool repeats asyncpg's introspection", "export"),
    # The fleet.
    "SERVERLESS_QUEUEPOOL": Code(
        "error", "A pooled engine in serverless code", "export",
        keys=("current_poolclass", "current_pool_size")),
    "DEPLOY_SURGE_NOT_COUNTED": Code(
        "warning", "No deploy surge counted", "topology", "deploy_surge_percent"),
    "WORKERS_COUNTED": Code(
        "info", "One worker process per instance counted", "topology", "workers"),
    # The load.
    "NO_LOAD": Code("info", "Sized without a load", "load", "load_on"),
    "LOAD_OVER_BUDGET": Code(
        "error", "The load exceeds what the engine may open", "load", "rps",
        keys=("rps", "hold_ms")),
    "BUDGET_BELOW_LOAD": Code(
        "error", "The budget is below the load's need", "load", "rps",
        keys=("rps", "hold_ms", "p95_hold_ms")),
    # The engine's settings.
    "RECYCLE_MISSING": Code("warning", "pool_recycle is off", "export"),
    "RECYCLE_ABOVE_IDLE": Code(
        "warning", "pool_recycle is above an idle cut-off", "export"),
    "RECYCLE_TOO_SHORT": Code("warning", "pool_recycle is too short", "export"),
    "IAM_TOKEN_IN_URL": Code("error", "An IAM token in the URL", "export"),
    "IAM_TOKEN_PER_CONNECTION": Code(
        "info", "IAM tokens need one per connection", "export"),
}


def finding(code: str, message: str, fix: str, *, endpoint: str | None = None,
            facts: dict[str, Any] | None = None, severity: str | None = None,
            service: str | None = None, services: tuple[str, ...] = ()) -> Finding:
    """A Finding of a code in the table, with the table's severity (or its softer one)."""
    entry = CODES[code]
    sev = severity or entry.severity
    if sev not in entry.severities:
        raise ValueError(f"{code} is never {sev!r}")
    return Finding(code, sev, message, fix, endpoint, service, services, dict(facts or {}))
