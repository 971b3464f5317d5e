"""Pool sizing beyond the budget: load (Little's law, Erlang C), timeouts, recycle, driver args.

The budget is a ceiling, not a target. `recommend` turns a Scenario into the one
Recommendation every other part of poolwise reads.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from wizard import bounds, budget, catalog, checks
from wizard.model import (
    EndpointBudget,
    EngineSettings,
    LoadSizing,
    ProxySide,
    Recommendation,
    RuleComparison,
    Scenario,
    Source,
)
from wizard.path import PathFacts, path_facts, proxy_wait_note

WAIT_TARGET = 0.05  # at most 5% of checkouts wait at all


def _wait_probabilities(offered: float, upto: int, stop_below: float | None = None
                        ) -> list[tuple[int, float]]:
    """(n, Erlang C) for n from floor(offered) + 1 up to `upto` (or until P(wait) falls to
    `stop_below`), in one pass.

    Erlang B is the last Poisson(offered) term over the Poisson CDF up to n. Terms more
    than 15 standard deviations below the mean weigh less than 1e-50 of the sum and are
    skipped, so the cost is about 15 x sqrt(offered) + (n - offered) steps, not n.
    """
    first = math.floor(offered) + 1
    start = max(0, math.floor(offered - 15 * math.sqrt(offered) - 15))
    log_a = math.log(offered)
    # log of the Poisson term at the mode: every scaled term is then at most 1.
    ref = math.floor(offered) * log_a - math.lgamma(math.floor(offered) + 1)
    log_term = start * log_a - math.lgamma(start + 1) - ref
    total = 0.0
    out: list[tuple[int, float]] = []
    for k in range(start, upto + 1):
        if k > start:
            log_term += log_a - math.log(k)
        term = math.exp(log_term)
        total += term
        if k >= first:
            b = term / total
            c = k * b / (k - offered * (1 - b))
            out.append((k, c))
            if stop_below is not None and c <= stop_below:
                break
    return out


def erlang_c(servers: int, offered: float) -> float:
    """Probability an arrival waits (Erlang C) with `servers` connections and `offered` Erlangs."""
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return 1.0
    # Past 1e-15 the probability only shrinks: stop there instead of walking to `servers`.
    return _wait_probabilities(offered, servers, stop_below=1e-15)[-1][1]


def smallest_pool(offered: float, target: float = WAIT_TARGET,
                  limit: int = bounds.PG_MAX_BACKENDS) -> int | None:
    """Smallest pool whose probability of waiting is at most `target`, or None when even
    `limit` connections are not enough (no server could take that many)."""
    if offered <= 0:
        return 1
    if offered >= limit:
        return None
    # The square-root staffing rule puts the answer near offered + 2 sqrt(offered); the
    # search stops there, so the cost grows with sqrt(offered), never with a visitor's rps.
    hits = _wait_probabilities(offered, limit, stop_below=target)
    n, p = hits[-1]
    return n if p <= target else None


# Points of the wait-probability curve kept for charts (not one per pool size).
CURVE_POINTS = 40


def load_sizing(s: Scenario) -> LoadSizing | None:
    """Pool one process needs for the given load, or None without load.

    `needed_pool` holds the mean load with P(wait) <= 5 %; `needed_with_overflow` the
    burst (p95 hold time, else twice the rate). Either is None when no PostgreSQL server
    could hold it (the offered load is above its connection limit).
    """
    if s.load is None:
        return None
    rate = s.load.rps / (1 if s.serverless else s.workers)
    hold = s.load.hold_ms / 1000
    a = rate * hold
    need = smallest_pool(a)
    # Overflow absorbs bursts: the p95 hold time if known, else twice the arrival rate.
    burst = rate * (s.load.p95_hold_ms / 1000) if s.load.p95_hold_ms else 2 * a
    burst_need = smallest_pool(burst)
    need_total = None if need is None or burst_need is None else max(need, burst_need)
    curve: tuple[tuple[int, float], ...] = ()
    if need_total is not None:
        # Past 1e-6 the curve is flat at zero: stop there, not at a far burst need.
        pts = _wait_probabilities(a, need_total + 5, stop_below=1e-6)
        step = max(1, len(pts) // CURVE_POINTS)
        curve = tuple(pts[::step])
        if curve[-1] != pts[-1]:
            curve += (pts[-1],)
        if math.floor(a) >= 1:  # at the offered load itself every checkout waits
            curve = ((math.floor(a), 1.0), *curve)
    return LoadSizing(rate, hold, a, need, need_total, curve, WAIT_TARGET)


def wait_figures(load: LoadSizing, connections: int, pool_timeout: float
                 ) -> tuple[float, float, float]:
    """P(wait), P(wait past pool_timeout) and mean wait (ms) when `connections` can be
    checked out at once under this load (1.0, 1.0, inf when the queue is unstable)."""
    a, hold = load.offered_load, load.hold_s
    if connections <= a:
        return 1.0, 1.0, math.inf
    p = erlang_c(connections, a)
    # M/M/n: P(wait > t) = P(wait) x exp(-(n - a) t / hold).
    return (p, p * math.exp(-(connections - a) * pool_timeout / hold),
            p * hold / (connections - a) * 1000)


def percent(p: float) -> str:
    """A probability for people: 3.5%, or <0.1% rather than a misleading 0.0%."""
    return "<0.1%" if 0 < p < 0.001 else f"{p:.1%}"


def load_lines(rec: Recommendation) -> list[str]:
    """The load figures in words, each P(wait) for the pool actually exported; the CLI,
    the report and the app print these lines as they are."""
    ld = rec.load
    if ld is None:
        return []

    def need(n: int | None) -> str:
        return f"{n:,}" if n is not None else "more than any PostgreSQL server allows"

    lines = [f"{ld.arrival_rate:,g} requests/s per process x {ld.hold_s * 1000:g} ms = "
             f"{ld.offered_load:,.2f} busy connections (Little's law); the mean load needs "
             f"{need(ld.needed_pool)} connections for at most {WAIT_TARGET:.0%} of checkouts "
             f"to wait (Erlang C), bursts need {need(ld.needed_with_overflow)}."]
    for ep in rec.endpoints:
        if ep.p_wait is None:
            continue
        per = ep.pool_size + ep.max_overflow
        if ep.p_wait >= 1:
            lines.append(f"{ep.role}: pool {ep.pool_size} + overflow {ep.max_overflow} = {per} "
                         f"is at or below the offered load: every checkout waits.")
        else:
            lines.append(f"{ep.role}: pool {ep.pool_size} + overflow {ep.max_overflow} = {per}: "
                         f"P(wait) {percent(ep.p_wait)}, mean wait {ep.mean_wait_ms:.2g} ms, "
                         f"P(wait past pool_timeout) {percent(ep.p_wait_past_timeout)}.")
    return lines


def fleet_server_need(s: Scenario, instances: int) -> int | None:
    """Server connections a pooler needs for the whole fleet's load, bursts included
    (the p95 hold time if known, else twice the rate, as for each process)."""
    if s.load is None:
        return None
    rate = s.load.rps * instances if not s.serverless else s.load.rps
    burst = rate * (s.load.p95_hold_ms / 1000 if s.load.p95_hold_ms
                    else 2 * s.load.hold_ms / 1000)
    need = smallest_pool(burst)
    # Above what any server can hold: report the load itself, which exceeds every limit.
    return need if need is not None else math.ceil(burst) + 1


def fleet_offered_load(s: Scenario, instances: int) -> float | None:
    """Mean busy server connections the whole fleet's load keeps (Little's law)."""
    if s.load is None:
        return None
    rate = s.load.rps * instances if not s.serverless else s.load.rps
    return rate * s.load.hold_ms / 1000


def _fmt(n: int) -> str:
    return f"{n:,}"


def _split(share: int | None, split: float, load: LoadSizing | None, cap: int
           ) -> tuple[int, int, str]:
    """pool_size and max_overflow from a per-engine share, capped by the load.

    Without load the split applies to min(share, cap). With load, pool_size holds the
    burst need: SQLAlchemy closes overflow connections as they come back, so bursts served
    from overflow pay a connect each time (measured in bench/fleet.md). The overflow adds
    the gap between burst and mean need as a margin. When the share is below the burst
    need (or no server could hold the load), the budget binds and the split applies to
    the share.
    """
    unbounded = share is None  # no limit on this side: only the load or the cap binds
    if load is None:
        total = cap if share is None else min(share, cap)
        pool = max(1, math.floor(total * split))
        bound = "default cap (no load given)" if unbounded or share > cap else "budget"
        return pool, total - pool, bound
    need, burst = load.needed_pool, load.needed_with_overflow
    if need is None or burst is None:  # no server could hold this load
        total = cap if share is None else share
        pool = max(1, math.floor(total * split))
        return pool, total - pool, "budget"
    want = burst + (burst - need)
    total = want if share is None else min(share, want)
    if unbounded or share >= burst:
        return burst, total - burst, "load"
    pool = max(1, math.floor(share * split))
    return pool, total - pool, "budget"


def _reasons(s: Scenario, null: bool, lifo: bool, bound: str, share_how: str,
             share_text: str, total: int, path: PathFacts) -> dict[str, str]:
    """Why each engine setting has its value; each text is true for that setting."""
    if null:
        unused = "not used: NullPool keeps no connection between checkouts"
        return {
            "poolclass": "NullPool: each serverless invocation opens and closes its own "
                         "connection; a pooled engine breaks across event loops",
            "pool_size": unused, "max_overflow": unused, "pool_timeout": unused,
            "pool_recycle": unused, "pool_use_lifo": unused,
            "pool_pre_ping": "off: every checkout is a new connection, so there is nothing "
                             "idle to check",
            "connect_args": "; ".join(path.connect_args_why),
        }
    return {
        "poolclass": "AsyncAdaptedQueuePool: create_async_engine's default",
        "pool_size": f"{bound}; budget {share_how} = {share_text} per engine",
        "max_overflow": f"pool_size + max_overflow = {total} connections at most per engine "
                        f"({bound})",
        "pool_timeout": f"{path.pool_timeout:g} s: surfaces exhaustion before a typical 30 s "
                        "load-balancer timeout turns it into a 504" + proxy_wait_note(s),
        "pool_recycle": path.recycle_why,
        "pool_pre_ping": path.pre_ping_why,
        "pool_use_lifo": ("LIFO: surplus connections stay idle so the proxy can reclaim "
                          "them") if lifo else "FIFO: SQLAlchemy's default",
        "connect_args": "; ".join(path.connect_args_why),
    }


def client_limit(proxy: budget.ProxyLimits | None, usable: int) -> tuple[int | None, str]:
    """The limit the fleet's client connections must stay under on one endpoint, and its
    name: usable (direct), the server pool (session pooler), the proxy's client limit
    (transaction pooler or RDS Proxy; None when it has none)."""
    if proxy is None:
        return usable, "usable connections"
    if proxy.session_mode:
        return proxy.server_pool, "the session pooler's server pool"
    return proxy.client_limit, "the proxy's client limit"


def recommend(s: Scenario) -> Recommendation:
    """Size every endpoint and engine for a scenario; raises SizingError when it cannot fit."""
    budget.validate(s)
    path = path_facts(s)
    load = load_sizing(s)
    sized = [size_endpoint(s, spec, load, path) for spec in budget.endpoint_specs(s)]
    endpoints = tuple(ep for ep, _, _ in sized)
    breaks = [e.breaks_at for e in endpoints if e.breaks_at is not None]
    rec = Recommendation(scenario=s, endpoints=endpoints,
                         engines=tuple(eng for _, eng, _ in sized), warnings=(), sources=(),
                         load=load, rules=rule_comparisons(s, endpoints[0]),
                         binding="; ".join(f"{ep.role}: {bound}" for ep, _, bound in sized),
                         breaks_at=min(breaks, default=None), cutoffs=path.cutoffs)
    return replace(rec, warnings=checks.run_checks(rec), sources=sources_for(s, rec))


def size_endpoint(s: Scenario, spec: budget.EndpointSpec, load: LoadSizing | None,
                  path: PathFacts) -> tuple[EndpointBudget, EngineSettings, str]:
    """One endpoint's budget and engine settings, and the bound that decided them."""
    instances = spec.processes // max(1, s.workers) if not s.serverless else 1
    fleet_need = fleet_server_need(s, instances)
    proxy = budget.proxy_limits(s, spec, fleet_need)
    share, share_how = budget.per_process_budget(s, spec, proxy)
    if s.serverless:
        pool, overflow, bound = 1, 0, "serverless: one connection per invocation"
    else:
        pool, overflow, bound = _split(share, s.pool_split, load,
                                       budget.no_load_cap(proxy is not None))
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
                                fleet_offered_load(s, instances))
        client_side = ProxySide(proxy.client_limit, proxy.client_limit_source,
                                client_total, f"{spec.clients:,} engines x {per}")
        seen = (f"; the database sees at most min(server pool "
                f"{_fmt(proxy.server_pool)}, {_fmt(client_total)}) = {_fmt(worst)}")
    limit, limit_name = client_limit(proxy, spec.usable)
    breaks = budget.break_point(per, limit, lambda n: budget.processes_at(s, spec.role, n),
                                spec.engines_per_process,
                                s.serverless_concurrency or s.autoscaling_max)
    waits: tuple[float | None, ...] = (None, None, None)
    if load is not None and not s.serverless:
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
        break_limit=limit, break_limit_name=limit_name)
    null = s.serverless
    # LIFO only where a pooler sits in front of this endpoint (RDS Proxy skips RDS replicas).
    lifo = proxy is not None and not null
    engine = EngineSettings(
        endpoint=spec.role, poolclass="NullPool" if null else "AsyncAdaptedQueuePool",
        pool_size=pool, max_overflow=overflow, pool_timeout=path.pool_timeout,
        pool_recycle=path.recycle, pool_pre_ping=path.pre_ping and not null, pool_use_lifo=lifo,
        connect_args=dict(path.connect_args),
        reasons=_reasons(s, null, lifo, bound, share_how, share_text, per, path))
    return endpoint, engine, bound


def rule_comparisons(s: Scenario, primary: EndpointBudget) -> tuple[RuleComparison, ...]:
    """The rules people copy, evaluated for this scenario's primary, per engine, against
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
    prisma = s.app_vcpus * 2 + 1
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


# The scale-out series never has more points than this, whatever the fleet size.
SCALE_OUT_POINTS = 300


def scale_out_range(rec: Recommendation) -> int:
    """Default x-axis end: twice the autoscaling maximum, and past the break point."""
    s = rec.scenario
    top = s.autoscaling_max
    end = max(2 * top, top + 4)
    if rec.breaks_at is not None:
        end = max(end, rec.breaks_at + max(2, rec.breaks_at // 5))
    return end


def scale_out(rec: Recommendation, up_to: int | None = None) -> list[dict[str, Any]]:
    """Worst-case connections per endpoint as the fleet grows, with the recommended
    per-engine settings held fixed: where does it break?

    x is the autoscaling maximum (`instances`); the deploy surge is added as everywhere
    else. At most SCALE_OUT_POINTS instance counts are sampled (always including the
    current maximum and every break point). One row per (instances, endpoint):
    worst_case (what the endpoint sees), client_connections, limit (what the clients
    must stay under), usable and max_connections.
    """
    s = rec.scenario
    if s.serverless:
        return []
    top = min(up_to or scale_out_range(rec), 10 * bounds.RANGES["app_instances"].high)
    if top <= SCALE_OUT_POINTS:
        xs = set(range(1, top + 1))
    else:
        step = (top - 1) / (SCALE_OUT_POINTS - 1)
        xs = {1 + round(i * step) for i in range(SCALE_OUT_POINTS)}
    now = s.autoscaling_max
    for b in [now] + [e.breaks_at for e in rec.endpoints if e.breaks_at]:
        xs |= {x for x in (b - 1, b) if 1 <= x <= top}
    rows = []
    for n in sorted(xs):
        for ep in rec.endpoints:
            clients = (budget.processes_at(s, ep.role, n) * ep.engines_per_process
                       * (ep.pool_size + ep.max_overflow))
            worst = clients if ep.server_side is None else min(ep.server_side.limit, clients)
            rows.append({"instances": n, "endpoint": ep.role, "worst_case": worst,
                         "client_connections": clients, "limit": ep.break_limit,
                         "usable": ep.usable, "max_connections": ep.max_connections})
    return rows
