"""What a fleet run is given: the pool under test, the load, the phases and the target.

Also the bounds every run keeps (processes, seconds, pool sizes) and how a process finds
its engine in a module written by `python -m wizard export`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from wizard.core.model import EngineSettings, ScenarioError
from wizard.fleet.urls import safe_url

MAX_SECONDS = 600
MAX_PROCESSES = 64
MAX_HOLD_MS = 10_000
MAX_POOL = 1000  # --pool-size and --max-overflow per process
MAX_POOL_TIMEOUT = 600.0
PASSWORD_ENV = "POOLWISE_FLEET_PASSWORD"  # `python -m wizard fleet` reads the password here
DRAIN_SECONDS = 5.0  # after the run, in-flight requests get this long before they count as lost


@dataclass(frozen=True)
class PoolSettings:
    """The create_async_engine arguments under test (one named setting)."""

    name: str
    poolclass: str = "AsyncAdaptedQueuePool"
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_recycle: int = -1
    pool_pre_ping: bool = False
    pool_use_lifo: bool = False
    connect_args: dict[str, Any] = field(default_factory=dict)
    formula: str = ""

    @classmethod
    def from_engine(cls, engine: EngineSettings, name: str = "poolwise",
                    formula: str = "") -> PoolSettings:
        """The settings of one engine of a Recommendation, unchanged."""
        return cls(name=name, poolclass=engine.poolclass, pool_size=engine.pool_size,
                   max_overflow=engine.max_overflow, pool_timeout=engine.pool_timeout,
                   pool_recycle=engine.pool_recycle, pool_pre_ping=engine.pool_pre_ping,
                   pool_use_lifo=engine.pool_use_lifo, connect_args=dict(engine.connect_args),
                   formula=formula or "wizard.core.plan.recommend(scenario)")

    @property
    def per_process(self) -> int:
        """Connections one process may open at most."""
        return 1 if self.poolclass == "NullPool" else self.pool_size + self.max_overflow

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for create_async_engine."""
        kw: dict[str, Any] = {"connect_args": dict(self.connect_args)}
        if self.poolclass == "NullPool":
            from sqlalchemy.pool import NullPool

            kw["poolclass"] = NullPool
            return kw
        kw.update(pool_size=self.pool_size, max_overflow=self.max_overflow,
                  pool_timeout=self.pool_timeout, pool_recycle=self.pool_recycle,
                  pool_pre_ping=self.pool_pre_ping, pool_use_lifo=self.pool_use_lifo)
        return kw


@dataclass(frozen=True)
class Workload:
    """What every process offers.

    Open loop when `rate` > 0: Poisson arrivals at `rate` requests/s per process, plus
    `spike_size` requests arriving within `spike_width` seconds every `spike_every`
    seconds (the same instants in every process, as when traffic jumps fleet-wide).
    Closed loop when `rate` is 0: `concurrency` coroutines per process, each sending
    the next request when the previous one finished.
    """

    hold_s: float = 0.04
    rate: float = 0.0
    concurrency: int = 4
    spike_every: float = 0.0
    spike_size: int = 0
    spike_width: float = 0.05
    seed: int = 1
    # "sleep": SELECT pg_sleep(hold_s), the database waits. "compute": a query that keeps a
    # backend on the CPU for `compute_rows` rows of generate_series (bench/cpu.py), so the
    # database's CPU, not the pool, is what requests queue for.
    query: str = "sleep"
    compute_rows: int = 0
    # Open pool_size connections in every process before the clock starts (as HikariCP's
    # minimumIdle does), so the run measures the load, not the connects of a cold pool.
    prewarm: bool = False

    @property
    def mean_rate(self) -> float:
        """Mean open-loop arrivals per second per process, spikes included."""
        spikes = self.spike_size / self.spike_every if self.spike_every > 0 else 0.0
        return self.rate + spikes


@dataclass(frozen=True)
class Phase:
    """A stretch of the run with `processes` processes in total (never fewer than before)."""

    name: str
    processes: int
    seconds: float


@dataclass(frozen=True)
class Target:
    """Where the processes connect and how each builds its engine.

    Either `settings` (explicit pool arguments) or `export_path` (a module written by
    `python -m wizard export`, imported in each process; `endpoint` picks its engine).
    """

    url: str
    settings: PoolSettings | None = None
    export_path: str | None = None
    endpoint: str = "primary"
    monitor_url: str | None = None  # default: url (the monitor counts the url's role)
    count_user: str | None = None   # role whose server connections are counted

    def __repr__(self) -> str:  # never show the password
        return (f"Target(url={safe_url(self.url)!r}, settings={self.settings!r}, "
                f"export_path={self.export_path!r}, endpoint={self.endpoint!r})")


@dataclass(frozen=True)
class Group:
    """One service's processes in a run: where they connect, what each offers and how many
    run in each phase (never fewer than in the phase before).

    `app`: the application_name its connections carry, to count its server connections
    apart from other groups' (None: the counted role's total).
    """

    target: Target
    workload: Workload
    processes: tuple[int, ...]
    app: str | None = None


def load_export(path: str) -> Any:
    """Import an exported engine module from its file."""
    spec = importlib.util.spec_from_file_location("poolwise_fleet_export", path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"--export {path!r} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def export_engine(module: Any, endpoint: str, url: str) -> Any:
    """The AsyncEngine an exported module (`python -m wizard export`) builds for `endpoint`.

    The module reads its URL from the environment variable it names in URL_ENV
    (DATABASE_URL for the primary, DATABASE_REPLICA_N_URL for a replica); `url` goes there.
    """
    check_export(module, endpoint)
    os.environ[module.URL_ENV[endpoint]] = url
    return module.create_engine_for(endpoint)


def check_export(module: Any, endpoint: str) -> None:
    """Raise ScenarioError unless `module` is an engine module with that endpoint."""
    url_env = getattr(module, "URL_ENV", None)
    if not callable(getattr(module, "create_engine_for", None)) or not isinstance(url_env, dict):
        raise ScenarioError("--export is not a poolwise engine module (no create_engine_for / "
                            "URL_ENV); write one with `python -m wizard export --kind module`")
    if endpoint not in url_env:
        raise ScenarioError(f"the exported module has no {endpoint!r} engine; valid choices: "
                            f"{', '.join(url_env)}")


def export_settings(module: Any, endpoint: str, name: str) -> PoolSettings:
    """The pool settings an exported module gives `endpoint` (for the report only)."""
    es = dict(getattr(module, "ENGINE_SETTINGS", {}).get(endpoint, {}))
    args = dict(getattr(module, "CONNECT_ARGS", {}).get(endpoint, {}))
    null = "poolclass" in es and "NullPool" in str(es["poolclass"])
    return PoolSettings(
        name=name, poolclass="NullPool" if null else "AsyncAdaptedQueuePool",
        pool_size=int(es.get("pool_size", 5)), max_overflow=int(es.get("max_overflow", 10)),
        pool_timeout=float(es.get("pool_timeout", 30.0)),
        pool_recycle=int(es.get("pool_recycle", -1)),
        pool_pre_ping=bool(es.get("pool_pre_ping", False)),
        pool_use_lifo=bool(es.get("pool_use_lifo", False)), connect_args=args,
        formula="exported module")


def build_engine(target: Target) -> Any:
    """The AsyncEngine one process drives: the exported module's or the explicit settings'."""
    if target.export_path:
        return export_engine(load_export(target.export_path), target.endpoint, target.url)
    from sqlalchemy.ext.asyncio import create_async_engine

    assert target.settings is not None
    return create_async_engine(target.url, **target.settings.engine_kwargs())
