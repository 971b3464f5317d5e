"""Known pitfalls as rules: each yields Findings (data: code, endpoint, service, facts,
message, fix; the codes table in codes.py gives each code its severity). The services'
findings are merged into the plan's here (`merge`), and `subject` words what a finding is
about, the one prefix every surface puts before its message."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from wizard.core import catalog, cores, fixes, limits, path, projection, proxies, shares
from wizard.core.codes import CODES, finding
from wizard.core.current import (  # noqa: F401 (the plan's findings, re-exported)
    EndpointUse,
    ServiceUse,
    current_use,
    current_worst,
    plan_findings,
)
from wizard.core.model import (
    POOLERS,
    SEVERITIES,
    TRANSACTION_POOLERS,
    Recommendation,
    Service,
    ServiceResult,
)
from wizard.core.results import Finding

Rule = Callable[[Recommendation, Service], Iterator[Finding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def ordered(found: Sequence[Finding]) -> tuple[Finding, ...]:
    """Findings errors first, then warnings, then info (stable within a severity)."""
    return tuple(sorted(found, key=lambda f: SEVERITIES.index(f.severity)))


def run_checks(rec: Recommendation, svc: Service | None = None) -> tuple[Finding, ...]:
    """All findings for one service's recommendation, errors first, each naming the service
    (`svc`: the service it sizes; the scenario's only one when not given)."""
    svc = svc or rec.sized
    return ordered([replace(f, service=svc.name, services=(svc.name,))
                    for r in RULES for f in r(rec, svc)])


def merge(results: Sequence[ServiceResult]) -> list[Finding]:
    """The services' own findings as the plan's: one Finding per (code, endpoint, facts),
    naming every service that has it (`services`; `service` when it is one). Findings the plan
    judges with every service's settings at once (CODES[code].plan) are left to
    plan_findings."""
    seen: dict[tuple[str, str | None, str], tuple[Finding, list[str]]] = {}
    for r in results:
        for f in r.rec.warnings:
            if CODES[f.code].plan:
                continue
            key = (f.code, f.endpoint, repr(sorted(f.facts.items())))
            seen.setdefault(key, (f, []))[1].append(r.name)
    return [replace(f, service=names[0] if len(names) == 1 else None, services=tuple(names))
            for f, names in seen.values()]


def subject(f: Finding, services: Sequence[str] = ()) -> str:
    """What a finding is about, before its message: the services it holds for when the
    estate (`services`, every service's name) has several and it does not hold for them all,
    then its endpoint ("api, jobs: primary: "). A finding about an endpoint as a whole
    (its code's scope) names the services to change in its own words."""
    names = [n for n in f.services if n in services] if CODES[f.code].scope == "service" else []
    who = f"{', '.join(names)}: " if names and len(services) > 1 and (
        set(services) - set(names)) else ""
    return who + (f"{f.endpoint}: " if f.endpoint else "")


def said(f: Finding, rec: Recommendation) -> str:
    """The finding's message with what it is about before it (subject)."""
    return subject(f, [v.name for v in rec.services]) + f.message


@rule
def estimated_limit(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    for ep in rec.endpoints:
        if ep.max_connections_estimated:
            yield finding(
                "ESTIMATED_MAX_CONNECTIONS",
                f"max_connections {ep.max_connections:,} is an estimate from the "
                "provider's memory formula (the instance keeps some memory for itself).",
                "Measure it: run SHOW max_connections (or the live check) and enter the value.",
                endpoint=ep.role, facts={"max_connections": ep.max_connections})


@rule
def current_settings_overflow(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    cur = svc.current
    for ep in rec.endpoints:
        if ep.server_side is not None or ep.break_limit is None:
            continue
        # What this service may use: usable, less what other services sharing it hold.
        room = ep.break_limit
        left = "usable" if room == ep.usable else "usable the other services leave"
        mine = bool(cur and cur.poolclass != "NullPool" and cur.pool_size is not None)
        if mine and cur.max_overflow == -1:
            yield finding(
                "UNBOUNDED_OVERFLOW",
                f"max_overflow=-1 lets each of {ep.clients:,} engines open "
                f"connections without limit; {room:,} are {left}.",
                f"Use pool_size={ep.pool_size}, max_overflow={ep.max_overflow} per engine.",
                endpoint=ep.role, facts={"engines": ep.clients, "room": room,
                                         "usable": ep.usable, "pool_size": ep.pool_size,
                                         "max_overflow": ep.max_overflow})
            continue
        if mine:
            per = cur.pool_size + (cur.max_overflow if cur.max_overflow is not None else 10)
            label = f"your current pool ({cur.pool_size} + {per - cur.pool_size})"
        else:
            per, label = 15, "SQLAlchemy's defaults (5 + 10), if you kept them,"
        total = per * ep.clients
        if total > room:
            breaks = projection.break_point(
                per, room, lambda n, role=ep.role: limits.processes_at(s, svc, role, n),
                ep.engines_per_process, svc.fleet_size)
            if svc.serverless:  # one engine per concurrent invocation, no autoscaling maximum
                fleet = f"{ep.clients:,} engines (one per concurrent invocation) at the peak"
                where = (f" (it breaks from about {breaks:,} concurrent invocations)"
                         if breaks else "")
            else:
                fleet = f"{ep.clients:,} engines at the autoscaling maximum"
                where = (f" (it breaks from an autoscaling maximum of about {breaks:,}, "
                         "deploy surge counted)" if breaks else "")
            yield finding(
                "WORST_CASE_OVER_MAX" if mine else "DEFAULTS_OVER_MAX",
                f"{label} x {fleet} = {total:,} connections, above the {room:,} "
                f"{left}{where}.",
                f"Use pool_size={ep.pool_size}, max_overflow={ep.max_overflow} per engine, "
                "or put a pooler in front.",
                endpoint=ep.role, facts={
                    "per_engine": per, "engines": ep.clients, "connections": total,
                    "room": room, "usable": ep.usable, "breaks_at": breaks,
                    "serverless": svc.serverless, "pool_size": ep.pool_size,
                    "max_overflow": ep.max_overflow})


@rule
def current_over_client_limit(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    cur = svc.current
    if cur is None or cur.pool_size is None or cur.poolclass == "NullPool" or svc.serverless:
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
        yield finding(
            "CURRENT_OVER_CLIENT_LIMIT",
            f"your current pool {opens}, above {s.proxy}'s client limit of "
            f"{client.limit:,}: the connections beyond it are refused at the peak.",
            f"Use pool_size={ep.pool_size}, max_overflow={ep.max_overflow} per engine, or "
            + proxies.client_limit_fix(s, need) + ".",
            endpoint=ep.role, facts={
                "client_connections": need, "client_limit": client.limit, "proxy": s.proxy,
                "unbounded": cur.max_overflow == -1, "pool_size": ep.pool_size,
                "max_overflow": ep.max_overflow})


@rule
def serverless_without_proxy(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    if svc.serverless and s.proxy not in POOLERS:
        yield finding(
            "SERVERLESS_NO_PROXY",
            f"{svc.serverless_concurrency:,} concurrent invocations each open their own "
            "connection straight to the database; a QueuePool per invocation would multiply "
            "that and break across event loops.",
            "Use NullPool (as exported) and put RDS Proxy, PgBouncer or the provider's pooler "
            "in front.",
            facts={"concurrency": svc.serverless_concurrency, "proxy": s.proxy})
    if svc.current and svc.serverless and svc.current.poolclass != "NullPool":
        yield finding(
            "SERVERLESS_QUEUEPOOL",
            "A pooled engine in serverless code is tied to the first invocation's event loop "
            "and keeps idle connections per frozen instance.",
            "Use poolclass=NullPool.",
            facts={"poolclass": svc.current.poolclass})


@rule
def prepared_statements(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    if svc.current is not None and svc.current.statement_cache_size == 0:
        return  # the service declares asyncpg's caches off: nothing to warn about
    if s.proxy in TRANSACTION_POOLERS and not path.prepared_statements_survive(s):
        other = {
            "azure-pgbouncer": "or set the server parameter pgbouncer.max_prepared_statements "
                               "above 0 (then give it in the proxy step as "
                               "max_prepared_statements).",
            "supavisor-transaction": "or connect through Supavisor's session mode or directly "
                                     "when you need them.",
        }.get(s.proxy, "or run PgBouncer 1.21+ with max_prepared_statements > 0.")
        yield finding(
            "PREPARED_STATEMENTS_TXN_POOLER",
            f"{s.proxy} runs in transaction mode without prepared-statement tracking: "
            "asyncpg's named prepared statements fail with 'prepared statement "
            "\"__asyncpg_stmt_N__\" does not exist/already exists'.",
            "Keep statement_cache_size=0 and prepared_statement_cache_size=0 (as exported), "
            + other,
            facts={"proxy": s.proxy})


@rule
def recycle(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    cuts = rec.cutoffs
    cur = svc.current
    if cur is None:
        return
    if cur.pool_recycle is None or cur.pool_recycle < 0:
        if cuts:
            yield finding(
                "RECYCLE_MISSING",
                f"pool_recycle is off while {cuts[0][0]} drops idle connections after "
                f"{cuts[0][1]} s: the first query after a quiet spell fails.",
                f"Set pool_recycle={rec.engines[0].pool_recycle}"
                + (" and pool_pre_ping=True." if rec.engines[0].pool_pre_ping else "."),
                facts={"cutoff": cuts[0][0], "idle_s": cuts[0][1],
                   "pool_recycle": rec.engines[0].pool_recycle,
                   "pool_pre_ping": rec.engines[0].pool_pre_ping})
    elif cuts and cur.pool_recycle >= cuts[0][1]:
        yield finding(
            "RECYCLE_ABOVE_IDLE",
            f"pool_recycle={cur.pool_recycle} is not below {cuts[0][0]} ({cuts[0][1]} s).",
            f"Set pool_recycle={rec.engines[0].pool_recycle}.",
            facts={"current_pool_recycle": cur.pool_recycle, "cutoff": cuts[0][0],
               "idle_s": cuts[0][1], "pool_recycle": rec.engines[0].pool_recycle})
    if cur.pool_recycle is not None and 0 <= cur.pool_recycle < path.MIN_RECYCLE:
        yield finding(
            "RECYCLE_TOO_SHORT",
            f"pool_recycle={cur.pool_recycle} s reconnects constantly (each connect costs a "
            "TLS handshake and authentication).",
            f"Use at least {path.MIN_RECYCLE} s; {rec.engines[0].pool_recycle} fits this path.",
            facts={"current_pool_recycle": cur.pool_recycle,
               "min_recycle": path.MIN_RECYCLE, "pool_recycle": rec.engines[0].pool_recycle})


@rule
def smaller_replica(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    primary = rec.endpoints[0]
    per = primary.pool_size + primary.max_overflow
    for ep in rec.endpoints[1:]:
        if ep.max_connections < primary.max_connections and ep.server_side is None and (
                per * ep.clients > ep.usable):
            yield finding(
                "REPLICA_SMALLER",
                f"{ep.max_connections:,} max_connections, smaller than the primary's "
                f"{primary.max_connections:,}: the primary's pool settings on its "
                f"{ep.clients:,} read engines would open {per * ep.clients:,}, above its "
                f"{ep.usable:,} usable.",
                f"Give the read engine its own settings (pool_size={ep.pool_size}, "
                f"max_overflow={ep.max_overflow}), as exported.",
                endpoint=ep.role, facts={
                    "max_connections": ep.max_connections,
                    "primary_max_connections": primary.max_connections,
                    "engines": ep.clients, "connections": per * ep.clients,
                    "usable": ep.usable, "pool_size": ep.pool_size,
                    "max_overflow": ep.max_overflow})


@rule
def large_client_pool_behind_proxy(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    cur = svc.current
    if s.proxy in POOLERS and cur and cur.pool_size is not None and cur.pool_size > 10:
        yield finding(
            "LARGE_POOL_BEHIND_PROXY",
            f"pool_size={cur.pool_size} per process in front of {s.proxy}: the proxy already "
            "pools, and big client pools only hold proxy slots (and pin RDS Proxy sessions).",
            f"Use a small client pool (pool_size={rec.engines[0].pool_size}).",
            facts={"current_pool_size": cur.pool_size, "proxy": s.proxy,
               "pool_size": rec.engines[0].pool_size})


@rule
def rds_proxy_pinning(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    if rec.scenario.proxy == "rds-proxy":
        yield finding(
            "RDS_PROXY_PINNING",
            "RDS Proxy pins a client to one server connection after SET, SQL-level "
            "PREPARE or asyncpg's reset query (advisory unlock, UNLISTEN, RESET ALL): "
            "pinned sessions get no multiplexing.",
            "Keep session settings out of connect-time SET and server_settings, and watch "
            "the DatabaseConnectionsCurrentlySessionPinned metric.")


@rule
def proxy_server_pool(rec: Recommendation, svc: Service) -> Iterator[Finding]:
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
            yield finding(
                "PROXY_SERVER_POOL_OVER_MAX",
                f"as configured, {s.proxy} may open up to {configured:,} server "
                f"connections once its clients ask for them, above {room}. "
                f"poolwise counts it at {side.total or side.limit:,} (the fix below); the clients "
                f"behind it make the database see at most {side.worst_case:,}.",
                fixes.pool_over(s, ep, side), endpoint=ep.role,
                severity="warning" if s.proxy == "rds-proxy" else None,
                facts={"proxy": s.proxy, "configured": configured, "room": ep.room,
                       "usable": ep.usable, "shared": ep.allotment is not None,
                       "server_pool": side.total or side.limit, "sees": side.worst_case,
                       "max_connections": ep.max_connections,
                       "pool_size_per_pair": side.pool_size_per_pair,
                       "reserve_pool": side.reserve_pool, "pairs": side.pairs})
        # Only a load says what the pool needs (a service without one has no need of its
        # own; behind a shared pooler the pooled need is the path's, so every service with
        # a load there reports the same finding and the plan shows it once).
        if (rec.load is not None and side.offered_load is not None and side.needed
                and side.limit is not None and side.needed > side.limit):
            yield finding(
                "PROXY_SERVER_POOL_BELOW_LOAD",
                f"the load behind {s.proxy} needs about {side.needed:,} server "
                f"connections at the peak, but it opens at most {side.limit:,}: queries "
                "queue in the proxy.", fixes.pool_below_load(s, ep, side), endpoint=ep.role,
                facts={"proxy": s.proxy, "needed": side.needed, "server_pool": side.limit,
                       "usable": ep.usable, "max_connections": ep.max_connections})
        client = ep.client_side
        if client and client.limit and client.worst_case > client.limit:
            fix = proxies.client_limit_fix(s, client.worst_case)
            yield finding(
                "PROXY_CLIENT_LIMIT",
                f"the fleet opens up to {client.worst_case:,} client connections, "
                f"above the proxy's limit of {client.limit:,}.", fix[0].upper() + fix[1:] + ".",
                endpoint=ep.role, facts={"proxy": s.proxy, "client_connections":
                                         client.worst_case, "client_limit": client.limit})


@rule
def database_cores(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    """What: the fleet may run far more at once on an endpoint than its vCPUs execute (HikariCP
    and the PostgreSQL wiki: cores x 2 + spindles). Why: past that, more active connections
    queue inside PostgreSQL (context switches, lock contention) instead of adding throughput."""
    s = rec.scenario
    if svc.serverless and s.proxy in POOLERS:
        return
    load = rec.load
    for ep in rec.endpoints:
        side = ep.server_side
        if side is None:
            # Direct: this service's own connections and its own load (a serverless
            # service's load is the whole service's already).
            who, worst = "the fleet", ep.worst_case
            busy = cores.busy_connections(load.offered_load if load else None,
                                          1 if svc.serverless else ep.processes)
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
        said = (f"{who} may have {worst:,} connections active at once on "
                f"the database ({over.ratio:.1f}x), but its {b.vcpu:g} vCPUs execute about "
                f"{b.executable} at once ({b.formula}; {b.sources[0].url})")
        if busy is not None:
            said += (f"; the load {'behind it ' if side else ''}keeps {busy:,.1f} busy on "
                     "average at the peak (requests/s x hold time)")
        facts = {"active": worst, "ratio": round(over.ratio, 1), "vcpus": b.vcpu,
                 "executable": b.executable, "busy": None if busy is None else round(busy, 1),
                 "pooler": s.proxy if side is not None else None, "provider": s.provider,
                 "fix_pool": max(b.executable, math.ceil(busy) if busy is not None else 0)}
        fix_pool = max(b.executable, math.ceil(busy) if busy is not None else 0)
        if over.busy_over:
            why = (": if those transactions compute rather than wait, the database's CPU is the "
                   "bottleneck and more connections only lengthen the queue inside it.")
            fix = ("Measure the database's CPU at the peak; if it is saturated, use a bigger "
                   "class, shorter transactions or read replicas (a pooler adds no CPU).")
            yield finding("DB_CORES_BUSY", said + why, fix, endpoint=ep.role, facts=facts)
            continue
        why = (": at a burst the extra connections queue inside PostgreSQL instead of in the "
               "pools, with a backend each.")
        if side is not None and s.proxy == "neon-pooler":
            fix = (f"{fixes.neon_fixed()}: keep the client pools small (the database sees at most "
                   "min(the pool, the client connections)), or pick a compute size with more "
                   "vCPUs.")
        elif side is not None:
            lever = fixes.POOL_LEVER.get(s.proxy, f"{s.proxy}'s server pool")
            fix = (f"Lower the server pool toward {fix_pool:,} with {lever} (the cores "
                   "bound, or the load's busy connections if more): the proxy queues the rest "
                   "in front of the database.")
        else:
            advice = proxies.POOLER_ADVICE.get(s.provider, "PgBouncer in transaction mode")
            fix = (f"Put a pooler in front ({advice}) with about {fix_pool:,} server "
                   "connections, so the fleet's bursts queue in the pooler, not in PostgreSQL.")
        yield finding("DB_CORES_WORST_CASE", said + why, fix, endpoint=ep.role, facts=facts)


@rule
def rds_proxy_writer_only(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    if len(rec.endpoints) > 1 and proxies.rds_proxy_skips_replicas(s):
        src = catalog.proxy_fact("rds-proxy", "read_replicas_rds")
        yield finding(
            "RDS_PROXY_WRITER_ONLY",
            "RDS Proxy serves only the writer of RDS for PostgreSQL, not its read replicas"
            + (f" ({src[1].url})" if src else "") + ": the replicas are reached directly and "
            "sized for direct connections.",
            "Point the read engines at each replica's own endpoint (as sized); for pooled "
            "reads run PgBouncer in front of the replicas, or use Aurora, whose proxies have "
            "reader endpoints.",
            facts={"replicas": len(rec.endpoints) - 1})


@rule
def provider_services_reserve(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    kept = catalog.provider_int(s.provider, "services_reserved_percent")
    heavy = catalog.provider_int(s.provider, "services_reserved_percent_heavy_data_api")
    if kept and heavy and s.reserves.provider is None:
        mc = rec.endpoints[0].max_connections
        yield finding(
            "PROVIDER_SERVICES_RESERVE",
            f"{s.provider}'s own services (Auth, Storage, PostgREST, Realtime) hold "
            f"connections too: {kept[0]}% of max_connections is kept for them, following its "
            f"advice to give the app at most {100 - kept[0]}% ({heavy[1]}).",
            f"With heavy Data API (PostgREST) use the advice is {100 - heavy[0]}%: reserve "
            f"{limits.services_reserved(mc, heavy[0])} as the provider reserve in "
            "the database step.",
            facts={"provider": s.provider, "percent": kept[0],
               "heavy_percent": heavy[0], "max_connections": mc})


@rule
def deploy_surge(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    if not svc.serverless and svc.deploy_surge_percent == 0:
        yield finding(
            "DEPLOY_SURGE_NOT_COUNTED",
            "No deploy surge counted: during a rolling deploy old and new instances overlap "
            "(Kubernetes maxSurge defaults to 25%) and both hold full pools.",
            "Set the deploy surge to your rollout's maxSurge (25% by default).",
            facts={"deploy_surge_percent": svc.deploy_surge_percent})


@rule
def nullpool_behind_pooler(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    s = rec.scenario
    null = any(e.poolclass == "NullPool" for e in rec.engines) or (
        svc.current is not None and svc.current.poolclass == "NullPool")
    if null and s.proxy in POOLERS:
        yield finding(
            "NULLPOOL_INTROSPECTION",
            "With NullPool every checkout is a new connection, and asyncpg repeats its type "
            "introspection on each one.",
            "Where the process lives longer than one request, a small pool with the statement "
            "caches off is often faster than NullPool.",
            facts={"proxy": s.proxy})


@rule
def workers(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    if not svc.serverless and svc.workers == 1:
        yield finding(
            "WORKERS_COUNTED",
            "Counted one worker process per instance: each worker (gunicorn -w, uvicorn "
            "--workers, WEB_CONCURRENCY) has its own engine and pool.",
            "Set workers to the process count per instance if it is more than one.",
            facts={"workers": svc.workers})


@rule
def load_vs_budget(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    load = rec.load
    s = rec.scenario
    if load is None:
        if not svc.serverless:
            for ep in rec.endpoints:
                total = ep.pool_size + ep.max_overflow
                # A cron service's pools are a small fixed share, whatever the path.
                cron = svc.kind == "cron"
                cap = (shares.FIXED_SHARE_PER_ENGINE if cron
                       else proxies.no_load_cap(ep.server_side is not None))
                capped = f"cron's fixed cap of {cap}" if cron else f"the default cap of {cap}"
                share = ep.per_process_budget
                if share is None or share > cap:
                    why = (f"{capped} per engine, below the budget ceiling"
                           + (f" of {share:,}" if share is not None else " (no limit here)"))
                else:
                    why = f"the budget ceiling of {share:,} per engine, at or below {capped}"
                yield finding(
                    "NO_LOAD",
                    f"no load given: pool_size + max_overflow = {total} is {why}.",
                    "Give requests/s and hold time to size pools from the load.",
                    endpoint=ep.role, facts={"per_engine": total, "cap": cap, "cron": cron,
                                             "budget": share})
        return
    for ep in rec.endpoints:
        per = ep.pool_size + ep.max_overflow
        if svc.serverless:
            continue
        if load.needed_pool is None or per <= load.offered_load:
            yield finding(
                "LOAD_OVER_BUDGET",
                f"each process offers a load of {load.offered_load:,.1f} busy "
                f"connections ({load.arrival_rate:,g} req/s x {load.hold_s * 1000:g} ms), but "
                f"its engine may open only {per:,}: the queue grows without bound and "
                "requests time out.",
                "Use a bigger class, more processes sharing the load, shorter transactions, "
                "or a pooler in front.",
                endpoint=ep.role, facts={
                    "offered_load": round(load.offered_load, 1), "rps": load.arrival_rate,
                    "hold_ms": load.hold_s * 1000, "per_engine": per})
        elif per < load.needed_pool:
            yield finding(
                "BUDGET_BELOW_LOAD",
                f"the load needs {load.needed_pool} connections per process for at "
                f"most {load.wait_target:.0%} of checkouts to wait, but the budget allows "
                f"{per}: {ep.p_wait:.0%} of checkouts wait.",
                "Use a bigger class, fewer processes, shorter transactions or a pooler.",
                endpoint=ep.role, facts={
                    "needed": load.needed_pool, "wait_target": load.wait_target,
                    "per_engine": per, "p_wait": ep.p_wait})
    for ep in rec.endpoints:
        side = ep.server_side
        if side is not None and side.offered_load is not None and side.limit is not None and (
                side.offered_load >= side.limit):
            lever = fixes.POOL_LEVER.get(s.proxy)
            if s.proxy == "neon-pooler":
                fix = f"{fixes.neon_fixed()}: pick a bigger compute size or shorten transactions."
            elif lever and side.limit < ep.room and side.offered_load < ep.room:
                fix = (f"Raise {lever} so the server pool is above {side.offered_load:,.0f} "
                       f"(up to the {ep.room:,} usable), or shorten transactions.")
            else:
                fix = "Use a bigger class, shorter transactions or fewer instances."
            yield finding(
                "LOAD_OVER_BUDGET",
                f"the load behind {s.proxy} keeps {side.offered_load:,.1f} server "
                f"connections busy on average, but it opens at most {side.limit:,}: "
                "its queue grows without bound.", fix, endpoint=ep.role, facts={
                    "proxy": s.proxy, "offered_load": round(side.offered_load, 1),
                    "server_pool": side.limit, "room": ep.room})


_TOKEN = re.compile(r"X-Amz-(Signature|Credential|Security-Token)|Action=connect", re.I)


def url_findings(url: str) -> list[Finding]:
    """Findings about a database URL a user supplied (never echoes the URL itself)."""
    if _TOKEN.search(url):
        return [finding(
            "IAM_TOKEN_IN_URL",
            "The URL carries an IAM auth token: it expires after 15 minutes, so every "
            "connection opened later is refused, and the token leaks wherever the URL is logged.",
            "Generate a token per new connection in a do_connect event (as exported).")]
    return []


@rule
def iam(rec: Recommendation, svc: Service) -> Iterator[Finding]:
    if rec.scenario.iam_auth:
        yield finding(
            "IAM_TOKEN_PER_CONNECTION",
            "IAM tokens last 15 minutes: each new connection needs a fresh one.",
            "Generate it in a do_connect event on engine.sync_engine (as exported); never "
            "put it in the URL.",
            facts={"iam_auth": True})
