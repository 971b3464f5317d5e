"""Typed inputs and outputs of poolwise: one Scenario (the database, its path and the
services sharing it) in, one Recommendation out. The parts of a Recommendation (endpoint
budgets, engine settings, findings, ...) are in wizard/core/results.py, the errors in
wizard/core/errors.py.

Everything downstream (CLI, charts, export, UI, live check) reads these objects;
none of them recompute sizing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from wizard.core import params

# The errors and the parts of a Recommendation, importable from here as before the split
# (model.py was split by job under 600 lines; importers need not change).
from wizard.core.errors import ScenarioError, SizingError  # noqa: F401
from wizard.core.results import (  # noqa: F401
    Cutoff,
    EndpointBudget,
    EngineSettings,
    Finding,
    ProxySide,
    ReserveItem,
    RuleComparison,
    ServiceShare,
    Source,
    Step,
    reason_text,
)

PROVIDERS: tuple[str, ...] = (
    "aws-rds",
    "aws-aurora",
    "gcp-cloudsql",
    "azure-flexible",
    "supabase",
    "neon",
    "self-hosted",
)

PROXIES: tuple[str, ...] = (
    "none",
    "pgbouncer-transaction",
    "pgbouncer-session",
    "rds-proxy",
    "cloudsql-auth-proxy",
    "cloudsql-connector",
    "azure-pgbouncer",
    "supavisor-transaction",
    "supavisor-session",
    "neon-pooler",
)

# Proxies that hand a server connection to a client only for one transaction.
TRANSACTION_POOLERS: frozenset[str] = frozenset(
    {"pgbouncer-transaction", "azure-pgbouncer", "supavisor-transaction", "neon-pooler"}
)
# Proxies that pin a server connection to a client connection for the session.
SESSION_POOLERS: frozenset[str] = frozenset({"pgbouncer-session", "supavisor-session"})
# Proxies that multiplex many client connections onto fewer server connections.
POOLERS: frozenset[str] = TRANSACTION_POOLERS | {
    "pgbouncer-session", "supavisor-session", "rds-proxy"}

NETWORK_CUTOFFS: tuple[str, ...] = (
    "aws-nat-gateway",
    "aws-nlb",
    "azure-load-balancer",
    "gcp-cloud-nat",
    "gcp-vpc",
)

SEVERITIES: tuple[str, ...] = ("error", "warning", "info")

# What a service is: web (requests), worker (queue consumers), cron (short scheduled jobs and
# migrations: a fixed small share), serverless (functions: one connection per invocation).
SERVICE_KINDS: tuple[str, ...] = ("web", "worker", "cron", "serverless")

# Each scenario parameter's name as the app's form shows it: core messages name fields by it
# (the parameter table's labels, and "services").
FIELD_LABELS: dict[str, str] = {**params.labels(), "services": "Services"}


def field_name(key: str) -> str:
    """A parameter's name as the app's form shows it (else the key spelled out)."""
    return FIELD_LABELS.get(key, key.replace("_", " "))


@dataclass(frozen=True)
class Replica:
    """A read replica: its own class (or measured max_connections) and who reads from it.

    `reader_instances` is how many app instances (at the autoscaling maximum) open a
    read engine to it; None means every instance.
    """

    instance_class: str | None = None
    max_connections: int | None = None
    reader_instances: int | None = None
    region: str = ""


@dataclass(frozen=True)
class Reserves:
    """Connections kept out of the application's budget on every endpoint.

    None for superuser/provider means "the provider's documented default".
    """

    superuser: int | None = None
    provider: int | None = None
    admin: int = 3
    migrations: int = 1
    replication_slots: int = 0


@dataclass(frozen=True)
class ProxySettings:
    """Settings of the proxy in the path; None means the proxy's documented default."""

    pgbouncer_version: str | None = None
    pool_size: int | None = None
    reserve_pool: int = 0
    max_client_conn: int | None = None
    max_prepared_statements: int | None = None
    user_db_pairs: int = 1
    rds_proxy_max_connections_percent: int = 100
    max_db_connections: int | None = None  # PgBouncer's cap per database (None/0: none)


@dataclass(frozen=True)
class MeasuredLoad:
    """A service's load as `poolwise observe` measured it in pg_stat_activity: connections
    of its application_name in state active, sampled, over the processes running then."""

    busy_mean: float  # mean busy connections, the whole service
    busy_p95: float
    processes: int  # app processes running when it was measured
    at: str  # when (UTC, ISO 8601)
    where: str  # host:port/database, never a password
    seconds: float = 0.0  # observed for
    guess_busy: float | None = None  # busy per process the rps x hold guess gives, if given
    guess: Load | None = None  # the rps x hold time given beside it (links and files keep it)


@dataclass(frozen=True)
class Load:
    """Offered load per app instance: requests/s and how long each holds a connection.

    With `measured`, rps, hold_ms and p95_hold_ms are derived from the measurement
    (wizard/core/measured.py), so every formula downstream reads the measured load."""

    rps: float
    hold_ms: float
    p95_hold_ms: float | None = None
    measured: MeasuredLoad | None = None

    @property
    def given(self) -> Load | None:
        """The rps x hold time as given: this load, or beside a measurement the guess (None
        when only the measurement was given). Links, files and the form keep this one."""
        return self if self.measured is None else self.measured.guess


@dataclass(frozen=True)
class CurrentPool:
    """The pool settings a service runs today, checked against the scenario."""

    pool_size: int | None = None
    max_overflow: int | None = None
    pool_recycle: int | None = None
    poolclass: str = "AsyncAdaptedQueuePool"
    # asyncpg's statement caches as the service sets them today (None: not declared; 0: off,
    # as a transaction pooler without prepared-statement tracking needs).
    statement_cache_size: int | None = None


@dataclass(frozen=True)
class Service:
    """One service sharing the database: its fleet, load, path and the pool it runs today.

    `endpoints` lists the roles it connects to (None: every endpoint); `proxy` is its own
    path (None: the scenario's proxy); `weight` sets its share of what the services with a
    load or a fixed share leave (default 1).
    """

    name: str = "app"
    kind: str = "web"
    app_instances: int = 2
    max_app_instances: int | None = None
    deploy_surge_percent: int = 25
    workers: int = 1
    engines_per_process: int = 1
    serverless_concurrency: int | None = None
    app_vcpus: int = 2
    pool_split: float = 0.7
    load: Load | None = None
    current: CurrentPool | None = None
    endpoints: tuple[str, ...] | None = None
    proxy: str | None = None
    weight: float = 1.0

    @property
    def serverless(self) -> bool:
        return self.serverless_concurrency is not None

    @classmethod
    def flags(cls, **fleet: Any) -> Service:
        """The flags form's one service: named "app", its kind from its fleet (serverless
        when it has a peak concurrency, else web)."""
        kind = "serverless" if fleet.get("serverless_concurrency") is not None else "web"
        return cls(kind=kind, **fleet)

    @property
    def autoscaling_max(self) -> int:
        """App instances at the autoscaling maximum (the normal count without autoscaling)."""
        return self.max_app_instances or self.app_instances

    @property
    def fleet_size(self) -> int:
        """The scaling unit: the autoscaling maximum, or the peak concurrent invocations when
        serverless (what break points and scale-out charts count in)."""
        return self.serverless_concurrency or self.autoscaling_max

    @property
    def peak_instances(self) -> int:
        """App instances at the autoscaling maximum plus the rolling-deploy surge."""
        top = self.autoscaling_max
        return top + surge(top, self.deploy_surge_percent)


# The fields that describe a service's fleet (its name, kind, endpoints, path and weight
# aside): the flags form sets them for its one service.
SERVICE_FIELDS: tuple[str, ...] = (
    "app_instances", "max_app_instances", "deploy_surge_percent", "workers",
    "engines_per_process", "serverless_concurrency", "app_vcpus", "pool_split", "load",
    "current")


@dataclass(frozen=True)
class Scenario:
    """One database (primary, replicas, reserves), the path to it (proxy and its settings,
    network, IAM, pre-ping) and the services that share it (at least one; the flags form is
    one Service named "app"). A service's fleet, load and pools are the Service's own."""

    provider: str = "aws-rds"
    instance_class: str | None = "db.r6g.large"
    max_connections: int | None = None
    max_connections_source: str | None = None
    replicas: tuple[Replica, ...] = ()
    proxy: str = "none"
    proxy_settings: ProxySettings = field(default_factory=ProxySettings)
    pg_version: int = 16
    # Minor version (4 for 16.4); None: the current minor a new instance gets.
    pg_minor: int | None = None
    min_acu: float | None = None  # Aurora Serverless v2 minimum capacity
    db_vcpus: float | None = None  # the database server's vCPUs, over the class's figure
    reserves: Reserves = field(default_factory=Reserves)
    network: tuple[str, ...] = ()
    iam_auth: bool = False
    # The services sharing the database, at least one (limits.validate_services checks it).
    services: tuple[Service, ...] = field(default_factory=lambda: (Service(),))
    # pool_pre_ping where it pays (on by default); False: the user opts out.
    pre_ping: bool = True

    @classmethod
    def flags(cls, **fields: Any) -> Scenario:
        """The flags form: the database and path fields as given, and one service (named
        "app") with the fleet fields given (SERVICE_FIELDS: app_instances, workers, load,
        current, ...)."""
        fleet = {f: fields.pop(f) for f in SERVICE_FIELDS if f in fields}
        return cls(**fields, services=(Service.flags(**fleet),))

    @property
    def named(self) -> bool:
        """Whether the scenario names its services (a file's [[service]] tables, a link's
        `s<N>_` keys): their engines then say who they are (application_name), errors name
        them and links key them by number. A scenario whose one service the flags can
        describe (named "app", the kind its fleet gives, no endpoints, path or weight of its
        own) is the flags form."""
        return len(self.services) != 1 or self.services[0] != Service.flags(
            **{f: getattr(self.services[0], f) for f in SERVICE_FIELDS})

    def through(self, svc: Service) -> Scenario:
        """The database on the path one service takes (its own proxy, else the scenario's)."""
        return self if svc.proxy is None else replace(self, proxy=svc.proxy)

    def alone(self, svc: Service) -> Scenario:
        """This database on the service's path with that service alone, as the flags form
        (what the service would get with the database to itself)."""
        return replace(self.through(svc), services=(
            Service.flags(**{f: getattr(svc, f) for f in SERVICE_FIELDS}),))


# The flat keys a service owns: with several services they are set per service
# (`s2_workers`); a service may also take its own path (`s2_proxy`).
FLEET_KEYS: tuple[str, ...] = params.fleet_keys()
# A service name becomes application_name, a file name and a Python comment: keep it plain
# (the table's shape of `name`).
SERVICE_NAME = re.compile(params.BY_KEY["name"].shape[0])


def service_key(index: int, key: str) -> str:
    """The flat key of one service's parameter: service_key(2, "workers") == "s2_workers"."""
    return f"s{index}_{key}"


def param_values(s: Scenario) -> dict[str, Any]:
    """Every parameter's value for a scenario (None where unset), keyed by its flat key
    (the share link's, the CLI flag's; wizard.scenario.links.PARAMS describes them)."""
    ps, rs = s.proxy_settings, s.reserves
    reps = s.replicas
    return {
        "provider": s.provider, "instance_class": s.instance_class,
        "max_connections": s.max_connections,
        "max_connections_source": s.max_connections_source, "pg_version": s.pg_version,
        "min_acu": s.min_acu, "pg_minor": s.pg_minor, "db_vcpus": s.db_vcpus,
        "replicas": len(reps),
        "replica_instance_class": [r.instance_class or "" for r in reps]
        if any(r.instance_class for r in reps) else None,
        "replica_max_connections": [r.max_connections or "" for r in reps]
        if any(r.max_connections for r in reps) else None,
        "replica_readers": [r.reader_instances or "" for r in reps]
        if any(r.reader_instances for r in reps) else None,
        "replica_regions": [r.region for r in reps] if any(r.region for r in reps) else None,
        "proxy": s.proxy, "pgbouncer_version": ps.pgbouncer_version,
        "pgbouncer_pool_size": ps.pool_size, "pgbouncer_reserve_pool": ps.reserve_pool,
        "pgbouncer_max_client_conn": ps.max_client_conn,
        "pgbouncer_max_db_connections": ps.max_db_connections,
        "max_prepared_statements": ps.max_prepared_statements,
        "user_db_pairs": ps.user_db_pairs,
        "rds_proxy_max_connections_percent": ps.rds_proxy_max_connections_percent,
        # The flags form's fleet (its one service; with named services, the first's).
        **service_values(s.services[0]), "superuser_reserved": rs.superuser,
        "provider_reserved": rs.provider, "admin_reserve": rs.admin,
        "migrations_reserve": rs.migrations, "replication_reserve": rs.replication_slots,
        "network": list(s.network) or None, "iam_auth": s.iam_auth, "pre_ping": s.pre_ping,
    }


def service_values(svc: Service) -> dict[str, Any]:
    """A service's fleet parameters (FLEET_KEYS) by flat key, None where unset."""
    load, cur = svc.load, svc.current
    return {
        "app_instances": svc.app_instances, "max_app_instances": svc.max_app_instances,
        "deploy_surge_percent": svc.deploy_surge_percent, "workers": svc.workers,
        "engines": svc.engines_per_process,
        "serverless_concurrency": svc.serverless_concurrency, "app_vcpus": svc.app_vcpus,
        "split": svc.pool_split, **measured_values(load),
        "current_pool_size": cur.pool_size if cur else None,
        "current_max_overflow": cur.max_overflow if cur else None,
        "current_pool_recycle": cur.pool_recycle if cur else None,
        "current_poolclass": cur.poolclass if cur else None,
        "current_statement_cache_size": cur.statement_cache_size if cur else None,
    }


def measured_values(load: Load | None) -> dict[str, Any]:
    """The load's parameter values: rps x hold time as given (Load.given) and the
    measurement beside them (None where unset)."""
    given = load.given if load is not None else None
    m = load.measured if load is not None else None
    out: dict[str, Any] = {
        "rps": given.rps if given else None, "hold_ms": given.hold_ms if given else None,
        "p95_hold_ms": given.p95_hold_ms if given else None}
    for p in params.TABLE:  # the table's measured_* rows, read from the measurement
        if p.field.startswith("load.measured."):
            out[p.key] = getattr(m, p.field.rpartition(".")[2]) if m is not None else None
    out["measured_seconds"] = out["measured_seconds"] or None  # 0: not recorded
    return out


def surge(instances: int, percent: int) -> int:
    """Extra instances during a rolling deploy (Kubernetes rounds maxSurge up)."""
    return -(-instances * percent // 100)


@dataclass(frozen=True)
class LoadSizing:
    """Little's law and Erlang C for the load of one process."""

    arrival_rate: float
    hold_s: float
    offered_load: float
    needed_pool: int | None  # None: no PostgreSQL server could hold this load
    needed_with_overflow: int | None
    curve: tuple[tuple[int, float], ...]  # (pool, P(wait)), sampled
    wait_target: float = 0.05  # the share of checkouts allowed to wait
    source: str = "given"  # "given" (rps x hold time) or "measured" (poolwise observe)
    measured: MeasuredLoad | None = None


@dataclass(frozen=True)
class ServiceResult:
    """One service's own recommendation: its engines, budgets and findings (`rec`), and the
    Service it sizes (its fleet, load and current pools: what the core reads of it)."""

    name: str
    kind: str
    endpoints: tuple[str, ...]
    rec: Recommendation
    service: Service = field(default_factory=Service)


@dataclass(frozen=True)
class Recommendation:
    """The estate's answer: endpoint totals (`endpoints`, each with every service's part in
    `by_service`) and one plan per service (`services`, at least one; the flags form is one
    service named "app"). Each plan's `rec` is that service's own Recommendation: its
    engines, load, rules, break point and findings. At the estate level `engines`, `load`,
    `rules`, `breaks_at` and `cutoffs` are empty: they belong to a service's plan."""

    scenario: Scenario
    endpoints: tuple[EndpointBudget, ...]
    engines: tuple[EngineSettings, ...]
    warnings: tuple[Finding, ...]
    sources: tuple[Source, ...]
    load: LoadSizing | None
    rules: tuple[RuleComparison, ...]
    binding: str
    breaks_at: int | None = None  # the smallest break point over the endpoints
    cutoffs: tuple[Cutoff, ...] = ()  # idle cut-offs on the path, shortest first
    # Every service sharing the database, each with its own plan (empty in a plan).
    services: tuple[ServiceResult, ...] = ()

    @property
    def sized(self) -> Service:
        """The service a plan sizes: its scenario's (the database on that service's path,
        with that service alone)."""
        return self.scenario.services[0]

    def endpoint(self, role: str) -> EndpointBudget:
        return next(e for e in self.endpoints if e.role == role)

    def engine(self, role: str) -> EngineSettings:
        return next(e for e in self.engines if e.endpoint == role)

    def service(self, name: str) -> ServiceResult:
        """One service's result by name (ScenarioError naming the choices otherwise)."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise ScenarioError(f"no service named {name[:40]!r}; services: "
                            + ", ".join(v.name for v in self.services), key="name")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the CLI's --json shape).

        Compatibility (the one place it lives): the JSON of one service keeps that
        service's plan at the top level as well (`engines`, `load`, `rules`, `binding`,
        `breaks_at`, `cutoffs`, and its `scenario`), as it had before the estate took one
        shape; with several services those keys stay empty."""
        top = self.services[0].rec if len(self.services) == 1 else self
        d = asdict(replace(top, endpoints=self.endpoints, warnings=self.warnings,
                           sources=self.sources, services=()))
        # The scenario as it was when a Scenario carried a fleet of its own: one service's
        # fleet at the top level and no `services`; several services listed, the top-level
        # fleet keys at a Service's defaults (they described no one).
        fleet = top.sized if len(self.services) == 1 else Service()
        given = asdict(fleet)
        d["scenario"] = {**d["scenario"], **{f: given[f] for f in SERVICE_FIELDS}}
        if len(self.services) == 1:
            d["scenario"]["services"] = []
        d["services"] = [
            {"name": v.name, "kind": v.kind, "endpoints": list(v.endpoints),
             "engines": [asdict(e) for e in v.rec.engines],
             "load": asdict(v.rec.load) if v.rec.load else None,
             "breaks_at": v.rec.breaks_at,
             "warnings": [asdict(f) for f in v.rec.warnings]}
            for v in self.services]
        return d
