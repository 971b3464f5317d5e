"""Dividing a limit: among the services that share it (floors first, then fixed shares,
needs and weights), and per engine (the budget one engine in one process may hold).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from wizard.core.errors import SizingError
from wizard.core.limits import EndpointSpec
from wizard.core.model import Scenario
from wizard.core.proxies import POOLER_ADVICE, ProxyLimits, client_limit_fix


def per_process_budget(s: Scenario, spec: EndpointSpec, proxy: ProxyLimits | None,
                       group_share: Share | None = None) -> tuple[int | None, str]:
    """Connections one engine in one process may hold at most (None: no limit), and why.

    Behind a pooler several services share, `group_share` is this service's part of the
    pooler's binding limit (its server pool in session mode, else its client limit).
    """
    clients = spec.clients
    if spec.usable < 1:
        raise SizingError(
            f"max_connections {spec.max_connections} leaves nothing after "
            f"{spec.reserved} reserved.",
            "lower the reserves or pick a bigger instance class.",
            endpoint=spec.role,
        )
    if proxy is None:
        share = spec.budget // clients
        if share < 1 and spec.allotment is not None:
            raise SizingError(
                f"this service's share of the usable connections "
                f"({spec.budget:,}: {spec.allotment_how}) cannot give each of {clients:,} "
                "client engines even one connection.",
                "fewer processes, a bigger instance class, fewer services on this endpoint, "
                "or a pooling proxy in front: "
                f"{POOLER_ADVICE.get(s.provider, 'PgBouncer in transaction mode')}.",
                endpoint=spec.role,
            )
        if share < 1:
            raise SizingError(
                f"{spec.usable} usable connections cannot give each of "
                f"{clients} client engines even one connection.",
                f"fewer processes (at most {spec.usable} engines), a bigger instance class, "
                "or a pooling proxy in front: "
                f"{POOLER_ADVICE.get(s.provider, 'PgBouncer in transaction mode')}.",
                endpoint=spec.role,
            )
        if spec.allotment is not None:
            return share, f"share {spec.budget:,} ({spec.allotment_how}) / {clients:,}"
        return share, f"({spec.max_connections:,} - {spec.reserved}) / {clients:,}"
    if group_share is not None and (proxy.session_mode or proxy.client_limit is not None):
        share = group_share.value // clients
        side = "server pool" if proxy.session_mode else "client limit"
        if share < 1:
            raise SizingError(
                f"this service's share of the proxy's {side} "
                f"({group_share.value:,}: {group_share.how}) cannot give each of "
                f"{clients:,} client engines one connection.",
                (client_limit_fix(s, clients) if not proxy.session_mode else
                 "use transaction mode, fewer processes or a bigger server pool") + ".",
                endpoint=spec.role)
        return share, f"share {group_share.value:,} of the {side} ({group_share.how}) / {clients:,}"
    if proxy.session_mode:
        share = proxy.server_pool // clients
        if share < 1:
            raise SizingError(
                f"a session-mode pooler with {proxy.server_pool} server "
                f"connections cannot give each of {clients} client engines one.",
                "use transaction mode, fewer processes or a bigger server pool.",
                endpoint=spec.role,
            )
        return share, f"server pool {proxy.server_pool} / {clients:,}"
    if proxy.client_limit is None:
        return None, "no client limit"
    share = proxy.client_limit // clients
    if share < 1:
        raise SizingError(
            f"the proxy accepts {proxy.client_limit} clients, fewer than "
            f"{clients} client engines.",
            client_limit_fix(s, clients) + ".",
            endpoint=spec.role,
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
