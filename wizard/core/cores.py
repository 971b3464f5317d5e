"""What the database can execute at once, from its vCPUs, against what the fleet may run there.

A PostgreSQL backend runs one query on one core at a time; past a small multiple of the
cores, more active connections add queueing inside the server, not throughput. The
starting point people use, HikariCP's "About Pool Sizing" and the PostgreSQL wiki's
"Number Of Database Connections", is::

    connections = (core_count x 2) + effective_spindle_count

Pure: no streamlit, no asyncpg, no sizing. checks.py reads these figures for its findings.
Nothing here caps a pool size: the bound does not know how much of a transaction's hold
time is spent on the database's CPU. bench/cpu.md's waiting load keeps 16 connections busy
on average at the peak (400 requests/s x 40 ms of pg_sleep) on a one-core server whose
bound is 3; capped at 3 the queue would grow without end (Little's law), while the load
sizing (Erlang C) already keeps a computing load's pools small (2 per process there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wizard.core.results import Source

HIKARI = Source("HikariCP: About Pool Sizing",
                "https://github.com/brettwooldridge/HikariCP/wiki/About-Pool-Sizing")
PG_WIKI = Source("PostgreSQL wiki: Number Of Database Connections",
                 "https://wiki.postgresql.org/wiki/Number_Of_Database_Connections")

# HikariCP: "effective_spindle_count is zero if the active data set is fully cached, and
# approaches the number of actual spindles as the cache hit rate falls". One, as the rule
# people copy writes it (cores x 2 + 1), for an SSD volume that is not fully cached.
SPINDLES = 1
# "Far" above the bound: the worst case is a ceiling the fleet reaches only when every pool
# is checked out at once, so being somewhat above it is normal. A choice, not a measurement:
# bench/cpu.md's sweep (one core, a computing query) shows what a burst there costs: the
# throughput stays flat from 1 to 48 connections, and p99 grows with the connections
# (4-5x the bound's p99 at 4x the bound): the queue moved into PostgreSQL.
FAR = 4


@dataclass(frozen=True)
class CoreBound:
    """Connections a database host can execute at once, and how that was worked out."""

    vcpu: float
    cores: int
    spindles: int
    executable: int
    formula: str
    sources: tuple[Source, ...] = (HIKARI, PG_WIKI)


def executable(vcpu: float | None, spindles: int = SPINDLES) -> CoreBound | None:
    """(cores x 2) + spindles for a host with `vcpu` vCPUs; None when the vCPUs are unknown.

    A fractional vCPU count (burstable or serverless capacity) is rounded down, never below
    one core. Cloud vCPUs on x86 are hyperthreads, which HikariCP says not to count: taking
    them as cores makes the bound an upper estimate, so findings built on it err quiet.
    """
    if vcpu is None or not math.isfinite(vcpu) or vcpu <= 0:
        return None
    cores = max(1, math.floor(vcpu))
    total = cores * 2 + spindles
    return CoreBound(vcpu, cores, spindles, total,
                     f"{cores} core{'s' if cores != 1 else ''} x 2 + {spindles} spindle = {total}")


def busy_connections(per_process_offered: float | None, processes: int,
                     fleet_offered: float | None = None) -> float | None:
    """Mean connections the fleet's load keeps busy on one endpoint (Little's law).

    `fleet_offered` is the figure sizing already worked out behind a pooler (the whole
    fleet's rate x hold); without it, each process's offered load times the processes.
    """
    if fleet_offered is not None:
        return fleet_offered
    if per_process_offered is None:
        return None
    return per_process_offered * processes


@dataclass(frozen=True)
class Oversubscription:
    """An endpoint whose fleet may run far more at once than its cores can execute."""

    bound: CoreBound
    worst_case: int  # connections the database may see active at once (all pools checked out)
    busy: float | None  # the load's mean busy connections at the peak, when a load is given
    ratio: float  # worst_case / executable

    @property
    def busy_over(self) -> bool:
        """The load alone keeps more connections busy than the cores can execute."""
        return self.busy is not None and self.busy > self.bound.executable


def oversubscription(vcpu: float | None, worst_case: int, busy: float | None,
                     far: float = FAR) -> Oversubscription | None:
    """The finding's facts when the worst case is at least `far` x what the cores execute,
    or when the load's busy connections alone exceed it; else None."""
    bound = executable(vcpu)
    if bound is None:
        return None
    ratio = worst_case / bound.executable
    if ratio < far and not (busy is not None and busy > bound.executable):
        return None
    return Oversubscription(bound, worst_case, busy, ratio)
