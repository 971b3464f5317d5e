"""How a user changes each pooler's server pool, worded for the findings' fixes: where the
pool is set (POOL_LEVER) and the values that fit. Pure: standard library and the core."""

from __future__ import annotations

from wizard.core import proxies


def pool_over(s, ep, side) -> str:
    """How a user of this proxy keeps its server pool within the usable connections."""
    pairs = max(1, s.proxy_settings.user_db_pairs)
    if s.proxy == "rds-proxy":
        pct = ep.room * 100 // ep.max_connections
        keep = ("your admin and migration reserves" if ep.allotment is None
                else "the other services' connections and your reserves")
        return f"Set the proxy's MaxConnectionsPercent to at most {pct}% so {keep} stay free."
    if s.proxy == "neon-pooler":
        return (f"Neon's pooler settings cannot be changed ({proxies.neon_pool_fraction():g} x "
                "max_connections per user/database pair): route fewer user/database pairs "
                "through it or pick a bigger compute size.")
    if s.proxy.startswith("supavisor"):
        return (f"Set Supavisor's pool size to at most {max(1, ep.room // pairs):,} in "
                "Database Settings, or pick a bigger compute size.")
    if s.proxy == "azure-pgbouncer":
        return (f"Set the server parameter pgbouncer.default_pool_size to at most "
                f"{max(1, ep.room // pairs):,}.")
    if side.pool_size_per_pair is not None:  # self-managed PgBouncer: the ini's values
        dps, reserve = side.pool_size_per_pair, side.reserve_pool
        return (f"Set default_pool_size = {dps} and reserve_pool_size = {reserve}: "
                f"({dps} + {reserve}) x {side.pairs} pair(s) = {side.total or side.limit:,} "
                "server connections (the ini snippet does), or pick a bigger class.")
    return (f"Size the proxy's server pool to at most {side.limit:,} (the ini snippet does), "
            "or pick a bigger class.")


# Where a user sets each pooler's server pool (Neon's pooler: nowhere, it is fixed).
POOL_LEVER = {
    "azure-pgbouncer": "the server parameter pgbouncer.default_pool_size",
    "supavisor-transaction": "Supavisor's pool size in Database Settings",
    "supavisor-session": "Supavisor's pool size in Database Settings",
    "rds-proxy": "the proxy's MaxConnectionsPercent",
    "pgbouncer-transaction": "PgBouncer's default_pool_size (the ini snippet sets it)",
    "pgbouncer-session": "PgBouncer's default_pool_size (the ini snippet sets it)",
}


def neon_fixed() -> str:
    return (f"Neon's pool is fixed at {proxies.neon_pool_fraction():g} x max_connections per "
            "user/database pair and cannot be changed")


def pool_below_load(s, ep, side) -> str:
    """How a user of this proxy lets it open the server connections the load needs."""
    if side.needed > ep.usable:
        return (f"The need exceeds the {ep.usable:,} usable: pick a bigger class or shorten "
                "transactions.")
    if s.proxy == "neon-pooler":
        return f"{neon_fixed()}: pick a bigger compute size or shorten transactions."
    if s.proxy == "rds-proxy":
        pct = -(-side.needed * 100 // ep.max_connections)
        return f"Raise the proxy's MaxConnectionsPercent to at least {min(pct, 100)}%."
    where = POOL_LEVER.get(s.proxy, "the proxy's pool size")
    return (f"Raise {where} to {side.needed:,} (within the {ep.usable:,} usable). In poolwise: "
            "the proxy step's pool size.")
