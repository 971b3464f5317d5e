"""Each endpoint's connection limit: max_connections (the catalog, a measured value or a
formula), the reserves kept out of it, the usable rest and the processes that connect to
it; and the checks a scenario passes before anything is sized.

Each endpoint (the primary, every replica) has its own max_connections and reserves and
is divided among exactly the processes that connect to it. A replica's budget never
comes out of the primary's.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.core import bounds, catalog
from wizard.core.errors import ScenarioError, SizingError
from wizard.core.model import (
    SERVICE_NAME,
    Replica,
    Scenario,
    Service,
    param_values,
    service_key,
    service_values,
    surge,
)
from wizard.core.results import ReserveItem

DEFAULT_SUPERUSER_RESERVED = 3  # PostgreSQL's own default


@dataclass(frozen=True)
class EndpointSpec:
    """What is known about one endpoint before sizing: its limit and who connects."""

    role: str
    instance_class: str | None
    max_connections: int
    max_connections_source: str
    estimated: bool
    vcpu: float | None
    reserves: tuple[ReserveItem, ...]
    processes: int
    engines_per_process: int
    # The part of usable this service (or its pooler) may use when services share the
    # endpoint, and how it was set; None: all of usable.
    allotment: int | None = None
    allotment_how: str = ""

    @property
    def reserved(self) -> int:
        return sum(r.count for r in self.reserves)

    @property
    def usable(self) -> int:
        return self.max_connections - self.reserved

    @property
    def budget(self) -> int:
        """Connections this service's side may use: its allotment, else all of usable."""
        return self.usable if self.allotment is None else self.allotment

    @property
    def clients(self) -> int:
        return self.processes * self.engines_per_process


def _rds_reserved_applies(s: Scenario) -> tuple[bool, str]:
    """Whether this version has rds.rds_reserved_connections, and from which minor."""
    fact = catalog.provider_fact(s.provider, "rds_reserved_connections_from")
    if not fact:
        return False, ""
    firsts: dict[int, int] = {}
    for item in fact[0].split():
        major, _, minor = item.partition(".")
        firsts[int(major)] = int(minor or 0)
    if s.pg_version < min(firsts):
        return False, ""
    if s.pg_version not in firsts:
        return True, f"{s.pg_version}.x"  # majors after the list have it from their first minor
    since = f"{s.pg_version}.{firsts[s.pg_version]}+"
    # No minor given: a new instance gets the current minor, which has it.
    return s.pg_minor is None or s.pg_minor >= firsts[s.pg_version], since


def services_reserved(max_connections: int, pct: int) -> int:
    """Connections left to a provider's services when its guidance gives the app at most
    (100 - pct) % of max_connections (the app's share rounded down)."""
    return max_connections - max_connections * (100 - pct) // 100


def _services_reserve(s: Scenario, max_connections: int) -> ReserveItem | None:
    """Connections a provider's own services hold (Supabase: what its pool guidance leaves)."""
    fact = catalog.provider_int(s.provider, "services_reserved_percent")
    if not fact:
        return None
    pct, url = fact
    return ReserveItem(f"provider services (Auth, Storage, PostgREST, Realtime: {pct}% of "
                       "max_connections)", services_reserved(max_connections, pct), url)


def reserves_for(s: Scenario, primary: bool,
                 max_connections: int = 0) -> tuple[ReserveItem, ...]:
    """Every reserve on one endpoint, each with where its number comes from."""
    items: list[ReserveItem] = []
    if s.reserves.superuser is not None:
        items.append(ReserveItem("superuser_reserved_connections", s.reserves.superuser, "you"))
    else:
        fact = catalog.provider_int(s.provider, "superuser_reserved_connections")
        count, src = fact if fact else (DEFAULT_SUPERUSER_RESERVED, "PostgreSQL default")
        items.append(ReserveItem("superuser_reserved_connections", count, src))
    if s.reserves.provider is not None:
        # An explicit (or measured) provider reserve replaces every documented one.
        items.append(ReserveItem("provider-reserved", s.reserves.provider, "you"))
    else:
        if s.pg_version >= 16 and (fact := catalog.provider_int(s.provider,
                                                                 "reserved_connections_pg16")):
            items.append(ReserveItem("reserved_connections (PostgreSQL 16+)", *fact))
        has_rds, since = _rds_reserved_applies(s)
        if has_rds and (fact := catalog.provider_int(s.provider, "rds_reserved_connections")):
            items.append(ReserveItem(f"rds.rds_reserved_connections ({since})", *fact))
        if fact := catalog.provider_int(s.provider, "provider_reserved"):
            items.append(ReserveItem("provider-reserved", *fact))
        if services := _services_reserve(s, max_connections):
            items.append(services)
    items.append(ReserveItem("monitoring/admin", s.reserves.admin, "you"))
    if primary:
        items.append(ReserveItem("migrations", s.reserves.migrations, "you"))
        if s.reserves.replication_slots:
            items.append(ReserveItem("replication", s.reserves.replication_slots, "you"))
    return tuple(i for i in items if i.count)


def _limit(s: Scenario, instance_class: str | None, override: int | None,
           override_source: str | None) -> tuple[int, str, bool, float | None, str | None]:
    if override is not None:
        vcpu = None
        if instance_class:
            vcpu = catalog.instance_class(s.provider, instance_class).vcpu
        return override, override_source or "your override", False, vcpu, instance_class
    if not instance_class:
        raise SizingError(
            f"{s.provider} needs an instance class or a max_connections value.",
            "give an instance class or the max_connections you measured "
            "(run SHOW max_connections).",
        )
    row = catalog.instance_class(s.provider, instance_class)
    value, label = row.max_connections, row.source_label
    cap = catalog.provider_int(s.provider, "serverless_v2_low_min_acu_cap")
    # 0 and 0.5 ACU are valid minimums: without a stated minimum, assume the cap.
    low_minimum = row.family == "serverless-v2" and (s.min_acu is None or s.min_acu <= 0.5)
    if low_minimum and cap and value > cap[0]:
        given = ("minimum ACU not given" if s.min_acu is None
                 else f"minimum {s.min_acu:g} ACU")
        value, label = cap[0], (f"capped at {cap[0]:,}: {given}, 0/0.5 ACU cap; give min ACU "
                                f">= 1 to lift ({cap[1]})")
    return value, label, row.estimated, row.vcpu, row.instance_class


def processes_at(s: Scenario, svc: Service, role: str, instances: int) -> int:
    """Client processes of one service on one endpoint of the database `s` when its
    autoscaling maximum is `instances` (the concurrency when serverless), the rolling-deploy
    surge included.

    A replica with a fixed reader set keeps it whatever the fleet size.
    """
    if svc.serverless:
        return instances
    if role != "primary":
        readers = s.replicas[int(role.rsplit("-", 1)[1]) - 1].reader_instances
        if readers is not None:
            instances = readers
    return (instances + surge(instances, svc.deploy_surge_percent)) * svc.workers


def replica_rule(provider: str) -> tuple[str, str]:
    """How a provider sets a replica's max_connections against the primary's, and the source.

    'at least primary' (streaming hot standby), 'same as primary' (same compute size),
    'follows primary' (synced from the primary), 'independent', or '' when unknown.
    """
    fact = catalog.provider_fact(provider, "replica_max_connections")
    return (fact[0], fact[1].url) if fact else ("", "")


_INHERIT_WHY = {
    "same as primary": "replicas run on the primary's compute size",
    "follows primary": "synced from the primary when the replica starts",
}


def _replica_limit(s: Scenario, rep: Replica, primary: tuple[int, str, bool, float | None,
                                                              str | None],
                   ) -> tuple[int, str, bool, float | None, str | None]:
    """A replica's max_connections: measured, its own class's, or the primary's."""
    rule, url = replica_rule(s.provider)
    if rep.max_connections is not None:
        return _limit(s, rep.instance_class or s.instance_class, rep.max_connections, None)
    if rep.instance_class is None or rule in _INHERIT_WHY:
        mc, _, est, vcpu, cls = primary
        if rep.instance_class is not None:
            vcpu, cls = catalog.instance_class(s.provider, rep.instance_class).vcpu, \
                rep.instance_class
        why = _INHERIT_WHY.get(rule, "a replica without its own value gets the primary's")
        return mc, f"the primary's max_connections ({why}; {url or 'PostgreSQL hot standby'})", \
            est, vcpu, cls
    return _limit(s, rep.instance_class, None, None)


def fleet_sentence(svc: Service) -> str:
    """How many client engines a service connects at the peak, as one sentence of arithmetic."""
    if svc.serverless_concurrency is not None:
        return (f"Client engines at the peak: {svc.serverless_concurrency:,} concurrent "
                f"invocations x {svc.engines_per_process} engine(s) = "
                f"{svc.serverless_concurrency * svc.engines_per_process:,}.")
    top = svc.autoscaling_max
    kind = "autoscaling maximum" if svc.max_app_instances else "instances"
    extra = surge(top, svc.deploy_surge_percent)
    return (f"Client engines at the peak: {top:,} {kind} + {svc.deploy_surge_percent}% "
            f"rolling-deploy surge ({extra:,}) = {top + extra:,} instances x {svc.workers} "
            f"worker(s) x {svc.engines_per_process} engine(s) = "
            f"{(top + extra) * svc.workers * svc.engines_per_process:,} on the primary.")


def endpoint_specs(s: Scenario, svc: Service) -> tuple[EndpointSpec, ...]:
    """The primary and each replica of the database `s`, with max_connections, reserves and
    the service's client processes at its autoscaling peak."""
    top = svc.fleet_size
    primary = _limit(s, s.instance_class, s.max_connections, s.max_connections_source)
    mc, src, est, vcpu, cls = primary
    # vCPUs typed for the database describe the primary (and replicas without a class's).
    specs = [EndpointSpec("primary", cls, mc, src, est, s.db_vcpus or vcpu,
                          reserves_for(s, True, mc),
                          processes_at(s, svc, "primary", top), svc.engines_per_process)]
    for i, rep in enumerate(s.replicas, start=1):
        rmc, rsrc, rest, rvcpu, rcls = _replica_limit(s, rep, primary)
        specs.append(EndpointSpec(f"replica-{i}", rcls, rmc, rsrc, rest, rvcpu or s.db_vcpus,
                                  reserves_for(s, False, rmc),
                                  processes_at(s, svc, f"replica-{i}", top), 1))
    return tuple(specs)


# Proxies tied to one provider; the rest (none, pgbouncer-*) run with every provider.
PROXY_PROVIDERS = {
    "rds-proxy": ("aws-rds", "aws-aurora"),
    "cloudsql-auth-proxy": ("gcp-cloudsql",),
    "cloudsql-connector": ("gcp-cloudsql",),
    "azure-pgbouncer": ("azure-flexible",),
    "supavisor-transaction": ("supabase",),
    "supavisor-session": ("supabase",),
    "neon-pooler": ("neon",),
}


def validate(s: Scenario, svc: Service | None = None) -> None:
    """Raise ScenarioError naming the first bad value and the valid choices: the database
    and the path `s` describes, and the fleet of `svc` (without it, the flags form's one
    service; with named services, none: plan.validate checks each)."""
    from wizard.core.model import FLEET_KEYS, NETWORK_CUTOFFS, PROXIES

    if svc is None and not s.named:
        svc = s.services[0]
    # Ranges first: nothing below may do work that grows with a number.
    fleet = service_values(svc) if svc is not None else {}
    for key, value in [*((k, v) for k, v in param_values(s).items() if k not in FLEET_KEYS),
                       *fleet.items()]:
        if isinstance(value, int | float) and not isinstance(value, bool):
            bounds.check(key, value)
    for rep in s.replicas:
        bounds.check("replica_max_connections", rep.max_connections)
        bounds.check("replica_readers", rep.reader_instances)
    catalog.check_provider(s.provider)
    if s.proxy not in PROXIES:
        raise ScenarioError(f"unknown proxy {s.proxy!r}; valid choices: {', '.join(PROXIES)}",
                            key="proxy")
    allowed = PROXY_PROVIDERS.get(s.proxy)
    if allowed and s.provider not in allowed:
        raise ScenarioError(f"proxy {s.proxy!r} runs only with {', '.join(allowed)}, "
                            f"not {s.provider}", key="proxy")
    if s.proxy == "azure-pgbouncer" and s.instance_class and catalog.instance_class(
            s.provider, s.instance_class).family.lower() == "burstable":
        raise ScenarioError(f"Azure's built-in PgBouncer is not offered on Burstable SKUs "
                            f"({s.instance_class}); pick a General Purpose or Memory Optimized "
                            "SKU, or your own PgBouncer in transaction mode", key="proxy")
    if svc is not None:
        _validate_fleet(svc)
    for item in s.network:
        if item not in NETWORK_CUTOFFS:
            raise ScenarioError(f"unknown network element {item!r}; valid choices: "
                                f"{', '.join(NETWORK_CUTOFFS)}", key="network")
    validate_topology(s)


def _validate_fleet(svc: Service) -> None:
    """A service's fleet values that contradict each other."""
    if svc.max_app_instances is not None and svc.max_app_instances < svc.app_instances:
        raise ScenarioError(f"the autoscaling maximum ({svc.max_app_instances:,}) must be at "
                            f"least the app instances ({svc.app_instances:,})",
                            key="max_app_instances")
    load = svc.load
    if load is not None and load.p95_hold_ms is not None and load.p95_hold_ms < load.hold_ms:
        raise ScenarioError(f"p95 hold time ({load.p95_hold_ms:g} ms) must be at least "
                            f"the mean ({load.hold_ms:g} ms)", key="p95_hold_ms")


# At most this many services share one database (bounded work per scenario).
MAX_SERVICES = bounds.MAX_SERVICES


def validate_services(s: Scenario) -> None:
    """Refuse a service list poolwise cannot size: too many, bad or repeated names, unknown
    kinds or endpoints, a weight out of range (fleet values are checked per service).
    Errors are keyed by the service's own parameter (`s2_name`)."""
    from wizard.core.model import SERVICE_KINDS
    if not s.services:
        raise ScenarioError("a scenario needs at least one service", key="services")
    if len(s.services) > MAX_SERVICES:
        raise ScenarioError(f"at most {MAX_SERVICES} services share one database, got "
                            f"{len(s.services):,}", key="services")
    roles = ("primary", *(f"replica-{i}" for i in range(1, len(s.replicas) + 1)))
    names: set[str] = set()
    for i, svc in enumerate(s.services, start=1):
        if not SERVICE_NAME.fullmatch(svc.name):
            raise ScenarioError(f"service {i}: the name must be 1 to 40 lower-case letters, "
                                "digits, - or _, starting with a letter",
                                key=service_key(i, "name"))
        if svc.name in names:
            raise ScenarioError(f"service {i}: the name {svc.name!r} is used twice",
                                key=service_key(i, "name"))
        names.add(svc.name)
        if svc.kind not in SERVICE_KINDS:
            raise ScenarioError(f"unknown kind {svc.kind[:20]!r}; valid "
                                f"choices: {', '.join(SERVICE_KINDS)}",
                                key=service_key(i, "kind"), service=svc.name)
        if (svc.kind == "serverless") != (svc.serverless_concurrency is not None):
            raise ScenarioError("a serverless service needs its peak "
                                "concurrent invocations, and only a serverless one has them",
                                key=service_key(i, "serverless_concurrency"), service=svc.name)
        try:
            bounds.check("weight", svc.weight)
        except ScenarioError as exc:
            raise exc.at(svc.name, service_key(i, "weight")) from None
        for role in svc.endpoints or ():
            if role not in roles:
                raise ScenarioError(f"unknown endpoint {role[:20]!r}; "
                                    f"this database has {', '.join(roles)}",
                                    key=service_key(i, "endpoints"), service=svc.name)
        if svc.endpoints is not None and "primary" not in svc.endpoints:
            # Its module's write engine is the primary's; replicas are the read engines.
            raise ScenarioError("endpoints must include the primary "
                                "(list the replicas it reads from beside it), or leave it out "
                                "to connect to every endpoint",
                                key=service_key(i, "endpoints"), service=svc.name)


_SMALLER_REPLICA_FIX = {
    "self-hosted": "set max_connections to at least {mc} on the replica "
                   "(then give it as the replica's max_connections)",
    "aws-rds": "give the replica a parameter group with max_connections of at least {mc} "
               "(then give it as the replica's max_connections) or a class at least the "
               "primary's; with the default formula RDS leaves it in incompatible-parameters",
    "gcp-cloudsql": "set the replica's max_connections flag to at least {mc} (Cloud SQL refuses "
                    "to create the replica otherwise) or a machine type at least the primary's",
    "azure-flexible": "set max_connections to at least {mc} on the replica server or pick a SKU "
                      "at least the primary's",
}


def validate_topology(s: Scenario) -> None:
    """Refuse replicas a provider cannot run next to this primary (hot-standby rules)."""
    if not s.replicas:
        return
    rule, url = replica_rule(s.provider)
    if rule not in ("at least primary", "same as primary", "follows primary"):
        return
    try:
        primary = _limit(s, s.instance_class, s.max_connections, s.max_connections_source)
    except SizingError:
        return  # no primary limit at all: endpoint_specs says so with its fix
    mc, cls = primary[0], primary[4]
    for i, rep in enumerate(s.replicas, start=1):
        if (rule == "same as primary" and rep.instance_class and cls
                and rep.instance_class.strip().lower() != cls.lower()):
            raise ScenarioError(f"replica {i}: {s.provider} read replicas run on the primary's "
                                f"compute size ({cls}), not {rep.instance_class} ({url})",
                                key="replica_instance_class")
        rmc = _replica_limit(s, rep, primary)[0]
        if rmc >= mc:
            continue
        if rule == "follows primary":
            fix = ("restart the replica so it takes the primary's max_connections again, then "
                   "measure it")
        else:
            fix = _SMALLER_REPLICA_FIX.get(s.provider, "give the replica at least the primary's "
                                           "max_connections ({mc})").format(mc=mc)
        raise ScenarioError(f"replica {i}: max_connections {rmc:,} is below the primary's "
                            f"{mc:,}; a hot standby needs at least the primary's or it does not "
                            f"run ({url}). Fix: {fix}", key="replica_max_connections"
                            if rep.max_connections or not rep.instance_class
                            else "replica_instance_class")
