"""What happens as a fleet grows, the recommended settings held fixed: break points (the
fleet size from which the clients exceed the limit that binds them) and the scale-out
series the charts draw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wizard.core import bounds, limits
from wizard.core.model import Recommendation, Service
from wizard.core.results import ServiceShare


def break_point(per_client: int, limit: int | None, processes_at: Callable[[int], int],
                engines: int, now: int) -> int | None:
    """Smallest fleet size (the scaling unit: autoscaling maximum, or concurrency when
    serverless) from which `processes_at(n) x engines x per_client` exceeds `limit`;
    None when nothing grows or there is no limit. A bisection: cost independent of n."""
    if limit is None or processes_at(now + 1) == processes_at(now):
        return None
    over = lambda n: processes_at(n) * engines * per_client > limit  # noqa: E731
    lo, hi = 1, max(now, 1)
    if over(lo):
        return lo
    while not over(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if over(mid):
            hi = mid
        else:
            lo = mid
    return hi


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
            return kinds[b.service].service.fleet_size

        rows.sort(key=lambda b: b.breaks_at / max(1, now(b)))
        first, rest = rows[0], rows[1:]
        unit = lambda b: ("invocations" if kinds[b.service].service.serverless  # noqa: E731
                          else "instances")
        text = (f"{ep.role}: {first.service} breaks it first, at {first.breaks_at:,} "
                f"{unit(first)} (today {now(first):,})")
        if rest:
            text += " while " + ", ".join(
                f"{b.service} would at {b.breaks_at:,} (today {now(b):,})" for b in rest)
        lines.append(text + ", each with the other services at their peaks.")
    return " ".join(lines)


def _own(rec: Recommendation) -> Service:
    """The service a plan sizes (its scenario is the database as that service sees it)."""
    return rec.sized


def break_lines(rec: Recommendation) -> list[str]:
    """Where each endpoint breaks as the fleet grows, in words; the CLI and the report print
    these lines as they are."""
    unit = ("invocations" if _own(rec).serverless
            else "instances at the autoscaling maximum")
    return [f"{e.role}: breaks from about {e.breaks_at:,} {unit} with these settings (above "
            f"{e.break_limit:,} {e.break_limit_name})"
            for e in rec.endpoints if e.breaks_at is not None and e.break_limit is not None]


# The scale-out series never has more points than this, whatever the fleet size.
SCALE_OUT_POINTS = 300


def scale_out_range(rec: Recommendation) -> int:
    """Default x-axis end: twice the autoscaling maximum, and past the break point."""
    top = _own(rec).autoscaling_max
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
    s, svc = rec.scenario, _own(rec)
    if svc.serverless:
        return []
    top = min(up_to or scale_out_range(rec), 10 * bounds.RANGES["app_instances"].high)
    if top <= SCALE_OUT_POINTS:
        xs = set(range(1, top + 1))
    else:
        step = (top - 1) / (SCALE_OUT_POINTS - 1)
        xs = {1 + round(i * step) for i in range(SCALE_OUT_POINTS)}
    now = svc.autoscaling_max
    for b in [now] + [e.breaks_at for e in rec.endpoints if e.breaks_at]:
        xs |= {x for x in (b - 1, b) if 1 <= x <= top}
    rows = []
    for n in sorted(xs):
        for ep in rec.endpoints:
            clients = (limits.processes_at(s, svc, ep.role, n) * ep.engines_per_process
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
        now = svc.service.fleet_size
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
            if b.break_limit is None:
                continue
            own = svc.rec.endpoint(ep.role)
            sv = svc.service
            now = sv.fleet_size
            if (limits.processes_at(rec.scenario, sv, ep.role, now + 1)
                    == limits.processes_at(rec.scenario, sv, ep.role, now)):
                continue
            series.append((ep, b, sv, own, now))
    if not series:
        return []
    points = max(20, SCALE_OUT_POINTS // len(series))
    rows = []
    for ep, b, sv, own, now in series:
        if top <= points:
            xs = set(range(1, top + 1))
        else:
            step = (top - 1) / (points - 1)
            xs = {1 + round(i * step) for i in range(points)}
        for mark in (now, b.breaks_at):
            if mark:
                xs |= {x for x in (mark - 1, mark) if 1 <= x <= top}
        per = own.pool_size + own.max_overflow
        unit = "invocations" if sv.serverless else "instances"
        for n in sorted(xs):
            rows.append({"instances": n, "service": b.service, "endpoint": ep.role,
                         "series": f"{b.service} · {ep.role}", "unit": unit,
                         "connections": limits.processes_at(rec.scenario, sv, ep.role, n)
                         * own.engines_per_process * per,
                         "limit": b.break_limit, "today": now, "breaks_at": b.breaks_at})
    return rows
