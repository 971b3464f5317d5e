"""Pool sizing beyond the budget: load (Little's law, Erlang C), timeouts, recycle, driver args.

The budget is a ceiling, not a target. `recommend` turns a Scenario into the one
Recommendation every other part of poolwise reads.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from wizard import budget, catalog
from wizard.model import (
    POOLERS,
    TRANSACTION_POOLERS,
    EndpointBudget,
    EngineSettings,
    LoadSizing,
    ProxySide,
    Recommendation,
    RuleComparison,
    Scenario,
    Source,
)

WAIT_TARGET = 0.05  # at most 5% of checkouts wait at all
# Without load, pool_size + max_overflow per engine: a little above SQLAlchemy's 5 + 10.
NO_LOAD_TOTAL_CAP = 20
# Behind a pooler the proxy does the pooling: a small client pool is enough.
POOLER_TOTAL_CAP = 10
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_RECYCLE = 1800
MIN_RECYCLE = 60
CONNECT_TIMEOUT = 10


def erlang_c(servers: int, offered: float) -> float:
    """Probability an arrival waits (Erlang C) with `servers` connections and `offered` Erlangs."""
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    return servers * b / (servers - offered * (1 - b))


def smallest_pool(offered: float, target: float = WAIT_TARGET) -> int:
    """Smallest pool whose probability of waiting is at most `target`."""
    n = max(1, math.floor(offered) + 1)
    while erlang_c(n, offered) > target:
        n += 1
    return n


def wait_past(servers: int, offered: float, hold_s: float, t: float) -> float:
    """P(checkout waits longer than t seconds) in an M/M/n queue."""
    if servers <= offered:
        return 1.0
    return erlang_c(servers, offered) * math.exp(-(servers - offered) * t / hold_s)


def load_sizing(s: Scenario, pool_timeout: float) -> LoadSizing | None:
    """Pool one process needs for the given load, or None without load."""
    if s.load is None:
        return None
    rate = s.load.rps / (1 if s.serverless else s.workers)
    hold = s.load.hold_ms / 1000
    a = rate * hold
    need = smallest_pool(a)
    # Overflow absorbs bursts: the p95 hold time if known, else twice the arrival rate.
    burst = rate * (s.load.p95_hold_ms / 1000) if s.load.p95_hold_ms else 2 * a
    need_total = max(need, smallest_pool(burst))
    p = erlang_c(need, a)
    mean_wait = p * hold / (need - a) if need > a else math.inf
    curve = tuple((n, erlang_c(n, a)) for n in range(1, need_total + 6))
    return LoadSizing(rate, hold, a, need, need_total, p, wait_past(need, a, hold, pool_timeout),
                      mean_wait * 1000, curve)


def fleet_server_need(s: Scenario, instances: int) -> int | None:
    """Server connections a pooler needs for the whole fleet's load, bursts included
    (the p95 hold time if known, else twice the rate, as for each process)."""
    if s.load is None:
        return None
    rate = s.load.rps * instances if not s.serverless else s.load.rps
    if s.load.p95_hold_ms:
        return smallest_pool(rate * s.load.p95_hold_ms / 1000)
    return smallest_pool(2 * rate * s.load.hold_ms / 1000)


def idle_cutoffs(s: Scenario) -> list[tuple[str, int, str]]:
    """Every idle cut-off on the path (name, seconds, source URL), shortest first."""
    found: list[tuple[str, int, str]] = []

    def add(name: str, fact: tuple[str, Source] | None) -> None:
        value, src = catalog.int_fact(fact, 0)
        if value > 0:
            found.append((name, value, src.url if src else ""))

    for item in s.network:
        for key in ("idle_timeout", "tcp_established_idle_timeout", "connection_tracking_idle"):
            if fact := catalog.proxy_fact(item, key):
                add(item, fact)
                break
    add(f"{s.provider} network", catalog.provider_fact(s.provider, "tcp_idle_cutoff"))
    add(f"{s.provider} idle_session_timeout",
        catalog.provider_fact(s.provider, "server_idle_session_timeout"))
    if s.proxy == "rds-proxy":
        add("RDS Proxy IdleClientTimeout", catalog.proxy_fact("rds-proxy", "IdleClientTimeout"))
    if s.proxy.startswith("pgbouncer"):
        add("PgBouncer client_idle_timeout", catalog.proxy_fact("pgbouncer", "client_idle_timeout"))
    if s.proxy.startswith("supavisor"):
        add("Supavisor client idle timeout", catalog.proxy_fact("supavisor", "client_idle_timeout"))
    return sorted(found, key=lambda f: f[1])


def proxy_wait_note(s: Scenario) -> str:
    """What the proxy adds to a request's wait after the pool hands out a connection."""
    for proxy, component, setting in (("rds-proxy", "rds-proxy", "ConnectionBorrowTimeout"),
                                      ("pgbouncer", "pgbouncer", "query_wait_timeout"),
                                      ("azure-pgbouncer", "azure-pgbouncer",
                                       "query_wait_timeout"),
                                      ("neon-pooler", "neon-pooler", "query_wait_timeout")):
        if s.proxy.startswith(proxy):
            secs, _ = catalog.int_fact(catalog.proxy_fact(component, setting), 0)
            if secs:
                return (f"; the proxy may then hold a query up to {secs} s more waiting for a "
                        f"server connection ({setting}): keep request timeouts above "
                        "pool_timeout + that, or lower it on the proxy")
    return ""


def recycle_for(s: Scenario) -> tuple[int, str]:
    """pool_recycle below the shortest idle cut-off, never below 60 s."""
    cuts = idle_cutoffs(s)
    if not cuts:
        return DEFAULT_RECYCLE, (f"no idle cut-off known on the path; {DEFAULT_RECYCLE} s "
                                 "spreads reconnects after failovers")
    name, secs, _ = cuts[0]
    margin = max(30, secs // 10)
    value = max(MIN_RECYCLE, (secs - margin) // 10 * 10)
    return value, f"below {name} ({secs} s) by {secs - value} s"


def prepared_statements_survive(s: Scenario) -> bool:
    """Whether asyncpg's named prepared statements work through the proxy in the path."""
    if s.proxy not in TRANSACTION_POOLERS:
        return True
    if s.proxy == "neon-pooler":
        # Neon runs PgBouncer 1.22+ with max_prepared_statements=1000 (not user-editable).
        value, _ = catalog.int_fact(catalog.proxy_fact("neon-pooler", "max_prepared_statements"),
                                    0)
        return value > 0
    if s.proxy == "azure-pgbouncer":
        # Azure's built-in PgBouncer (1.25) keeps them once the server parameter is above 0.
        return bool(s.proxy_settings.max_prepared_statements)
    if s.proxy != "pgbouncer-transaction":
        return False  # Supavisor transaction mode: no prepared statements
    mps = s.proxy_settings.max_prepared_statements
    version = _version(s.proxy_settings.pgbouncer_version)
    if mps is None:
        mps = 200 if version and version >= (1, 24) else 0
    return bool(version and version >= (1, 21) and mps > 0)


def _version(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def connect_args_for(s: Scenario) -> tuple[dict[str, Any], list[str]]:
    """asyncpg connect arguments the path needs, with a reason for each."""
    args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    why = [f"timeout={CONNECT_TIMEOUT}: fail a connect in {CONNECT_TIMEOUT} s, not asyncpg's 60"]
    if not prepared_statements_survive(s):
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        why.append("statement caches off: the transaction pooler cannot keep named "
                   "prepared statements across transactions")
    elif s.proxy in TRANSACTION_POOLERS:
        why.append("statement caches on: this transaction pooler tracks protocol-level "
                   "prepared statements (max_prepared_statements > 0)")
    if s.proxy == "rds-proxy" or s.provider in ("azure-flexible", "supabase", "neon") or (
            s.provider in ("aws-rds", "aws-aurora") and (s.iam_auth or s.proxy == "none")):
        args["ssl"] = "require"
        why.append("ssl: the provider or proxy requires TLS (verify with the provider's CA "
                   "bundle in production)")
    if s.serverless:
        args["command_timeout"] = 10
        why.append("command_timeout=10: a serverless invocation must not hang on the database")
    return args, why


def _fmt(n: int) -> str:
    return f"{n:,}"


def no_load_cap(s: Scenario) -> int:
    """pool_size + max_overflow per engine when no load is given."""
    return POOLER_TOTAL_CAP if s.proxy in POOLERS else NO_LOAD_TOTAL_CAP


def _split(share: int | None, split: float, need_pool: int | None, need_total: int | None,
           cap: int) -> tuple[int, int, str]:
    """pool_size and max_overflow from a per-engine share, capped by the load.

    Without load the split applies to min(share, cap). With load, pool_size holds the
    burst need: SQLAlchemy closes overflow connections as they come back, so bursts served
    from overflow pay a connect each time (measured in bench/fleet.md). The overflow adds
    the gap between burst and mean need as a margin. When the share is below the burst
    need, the budget binds and the split applies to the share.
    """
    unbounded = share is None  # no limit on this side: only the load or the cap binds
    if share is None:
        share = max(cap, need_total or 0, need_pool or 0)
    if need_pool is None:
        total = min(share, cap)
        pool = max(1, math.floor(total * split))
        capped = unbounded or share > cap
        bound = "default cap (no load given)" if capped else "budget"
    else:
        burst = max(need_total or need_pool, need_pool)
        total = min(share, burst + (burst - need_pool))
        if share >= burst:
            pool, bound = burst, "load"
        else:
            pool, bound = max(1, math.floor(share * split)), "budget"
    return pool, total - pool, bound


def recommend(s: Scenario) -> Recommendation:
    """Size every endpoint and engine for a scenario; raises SizingError when it cannot fit."""
    from wizard import checks  # checks reads sizing's helpers

    budget.validate(s)
    pool_timeout = DEFAULT_POOL_TIMEOUT
    load = load_sizing(s, pool_timeout)
    specs = budget.endpoint_specs(s)
    recycle, recycle_why = recycle_for(s)
    args, args_why = connect_args_for(s)
    endpoints: list[EndpointBudget] = []
    engines: list[EngineSettings] = []
    bindings: list[str] = []
    for spec in specs:
        fleet_need = fleet_server_need(
            s, spec.processes // max(1, s.workers) if not s.serverless else 1)
        proxy = budget.proxy_limits(s, spec, fleet_need)
        share, share_how = budget.per_process_budget(s, spec, proxy)
        if s.serverless:
            pool, overflow, bound = 1, 0, "serverless: one connection per invocation"
        else:
            pool, overflow, bound = _split(
                share, s.pool_split, load.needed_pool if load else None,
                load.needed_with_overflow if load else None, no_load_cap(s))
            if proxy is not None and bound == "budget":
                bound = "proxy " + ("server pool" if proxy.session_mode else "client limit")
        bindings.append(f"{spec.role}: {bound}")
        client_total = spec.clients * (pool + overflow)
        server_side = client_side = None
        if proxy is None:
            worst = client_total
        else:
            worst = (min(proxy.server_pool, client_total) if proxy.session_mode
                     else proxy.server_pool)
            server_side = ProxySide(proxy.server_pool, proxy.server_pool_source, worst,
                                    f"configured {proxy.configured_server_pool}",
                                    proxy.configured_server_pool, proxy.pool_size_per_pair,
                                    proxy.reserve_pool, fleet_need)
            client_side = ProxySide(proxy.client_limit, proxy.client_limit_source,
                                    client_total, f"{spec.clients:,} engines x {pool + overflow}")
        reserved = sum(r.count for r in spec.reserves)
        parts = " - ".join(f"{r.count} {r.name}" for r in spec.reserves)
        share_text = _fmt(share) if share is not None else "unbounded"
        explanation = (f"{_fmt(spec.max_connections)} max_connections"
                       + (f" - {parts}" if parts else "")
                       + f" = {_fmt(spec.usable)} usable; per engine: {share_how} = "
                       f"{share_text}; pool {pool} + overflow "
                       f"{overflow} x {_fmt(spec.clients)} engines = {_fmt(client_total)}")
        endpoints.append(EndpointBudget(
            role=spec.role, instance_class=spec.instance_class,
            max_connections=spec.max_connections,
            max_connections_source=spec.max_connections_source,
            max_connections_estimated=spec.estimated, reserves=spec.reserves,
            reserved=reserved, usable=spec.usable, processes=spec.processes,
            engines_per_process=spec.engines_per_process, clients=spec.clients,
            per_process_budget=share, pool_size=pool, max_overflow=overflow,
            worst_case=worst, explanation=explanation, server_side=server_side,
            client_side=client_side, vcpu=spec.vcpu))
        null = s.serverless
        lifo = s.proxy in POOLERS and not null
        reasons = {
            "poolclass": ("NullPool: each serverless invocation opens and closes its own "
                          "connection; a pooled engine breaks across event loops") if null else
                         "AsyncAdaptedQueuePool: create_async_engine's default",
            "pool_size": f"{bound}; budget {share_how} = {share_text} per engine",
            "max_overflow": f"pool_size + max_overflow = {pool + overflow} connections at most "
                            f"per engine ({bound})",
            "pool_timeout": f"{pool_timeout:g} s: surfaces exhaustion before a typical 30 s "
                            "load-balancer timeout turns it into a 504" + proxy_wait_note(s),
            "pool_recycle": recycle_why,
            "pool_pre_ping": "checks each checkout (BEGIN/ROLLBACK round trips) so connections "
                             "cut while idle or by a failover are replaced, not raised",
            "pool_use_lifo": ("LIFO: surplus connections stay idle so the proxy can reclaim "
                              "them") if lifo else "FIFO: SQLAlchemy's default",
            "connect_args": "; ".join(args_why),
        }
        engines.append(EngineSettings(
            endpoint=spec.role, poolclass="NullPool" if null else "AsyncAdaptedQueuePool",
            pool_size=pool, max_overflow=overflow, pool_timeout=pool_timeout,
            pool_recycle=recycle, pool_pre_ping=not null, pool_use_lifo=lifo,
            connect_args=dict(args), reasons=reasons))
    rules = rule_comparisons(s, endpoints[0])
    rec = Recommendation(scenario=s, endpoints=tuple(endpoints), engines=tuple(engines),
                         warnings=(), sources=(), load=load, rules=rules,
                         binding="; ".join(bindings))
    return replace(rec, warnings=checks.run_checks(rec), sources=sources_for(s, rec))


def rule_comparisons(s: Scenario, primary: EndpointBudget) -> tuple[RuleComparison, ...]:
    """The rules people copy, evaluated for this scenario's primary, per engine."""
    clients = primary.clients
    usable = primary.usable
    out: list[RuleComparison] = []

    def add(name: str, formula: str, per: int, total: int, src: str) -> None:
        out.append(RuleComparison(name, formula, per, total, total <= usable, src))

    add("poolwise", "budget and load, per endpoint", primary.pool_size + primary.max_overflow,
        primary.clients * (primary.pool_size + primary.max_overflow), "this recommendation")
    add("SQLAlchemy defaults", "pool_size 5 + max_overflow 10", 15, 15 * clients,
        "https://docs.sqlalchemy.org/en/20/core/pooling.html")
    if primary.vcpu:
        total = int(primary.vcpu) * 2 + 1
        add("HikariCP", f"database cores x 2 + 1 spindle = {total} for the server",
            total // clients, total,
            "https://github.com/brettwooldridge/HikariCP/wiki/About-Pool-Sizing")
    prisma = s.app_vcpus * 2 + 1
    add("Prisma", f"app CPUs x 2 + 1 = {prisma} per process", prisma, prisma * clients,
        "https://www.prisma.io/docs/orm/prisma-client/setup-and-configuration/databases-connections")
    for pct in (40, 80):
        total = primary.max_connections * pct // 100
        add(f"Supabase {pct}%", f"{pct}% of max_connections = {total}", total // clients, total,
            "https://supabase.com/docs/guides/database/connection-management")
    return tuple(out)


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
    for _, _, url in idle_cutoffs(s):
        add(Source("idle cut-off", url))
    for rule in rec.rules:
        add(Source(rule.name, rule.source))
    return tuple(seen.values())


def scale_out(rec: Recommendation, up_to: int | None = None) -> list[dict[str, Any]]:
    """Worst-case connections per endpoint as the fleet grows, with the recommended
    per-engine settings held fixed: where does it break?

    One row per (instances, endpoint): worst_case (server connections the endpoint
    sees), client_connections, usable and max_connections.
    """
    s = rec.scenario
    if s.serverless:
        return []
    top = up_to or max(2 * s.peak_instances, s.peak_instances + 4)
    rows = []
    for n in range(1, top + 1):
        for spec, ep in zip(budget.endpoint_specs(s, n), rec.endpoints, strict=True):
            # endpoint_specs keeps a replica's fixed reader set fixed as the fleet grows.
            clients = spec.clients * (ep.pool_size + ep.max_overflow)
            worst = clients if ep.server_side is None else min(ep.server_side.limit, clients)
            rows.append({"instances": n, "endpoint": ep.role, "worst_case": worst,
                         "client_connections": clients, "usable": ep.usable,
                         "max_connections": ep.max_connections})
    return rows
