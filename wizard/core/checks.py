"""Known pitfalls as rules: each yields Findings with severity, message and fix."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from wizard.core import catalog, cores, limits, path, projection, proxies, shares
from wizard.core.model import (
    POOLERS,
    SEVERITIES,
    TRANSACTION_POOLERS,
    Finding,
    Recommendation,
    Scenario,
    ServiceShare,
)

Rule = Callable[[Recommendation], Iterator[Finding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def run_checks(rec: Recommendation) -> tuple[Finding, ...]:
    """All findings for a recommendation, errors first."""
    found = [f for r in RULES for f in r(rec)]
    return tuple(sorted(found, key=lambda f: SEVERITIES.index(f.severity)))


@rule
def estimated_limit(rec: Recommendation) -> Iterator[Finding]:
    for ep in rec.endpoints:
        if ep.max_connections_estimated:
            yield Finding(
                "ESTIMATED_MAX_CONNECTIONS", "info",
                f"{ep.role}: max_connections {ep.max_connections:,} is an estimate from the "
                "provider's memory formula (the instance keeps some memory for itself).",
                "Measure it: run SHOW max_connections (or the live check) and enter the value.")


@rule
def current_settings_overflow(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    cur = s.current
    for ep in rec.endpoints:
        if ep.server_side is not None or ep.break_limit is None:
            continue
        # What this service may use: usable, less what other services sharing it hold.
        room = ep.break_limit
        left = "usable" if room == ep.usable else "usable the other services leave"
        mine = bool(cur and cur.poolclass != "NullPool" and cur.pool_size is not None)
        if mine and cur.max_overflow == -1:
            yield Finding(
                "UNBOUNDED_OVERFLOW", "error",
                f"{ep.role}: max_overflow=-1 lets each of {ep.clients:,} engines open "
                f"connections without limit; {room:,} are {left}.",
                f"Use pool_size={ep.pool_size}, max_overflow={ep.max_overflow} per engine.")
            continue
        if mine:
            per = cur.pool_size + (cur.max_overflow if cur.max_overflow is not None else 10)
            label = f"your current pool ({cur.pool_size} + {per - cur.pool_size})"
        else:
            per, label = 15, "SQLAlchemy's defaults (5 + 10), if you kept them,"
        total = per * ep.clients
        if total > room:
            breaks = projection.break_point(
                per, room, lambda n, role=ep.role: limits.processes_at(s, role, n),
                ep.engines_per_process, s.fleet_size)
            if s.serverless:  # one engine per concurrent invocation, no autoscaling maximum
                fleet = f"{ep.clients:,} engines (one per concurrent invocation) at the peak"
                where = (f" (it breaks from about {breaks:,} concurrent invocations)"
                         if breaks else "")
            else:
                fleet = f"{ep.clients:,} engines at the autoscaling maximum"
                where = (f" (it breaks from an autoscaling maximum of about {breaks:,}, "
                         "deploy surge counted)" if breaks else "")
            yield Finding(
                "WORST_CASE_OVER_MAX" if mine else "DEFAULTS_OVER_MAX",
                "error" if mine else "warning",
                f"{ep.role}: {label} x {fleet} = {total:,} connections, above the {room:,} "
                f"{left}{where}.",
                f"Use pool_size={ep.pool_size}, max_overflow={ep.max_overflow} per engine, "
                "or put a pooler in front.")


@dataclass(frozen=True)
class ServiceUse:
    """One service's part of an endpoint at everyone's autoscaling peak with the pool it runs
    today, or its recommended pool where it declares no current pool_size (`today` False)."""

    service: str
    today: bool
    engines: int
    per_engine: int | None  # connections one engine may open (None: max_overflow=-1, no limit)
    clients: int | None  # engines x per_engine: what its engines may open (None: no limit)
    # What the endpoint sees from it (behind a pooler: its part of the server pool; None: a
    # direct engine without a limit).
    connections: int | None
    detail: str  # how `connections` comes about, in words
    pooler: str | None  # the pooler between it and the endpoint (None: direct)
    client_limit: int | None  # the clients that pooler accepts (None: no limit or direct)
    recommended: int  # what its recommended pool makes the endpoint see
    recommended_pool_size: int
    recommended_max_overflow: int

    @property
    def unbounded(self) -> bool:
        return self.per_engine is None

    @property
    def above_recommended(self) -> bool:
        """It runs today more than its recommended pool would make the endpoint see."""
        return self.today and (self.connections is None or self.connections > self.recommended)


@dataclass(frozen=True)
class EndpointUse:
    """What one endpoint sees at everyone's peak with the settings run today."""

    role: str
    usable: int
    services: tuple[ServiceUse, ...]

    @property
    def total(self) -> int | None:
        """Connections the endpoint sees (None: a direct engine without a limit)."""
        if any(u.connections is None for u in self.services):
            return None
        return sum(u.connections or 0 for u in self.services)

    @property
    def headroom(self) -> int | None:
        return None if self.total is None else self.usable - self.total

    @property
    def over(self) -> bool:
        return self.total is None or self.total > self.usable

    @property
    def declared(self) -> bool:
        """At least one service on it says what it runs today."""
        return any(u.today for u in self.services)


def _per_engine(s: Scenario, share: ServiceShare) -> tuple[bool, int | None, str]:
    """(today, connections per engine, that pool in words) for one service: its current
    pool, or its recommended one when it declares no current pool_size."""
    cur = s.current
    if cur is None or cur.pool_size is None:
        return (False, share.pool_size + share.max_overflow,
                f"recommended pool ({share.pool_size} + {share.max_overflow})")
    if s.serverless:
        return True, 1, "one connection per invocation"
    if cur.poolclass == "NullPool":
        return True, 1, "NullPool (one connection per engine)"
    if cur.max_overflow == -1:
        return True, None, f"today's pool ({cur.pool_size} + unlimited overflow)"
    # SQLAlchemy's default max_overflow is 10.
    overflow = cur.max_overflow if cur.max_overflow is not None else 10
    return True, cur.pool_size + overflow, f"today's pool ({cur.pool_size} + {overflow})"


def current_use(rec: Recommendation) -> tuple[EndpointUse, ...]:
    """Every endpoint at everyone's autoscaling peak (deploy surge counted) with the pool
    each service runs today (its recommended pool where it declares none). Behind a pooler
    the endpoint sees at most the pooler's server pool, shared by the services behind it."""
    out = []
    for total_ep in rec.endpoints:
        rows = []
        for share in total_ep.by_service:
            svc = rec.service(share.service)
            ep = svc.rec.endpoint(total_ep.role)
            today, per, how = _per_engine(svc.rec.scenario, share)
            clients = None if per is None else per * share.clients
            if not today and ep.client_side is not None:
                clients = ep.client_side.worst_case
            pooler = svc.rec.scenario.proxy if ep.server_side is not None else None
            limit = ep.server_side.limit if ep.server_side is not None else None
            climit = ep.client_side.limit if ep.client_side is not None else None
            rows.append((share, today, per, clients, how, pooler, limit, climit))
        seen = {i: row[3] for i, row in enumerate(rows) if row[5] is None}
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row[5] is not None:
                groups.setdefault(proxies.pool_key(row[5]), []).append(i)
        for name, idx in groups.items():
            limit = max((rows[i][6] for i in idx if rows[i][6] is not None), default=None)
            # An engine without a limit may open at least the whole server pool.
            asks = [rows[i][3] if rows[i][3] is not None else (limit or 0) for i in idx]
            if name in proxies.PAIR_POOLERS and limit is not None:
                # One URL is one pair: each service's engines reach their own pool.
                parts = [min(limit, a) for a in asks]
            elif limit is None or sum(asks) <= limit:
                parts = asks
            else:
                parts = shares.largest_remainder(limit, asks)
            seen.update(zip(idx, parts, strict=True))
        uses = []
        for i, (share, today, per, clients, how, pooler, _, climit) in enumerate(rows):
            unit = "invocations" if rec.service(share.service).rec.scenario.serverless else (
                "engines")
            detail = f"{how} x {share.clients:,} {unit}" + (
                f" = {clients:,}" if clients is not None else ": no limit") + (
                f" client connections into {pooler}" if pooler else "") + (
                "" if today else "; it declares no current pool_size, so its recommended "
                "pool counts")
            uses.append(ServiceUse(
                share.service, today, share.clients, per, clients, seen[i], detail,
                pooler, climit, share.worst_case, share.pool_size, share.max_overflow))
        out.append(EndpointUse(total_ep.role, total_ep.usable, tuple(uses)))
    return tuple(out)


@rule
def current_over_client_limit(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    cur = s.current
    if cur is None or cur.pool_size is None or cur.poolclass == "NullPool" or s.serverless:
        return
    for ep in rec.endpoints:
        client = ep.client_side
        if client is None or client.limit is None:
            continue
        if cur.max_overflow == -1:
            opens = "with max_overflow=-1 opens client connections without limit"
            need = client.limit + 1
        else:
            per = cur.pool_size + (cur.max_overflow if cur.max_overflow is not None else 10)
            need = per * ep.clients
            if need <= client.limit:
                continue
            opens = (f"({cur.pool_size} + {per - cur.pool_size}) x {ep.clients:,} engines "
                     f"opens up to {need:,} client connections")
        yield Finding(
            "CURRENT_OVER_CLIENT_LIMIT", "error",
            f"{ep.role}: your current pool {opens}, above {s.proxy}'s client limit of "
            f"{client.limit:,}: the connections beyond it are refused at the peak.",
            f"Use pool_size={ep.pool_size}, max_overflow={ep.max_overflow} per engine, or "
            + proxies.client_limit_fix(s, need) + ".")


# Findings about a service's current pool that, with several services, the plan judges
# with every service's declared settings at once (plan_findings) instead.
PLAN_JUDGED = frozenset({"WORST_CASE_OVER_MAX", "UNBOUNDED_OVERFLOW"})


def current_worst(rec: Recommendation) -> dict[str, list[tuple[str, int | None]]]:
    """Per endpoint, what each service's current settings make it see at everyone's peak
    (None: the service did not say what it runs today, so its recommended pool counts;
    -1: max_overflow=-1, no limit)."""
    return {use.role: [(u.service, (-1 if u.unbounded else u.connections) if u.today else None)
                       for u in use.services] for use in current_use(rec)}


def recommended_pool_fix(uses: list[ServiceUse]) -> str:
    """The fix naming each service's recommended pool on one endpoint."""
    pools = " and ".join(f"{u.service}'s recommended pool_size={u.recommended_pool_size}, "
                         f"max_overflow={u.recommended_max_overflow}" for u in uses)
    pooler = "" if all(u.pooler for u in uses) else ", or put a pooler in front"
    return (f"Use {pools} (poolwise export --service NAME writes each module){pooler}.")


def plan_failures(rec: Recommendation) -> list[tuple[Finding, tuple[str, ...]]]:
    """The services' current settings at everyone's peak against each endpoint's usable
    connections: each finding with the services whose settings cause it."""
    found: list[tuple[Finding, tuple[str, ...]]] = []
    for use in current_use(rec):
        if not use.declared:
            continue
        for u in use.services:
            if u.today and u.unbounded:
                found.append((Finding(
                    "UNBOUNDED_OVERFLOW", "error",
                    f"{use.role}: {u.service} runs max_overflow=-1: its engines open "
                    "connections without limit.",
                    f"Use {u.service}'s recommended pool_size={u.recommended_pool_size}, "
                    f"max_overflow={u.recommended_max_overflow} (as exported)."), (u.service,)))
        poolers: dict[str, list[ServiceUse]] = {}
        for u in use.services:
            if u.pooler is not None:
                poolers.setdefault(u.pooler, []).append(u)
        for name, group in poolers.items():
            limit = group[0].client_limit
            if len(group) < 2 or limit is None or not any(u.today for u in group):
                continue
            if any(u.clients is None for u in group):
                continue  # UNBOUNDED_OVERFLOW above says it
            asked = sum(u.clients or 0 for u in group)
            if asked > limit:
                parts, culprits = _sum_words(group, lambda u: u.clients or 0)
                found.append((Finding(
                    "SERVICES_OVER_CLIENT_LIMIT", "error",
                    f"{use.role}: at every service's autoscaling peak the settings run today "
                    f"open {parts} = {asked:,} client connections into {name}, above its "
                    f"client limit of {limit:,}: the connections beyond it are refused.",
                    recommended_pool_fix(culprits)), tuple(u.service for u in culprits)))
        bounded = [u for u in use.services if u.connections is not None]
        total = sum(u.connections or 0 for u in bounded)
        if total > use.usable:
            parts, culprits = _sum_words(bounded, lambda u: u.connections or 0)
            found.append((Finding(
                "SERVICES_OVER_USABLE", "error",
                f"{use.role}: at every service's autoscaling peak the settings run today make "
                f"{parts} = {total:,} connections, above the {use.usable:,} usable.",
                recommended_pool_fix(culprits)), tuple(u.service for u in culprits)))
    return found


def _sum_words(group: list[ServiceUse], amount: Callable[[ServiceUse], int]
               ) -> tuple[str, list[ServiceUse]]:
    """The services' parts of a sum in words ("api 900 (today) + jobs 120 (recommended)")
    and the services to change: those above their recommended pool, else those that
    declared today's settings."""
    parts = " + ".join(f"{u.service} {amount(u):,} ({'today' if u.today else 'recommended'})"
                       for u in group)
    culprits = [u for u in group if u.above_recommended] or [u for u in group if u.today]
    return parts, culprits


def plan_findings(rec: Recommendation) -> list[Finding]:
    """Findings about the services together (several services): their current settings
    at everyone's peak against each endpoint's usable connections."""
    return [f for f, _ in plan_failures(rec)]


@rule
def serverless_without_proxy(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    if s.serverless and s.proxy not in POOLERS:
        yield Finding(
            "SERVERLESS_NO_PROXY", "warning",
            f"{s.serverless_concurrency:,} concurrent invocations each open their own "
            "connection straight to the database; a QueuePool per invocation would multiply "
            "that and break across event loops.",
            "Use NullPool (as exported) and put RDS Proxy, PgBouncer or the provider's pooler "
            "in front.")
    if s.current and s.serverless and s.current.poolclass != "NullPool":
        yield Finding(
            "SERVERLESS_QUEUEPOOL", "error",
            "A pooled engine in serverless code is tied to the first invocation's event loop "
            "and keeps idle connections per frozen instance.",
            "Use poolclass=NullPool.")


@rule
def prepared_statements(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    if s.current is not None and s.current.statement_cache_size == 0:
        return  # the service declares asyncpg's caches off: nothing to warn about
    if s.proxy in TRANSACTION_POOLERS and not path.prepared_statements_survive(s):
        other = {
            "azure-pgbouncer": "or set the server parameter pgbouncer.max_prepared_statements "
                               "above 0 (then give it in the proxy step as "
                               "max_prepared_statements).",
            "supavisor-transaction": "or connect through Supavisor's session mode or directly "
                                     "when you need them.",
        }.get(s.proxy, "or run PgBouncer 1.21+ with max_prepared_statements > 0.")
        yield Finding(
            "PREPARED_STATEMENTS_TXN_POOLER", "warning",
            f"{s.proxy} runs in transaction mode without prepared-statement tracking: "
            "asyncpg's named prepared statements fail with 'prepared statement "
            "\"__asyncpg_stmt_N__\" does not exist/already exists'.",
            "Keep statement_cache_size=0 and prepared_statement_cache_size=0 (as exported), "
            + other)


@rule
def recycle(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    cuts = rec.cutoffs
    cur = s.current
    if cur is None:
        return
    if cur.pool_recycle is None or cur.pool_recycle < 0:
        if cuts:
            yield Finding(
                "RECYCLE_MISSING", "warning",
                f"pool_recycle is off while {cuts[0][0]} drops idle connections after "
                f"{cuts[0][1]} s: the first query after a quiet spell fails.",
                f"Set pool_recycle={rec.engines[0].pool_recycle}"
                + (" and pool_pre_ping=True." if rec.engines[0].pool_pre_ping else "."))
    elif cuts and cur.pool_recycle >= cuts[0][1]:
        yield Finding(
            "RECYCLE_ABOVE_IDLE", "warning",
            f"pool_recycle={cur.pool_recycle} is not below {cuts[0][0]} ({cuts[0][1]} s).",
            f"Set pool_recycle={rec.engines[0].pool_recycle}.")
    if cur.pool_recycle is not None and 0 <= cur.pool_recycle < path.MIN_RECYCLE:
        yield Finding(
            "RECYCLE_TOO_SHORT", "warning",
            f"pool_recycle={cur.pool_recycle} s reconnects constantly (each connect costs a "
            "TLS handshake and authentication).",
            f"Use at least {path.MIN_RECYCLE} s; {rec.engines[0].pool_recycle} fits this path.")


@rule
def smaller_replica(rec: Recommendation) -> Iterator[Finding]:
    primary = rec.endpoints[0]
    per = primary.pool_size + primary.max_overflow
    for ep in rec.endpoints[1:]:
        if ep.max_connections < primary.max_connections and ep.server_side is None and (
                per * ep.clients > ep.usable):
            yield Finding(
                "REPLICA_SMALLER", "warning",
                f"{ep.role} ({ep.max_connections:,} max_connections) is smaller than the primary "
                f"({primary.max_connections:,}): the primary's pool settings on its "
                f"{ep.clients:,} read engines would open {per * ep.clients:,}, above its "
                f"{ep.usable:,} usable.",
                f"Give the read engine its own settings (pool_size={ep.pool_size}, "
                f"max_overflow={ep.max_overflow}), as exported.")


@rule
def large_client_pool_behind_proxy(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    cur = s.current
    if s.proxy in POOLERS and cur and cur.pool_size is not None and cur.pool_size > 10:
        yield Finding(
            "LARGE_POOL_BEHIND_PROXY", "warning",
            f"pool_size={cur.pool_size} per process in front of {s.proxy}: the proxy already "
            "pools, and big client pools only hold proxy slots (and pin RDS Proxy sessions).",
            f"Use a small client pool (pool_size={rec.engines[0].pool_size}).")


@rule
def rds_proxy_pinning(rec: Recommendation) -> Iterator[Finding]:
    if rec.scenario.proxy == "rds-proxy":
        yield Finding(
            "RDS_PROXY_PINNING", "info",
            "RDS Proxy pins a client to one server connection after SET, SQL-level "
            "PREPARE or asyncpg's reset query (advisory unlock, UNLISTEN, RESET ALL): "
            "pinned sessions get no multiplexing.",
            "Keep session settings out of connect-time SET and server_settings, and watch "
            "the DatabaseConnectionsCurrentlySessionPinned metric.")


def _pool_over_fix(s, ep, side) -> str:
    """How a user of this proxy keeps its server pool within the usable connections."""
    pairs = max(1, s.proxy_settings.user_db_pairs)
    if s.proxy == "rds-proxy":
        pct = ep.room * 100 // ep.max_connections
        keep = ("your admin and migration reserves" if ep.allotment is None
                else "the other services' connections and your reserves")
        return f"Set the proxy's MaxConnectionsPercent to at most {pct}% so {keep} stay free."
    if s.proxy == "neon-pooler":
        return (f"Neon's pooler settings cannot be changed ({proxies.neon_pool_fraction():g} x "
                "max_connections per user/database pair): route fewer user/database pairs "
                "through it or pick a bigger compute size.")
    if s.proxy.startswith("supavisor"):
        return (f"Set Supavisor's pool size to at most {max(1, ep.room // pairs):,} in "
                "Database Settings, or pick a bigger compute size.")
    if s.proxy == "azure-pgbouncer":
        return (f"Set the server parameter pgbouncer.default_pool_size to at most "
                f"{max(1, ep.room // pairs):,}.")
    if side.pool_size_per_pair is not None:  # self-managed PgBouncer: the ini's values
        dps, reserve = side.pool_size_per_pair, side.reserve_pool
        return (f"Set default_pool_size = {dps} and reserve_pool_size = {reserve}: "
                f"({dps} + {reserve}) x {side.pairs} pair(s) = {side.total or side.limit:,} "
                "server connections (the ini snippet does), or pick a bigger class.")
    return (f"Size the proxy's server pool to at most {side.limit:,} (the ini snippet does), "
            "or pick a bigger class.")


# Where a user sets each pooler's server pool (Neon's pooler: nowhere, it is fixed).
_POOL_LEVER = {
    "azure-pgbouncer": "the server parameter pgbouncer.default_pool_size",
    "supavisor-transaction": "Supavisor's pool size in Database Settings",
    "supavisor-session": "Supavisor's pool size in Database Settings",
    "rds-proxy": "the proxy's MaxConnectionsPercent",
    "pgbouncer-transaction": "PgBouncer's default_pool_size (the ini snippet sets it)",
    "pgbouncer-session": "PgBouncer's default_pool_size (the ini snippet sets it)",
}


def _neon_fixed() -> str:
    return (f"Neon's pool is fixed at {proxies.neon_pool_fraction():g} x max_connections per "
            "user/database pair and cannot be changed")


def _pool_below_load_fix(s, ep, side) -> str:
    """How a user of this proxy lets it open the server connections the load needs."""
    if side.needed > ep.usable:
        return (f"The need exceeds the {ep.usable:,} usable: pick a bigger class or shorten "
                "transactions.")
    if s.proxy == "neon-pooler":
        return f"{_neon_fixed()}: pick a bigger compute size or shorten transactions."
    if s.proxy == "rds-proxy":
        pct = -(-side.needed * 100 // ep.max_connections)
        return f"Raise the proxy's MaxConnectionsPercent to at least {min(pct, 100)}%."
    where = _POOL_LEVER.get(s.proxy, "the proxy's pool size")
    return (f"Raise {where} to {side.needed:,} (within the {ep.usable:,} usable). In poolwise: "
            "the proxy step's pool size.")


@rule
def proxy_server_pool(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    for ep in rec.endpoints:
        side = ep.server_side
        if side is None:
            continue
        configured = side.configured or 0
        if configured > ep.room:
            room = (f"the {ep.usable:,} usable" if ep.allotment is None else
                    f"its share of {ep.room:,} of the {ep.usable:,} usable beside the other "
                    "services")
            yield Finding(
                "PROXY_SERVER_POOL_OVER_MAX", "warning" if s.proxy == "rds-proxy" else "error",
                f"{ep.role}: as configured, {s.proxy} may open up to {configured:,} server "
                f"connections once its clients ask for them, above {room}. "
                f"poolwise counts it at {side.total or side.limit:,} (the fix below); the clients "
                f"behind it make the database see at most {side.worst_case:,}.",
                _pool_over_fix(s, ep, side))
        # Only a load says what the pool needs (a service without one has no need of its
        # own; behind a shared pooler the pooled need is the path's, so every service with
        # a load there reports the same finding and the plan shows it once).
        if (rec.load is not None and side.offered_load is not None and side.needed
                and side.limit is not None and side.needed > side.limit):
            yield Finding(
                "PROXY_SERVER_POOL_BELOW_LOAD", "warning",
                f"{ep.role}: the load behind {s.proxy} needs about {side.needed:,} server "
                f"connections at the peak, but it opens at most {side.limit:,}: queries "
                "queue in the proxy.", _pool_below_load_fix(s, ep, side))
        client = ep.client_side
        if client and client.limit and client.worst_case > client.limit:
            fix = proxies.client_limit_fix(s, client.worst_case)
            yield Finding(
                "PROXY_CLIENT_LIMIT", "error",
                f"{ep.role}: the fleet opens up to {client.worst_case:,} client connections, "
                f"above the proxy's limit of {client.limit:,}.", fix[0].upper() + fix[1:] + ".")


@rule
def database_cores(rec: Recommendation) -> Iterator[Finding]:
    """What: the fleet may run far more at once on an endpoint than its vCPUs execute (HikariCP
    and the PostgreSQL wiki: cores x 2 + spindles). Why: past that, more active connections
    queue inside PostgreSQL (context switches, lock contention) instead of adding throughput."""
    s = rec.scenario
    if s.serverless and s.proxy in POOLERS:
        return
    load = rec.load
    for ep in rec.endpoints:
        side = ep.server_side
        if side is None:
            # Direct: this service's own connections and its own load (a serverless
            # service's load is the whole service's already).
            who, worst = "the fleet", ep.worst_case
            busy = cores.busy_connections(load.offered_load if load else None,
                                          1 if s.serverless else ep.processes)
        else:
            # Behind a pooler the server pool is the path's, shared by every service on it:
            # its figures read the same from each, and a service without a load leaves a
            # loaded path's finding to the services whose load it is.
            if load is None and side.offered_load is not None:
                continue
            who, worst, busy = f"the clients behind {s.proxy}", side.worst_case, \
                side.offered_load
        over = cores.oversubscription(ep.vcpu, worst, busy)
        if over is None:
            continue
        b = over.bound
        facts = (f"{ep.role}: {who} may have {worst:,} connections active at once on "
                 f"the database ({over.ratio:.1f}x), but its {b.vcpu:g} vCPUs execute about "
                 f"{b.executable} at once ({b.formula}; {b.sources[0].url})")
        if busy is not None:
            facts += (f"; the load {'behind it ' if side else ''}keeps {busy:,.1f} busy on "
                      "average at the peak (requests/s x hold time)")
        fix_pool = max(b.executable, math.ceil(busy) if busy is not None else 0)
        if over.busy_over:
            why = (": if those transactions compute rather than wait, the database's CPU is the "
                   "bottleneck and more connections only lengthen the queue inside it.")
            fix = ("Measure the database's CPU at the peak; if it is saturated, use a bigger "
                   "class, shorter transactions or read replicas (a pooler adds no CPU).")
            yield Finding("DB_CORES_BUSY", "warning", facts + why, fix)
            continue
        why = (": at a burst the extra connections queue inside PostgreSQL instead of in the "
               "pools, with a backend each.")
        if side is not None and s.proxy == "neon-pooler":
            fix = (f"{_neon_fixed()}: keep the client pools small (the database sees at most "
                   "min(the pool, the client connections)), or pick a compute size with more "
                   "vCPUs.")
        elif side is not None:
            lever = _POOL_LEVER.get(s.proxy, f"{s.proxy}'s server pool")
            fix = (f"Lower the server pool toward {fix_pool:,} with {lever} (the cores "
                   "bound, or the load's busy connections if more): the proxy queues the rest "
                   "in front of the database.")
        else:
            advice = proxies.POOLER_ADVICE.get(s.provider, "PgBouncer in transaction mode")
            fix = (f"Put a pooler in front ({advice}) with about {fix_pool:,} server "
                   "connections, so the fleet's bursts queue in the pooler, not in PostgreSQL.")
        yield Finding("DB_CORES_WORST_CASE", "info", facts + why, fix)


@rule
def rds_proxy_writer_only(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    if len(rec.endpoints) > 1 and proxies.rds_proxy_skips_replicas(s):
        src = catalog.proxy_fact("rds-proxy", "read_replicas_rds")
        yield Finding(
            "RDS_PROXY_WRITER_ONLY", "info",
            "RDS Proxy serves only the writer of RDS for PostgreSQL, not its read replicas"
            + (f" ({src[1].url})" if src else "") + ": the replicas are reached directly and "
            "sized for direct connections.",
            "Point the read engines at each replica's own endpoint (as sized); for pooled "
            "reads run PgBouncer in front of the replicas, or use Aurora, whose proxies have "
            "reader endpoints.")


@rule
def provider_services_reserve(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    kept = catalog.provider_int(s.provider, "services_reserved_percent")
    heavy = catalog.provider_int(s.provider, "services_reserved_percent_heavy_data_api")
    if kept and heavy and s.reserves.provider is None:
        mc = rec.endpoints[0].max_connections
        yield Finding(
            "PROVIDER_SERVICES_RESERVE", "info",
            f"{s.provider}'s own services (Auth, Storage, PostgREST, Realtime) hold "
            f"connections too: {kept[0]}% of max_connections is kept for them, following its "
            f"advice to give the app at most {100 - kept[0]}% ({heavy[1]}).",
            f"With heavy Data API (PostgREST) use the advice is {100 - heavy[0]}%: reserve "
            f"{limits.services_reserved(mc, heavy[0])} as the provider reserve in "
            "the database step.")


@rule
def deploy_surge(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    if not s.serverless and s.deploy_surge_percent == 0:
        yield Finding(
            "DEPLOY_SURGE_NOT_COUNTED", "warning",
            "No deploy surge counted: during a rolling deploy old and new instances overlap "
            "(Kubernetes maxSurge defaults to 25%) and both hold full pools.",
            "Set the deploy surge to your rollout's maxSurge (25% by default).")


@rule
def nullpool_behind_pooler(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    null = any(e.poolclass == "NullPool" for e in rec.engines) or (
        s.current is not None and s.current.poolclass == "NullPool")
    if null and s.proxy in POOLERS:
        yield Finding(
            "NULLPOOL_INTROSPECTION", "info",
            "With NullPool every checkout is a new connection, and asyncpg repeats its type "
            "introspection on each one.",
            "Where the process lives longer than one request, a small pool with the statement "
            "caches off is often faster than NullPool.")


@rule
def workers(rec: Recommendation) -> Iterator[Finding]:
    s = rec.scenario
    if not s.serverless and s.workers == 1:
        yield Finding(
            "WORKERS_COUNTED", "info",
            "Counted one worker process per instance: each worker (gunicorn -w, uvicorn "
            "--workers, WEB_CONCURRENCY) has its own engine and pool.",
            "Set workers to the process count per instance if it is more than one.")


@rule
def load_vs_budget(rec: Recommendation) -> Iterator[Finding]:
    load = rec.load
    s = rec.scenario
    if load is None:
        if not s.serverless:
            for ep in rec.endpoints:
                total = ep.pool_size + ep.max_overflow
                cap = proxies.no_load_cap(ep.server_side is not None)
                share = ep.per_process_budget
                if share is None or share > cap:
                    why = (f"the default cap of {cap} per engine, below the budget ceiling"
                           + (f" of {share:,}" if share is not None else " (no limit here)"))
                else:
                    why = (f"the budget ceiling of {share:,} per engine, at or below the "
                           f"default cap of {cap}")
                yield Finding(
                    "NO_LOAD", "info",
                    f"{ep.role}: no load given: pool_size + max_overflow = {total} is {why}.",
                    "Give requests/s and hold time to size pools from the load.")
        return
    for ep in rec.endpoints:
        per = ep.pool_size + ep.max_overflow
        if s.serverless:
            continue
        if load.needed_pool is None or per <= load.offered_load:
            yield Finding(
                "LOAD_OVER_BUDGET", "error",
                f"{ep.role}: each process offers a load of {load.offered_load:,.1f} busy "
                f"connections ({load.arrival_rate:,g} req/s x {load.hold_s * 1000:g} ms), but "
                f"its engine may open only {per:,}: the queue grows without bound and "
                "requests time out.",
                "Use a bigger class, more processes sharing the load, shorter transactions, "
                "or a pooler in front.")
        elif per < load.needed_pool:
            yield Finding(
                "BUDGET_BELOW_LOAD", "error",
                f"{ep.role}: the load needs {load.needed_pool} connections per process for at "
                f"most {load.wait_target:.0%} of checkouts to wait, but the budget allows "
                f"{per}: {ep.p_wait:.0%} of checkouts wait.",
                "Use a bigger class, fewer processes, shorter transactions or a pooler.")
    for ep in rec.endpoints:
        side = ep.server_side
        if side is not None and side.offered_load is not None and side.limit is not None and (
                side.offered_load >= side.limit):
            lever = _POOL_LEVER.get(s.proxy)
            if s.proxy == "neon-pooler":
                fix = f"{_neon_fixed()}: pick a bigger compute size or shorten transactions."
            elif lever and side.limit < ep.room and side.offered_load < ep.room:
                fix = (f"Raise {lever} so the server pool is above {side.offered_load:,.0f} "
                       f"(up to the {ep.room:,} usable), or shorten transactions.")
            else:
                fix = "Use a bigger class, shorter transactions or fewer instances."
            yield Finding(
                "LOAD_OVER_BUDGET", "error",
                f"{ep.role}: the load behind {s.proxy} keeps {side.offered_load:,.1f} server "
                f"connections busy on average, but it opens at most {side.limit:,}: "
                "its queue grows without bound.", fix)


_TOKEN = re.compile(r"X-Amz-(Signature|Credential|Security-Token)|Action=connect", re.I)


def url_findings(url: str) -> list[Finding]:
    """Findings about a database URL a user supplied (never echoes the URL itself)."""
    if _TOKEN.search(url):
        return [Finding(
            "IAM_TOKEN_IN_URL", "error",
            "The URL carries an IAM auth token: it expires after 15 minutes, so every "
            "connection opened later is refused, and the token leaks wherever the URL is logged.",
            "Generate a token per new connection in a do_connect event (as exported).")]
    return []


@rule
def iam(rec: Recommendation) -> Iterator[Finding]:
    if rec.scenario.iam_auth:
        yield Finding(
            "IAM_TOKEN_PER_CONNECTION", "info",
            "IAM tokens last 15 minutes: each new connection needs a fresh one.",
            "Generate it in a do_connect event on engine.sync_engine (as exported); never "
            "put it in the URL.")
