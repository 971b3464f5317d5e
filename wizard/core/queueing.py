"""Queueing for pools: Little's law (busy connections = arrival rate x hold time) and
Erlang C (the chance a checkout waits), per process and for a pooler's fleets.
"""

from __future__ import annotations

import math

from wizard.core import bounds, measured
from wizard.core.model import LoadSizing, Recommendation, Service

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


def load_sizing(s: Service) -> LoadSizing | None:
    """Pool one process of a service needs for its load, or None without load.

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
    source = "measured" if s.load.measured is not None else "given"
    return LoadSizing(rate, hold, a, need, need_total, curve, WAIT_TARGET, source,
                      s.load.measured)


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
    if ld.measured is not None:  # measured: say so, with when and where (core/measured.py)
        lines = measured.lines(ld) + [
            f"The measured load needs {need(ld.needed_pool)} connections per process for at "
            f"most {WAIT_TARGET:.0%} of checkouts to wait (Erlang C), bursts (its p95, at "
            f"least twice its mean) "
            f"need {need(ld.needed_with_overflow)}."]
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


def _fleet_burst(s: Service, instances: int) -> float:
    """Busy server connections in a burst for the whole fleet (the p95 hold time if known,
    else twice the rate), 0 without load."""
    if s.load is None:
        return 0.0
    rate = s.load.rps * instances if not s.serverless else s.load.rps
    return rate * (s.load.p95_hold_ms / 1000 if s.load.p95_hold_ms
                   else 2 * s.load.hold_ms / 1000)


def fleet_server_need(fleets: list[tuple[Service, int]]) -> int | None:
    """Server connections a pooler needs for the fleets' load, bursts included, each fleet
    given as (service, instances); None when none has a load. Pooled together, the burst
    loads add before Erlang C is applied."""
    if all(s.load is None for s, _ in fleets):
        return None
    burst = sum(_fleet_burst(s, n) for s, n in fleets)
    need = smallest_pool(burst)
    # Above what any server can hold: report the load itself, which exceeds every limit.
    return need if need is not None else math.ceil(burst) + 1


def fleet_offered_load(fleets: list[tuple[Service, int]]) -> float | None:
    """Mean busy server connections the fleets' load keeps (Little's law)."""
    if all(s.load is None for s, _ in fleets):
        return None
    return sum((s.load.rps * n if not s.serverless else s.load.rps) * s.load.hold_ms / 1000
               for s, n in fleets if s.load is not None)
