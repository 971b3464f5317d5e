"""The one orchestration: `recommend` turns a Scenario into the Recommendation every other
part of poolwise reads (endpoint totals and one plan per service).

Each endpoint's usable connections are divided among the services that use it
(shares.shares); each service is then sized within its part (sizing.size_endpoint).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from wizard.core import (
    bounds,
    findings,
    limits,
    projection,
    proxies,
    shares,
)
from wizard.core.errors import ScenarioError, SizingError
from wizard.core.model import (
    FLEET_KEYS,
    POOLERS,
    SESSION_POOLERS,
    LoadSizing,
    Recommendation,
    Scenario,
    Service,
    ServiceResult,
    service_key,
)
from wizard.core.path import PathFacts, path_facts
from wizard.core.queueing import fleet_server_need, load_sizing
from wizard.core.results import (
    EndpointBudget,
    EngineSettings,
    ServiceShare,
    Source,
    Step,
    reason_text,
)
from wizard.core.sizing import (
    client_limit,
    instances_behind,
    rule_comparisons,
    size_endpoint,
    sources_for,
)


def _pooled(s: Scenario, role: str) -> bool:
    """Whether this service reaches this endpoint through a pooler."""
    return s.proxy in POOLERS and not (role != "primary" and proxies.rds_proxy_skips_replicas(s))


def _claim(svc: Service, spec: limits.EndpointSpec, load: LoadSizing | None,
           pooled: bool) -> shares.Claim:
    """What one service asks of a limit it shares: its floor (1 per client engine; 1 per
    concurrent invocation when serverless; cron's fixed share), then its need with a load
    (the burst need firm, the burst margin elastic), else its cap split by weight per
    client engine (client connections at the peak)."""
    clients = spec.clients
    if svc.serverless:
        return shares.Claim(svc.name, "need", clients, svc.weight, clients, clients,
                            unit="concurrent invocation")
    if load is not None:
        need, burst = load.needed_pool, load.needed_with_overflow
        fits = need is not None and burst is not None
        per = burst + (burst - need) if fits else bounds.PG_MAX_BACKENDS
        return shares.Claim(svc.name, "need", clients * per, svc.weight, clients,
                            firm=clients * (burst if fits else per))
    tier = "fixed" if svc.kind == "cron" else "weight"
    return shares.Claim(svc.name, tier, clients * _cap(svc, pooled), svc.weight, clients)


def _cap(svc: Service, pooled: bool) -> int:
    """pool_size + max_overflow per engine without a load."""
    return shares.FIXED_SHARE_PER_ENGINE if svc.kind == "cron" else proxies.no_load_cap(pooled)


class _Member(NamedTuple):
    """One service on one endpoint while the endpoint's budget is divided."""

    index: int
    svc: Service
    s: Scenario
    spec: limits.EndpointSpec
    load: LoadSizing | None
    pooled: bool
    named: bool  # the scenario names its services: errors say which one

    def size(self, *args: Any, **kw: Any) -> tuple[EndpointBudget, EngineSettings, str]:
        """size_endpoint for this member, its errors named after the service."""
        return _as_service(self.svc, 2 if self.named else 1, size_endpoint, *args, **kw)


def recommend(s: Scenario) -> Recommendation:
    """Size every endpoint and engine for a scenario; raises SizingError when it cannot fit.

    Each endpoint's usable connections are divided among the services that use it
    (`shares.shares`); each service is then sized within its part. One service gets the
    whole budget, so the flags form is simply the case of one service.
    """
    validate(s)
    svcs = s.services
    ways = [s.through(v) for v in svcs]  # the database on each service's path
    paths = [path_facts(w, v.serverless) for w, v in zip(ways, svcs, strict=True)]
    loads = [load_sizing(v) for v in svcs]
    roles = [spec.role for spec in limits.endpoint_specs(s, svcs[0])]
    specs = [{sp.role: sp for sp in limits.endpoint_specs(s, svc)
              if svc.endpoints is None or sp.role in svc.endpoints} for svc in svcs]
    sized: list[dict[str, tuple[EndpointBudget, EngineSettings, str]]] = [{} for _ in svcs]
    totals: list[EndpointBudget] = []
    for role in roles:
        members = [_Member(i, svcs[i], ways[i], specs[i][role], loads[i],
                           _pooled(ways[i], role), s.named)
                   for i in range(len(svcs)) if role in specs[i]]
        if members:
            try:
                totals.append(_size_shared(members, paths, sized))
            except SizingError as exc:  # the endpoint it is about, as a field
                raise exc.at(endpoint=role) from None
            if len(svcs) > 1:  # each service's row carries the endpoint's headroom
                for m in members:
                    ep, eng, bound = sized[m.index][role]
                    sized[m.index][role] = (replace(ep, shared_headroom=totals[-1].headroom),
                                            eng, bound)
    results = []
    for i, svc in enumerate(svcs):
        rows = [sized[i][r] for r in roles if r in sized[i]]
        if s.named:  # named services: each engine says who it is
            rows = [(ep, _named_engine(eng, svc.name), bound) for ep, eng, bound in rows]
        results.append(_service_rec(svc, s, loads[i], paths[i], rows))
    return _plan_rec(s, tuple(totals), tuple(results))


def validate(s: Scenario) -> None:
    """Every check `recommend` makes before sizing: the service list, then each service's
    view of the database. With services, a service's error is keyed by its own parameter
    (`s2_max_app_instances`), so a form can show it beside that service's field."""
    limits.validate_services(s)
    for i, svc in enumerate(s.services, start=1):
        try:
            _as_service(svc, 2 if s.named else 1, limits.validate, s.through(svc), svc)
        except ScenarioError as exc:
            if not s.named:
                raise
            raise exc.at(key=_service_key(svc, i, exc.key)) from None


def _service_key(svc: Service, index: int, key: str | None) -> str | None:
    """The flat key of a service's own parameter (the scenario's key for a shared one)."""
    if key is None or (key == "proxy" and svc.proxy is None) or key not in (*FLEET_KEYS,
                                                                            "proxy"):
        return key
    return service_key(index, key)


def _as_service(svc: Service, n: int, fn: Any, *args: Any, **kw: Any) -> Any:
    """Call fn; with several services, any error it raises carries the service's name."""
    if n == 1:
        return fn(*args, **kw)
    try:
        return fn(*args, **kw)
    except (ScenarioError, SizingError) as exc:
        raise exc.at(svc.name) from None


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
            groups.setdefault(proxies.pool_key(m.s.proxy), []).append(m)
    needs = {name: _pooler_need(g) for name, g in groups.items()}
    # The endpoint's usable connections go to direct services and to each pooler's server
    # pool. A session pooler's services claim one by one (each client connection pins a
    # server connection, so their tiers hold as for direct services); another pooler claims
    # once: it opens a server connection only for a client that asks, so at most what its
    # clients can use, whatever it is configured to open.
    claims = [_claim(m.svc, m.spec, m.load, False) for m in direct]
    slots: list[list[int]] = []
    for name, g in groups.items():
        start = len(claims)
        if all(m.s.proxy in SESSION_POOLERS for m in g):
            asks = [_claim(m.svc, m.spec, m.load, True) for m in g]
            if name in proxies.PAIR_POOLERS:
                # One default_pool_size for every pair, and in session mode each engine pins
                # a server connection: every pair's pool must hold the largest service's
                # engines, so each pair's floor is that many.
                most = max(c.engines for c in asks)
                asks = [replace(c, floor=most, demand=max(c.demand, most)) for c in asks]
            claims += asks
        else:
            proxy = proxies.proxy_limits(g[0].s, g[0].spec, needs[name], len(g))
            asks = [_claim(m.svc, m.spec, m.load, True) for m in g]
            demands = [c.demand for c in asks]
            if name in proxies.PAIR_POOLERS:
                # A pool per service's pair, and the pairs no service here uses.
                seen = (sum(min(proxy.server_pool, d) for d in demands)
                        + max(0, proxy.pairs - len(g)) * proxy.server_pool)
            else:
                seen = sum(demands)
            engines = sum(c.engines for c in asks)
            # The pooler's floor is one server connection per pool: it queues its clients.
            claims.append(shares.Claim(
                name, "need", min(proxy.total, seen),
                sum(c.weight * c.engines for c in asks) / engines, engines,
                floor=len(g) if name in proxies.PAIR_POOLERS else 1))
        slots.append(list(range(start, len(claims))))
    split = None
    if len(claims) > 1:
        split = shares.shares(spec.usable, claims,
                              f"the {spec.usable:,} usable connections",
                              _floors_fix(direct))
    parts = None if split is None else [*split[:len(direct)], *(
        shares.Share(sum(split[i].value for i in idx), "; ".join(
            f"{claims[i].name}: {split[i].how}" for i in idx) if len(idx) > 1
            else split[idx[0]].how) for idx in slots)]
    # Per service: (the limit its clients share with no one else's, what it may use, how).
    allots: dict[int, tuple[int | None, int | None, str]] = {}

    def allot(sp: limits.EndpointSpec, k: int) -> limits.EndpointSpec:
        return sp if parts is None else replace(sp, allotment=parts[k].value,
                                                allotment_how=parts[k].how)

    for k, m in enumerate(direct):
        sp = allot(m.spec, k)
        sized[m.index][spec.role] = m.size(
            m.s, m.svc, sp, m.load, paths[m.index], cap=_cap(m.svc, False))
        allots[m.index] = (sp.budget, sp.budget, parts[k].how if parts else "the whole budget")
    for k, (name, g) in enumerate(groups.items(), start=len(direct)):
        sp = allot(g[0].spec, k)
        own_pools = name in proxies.PAIR_POOLERS and name in SESSION_POOLERS
        # Supavisor's two ports share one pool: each mode's services split the limit that
        # binds them (session: the server pool; transaction: the client limit).
        inner: dict[int, shares.Share] = {}
        client_limits: dict[int, int | None] = {}
        # Every pair gets the same default_pool_size, but a service may use only its own
        # part of the endpoint (else a service joining with a load would raise the pools of
        # the services already there), and no more than its pair's pool.
        own = {} if not own_pools or split is None else dict(
            zip((m.index for m in g), (split[i] for i in slots[k - len(direct)]), strict=True))
        for mode in {m.s.proxy for m in g}:
            sub = [m for m in g if m.s.proxy == mode]
            proxy = proxies.proxy_limits(sub[0].s, sp, needs[name], len(g))
            limit = client_limit(proxy, spec.usable)[0] if proxy else None
            client_limits.update((m.index, limit) for m in sub)
            for m in sub:
                if m.index in own:
                    part = own[m.index]
                    inner[m.index] = part if limit is None or part.value <= limit else \
                        shares.Share(limit, f"{part.how}, capped at its pair's pool {limit:,}")
            if len(sub) > 1 and limit is not None and not own_pools:
                side = client_limit(proxy, spec.usable)[1]
                inner.update(zip((m.index for m in sub), shares.shares(
                    limit, [_claim(m.svc, m.spec, m.load, True) for m in sub],
                    f"{side} ({limit:,}, {name})",
                    ("use transaction mode, fewer processes or a bigger server pool"
                     if proxy.session_mode else proxies.client_limit_fix(
                         sub[0].s, sum(m.spec.clients for m in sub))) + "."),
                    strict=True))
        for m in g:
            mine = inner.get(m.index)
            sized[m.index][spec.role] = m.size(
                m.s, m.svc, allot(m.spec, k), m.load, paths[m.index], cap=_cap(m.svc, True),
                fleet_need=needs[name],
                group=[(x.svc, instances_behind(x.svc, x.spec)) for x in g],
                group_share=mine)
            limit = client_limits[m.index]
            allots[m.index] = (limit, mine.value if mine else limit,
                               mine.how if mine else "the whole budget")
        if len(g) > 1 and name not in proxies.PAIR_POOLERS:
            _share_server_pool(g, sized, spec.role)
    if len(members) > 1:
        _others_limits(members, allots, sized, spec.role)
    return _endpoint_total(members, allots, sized, spec.role)


def _floors_fix(direct: list[_Member]) -> str:
    """What to change when the services' floors do not fit in an endpoint's usable."""
    big = max(direct, key=lambda m: m.spec.clients, default=None)
    if big is None:
        return "a bigger instance class or fewer services on this endpoint."
    advice = proxies.POOLER_ADVICE.get(big.s.provider, "PgBouncer in transaction mode")
    return (f"fewer processes (service {big.svc.name!r} has {big.spec.clients:,} client "
            "engines), a bigger instance class, fewer services on this endpoint, or a pooling "
            f"proxy in front: {advice}.")


def _pooler_need(group: list[_Member]) -> int | None:
    """Server connections a pooler should open for its services: in session mode every
    client connection pins one, so what the clients can use; otherwise the fleets' load
    (Erlang C over the pooled bursts)."""
    if len(group) > 1 and group[0].s.proxy in proxies.PAIR_POOLERS:
        # One pool per service's pair, all of one size: the largest need sets it.
        return max((n for m in group if (n := _pooler_need([m])) is not None), default=None)
    session = [m for m in group if m.s.proxy in SESSION_POOLERS]
    other = [m for m in group if m.s.proxy not in SESSION_POOLERS]
    # Supavisor's session and transaction ports share one pool: their needs add up.
    pinned = sum(_claim(m.svc, m.spec, m.load, True).demand for m in session)
    loaded = fleet_server_need([(m.svc, instances_behind(m.svc, m.spec)) for m in other]) if other \
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
    part = shares.largest_remainder(total, clients)
    # The server side is the pooler's, the same for every service behind it: what all their
    # clients make it open (so a finding about it reads the same from each service).
    words = " + ".join(f"{m.svc.name} {c:,}" for m, c in zip(group, clients, strict=True))
    for m, ep, w in zip(group, eps, part, strict=True):
        row = sized[m.index][role]
        side = replace(ep.server_side, worst_case=total, detail=(
            f"min(server pool {ep.server_side.limit:,}, client connections {words} = "
            f"{sum(clients):,})"))
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
            own_pool = m.s.proxy in proxies.PAIR_POOLERS and m.s.proxy in SESSION_POOLERS
            others = 0 if own_pool else sum(
                sized[x.index][role][0].client_side.worst_case for x in members
                if x.pooled and x.s.proxy == m.s.proxy and x.index != m.index)
            limit = None if base is None else max(0, base - others)
            name = ep.break_limit_name + " the other services leave"
        breaks = projection.break_point(ep.pool_size + ep.max_overflow, limit,
                                    lambda n, m=m: limits.processes_at(m.s, m.svc, role, n),
                                    ep.engines_per_process,
                                    m.svc.fleet_size)
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
    steps = (*eng.steps["connect_args"],
             Step(f"server_settings application_name={name}",
                  why="pg_stat_activity and the live check tell the services apart"))
    return replace(eng, connect_args=args,
                   reasons={**eng.reasons, "connect_args": reason_text(steps)},
                   steps={**eng.steps, "connect_args": steps})


def _service_rec(svc: Service, s: Scenario, load: LoadSizing | None, path: PathFacts,
                 rows: list[tuple[EndpointBudget, EngineSettings, str]]) -> ServiceResult:
    """One service's own Recommendation over the endpoints it uses (its `scenario` is the
    database as the service sees it, for the edges; the core reads `svc`)."""
    endpoints = tuple(ep for ep, _, _ in rows)
    breaks = [e.breaks_at for e in endpoints if e.breaks_at is not None]
    rec = Recommendation(scenario=replace(s.through(svc), services=(svc,)), endpoints=endpoints,
                         engines=tuple(eng for _, eng, _ in rows), warnings=(), sources=(),
                         load=load, rules=rule_comparisons(svc, endpoints[0]),
                         binding="; ".join(f"{ep.role}: {bound}" for ep, _, bound in rows),
                         breaks_at=min(breaks, default=None), cutoffs=path.cutoffs)
    rec = replace(rec, warnings=findings.run_checks(rec, svc), sources=sources_for(s, rec))
    return ServiceResult(svc.name, svc.kind, tuple(e.role for e in endpoints), rec, svc)


def _plan_rec(s: Scenario, totals: tuple[EndpointBudget, ...],
              results: tuple[ServiceResult, ...]) -> Recommendation:
    """The whole estate: endpoint totals, every service's result, findings named by service."""
    found = findings.merge(results)
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
    return replace(rec, warnings=findings.ordered(found + findings.plan_findings(rec)))
