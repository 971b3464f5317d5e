"""Fleet check: real OS processes, each with its own async engine, against a real server.

One harness behind three users: bench/fleet.py and bench/cpu.py (poolwise against the rules
people copy, on a throwaway PostgreSQL), bench/services.py (several services at once, each
a Group) and `python -m wizard fleet` (an exported module's engines against your own
staging database). Every process is spawned (an AsyncEngine is not fork-safe), builds its
engine from explicit settings or an exported module, and drives read-only requests for a
bounded time while a monitor samples pg_stat_activity. Figures per phase: requests,
connection errors, checkout timeouts, throughput, p50/p99 latency and peak server
connections.

    settings   what a run is given (PoolSettings, Workload, Phase, Target, Group; bounds)
    urls       what may be shown of a URL, and the secrets to scrub
    process    one process: its engine, its requests, one row per request
    monitor    the pg_stat_activity sampler
    run        spawn, collect, figures (run_fleet for one setting, run_groups for several)
    results    outcomes, figures and their tables
    cli        `python -m wizard fleet`
    pgserver   throwaway PostgreSQL and PgBouncer servers (the benchmarks and the tests)
"""

from wizard.fleet.monitor import Monitor
from wizard.fleet.process import classify, compute_sql, request, schedule
from wizard.fleet.results import (
    CHECKOUT_TIMEOUT,
    CONN_ERROR,
    OK,
    OTHER_ERROR,
    OUTCOMES,
    UNFINISHED,
    FleetResult,
    PhaseFigures,
    markdown_table,
    percentile,
    table,
    text_table,
    write_section,
)
from wizard.fleet.run import run_fleet, run_groups
from wizard.fleet.settings import PASSWORD_ENV, Group, Phase, PoolSettings, Target, Workload
from wizard.fleet.urls import safe_url, scrub, secrets_of

__all__ = [
    "CHECKOUT_TIMEOUT", "CONN_ERROR", "OK", "OTHER_ERROR", "OUTCOMES", "PASSWORD_ENV",
    "UNFINISHED", "FleetResult", "Group", "Monitor", "Phase", "PhaseFigures", "PoolSettings",
    "Target", "Workload", "classify", "compute_sql", "markdown_table", "percentile", "request",
    "run_fleet", "run_groups", "safe_url", "schedule", "scrub", "secrets_of", "table",
    "text_table", "write_section",
]
