"""The parts of what `recommend` answers: endpoint budgets, engine settings with their
reasons as steps, findings, rules of thumb, each service's part of an endpoint, sources and
cut-offs. The Recommendation holding them (and the inputs) is in wizard/core/model.py; this
module imports none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Cutoff(NamedTuple):
    """A point on the path that drops idle connections."""

    name: str
    seconds: int
    url: str


@dataclass(frozen=True)
class Source:
    """Where a number comes from."""

    label: str
    url: str
    read_on: str = ""


@dataclass(frozen=True)
class ReserveItem:
    name: str
    count: int
    source: str


@dataclass(frozen=True)
class ProxySide:
    """One side of a proxy: what it may open/accept and what the fleet needs of it."""

    limit: int | None
    limit_source: str
    worst_case: int
    detail: str
    configured: int | None = None
    pool_size_per_pair: int | None = None
    reserve_pool: int = 0
    needed: int | None = None  # server connections the fleet's load needs (Erlang C)
    offered_load: float | None = None  # mean busy server connections (Little's law)
    pairs: int = 1  # user/database pairs the pooler serves (one per URL, so per service)
    total: int | None = None  # server connections the pooler may open over all its pairs


@dataclass(frozen=True)
class EndpointBudget:
    """The connection budget of one database endpoint."""

    role: str
    instance_class: str | None
    max_connections: int
    max_connections_source: str
    max_connections_estimated: bool
    reserves: tuple[ReserveItem, ...]
    reserved: int
    usable: int
    processes: int
    engines_per_process: int
    clients: int
    per_process_budget: int | None  # None: no limit on this side (proxy without client cap)
    pool_size: int
    max_overflow: int
    worst_case: int
    explanation: str
    server_side: ProxySide | None = None
    client_side: ProxySide | None = None
    vcpu: float | None = None
    # Erlang C for the pool actually exported (pool_size + max_overflow), under the load.
    p_wait: float | None = None
    p_wait_past_timeout: float | None = None
    mean_wait_ms: float | None = None
    # The fleet size (autoscaling maximum, or concurrency when serverless; deploy surge
    # counted) from which the clients exceed `break_limit` with these settings.
    breaks_at: int | None = None
    break_limit: int | None = None
    break_limit_name: str = "usable connections"
    # Each service's part of this endpoint; `worst_case` above is their sum.
    by_service: tuple[ServiceShare, ...] = ()
    # The part of usable this service (or the pooler it shares) may use when services share
    # the endpoint; None: all of usable.
    allotment: int | None = None
    # Several services: the endpoint's headroom with every service at its peak (a service's
    # own `headroom` counts only its own connections); None with one service.
    shared_headroom: int | None = None

    @property
    def room(self) -> int:
        """Connections this service's side may hold: its allotment, else usable."""
        return self.usable if self.allotment is None else self.allotment

    @property
    def headroom(self) -> int:
        return self.usable - self.worst_case

    @property
    def max_connections_label(self) -> str:
        """max_connections as every table shows it: "1,722 (estimate)" until measured."""
        return f"{self.max_connections:,}" + (" (estimate)" if self.max_connections_estimated
                                              else "")


@dataclass(frozen=True)
class Step:
    """One step of the reason a setting has its value: the `value` it gives, the `formula`
    that gives it ("" when none), `why` in words ("" when the value says it) and `source`
    (a URL, or "" for poolwise's own rule). `text` is the step as every surface words it."""

    value: str
    formula: str = ""
    why: str = ""
    source: str = ""

    @property
    def text(self) -> str:
        said = f"{self.formula} = {self.value}" if self.formula else self.value
        return f"{said}: {self.why}" if self.why else said


def reason_text(steps: Sequence[Step]) -> str:
    """A setting's reason as one sentence: its steps in order (the one place it is worded)."""
    return "; ".join(step.text for step in steps)


@dataclass(frozen=True)
class EngineSettings:
    """What `create_async_engine` must say for one endpoint. `steps` give each value's reason
    as data; `reasons` is each one's sentence (`reason_text` of its steps)."""

    endpoint: str
    poolclass: str
    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: int
    pool_pre_ping: bool
    pool_use_lifo: bool
    connect_args: dict[str, Any]
    reasons: dict[str, str]
    steps: dict[str, tuple[Step, ...]] = field(default_factory=dict)

    @classmethod
    def reasoned(cls, steps: dict[str, tuple[Step, ...]], **settings: Any) -> EngineSettings:
        """Settings with their reasons' steps, each sentence worded from them."""
        return cls(**settings, reasons={k: reason_text(v) for k, v in steps.items()},
                   steps=steps)


@dataclass(frozen=True)
class Finding:
    """One pitfall as data: its code (wizard/core/codes.py), what it is about and its numbers.

    `endpoint` is the role it concerns (None: the path or the database as a whole); `service`
    the one service it concerns and `services` every one (a finding several services share,
    or a plan finding naming the services to change, has `service` None). `facts` holds the
    numbers (and names) the message words. The message never starts with the endpoint or the
    services: each surface puts them before it (findings.subject).
    """

    code: str
    severity: str
    message: str
    fix: str
    endpoint: str | None = None
    service: str | None = None
    services: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.service is not None and not self.services:
            object.__setattr__(self, "services", (self.service,))


@dataclass(frozen=True)
class RuleComparison:
    """A rule of thumb people copy, evaluated for this scenario, per process."""

    name: str
    formula: str
    per_process: int
    fleet_total: int
    fits: bool
    source: str
    limit: int | None = None  # the limit compared against (None: no limit)
    limit_name: str = "usable connections"


@dataclass(frozen=True)
class ServiceShare:
    """One service's part of an endpoint: its engines, pools and what it makes the endpoint
    see at the peak. `allotment` is the most it may use there (its share of usable, or of
    its pooler's limit; None: no limit on its side) and `allotment_how` says how it was set."""

    service: str
    processes: int
    clients: int
    pool_size: int
    max_overflow: int
    worst_case: int
    allotment: int | None
    allotment_how: str
    breaks_at: int | None = None
    break_limit: int | None = None
