"""Engine settings for one service on one endpoint: pool_size and max_overflow within its
budget and load, pool_timeout, pool_recycle, pre-ping, LIFO, connect_args, each with its
reason; the rules of thumb people copy, evaluated against it.

The budget is a ceiling, not a target.
"""

from __future__ import annotations

import math
from dataclasses import replace

from wizard.core import catalog, limits, projection, proxies, shares
from wizard.core.model import (
    POOLERS,
    TRANSACTION_POOLERS,
    LoadSizing,
    Recommendation,
    Scenario,
    Service,
)
from wizard.core.path import PathFacts, path_facts, proxy_wait_step
from wizard.core.queueing import fleet_offered_load, fleet_server_need, wait_figures
from wizard.core.results import (
    EndpointBudget,
    EngineSettings,
    ProxySide,
    RuleComparison,
    Source,
    Step,
)


def _fmt(n: int) -> str:
    return f"{n:,}"


def _split(share: int | None, split: float, load: LoadSizing | None, cap: int,
           fixed: bool = False) -> tuple[int, int, str]:
    """pool_size and max_overflow from a per-engine share, capped by the load.

    Without load the split applies to min(share, cap). With load, pool_size holds the
    burst need: SQLAlchemy closes overflow connections as they come back, so bursts served
    from overflow pay a connect each time (measured in bench/fleet.md). The overflow adds
    the gap between burst and mean need as a margin. When the share is below the burst
    need (or no server could hold the load), the budget binds and the split applies to
    the share. `fixed` (behind a transaction pooler, with or without load): the same total,
    all of it
    pool_size and no overflow, since an idle client connection there holds no server
    connection and a closed overflow one costs a new login at the next burst
    (bench/cpu.md).
    """
    unbounded = share is None  # no limit on this side: only the load or the cap binds
    if load is None:
        total = cap if share is None else min(share, cap)
        pool = total if fixed else max(1, math.floor(total * split))
        bound = "default cap (no load given)" if unbounded or share > cap else "budget"
        return pool, total - pool, bound
    need, burst = load.needed_pool, load.needed_with_overflow
    if need is None or burst is None:  # no server could hold this load
        total = cap if share is None else share
        bound = "budget"
        pool = max(1, math.floor(total * split))
    else:
        want = burst + (burst - need)
        total = want if share is None else min(share, want)
        bound = "load" if unbounded or share >= burst else "budget"
        pool = burst if bound == "load" else max(1, math.floor(share * split))
    if fixed:
        pool = total
    return pool, total - pool, bound


SQLALCHEMY_POOLING = "https://docs.sqlalchemy.org/en/20/core/pooling.html"


def _steps(s: Scenario, null: bool, lifo: bool, bound: str, share_how: str,
           share_text: str, total: int, path: PathFacts, fixed: bool = False
           ) -> dict[str, tuple[Step, ...]]:
    """Why each engine setting has its value, as steps; each is true for that setting."""
    if null:
        unused = (Step("not used", why="NullPool keeps no connection between checkouts"),)
        return {
            "poolclass": (Step("NullPool", why="each serverless invocation opens and closes "
                               "its own connection"),
                          Step("a pooled engine breaks across event loops")),
            "pool_size": unused, "max_overflow": unused, "pool_timeout": unused,
            "pool_recycle": unused, "pool_use_lifo": unused,
            "pool_pre_ping": (Step("off", why="every checkout is a new connection, so there "
                                   "is nothing idle to check"),),
            "connect_args": path.connect_args_steps,
        }
    pool = [Step(bound), Step(f"{share_text} per engine", formula=f"budget {share_how}")]
    overflow = [Step(f"{total} connections at most per engine ({bound})",
                     formula="pool_size + max_overflow")]
    if fixed:
        kept = Step("behind a transaction pooler an idle client connection holds no server "
                    "connection, so the engine keeps all of them: overflow ones would be "
                    "closed on check-in and reopened, a new login each, at every burst")
        pool.append(Step("a fixed pool (max_overflow 0)", why=kept.value))
        overflow = [Step("0", why=f"a fixed pool, pool_size = {total} connections at most per "
                         f"engine ({bound})"), kept]
    wait = proxy_wait_step(s)
    return {
        "poolclass": (Step("AsyncAdaptedQueuePool", why="create_async_engine's default",
                           source=SQLALCHEMY_POOLING),),
        "pool_size": tuple(pool),
        "max_overflow": tuple(overflow),
        "pool_timeout": (Step(f"{path.pool_timeout:g} s", why="surfaces exhaustion before a "
                              "typical 30 s load-balancer timeout turns it into a 504"),
                         *([wait] if wait else [])),
        "pool_recycle": (Step(path.recycle_why),),
        "pool_pre_ping": (Step(path.pre_ping_why),),
        "pool_use_lifo": (Step("LIFO", why="surplus connections stay idle so the proxy can "
                               "reclaim them") if lifo else
                          Step("FIFO", why="SQLAlchemy's default", source=SQLALCHEMY_POOLING),),
        "connect_args": path.connect_args_steps,
    }


def client_limit(proxy: proxies.ProxyLimits | None, usable: int) -> tuple[int | None, str]:
    """The limit the fleet's client connections must stay under on one endpoint, and its
    name: usable (direct), the server pool (session pooler), the proxy's client limit
    (transaction pooler or RDS Proxy; None when it has none)."""
    if proxy is None:
        return usable, "usable connections"
    if proxy.session_mode:
        return proxy.server_pool, "the session pooler's server pool"
    return proxy.client_limit, "the proxy's client limit"


def instances_behind(svc: Service, spec: limits.EndpointSpec) -> int:
    """A service's app instances behind an endpoint's processes (1 when serverless: the load
    is the whole service's)."""
    return spec.processes // max(1, svc.workers) if not svc.serverless else 1


def size_endpoint(s: Scenario, svc: Service, spec: limits.EndpointSpec,
                  load: LoadSizing | None, path: PathFacts, cap: int | None = None,
                  fleet_need: int | None = None,
                  group: list[tuple[Service, int]] | None = None,
                  group_share: shares.Share | None = None
                  ) -> tuple[EndpointBudget, EngineSettings, str]:
    """One service's budget and engine settings on one endpoint, and the bound that decided
    them: `s` is the database on the path the service takes (its proxy), `svc` the service
    (its fleet, load and pools). Behind a pooler several services share, `group` lists their
    fleets (for the pooler's need) and `group_share` is this service's part of the pooler's
    limit."""
    instances = instances_behind(svc, spec)
    fleets = group or [(svc, instances)]
    if fleet_need is None:
        fleet_need = fleet_server_need(fleets)
    proxy = proxies.proxy_limits(s, spec, fleet_need, len(group) if group else 1)
    path_s = s
    if proxy is None and s.proxy in POOLERS:
        # RDS Proxy serves only the writer: this replica is reached directly, so its idle
        # cut-offs, waits and pre-ping are the direct path's, never the proxy's.
        path_s = replace(s, proxy="none")
        path = path_facts(path_s, svc.serverless)
    share, share_how = shares.per_process_budget(s, spec, proxy, group_share)
    if cap is None:
        cap = proxies.no_load_cap(proxy is not None)
    # Behind a transaction pooler an idle client connection holds no server connection:
    # with a load or without, the engine keeps its whole total as a fixed pool (see _split).
    fixed = proxy is not None and s.proxy in TRANSACTION_POOLERS and not svc.serverless
    if svc.serverless:
        pool, overflow, bound = 1, 0, "serverless: one connection per invocation"
    else:
        pool, overflow, bound = _split(share, svc.pool_split, load, cap, fixed)
        if proxy is not None and bound == "budget":
            bound = "proxy " + ("server pool" if proxy.session_mode else "client limit")
    per = pool + overflow
    client_total = spec.clients * per
    server_side = client_side = None
    worst, seen = client_total, ""
    if proxy is not None:
        # A pooler opens a server connection only for a client that needs one.
        worst = min(proxy.server_pool, client_total)
        server_side = ProxySide(proxy.server_pool, proxy.server_pool_source, worst,
                                f"min(server pool {_fmt(proxy.server_pool)}, client "
                                f"connections {_fmt(client_total)})",
                                proxy.configured_server_pool, proxy.pool_size_per_pair,
                                proxy.reserve_pool, fleet_need,
                                fleet_offered_load(fleets), proxy.pairs, proxy.total)
        client_side = ProxySide(proxy.client_limit, proxy.client_limit_source,
                                client_total, f"{spec.clients:,} engines x {per}")
        seen = (f"; the database sees at most min(server pool "
                f"{_fmt(proxy.server_pool)}, {_fmt(client_total)}) = {_fmt(worst)}")
    limit, limit_name = client_limit(proxy, spec.usable)
    breaks = projection.break_point(
        per, limit, lambda n: limits.processes_at(s, svc, spec.role, n),
        spec.engines_per_process, svc.fleet_size)
    waits: tuple[float | None, ...] = (None, None, None)
    if load is not None and not svc.serverless:
        waits = wait_figures(load, per, path.pool_timeout)
    parts = " - ".join(f"{r.count} {r.name}" for r in spec.reserves)
    share_text = _fmt(share) if share is not None else "unbounded"
    explanation = (f"{_fmt(spec.max_connections)} max_connections"
                   + (f" - {parts}" if parts else "")
                   + f" = {_fmt(spec.usable)} usable; per engine: {share_how} = "
                   f"{share_text}; pool {pool} + overflow "
                   f"{overflow} x {_fmt(spec.clients)} engines = {_fmt(client_total)}" + seen)
    endpoint = EndpointBudget(
        role=spec.role, instance_class=spec.instance_class,
        max_connections=spec.max_connections,
        max_connections_source=spec.max_connections_source,
        max_connections_estimated=spec.estimated, reserves=spec.reserves,
        reserved=spec.reserved, usable=spec.usable, processes=spec.processes,
        engines_per_process=spec.engines_per_process, clients=spec.clients,
        per_process_budget=share, pool_size=pool, max_overflow=overflow,
        worst_case=worst, explanation=explanation, server_side=server_side,
        client_side=client_side, vcpu=spec.vcpu, p_wait=waits[0],
        p_wait_past_timeout=waits[1], mean_wait_ms=waits[2], breaks_at=breaks,
        break_limit=limit, break_limit_name=limit_name, allotment=spec.allotment)
    null = svc.serverless
    # LIFO only where a pooler sits in front of this endpoint (RDS Proxy skips RDS replicas).
    lifo = proxy is not None and not null
    engine = EngineSettings.reasoned(
        _steps(path_s, null, lifo, bound, share_how, share_text, per, path, fixed),
        endpoint=spec.role, poolclass="NullPool" if null else "AsyncAdaptedQueuePool",
        pool_size=pool, max_overflow=overflow, pool_timeout=path.pool_timeout,
        pool_recycle=path.recycle, pool_pre_ping=path.pre_ping and not null, pool_use_lifo=lifo,
        connect_args=dict(path.connect_args))
    return endpoint, engine, bound


def rule_comparisons(svc: Service, primary: EndpointBudget) -> tuple[RuleComparison, ...]:
    """The rules people copy, evaluated for a service on the primary, per engine, against
    the limit that binds the fleet's client connections there (`primary.break_limit`).

    A rule sized for the whole server is divided among the engines; below one connection
    per engine it does not fit. The fleet total is always per engine x engines.
    """
    clients = primary.clients
    limit = primary.break_limit
    out: list[RuleComparison] = []

    def add(name: str, formula: str, per: int, src: str) -> None:
        total = per * clients
        fits = per >= 1 and (limit is None or total <= limit)
        out.append(RuleComparison(name, formula, per, total, fits, src, limit,
                                  primary.break_limit_name))

    add("poolwise", "budget and load, per endpoint", primary.pool_size + primary.max_overflow,
        "this recommendation")
    add("SQLAlchemy defaults", "pool_size 5 + max_overflow 10", 15,
        "https://docs.sqlalchemy.org/en/20/core/pooling.html")
    if primary.vcpu:
        total = int(primary.vcpu) * 2 + 1
        add("HikariCP", f"database cores x 2 + 1 spindle = {total} for the server, / "
            f"{clients:,} engines", total // clients,
            "https://github.com/brettwooldridge/HikariCP/wiki/About-Pool-Sizing")
    prisma = svc.app_vcpus * 2 + 1
    add("Prisma", f"app CPUs x 2 + 1 = {prisma} per process", prisma,
        "https://www.prisma.io/docs/orm/prisma-client/setup-and-configuration/databases-connections")
    for pct in (40, 80):
        total = primary.max_connections * pct // 100
        add(f"Supabase {pct}%", f"{pct}% of max_connections = {total:,}, / {clients:,} engines",
            total // clients, "https://supabase.com/docs/guides/database/connection-management")
    return tuple(out)


def rules_limit(rec: Recommendation) -> str:
    """What the rules of thumb are compared against on the primary, in words."""
    first = rec.rules[0] if rec.rules else None
    return (f"{first.limit:,} {first.limit_name}" if first and first.limit is not None
            else "no limit")


def sources_for(s: Scenario, rec: Recommendation) -> tuple[Source, ...]:
    """Every source behind the numbers of a recommendation, without repeats."""
    seen: dict[str, Source] = {}

    def add(src: Source | None) -> None:
        if src and src.url and src.url.startswith("http") and src.url not in seen:
            seen[src.url] = src

    for ep in rec.endpoints:
        if ep.instance_class:
            try:
                add(catalog.instance_class(s.provider, ep.instance_class).source)
            except ValueError:
                pass
        if ep.max_connections_estimated:
            add(Source("RDS max_connections formula", catalog.RDS_FORMULA_URL))
        for r in ep.reserves:
            if r.source.startswith("http"):
                add(Source(r.name, r.source))
    for _, _, url in rec.cutoffs:
        add(Source("idle cut-off", url))
    for rule in rec.rules:
        add(Source(rule.name, rule.source))
    return tuple(seen.values())
