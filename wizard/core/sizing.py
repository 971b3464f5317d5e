"""Pool sizing beyond the budget: load (Little's law, Erlang C), timeouts, recycle, driver args.

The budget is a ceiling, not a target. `recommend` turns a Scenario into the one
Recommendation every other part of poolwise reads.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, NamedTuple

from wizard.core import bounds, budget, catalog, checks
from wizard.core.model import (
    POOLERS,
    SESSION_POOLERS,
    SEVERITIES,
    TRANSACTION_POOLERS,
    EndpointBudget,
    EngineSettings,
    Finding,
    LoadSizing,
    ProxySide,
    Recommendation,
    RuleComparison,
    Scenario,
    ScenarioError,
    Service,
    ServiceResult,
    ServiceShare,
    SizingError,
    Source,
)
from wizard.core.path import PathFacts, path_facts, proxy_wait_note
from wizard.scenario import links

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


def _fleet_burst(s: Scenario, instances: int) -> float:
    """Busy server connections in a burst for the whole fleet (the p95 hold time if known,
    else twice the rate), 0 without load."""
    if s.load is None:
        return 0.0
    rate = s.load.rps * instances if not s.serverless else s.load.rps
    return rate * (s.load.p95_hold_ms / 1000 if s.load.p95_hold_ms
                   else 2 * s.load.hold_ms / 1000)


def fleet_server_need(fleets: list[tuple[Scenario, int]]) -> int | None:
    """Server connections a pooler needs for the fleets' load, bursts included, each fleet
    given as (scenario, instances); None when none has a load. Pooled together, the burst
    loads add before Erlang C is applied."""
    if all(s.load is None for s, _ in fleets):
        return None
    burst = sum(_fleet_burst(s, n) for s, n in fleets)
    need = smallest_pool(burst)
    # Above what any server can hold: report the load itself, which exceeds every limit.
    return need if need is not None else math.ceil(burst) + 1


def fleet_offered_load(fleets: list[tuple[Scenario, int]]) -> float | None:
    """Mean busy server connections the fleets' load keeps (Little's law)."""
    if all(s.load is None for s, _ in fleets):
        return None
    return sum((s.load.rps * n if not s.serverless else s.load.rps) * s.load.hold_ms / 1000
               for s, n in fleets if s.load is not None)


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


def _reasons(s: Scenario, null: bool, lifo: bool, bound: str, share_how: str,
             share_text: str, total: int, path: PathFacts, fixed: bool = False
             ) -> dict[str, str]:
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
    pool_why = f"{bound}; budget {share_how} = {share_text} per engine"
    overflow_why = f"pool_size + max_overflow = {total} connections at most per engine ({bound})"
    if fixed:
        kept = ("behind a transaction pooler an idle client connection holds no server "
                "connection, so the engine keeps all of them: overflow ones would be closed "
                "on check-in and reopened, a new login each, at every burst")
        pool_why += f"; a fixed pool (max_overflow 0): {kept}"
        overflow_why = (f"0: a fixed pool, pool_size = {total} connections at most per engine "
                        f"({bound}); {kept}")
    return {
        "poolclass": "AsyncAdaptedQueuePool: create_async_engine's default",
        "pool_size": pool_why,
        "max_overflow": overflow_why,
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


def _instances(s: Scenario, spec: budget.EndpointSpec) -> int:
    """App instances behind an endpoint's processes (1 when serverless: the load is the
    whole service's)."""
    return spec.processes // max(1, s.workers) if not s.serverless else 1


def _pooled(s: Scenario, role: str) -> bool:
    """Whether this service reaches this endpoint through a pooler."""
    return s.proxy in POOLERS and not (role != "primary" and budget.rds_proxy_skips_replicas(s))


def _claim(svc: Service, s: Scenario, spec: budget.EndpointSpec, load: LoadSizing | None,
           pooled: bool) -> budget.Claim:
    """What one service asks of a limit it shares: its floor (1 per client engine; 1 per
    concurrent invocation when serverless; cron's fixed share), then its need with a load
    (the burst need firm, the burst margin elastic), else its cap split by weight per
    client engine (client connections at the peak)."""
    clients = spec.clients
    if s.serverless:
        return budget.Claim(svc.name, "need", clients, svc.weight, clients, clients,
                            unit="concurrent invocation")
    if load is not None:
        need, burst = load.needed_pool, load.needed_with_overflow
        fits = need is not None and burst is not None
        per = burst + (burst - need) if fits else bounds.PG_MAX_BACKENDS
        return budget.Claim(svc.name, "need", clients * per, svc.weight, clients,
                            firm=clients * (burst if fits else per))
    tier = "fixed" if svc.kind == "cron" else "weight"
    return budget.Claim(svc.name, tier, clients * _cap(svc, pooled), svc.weight, clients)


def _cap(svc: Service, pooled: bool) -> int:
    """pool_size + max_overflow per engine without a load."""
    return budget.FIXED_SHARE_PER_ENGINE if svc.kind == "cron" else budget.no_load_cap(pooled)


class _Member(NamedTuple):
    """One service on one endpoint while the endpoint's budget is divided."""

    index: int
    svc: Service
    s: Scenario
    spec: budget.EndpointSpec
    load: LoadSizing | None
    pooled: bool
    named: bool  # the scenario names its services: errors say which one

    def size(self, *args: Any, **kw: Any) -> tuple[EndpointBudget, EngineSettings, str]:
        """size_endpoint for this member, its errors named after the service."""
        return _as_service(self.svc, 2 if self.named else 1, size_endpoint, *args, **kw)


def recommend(s: Scenario) -> Recommendation:
    """Size every endpoint and engine for a scenario; raises SizingError when it cannot fit.

    Each endpoint's usable connections are divided among the services that use it
    (`budget.shares`); each service is then sized within its part. One service gets the
    whole budget, so the flags form is simply the case of one service.
    """
    validate(s)
    svcs = s.service_list()
    views = [s.for_service(v) for v in svcs]
    paths = [path_facts(v) for v in views]
    loads = [load_sizing(v) for v in views]
    roles = [spec.role for spec in budget.endpoint_specs(views[0])]
    specs = [{sp.role: sp for sp in budget.endpoint_specs(v)
              if svc.endpoints is None or sp.role in svc.endpoints}
             for svc, v in zip(svcs, views, strict=True)]
    sized: list[dict[str, tuple[EndpointBudget, EngineSettings, str]]] = [{} for _ in svcs]
    totals: list[EndpointBudget] = []
    for role in roles:
        members = [_Member(i, svcs[i], views[i], specs[i][role], loads[i],
                           _pooled(views[i], role), bool(s.services))
                   for i in range(len(svcs)) if role in specs[i]]
        if members:
            totals.append(_size_shared(members, paths, sized))
            if len(svcs) > 1:  # each service's row carries the endpoint's headroom
                for m in members:
                    ep, eng, bound = sized[m.index][role]
                    sized[m.index][role] = (replace(ep, shared_headroom=totals[-1].headroom),
                                            eng, bound)
    results = []
    for i, (svc, view) in enumerate(zip(svcs, views, strict=True)):
        rows = [sized[i][r] for r in roles if r in sized[i]]
        if s.services:  # named services: each engine says who it is
            rows = [(ep, _named_engine(eng, svc.name), bound) for ep, eng, bound in rows]
        results.append(_service_rec(svc, view, loads[i], paths[i], rows))
    return _plan_rec(s, tuple(totals), tuple(results))


def validate(s: Scenario) -> None:
    """Every check `recommend` makes before sizing: the service list, then each service's
    view of the database. With services, a service's error is keyed by its own parameter
    (`s2_max_app_instances`), so a form can show it beside that service's field."""
    budget.validate_services(s)
    svcs = s.service_list()
    for i, svc in enumerate(svcs, start=1):
        try:
            _as_service(svc, 2 if s.services else 1, budget.validate, s.for_service(svc))
        except ScenarioError as exc:
            if not s.services:
                raise
            raise ScenarioError(str(exc), key=_service_key(svc, i, exc.key)) from None


def _service_key(svc: Service, index: int, key: str | None) -> str | None:
    """The flat key of a service's own parameter (the scenario's key for a shared one)."""
    if key is None or (key == "proxy" and svc.proxy is None) or key not in links.SERVICE_KEYS:
        return key
    return links.service_key(index, key)


def _as_service(svc: Service, n: int, fn: Any, *args: Any, **kw: Any) -> Any:
    """Call fn; with several services, name the service in any error it raises."""
    if n == 1:
        return fn(*args, **kw)
    try:
        return fn(*args, **kw)
    except ScenarioError as exc:
        raise ScenarioError(f"service {svc.name!r}: {exc}", key=exc.key) from None
    except SizingError as exc:
        raise SizingError(f"service {svc.name!r}: {exc.message}", exc.fix) from None


Sized = list[dict[str, tuple[EndpointBudget, EngineSettings, str]]]


def _size_shared(members: list[_Member], paths: list[PathFacts], sized: Sized
                 ) -> EndpointBudget:
    """Divide one endpoint among its services, size each, and return the endpoint's total
    (its worst case is the sum over services)."""
    spec = members[0].spec
    direct = [m for m in members if not m.pooled]
    groups: dict[str, list[_Member]] = {}
    for m in members:
        if m.pooled:
            groups.setdefault(budget.pool_key(m.s.proxy), []).append(m)
    needs = {name: _pooler_need(g) for name, g in groups.items()}
    # The endpoint's usable connections go to direct services and to each pooler's server
    # pool. A session pooler's services claim one by one (each client connection pins a
    # server connection, so their tiers hold as for direct services); another pooler claims
    # once: it opens a server connection only for a client that asks, so at most what its
    # clients can use, whatever it is configured to open.
    claims = [_claim(m.svc, m.s, m.spec, m.load, False) for m in direct]
    slots: list[list[int]] = []
    for name, g in groups.items():
        start = len(claims)
        if all(m.s.proxy in SESSION_POOLERS for m in g):
            claims += [_claim(m.svc, m.s, m.spec, m.load, True) for m in g]
        else:
            proxy = budget.proxy_limits(g[0].s, g[0].spec, needs[name], len(g))
            asks = [_claim(m.svc, m.s, m.spec, m.load, True) for m in g]
            demands = [c.demand for c in asks]
            if name in budget.PAIR_POOLERS:
                # A pool per service's pair, and the pairs no service here uses.
                seen = (sum(min(proxy.server_pool, d) for d in demands)
                        + max(0, proxy.pairs - len(g)) * proxy.server_pool)
            else:
                seen = sum(demands)
            engines = sum(c.engines for c in asks)
            # The pooler's floor is one server connection per pool: it queues its clients.
            claims.append(budget.Claim(
                name, "need", min(proxy.total, seen),
                sum(c.weight * c.engines for c in asks) / engines, engines,
                floor=len(g) if name in budget.PAIR_POOLERS else 1))
        slots.append(list(range(start, len(claims))))
    split = None
    if len(claims) > 1:
        split = budget.shares(spec.usable, claims,
                              f"{spec.role}: the {spec.usable:,} usable connections",
                              _floors_fix(direct))
    parts = None if split is None else [*split[:len(direct)], *(
        budget.Share(sum(split[i].value for i in idx), "; ".join(
            f"{claims[i].name}: {split[i].how}" for i in idx) if len(idx) > 1
            else split[idx[0]].how) for idx in slots)]
    # Per service: (the limit its clients share with no one else's, what it may use, how).
    allots: dict[int, tuple[int | None, int | None, str]] = {}

    def allot(sp: budget.EndpointSpec, k: int) -> budget.EndpointSpec:
        return sp if parts is None else replace(sp, allotment=parts[k].value,
                                                allotment_how=parts[k].how)

    for k, m in enumerate(direct):
        sp = allot(m.spec, k)
        sized[m.index][spec.role] = m.size(
            m.s, sp, m.load, paths[m.index], cap=_cap(m.svc, False))
        allots[m.index] = (sp.budget, sp.budget, parts[k].how if parts else "the whole budget")
    for k, (name, g) in enumerate(groups.items(), start=len(direct)):
        sp = allot(g[0].spec, k)
        own_pools = name in budget.PAIR_POOLERS and name in SESSION_POOLERS
        # Supavisor's two ports share one pool: each mode's services split the limit that
        # binds them (session: the server pool; transaction: the client limit).
        inner: dict[int, budget.Share] = {}
        limits: dict[int, int | None] = {}
        for mode in {m.s.proxy for m in g}:
            sub = [m for m in g if m.s.proxy == mode]
            proxy = budget.proxy_limits(sub[0].s, sp, needs[name], len(g))
            limit = client_limit(proxy, spec.usable)[0] if proxy else None
            limits.update((m.index, limit) for m in sub)
            if len(sub) > 1 and limit is not None and not own_pools:
                side = client_limit(proxy, spec.usable)[1]
                inner.update(zip((m.index for m in sub), budget.shares(
                    limit, [_claim(m.svc, m.s, m.spec, m.load, True) for m in sub],
                    f"{spec.role}: {side} ({limit:,}, {name})",
                    ("use transaction mode, fewer processes or a bigger server pool"
                     if proxy.session_mode else budget.client_limit_fix(
                         sub[0].s, sum(m.spec.clients for m in sub))) + "."),
                    strict=True))
        for m in g:
            mine = inner.get(m.index)
            sized[m.index][spec.role] = m.size(
                m.s, allot(m.spec, k), m.load, paths[m.index], cap=_cap(m.svc, True),
                fleet_need=needs[name], group=[(x.s, _instances(x.s, x.spec)) for x in g],
                group_share=mine)
            limit = limits[m.index]
            allots[m.index] = (limit, mine.value if mine else limit,
                               mine.how if mine else "the whole budget")
        if len(g) > 1 and name not in budget.PAIR_POOLERS:
            _share_server_pool(g, sized, spec.role)
    if len(members) > 1:
        _others_limits(members, allots, sized, spec.role)
    return _endpoint_total(members, allots, sized, spec.role)


def _floors_fix(direct: list[_Member]) -> str:
    """What to change when the services' floors do not fit in an endpoint's usable."""
    big = max(direct, key=lambda m: m.spec.clients, default=None)
    if big is None:
        return "a bigger instance class or fewer services on this endpoint."
    advice = budget._POOLER_ADVICE.get(big.s.provider, "PgBouncer in transaction mode")
    return (f"fewer processes (service {big.svc.name!r} has {big.spec.clients:,} client "
            "engines), a bigger instance class, fewer services on this endpoint, or a pooling "
            f"proxy in front: {advice}.")


def _pooler_need(group: list[_Member]) -> int | None:
    """Server connections a pooler should open for its services: in session mode every
    client connection pins one, so what the clients can use; otherwise the fleets' load
    (Erlang C over the pooled bursts)."""
    if len(group) > 1 and group[0].s.proxy in budget.PAIR_POOLERS:
        # One pool per service's pair, all of one size: the largest need sets it.
        return max((n for m in group if (n := _pooler_need([m])) is not None), default=None)
    session = [m for m in group if m.s.proxy in SESSION_POOLERS]
    other = [m for m in group if m.s.proxy not in SESSION_POOLERS]
    # Supavisor's session and transaction ports share one pool: their needs add up.
    pinned = sum(_claim(m.svc, m.s, m.spec, m.load, True).demand for m in session)
    loaded = fleet_server_need([(m.s, _instances(m.s, m.spec)) for m in other]) if other \
        else None
    if not other:
        return pinned
    return loaded if not session else pinned + (loaded or 0)


def _share_server_pool(group: list[_Member], sized: Sized, role: str) -> None:
    """Services behind one pooler: the database sees min(server pool, all their clients),
    divided among them by their client connections (largest remainder, so it sums)."""
    eps = [sized[m.index][role][0] for m in group]
    clients = [e.client_side.worst_case for e in eps]
    total = min(eps[0].server_side.limit, sum(clients))
    part = budget.largest_remainder(total, clients)
    # The server side is the pooler's, the same for every service behind it: what all their
    # clients make it open (so a finding about it reads the same from each service).
    words = " + ".join(f"{m.svc.name} {c:,}" for m, c in zip(group, clients, strict=True))
    for m, ep, w in zip(group, eps, part, strict=True):
        row = sized[m.index][role]
        side = replace(ep.server_side, worst_case=total, detail=(
            f"min(server pool {_fmt(ep.server_side.limit)}, client connections {words} = "
            f"{_fmt(sum(clients))})"))
        sized[m.index][role] = (replace(ep, worst_case=w, server_side=side), *row[1:])


def _others_limits(members: list[_Member],
                   allots: dict[int, tuple[int | None, int | None, str]],
                   sized: Sized, role: str) -> None:
    """Each service's break point with every other service at its peak: the limit its
    clients must stay under is what the others leave of it."""
    worst = {m.index: sized[m.index][role][0].worst_case for m in members}
    seen = sum(worst.values())
    for m in members:
        ep, eng, bound = sized[m.index][role]
        if not m.pooled:
            limit: int | None = ep.usable - (seen - worst[m.index])
            name = "usable connections the other services leave"
        else:
            base = allots[m.index][0]
            own_pool = m.s.proxy in budget.PAIR_POOLERS and m.s.proxy in SESSION_POOLERS
            others = 0 if own_pool else sum(
                sized[x.index][role][0].client_side.worst_case for x in members
                if x.pooled and x.s.proxy == m.s.proxy and x.index != m.index)
            limit = None if base is None else max(0, base - others)
            name = ep.break_limit_name + " the other services leave"
        breaks = budget.break_point(ep.pool_size + ep.max_overflow, limit,
                                    lambda n, s=m.s: budget.processes_at(s, role, n),
                                    ep.engines_per_process,
                                    m.s.fleet_size)
        sized[m.index][role] = (replace(ep, breaks_at=breaks, break_limit=limit,
                                        break_limit_name=name), eng, bound)


def _endpoint_total(members: list[_Member],
                    allots: dict[int, tuple[int | None, int | None, str]],
                    sized: Sized, role: str) -> EndpointBudget:
    """The endpoint as the database sees it: every service's part and their sum."""
    eps = [(m, sized[m.index][role][0]) for m in members]
    by = tuple(ServiceShare(
        m.svc.name, ep.processes, ep.clients, ep.pool_size, ep.max_overflow, ep.worst_case,
        allots[m.index][1], allots[m.index][2], ep.breaks_at, ep.break_limit)
        for m, ep in eps)
    if len(eps) == 1:
        return replace(eps[0][1], by_service=by)
    first = eps[0][1]
    worst = sum(ep.worst_case for _, ep in eps)
    parts = " + ".join(f"{b.service} {b.worst_case:,}" for b in by)
    reserves = " - ".join(f"{r.count} {r.name}" for r in first.reserves)
    explanation = (f"{first.max_connections:,} max_connections"
                   + (f" - {reserves}" if reserves else "")
                   + f" = {first.usable:,} usable, shared by {len(by)} services; at their "
                   f"peaks the endpoint sees {parts} = {worst:,}")
    return EndpointBudget(
        role=role, instance_class=first.instance_class, max_connections=first.max_connections,
        max_connections_source=first.max_connections_source,
        max_connections_estimated=first.max_connections_estimated, reserves=first.reserves,
        reserved=first.reserved, usable=first.usable,
        processes=sum(ep.processes for _, ep in eps), engines_per_process=1,
        clients=sum(ep.clients for _, ep in eps), per_process_budget=None, pool_size=0,
        max_overflow=0, worst_case=worst, explanation=explanation, vcpu=first.vcpu,
        break_limit=first.usable, by_service=by)


def _named_engine(eng: EngineSettings, name: str) -> EngineSettings:
    """The engine with application_name set to its service's name."""
    args = {**eng.connect_args, "server_settings": {"application_name": name}}
    why = (f"{eng.reasons.get('connect_args', '')}; server_settings application_name={name}: "
           "pg_stat_activity and the live check tell the services apart")
    return replace(eng, connect_args=args, reasons={**eng.reasons, "connect_args": why})


def _service_rec(svc: Service, s: Scenario, load: LoadSizing | None, path: PathFacts,
                 rows: list[tuple[EndpointBudget, EngineSettings, str]]) -> ServiceResult:
    """One service's own Recommendation over the endpoints it uses."""
    endpoints = tuple(ep for ep, _, _ in rows)
    breaks = [e.breaks_at for e in endpoints if e.breaks_at is not None]
    rec = Recommendation(scenario=s, endpoints=endpoints,
                         engines=tuple(eng for _, eng, _ in rows), warnings=(), sources=(),
                         load=load, rules=rule_comparisons(s, endpoints[0]),
                         binding="; ".join(f"{ep.role}: {bound}" for ep, _, bound in rows),
                         breaks_at=min(breaks, default=None), cutoffs=path.cutoffs)
    rec = replace(rec, warnings=checks.run_checks(rec), sources=sources_for(s, rec))
    return ServiceResult(svc.name, svc.kind, tuple(e.role for e in endpoints), rec)


def _plan_rec(s: Scenario, totals: tuple[EndpointBudget, ...],
              results: tuple[ServiceResult, ...]) -> Recommendation:
    """The whole estate: endpoint totals, every service's result, findings named by service."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        for f in r.rec.warnings:
            # Today's pools are judged together (checks.plan_findings, every service's
            # declared settings), not one service against the others' recommended pools.
            if f.code not in checks.PLAN_JUDGED:
                seen.setdefault((f.code, f.message, f.fix), []).append(r.name)
    found = [Finding(code, sev.severity, msg if len(names) == len(results)
                     else f"{', '.join(names)}: {msg}", fix)
             for (code, msg, fix), names in seen.items()
             for sev in [next(f for r in results for f in r.rec.warnings
                              if (f.code, f.message, f.fix) == (code, msg, fix))]]
    sources: dict[str, Source] = {}
    for r in results:
        for src in r.rec.sources:
            sources.setdefault(src.url, src)
    rec = Recommendation(scenario=s, endpoints=totals, engines=(), warnings=(),
                         sources=tuple(sources.values()), load=None, rules=(),
                         binding="; ".join(f"{r.name}: {r.rec.binding}" for r in results),
                         breaks_at=None, cutoffs=(), services=results)
    if len(results) == 1:  # one service: its own checks judge its pools, nothing to merge
        return replace(rec, warnings=results[0].rec.warnings)
    found += checks.plan_findings(rec)
    return replace(rec, warnings=tuple(sorted(found, key=lambda f: SEVERITIES.index(f.severity))))


def size_endpoint(s: Scenario, spec: budget.EndpointSpec, load: LoadSizing | None,
                  path: PathFacts, cap: int | None = None, fleet_need: int | None = None,
                  group: list[tuple[Scenario, int]] | None = None,
                  group_share: budget.Share | None = None
                  ) -> tuple[EndpointBudget, EngineSettings, str]:
    """One service's budget and engine settings on one endpoint, and the bound that decided
    them. Behind a pooler several services share, `group` lists their fleets (for the
    pooler's need) and `group_share` is this service's part of the pooler's limit."""
    instances = _instances(s, spec)
    fleets = group or [(s, instances)]
    if fleet_need is None:
        fleet_need = fleet_server_need(fleets)
    proxy = budget.proxy_limits(s, spec, fleet_need, len(group) if group else 1)
    path_s = s
    if proxy is None and s.proxy in POOLERS:
        # RDS Proxy serves only the writer: this replica is reached directly, so its idle
        # cut-offs, waits and pre-ping are the direct path's, never the proxy's.
        path_s = replace(s, proxy="none")
        path = path_facts(path_s)
    share, share_how = budget.per_process_budget(s, spec, proxy, group_share)
    if cap is None:
        cap = budget.no_load_cap(proxy is not None)
    # Behind a transaction pooler an idle client connection holds no server connection:
    # with a load or without, the engine keeps its whole total as a fixed pool (see _split).
    fixed = proxy is not None and s.proxy in TRANSACTION_POOLERS and not s.serverless
    if s.serverless:
        pool, overflow, bound = 1, 0, "serverless: one connection per invocation"
    else:
        pool, overflow, bound = _split(share, s.pool_split, load, cap, fixed)
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
    breaks = budget.break_point(per, limit, lambda n: budget.processes_at(s, spec.role, n),
                                spec.engines_per_process,
                                s.fleet_size)
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
        break_limit=limit, break_limit_name=limit_name, allotment=spec.allotment)
    null = s.serverless
    # LIFO only where a pooler sits in front of this endpoint (RDS Proxy skips RDS replicas).
    lifo = proxy is not None and not null
    engine = EngineSettings(
        endpoint=spec.role, poolclass="NullPool" if null else "AsyncAdaptedQueuePool",
        pool_size=pool, max_overflow=overflow, pool_timeout=path.pool_timeout,
        pool_recycle=path.recycle, pool_pre_ping=path.pre_ping and not null, pool_use_lifo=lifo,
        connect_args=dict(path.connect_args),
        reasons=_reasons(path_s, null, lifo, bound, share_how, share_text, per, path, fixed))
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


def break_sentence(rec: Recommendation) -> str:
    """Which service's growth breaks each endpoint first, with the others at their peaks
    (only endpoints that services share: a service alone on an endpoint has its break point
    stated by its plan's `break_lines`)."""
    kinds = {v.name: v for v in rec.services}
    lines = []
    for ep in rec.endpoints:
        rows = [b for b in ep.by_service if b.breaks_at is not None]
        if not rows or len(ep.by_service) < 2:
            continue

        def now(b: ServiceShare) -> int:
            sv = kinds[b.service].rec.scenario
            return sv.fleet_size

        rows.sort(key=lambda b: b.breaks_at / max(1, now(b)))
        first, rest = rows[0], rows[1:]
        unit = lambda b: ("invocations" if kinds[b.service].rec.scenario.serverless  # noqa: E731
                          else "instances")
        text = (f"{ep.role}: {first.service} breaks it first, at {first.breaks_at:,} "
                f"{unit(first)} (today {now(first):,})")
        if rest:
            text += " while " + ", ".join(
                f"{b.service} would at {b.breaks_at:,} (today {now(b):,})" for b in rest)
        lines.append(text + ", each with the other services at their peaks.")
    return " ".join(lines)


def break_lines(rec: Recommendation) -> list[str]:
    """Where each endpoint breaks as the fleet grows, in words; the CLI and the report print
    these lines as they are."""
    s = rec.scenario
    unit = "invocations" if s.serverless else "instances at the autoscaling maximum"
    return [f"{e.role}: breaks from about {e.breaks_at:,} {unit} with these settings (above "
            f"{e.break_limit:,} {e.break_limit_name})"
            for e in rec.endpoints if e.breaks_at is not None and e.break_limit is not None]


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


def scale_out_services_range(rec: Recommendation) -> int:
    """Default x-axis end of `scale_out_services`: twice every service's fleet today, and
    past the first break point (the others may lie further out)."""
    end, first = 4, None
    for svc in rec.services:
        s = svc.rec.scenario
        now = s.fleet_size
        end = max(end, 2 * now, now + 4)
    for ep in rec.endpoints:
        for b in ep.by_service:
            if b.breaks_at is not None:
                first = b.breaks_at if first is None else min(first, b.breaks_at)
    if first is not None:
        end = max(end, first + max(2, first // 5))
    return end


def scale_out_services(rec: Recommendation, up_to: int | None = None) -> list[dict[str, Any]]:
    """Several services: each service's own growth, the others held at their peaks.

    One row per (service, endpoint, n): x `instances` is that service's fleet (its
    autoscaling maximum, or its concurrency when serverless; the deploy surge added as
    everywhere else); `connections` are its clients' connections there with its settings
    held fixed; `limit` is what the other services at their peaks leave it
    (ServiceShare.break_limit), so the line crosses the limit at the core's `breaks_at`.
    Services that do not grow on an endpoint (a fixed reader set) or have no limit there
    are left out. About SCALE_OUT_POINTS points in all (at least 20 per series, so at most
    20 x 32 services x 16 endpoints).
    """
    top = min(up_to or scale_out_services_range(rec), 10 * bounds.RANGES["app_instances"].high)
    series = []
    for ep in rec.endpoints:
        for b in ep.by_service:
            svc = rec.service(b.service)
            s = svc.rec.scenario
            if b.break_limit is None:
                continue
            own = svc.rec.endpoint(ep.role)
            now = s.fleet_size
            if budget.processes_at(s, ep.role, now + 1) == budget.processes_at(s, ep.role, now):
                continue
            series.append((ep, b, s, own, now))
    if not series:
        return []
    points = max(20, SCALE_OUT_POINTS // len(series))
    rows = []
    for ep, b, s, own, now in series:
        if top <= points:
            xs = set(range(1, top + 1))
        else:
            step = (top - 1) / (points - 1)
            xs = {1 + round(i * step) for i in range(points)}
        for mark in (now, b.breaks_at):
            if mark:
                xs |= {x for x in (mark - 1, mark) if 1 <= x <= top}
        per = own.pool_size + own.max_overflow
        unit = "invocations" if s.serverless else "instances"
        for n in sorted(xs):
            rows.append({"instances": n, "service": b.service, "endpoint": ep.role,
                         "series": f"{b.service} · {ep.role}", "unit": unit,
                         "connections": budget.processes_at(s, ep.role, n)
                         * own.engines_per_process * per,
                         "limit": b.break_limit, "today": now, "breaks_at": b.breaks_at})
    return rows
