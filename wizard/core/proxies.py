"""Per-proxy limits: what a pooler or proxy on the path may open to the database (its
server pool) and accept from the clients (its client limit), from its documented defaults
and the settings given.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.core import catalog
from wizard.core.limits import EndpointSpec
from wizard.core.model import (
    POOLERS,
    SESSION_POOLERS,
    Scenario,
)

# Without load, pool_size + max_overflow per engine: a little above SQLAlchemy's 5 + 10.
NO_LOAD_TOTAL_CAP = 20


# Behind a pooler the proxy does the pooling: a small client pool is enough.
POOLER_TOTAL_CAP = 10


def rds_proxy_skips_replicas(s: Scenario) -> bool:
    """RDS Proxy on RDS for PostgreSQL serves only the writer; replicas are reached directly."""
    return s.proxy == "rds-proxy" and s.provider == "aws-rds" and bool(
        catalog.proxy_fact("rds-proxy", "read_replicas_rds"))


@dataclass(frozen=True)
class ProxyLimits:
    """The proxy in front of one endpoint: server connections it opens, clients it takes.

    `server_pool` is what one service's clients can reach: behind a pooler with a pool per
    user/database pair (PgBouncer, Azure's PgBouncer, Neon's pooler) one URL is one pair, so
    one pool (default_pool_size + reserve_pool_size). `total_server_pool` is what the proxy
    opens on the endpoint over all `pairs`, and `configured_server_pool` the same with the
    user's (or default) settings, which checks compare against usable.
    """

    server_pool: int
    server_pool_source: str
    configured_server_pool: int
    client_limit: int | None
    client_limit_source: str
    session_mode: bool
    pool_size_per_pair: int | None = None
    reserve_pool: int = 0
    pairs: int = 1
    total_server_pool: int | None = None

    @property
    def total(self) -> int:
        """Server connections the proxy may open on the endpoint over all its pairs."""
        return self.server_pool if self.total_server_pool is None else self.total_server_pool


# Poolers with one pool per user/database pair: a service's URL (one user, one database)
# reaches one pool, never the pools of other pairs.
PAIR_POOLERS = frozenset({"pgbouncer-transaction", "pgbouncer-session", "azure-pgbouncer",
                          "neon-pooler"})


def pool_key(proxy: str) -> str:
    """Services whose pooler paths share one server pool: Supavisor has one pool size per
    project, shared by its session (5432) and transaction (6543) ports."""
    return "supavisor" if proxy.startswith("supavisor") else proxy


def pgbouncer_server_connections(pool_size: int, reserve: int, pairs: int,
                                 max_db_connections: int | None = None) -> int:
    """Server connections a PgBouncer may open on one database: reserve_pool_size is per
    pool, as default_pool_size is, so (default_pool_size + reserve_pool_size) x pairs,
    capped by max_db_connections when it is set (PgBouncer's config.md)."""
    total = (pool_size + reserve) * pairs
    return min(total, max_db_connections) if max_db_connections else total


def neon_pool_fraction() -> float:
    """Neon's pooler pool per user/database pair, as a share of max_connections (data)."""
    fact = catalog.proxy_fact("neon-pooler", "default_pool_size")
    return float(fact[0]) if fact else 0.9


def proxy_limits(s: Scenario, spec: EndpointSpec, fleet_need: int | None,
                 services: int = 1) -> ProxyLimits | None:
    """Server and client side of the proxy on this endpoint, or None without a pooler.

    The recommended server pool never exceeds the endpoint's usable connections;
    `configured_server_pool` is what the proxy opens with the user's (or default)
    settings, which checks compare against usable. `services`: how many services reach
    the endpoint through this pooler (each with its own URL, so its own pair).
    """
    if s.proxy not in POOLERS or (spec.role != "primary" and rds_proxy_skips_replicas(s)):
        return None
    ps = s.proxy_settings
    usable = spec.budget
    # One URL is one user/database pair: each service behind the pooler has its own, and
    # the pooler serves at least the pairs the user counts.
    pairs = max(1, ps.user_db_pairs, services)
    session = s.proxy in SESSION_POOLERS
    if s.proxy in ("pgbouncer-transaction", "pgbouncer-session"):
        default, src = catalog.proxy_int("pgbouncer", "default_pool_size", 20)
        per_pair = ps.pool_size or default
        cap = ps.max_db_connections
        configured = pgbouncer_server_connections(per_pair, ps.reserve_pool, pairs, cap)
        # Self-managed PgBouncer: recommend a pool that fits; grow it to the fleet's need
        # (all of it on one pair: the service's engines connect with one URL).
        # A max_db_connections within usable already bounds what the database sees.
        room = cap if cap and cap <= usable else max(1, usable // pairs)
        reserve = min(ps.reserve_pool, room - 1)
        fit = max(1, room - reserve)
        want = per_pair if ps.pool_size else max(per_pair, fleet_need or 0)
        dps = min(want, fit)
        total = pgbouncer_server_connections(dps, reserve, pairs, cap)
        client_default, csrc = catalog.proxy_int("pgbouncer", "max_client_conn", 100)
        # Self-managed: max_client_conn is the user's to set; only a given value binds.
        client_src = ("your max_client_conn" if ps.max_client_conn else
                      f"not set (PgBouncer's default is {client_default}, {csrc}); "
                      "the ini snippet sets it")
        how = (f"default_pool_size {dps} + reserve_pool_size {reserve} per user/database "
               "pair (one URL is one pair)")
        capped = bool(cap) and total < (dps + reserve) * pairs
        if pairs > 1 or capped:
            how += f"; ({dps} + {reserve}) x {pairs} pair(s)"
            how += f" capped by max_db_connections {cap:,}" if capped else ""
            how += f" = {total:,} on the endpoint"
        per_url = min(dps + reserve, cap) if cap else dps + reserve
        return ProxyLimits(min(per_url, usable), how, configured, ps.max_client_conn,
                           client_src, session, dps, reserve, pairs, min(total, usable))
    if s.proxy == "rds-proxy":
        pct = ps.rds_proxy_max_connections_percent
        configured = spec.max_connections * pct // 100
        client_limit = None
        return ProxyLimits(min(configured, usable), f"MaxConnectionsPercent {pct}% of "
                           f"max_connections", configured, client_limit,
                           "RDS Proxy has no client connection quota per proxy", False)
    if s.proxy == "azure-pgbouncer":
        default, src = catalog.proxy_int("azure-pgbouncer", "default_pool_size", 50)
        per_pair = ps.pool_size or default
        configured = per_pair * pairs
        climit, csrc = catalog.proxy_int("azure-pgbouncer", "max_client_conn", 5000)
        how = f"pgbouncer.default_pool_size {per_pair} per user/database pair ({src})"
        if pairs > 1:
            how += f"; x {pairs} pairs = {configured:,} on the endpoint"
        # What one pair may open within the endpoint's budget (the fix names the value).
        return ProxyLimits(min(per_pair, max(1, usable // pairs)), how, configured,
                           ps.max_client_conn or climit, csrc, False, per_pair, 0, pairs,
                           min(configured, usable))
    if s.proxy == "neon-pooler":
        per_pair = int(spec.max_connections * neon_pool_fraction())
        configured = per_pair * pairs
        climit, csrc = catalog.proxy_int("neon-pooler", "max_client_conn", 10000)
        how = (f"Neon's fixed pool: {neon_pool_fraction():g} x max_connections = {per_pair:,} "
               "per user/database pair")
        if pairs > 1:
            how += f"; x {pairs} pairs = {configured:,} on the endpoint"
        # What one pair may open within the endpoint's budget (the fix names the value).
        return ProxyLimits(min(per_pair, max(1, usable // pairs)), how, configured,
                           ps.max_client_conn or climit, csrc, False, per_pair, 0, pairs,
                           min(configured, usable))
    # Supavisor: the pool size is a per-project setting Supabase pre-configures per compute
    # size without publishing it. Given: use it. Not given: recommend one within usable,
    # sized to the fleet's load, else Supabase's conservative 40 % of max_connections.
    # The services behind it share its one pool (_share_server_pool).
    pairs = max(1, ps.user_db_pairs)
    fit = max(1, usable // pairs)
    if ps.pool_size:
        per_pair, pool_src = ps.pool_size, "your Supavisor pool size"
    else:
        if fleet_need:
            want = -(-fleet_need // pairs)
        else:
            pct, _ = catalog.provider_int(s.provider, "services_reserved_percent_heavy_data_api"
                                          ) or (60, "")
            want = spec.max_connections * (100 - pct) // 100 // pairs
        per_pair = max(1, min(want, fit))
        pool_src = (f"Supavisor pool size not given (Supabase does not publish its per-size "
                    f"default): set {per_pair} in Database Settings")
    configured = per_pair * pairs
    climit, csrc = None, "Supavisor client limit unknown for this class"
    if spec.instance_class:
        row = catalog.instance_class(s.provider, spec.instance_class)
        if row.pooler_max_clients:
            climit, csrc = row.pooler_max_clients, f"pooler max clients ({row.source.url})"
    return ProxyLimits(min(configured, usable), pool_src, configured,
                       ps.max_client_conn or climit, csrc, session, per_pair)


def bigger_pooler_class(s: Scenario, clients: int) -> str | None:
    """The smallest compute size whose pooler takes `clients` client connections."""
    for row in catalog.catalog(s.provider):
        if row.pooler_max_clients and row.pooler_max_clients >= clients:
            return f"{row.instance_class} ({row.pooler_max_clients:,} clients)"
    return None


def client_limit_fix(s: Scenario, clients: int) -> str:
    """What a user of this proxy can do when the fleet opens more clients than it accepts."""
    if s.proxy.startswith("supavisor"):
        bigger = bigger_pooler_class(s, clients)
        size = (f"a bigger compute size (Supavisor's client limit comes with it: {bigger})"
                if bigger else "fewer processes: no compute size takes that many clients")
        return f"{size}, or fewer processes or smaller client pools"
    if s.proxy == "neon-pooler":
        climit, _ = catalog.proxy_int("neon-pooler", "max_client_conn", 10000)
        return (f"fewer processes or smaller client pools: Neon's pooler accepts {climit:,} "
                "clients and its settings cannot be changed")
    if s.proxy == "azure-pgbouncer":
        return (f"raise the server parameter pgbouncer.max_client_conn to at least {clients:,}, "
                "or reduce processes")
    return (f"raise max_client_conn to at least {clients:,} (the ini snippet does) or reduce "
            "processes")


# The pooler a user of each provider can put in front of an endpoint.
POOLER_ADVICE = {
    "aws-rds": "RDS Proxy or PgBouncer in transaction mode",
    "aws-aurora": "RDS Proxy or PgBouncer in transaction mode",
    "gcp-cloudsql": "PgBouncer in transaction mode (the Cloud SQL Auth Proxy does not pool)",
    "azure-flexible": "the built-in PgBouncer (General Purpose / Memory Optimized) or your own",
    "supabase": "Supavisor in transaction mode (port 6543)",
    "neon": "Neon's pooler (the -pooler host name)",
}


def no_load_cap(pooled: bool) -> int:
    """pool_size + max_overflow per engine when no load is given (smaller behind a pooler,
    which does the pooling)."""
    return POOLER_TOTAL_CAP if pooled else NO_LOAD_TOTAL_CAP
