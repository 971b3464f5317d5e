"""The documented range of every numeric scenario input, checked before anything is built.

One table serves the CLI, share links, saved scenarios and the app: a value outside its
range (NaN and infinity included) is refused with one plain line naming the field, so no
work downstream can grow with a number a visitor typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wizard.core.model import ScenarioError, field_name

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


def _r(key: str, low: float, high: float, **kw) -> tuple[str, Range]:
    return key, Range(key, low, high, **kw)


RANGES: dict[str, Range] = dict((
    _r("max_connections", 1, PG_MAX_BACKENDS,
       why="PostgreSQL's MAX_BACKENDS"),
    _r("replica_max_connections", 1, PG_MAX_BACKENDS,
       why="PostgreSQL's MAX_BACKENDS"),
    _r("min_acu", 0, 256, integer=False,
       why="Aurora Serverless v2 capacity range"),
    _r("db_vcpus", 0, 1_024, integer=False, above=True),
    _r("pg_version", 10, 30),
    _r("pg_minor", 0, 99),
    _r("replicas", 0, MAX_REPLICAS,
       why="AWS's documented limit per source instance"),
    _r("replica_readers", 1, 100_000),
    _r("pgbouncer_pool_size", 1, PG_MAX_BACKENDS),
    _r("pgbouncer_reserve_pool", 0, PG_MAX_BACKENDS),
    _r("pgbouncer_max_client_conn", 1, 10_000_000),
    _r("pgbouncer_max_db_connections", 0, PG_MAX_BACKENDS),
    _r("max_prepared_statements", 0, 1_000_000),
    _r("user_db_pairs", 1, 10_000),
    _r("rds_proxy_max_connections_percent", 1, 100,
       why="AWS's allowed range"),
    _r("app_instances", 1, 100_000),
    _r("max_app_instances", 1, 100_000),
    _r("deploy_surge_percent", 0, 100),
    _r("workers", 1, 1_024),
    _r("engines", 1, 64),
    _r("serverless_concurrency", 1, 1_000_000),
    _r("app_vcpus", 1, 1_024),
    _r("superuser_reserved", 0, PG_MAX_BACKENDS),
    _r("provider_reserved", 0, PG_MAX_BACKENDS),
    _r("admin_reserve", 0, PG_MAX_BACKENDS),
    _r("migrations_reserve", 0, PG_MAX_BACKENDS),
    _r("replication_reserve", 0, PG_MAX_BACKENDS),
    _r("split", 0, 1, integer=False, above=True),
    _r("rps", 0, 1_000_000, integer=False, above=True),
    _r("hold_ms", 0, 3_600_000, integer=False, above=True,
       why="one hour: a connection held longer is not a request"),
    _r("p95_hold_ms", 0, 3_600_000, integer=False, above=True),
    _r("current_pool_size", 0, PG_MAX_BACKENDS),
    _r("current_max_overflow", -1, PG_MAX_BACKENDS),
    _r("current_pool_recycle", -1, 31_536_000),
    _r("current_statement_cache_size", 0, 1_000_000),
    _r("weight", 0, 1_000, integer=False, above=True),
))


def check(key: str, value: float | int | None) -> None:
    """Raise ScenarioError (with `.key`) when a value lies outside its documented range."""
    if value is None or key not in RANGES:
        return
    r = RANGES[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > r.low if r.above else value >= r.low) and value <= r.high
        ok = ok and (not r.integer or float(value).is_integer())
    if not ok:
        shown = (f"{value:,}" if isinstance(value, int) else f"{value:g}"
                 if isinstance(value, float) else repr(value))
        why = f" ({r.why})" if r.why else ""
        raise ScenarioError(f"{field_name(key)} must be {r.words()}{why}, got {shown}", key=key)
