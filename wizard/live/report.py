"""What a live check found (readings, pooler, pre-ping cost, exhaustion, stage errors) and
how it feeds back: the measured values as scenario parameters, applied to a scenario."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from wizard.core.model import Scenario
from wizard.scenario import links


@dataclass(frozen=True)
class Readings:
    """What the server says about itself, read in one read-only transaction."""

    server_version: str
    server_version_num: int
    max_connections: int
    superuser_reserved_connections: int
    reserved_connections: int | None  # None before PostgreSQL 16
    in_use: int  # client backends visible to this role, this check's own included
    by_state: dict[str, int]
    by_application: dict[str, int]
    sees_all_sessions: bool
    idle_session_timeout_ms: int | None
    idle_in_transaction_session_timeout_ms: int | None
    statement_timeout_ms: int | None
    tcp_keepalives_idle_s: int | None
    is_superuser: bool
    role_connection_limit: int  # -1 = none
    user: str
    database: str
    server_port: int | None

    @property
    def major_version(self) -> int:
        return self.server_version_num // 10000

    @property
    def reserved(self) -> int:
        """Slots a non-superuser can never take."""
        return self.superuser_reserved_connections + (self.reserved_connections or 0)

    @property
    def free(self) -> int:
        """Connections this role could still open now (its own connection counted as used)."""
        cap = self.max_connections - self.in_use
        if not self.is_superuser:
            cap -= self.reserved
        return max(cap, 0)


@dataclass(frozen=True)
class Timing:
    """Latency percentiles of n samples, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float


@dataclass(frozen=True)
class PrePing:
    """What pool_pre_ping costs here: checkouts with and without it vs SELECT 1."""

    n: int
    connect_ms: float  # one raw asyncpg connect, TLS and auth included
    engine_connect_ms: float  # the engine's first checkout (connect + dialect setup)
    pre_ping_checkout: Timing
    plain_checkout: Timing
    select1: Timing
    statement_cache: bool

    @property
    def ratio_p50(self) -> float:
        """Pre-pinged checkout p50 over SELECT 1 p50."""
        return self.pre_ping_checkout.p50_ms / self.select1.p50_ms if self.select1.p50_ms else 0


@dataclass(frozen=True)
class PoolerDetection:
    """Whether the endpoint multiplexes server connections per transaction."""

    kind: str  # "direct-or-session", "transaction-pooler", "pooler"
    backend_changed: bool
    named_statements_break: bool
    driver_error: str
    cache_off_works: bool | None
    server_port: int | None
    port_differs: bool
    message: str
    suggested_proxy: str | None


@dataclass(frozen=True)
class ExhaustionPlan:
    """What the exhaustion test would open, shown before the user confirms."""

    holders: int
    pool_size: int
    max_overflow: int
    pool_timeout: float
    free: int | None
    cap: int
    allowed: bool
    reason: str

    @property
    def summary(self) -> str:
        free = "unknown" if self.free is None else str(self.free)
        return (f"opens {self.holders} connections (pool_size {self.pool_size} + max_overflow "
                f"{self.max_overflow} + 1 extra) for about {self.pool_timeout:g} s; "
                f"free on the server: {free}")


@dataclass(frozen=True)
class Exhaustion:
    """The proof: the holder past pool_size + max_overflow gets TimeoutError."""

    holders: int
    opened: int
    server_connections: int  # connections the pool really had checked out while holding
    timed_out: bool
    waited_s: float
    pool_timeout: float
    error: str
    released: bool


@dataclass(frozen=True)
class StageError:
    stage: str
    code: str
    message: str
    fix: str


@dataclass(frozen=True)
class LiveReport:
    """Everything one live check measured; holds no password."""

    target: str
    started_at: str
    limit_s: float
    elapsed_s: float
    readings: Readings | None = None
    pooler: PoolerDetection | None = None
    pre_ping: PrePing | None = None
    exhaustion_plan: ExhaustionPlan | None = None
    exhaustion: Exhaustion | None = None
    errors: tuple[StageError, ...] = ()

    @property
    def source(self) -> str:
        """How overrides from this check are labelled in the recommendation."""
        return f"measured {self.started_at}"

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = self.source
        if self.readings:
            d["readings"].update(free=self.readings.free, reserved=self.readings.reserved,
                                 major_version=self.readings.major_version)
        if self.pre_ping:
            d["pre_ping"]["ratio_p50"] = round(self.pre_ping.ratio_p50, 3)
        if self.exhaustion_plan:
            d["exhaustion_plan"]["summary"] = self.exhaustion_plan.summary
        d["overrides"] = report_overrides(self)
        return d


# --------------------------------------------------------------------------- feed back


def report_overrides(report: LiveReport) -> dict[str, str]:
    """Measured values as flat share/CLI parameters (see wizard.scenario.links.PARAMS).

    reserved_connections (PostgreSQL 16+) is the slot the providers use for their own
    roles, so a measured value replaces the provider-reserved default.
    """
    r = report.readings
    if r is None:
        return {}
    out = {"max_connections": str(r.max_connections),
           "superuser_reserved": str(r.superuser_reserved_connections),
           "pg_version": str(r.major_version)}
    if r.reserved_connections is not None:
        out["provider_reserved"] = str(r.reserved_connections)
    out["max_connections_source"] = report.source
    return out


def endpoint_overrides(flat: dict[str, str], report: LiveReport,
                       role: str = "primary") -> dict[str, str]:
    """The share parameters the measured values change when the check ran on endpoint
    `role`: the primary takes every measured setting, a replica its own max_connections."""
    measured = report_overrides(report)
    if not measured or report.readings is None:
        return {}
    if role == "primary":
        return measured
    n = int(flat.get("replicas") or 0)
    try:
        i = int(role.rsplit("-", 1)[1]) - 1
    except (IndexError, ValueError):
        return {}
    if not role.startswith("replica-") or not 0 <= i < n:
        return {}
    items = (flat.get("replica_max_connections") or "").split(",")
    items = (items + [""] * n)[:n]
    items[i] = str(report.readings.max_connections)
    return {"replica_max_connections": ",".join(items)}


def apply_overrides(scenario: Scenario, report: LiveReport, role: str = "primary") -> Scenario:
    """`scenario` with the values measured on endpoint `role` in place, sourced
    "measured <timestamp>" (see endpoint_overrides)."""
    if report.readings is None:
        return scenario
    flat = links.to_flat(scenario)
    return links.from_flat({**flat, **endpoint_overrides(flat, report, role)})
