"""Every scenario parameter, once: the table links, scenario files, CLI flags, the form and
the bounds are generated from.

A row names the parameter's key (the flat/link key; the CLI flag is `--` + the key with
dashes), its kind, the form's label, the `--help` text, the form's "how to find this
value" hint, its default (None: unset), its documented range (numbers, and the items of
a numeric list), its longest text and the shape free text must have, where the model keeps
it, the wizard step that shows it, and its owner: the `database`, the `path` (the proxy
and how a connection is made) or a `service`. Adding a field is one row here and the code
that uses its value (the model's field, the converters, the widget); tests/test_params.py
lists every place a key appears and checks each derives from this table.

Standard library only (the core's rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# PostgreSQL refuses max_connections above MAX_BACKENDS (2^18 - 1).
PG_MAX_BACKENDS = 262_143
PG_MAX_BACKENDS_SOURCE = (
    "https://github.com/postgres/postgres/blob/master/src/include/postmaster/postmaster.h")
# AWS's documented maximum of read replicas per source instance.
MAX_REPLICAS = 15
MAX_REPLICAS_SOURCE = ("https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/"
                       "API_CreateDBInstanceReadReplica.html")
# At most this many services share one database (bounded work per scenario).
MAX_SERVICES = 32
# A measured load (`poolwise observe`, wizard/core/measured.py): no server has more busy
# connections than MAX_BACKENDS; app instances x workers at their documented maxima; an
# observation lasts at most an hour; when (UTC) and where (host:port/database, never a
# password, nothing a page could render as a link or markup).
MEASURED_MAX_PROCESSES = 100_000 * 1_024
MEASURED_MAX_SECONDS = 3600
MEASURED_AT_SHAPE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
MEASURED_WHERE_CHARS = 200
MEASURED_WHERE_SHAPE = (r"([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}/"
                        r"[A-Za-z0-9_.-]{0,63}")

# The longest value each parameter takes, in characters (every value is printable ASCII):
# numbers and flags take MAX_NUMBER_CHARS; text and lists their own (`chars` below).
MAX_NUMBER_CHARS = 32
MAX_LIST_ITEMS = 16  # the primary and 15 replicas (MAX_REPLICAS)

KINDS: tuple[str, ...] = ("int", "float", "str", "bool", "list")
OWNERS: tuple[str, ...] = ("database", "path", "service")
# The wizard's steps with a form, and the one each owner's parameters are on unless a row
# says otherwise (the reserves and the load are on "load", the replicas on "topology").
STEPS: tuple[str, ...] = ("database", "proxy", "topology", "load")
OWNER_STEP = {"database": "database", "path": "proxy", "service": "topology"}
# What each owner's parameters describe (the CLI's --help groups them so).
OWNER_WORDS: dict[str, str] = {
    "database": "database (its primary, replicas and reserves)",
    "path": "path (the proxy between the app and PostgreSQL, and how it connects)",
    "service": "service (the flags describe one; a scenario file has a [[service]] table each)",
}


@dataclass(frozen=True)
class Range:
    """An inclusive range for one input (exclusive at the low end when `above` is set)."""

    key: str          # the share/CLI parameter key (model.field_name names it)
    low: float
    high: float
    integer: bool = True
    above: bool = False  # the value must be strictly above `low`
    why: str = ""

    def words(self) -> str:
        low = f"above {_num(self.low)}" if self.above else _num(self.low)
        return f"{low} to {_num(self.high)}"


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Param:
    """One scenario parameter (see the module docstring)."""

    key: str
    kind: str  # int, float, str, bool, list
    help: str  # the CLI's --help (and the link/file documentation)
    owner: str = "database"  # database, path or service
    label: str = ""  # the form's label; core messages name the field by it
    hint: str = ""  # the form's help: how to find this value ("" : none)
    default: Any = None  # the value when unset (None: unset)
    range: Range | None = None  # numbers; a list's numeric items
    chars: int = MAX_NUMBER_CHARS  # the longest value, in characters
    # free text: the pattern a value must match in full, and the words saying so
    shape: tuple[str, str] | None = None
    # where the value lives in the model: an attribute path on the Scenario (database, path)
    # or on the Service (service); "replicas[].region": that attribute of each replica
    field: str = ""
    step: str = ""  # the wizard step whose form shows it (default: its owner's)
    flag: bool = True  # a top-level key (flag, link key, TOML top level); else only a service's
    per_service: bool = False  # a [[service]] table / s<N>_ key may set it (owner service: always)

    @property
    def in_service(self) -> bool:
        """Whether a service sets it (`s2_<key>`, a [[service]] table's key)."""
        return self.owner == "service" or self.per_service


def _p(key: str, kind: str, owner: str, label: str, help: str, *, hint: str = "",
       default: Any = None, rng: tuple[float, float] | None = None, above: bool = False,
       why: str = "", chars: int | None = None, shape: tuple[str, str] | None = None,
       field: str = "", step: str = "", flag: bool = True, per_service: bool = False) -> Param:
    assert kind in KINDS and owner in OWNERS and step in ("", *STEPS), key
    r = (Range(key, rng[0], rng[1], integer=kind != "float", above=above, why=why)
         if rng else None)
    return Param(key, kind, help, owner=owner, label=label, hint=hint, default=default,
                 range=r, chars=chars if chars is not None else MAX_NUMBER_CHARS, shape=shape,
                 field=field or key, step=step or OWNER_STEP[owner], flag=flag,
                 per_service=per_service)


_MAX_BACKENDS_WHY = "PostgreSQL's MAX_BACKENDS"
_CONNS = (0, PG_MAX_BACKENDS)

# In the order of the CLI's --help, of a link's keys and of a scenario file's keys.
TABLE: tuple[Param, ...] = (
    # -- the database
    _p("provider", "str", "database", "Provider",
       "aws-rds, aws-aurora, gcp-cloudsql, azure-flexible, supabase, neon, self-hosted",
       hint="Where your PostgreSQL runs. It decides the default max_connections, the "
            "reserved connections and which proxies exist.",
       default="aws-rds", chars=40),
    _p("instance_class", "str", "database", "Instance class",
       "the primary's instance class (see the catalog command)",
       hint="Type to search. The class decides the default max_connections. Find it in your "
            "provider's console (RDS: 'Class'; Cloud SQL: machine type; Azure: "
            "'Compute + storage').",
       default="db.r6g.large", chars=64,
       shape=(r"[A-Za-z0-9._-]{1,64}", "a class name such as db.r6g.large (letters, digits, "
              "'.', '-', '_')")),
    _p("max_connections", "int", "database", "max_connections you measured",
       "measured max_connections (SHOW max_connections); overrides the catalog",
       hint="Run `SHOW max_connections;` against the server (psql, any SQL client). A custom "
            "parameter group or flag overrides the catalog default.",
       rng=(1, PG_MAX_BACKENDS), why=_MAX_BACKENDS_WHY),
    _p("max_connections_source", "str", "database", "Where max_connections came from",
       "where max_connections came from, e.g. 'measured 2026-11-25T10:00Z'", chars=120,
       shape=(r"[\w .:()/,+'-]{1,120}", "a short note such as 'measured 2026-11-25T08:00Z'")),
    _p("db_vcpus", "float", "database", "Database vCPUs",
       "the database server's vCPUs (self-hosted, or a value other than the class's): "
       "HikariCP's rule and what the database executes at once",
       hint="The database server's vCPUs: HikariCP's cores x 2 + 1 rule and what the database "
            "executes at once use them. Give them for a self-hosted server, or where the "
            "class's figure is not what runs.",
       rng=(0, 1_024), above=True),
    _p("min_acu", "float", "database", "Minimum ACU",
       "Aurora Serverless v2 minimum ACU (0 or 0.5 caps max_connections at 2000)",
       hint="The cluster's minimum capacity: at 0 or 0.5 ACU AWS caps max_connections at 2,000 "
            "whatever the maximum.",
       rng=(0, 256), why="Aurora Serverless v2 capacity range"),
    _p("pg_version", "int", "database", "PostgreSQL major version",
       "PostgreSQL major version (16+ adds reserved_connections)",
       hint="`SHOW server_version;`. PostgreSQL 16+ adds reserved_connections.",
       default=16, rng=(10, 30)),
    _p("pg_minor", "int", "database", "Minor version",
       "PostgreSQL minor version, e.g. 4 for 16.4 (RDS 17.1/16.5/15.9/14.14/13.17/12.21+ "
       "reserve rds.rds_reserved_connections; default: the current minor a new instance gets)",
       hint="`SHOW server_version;` 16.4 -> 4. RDS reserves rds.rds_reserved_connections from "
            "17.1, 16.5, 15.9, 14.14, 13.17 and 12.21; empty = the current minor a new instance "
            "gets.",
       rng=(0, 99)),
    _p("replicas", "int", "database", "Read replicas", "number of read replicas",
       hint="Read replicas your app reads from. Each has its own max_connections.",
       default=0, rng=(0, MAX_REPLICAS), why="AWS's documented limit per source instance",
       step="topology"),
    _p("replica_instance_class", "list", "database", "Replica instance class",
       "replica classes, comma-separated, one per replica (the last repeats); default: the "
       "primary's",
       hint="The replica's own instance class (it may be smaller than the primary).",
       chars=MAX_LIST_ITEMS * 65,
       shape=(r"[A-Za-z0-9._-]{0,64}(,[A-Za-z0-9._-]{0,64})*", "class names such as "
              "db.r6g.large"),
       field="replicas[].instance_class", step="topology"),
    _p("replica_max_connections", "list", "database", "Replica measured max_connections",
       "measured max_connections per replica",
       hint="SHOW max_connections on the replica, if you measured it.", rng=(1, PG_MAX_BACKENDS),
       why=_MAX_BACKENDS_WHY, chars=MAX_LIST_ITEMS * 8,
       field="replicas[].max_connections", step="topology"),
    _p("replica_readers", "list", "database", "Replica reader instances",
       "app instances reading from each replica (default all)",
       hint="App instances that open a read engine to this replica. Empty = all.",
       rng=(1, 100_000), chars=MAX_LIST_ITEMS * 8,
       field="replicas[].reader_instances", step="topology"),
    _p("replica_regions", "list", "database", "Replica region",
       "region of each replica, e.g. eu-west-1 (labels only)",
       hint="A label only, e.g. eu-west-1: a cross-region replica counts the same way, with its "
            "own class and its own readers.",
       chars=MAX_LIST_ITEMS * 41,
       shape=(r"[A-Za-z0-9._-]{0,40}(,[A-Za-z0-9._-]{0,40})*", "region names such as "
              "eu-west-1"),
       field="replicas[].region", step="topology"),
    # -- the path: the proxy and its settings
    _p("proxy", "str", "path", "Proxy or pooler",
       "none, pgbouncer-transaction, pgbouncer-session, rds-proxy, cloudsql-auth-proxy, "
       "cloudsql-connector, azure-pgbouncer, supavisor-transaction, supavisor-session, "
       "neon-pooler",
       hint="What sits between the app and PostgreSQL. Only proxies available for your "
            "provider are listed.",
       default="none", chars=40, per_service=True),
    _p("pgbouncer_version", "str", "path", "PgBouncer version",
       "PgBouncer version, e.g. 1.18 or 1.24",
       hint="`SHOW VERSION;` on the PgBouncer admin console, or `pgbouncer --version`. 1.21+ "
            "keeps prepared statements in transaction mode.",
       chars=16, shape=(r"\d{1,2}(\.\d{1,3}){0,2}", "a version such as 1.22"),
       field="proxy_settings.pgbouncer_version"),
    _p("pgbouncer_pool_size", "int", "path", "default_pool_size",
       "PgBouncer default_pool_size (per user/database pair)",
       hint="default_pool_size in pgbouncer.ini (Azure: the pgbouncer.default_pool_size server "
            "parameter). Empty = the default.",
       rng=(1, PG_MAX_BACKENDS),
       field="proxy_settings.pool_size"),
    _p("pgbouncer_reserve_pool", "int", "path", "reserve_pool_size",
       "PgBouncer reserve_pool_size", hint="reserve_pool_size in pgbouncer.ini (0 = off).",
       default=0, rng=_CONNS,
       field="proxy_settings.reserve_pool"),
    _p("pgbouncer_max_client_conn", "int", "path", "max_client_conn",
       "PgBouncer max_client_conn",
       hint="max_client_conn in pgbouncer.ini / the pooler's client limit. Empty = the "
            "documented default.",
       rng=(1, 10_000_000),
       field="proxy_settings.max_client_conn"),
    _p("pgbouncer_max_db_connections", "int", "path", "max_db_connections",
       "PgBouncer max_db_connections: caps the server connections of all pools of a database "
       "(0: no cap)",
       hint="max_db_connections in pgbouncer.ini: caps the server connections of all pools "
            "of a database. Empty or 0 = no cap.",
       rng=_CONNS,
       field="proxy_settings.max_db_connections"),
    _p("max_prepared_statements", "int", "path", "max_prepared_statements",
       "PgBouncer max_prepared_statements",
       hint="max_prepared_statements in pgbouncer.ini (1.21+; 200 by default since 1.24). "
            "Empty = the version's default.",
       rng=(0, 1_000_000),
       field="proxy_settings.max_prepared_statements"),
    _p("user_db_pairs", "int", "path", "user/database pairs",
       "distinct (user, database) pairs through the pooler",
       hint="How many distinct (database user, database) pairs go through the pooler: each "
            "gets its own server pool.",
       default=1, rng=(1, 10_000),
       field="proxy_settings.user_db_pairs"),
    _p("rds_proxy_max_connections_percent", "int", "path", "MaxConnectionsPercent",
       "RDS Proxy MaxConnectionsPercent",
       hint="Proxy > Target group > Connection pool maximum connections "
            "(MaxConnectionsPercent).",
       default=100, rng=(1, 100), why="AWS's allowed range",
       field="proxy_settings.rds_proxy_max_connections_percent"),
    # -- the service (the flags form is one service)
    _p("app_instances", "int", "service", "App instances (normal)",
       "app instances (pods/tasks) normally running",
       hint="Pods / tasks / VMs running the service today (kubectl get deploy, ECS desired "
            "count).",
       default=2, rng=(1, 100_000)),
    _p("max_app_instances", "int", "service", "Autoscaling maximum", "the autoscaling maximum",
       hint="Use the maximum of your autoscaling range (HPA maxReplicas, ECS max capacity). "
            "Empty = no autoscaling.",
       rng=(1, 100_000)),
    _p("deploy_surge_percent", "int", "service", "Rolling-deploy surge (%)",
       "rolling-deploy surge in percent (maxSurge)",
       hint="Extra instances during a rolling deploy: Kubernetes maxSurge (default 25%), ECS "
            "maximumPercent - 100.",
       default=25, rng=(0, 100)),
    _p("workers", "int", "service", "Workers per instance",
       "worker processes per instance (gunicorn -w, uvicorn --workers)",
       hint="Worker processes per instance: WEB_CONCURRENCY, `gunicorn -w` or `uvicorn "
            "--workers`. Each process has its own engine and pool.",
       default=1, rng=(1, 1_024)),
    _p("engines", "int", "service", "Engines per process",
       "engines per process (a second engine for jobs counts twice)",
       hint="create_async_engine calls per process for this database (a second engine for "
            "background jobs counts twice).",
       default=1, rng=(1, 64),
       field="engines_per_process"),
    _p("serverless_concurrency", "int", "service", "Peak concurrent invocations",
       "peak concurrent invocations (Lambda/Cloud Run)",
       hint="Peak concurrent invocations: Lambda reserved concurrency, or Cloud Run max "
            "instances x concurrency.",
       rng=(1, 1_000_000)),
    _p("app_vcpus", "int", "service", "vCPUs per app instance",
       "vCPUs per app instance (for the Prisma rule)",
       hint="vCPUs per app instance (the Prisma rule of thumb uses it).",
       default=2, rng=(1, 1_024)),
    # -- the database's reserves
    _p("superuser_reserved", "int", "database", "superuser_reserved_connections",
       "superuser_reserved_connections (default: provider's)",
       hint="SHOW superuser_reserved_connections. Empty = the provider's default.",
       rng=_CONNS,
       field="reserves.superuser", step="load"),
    _p("provider_reserved", "int", "database", "Provider-reserved",
       "connections the provider keeps (default: documented)",
       hint="Connections the provider keeps for itself. Empty = documented value.",
       rng=_CONNS,
       field="reserves.provider", step="load"),
    _p("admin_reserve", "int", "database", "Monitoring / admin",
       "connections kept for monitoring and admin",
       hint="Keep some for psql, monitoring agents and dashboards.", default=3, rng=_CONNS,
       field="reserves.admin", step="load"),
    _p("migrations_reserve", "int", "database", "Migrations", "connections kept for migrations",
       hint="Connections your migration job (alembic upgrade) needs while the fleet runs.",
       default=1, rng=_CONNS,
       field="reserves.migrations", step="load"),
    _p("replication_reserve", "int", "database", "Replication / CDC",
       "connections kept for replication/CDC",
       hint="Replication slots / CDC (Debezium, DMS) connections on the primary.",
       default=0, rng=_CONNS,
       field="reserves.replication_slots", step="load"),
    # -- the service's pool and load
    _p("split", "float", "service", "pool_size share of the budget",
       "share of the per-process budget kept as pool_size (0..1]",
       hint="Share of each engine's budget kept open as pool_size; the rest is max_overflow "
            "for bursts.",
       default=0.7, rng=(0, 1), above=True, field="pool_split", step="load"),
    _p("rps", "float", "service", "Requests/s per instance",
       "requests per second per app instance (the whole service when serverless)",
       hint="Requests per second per app instance at peak (your APM, or load balancer "
            "requests / instances).",
       rng=(0, 1_000_000), above=True,
       field="load.given.rps", step="load"),
    _p("hold_ms", "float", "service", "Mean hold time (ms)",
       "mean time a request holds a connection, in ms",
       hint="Mean time a request holds a connection (checkout to return), in ms. Roughly the "
            "DB time per request from your APM.",
       rng=(0, 3_600_000), above=True,
       why="one hour: a connection held longer is not a request",
       field="load.given.hold_ms", step="load"),
    _p("p95_hold_ms", "float", "service", "p95 hold time (ms)",
       "p95 time a request holds a connection, in ms",
       hint="95th percentile of the hold time; sizes max_overflow for bursts.",
       rng=(0, 3_600_000), above=True,
       field="load.given.p95_hold_ms", step="load"),
    # -- the path, continued
    _p("network", "list", "path", "Idle cut-offs on the network path",
       "idle cut-offs on the path: aws-nat-gateway, aws-nlb, azure-load-balancer, "
       "gcp-cloud-nat, gcp-vpc",
       hint="Anything that cuts idle TCP connections between the app and the database (NAT "
            "gateways, load balancers). pool_recycle is set below the shortest.",
       chars=200),
    _p("iam_auth", "bool", "path", "IAM / Entra ID token authentication",
       "IAM / Entra ID token authentication",
       hint="You connect with short-lived IAM / Entra ID tokens instead of a password.",
       default=False),
    _p("pre_ping", "bool", "path", "pool_pre_ping",
       "pool_pre_ping (on by default; --no-pre-ping or pre_ping=false turns it off: one round "
       "trip less per checkout, but a connection a restart, failover or scale-to-zero closed "
       "fails the request that checks it out)",
       hint="On by default: each checkout first runs one pooled round trip, so a connection a "
            "restart, failover or Neon's scale to zero closed is replaced instead of failing "
            "the request. Off saves that round trip per checkout.",
       default=True),
    # -- the pool the service runs today
    _p("current_pool_size", "int", "service", "Current pool_size",
       "pool_size your service uses today", rng=_CONNS,
       field="current.pool_size", step="load"),
    _p("current_max_overflow", "int", "service", "Current max_overflow",
       "max_overflow your service uses today", rng=(-1, PG_MAX_BACKENDS),
       field="current.max_overflow", step="load"),
    _p("current_pool_recycle", "int", "service", "Current pool_recycle (s, -1 = off)",
       "pool_recycle your service uses today (-1 = off)", rng=(-1, 31_536_000),
       field="current.pool_recycle", step="load"),
    _p("current_poolclass", "str", "service", "Current poolclass",
       "poolclass your service uses today", chars=40,
       shape=(r"AsyncAdaptedQueuePool|QueuePool|NullPool", "AsyncAdaptedQueuePool, QueuePool "
              "or NullPool"),
       field="current.poolclass", step="load"),
    _p("current_statement_cache_size", "int", "service", "Current statement_cache_size",
       "asyncpg statement_cache_size your service uses today (0: it passes "
       "statement_cache_size=0 and prepared_statement_cache_size=0, as the exported module "
       "does behind a transaction pooler)",
       hint="statement_cache_size in your engine's connect_args (asyncpg's default is 100). "
            "0: off, as a transaction pooler without prepared-statement support needs.",
       rng=(0, 1_000_000),
       field="current.statement_cache_size", step="load"),
    # -- the load a service was measured at (`poolwise observe`; a scenario file keeps it
    # as [service.measured]): sized from it instead of rps x hold time, which stay the guess
    _p("measured_busy_mean", "float", "service", "Measured busy connections (mean)",
       "measured mean busy connections of the service (poolwise observe)",
       rng=(0, PG_MAX_BACKENDS), why=_MAX_BACKENDS_WHY, field="load.measured.busy_mean",
       step="load"),
    _p("measured_busy_p95", "float", "service", "Measured busy connections (p95)",
       "measured p95 busy connections of the service (poolwise observe)",
       rng=(0, PG_MAX_BACKENDS), why=_MAX_BACKENDS_WHY, field="load.measured.busy_p95",
       step="load"),
    _p("measured_processes", "int", "service", "Processes when measured",
       "app processes running when the load was measured", rng=(1, MEASURED_MAX_PROCESSES),
       why="app instances x workers at their maxima", field="load.measured.processes",
       step="load"),
    _p("measured_at", "str", "service", "Measured at", "when the load was measured (UTC)",
       chars=20, shape=(MEASURED_AT_SHAPE, "a UTC time like 2026-12-06T03:10:00Z"),
       field="load.measured.at", step="load"),
    _p("measured_where", "str", "service", "Measured where",
       "where the load was measured: host:port/database (never a password)",
       chars=MEASURED_WHERE_CHARS,
       shape=(MEASURED_WHERE_SHAPE, "host:port/database (letters, digits, '.', '-', '_'; an "
              "IPv6 address in brackets)"),
       field="load.measured.where", step="load"),
    _p("measured_seconds", "float", "service", "Measured for (s)",
       "how long the load was observed, in seconds", rng=(0, MEASURED_MAX_SECONDS),
       why="observe runs at most an hour", field="load.measured.seconds", step="load"),
    # -- only a service has these (with several services, `s2_name=worker` and so on)
    _p("name", "str", "service", "Service name",
       "service name: lower-case letters, digits, - or _",
       hint="Lower-case letters, digits, - or _; it becomes the engines' application_name.",
       chars=40, flag=False,
       # it becomes application_name, a file name and a Python comment: keep it plain
       shape=(r"[a-z][a-z0-9_-]{0,39}", "1 to 40 lower-case letters, digits, - or _, starting "
              "with a letter")),
    _p("kind", "str", "service", "Service kind", "web, worker, cron or serverless",
       hint="web (requests), worker (queue consumers), cron (short jobs, migrations: a small "
            "fixed share) or serverless (one connection per invocation).",
       chars=20, flag=False),
    _p("endpoints", "list", "service", "Endpoints it connects to",
       "endpoints it connects to, e.g. primary,replica-1 (default all)",
       hint="Empty: every endpoint (the primary and each replica). With replicas, list the "
            "primary too.",
       chars=MAX_LIST_ITEMS * 11, flag=False),
    _p("weight", "float", "service", "Share weight",
       "its share weight per client engine without a load (default 1)",
       default=1.0, rng=(0, 1_000), above=True, flag=False),
)

BY_KEY: dict[str, Param] = {p.key: p for p in TABLE}
assert len(BY_KEY) == len(TABLE), "a key is in the table twice"


def flags() -> tuple[Param, ...]:
    """The top-level parameters: CLI flags, link keys, a scenario file's top-level keys."""
    return tuple(p for p in TABLE if p.flag)


def service_only() -> tuple[Param, ...]:
    """The parameters only a service has (name, kind, endpoints, weight)."""
    return tuple(p for p in TABLE if not p.flag)


def fleet_keys() -> tuple[str, ...]:
    """The top-level keys a service owns: with several services they are set per service."""
    return tuple(p.key for p in TABLE if p.flag and p.owner == "service")


def service_keys() -> tuple[str, ...]:
    """The keys a service sets (`s<N>_<key>`, a [[service]] table): its own, then the path
    it may take for itself, then the fleet keys."""
    return (*(p.key for p in service_only()),
            *(p.key for p in TABLE if p.flag and p.per_service and p.owner != "service"),
            *fleet_keys())


def ranges() -> dict[str, Range]:
    """The documented range of every numeric parameter (and a numeric list's items)."""
    return {p.key: p.range for p in TABLE if p.range is not None}


def text_chars() -> dict[str, int]:
    """The longest value of each text and list parameter (numbers: MAX_NUMBER_CHARS)."""
    return {p.key: p.chars for p in TABLE if p.kind in ("str", "list")}


def read(obj: Any, p: Param) -> Any:
    """A parameter's value in the model: `obj` is the Scenario (database and path keys) or
    the Service (service keys); None where a part on the way is unset (no load, no current
    pool); a tuple, one item per replica, for "replicas[]." fields."""
    head, _, rest = p.field.partition("[].")
    value = _walk(obj, head)
    if rest:
        return tuple(_walk(item, rest) for item in value or ())
    return value


def _walk(obj: Any, path: str) -> Any:
    for name in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, name)
    return obj


def shapes() -> dict[str, tuple[str, str]]:
    """Each free-text parameter's pattern (matched in full) and the words describing it."""
    return {p.key: p.shape for p in TABLE if p.shape}


def on_step(step: str) -> tuple[str, ...]:
    """The parameters the wizard's `step` shows."""
    return tuple(p.key for p in TABLE if p.step == step)


def labels() -> dict[str, str]:
    """Each parameter's label in the form (core messages name fields by it)."""
    return {p.key: p.label for p in TABLE}


def hints() -> dict[str, str]:
    """The form's help of each parameter that has one."""
    return {p.key: p.hint for p in TABLE if p.hint}


def defaults(owner: str | None = None) -> dict[str, Any]:
    """Each parameter's default where it has one (of one owner's, with `owner`)."""
    return {p.key: p.default for p in TABLE
            if p.default is not None and (owner is None or p.owner == owner)}
