"""Typed inputs and outputs of poolwise: one Scenario in, one Recommendation out.

Everything downstream (CLI, charts, export, UI, live check) reads these objects;
none of them recompute sizing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

from wizard.core import params

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


class ScenarioError(ValueError):
    """A scenario input is invalid; the message names the value and the valid choices.

    `key` names the share/CLI parameter at fault, when one is, so a form can show the
    message beside its field.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class SizingError(ValueError):
    """The scenario cannot fit; `fix` says what to change."""

    def __init__(self, message: str, fix: str):
        super().__init__(f"{message} Fix: {fix}")
        self.message = message
        self.fix = fix


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


# The Scenario fields a Service owns (the rest describe the database and the path).
SERVICE_FIELDS: tuple[str, ...] = (
    "app_instances", "max_app_instances", "deploy_surge_percent", "workers",
    "engines_per_process", "serverless_concurrency", "app_vcpus", "pool_split", "load",
    "current")


@dataclass(frozen=True)
class Scenario:
    """One database (primary, replicas, proxy, reserves) and the services that share it.

    Without `services` the fleet fields here describe the one service (the flags form);
    with them, each Service carries its own fleet and these fields are not used.
    """

    provider: str = "aws-rds"
    instance_class: str | None = "db.r6g.large"
    max_connections: int | None = None
    max_connections_source: str | None = None
    replicas: tuple[Replica, ...] = ()
    proxy: str = "none"
    proxy_settings: ProxySettings = field(default_factory=ProxySettings)
    app_instances: int = 2
    max_app_instances: int | None = None
    deploy_surge_percent: int = 25
    workers: int = 1
    engines_per_process: int = 1
    serverless_concurrency: int | None = None
    app_vcpus: int = 2
    pg_version: int = 16
    # Minor version (4 for 16.4); None: the current minor a new instance gets.
    pg_minor: int | None = None
    min_acu: float | None = None  # Aurora Serverless v2 minimum capacity
    db_vcpus: float | None = None  # the database server's vCPUs, over the class's figure
    reserves: Reserves = field(default_factory=Reserves)
    pool_split: float = 0.7
    load: Load | None = None
    network: tuple[str, ...] = ()
    iam_auth: bool = False
    current: CurrentPool | None = None
    services: tuple[Service, ...] = ()
    # pool_pre_ping where it pays (on by default); False: the user opts out.
    pre_ping: bool = True

    def service_list(self) -> tuple[Service, ...]:
        """The services sharing the database; the flags form is one service named "app"."""
        if self.services:
            return self.services
        kind = "serverless" if self.serverless_concurrency is not None else "web"
        return (Service(kind=kind, **{f: getattr(self, f) for f in SERVICE_FIELDS}),)

    def for_service(self, svc: Service) -> Scenario:
        """This database seen by one service: its fleet and path, no other service."""
        return replace(self, services=(), proxy=svc.proxy or self.proxy,
                       **{f: getattr(svc, f) for f in SERVICE_FIELDS})

    @property
    def autoscaling_max(self) -> int:
        """App instances at the autoscaling maximum (the normal count without autoscaling)."""
        return self.max_app_instances or self.app_instances

    @property
    def fleet_size(self) -> int:
        """The scaling unit today: the autoscaling maximum, or the peak concurrent
        invocations when serverless (what break points and scale-out charts count in)."""
        return self.serverless_concurrency or self.autoscaling_max

    @property
    def peak_instances(self) -> int:
        """App instances at the autoscaling maximum plus the rolling-deploy surge."""
        top = self.autoscaling_max
        return top + surge(top, self.deploy_surge_percent)

    @property
    def serverless(self) -> bool:
        return self.serverless_concurrency is not None


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
    ps, rs, load, cur = s.proxy_settings, s.reserves, s.load, s.current
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
        "app_instances": s.app_instances, "max_app_instances": s.max_app_instances,
        "deploy_surge_percent": s.deploy_surge_percent, "workers": s.workers,
        "engines": s.engines_per_process, "serverless_concurrency": s.serverless_concurrency,
        "app_vcpus": s.app_vcpus, "superuser_reserved": rs.superuser,
        "provider_reserved": rs.provider, "admin_reserve": rs.admin,
        "migrations_reserve": rs.migrations, "replication_reserve": rs.replication_slots,
        "split": s.pool_split, **measured_values(load),
        "network": list(s.network) or None, "iam_auth": s.iam_auth, "pre_ping": s.pre_ping,
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


class Cutoff(NamedTuple):
    """A point on the path that drops idle connections."""

    name: str
    seconds: int
    url: str


@dataclass(frozen=True)
class Source:
    """Where a number comes from."""

    label: str
    url: str
    read_on: str = ""


@dataclass(frozen=True)
class ReserveItem:
    name: str
    count: int
    source: str


@dataclass(frozen=True)
class ProxySide:
    """One side of a proxy: what it may open/accept and what the fleet needs of it."""

    limit: int | None
    limit_source: str
    worst_case: int
    detail: str
    configured: int | None = None
    pool_size_per_pair: int | None = None
    reserve_pool: int = 0
    needed: int | None = None  # server connections the fleet's load needs (Erlang C)
    offered_load: float | None = None  # mean busy server connections (Little's law)
    pairs: int = 1  # user/database pairs the pooler serves (one per URL, so per service)
    total: int | None = None  # server connections the pooler may open over all its pairs


@dataclass(frozen=True)
class EndpointBudget:
    """The connection budget of one database endpoint."""

    role: str
    instance_class: str | None
    max_connections: int
    max_connections_source: str
    max_connections_estimated: bool
    reserves: tuple[ReserveItem, ...]
    reserved: int
    usable: int
    processes: int
    engines_per_process: int
    clients: int
    per_process_budget: int | None  # None: no limit on this side (proxy without client cap)
    pool_size: int
    max_overflow: int
    worst_case: int
    explanation: str
    server_side: ProxySide | None = None
    client_side: ProxySide | None = None
    vcpu: float | None = None
    # Erlang C for the pool actually exported (pool_size + max_overflow), under the load.
    p_wait: float | None = None
    p_wait_past_timeout: float | None = None
    mean_wait_ms: float | None = None
    # The fleet size (autoscaling maximum, or concurrency when serverless; deploy surge
    # counted) from which the clients exceed `break_limit` with these settings.
    breaks_at: int | None = None
    break_limit: int | None = None
    break_limit_name: str = "usable connections"
    # Each service's part of this endpoint; `worst_case` above is their sum.
    by_service: tuple[ServiceShare, ...] = ()
    # The part of usable this service (or the pooler it shares) may use when services share
    # the endpoint; None: all of usable.
    allotment: int | None = None
    # Several services: the endpoint's headroom with every service at its peak (a service's
    # own `headroom` counts only its own connections); None with one service.
    shared_headroom: int | None = None

    @property
    def room(self) -> int:
        """Connections this service's side may hold: its allotment, else usable."""
        return self.usable if self.allotment is None else self.allotment

    @property
    def headroom(self) -> int:
        return self.usable - self.worst_case

    @property
    def max_connections_label(self) -> str:
        """max_connections as every table shows it: "1,722 (estimate)" until measured."""
        return f"{self.max_connections:,}" + (" (estimate)" if self.max_connections_estimated
                                              else "")


@dataclass(frozen=True)
class Step:
    """One step of the reason a setting has its value: the `value` it gives, the `formula`
    that gives it ("" when none), `why` in words ("" when the value says it) and `source`
    (a URL, or "" for poolwise's own rule). `text` is the step as every surface words it."""

    value: str
    formula: str = ""
    why: str = ""
    source: str = ""

    @property
    def text(self) -> str:
        said = f"{self.formula} = {self.value}" if self.formula else self.value
        return f"{said}: {self.why}" if self.why else said


def reason_text(steps: Sequence[Step]) -> str:
    """A setting's reason as one sentence: its steps in order (the one place it is worded)."""
    return "; ".join(step.text for step in steps)


@dataclass(frozen=True)
class EngineSettings:
    """What `create_async_engine` must say for one endpoint. `steps` give each value's reason
    as data; `reasons` is each one's sentence (`reason_text` of its steps)."""

    endpoint: str
    poolclass: str
    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: int
    pool_pre_ping: bool
    pool_use_lifo: bool
    connect_args: dict[str, Any]
    reasons: dict[str, str]
    steps: dict[str, tuple[Step, ...]] = field(default_factory=dict)

    @classmethod
    def reasoned(cls, steps: dict[str, tuple[Step, ...]], **settings: Any) -> EngineSettings:
        """Settings with their reasons' steps, each sentence worded from them."""
        return cls(**settings, reasons={k: reason_text(v) for k, v in steps.items()},
                   steps=steps)


@dataclass(frozen=True)
class Finding:
    """One pitfall as data: its code (wizard/core/codes.py), what it is about and its numbers.

    `endpoint` is the role it concerns (None: the path or the database as a whole); `service`
    the one service it concerns and `services` every one (a finding several services share,
    or a plan finding naming the services to change, has `service` None). `facts` holds the
    numbers (and names) the message words. The message never starts with the endpoint or the
    services: each surface puts them before it (findings.subject).
    """

    code: str
    severity: str
    message: str
    fix: str
    endpoint: str | None = None
    service: str | None = None
    services: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.service is not None and not self.services:
            object.__setattr__(self, "services", (self.service,))


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
class RuleComparison:
    """A rule of thumb people copy, evaluated for this scenario, per process."""

    name: str
    formula: str
    per_process: int
    fleet_total: int
    fits: bool
    source: str
    limit: int | None = None  # the limit compared against (None: no limit)
    limit_name: str = "usable connections"


@dataclass(frozen=True)
class ServiceShare:
    """One service's part of an endpoint: its engines, pools and what it makes the endpoint
    see at the peak. `allotment` is the most it may use there (its share of usable, or of
    its pooler's limit; None: no limit on its side) and `allotment_how` says how it was set."""

    service: str
    processes: int
    clients: int
    pool_size: int
    max_overflow: int
    worst_case: int
    allotment: int | None
    allotment_how: str
    breaks_at: int | None = None
    break_limit: int | None = None


@dataclass(frozen=True)
class ServiceResult:
    """One service's own recommendation: its engines, budgets and findings (`rec`)."""

    name: str
    kind: str
    endpoints: tuple[str, ...]
    rec: Recommendation


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
        d["scenario"] = asdict(top.scenario)
        d["services"] = [
            {"name": v.name, "kind": v.kind, "endpoints": list(v.endpoints),
             "engines": [asdict(e) for e in v.rec.engines],
             "load": asdict(v.rec.load) if v.rec.load else None,
             "breaks_at": v.rec.breaks_at,
             "warnings": [asdict(f) for f in v.rec.warnings]}
            for v in self.services]
        return d
