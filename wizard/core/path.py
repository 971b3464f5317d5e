"""The path from an engine to the database: idle cut-offs, recycle, TLS and driver arguments.

Facts of the path, not of the budget: every engine on the scenario shares them, so they
are computed once (`path_facts`). Checks read them from here; this module imports neither
sizing nor checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wizard.core import catalog
from wizard.core.model import TRANSACTION_POOLERS, Scenario
from wizard.core.results import Cutoff, Source, Step

DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_RECYCLE = 1800
MIN_RECYCLE = 60
CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class PathFacts:
    """What the path to the database decides for every engine, computed once."""

    pool_timeout: float
    recycle: int
    recycle_why: str
    connect_args: dict[str, Any]
    connect_args_steps: tuple[Step, ...]
    cutoffs: tuple[Cutoff, ...] = ()  # every idle cut-off on the path, shortest first
    pre_ping: bool = True
    pre_ping_why: str = ""


def path_facts(s: Scenario, serverless: bool = False) -> PathFacts:
    """The facts of the path `s` describes (its proxy, network, TLS) for one service's
    engines (`serverless`: one connection per invocation)."""
    cutoffs = tuple(idle_cutoffs(s))
    recycle, recycle_why = recycle_for(cutoffs)
    args, args_why = connect_args_for(s, serverless)
    ping, ping_why = pre_ping_for(s)
    return PathFacts(DEFAULT_POOL_TIMEOUT, recycle, recycle_why, args, tuple(args_why),
                     cutoffs, ping, ping_why)


def pre_ping_for(s: Scenario) -> tuple[bool, str]:
    """Whether the engine pre-pings each checkout, and why.

    A pre-ping is BEGIN, an empty statement and ROLLBACK on every checkout: 0.27 ms more per
    checkout direct and 0.57 ms through PgBouncer on loopback (bench/live.md), a pooled
    round trip on a real network. It is on by default, SQLAlchemy's pessimistic disconnect
    handling: a pooler restart or failover, a database failover or restart, a terminated
    backend or Neon's scale to zero close the engine's idle connections, and without it the
    request that checks one out fails. `Scenario.pre_ping` False opts out.
    """
    neon = s.provider == "neon"
    suspend = _neon_suspend(s)
    if not s.pre_ping:
        why = ("off (your choice, pre_ping=false): one round trip less per checkout, but a "
               "connection a restart, failover or scale-to-zero closed fails the request that "
               "checks it out")
        if neon and suspend:
            why += (f"; pool_recycle stays below Neon's {suspend} s scale-to-zero, which "
                    "closes idle connections")
        return False, why
    cost = f"; costs one pooled round trip per checkout ({SQLALCHEMY_DISCONNECT_URL})"
    if s.proxy in TRANSACTION_POOLERS:
        return True, ("on: behind a transaction pooler the engine's connections end at the "
                      "pooler, and a pooler restart or failover drops every one of them; "
                      "without a pre-ping the first request on each fails (measured: one "
                      "failed request per worker process with it off, none with it on)"
                      + (f"; Neon also closes connections when the compute scales to zero "
                         f"after {suspend} s" if neon and suspend else "") + cost
                      + "; opt out with pre_ping=false")
    if neon:
        return True, (f"on: Neon scales an idle compute to zero after {suspend or 300} s and "
                      "closes its connections; the pre-ping replaces them instead of failing "
                      f"the next request ({NEON_SUSPEND_URL})" + cost)
    return True, ("checks each checkout (BEGIN/ROLLBACK round trips) so connections cut by a "
                  "failover or restart are replaced, not raised (bench/live.md: 0.27 ms per "
                  "checkout on loopback)")


SQLALCHEMY_DISCONNECT_URL = ("https://docs.sqlalchemy.org/en/20/core/pooling.html"
                             "#disconnect-handling-pessimistic")
NEON_SUSPEND_URL = "https://neon.com/docs/introduction/compute-lifecycle"


def _neon_suspend(s: Scenario) -> int:
    """Seconds of inactivity after which Neon suspends the compute (0: not Neon)."""
    value, _ = catalog.int_fact(catalog.provider_fact(s.provider, "scale_to_zero_after"), 0)
    return value


def idle_cutoffs(s: Scenario) -> list[Cutoff]:
    """Every idle cut-off on the path, shortest first."""
    found: list[Cutoff] = []

    def add(name: str, fact: tuple[str, Source] | None) -> None:
        value, src = catalog.int_fact(fact, 0)
        if value > 0:
            found.append(Cutoff(name, value, src.url if src else ""))

    for item in s.network:
        for key in ("idle_timeout", "tcp_established_idle_timeout", "connection_tracking_idle"):
            if fact := catalog.proxy_fact(item, key):
                add(item, fact)
                break
    add(f"{s.provider} network", catalog.provider_fact(s.provider, "tcp_idle_cutoff"))
    add(f"{s.provider} idle_session_timeout",
        catalog.provider_fact(s.provider, "server_idle_session_timeout"))
    add(f"{s.provider} scale to zero", catalog.provider_fact(s.provider, "scale_to_zero_after"))
    if s.proxy == "rds-proxy":
        add("RDS Proxy IdleClientTimeout", catalog.proxy_fact("rds-proxy", "IdleClientTimeout"))
    if s.proxy.startswith("pgbouncer"):
        add("PgBouncer client_idle_timeout", catalog.proxy_fact("pgbouncer", "client_idle_timeout"))
    if s.proxy.startswith("supavisor"):
        add("Supavisor client idle timeout", catalog.proxy_fact("supavisor", "client_idle_timeout"))
    return sorted(found, key=lambda f: f.seconds)


def proxy_wait_step(s: Scenario) -> Step | None:
    """What the proxy adds to a request's wait after the pool hands out a connection (None:
    nothing known)."""
    for proxy, component, setting in (("rds-proxy", "rds-proxy", "ConnectionBorrowTimeout"),
                                      ("pgbouncer", "pgbouncer", "query_wait_timeout"),
                                      ("azure-pgbouncer", "azure-pgbouncer",
                                       "query_wait_timeout"),
                                      ("neon-pooler", "neon-pooler", "query_wait_timeout")):
        if s.proxy.startswith(proxy):
            secs, _ = catalog.int_fact(catalog.proxy_fact(component, setting), 0)
            if secs:
                return Step(f"the proxy may then hold a query up to {secs} s more waiting for "
                            f"a server connection ({setting})",
                            why="keep request timeouts above pool_timeout + that, or lower it "
                                "on the proxy")
    return None


def recycle_for(cuts: Sequence[Cutoff]) -> tuple[int, str]:
    """pool_recycle below the shortest of the idle cut-offs (`idle_cutoffs`), never below
    60 s."""
    if not cuts:
        return DEFAULT_RECYCLE, (f"no idle cut-off known on the path; {DEFAULT_RECYCLE} s "
                                 "spreads reconnects after failovers")
    name, secs, _ = cuts[0]
    margin = max(30, secs // 10)
    value = max(MIN_RECYCLE, (secs - margin) // 10 * 10)
    return value, f"below {name} ({secs} s) by {secs - value} s"


def prepared_statements_survive(s: Scenario) -> bool:
    """Whether asyncpg's named prepared statements work through the proxy in the path."""
    if s.proxy not in TRANSACTION_POOLERS:
        return True
    if s.proxy == "neon-pooler":
        # Neon runs PgBouncer 1.22+ with max_prepared_statements=1000 (not user-editable).
        value, _ = catalog.int_fact(catalog.proxy_fact("neon-pooler", "max_prepared_statements"),
                                    0)
        return value > 0
    if s.proxy == "azure-pgbouncer":
        # Azure's built-in PgBouncer (1.25) keeps them once the server parameter is above 0.
        return bool(s.proxy_settings.max_prepared_statements)
    if s.proxy != "pgbouncer-transaction":
        return False  # Supavisor transaction mode: no prepared statements
    mps = s.proxy_settings.max_prepared_statements
    version = _version(s.proxy_settings.pgbouncer_version)
    if mps is None:
        mps = 200 if version and version >= (1, 24) else 0
    return bool(version and version >= (1, 21) and mps > 0)


def _version(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def connect_args_for(s: Scenario, serverless: bool = False
                     ) -> tuple[dict[str, Any], list[Step]]:
    """asyncpg connect arguments the path needs (for a serverless service's engines when
    `serverless`), with a step of reason for each (its value is the argument as set, `ssl`
    for TLS)."""
    args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    why = [Step(f"timeout={CONNECT_TIMEOUT}",
                why=f"fail a connect in {CONNECT_TIMEOUT} s, not asyncpg's 60")]
    if not prepared_statements_survive(s):
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        why.append(Step("statement caches off", why="the transaction pooler cannot keep named "
                        "prepared statements across transactions"))
    elif s.proxy in TRANSACTION_POOLERS:
        why.append(Step("statement caches on", why="this transaction pooler tracks "
                        "protocol-level prepared statements (max_prepared_statements > 0)"))
    if s.proxy == "rds-proxy" or s.provider in ("azure-flexible", "supabase", "neon") or (
            s.provider in ("aws-rds", "aws-aurora") and (s.iam_auth or s.proxy == "none")):
        args["ssl"] = "require"
        why.append(Step("ssl", why="the provider or proxy requires TLS (verify with the "
                        "provider's CA bundle in production)"))
    if serverless:
        args["command_timeout"] = 10
        why.append(Step("command_timeout=10",
                        why="a serverless invocation must not hang on the database"))
    return args, why
