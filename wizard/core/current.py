"""Today's pools at everyone's peak: what each endpoint sees with the settings every service
runs today (its recommended pool where it declares none), and the plan's findings about the
services together. `poolwise check` (guard.py) prints these figures; the findings here are
made with the codes table like every other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wizard.core import proxies, shares
from wizard.core.codes import finding
from wizard.core.model import Recommendation, Service
from wizard.core.results import Finding, ServiceShare


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


def _per_engine(svc: Service, share: ServiceShare) -> tuple[bool, int | None, str]:
    """(today, connections per engine, that pool in words) for one service: its current
    pool, or its recommended one when it declares no current pool_size."""
    cur = svc.current
    if cur is None or cur.pool_size is None:
        return (False, share.pool_size + share.max_overflow,
                f"recommended pool ({share.pool_size} + {share.max_overflow})")
    if svc.serverless:
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
            today, per, how = _per_engine(svc.service, share)
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
            unit = "invocations" if rec.service(share.service).service.serverless else (
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


def plan_findings(rec: Recommendation) -> list[Finding]:
    """Findings about the services together (several services): their current settings at
    everyone's peak against each endpoint's usable connections, each naming (`services`)
    the services whose settings cause it."""
    found: list[Finding] = []
    for use in current_use(rec):
        if not use.declared:
            continue
        for u in use.services:
            if u.today and u.unbounded:
                found.append(finding(
                    "UNBOUNDED_OVERFLOW",
                    "max_overflow=-1: its engines open connections without limit.",
                    f"Use {u.service}'s recommended pool_size={u.recommended_pool_size}, "
                    f"max_overflow={u.recommended_max_overflow} (as exported).",
                    endpoint=use.role, service=u.service,
                    facts={"engines": u.engines, "pool_size": u.recommended_pool_size,
                           "max_overflow": u.recommended_max_overflow}))
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
                found.append(_plan_finding(
                    "SERVICES_OVER_CLIENT_LIMIT",
                    f"at every service's autoscaling peak the settings run today "
                    f"open {parts} = {asked:,} client connections into {name}, above its "
                    f"client limit of {limit:,}: the connections beyond it are refused.",
                    use.role, culprits, {"client_connections": asked, "client_limit": limit,
                                         "pooler": name,
                                         "parts": {u.service: u.clients or 0 for u in group}}))
        bounded = [u for u in use.services if u.connections is not None]
        total = sum(u.connections or 0 for u in bounded)
        if total > use.usable:
            parts, culprits = _sum_words(bounded, lambda u: u.connections or 0)
            found.append(_plan_finding(
                "SERVICES_OVER_USABLE",
                f"at every service's autoscaling peak the settings run today make "
                f"{parts} = {total:,} connections, above the {use.usable:,} usable.",
                use.role, culprits, {"connections": total, "usable": use.usable,
                                     "parts": {u.service: u.connections or 0
                                               for u in bounded}}))
    return found


def _plan_finding(code: str, message: str, role: str, culprits: list[ServiceUse],
                  facts: dict) -> Finding:
    """A finding about the services together, naming the ones to change."""
    names = tuple(u.service for u in culprits)
    return finding(code, message, recommended_pool_fix(culprits), endpoint=role,
                   service=names[0] if len(names) == 1 else None, services=names,
                   facts=facts)


def _sum_words(group: list[ServiceUse], amount: Callable[[ServiceUse], int]
               ) -> tuple[str, list[ServiceUse]]:
    """The services' parts of a sum in words ("api 900 (today) + jobs 120 (recommended)")
    and the services to change: those above their recommended pool, else those that
    declared today's settings."""
    parts = " + ".join(f"{u.service} {amount(u):,} ({'today' if u.today else 'recommended'})"
                       for u in group)
    culprits = [u for u in group if u.above_recommended] or [u for u in group if u.today]
    return parts, culprits
