"""Wizard state: widget values in st.session_state <-> flat share parameters <-> Scenario.

Widgets are keyed by the `wizard.scenario.links.PARAMS` keys where one widget holds one
parameter; the few helpers (catalog vs measured, load on/off, one widget per replica)
have their own keys. `flat_from_values` and `values_from_scenario` are pure so the
round trip is testable without Streamlit.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from typing import Any

import streamlit as st

from wizard.core import catalog, limits, model, plan
from wizard.core import params as table
from wizard.core.model import (
    PROXIES,
    Load,
    Recommendation,
    Scenario,
    ScenarioError,
    Service,
    SizingError,
    measured_values,
)
from wizard.scenario import links
from wizard.ui.labels import HELP, STEP_NAMES, app_words
from wizard.ui.text import md_escape

MAX_REPLICAS = 5

DEFAULT_CLASS = {
    "aws-rds": "db.r6g.large",
    "aws-aurora": "db.r6g.large",
    "gcp-cloudsql": "db-custom-2-7680",
    "azure-flexible": "D2ds_v5",
    "supabase": "Small",
    "neon": "1cu",
    "self-hosted": "default",
}

# Example load shown when the user switches load on (not part of the scenario until then).
EXAMPLE_LOAD = {"rps": 50.0, "hold_ms": 20.0}
# A measured load's parameters (poolwise observe): state only, no widget.
MEASURED_KEYS = tuple(p.key for p in table.TABLE if p.key.startswith("measured_"))

PROXY_PROVIDERS = limits.PROXY_PROVIDERS  # the core's own table of proxy/provider pairs

NOTICE_KEY = "_notice"
FLASH_KEY = "_flash"  # one-run success message shown above the steps
STEP_KEY = "step"


def go(step: str, field: str | None = None) -> None:
    """Button callback: switch the wizard to another step (and, with `field`, scroll to
    that widget and highlight it once: page.focus)."""
    st.session_state[STEP_KEY] = step
    if field:
        st.session_state[FOCUS_KEY] = field


FOCUS_KEY = "_focus"  # a widget key to scroll to and highlight on the next run


def class_names(provider: str) -> list[str]:
    return [c.instance_class for c in catalog.catalog(provider)]


def default_class(provider: str) -> str | None:
    names = class_names(provider)
    want = DEFAULT_CLASS.get(provider)
    if want in names:
        return want
    return names[0] if names else None


def proxies_for(provider: str) -> list[str]:
    """Proxies that run with this provider, in the core's order."""
    return [p for p in PROXIES if provider in PROXY_PROVIDERS.get(p, (provider,))]


def values_from_scenario(s: Scenario) -> dict[str, Any]:
    """Every widget value for a scenario."""
    ps, rs = s.proxy_settings, s.reserves
    # The form's own fleet fields are the flags form's one service (named services have
    # their rows below; the form's fields then keep a Service's defaults).
    one = s.services[0] if not s.named else Service()
    v: dict[str, Any] = {
        "provider": s.provider,
        "mc_mode": "measured" if s.max_connections is not None else "catalog",
        "instance_class": s.instance_class,
        "max_connections": s.max_connections,
        "max_connections_source": s.max_connections_source,
        "pg_version": s.pg_version,
        "min_acu": s.min_acu,
        "pg_minor": s.pg_minor,
        "db_vcpus": s.db_vcpus,
        "proxy": s.proxy,
        "pgbouncer_version": ps.pgbouncer_version or "",
        "pgbouncer_pool_size": ps.pool_size,
        "pgbouncer_reserve_pool": ps.reserve_pool,
        "pgbouncer_max_client_conn": ps.max_client_conn,
        "pgbouncer_max_db_connections": ps.max_db_connections,
        "max_prepared_statements": ps.max_prepared_statements,
        "user_db_pairs": ps.user_db_pairs,
        "rds_proxy_max_connections_percent": ps.rds_proxy_max_connections_percent,
        "network": list(s.network),
        "iam_auth": s.iam_auth,
        "pre_ping": s.pre_ping,
        "app_instances": one.app_instances,
        "max_app_instances": one.max_app_instances,
        "deploy_surge_percent": one.deploy_surge_percent,
        "workers": one.workers,
        "engines": one.engines_per_process,
        "serverless_on": one.serverless_concurrency is not None,
        "serverless_concurrency": one.serverless_concurrency or 100,
        "app_vcpus": one.app_vcpus,
        "replicas": len(s.replicas),
        "superuser_reserved": rs.superuser,
        "provider_reserved": rs.provider,
        "admin_reserve": rs.admin,
        "migrations_reserve": rs.migrations,
        "replication_reserve": rs.replication_slots,
        "split": one.pool_split,
        **_load_values(one.load),
        "current_on": one.current is not None,
        "current_pool_size": one.current.pool_size if one.current else None,
        "current_max_overflow": one.current.max_overflow if one.current else None,
        "current_pool_recycle": one.current.pool_recycle if one.current else None,
        "current_poolclass": one.current.poolclass if one.current else "AsyncAdaptedQueuePool",
        "current_statement_cache_size": one.current.statement_cache_size if one.current else None,
    }
    for i in range(MAX_REPLICAS):
        rep = s.replicas[i] if i < len(s.replicas) else None
        v[f"replica_class_{i}"] = (rep.instance_class if rep else None) or ""
        v[f"replica_mc_{i}"] = rep.max_connections if rep else None
        v[f"replica_readers_{i}"] = rep.reader_instances if rep else None
        v[f"replica_region_{i}"] = rep.region if rep else ""
    for i, svc in enumerate(s.services if s.named else (), start=1):
        v.update({links.service_key(i, k): x for k, x in service_values(svc).items()})
    return v


# ---- Services: each one's values live in session state under its share key (s2_workers),
# so the flat parameters, links and saved scenarios carry every service as they are.

SERVICE_KEY = re.compile(r"s([1-9][0-9]?)_([a-z0-9_]{1,40})")
# At most this many rows are read back from session state
# (one past the maximum: a 33rd service is read back, and refused by the core).
MAX_SERVICE_ROWS = limits.MAX_SERVICES + 1

# Per-service defaults (the parameter table's), used when a row leaves a value empty.
SERVICE_DEFAULTS = table.defaults("service")


def _load_values(load: Load | None) -> dict[str, Any]:
    """The one-fleet form's load widgets: rps x hold time as given (the example when none),
    and a measured load beside them (poolwise observe; no widget, kept in the state)."""
    v = measured_values(load)
    given = load.given if load is not None else None
    return {"load_on": given is not None,
            "rps": v["rps"] if given else EXAMPLE_LOAD["rps"],
            "hold_ms": v["hold_ms"] if given else EXAMPLE_LOAD["hold_ms"], **{
                k: x for k, x in v.items() if k not in ("rps", "hold_ms")}}


def service_values(svc: Service) -> dict[str, Any]:
    """One service's values, keyed as links.SERVICE_KEYS (None where unset): its fleet
    parameters as the core maps them (model.service_values), then its name and path."""
    return {"name": svc.name, "kind": svc.kind, **model.service_values(svc),
            "endpoints": list(svc.endpoints) if svc.endpoints is not None else None,
            "proxy": svc.proxy, "weight": svc.weight}


def is_param(key: str) -> bool:
    """Whether a link parameter is poolwise's (a scenario key or a service's s<N>_ key)."""
    m = SERVICE_KEY.fullmatch(key)
    return key in links.BY_KEY or bool(m and m.group(2) in links.SERVICE_KEYS)


def service_count(values: Mapping[str, Any]) -> int:
    """How many services the values hold (0: the one-fleet form)."""
    n = 0
    while n < MAX_SERVICE_ROWS and links.service_key(n + 1, "name") in values:
        n += 1
    return n


def room_for_service(values: Mapping[str, Any]) -> bool:
    """Whether one more service may be added (the core refuses more than MAX_SERVICES)."""
    return service_count(values) < limits.MAX_SERVICES


def service_rows(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each service's values, in order, keyed as links.SERVICE_KEYS."""
    return [{k: values.get(links.service_key(i, k)) for k in links.SERVICE_KEYS}
            for i in range(1, service_count(values) + 1)]


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _service_flat(i: int, row: Mapping[str, Any]) -> dict[str, str]:
    """Service i's share parameters (only what differs from a Service's defaults; the
    name always, the kind where it is not the one its fleet implies)."""
    out = {links.service_key(i, "name"): "" if _blank(row.get("name")) else str(row["name"])}
    serverless = not _blank(row.get("serverless_concurrency"))
    kind = row.get("kind")
    if not _blank(kind) and kind != ("serverless" if serverless else "web"):
        out[links.service_key(i, "kind")] = str(kind)
    for key in links.SERVICE_KEYS:
        if key in ("name", "kind"):
            continue
        value = row.get(key)
        if _blank(value) or value == SERVICE_DEFAULTS.get(key):
            continue
        if key == "current_poolclass" and not any(
                not _blank(row.get(k)) for k in ("current_pool_size", "current_max_overflow",
                                                 "current_pool_recycle")) \
                and value == "AsyncAdaptedQueuePool":
            continue
        if isinstance(value, list | tuple):
            out[links.service_key(i, key)] = ",".join(str(x) for x in value)
        else:
            out[links.service_key(i, key)] = _txt(value)
    return out


def default_values() -> dict[str, Any]:
    return values_from_scenario(Scenario())


WIDGET_KEYS: tuple[str, ...] = tuple(default_values())


def _txt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _count(value: Any) -> int | None:
    """A widget's whole number (None for NaN, infinity or a fraction)."""
    if value is None or value == "":
        return 0
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n == value else None


def flat_from_values(v: Mapping[str, Any]) -> dict[str, str]:
    """The flat share parameters the widget values describe (always with provider and,
    when set, instance_class so a link never depends on the default class)."""
    base = default_values()
    out: dict[str, str] = {"provider": v["provider"]}
    if v.get("instance_class"):
        out["instance_class"] = v["instance_class"]
    else:
        out["instance_class"] = ""

    def put(key: str, value: Any, default: Any = None) -> None:
        if value is not None and value != "" and value != default:
            out[key] = _txt(value)

    if v["mc_mode"] == "measured":
        put("max_connections", v.get("max_connections"))
        if "max_connections" in out:
            put("max_connections_source", v.get("max_connections_source"))
    put("pg_version", v["pg_version"], base["pg_version"])
    put("min_acu", v.get("min_acu"))
    put("db_vcpus", v.get("db_vcpus"))
    if v["provider"] == "aws-rds":  # only RDS reserves by minor version
        put("pg_minor", v.get("pg_minor"))
    put("proxy", v["proxy"], "none")
    if v["proxy"].startswith("pgbouncer"):
        put("pgbouncer_version", v.get("pgbouncer_version"))
        put("pgbouncer_reserve_pool", v.get("pgbouncer_reserve_pool"), 0)
        put("max_prepared_statements", v.get("max_prepared_statements"))
        put("pgbouncer_max_db_connections", v.get("pgbouncer_max_db_connections"))
    if v["proxy"] not in ("none", "rds-proxy", "cloudsql-auth-proxy", "cloudsql-connector"):
        put("pgbouncer_max_client_conn", v.get("pgbouncer_max_client_conn"))
    if v["proxy"] in ("pgbouncer-transaction", "pgbouncer-session", "azure-pgbouncer",
                      "supavisor-transaction", "supavisor-session"):
        put("pgbouncer_pool_size", v.get("pgbouncer_pool_size"))
    if v["proxy"] not in ("none", "rds-proxy", "cloudsql-auth-proxy", "cloudsql-connector"):
        put("user_db_pairs", v.get("user_db_pairs"), 1)
    if v["proxy"] == "rds-proxy":
        put("rds_proxy_max_connections_percent", v.get("rds_proxy_max_connections_percent"), 100)
    if v.get("network"):
        out["network"] = ",".join(v["network"])
    put("iam_auth", v.get("iam_auth"), False)
    put("pre_ping", v.get("pre_ping"), True)
    rows = service_rows(v)
    if rows:  # several services: the fleet, load and current pool are set per service
        _database_flat(v, base, put, out)
        for i, row in enumerate(rows, start=1):
            out.update(_service_flat(i, row))
        return out
    put("app_instances", v["app_instances"], base["app_instances"])
    put("max_app_instances", v.get("max_app_instances"))
    put("deploy_surge_percent", v["deploy_surge_percent"], base["deploy_surge_percent"])
    put("workers", v["workers"], 1)
    put("engines", v["engines"], 1)
    if v.get("serverless_on"):
        put("serverless_concurrency", v.get("serverless_concurrency"))
    put("app_vcpus", v["app_vcpus"], base["app_vcpus"])
    _database_flat(v, base, put, out)
    put("split", v["split"], base["split"])
    if v.get("load_on"):
        out["rps"] = _txt(v["rps"])
        out["hold_ms"] = _txt(v["hold_ms"])
        put("p95_hold_ms", v.get("p95_hold_ms"))
    for key in MEASURED_KEYS:  # a measured load, applied from the live step's observe
        put(key, v.get(key))
    if v.get("current_on"):
        put("current_pool_size", v.get("current_pool_size"))
        put("current_max_overflow", v.get("current_max_overflow"))
        put("current_pool_recycle", v.get("current_pool_recycle"))
        put("current_poolclass", v.get("current_poolclass"), "AsyncAdaptedQueuePool")
        put("current_statement_cache_size", v.get("current_statement_cache_size"))
        if not any(k.startswith("current_") for k in out):
            out["current_poolclass"] = v.get("current_poolclass") or "AsyncAdaptedQueuePool"
    return out


def _database_flat(v: Mapping[str, Any], base: Mapping[str, Any], put, out: dict) -> None:
    """The replicas and reserves: the database's, whatever the services."""
    n = _count(v.get("replicas"))
    if n is None:  # not a count the core could accept: pass it on for the core to refuse
        out["replicas"] = _txt(v.get("replicas"))
    elif n > MAX_REPLICAS:
        out["replicas"] = str(n)
    elif n:
        out["replicas"] = str(n)
        for key, prefix in (("replica_instance_class", "replica_class_"),
                            ("replica_max_connections", "replica_mc_"),
                            ("replica_readers", "replica_readers_"),
                            ("replica_regions", "replica_region_")):
            items = [v.get(f"{prefix}{i}") for i in range(n)]
            if any(x not in (None, "") for x in items):
                out[key] = ",".join("" if x in (None, "") else _txt(x) for x in items)
    put("superuser_reserved", v.get("superuser_reserved"))
    put("provider_reserved", v.get("provider_reserved"))
    put("admin_reserve", v["admin_reserve"], base["admin_reserve"])
    put("migrations_reserve", v["migrations_reserve"], base["migrations_reserve"])
    put("replication_reserve", v["replication_reserve"], 0)


def guard(flat: Mapping[str, str]) -> None:
    """Refuse a replica count above what the app offers before anything is built for it."""
    raw = flat.get("replicas", "0")
    try:
        n = int(raw)
    except ValueError:
        return  # the core words a malformed number
    if n > MAX_REPLICAS:
        raise ScenarioError(f"at most {MAX_REPLICAS} replicas, got {n:,}", key="replicas")


def validate_link(flat: Mapping[str, str]) -> Scenario:
    """A Scenario from link parameters, or ScenarioError if the link is tampered/outdated:
    unknown keys, bad values, invalid proxy/provider pairs, unknown instance classes.
    Every error the core raises here carries the key of the parameter at fault."""
    guard(flat)
    s = links.from_flat(flat)
    try:
        catalog.check_provider(s.provider)
    except ScenarioError as exc:
        raise ScenarioError(str(exc), key="provider") from None
    limits.validate(s)
    if s.named:  # each service's own checks, keyed by its parameter (s2_workers)
        plan.validate(s)
    for key, cls in [("instance_class", s.instance_class)] + [
            ("replica_instance_class", r.instance_class) for r in s.replicas]:
        if cls:
            try:
                catalog.instance_class(s.provider, cls)
            except ScenarioError as exc:
                raise ScenarioError(str(exc), key=key) from None
    if s.replicas and len(s.replicas) > MAX_REPLICAS:
        raise ScenarioError(f"at most {MAX_REPLICAS} replicas, got {len(s.replicas)}",
                            key="replicas")
    return s


def scenario_values(flat: Mapping[str, str]) -> dict[str, Any]:
    """Widget values for link parameters (ScenarioError if the link is not valid)."""
    s = validate_link(flat)
    v = values_from_scenario(s)
    if s.instance_class is None and s.max_connections is None:
        v["instance_class"] = default_class(s.provider)
    return v


def apply_values(values: Mapping[str, Any]) -> None:
    """Put widget values into session state (before the widgets are drawn); the services
    are replaced as a whole."""
    clear_services()
    for key, value in values.items():
        st.session_state[key] = value


def clear_services() -> None:
    """Drop every service's values: back to the one-fleet form."""
    for key in [k for k in st.session_state if SERVICE_KEY.fullmatch(str(k))]:
        del st.session_state[key]


def culprit(flat: Mapping[str, str]) -> tuple[str | None, str]:
    """(parameter, message) of the first value the core refuses in these parameters, or
    (None, "") when they are valid. One validation: the core keys its error by the
    parameter at fault (None when it cannot name one, e.g. a link that is too long)."""
    try:
        validate_link(flat)
        return None, ""
    except ScenarioError as exc:
        return _present(exc.key, flat), str(exc)


# A parameter the core blames that the link leaves at its default: the field that shows it.
_NEAREST = {"replica_max_connections": ("replica_instance_class", "replicas"),
            "replica_instance_class": ("replica_max_connections", "replicas"),
            "replica_readers": ("replicas",), "replica_regions": ("replicas",),
            "max_app_instances": ("app_instances",), "p95_hold_ms": ("hold_ms",),
            "max_connections_source": ("max_connections",)}


def _present(key: str | None, flat: Mapping[str, str]) -> str | None:
    if key is None or key in flat or key == "services":  # "services": the services table
        return key
    return next((k for k in _NEAREST.get(key, ()) if k in flat), None)


# A link refused for a value its field cannot hold (a choice the field does not offer, a
# value the core cannot parse) loses that value; any other refusal (values that do not go
# together) keeps every value as the link says, with the error beside the field at fault.
MAX_DROPPED = 8


def _field_holds(key: str, flat: Mapping[str, str]) -> bool:
    """Whether the form can show this link value as it is (a choice it offers)."""
    from wizard.core.model import NETWORK_CUTOFFS

    provider = flat.get("provider", "aws-rds")
    value = flat.get(key, "")
    if key == "provider":
        return False
    if key == "replicas":  # the form draws at most MAX_REPLICAS replica boxes
        n = _count(value.strip() or 0) if value.strip().isdigit() else None
        return n is not None and n <= MAX_REPLICAS
    if key == "proxy":
        return value in proxies_for(provider)
    if key == "instance_class":
        return value in class_names(provider)
    if key == "replica_instance_class":
        names = class_names(provider)
        return all(not v.strip() or v.strip() in names for v in value.split(","))
    if key == "network":
        return all(v.strip() in NETWORK_CUTOFFS for v in value.split(",") if v.strip())
    m = SERVICE_KEY.fullmatch(key)
    if m and m.group(2) == "proxy":
        return value in proxies_for(provider)
    if m and m.group(2) == "kind":
        from wizard.core.model import SERVICE_KINDS
        return value in SERVICE_KINDS
    return key in flat


def link_values(params: Mapping[str, str]) -> tuple[dict[str, Any], list[str], str]:
    """Widget values for a link, notes in the app's words, and the core's refusal of the
    link's scenario when its values are kept as they are ("" when none). Parameters poolwise does
    not know (utm_*, fbclid, gclid, ...) are ignored. A value the core cannot parse, or a
    choice its field does not offer, is dropped with its message (the rest is kept); any
    other refusal keeps the link's own values, and the field at fault shows the error.
    At most MAX_DROPPED + 1 validations, whatever the link's length."""
    flat = {k: v for k, v in params.items() if is_param(k)}
    notes: list[str] = []
    message = ""
    for _ in range(MAX_DROPPED):
        try:
            s = links.from_flat(flat)
        except ScenarioError as exc:
            message = str(exc)
            if exc.key not in flat or exc.key == "provider":
                break
            notes.append(app_words(message))
            del flat[exc.key]
            continue
        key, message = culprit(flat)
        if not message:
            return scenario_values(flat), notes, ""
        if key is not None and _field_holds(key, flat):
            # As the link says: flag() shows the error beside the field at fault.
            return _values_of(s), notes, app_words(message)
        if key not in flat or key == "provider":
            break
        notes.append(app_words(message))
        del flat[key]
    else:
        message = f"more than {MAX_DROPPED} values were refused"
    notes.append(app_words(message) + "; showing the defaults instead")
    return default_values(), notes, ""


def _values_of(s: Scenario) -> dict[str, Any]:
    """Widget values for a parsed scenario the core refuses as a whole."""
    v = values_from_scenario(s)
    if s.instance_class is None and s.max_connections is None:
        v["instance_class"] = default_class(s.provider)
    return v


# The step whose form shows a widget (the flag() names a widget), for a refused link: each
# parameter's step in the parameter table, and the services table on step 3.
_STEP_OF = {step: table.on_step(step) + (("services",) if step == "topology" else ())
            for step in table.STEPS}


def step_of(widget: str | None) -> str | None:
    """The wizard step that shows `widget` (None when unknown)."""
    if not widget:
        return None
    if widget.startswith("replica-") or SERVICE_KEY.fullmatch(widget):
        return "topology"  # the replica boxes and the services table
    return next((step for step, keys in _STEP_OF.items() if widget in keys), None)


def init_session() -> None:
    """First run of a session: take the scenario from the link, or defaults with a notice."""
    if "_initialised" in st.session_state:
        return
    st.session_state["_initialised"] = True
    params = {k: st.query_params.get(k) for k in st.query_params.keys()}
    values, notes, refused = link_values(params)
    notice = []
    if notes:
        notice.append("Part of this link could not be read (" + "; ".join(notes) + "). The "
                      "rest of the scenario is shown.")
    step = None
    if refused:
        where, _ = _problem(flat_key(flat_from_values(values)))
        step = step_of(where)
        notice.append("This link's values are shown as they are, but they do not go "
                      f"together: {refused}. The field at fault is marked"
                      + (f" in {STEP_NAMES[step]}." if step else "."))
    if notice:
        st.session_state[NOTICE_KEY] = " ".join(notice)
    if step:
        st.session_state[STEP_KEY] = step  # open where the error is shown
    apply_values(values)


def current_values() -> dict[str, Any]:
    base = default_values()
    v = {k: st.session_state.get(k, base[k]) for k in WIDGET_KEYS}
    for i in range(1, service_count(st.session_state) + 1):
        for key in links.SERVICE_KEYS:
            name = links.service_key(i, key)
            v[name] = st.session_state.get(name)
    return v


def current_flat() -> dict[str, str]:
    return flat_from_values(current_values())


def flat_key(flat: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(flat.items()))


# The process-wide caches below hold at most CACHE_ENTRIES entries each, and only keys
# (flat parameters) of at most links.MAX_FLAT_CHARS characters: a longer set of values (a
# huge typed value the core refuses anyway) is computed uncached, so they hold at most
# CACHE_ENTRIES x MAX_FLAT_CHARS characters of keys however long the values visitors type.
CACHE_ENTRIES = 256


def key_chars(key: tuple[tuple[str, str], ...]) -> int:
    return sum(len(k) + len(str(v)) for k, v in key)


def cacheable(key: tuple[tuple[str, str], ...]) -> bool:
    return len(key) <= links.MAX_FLAT_KEYS and key_chars(key) <= links.MAX_FLAT_CHARS


def _recommend(key: tuple[tuple[str, str], ...]) -> tuple[Recommendation | None, str, str]:
    """(rec, error, fix) for flat parameters; cached when the key is small enough."""
    return _recommend_cached(key) if cacheable(key) else _recommend_now(key)


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner=False)
def _recommend_cached(key: tuple[tuple[str, str], ...]
                      ) -> tuple[Recommendation | None, str, str]:
    return _recommend_now(key)  # cached: Recommendation is immutable


def _recommend_now(key: tuple[tuple[str, str], ...]) -> tuple[Recommendation | None, str, str]:
    try:
        guard(dict(key))
        s = links.from_flat(dict(key))
        return plan.recommend(s), "", ""
    except SizingError as exc:
        return None, exc.said, exc.fix
    except (ScenarioError, ValueError) as exc:
        return None, app_words(str(exc)), ("change the value the message names, in the step it "
                                "belongs to; each field's (?) help says how to find it.")


def scenario_or_none(flat: Mapping[str, str]) -> Scenario | None:
    """The Scenario of valid flat parameters (None if they do not parse)."""
    try:
        guard(flat)
        return links.from_flat(dict(flat))
    except (ScenarioError, ValueError):
        return None


def recommendation(flat: Mapping[str, str]) -> tuple[Recommendation | None, str, str]:
    return _recommend(flat_key(flat))


def sync_query_params(flat: Mapping[str, str]) -> None:
    """Keep the URL equal to the scenario so the address bar is always a shareable link."""
    current = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if current != dict(flat):
        st.query_params.from_dict(dict(flat))


def forget_measured_source() -> None:
    """A max_connections typed by hand is no longer the one the live check measured."""
    st.session_state["max_connections_source"] = None


def on_provider_change() -> None:
    """A new provider gets a valid class of its own and a proxy it supports."""
    provider = st.session_state["provider"]
    st.session_state["instance_class"] = default_class(provider)
    for i in range(MAX_REPLICAS):
        st.session_state[f"replica_class_{i}"] = ""
    if st.session_state.get("proxy") not in proxies_for(provider):
        st.session_state["proxy"] = "none"
    if not class_names(provider):
        st.session_state["mc_mode"] = "measured"


def load_flat(flat: Mapping[str, str]) -> None:
    """Replace the whole wizard state by a saved scenario (raises ScenarioError)."""
    apply_values(scenario_values(flat))


def reset_defaults() -> None:
    """Back to a fresh start: default values, step 1."""
    apply_values(default_values())
    st.session_state[STEP_KEY] = "database"


# Widgets that show a parameter's problem when the parameter has no widget of its own.
FLAG_AT = {"replica_instance_class": "replicas", "replica_max_connections": "replicas",
           "replica_readers": "replicas", "replica_regions": "replicas",
           "max_connections_source": "max_connections"}


def _problem(key: tuple[tuple[str, str], ...]) -> tuple[str | None, str]:
    """(widget, message) of the value the core refuses (cached when the key is small)."""
    return _problem_cached(key) if cacheable(key) else _problem_now(key)


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner=False)
def _problem_cached(key: tuple[tuple[str, str], ...]) -> tuple[str | None, str]:
    return _problem_now(key)


def _problem_now(key: tuple[tuple[str, str], ...]) -> tuple[str | None, str]:
    # The core keys its refusal by the parameter at fault (a replica's max_connections below
    # the primary's is the replica's): one validation, in culprit().
    param, message = culprit(dict(key))
    return FLAG_AT.get(param, param), app_words(message)


def flag(widget: str) -> None:
    """Under a widget: the core's message when this widget holds the refused value, so an
    out-of-range number is flagged where it was typed instead of silently replaced."""
    where, message = _problem(flat_key(current_flat()))
    if where == widget and message:
        st.error(md_escape(message), icon=":material/error:")


# Whole numbers typed as floats: the browser reads "1e9" whole (an integer field reads 1),
# and no min/max: a value out of range is kept and flagged by the core's message instead.
WHOLE = {"step": 1.0, "format": "%.0f", "persist_state": "session"}


def number_field(where, label: str, key: str, **kw) -> None:
    """A number input for one share parameter (in `where`, a column or container, else
    here), with the core's message under it when the core refuses its value."""
    with where if where is not None else contextlib.nullcontext():
        st.number_input(label, key=key, help=HELP.get(key), **{**WHOLE, **kw})
        flag(key)
