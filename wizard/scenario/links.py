"""A Scenario as flat string parameters: the one mapping behind CLI flags and share links.

Keys are the CLI flags without dashes (`--max-app-instances` <-> `max_app_instances`);
only values that differ from the defaults are written, so links stay short.
No field can hold a secret: a database URL or password is never part of a Scenario.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from wizard.core import bounds, measured
from wizard.core import params as table
from wizard.core.model import (
    FLEET_KEYS,
    SERVICE_FIELDS,
    SERVICE_NAME,
    CurrentPool,
    Load,
    ProxySettings,
    Replica,
    Reserves,
    Scenario,
    ScenarioError,
    Service,
    field_name,
    service_key,
    service_values,
)
from wizard.core.model import param_values as values
from wizard.core.params import MAX_LIST_ITEMS, MAX_NUMBER_CHARS, Param
from wizard.scenario.redact import credential_params

# SQLAlchemy's QueuePool default pool_size (create_async_engine without pool_size).
SQLALCHEMY_POOL_SIZE = 5


# The tables below are generated from the one parameter table (wizard.core.params): add a
# parameter there, not here.
PARAMS: tuple[Param, ...] = table.flags()
BY_KEY = {p.key: p for p in PARAMS}

# Parameters only a service has (with several services, `s2_name=worker` and so on).
SERVICE_PARAMS: tuple[Param, ...] = table.service_only()
SERVICE_BY_KEY = {p.key: p for p in SERVICE_PARAMS}
# A service may also take its own path.
SERVICE_KEYS: tuple[str, ...] = table.service_keys()
# A service's flat key: s<index>_<key>.
SERVICE_KEY = re.compile(r"s([1-9][0-9]?)_([a-z0-9_]{1,40})")
PARAMS_KIND = {p.key: p.kind for p in (*PARAMS, *SERVICE_PARAMS)}


# The longest value each parameter takes, in characters (every value is printable ASCII).
# Numbers and flags take MAX_NUMBER_CHARS; text and lists their own (the table's `chars`).
# Checked by from_flat before anything is parsed, so no link, flag, file or saved row can
# carry more.
MAX_TEXT_CHARS: dict[str, int] = table.text_chars()


def max_chars(key: str) -> int:
    """The documented maximum length of a parameter's value (`key` as PARAMS or
    SERVICE_PARAMS spell it)."""
    return MAX_TEXT_CHARS.get(key, MAX_NUMBER_CHARS)


# The largest flat scenario: every parameter at its maximum, with the most services.
MAX_FLAT_KEYS = len(PARAMS) + bounds.MAX_SERVICES * len(SERVICE_KEYS)
MAX_FLAT_CHARS = (sum(len(p.key) + max_chars(p.key) for p in PARAMS)
                  + bounds.MAX_SERVICES * sum(len(f"s{bounds.MAX_SERVICES}_{k}") + max_chars(k)
                                          for k in SERVICE_KEYS))


def check_text(params: Mapping[str, str]) -> None:
    """Refuse flat parameters that are too long as a whole or in any value, or that hold
    anything but printable ASCII (the value is never repeated: it may be huge)."""
    if len(params) > MAX_FLAT_KEYS:
        raise ScenarioError(f"the scenario has {len(params):,} parameters; at most "
                            f"{MAX_FLAT_KEYS:,}")
    for key, raw in params.items():
        m = SERVICE_KEY.fullmatch(key)
        own = m.group(2) if m and m.group(2) in SERVICE_KEYS else key
        raw = str(raw)
        if len(raw) > max_chars(own):
            raise ScenarioError(f"{field_name(own)} is {len(raw):,} characters long; at most "
                                f"{max_chars(own)}", key=key)
        if not (raw.isascii() and raw.isprintable()):
            raise ScenarioError(f"{field_name(own)} must be printable ASCII text (letters, "
                                "digits, punctuation; no control characters)", key=key)
        if PARAMS_KIND.get(own) == "list" and raw.count(",") >= MAX_LIST_ITEMS:
            raise ScenarioError(f"{field_name(own)} has more than {MAX_LIST_ITEMS} items",
                                key=key)
    total = sum(len(str(k)) + len(str(v)) for k, v in params.items())
    if total > MAX_FLAT_CHARS:
        raise ScenarioError(f"the scenario is {total:,} characters long; at most "
                            f"{MAX_FLAT_CHARS:,}")


def flat_text(value: Any) -> str:
    """A parameter's value as flat text (lists comma-joined, booleans 1/0)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_flat(s: Scenario) -> dict[str, str]:
    """Parameters that differ from a default Scenario (provider and class always included);
    with several services, each service's as `s<N>_<key>`."""
    mine, base = values(s), values(Scenario())
    out = {"provider": s.provider, "instance_class": s.instance_class or ""}
    for p in PARAMS:
        if s.named and p.key in FLEET_KEYS:
            continue
        if mine[p.key] != base[p.key] and mine[p.key] is not None:
            out[p.key] = flat_text(mine[p.key])
    for i, svc in enumerate(s.services if s.named else (), start=1):
        view = service_values(svc)
        out[service_key(i, "name")] = svc.name
        kind = "serverless" if svc.serverless_concurrency is not None else "web"
        if svc.kind != kind:
            out[service_key(i, "kind")] = svc.kind
        if svc.endpoints is not None:
            out[service_key(i, "endpoints")] = ",".join(svc.endpoints)
        if svc.proxy is not None:
            out[service_key(i, "proxy")] = svc.proxy
        if svc.weight != 1:
            out[service_key(i, "weight")] = flat_text(svc.weight)
        for key in FLEET_KEYS:
            if view[key] != base[key] and view[key] is not None:
                out[service_key(i, key)] = flat_text(view[key])
    return out


def _parse(p: Param, raw: str) -> Any:
    raw = raw.strip()
    try:
        if p.kind == "int":
            return int(raw)
        if p.kind == "float":
            return float(raw)
        if p.kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if p.kind == "list":
            return [v.strip() for v in raw.split(",")] if raw else []
        return raw
    except ValueError:
        kind = {"int": "a whole number", "float": "a number", "bool": "true or false"}[p.kind]
        raise ScenarioError(f"{field_name(p.key)} must be {kind}, got {raw[:40]!r}",
                            key=p.key) from None


def _nth(values: list[str] | None, i: int, cast: Callable[[str], Any], key: str) -> Any:
    if not values:
        return None
    v = values[min(i, len(values) - 1)]
    if not v:
        return None
    try:
        value = cast(v)
    except ValueError:
        raise ScenarioError(f"{field_name(key)}: item {v[:40]!r} is not valid",
                            key=key) from None
    bounds.check(key, value)
    return value


# Free-text parameters and the shape their values must have (they reach links and exports):
# the parameter table's `shape`.
_TEXT_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    key: (re.compile(pattern), what) for key, (pattern, what) in table.shapes().items()}


def from_flat(params: Mapping[str, str]) -> Scenario:
    """Build a Scenario from flat parameters; unknown keys and bad values raise ScenarioError.

    Keys `s<N>_<key>` describe service N (then the fleet keys belong to the services).
    A value that looks like a password, token or credentialed URL is refused without
    being repeated.
    """
    from wizard.core.bounds import MAX_SERVICES

    check_text(params)
    top: dict[str, str] = {}
    per: dict[int, dict[str, str]] = {}
    for key, raw in params.items():
        m = SERVICE_KEY.fullmatch(key)
        if m and m.group(2) in SERVICE_KEYS:
            if int(m.group(1)) > MAX_SERVICES:
                raise ScenarioError(f"at most {MAX_SERVICES} services share one database",
                                    key="services")
            per.setdefault(int(m.group(1)), {})[m.group(2)] = raw
        else:
            top[key] = raw
    if not per:
        return _from_flat(params)
    for key in top:
        if key in FLEET_KEYS:
            raise ScenarioError(f"{field_name(key)} is set per service when the scenario has "
                                "services", key=key)
    if sorted(per) != list(range(1, len(per) + 1)):
        missing = next(i for i in range(1, len(per) + 1) if i not in per)
        raise ScenarioError(f"service {missing} is missing: services are numbered from 1 "
                            "without gaps", key="services")
    base = _from_flat(top)
    return replace(base, services=tuple(_service(i, per[i], top) for i in sorted(per)))


def _service(i: int, raw: Mapping[str, str], top: Mapping[str, str]) -> Service:
    """Service i from its flat parameters (errors name the service and its key)."""
    name = raw.get("name", "").strip()
    label = f"service {i}" + (f" ({name})" if SERVICE_NAME.fullmatch(name) else "")
    try:
        fleet = {k: raw[k] for k in FLEET_KEYS if k in raw}
        path = {"proxy": raw["proxy"]} if "proxy" in raw else {}
        view = _from_flat({"provider": top.get("provider", "aws-rds"), **fleet, **path})
        extra = {k: _parse(SERVICE_BY_KEY[k], raw[k]) for k in SERVICE_BY_KEY if k in raw}
        bounds.check("weight", extra.get("weight"))
    except ScenarioError as exc:
        key = service_key(i, exc.key) if exc.key else None
        raise ScenarioError(f"{label}: {exc}", key=key) from None
    if not SERVICE_NAME.fullmatch(name):
        raise ScenarioError(f"{label}: the name must be 1 to 40 lower-case letters, digits, "
                            "- or _, starting with a letter", key=service_key(i, "name"))
    fleet = view.services[0]
    kind = extra.get("kind") or fleet.kind
    endpoints = extra.get("endpoints")
    return Service(name=name, kind=kind, endpoints=tuple(endpoints) if endpoints is not None
                   else None, proxy=view.proxy if "proxy" in raw else None,
                   weight=extra.get("weight", 1.0),
                   **{f: getattr(fleet, f) for f in SERVICE_FIELDS})


def _from_flat(params: Mapping[str, str]) -> Scenario:
    """A Scenario (no services) from flat parameters."""
    secret = credential_params(params)
    if secret:
        raise ScenarioError(f"{field_name(secret[0])} looks like it holds a password, "
                            "token or credentialed URL; scenarios never carry secrets",
                            key=secret[0])
    unknown = sorted(set(params) - set(BY_KEY))
    if unknown:
        shown = unknown[0] if len(unknown[0]) <= 40 else unknown[0][:40] + "..."
        raise ScenarioError(f"unknown parameter {shown!r}; valid: {', '.join(BY_KEY)}")
    for key, (shape, what) in _TEXT_SHAPES.items():
        if key in params and params[key] and not shape.fullmatch(params[key].strip()):
            raise ScenarioError(f"{field_name(key)} must be {what}", key=key)
    v = {k: _parse(BY_KEY[k], raw) for k, raw in params.items()}
    # Ranges before anything is built: a link may say replicas=20000000.
    for key, value in v.items():
        if BY_KEY[key].kind in ("int", "float"):
            bounds.check(key, value)
    base, one = Scenario(), Service()
    n_rep = v.get("replicas", 0)
    replicas = tuple(
        Replica(instance_class=_nth(v.get("replica_instance_class"), i, str,
                                    "replica_instance_class"),
                max_connections=_nth(v.get("replica_max_connections"), i, int,
                                     "replica_max_connections"),
                reader_instances=_nth(v.get("replica_readers"), i, int, "replica_readers"),
                region=_nth(v.get("replica_regions"), i, str, "replica_regions") or "")
        for i in range(n_rep))
    ps = ProxySettings(
        pgbouncer_version=v.get("pgbouncer_version"), pool_size=v.get("pgbouncer_pool_size"),
        reserve_pool=v.get("pgbouncer_reserve_pool", 0),
        max_client_conn=v.get("pgbouncer_max_client_conn"),
        max_db_connections=v.get("pgbouncer_max_db_connections") or None,
        max_prepared_statements=v.get("max_prepared_statements"),
        user_db_pairs=v.get("user_db_pairs", 1),
        rds_proxy_max_connections_percent=v.get("rds_proxy_max_connections_percent", 100))
    rs = Reserves(superuser=v.get("superuser_reserved"), provider=v.get("provider_reserved"),
                  admin=v.get("admin_reserve", base.reserves.admin),
                  migrations=v.get("migrations_reserve", base.reserves.migrations),
                  replication_slots=v.get("replication_reserve", 0))
    load = None
    if "rps" in v or "hold_ms" in v:
        if "rps" not in v or "hold_ms" not in v:
            raise ScenarioError("a load needs both requests per second and a hold time",
                                key="hold_ms" if "rps" in v else "rps")
        load = Load(v["rps"], v["hold_ms"], v.get("p95_hold_ms"))
    # a measured load (poolwise observe) sizes instead; rps x hold time stay as the guess
    load = measured.from_values(v, load, v.get("workers", one.workers),
                                v.get("serverless_concurrency") is not None)
    current = None
    if any(k.startswith("current_") for k in v):
        # max_overflow without pool_size runs with SQLAlchemy's default pool_size 5.
        pool_size = v.get("current_pool_size")
        if pool_size is None and v.get("current_max_overflow") is not None:
            pool_size = SQLALCHEMY_POOL_SIZE
        current = CurrentPool(pool_size, v.get("current_max_overflow"),
                              v.get("current_pool_recycle"),
                              v.get("current_poolclass") or "AsyncAdaptedQueuePool",
                              v.get("current_statement_cache_size"))
    cls = v.get("instance_class", base.instance_class) or None
    provider = v.get("provider", base.provider)
    if provider != base.provider and "instance_class" not in v:
        cls = None
    return replace(
        base, provider=provider, instance_class=cls,
        max_connections=v.get("max_connections"),
        max_connections_source=v.get("max_connections_source") or None,
        pg_version=v.get("pg_version", base.pg_version), min_acu=v.get("min_acu"),
        db_vcpus=v.get("db_vcpus"),
        pg_minor=v.get("pg_minor"), replicas=replicas, proxy=v.get("proxy", base.proxy),
        proxy_settings=ps, reserves=rs,
        network=tuple(v.get("network") or ()), iam_auth=v.get("iam_auth", False),
        pre_ping=v.get("pre_ping", True),
        # The flat keys describe one service (from_flat puts named ones in its place).
        services=(Service.flags(
            app_instances=v.get("app_instances", one.app_instances),
            max_app_instances=v.get("max_app_instances"),
            deploy_surge_percent=v.get("deploy_surge_percent", one.deploy_surge_percent),
            workers=v.get("workers", one.workers),
            engines_per_process=v.get("engines", one.engines_per_process),
            serverless_concurrency=v.get("serverless_concurrency"),
            app_vcpus=v.get("app_vcpus", one.app_vcpus),
            pool_split=v.get("split", one.pool_split), load=load, current=current),))


def to_query(s: Scenario) -> str:
    """The scenario as a URL query string (no leading '?')."""
    return urlencode(to_flat(s))


ENV_PUBLIC_URL = "POOLWISE_PUBLIC_URL"


def app_base(url: str | None) -> str | None:
    """`url` as the app's base address (http(s)://host[:port]/path/), or None when it is
    not one: another scheme, credentials, control characters or no host."""
    if not url or any(ord(c) < 33 or ord(c) == 127 for c in url.strip()):
        return None
    parts = urlsplit(url.strip())
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"{parts.scheme}://{parts.netloc}{path}"


def public_url(env: Mapping[str, str] | None = None) -> str | None:
    """The address the app is served at, from POOLWISE_PUBLIC_URL (None when unset)."""
    env = os.environ if env is None else env
    return app_base(env.get(ENV_PUBLIC_URL))


def share_url(s: Scenario, base: str | None = None) -> str:
    """A link that reproduces the scenario in the app: `base` (the request's address), else
    POOLWISE_PUBLIC_URL; with neither, only "?query" (no made-up host)."""
    root = app_base(base) or public_url() or ""
    return f"{root}?{to_query(s)}"


def cli_command(s: Scenario, verb: str = "recommend") -> str:
    """The `python -m wizard` command line that reproduces the scenario (with several
    services, from its scenario file)."""
    if s.named:
        return f"python -m wizard {verb} --scenario SCENARIO.toml"
    parts = ["python -m wizard", verb]
    for key, value in to_flat(s).items():
        if not value:
            continue
        parts.append(f"--{key.replace('_', '-')}")
        parts.append(shlex.quote(value))
    return " ".join(parts)
