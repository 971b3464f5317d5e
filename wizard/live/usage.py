"""Connections per service: the live check's counts by application_name against the plan.

Pure (no driver, no UI): the CLI and the web app both render `service_usage(...)`.
Engines of named services set application_name to the service's name (wizard.core.sizing), so
pg_stat_activity tells the services apart; every other name is a connection the plan does
not count. The counts are a moment's reading, the plan's figures are the autoscaling peak.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from wizard.core.model import Recommendation, ScenarioError

# What pg_stat_activity shows for a connection without application_name (check.py's query).
NO_NAME = "(none)"


@dataclass(frozen=True)
class ServiceUsage:
    """One service on the checked endpoint: connections now against its part of the plan.

    `worst_case` is what its recommended engines make the endpoint see at the peak;
    `allotment` the most it may use there (None: no limit on its side); behind a pooler
    (`pooled`) the counts are the pooler's server connections and the allotment is on the
    pooler's client side, so only `worst_case` is compared.
    """

    service: str
    kind: str
    connections: int
    worst_case: int
    allotment: int | None
    allotment_how: str
    pooled: bool
    status: str  # "ok", "over_plan" (more than its engines open at the peak), "over_allotment"
    message: str


@dataclass(frozen=True)
class OtherUsage:
    """Connections under an application_name that is no service of this endpoint."""

    application_name: str
    connections: int
    why: str  # "live check" (poolwise's own), "not planned here" (a service kept off this
    # endpoint), "unknown"


@dataclass(frozen=True)
class EndpointUsage:
    """The checked endpoint: every service's connections and the rest, against usable."""

    role: str
    usable: int
    planned: int  # the services' worst cases at the peak, summed
    in_use: int  # client connections the check saw, its own included
    named: bool  # the plan names its services (their engines set application_name)
    services: tuple[ServiceUsage, ...]
    others: tuple[OtherUsage, ...]
    unplanned: int  # connections the plan does not count (the checks' own excluded)
    over: bool  # a service is over its part, or the unplanned ones leave too little room
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _service_row(name: str, kind: str, now: int, worst: int, allotment: int | None,
                 how: str, pooled: bool, others_peak: int, usable: int) -> ServiceUsage:
    if not pooled and allotment is not None and now > allotment:
        status = "over_allotment"
        message = (f"{name} holds {now:,} connections, over its allotment of {allotment:,} "
                   f"({how}): with the other services at their peaks ({others_peak:,}) the "
                   f"endpoint would see {now + others_peak:,} of {usable:,} usable.")
    elif now > worst:
        status = "over_plan"
        message = (f"{name} holds {now:,} connections, more than the {worst:,} its "
                   "recommended engines open at the autoscaling peak: it runs bigger pools or "
                   "more processes than planned.")
    else:
        status = "ok"
        message = (f"{name} holds {now:,} of the {worst:,} its recommended engines open at "
                   "the peak" + (f" (allotment {allotment:,})." if allotment is not None
                                  and not pooled else "."))
    return ServiceUsage(name, kind, now, worst, allotment, how, pooled, status, message)


def service_usage(rec: Recommendation, role: str, by_application: Mapping[str, int],
                  check_name: str) -> EndpointUsage:
    """Map the connections per application_name on endpoint `role` to the plan's services.

    `check_name` is the live check's own application_name (its connections are listed,
    never counted against anyone). With the flags form (one unnamed service, whose engines
    set no application_name), every other connection is counted as that service's.
    """
    try:
        ep = rec.endpoint(role)
    except StopIteration:
        raise ScenarioError(f"the plan has no endpoint {role[:20]!r}; endpoints: "
                            + ", ".join(e.role for e in rec.endpoints), key="endpoint") from None
    named = rec.scenario.named
    kinds = {svc.name: svc.kind for svc in rec.services}
    shares = {b.service: b for b in ep.by_service}
    pooled = {svc.name: svc.rec.endpoint(role).server_side is not None
              for svc in rec.services if role in svc.endpoints}
    counts = {str(k): int(v) for k, v in by_application.items()}
    own = counts.pop(check_name, 0)
    rows, others = [], []
    if named:
        for name, b in shares.items():
            rows.append(_service_row(name, kinds.get(name, ""), counts.pop(name, 0),
                                     b.worst_case, b.allotment, b.allotment_how,
                                     pooled.get(name, False), ep.worst_case - b.worst_case,
                                     ep.usable))
        for app, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            others.append(OtherUsage(app, n, "not planned here" if app in kinds else "unknown"))
    else:
        b = next(iter(shares.values()))
        rows.append(_service_row(b.service, kinds.get(b.service, ""), sum(counts.values()),
                                 b.worst_case, b.allotment, b.allotment_how,
                                 pooled.get(b.service, False), 0, ep.usable))
    if own:
        others.append(OtherUsage(check_name, own, "live check"))
    unplanned = sum(o.connections for o in others if o.why != "live check")
    planned = sum(r.worst_case for r in rows)
    notes = []
    if not named:
        notes.append("One service (the flags form): its engines set no application_name, so "
                     "every connection but the live check's is counted as its own.")
    if unplanned:
        names = ", ".join(f"{o.application_name} {o.connections:,}" for o in others
                          if o.why != "live check")
        notes.append(f"{unplanned:,} connections come from application names the plan does "
                     f"not count on {role} ({names}): they take room from the services.")
    crowded = unplanned and planned + unplanned > ep.usable
    if crowded:
        notes.append(f"With them, the services' peak ({planned:,}) plus these {unplanned:,} "
                     f"is {planned + unplanned:,}, above the {ep.usable:,} usable connections.")
    if any(r.pooled for r in rows):
        notes.append("Behind a pooler the database sees its server connections, each named "
                     "after the client that used it last: per-service counts are approximate.")
    over = crowded or any(r.status != "ok" for r in rows)
    return EndpointUsage(role, ep.usable, planned, sum(by_application.values()), named,
                         tuple(rows), tuple(others), unplanned, bool(over), tuple(notes))
