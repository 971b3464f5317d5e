"""Connection budgets per database endpoint: max_connections, reserves, usable, shares.

Each endpoint (the primary, every replica) has its own max_connections and reserves
and is divided among exactly the processes that connect to it. A replica's budget
never comes out of the primary's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wizard.core import bounds, catalog
from wizard.core.model import (
    POOLERS,
    SESSION_POOLERS,
    Replica,
    ReserveItem,
    Scenario,
    ScenarioError,
    SizingError,
    surge,
)
from wizard.scenario import links

DEFAULT_SUPERUSER_RESERVED = 3  # PostgreSQL's own default
# Without load, pool_size + max_overflow per engine: a little above SQLAlchemy's 5 + 10.
NO_LOAD_TOTAL_CAP = 20
# Behind a pooler the proxy does the pooling: a small client pool is enough.
POOLER_TOTAL_CAP = 10


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
    # The part of usable this service (or its pooler) may use when services share the
    # endpoint, and how it was set; None: all of usable.
    allotment: int | None = None
    allotment_how: str = ""

    @property
    def reserved(self) -> int:
        return sum(r.count for r in self.reserves)

    @property
    def usable(self) -> int:
        return self.max_connections - self.reserved

    @property
    def budget(self) -> int:
        """Connections this service's side may use: its allotment, else all of usable."""
        return self.usable if self.allotment is None else self.allotment

    @property
    def clients(self) -> int:
        return self.processes * self.engines_per_process


def _rds_reserved_applies(s: Scenario) -> tuple[bool, str]:
    """Whether this version has rds.rds_reserved_connections, and from which minor."""
    fact = catalog.provider_fact(s.provider, "rds_reserved_connections_from")
    if not fact:
        return False, ""
    firsts: dict[int, int] = {}
    for item in fact[0].split():
        major, _, minor = item.partition(".")
        firsts[int(major)] = int(minor or 0)
    if s.pg_version < min(firsts):
        return False, ""
    if s.pg_version not in firsts:
        return True, f"{s.pg_version}.x"  # majors after the list have it from their first minor
    since = f"{s.pg_version}.{firsts[s.pg_version]}+"
    # No minor given: a new instance gets the current minor, which has it.
    return s.pg_minor is None or s.pg_minor >= firsts[s.pg_version], since


def services_reserved(max_connections: int, pct: int) -> int:
    """Connections left to a provider's services when its guidance gives the app at most
    (100 - pct) % of max_connections (the app's share rounded down)."""
    return max_connections - max_connections * (100 - pct) // 100


def _services_reserve(s: Scenario, max_connections: int) -> ReserveItem | None:
    """Connections a provider's own services hold (Supabase: what its pool guidance leaves)."""
    fact = catalog.provider_int(s.provider, "services_reserved_percent")
    if not fact:
        return None
    pct, url = fact
    return ReserveItem(f"provider services (Auth, Storage, PostgREST, Realtime: {pct}% of "
                       "max_connections)", services_reserved(max_connections, pct), url)


def reserves_for(s: Scenario, primary: bool,
                 max_connections: int = 0) -> tuple[ReserveItem, ...]:
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
        if s.pg_version >= 16 and (fact := catalog.provider_int(s.provider,
                                                                 "reserved_connections_pg16")):
            items.append(ReserveItem("reserved_connections (PostgreSQL 16+)", *fact))
        has_rds, since = _rds_reserved_applies(s)
        if has_rds and (fact := catalog.provider_int(s.provider, "rds_reserved_connections")):
            items.append(ReserveItem(f"rds.rds_reserved_connections ({since})", *fact))
        if fact := catalog.provider_int(s.provider, "provider_reserved"):
            items.append(ReserveItem("provider-reserved", *fact))
        if services := _services_reserve(s, max_connections):
            items.append(services)
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
            "give an instance class or the max_connections you measured "
            "(run SHOW max_connections).",
        )
    row = catalog.instance_class(s.provider, instance_class)
    value, label = row.max_connections, row.source_label
    cap = catalog.provider_int(s.provider, "serverless_v2_low_min_acu_cap")
    # 0 and 0.5 ACU are valid minimums: without a stated minimum, assume the cap.
    low_minimum = row.family == "serverless-v2" and (s.min_acu is None or s.min_acu <= 0.5)
    if low_minimum and cap and value > cap[0]:
        given = ("minimum ACU not given" if s.min_acu is None
                 else f"minimum {s.min_acu:g} ACU")
        value, label = cap[0], (f"capped at {cap[0]:,}: {given}, 0/0.5 ACU cap; give min ACU "
                                f">= 1 to lift ({cap[1]})")
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


def replica_rule(provider: str) -> tuple[str, str]:
    """How a provider sets a replica's max_connections against the primary's, and the source.

    'at least primary' (streaming hot standby), 'same as primary' (same compute size),
    'follows primary' (synced from the primary), 'independent', or '' when unknown.
    """
    fact = catalog.provider_fact(provider, "replica_max_connections")
    return (fact[0], fact[1].url) if fact else ("", "")


_INHERIT_WHY = {
    "same as primary": "replicas run on the primary's compute size",
    "follows primary": "synced from the primary when the replica starts",
}


def _replica_limit(s: Scenario, rep: Replica, primary: tuple[int, str, bool, float | None,
                                                              str | None],
                   ) -> tuple[int, str, bool, float | None, str | None]:
    """A replica's max_connections: measured, its own class's, or the primary's."""
    rule, url = replica_rule(s.provider)
    if rep.max_connections is not None:
        return _limit(s, rep.instance_class or s.instance_class, rep.max_connections, None)
    if rep.instance_class is None or rule in _INHERIT_WHY:
        mc, _, est, vcpu, cls = primary
        if rep.instance_class is not None:
            vcpu, cls = catalog.instance_class(s.provider, rep.instance_class).vcpu, \
                rep.instance_class
        why = _INHERIT_WHY.get(rule, "a replica without its own value gets the primary's")
        return mc, f"the primary's max_connections ({why}; {url or 'PostgreSQL hot standby'})", \
            est, vcpu, cls
    return _limit(s, rep.instance_class, None, None)


def fleet_sentence(s: Scenario) -> str:
    """How many client engines connect at the peak, as one sentence of arithmetic."""
    if s.serverless_concurrency is not None:
        return (f"Client engines at the peak: {s.serverless_concurrency:,} concurrent "
                f"invocations x {s.engines_per_process} engine(s) = "
                f"{s.serverless_concurrency * s.engines_per_process:,}.")
    top = s.autoscaling_max
    kind = "autoscaling maximum" if s.max_app_instances else "instances"
    extra = surge(top, s.deploy_surge_percent)
    return (f"Client engines at the peak: {top:,} {kind} + {s.deploy_surge_percent}% "
            f"rolling-deploy surge ({extra:,}) = {top + extra:,} instances x {s.workers} "
            f"worker(s) x {s.engines_per_process} engine(s) = "
            f"{processes_at(s, 'primary', top) * s.engines_per_process:,} on the primary.")


def endpoint_specs(s: Scenario) -> tuple[EndpointSpec, ...]:
    """The primary and each replica, with max_connections, reserves and client processes
    at the autoscaling peak."""
    top = s.fleet_size
    primary = _limit(s, s.instance_class, s.max_connections, s.max_connections_source)
    mc, src, est, vcpu, cls = primary
    # vCPUs typed for the database describe the primary (and replicas without a class's).
    specs = [EndpointSpec("primary", cls, mc, src, est, s.db_vcpus or vcpu,
                          reserves_for(s, True, mc),
                          processes_at(s, "primary", top), s.engines_per_process)]
    for i, rep in enumerate(s.replicas, start=1):
        rmc, rsrc, rest, rvcpu, rcls = _replica_limit(s, rep, primary)
        specs.append(EndpointSpec(f"replica-{i}", rcls, rmc, rsrc, rest, rvcpu or s.db_vcpus,
                                  reserves_for(s, False, rmc),
                                  processes_at(s, f"replica-{i}", top), 1))
    return tuple(specs)


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
_POOLER_ADVICE = {
    "aws-rds": "RDS Proxy or PgBouncer in transaction mode",
    "aws-aurora": "RDS Proxy or PgBouncer in transaction mode",
    "gcp-cloudsql": "PgBouncer in transaction mode (the Cloud SQL Auth Proxy does not pool)",
    "azure-flexible": "the built-in PgBouncer (General Purpose / Memory Optimized) or your own",
    "supabase": "Supavisor in transaction mode (port 6543)",
    "neon": "Neon's pooler (the -pooler host name)",
}


def per_process_budget(s: Scenario, spec: EndpointSpec, proxy: ProxyLimits | None,
                       group_share: Share | None = None) -> tuple[int | None, str]:
    """Connections one engine in one process may hold at most (None: no limit), and why.

    Behind a pooler several services share, `group_share` is this service's part of the
    pooler's binding limit (its server pool in session mode, else its client limit).
    """
    clients = spec.clients
    if spec.usable < 1:
        raise SizingError(
            f"{spec.role}: max_connections {spec.max_connections} leaves nothing after "
            f"{spec.reserved} reserved.",
            "lower the reserves or pick a bigger instance class.",
        )
    if proxy is None:
        share = spec.budget // clients
        if share < 1 and spec.allotment is not None:
            raise SizingError(
                f"{spec.role}: this service's share of the usable connections "
                f"({spec.budget:,}: {spec.allotment_how}) cannot give each of {clients:,} "
                "client engines even one connection.",
                "fewer processes, a bigger instance class, fewer services on this endpoint, "
                "or a pooling proxy in front: "
                f"{_POOLER_ADVICE.get(s.provider, 'PgBouncer in transaction mode')}.",
            )
        if share < 1:
            raise SizingError(
                f"{spec.role}: {spec.usable} usable connections cannot give each of "
                f"{clients} client engines even one connection.",
                f"fewer processes (at most {spec.usable} engines), a bigger instance class, "
                "or a pooling proxy in front: "
                f"{_POOLER_ADVICE.get(s.provider, 'PgBouncer in transaction mode')}.",
            )
        if spec.allotment is not None:
            return share, f"share {spec.budget:,} ({spec.allotment_how}) / {clients:,}"
        return share, f"({spec.max_connections:,} - {spec.reserved}) / {clients:,}"
    if group_share is not None and (proxy.session_mode or proxy.client_limit is not None):
        share = group_share.value // clients
        side = "server pool" if proxy.session_mode else "client limit"
        if share < 1:
            raise SizingError(
                f"{spec.role}: this service's share of the proxy's {side} "
                f"({group_share.value:,}: {group_share.how}) cannot give each of "
                f"{clients:,} client engines one connection.",
                (client_limit_fix(s, clients) if not proxy.session_mode else
                 "use transaction mode, fewer processes or a bigger server pool") + ".")
        return share, f"share {group_share.value:,} of the {side} ({group_share.how}) / {clients:,}"
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
            client_limit_fix(s, clients) + ".",
        )
    return share, f"client limit {proxy.client_limit:,} / {clients:,}"


# A cron or migration-style service without a load: pool_size + max_overflow per engine.
FIXED_SHARE_PER_ENGINE = 2
# Share tiers, served in this order after every member's floor: fixed small shares, then
# needs, then weights.
TIERS = ("fixed", "need", "weight")


@dataclass(frozen=True)
class Claim:
    """What one member (a service, or a pooler its services share) asks of a limit.

    `tier`: "fixed" (cron/migrations: a small fixed share, all of it its floor), "need" (a
    load or a pooler's server pool), "weight" (no load: split by `weight` per client
    engine); `demand` is the most it can use. `engines` counts its client engines: floors
    and weights are per engine. `floor` is what it cannot run with less of (default: the
    whole demand for "fixed", else 1 per engine; a serverless service's 1 per concurrent
    invocation is its whole demand). `firm` is the part of a need kept before its elastic
    part (the burst margin) is cut (default: the whole demand). `unit` names what an
    engine is in a refusal ("concurrent invocation" for a serverless service).
    """

    name: str
    tier: str
    demand: int
    weight: float = 1.0
    engines: int = 1
    floor: int | None = None
    firm: int | None = None
    unit: str = "client engine"

    @property
    def base(self) -> int:
        """The floor: served before any tier, never cut."""
        if self.floor is not None:
            return min(self.floor, self.demand)
        return self.demand if self.tier == "fixed" else min(self.engines, self.demand)

    @property
    def kept(self) -> int:
        """The part of a need cut only after every other need's elastic part."""
        return max(self.base, min(self.firm if self.firm is not None else self.demand,
                                  self.demand))


@dataclass(frozen=True)
class Share:
    """A member's part of a limit and how it was set."""

    value: int
    how: str


def largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """total split by weights in whole connections that sum to it (largest remainder): how
    a shared pooler's server pool is divided among the services behind it."""
    whole = sum(weights)
    raw = [total * w / whole if whole else 0.0 for w in weights]
    part = [int(x) for x in raw]
    for k in sorted(range(len(raw)), key=lambda k: part[k] - raw[k])[:total - sum(part)]:
        part[k] += 1
    return part


def _per_engine_level(room: int, members: list[tuple[int, float, int, int]]) -> list[int]:
    """Connections per engine for weighted members sharing `room`: the highest level L at
    which each gets min(cap, max(1, floor(L x weight))) per engine and their totals (that x
    engines, between floor and demand) fit. `members`: (engines, weight, floor, demand).
    The same weight and cap per engine give the same number per engine; a bisection, so
    the cost does not grow with room."""
    def per(level: float) -> list[int]:
        return [min(max(1, d // e), max(1, math.floor(level * w + 1e-9)))
                for e, w, _, d in members]

    def total(level: float) -> int:
        return sum(min(d, max(f, p * e))
                   for p, (e, _, f, d) in zip(per(level), members, strict=True))

    lo, hi = 0.0, max(d / e / w for e, w, _, d in members) + 1
    if total(hi) <= room:
        return per(hi)
    for _ in range(100):
        mid = (lo + hi) / 2
        if total(mid) <= room:
            lo = mid
        else:
            hi = mid
    return per(lo)


def floors_refusal(what: str, limit: int, claims: Sequence[Claim]) -> str:
    """Why floors do not fit, naming each member's floor and the excess."""
    need = sum(c.base for c in claims)
    parts = " + ".join(f"{c.name} {c.base:,} ({_floor_words(c)})"
                       for c in sorted(claims, key=lambda c: -c.base) if c.base)
    return (f"{what} cannot hold every service's floor: {parts} = {need:,}, "
            f"{need - limit:,} over.")


def _floor_words(c: Claim) -> str:
    if c.tier == "fixed":
        return f"fixed share: {c.demand // max(1, c.engines):,} per engine x {c.engines:,}"
    if c.floor is not None and c.floor < c.engines:
        return "at least one server connection"
    return f"1 per {c.unit} x {c.engines:,}"


def shares(limit: int, claims: Sequence[Claim], what: str = "the limit",
           fix: str = "fewer processes or a bigger limit") -> tuple[Share, ...]:
    """The only place a limit (an endpoint's usable connections, or a pooler's limit) is
    divided among the members that use it.

    First every member's floor (1 per client engine; 1 per concurrent invocation for a
    serverless service; cron's fixed share); when the floors alone exceed the limit, a
    SizingError names each member's floor and the excess (`what` names the limit, `fix`
    says what to change). Then needs: their firm part (the burst need), then their elastic
    part (the burst margin), each pro rata when it does not fit. Then the weighted members,
    per client engine: each engine gets the same number x its service's weight, up to what
    it can use. What is then left goes to every member by weight x engines, so one member
    alone gets the whole limit. Members' pools stay capped by their own need or cap, so the
    extra is headroom they may not use. The cost grows with the number of members only.
    """
    n = len(claims)
    if n == 1:
        return (Share(limit, "the whole budget"),)
    floors = [c.base for c in claims]
    if sum(floors) > limit:
        raise SizingError(floors_refusal(what, limit, claims), fix)
    got = list(floors)
    how = [f"floor {f:,}" if c.tier != "fixed" else f"fixed {c.demand:,}"
           for f, c in zip(floors, claims, strict=True)]
    left = limit - sum(floors)
    needs = [i for i, c in enumerate(claims) if c.tier == "need"]
    cut: dict[int, str] = {}  # need members cut, and what was cut
    for part, top in (("firm", lambda c: c.kept), ("margin", lambda c: c.demand)):
        asks = [max(0, top(claims[i]) - got[i]) for i in needs]
        gives = asks if sum(asks) <= left else largest_remainder(left, asks)
        for i, ask, give in zip(needs, asks, gives, strict=True):
            got[i] += give
            if give < ask:
                cut.setdefault(i, "its burst margin cut first" if part == "margin"
                               else "its burst margin cut, then its burst need")
        left -= sum(gives)
    for i in needs:
        how[i] = (f"need {claims[i].demand:,} cut pro rata to {got[i]:,} ({cut[i]}; its "
                  f"floor of {floors[i]:,} kept)" if i in cut
                  else f"need {claims[i].demand:,}")
    open_ = [i for i, c in enumerate(claims) if c.tier == "weight"]
    if open_:
        rows = [(max(1, claims[i].engines), claims[i].weight, floors[i], claims[i].demand)
                for i in open_]
        level = _per_engine_level(left + sum(floors[i] for i in open_), rows)
        for i, p, (e, *_) in zip(open_, level, rows, strict=True):
            total = min(claims[i].demand, max(floors[i], p * e))
            left -= total - got[i]
            got[i] = total
            how[i] = f"weight {claims[i].weight:g}: {p:,} per engine x {e:,}"
        # The level is whole connections per engine, so some of `left` may be a remainder
        # smaller than one per engine: it goes first to members still short of what they
        # can use, or a member whose demand fits could end below it. Each round fills one
        # member or spends all that is left, so at most len(open_) rounds.
        for _ in open_:
            short = [i for i in open_ if got[i] < claims[i].demand]
            if left <= 0 or not short:
                break
            gives = largest_remainder(left, [claims[i].weight * max(1, claims[i].engines)
                                             for i in short])
            for i, give in zip(short, gives, strict=True):
                give = min(give, claims[i].demand - got[i])
                if give:
                    got[i] += give
                    left -= give
                    how[i] += f" + {give:,} of the remainder"
    if left > 0:
        extra = largest_remainder(left, [c.weight * max(1, c.engines) for c in claims])
        for i in range(n):
            got[i] += extra[i]
            if extra[i]:
                how[i] += f" + {extra[i]:,} of what is left"
    return tuple(Share(g, h) for g, h in zip(got, how, strict=True))


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


def validate(s: Scenario) -> None:
    """Raise ScenarioError naming the first bad value and the valid choices."""
    from wizard.core.model import NETWORK_CUTOFFS, PROXIES

    # Ranges first: nothing below may do work that grows with a number.
    for key, value in links.values(s).items():
        if links.BY_KEY[key].kind in ("int", "float"):
            bounds.check(key, value)
    for rep in s.replicas:
        bounds.check("replica_max_connections", rep.max_connections)
        bounds.check("replica_readers", rep.reader_instances)
    catalog.check_provider(s.provider)
    if s.proxy not in PROXIES:
        raise ScenarioError(f"unknown proxy {s.proxy!r}; valid choices: {', '.join(PROXIES)}",
                            key="proxy")
    allowed = PROXY_PROVIDERS.get(s.proxy)
    if allowed and s.provider not in allowed:
        raise ScenarioError(f"proxy {s.proxy!r} runs only with {', '.join(allowed)}, "
                            f"not {s.provider}", key="proxy")
    if s.proxy == "azure-pgbouncer" and s.instance_class and catalog.instance_class(
            s.provider, s.instance_class).family.lower() == "burstable":
        raise ScenarioError(f"Azure's built-in PgBouncer is not offered on Burstable SKUs "
                            f"({s.instance_class}); pick a General Purpose or Memory Optimized "
                            "SKU, or your own PgBouncer in transaction mode", key="proxy")
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
    validate_topology(s)


# At most this many services share one database (bounded work per scenario).
MAX_SERVICES = bounds.MAX_SERVICES


def validate_services(s: Scenario) -> None:
    """Refuse a service list poolwise cannot size: too many, bad or repeated names, unknown
    kinds or endpoints, a weight out of range (fleet values are checked per service).
    Errors are keyed by the service's own parameter (`s2_name`)."""
    from wizard.core.model import SERVICE_KINDS
    if not s.services:
        return
    if len(s.services) > MAX_SERVICES:
        raise ScenarioError(f"at most {MAX_SERVICES} services share one database, got "
                            f"{len(s.services):,}", key="services")
    roles = ("primary", *(f"replica-{i}" for i in range(1, len(s.replicas) + 1)))
    names: set[str] = set()
    for i, svc in enumerate(s.services, start=1):
        if not links.SERVICE_NAME.fullmatch(svc.name):
            raise ScenarioError(f"service {i}: the name must be 1 to 40 lower-case letters, "
                                "digits, - or _, starting with a letter",
                                key=links.service_key(i, "name"))
        if svc.name in names:
            raise ScenarioError(f"service {i}: the name {svc.name!r} is used twice",
                                key=links.service_key(i, "name"))
        names.add(svc.name)
        if svc.kind not in SERVICE_KINDS:
            raise ScenarioError(f"service {svc.name!r}: unknown kind {svc.kind[:20]!r}; valid "
                                f"choices: {', '.join(SERVICE_KINDS)}",
                                key=links.service_key(i, "kind"))
        if (svc.kind == "serverless") != (svc.serverless_concurrency is not None):
            raise ScenarioError(f"service {svc.name!r}: a serverless service needs its peak "
                                "concurrent invocations, and only a serverless one has them",
                                key=links.service_key(i, "serverless_concurrency"))
        try:
            bounds.check("weight", svc.weight)
        except ScenarioError as exc:
            raise ScenarioError(str(exc), key=links.service_key(i, "weight")) from None
        for role in svc.endpoints or ():
            if role not in roles:
                raise ScenarioError(f"service {svc.name!r}: unknown endpoint {role[:20]!r}; "
                                    f"this database has {', '.join(roles)}",
                                    key=links.service_key(i, "endpoints"))
        if svc.endpoints is not None and "primary" not in svc.endpoints:
            # Its module's write engine is the primary's; replicas are the read engines.
            raise ScenarioError(f"service {svc.name!r}: endpoints must include the primary "
                                "(list the replicas it reads from beside it), or leave it out "
                                "to connect to every endpoint",
                                key=links.service_key(i, "endpoints"))


_SMALLER_REPLICA_FIX = {
    "self-hosted": "set max_connections to at least {mc} on the replica "
                   "(then give it as the replica's max_connections)",
    "aws-rds": "give the replica a parameter group with max_connections of at least {mc} "
               "(then give it as the replica's max_connections) or a class at least the "
               "primary's; with the default formula RDS leaves it in incompatible-parameters",
    "gcp-cloudsql": "set the replica's max_connections flag to at least {mc} (Cloud SQL refuses "
                    "to create the replica otherwise) or a machine type at least the primary's",
    "azure-flexible": "set max_connections to at least {mc} on the replica server or pick a SKU "
                      "at least the primary's",
}


def validate_topology(s: Scenario) -> None:
    """Refuse replicas a provider cannot run next to this primary (hot-standby rules)."""
    if not s.replicas:
        return
    rule, url = replica_rule(s.provider)
    if rule not in ("at least primary", "same as primary", "follows primary"):
        return
    try:
        primary = _limit(s, s.instance_class, s.max_connections, s.max_connections_source)
    except SizingError:
        return  # no primary limit at all: endpoint_specs says so with its fix
    mc, cls = primary[0], primary[4]
    for i, rep in enumerate(s.replicas, start=1):
        if (rule == "same as primary" and rep.instance_class and cls
                and rep.instance_class.strip().lower() != cls.lower()):
            raise ScenarioError(f"replica {i}: {s.provider} read replicas run on the primary's "
                                f"compute size ({cls}), not {rep.instance_class} ({url})",
                                key="replica_instance_class")
        rmc = _replica_limit(s, rep, primary)[0]
        if rmc >= mc:
            continue
        if rule == "follows primary":
            fix = ("restart the replica so it takes the primary's max_connections again, then "
                   "measure it")
        else:
            fix = _SMALLER_REPLICA_FIX.get(s.provider, "give the replica at least the primary's "
                                           "max_connections ({mc})").format(mc=mc)
        raise ScenarioError(f"replica {i}: max_connections {rmc:,} is below the primary's "
                            f"{mc:,}; a hot standby needs at least the primary's or it does not "
                            f"run ({url}). Fix: {fix}", key="replica_max_connections"
                            if rep.max_connections or not rep.instance_class
                            else "replica_instance_class")


def no_load_cap(pooled: bool) -> int:
    """pool_size + max_overflow per engine when no load is given (smaller behind a pooler,
    which does the pooling)."""
    return POOLER_TOTAL_CAP if pooled else NO_LOAD_TOTAL_CAP


def break_point(per_client: int, limit: int | None, processes_at: Callable[[int], int],
                engines: int, now: int) -> int | None:
    """Smallest fleet size (the scaling unit: autoscaling maximum, or concurrency when
    serverless) from which `processes_at(n) x engines x per_client` exceeds `limit`;
    None when nothing grows or there is no limit. A bisection: cost independent of n."""
    if limit is None or processes_at(now + 1) == processes_at(now):
        return None
    over = lambda n: processes_at(n) * engines * per_client > limit  # noqa: E731
    lo, hi = 1, max(now, 1)
    if over(lo):
        return lo
    while not over(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if over(mid):
            hi = mid
        else:
            lo = mid
    return hi
