"""Connection budgets per database endpoint: max_connections, reserves, usable, shares.

Each endpoint (the primary, every replica) has its own max_connections and reserves
and is divided among exactly the processes that connect to it. A replica's budget
never comes out of the primary's.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard import bounds, catalog
from wizard.model import (
    POOLERS,
    ReserveItem,
    Scenario,
    ScenarioError,
    SizingError,
    surge,
)

DEFAULT_SUPERUSER_RESERVED = 3  # PostgreSQL's own default


@dataclass(frozen=True)
class EndpointSpec:
    """What is known about one endpoint before sizing: its limit and who connects."""

    role: str
    instance_class: str | None
    max_connections: int
    max_connections_source: str
    estimated: bool
    vcpu: float | None
    reserves: tuple[ReserveItem, ...]
    processes: int
    engines_per_process: int

    @property
    def reserved(self) -> int:
        return sum(r.count for r in self.reserves)

    @property
    def usable(self) -> int:
        return self.max_connections - self.reserved

    @property
    def clients(self) -> int:
        return self.processes * self.engines_per_process


def reserves_for(s: Scenario, primary: bool) -> tuple[ReserveItem, ...]:
    """Every reserve on one endpoint, each with where its number comes from."""
    items: list[ReserveItem] = []
    if s.reserves.superuser is not None:
        items.append(ReserveItem("superuser_reserved_connections", s.reserves.superuser, "you"))
    else:
        fact = catalog.provider_int(s.provider, "superuser_reserved_connections")
        count, src = fact if fact else (DEFAULT_SUPERUSER_RESERVED, "PostgreSQL default")
        items.append(ReserveItem("superuser_reserved_connections", count, src))
    if s.reserves.provider is not None:
        # An explicit (or measured) provider reserve replaces every documented one.
        items.append(ReserveItem("provider-reserved", s.reserves.provider, "you"))
    else:
        documented = (
            ("reserved_connections_pg16", "reserved_connections (PostgreSQL 16+)", 16),
            ("rds_reserved_connections", "rds.rds_reserved_connections", 17),
            ("provider_reserved", "provider-reserved", 0),
        )
        for key, name, since in documented:
            if s.pg_version >= since and (fact := catalog.provider_int(s.provider, key)):
                items.append(ReserveItem(name, *fact))
    items.append(ReserveItem("monitoring/admin", s.reserves.admin, "you"))
    if primary:
        items.append(ReserveItem("migrations", s.reserves.migrations, "you"))
        if s.reserves.replication_slots:
            items.append(ReserveItem("replication", s.reserves.replication_slots, "you"))
    return tuple(i for i in items if i.count)


def _limit(s: Scenario, instance_class: str | None, override: int | None,
           override_source: str | None) -> tuple[int, str, bool, float | None, str | None]:
    if override is not None:
        vcpu = None
        if instance_class:
            vcpu = catalog.instance_class(s.provider, instance_class).vcpu
        return override, override_source or "your override", False, vcpu, instance_class
    if not instance_class:
        raise SizingError(
            f"{s.provider} needs an instance class or a max_connections value.",
            "give --instance-class (see `python -m wizard catalog`) or --max-connections N "
            "(run SHOW max_connections).",
        )
    row = catalog.instance_class(s.provider, instance_class)
    value, label = row.max_connections, row.source_label
    low_minimum = row.family == "serverless-v2" and s.min_acu is not None and s.min_acu <= 0.5
    cap = catalog.provider_int(s.provider, "serverless_v2_low_min_acu_cap")
    if low_minimum and cap and value > cap[0]:
        value, label = cap[0], f"capped at {cap[0]} with a minimum of {s.min_acu:g} ACU ({cap[1]})"
    return value, label, row.estimated, row.vcpu, row.instance_class


def processes_at(s: Scenario, role: str, instances: int) -> int:
    """Client processes on one endpoint when the fleet's autoscaling maximum is `instances`
    (the concurrency when serverless), the rolling-deploy surge included.

    A replica with a fixed reader set keeps it whatever the fleet size.
    """
    if s.serverless_concurrency is not None:
        return instances
    if role != "primary":
        readers = s.replicas[int(role.rsplit("-", 1)[1]) - 1].reader_instances
        if readers is not None:
            instances = readers
    return (instances + surge(instances, s.deploy_surge_percent)) * s.workers


def endpoint_specs(s: Scenario) -> tuple[EndpointSpec, ...]:
    """The primary and each replica, with max_connections, reserves and client processes
    at the autoscaling peak."""
    top = s.serverless_concurrency or s.max_app_instances or s.app_instances
    mc, src, est, vcpu, cls = _limit(s, s.instance_class, s.max_connections,
                                     s.max_connections_source)
    specs = [EndpointSpec("primary", cls, mc, src, est, vcpu, reserves_for(s, True),
                          processes_at(s, "primary", top), s.engines_per_process)]
    for i, rep in enumerate(s.replicas, start=1):
        rcls = rep.instance_class or s.instance_class
        rmc, rsrc, rest, rvcpu, rcls = _limit(s, rcls, rep.max_connections, None)
        specs.append(EndpointSpec(f"replica-{i}", rcls, rmc, rsrc, rest, rvcpu,
                                  reserves_for(s, False), processes_at(s, f"replica-{i}", top),
                                  1))
    return tuple(specs)


@dataclass(frozen=True)
class ProxyLimits:
    """The proxy in front of one endpoint: server connections it opens, clients it takes."""

    server_pool: int
    server_pool_source: str
    configured_server_pool: int
    client_limit: int | None
    client_limit_source: str
    session_mode: bool
    pool_size_per_pair: int | None = None
    reserve_pool: int = 0


def proxy_limits(s: Scenario, spec: EndpointSpec, fleet_need: int | None) -> ProxyLimits | None:
    """Server and client side of the proxy on this endpoint, or None without a pooler.

    The recommended server pool never exceeds the endpoint's usable connections;
    `configured_server_pool` is what the proxy opens with the user's (or default)
    settings, which checks compare against usable.
    """
    if s.proxy not in POOLERS:
        return None
    ps = s.proxy_settings
    usable = spec.usable
    pairs = max(1, ps.user_db_pairs)
    session = s.proxy in ("pgbouncer-session", "supavisor-session")
    if s.proxy in ("pgbouncer-transaction", "pgbouncer-session"):
        default, src = catalog.proxy_int("pgbouncer", "default_pool_size", 20)
        per_pair = ps.pool_size or default
        configured = per_pair * pairs + ps.reserve_pool
        # Self-managed PgBouncer: recommend a pool that fits; grow it to the fleet's need.
        reserve = min(ps.reserve_pool, max(0, usable - pairs))
        fit = max(1, (usable - reserve) // pairs)
        want = per_pair if ps.pool_size else max(per_pair, -(-(fleet_need or 0) // pairs))
        dps = min(want, fit)
        client_default, csrc = catalog.proxy_int("pgbouncer", "max_client_conn", 100)
        # Self-managed: max_client_conn is the user's to set; only a given value binds.
        client_src = ("your max_client_conn" if ps.max_client_conn else
                      f"not set (PgBouncer's default is {client_default}, {csrc}); "
                      "the ini snippet sets it")
        return ProxyLimits(min(dps * pairs + reserve, usable),
                           f"default_pool_size {dps} x {pairs} pair(s) + reserve_pool {reserve}",
                           configured, ps.max_client_conn, client_src, session, dps, reserve)
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
        return ProxyLimits(min(configured, usable),
                           f"pgbouncer.default_pool_size x {pairs} ({src})",
                           configured, ps.max_client_conn or climit, csrc, False)
    if s.proxy == "neon-pooler":
        configured = int(spec.max_connections * 0.9) * pairs
        climit, csrc = catalog.proxy_int("neon-pooler", "max_client_conn", 10000)
        return ProxyLimits(min(configured, usable), "0.9 x max_connections per user/db pair",
                           configured, ps.max_client_conn or climit, csrc, False)
    # Supavisor: the pool size is a per-project setting; without one, assume all usable.
    per_pair = ps.pool_size or usable
    configured = per_pair * pairs
    climit, csrc = None, "Supavisor client limit unknown for this class"
    if spec.instance_class:
        row = catalog.instance_class(s.provider, spec.instance_class)
        if row.pooler_max_clients:
            climit, csrc = row.pooler_max_clients, f"pooler max clients ({row.source.url})"
    pool_src = "your Supavisor pool size" if ps.pool_size else "Supavisor pool size not given"
    return ProxyLimits(min(configured, usable), pool_src, configured,
                       ps.max_client_conn or climit, csrc, session)


def per_process_budget(s: Scenario, spec: EndpointSpec,
                       proxy: ProxyLimits | None) -> tuple[int | None, str]:
    """Connections one engine in one process may hold at most (None: no limit), and why."""
    clients = spec.clients
    if spec.usable < 1:
        raise SizingError(
            f"{spec.role}: max_connections {spec.max_connections} leaves nothing after "
            f"{spec.reserved} reserved.",
            "lower the reserves or pick a bigger instance class.",
        )
    if proxy is None:
        share = spec.usable // clients
        if share < 1:
            raise SizingError(
                f"{spec.role}: {spec.usable} usable connections cannot give each of "
                f"{clients} client engines even one connection.",
                f"fewer processes (at most {spec.usable} engines), a bigger instance class, "
                "or a pooling proxy (PgBouncer transaction mode / RDS Proxy) in front.",
            )
        return share, f"({spec.max_connections:,} - {spec.reserved}) / {clients:,}"
    if proxy.session_mode:
        share = proxy.server_pool // clients
        if share < 1:
            raise SizingError(
                f"{spec.role}: a session-mode pooler with {proxy.server_pool} server "
                f"connections cannot give each of {clients} client engines one.",
                "use transaction mode, fewer processes or a bigger server pool.",
            )
        return share, f"server pool {proxy.server_pool} / {clients:,}"
    if proxy.client_limit is None:
        return None, "no client limit"
    share = proxy.client_limit // clients
    if share < 1:
        raise SizingError(
            f"{spec.role}: the proxy accepts {proxy.client_limit} clients, fewer than "
            f"{clients} client engines.",
            f"raise max_client_conn to at least {clients} or reduce processes.",
        )
    return share, f"client limit {proxy.client_limit:,} / {clients:,}"


# Proxies tied to one provider; the rest (none, pgbouncer-*) run with every provider.
PROXY_PROVIDERS = {
    "rds-proxy": ("aws-rds", "aws-aurora"),
    "cloudsql-auth-proxy": ("gcp-cloudsql",),
    "cloudsql-connector": ("gcp-cloudsql",),
    "azure-pgbouncer": ("azure-flexible",),
    "supavisor-transaction": ("supabase",),
    "supavisor-session": ("supabase",),
    "neon-pooler": ("neon",),
}


def scenario_numbers(s: Scenario) -> dict[str, float | int | None]:
    """Every numeric input of a scenario under its share/CLI key (replicas excluded)."""
    ps, rs, load, cur = s.proxy_settings, s.reserves, s.load, s.current
    return {
        "max_connections": s.max_connections, "min_acu": s.min_acu,
        "pg_version": s.pg_version, "replicas": len(s.replicas),
        "pgbouncer_pool_size": ps.pool_size, "pgbouncer_reserve_pool": ps.reserve_pool,
        "pgbouncer_max_client_conn": ps.max_client_conn,
        "max_prepared_statements": ps.max_prepared_statements,
        "user_db_pairs": ps.user_db_pairs,
        "rds_proxy_max_connections_percent": ps.rds_proxy_max_connections_percent,
        "app_instances": s.app_instances, "max_app_instances": s.max_app_instances,
        "deploy_surge_percent": s.deploy_surge_percent, "workers": s.workers,
        "engines": s.engines_per_process, "serverless_concurrency": s.serverless_concurrency,
        "app_vcpus": s.app_vcpus, "superuser_reserved": rs.superuser,
        "provider_reserved": rs.provider, "admin_reserve": rs.admin,
        "migrations_reserve": rs.migrations, "replication_reserve": rs.replication_slots,
        "split": s.pool_split, "rps": load.rps if load else None,
        "hold_ms": load.hold_ms if load else None,
        "p95_hold_ms": load.p95_hold_ms if load else None,
        "current_pool_size": cur.pool_size if cur else None,
        "current_max_overflow": cur.max_overflow if cur else None,
        "current_pool_recycle": cur.pool_recycle if cur else None,
    }


def validate(s: Scenario) -> None:
    """Raise ScenarioError naming the first bad value and the valid choices."""
    from wizard.model import NETWORK_CUTOFFS, PROXIES

    # Ranges first: nothing below may do work that grows with a number.
    for key, value in scenario_numbers(s).items():
        bounds.check(key, value)
    for rep in s.replicas:
        bounds.check("replica_max_connections", rep.max_connections)
        bounds.check("replica_readers", rep.reader_instances)
    catalog.check_provider(s.provider)
    if s.proxy not in PROXIES:
        raise ScenarioError(f"unknown proxy {s.proxy!r}; valid choices: {', '.join(PROXIES)}")
    allowed = PROXY_PROVIDERS.get(s.proxy)
    if allowed and s.provider not in allowed:
        raise ScenarioError(f"proxy {s.proxy!r} runs only with {', '.join(allowed)}, "
                            f"not {s.provider}")
    if s.proxy == "azure-pgbouncer" and s.instance_class and catalog.instance_class(
            s.provider, s.instance_class).family.lower() == "burstable":
        raise ScenarioError(f"Azure's built-in PgBouncer is not offered on Burstable SKUs "
                            f"({s.instance_class}); pick a General Purpose or Memory Optimized "
                            "SKU, or --proxy pgbouncer-transaction with your own PgBouncer")
    if s.max_app_instances is not None and s.max_app_instances < s.app_instances:
        raise ScenarioError(f"the autoscaling maximum ({s.max_app_instances:,}) must be at "
                            f"least the app instances ({s.app_instances:,})",
                            key="max_app_instances")
    if s.load is not None and s.load.p95_hold_ms is not None and (
            s.load.p95_hold_ms < s.load.hold_ms):
        raise ScenarioError(f"p95 hold time ({s.load.p95_hold_ms:g} ms) must be at least "
                            f"the mean ({s.load.hold_ms:g} ms)", key="p95_hold_ms")
    for item in s.network:
        if item not in NETWORK_CUTOFFS:
            raise ScenarioError(f"unknown network element {item!r}; valid choices: "
                                f"{', '.join(NETWORK_CUTOFFS)}", key="network")
