"""The engine module (db.py): the engines a service needs, its connect arguments and the
header that says how each setting was computed. Templates live in templates/."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from pathlib import Path
from string import Template
from typing import Any

import wizard
from wizard.core import catalog
from wizard.core.model import (
    EngineSettings,
    Recommendation,
    Scenario,
    ScenarioError,
    ServiceResult,
)
from wizard.export.common import (
    SCENARIO_FILE,
    SELF_MANAGED_PGBOUNCER,
    app_link,
    fleet_text,
    installed_command,
    named_export,
    refuse_credentials,
)
from wizard.scenario import links

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Port the application connects to by default, per proxy (non-secret; DB_PORT overrides).
_PROXY_PORTS = {"pgbouncer-transaction": 6432, "pgbouncer-session": 6432,
                "azure-pgbouncer": 6432, "supavisor-transaction": 6543}
REQUIRES = "sqlalchemy[asyncio]>=2.0.21, asyncpg>=0.31"


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def _comment(text: str, indent: int, width: int = 96) -> list[str]:
    """`# text` wrapped to fit the line length of the generated file."""
    pad = " " * indent
    return [pad + "# " + line for line in textwrap.wrap(text, width - indent - 2)] or [pad + "#"]


def _hcomment(text: str, width: int = 96) -> list[str]:
    """A header item: `#   text`, continued lines indented two more."""
    return textwrap.wrap(text, width, initial_indent="#   ", subsequent_indent="#     ",
                         break_on_hyphens=False)


def _lit(value: Any) -> str:
    """A Python literal with double-quoted strings (the style ruff format would give)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _replica_roles(rec: Recommendation) -> list[str]:
    return [e.role for e in rec.endpoints if e.role != "primary"]


def _env_names(role: str) -> tuple[str, str]:
    """(URL variable, parts prefix) of an endpoint: DATABASE_URL / DB_ for the primary."""
    if role == "primary":
        return "DATABASE_URL", "DB_"
    n = role.split("-")[1]
    return f"DATABASE_REPLICA_{n}_URL", f"DB_REPLICA_{n}_"


def _auth_kind(rec: Recommendation) -> str | None:
    s = rec.scenario
    if not s.iam_auth:
        return None
    if s.provider in ("aws-rds", "aws-aurora"):
        return "aws"
    if s.provider == "azure-flexible":
        return "azure"
    return None  # Cloud SQL: the connector's enable_iam_auth or the Auth Proxy's flag


def _ssl_default(rec: Recommendation) -> tuple[str | None, str]:
    ssl = rec.engine("primary").connect_args.get("ssl")
    s = rec.scenario
    if s.proxy == "cloudsql-connector":
        return None, "TLS: the Cloud SQL connector encrypts and authorises the connection itself"
    if s.proxy == "cloudsql-auth-proxy":
        return None, ("TLS: the Cloud SQL Auth Proxy encrypts the hop to Cloud SQL; the local "
                      "hop is loopback or a Unix socket")
    if ssl:
        return str(ssl), (f"TLS {ssl} for {s.provider}" + (f" via {s.proxy}" if s.proxy != "none"
                          else "") + "; set DATABASE_SSL=verify-full with the provider's CA "
                          "in production, disable only for a local test server")
    return None, "TLS: asyncpg's default (prefer) unless DATABASE_SSL says otherwise"


def _fmt_engine(g: EngineSettings) -> list[str]:
    lines = [f"    {_lit(g.endpoint)}: {{"]
    r = g.reasons
    if g.poolclass == "NullPool":
        lines += _comment(f"poolclass: {r.get('poolclass', 'NullPool')}", 8)
        lines.append('        "poolclass": NullPool,')
        lines.append("    },")
        return lines
    lines += _comment(f"poolclass: {r.get('poolclass', g.poolclass)}", 8)
    values: list[tuple[str, Any]] = [
        ("pool_size", g.pool_size), ("max_overflow", g.max_overflow),
        ("pool_timeout", g.pool_timeout), ("pool_recycle", g.pool_recycle),
        ("pool_pre_ping", g.pool_pre_ping), ("pool_use_lifo", g.pool_use_lifo)]
    for key, value in values:
        if key in r:
            lines += _comment(f"{key}: {r[key]}", 8)
        lines.append(f"        {_lit(key)}: {_lit(value)},")
    lines.append("    },")
    return lines


def _fmt_connect_args(g: EngineSettings) -> list[str]:
    lines = [f"    {_lit(g.endpoint)}: {{"]
    for step in g.steps.get("connect_args", ()):
        if step.value != "ssl":  # TLS is set (and said) by the module's own code
            lines += _comment(step.text, 8)
    for key, value in g.connect_args.items():
        if key != "ssl":
            lines.append(f"        {_lit(key)}: {_lit(value)},")
    lines.append("    },")
    return lines


def _dict_literal(body: list[str]) -> str:
    return "\n".join(["{", *body, "}"])


def _proxy_line(rec: Recommendation) -> str:
    s = rec.scenario
    ps = s.proxy_settings
    out = s.proxy
    if s.proxy in SELF_MANAGED_PGBOUNCER:
        mps = ps.max_prepared_statements
        out += (f" (PgBouncer {ps.pgbouncer_version or 'version not given'}, "
                f"max_prepared_statements {mps if mps is not None else 'default'})")
    return out


def _cli_lines(command: str) -> list[str]:
    """The CLI command as shell-continued comment lines (flags kept with their values)."""
    words = command.split(" ")
    tokens: list[str] = []
    i = 0
    while i < len(words):
        if words[i].startswith("--") and i + 1 < len(words) and not words[i + 1].startswith("--"):
            tokens.append(f"{words[i]} {words[i + 1]}")
            i += 2
        else:
            tokens.append(words[i])
            i += 1
    lines: list[str] = []
    cur = "#  "
    for tok in tokens:
        if len(cur) + 1 + len(tok) > 94 and cur.strip("# "):
            lines.append(cur + " \\")
            cur = "#    "
        cur += " " + tok
    lines.append(cur)
    return lines


def module_file_name(service: str | None) -> str:
    """The exported module's file name: db.py (the flags form), or db_<service>.py for a
    named service (`named_service`)."""
    return "db.py" if service is None else f"db_{service.replace('-', '_')}.py"


def _usage_example(estate: Scenario | None, service: str | None) -> str:
    """The module docstring's example: a queue worker or job for a worker or cron service,
    FastAPI's lifespan for the rest; the import is the module's real name."""
    module = module_file_name(service)[:-3]
    kind = next((v.kind for v in estate.services if v.name == service), None) \
        if estate is not None else None
    alias = "" if module == "db" else " as db"
    if kind in ("worker", "cron"):
        what = "consume the queue" if kind == "worker" else "run the job"
        return ("a worker or job\ndoes both itself:\n\n"
                f"    import asyncio\n    import {module}{alias}\n\n"
                "    async def main() -> None:\n"
                "        engines = db.create_engines()\n"
                "        try:\n"
                "            async with engines.write_session() as session:\n"
                f"                ...  # {what}\n"
                "        finally:\n"
                "            await db.dispose_engines(engines)\n\n"
                "    asyncio.run(main())")
    return ("`lifespan` does both for FastAPI:\n\n"
            f"    from fastapi import FastAPI\n    import {module}{alias}\n\n"
            "    app = FastAPI(lifespan=db.lifespan)\n"
            "    # in a handler: async with app.state.db.write_session() as session: ...")


def _header(rec: Recommendation, generated_on: str, share_base: str | None,
            extras: list[str], estate: Scenario | None = None, service: str | None = None
            ) -> str:
    s = rec.scenario
    lines = ["# poolwise export: engine module (db.py) for SQLAlchemy 2.x + asyncpg",
             f"# Generated on {generated_on} by poolwise {wizard.__version__} for this scenario:"]
    if estate is not None and service is not None:
        names = ", ".join(v.name for v in estate.services)
        lines += _hcomment(f"service {service}: one of {len(estate.services)} services sharing "
                           f"this database ({names}); each budget below is its share")
    for ep in rec.endpoints:
        lines.append(f"#   {ep.role}: {s.provider} {ep.instance_class or '(no class)'}, "
                     f"max_connections {ep.max_connections_label}, {ep.usable:,} usable")
    lines.append(f"#   proxy: {_proxy_line(rec)}")
    lines += _hcomment(f"fleet: {fleet_text(rec)}")
    if s.iam_auth:
        lines.append("#   auth: IAM / Entra ID token per new connection")
    for ep in rec.endpoints:
        lines += _hcomment(f"{ep.role} budget: {ep.explanation}")
    lines.append("# Reproduce in the app:")
    link = app_link(estate or s, share_base)
    # A bare "?query" line would break ruff's line length; the CLI line below reproduces it.
    lines += [f"#   {link[0]}"] if len(link) == 1 else _hcomment(
        f"(the app's address is not known here: set {links.ENV_PUBLIC_URL}, or download this "
        "file from the app, to get the link)")
    lines.append("# Reproduce on the command line:")
    if estate is not None and service is not None:
        lines.append(f"#   poolwise export --scenario {SCENARIO_FILE} --service {service} "
                     f"-o {module_file_name(service)}")
        lines.append(f"#   ({SCENARIO_FILE}: the whole estate, from the app's Export step)")
    else:
        lines += _cli_lines(installed_command(links.cli_command(s, "export"))
                            + " --output db.py")
    lines.append(f"# Requires: {', '.join([REQUIRES, *extras])}")
    lines.append("#")
    lines.append("# Environment (secrets live there, never in this file):")
    env_rows = []
    for role in ["primary", *_replica_roles(rec)]:
        url_var, prefix = _env_names(role)
        if s.proxy == "cloudsql-connector":
            n = "" if role == "primary" else f"REPLICA_{role.split('-')[1]}_"
            env_rows.append((f"CLOUDSQL_{n}INSTANCE", f"{role}: PROJECT:REGION:INSTANCE"))
        else:
            env_rows.append((url_var, f"{role}: postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB"))
            env_rows.append((f"{prefix}HOST ...", f"or parts: {prefix}HOST, DB_PORT, DB_USER, "
                             "DB_PASSWORD, DB_NAME"))
    if s.proxy == "cloudsql-connector":
        env_rows.append(("DB_USER, DB_NAME", "database user and name"))
        env_rows.append(("DB_PASSWORD", "unless IAM database authentication is on"))
    else:
        env_rows.append(("DATABASE_SSL", "TLS mode for asyncpg (disable, require, verify-full)"))
    if _auth_kind(rec) == "aws":
        env_rows.append(("AWS_REGION", "region for the IAM token (boto3 credentials as usual)"))
    env_rows.append(("POOLWISE_POOL_TIMEOUT", "optional override of pool_timeout, in seconds"))
    width = max(len(k) for k, _ in env_rows)
    lines += [f"#   {k.ljust(width)}  {v}" for k, v in env_rows]
    return "\n".join(lines)


def engine_block(rec: Recommendation) -> str:
    """The module's engine settings: environment variable names, pool settings and connect
    arguments per endpoint, each with its reason. The app's Code tab shows this same text."""
    roles = ["primary", *_replica_roles(rec)]
    return _template("engine_block.py.tmpl").substitute(
        url_env=_dict_literal([f"    {_lit(r)}: {_lit(_env_names(r)[0])}," for r in roles]),
        engine_settings=_dict_literal([ln for g in rec.engines for ln in _fmt_engine(g)]),
        connect_args=_dict_literal([ln for g in rec.engines for ln in _fmt_connect_args(g)]))


def cloudsql_ip_type(s: Scenario) -> tuple[str, str]:
    """The Cloud SQL connector's ip_type for this scenario, and why."""
    if "gcp-vpc" in s.network:
        return "private", ("ip_type: private, the scenario's path is the VPC (gcp-vpc); set "
                           "CLOUDSQL_IP_TYPE=public or psc to connect otherwise")
    return "public", ("ip_type: public, the connector's default (no VPC on the scenario's "
                      "path); set CLOUDSQL_IP_TYPE=private for a private IP instance")


def cloudsql_refresh_strategy(s: Scenario) -> tuple[str, str]:
    """The Cloud SQL connector's refresh_strategy, and why (lazy when serverless)."""
    fact = catalog.proxy_fact("cloudsql-connector", "refresh_strategy_serverless")
    url = fact[1].url if fact else ""
    if any(v.serverless for v in s.services):
        return "lazy", ("refresh_strategy: lazy, serverless: a background refresh is "
                        "throttled when the CPU scales to zero, so certificates are fetched "
                        f"when a connection needs them (connector >= 1.10; {url})")
    return "background", ("refresh_strategy: background, the connector's default for "
                          "always-on instances (lazy suits serverless)")


def create_engine_block(rec: Recommendation) -> str:
    """The module's `create_engine_for` (by URL, or through the Cloud SQL connector)."""
    s = rec.scenario
    if s.proxy == "cloudsql-connector":
        inst = _dict_literal([
            f"    {_lit(r)}: "
            + _lit("CLOUDSQL_INSTANCE" if r == "primary"
                   else f"CLOUDSQL_REPLICA_{r.split('-')[1]}_INSTANCE") + ","
            for r in ["primary", *_replica_roles(rec)]])
        ip_type, ip_why = cloudsql_ip_type(s)
        refresh, refresh_why = cloudsql_refresh_strategy(s)
        return _template("engine_cloudsql_connector.py.tmpl").substitute(
            instance_env=inst, iam=repr(bool(s.iam_auth)), ip_type=_lit(ip_type),
            ip_type_reason="\n".join(_comment(ip_why, 0)), refresh=_lit(refresh),
            refresh_reason="\n".join(_comment(refresh_why, 0)))
    listen = ""
    if _auth_kind(rec):
        listen = ('    # A token per new connection, never one baked into the URL.\n'
                  '    event.listen(engine.sync_engine, "do_connect", provide_iam_token)\n')
    return _template("engine_url.py.tmpl").substitute(iam_listen=listen)


def pick_service(rec: Recommendation, service: str | None) -> ServiceResult:
    """The service whose module an export writes: the named one, else the only one
    (ScenarioError naming the choices when there are several and none is named)."""
    if service is not None:
        return rec.service(service)
    if len(rec.services) > 1:
        raise ScenarioError("this scenario has several services: choose one with --service "
                            "(" + ", ".join(v.name for v in rec.services) + ")", key="name")
    return rec.services[0]


def render_module(rec: Recommendation, *, generated_on: str | None = None,
                  share_base: str | None = None, service: str | None = None) -> str:
    """The engine module (db.py) of one service of a recommendation (the named one, else
    the only one): compiles, passes ruff, reads env vars."""
    refuse_credentials(rec)
    svc = pick_service(rec, service)
    estate, named = named_export(rec, svc)
    return _render_module(svc.rec, generated_on=generated_on, share_base=share_base,
                          estate=estate, service=named)


def _render_module(rec: Recommendation, *, generated_on: str | None,
                   share_base: str | None, estate: Scenario | None,
                   service: str | None) -> str:
    s = rec.scenario
    generated_on = generated_on or dt.date.today().isoformat()
    auth = _auth_kind(rec)
    connector = s.proxy == "cloudsql-connector"
    extras = []
    if auth == "aws":
        extras.append("boto3 (IAM tokens)")
    if auth == "azure":
        extras.append("azure-identity (Entra ID tokens)")
    if connector:
        extras.append("cloud-sql-python-connector[asyncpg]>=1.10")
    caches_off = any("statement_cache_size" in g.connect_args for g in rec.engines)
    uses_null = any(g.poolclass == "NullPool" for g in rec.engines)
    stdlib = ["from collections.abc import AsyncIterator",
              "from contextlib import asynccontextmanager",
              "from dataclasses import dataclass", "from typing import Any"]
    if caches_off:
        stdlib += ["from importlib.metadata import version", "from uuid import uuid4"]
    stdlib.sort(key=lambda line: line.split()[1])
    ssl, ssl_reason = _ssl_default(rec)
    roles = ["primary", *_replica_roles(rec)]
    part_env = _dict_literal([f"    {_lit(r)}: {_lit(_env_names(r)[1])}," for r in roles])
    default_host = "127.0.0.1" if s.proxy == "cloudsql-auth-proxy" else None

    if caches_off:
        statement_names = (
            "\n\ndef _asyncpg_needs_unique_names() -> bool:\n"
            '    """asyncpg <= 0.30 names its statements even with its cache off."""\n'
            '    major, minor = (int(p) for p in version("asyncpg").split(".")[:2])\n'
            "    return (major, minor) < (0, 31)\n\n\n"
            "# Behind a transaction pooler: unique statement names where asyncpg names them.\n"
            "ASYNCPG_NEEDS_UNIQUE_NAMES = _asyncpg_needs_unique_names()\n")
        name_hook = ('    if "statement_cache_size" in args and ASYNCPG_NEEDS_UNIQUE_NAMES:\n'
                     '        args["prepared_statement_name_func"] = lambda: '
                     'f"__asyncpg_{uuid4()}__"\n')
    else:
        statement_names, name_hook = "", ""

    auth_constants = ""
    auth_code = ""
    if auth:
        auth_code = (TEMPLATES / f"auth_{'aws_iam' if auth == 'aws' else 'azure_entra'}.py.tmpl"
                     ).read_text()
    if connector:
        dispose_extra = ("    while _CONNECTORS:\n"
                         "        await _CONNECTORS.pop().close_async()\n")
    else:
        dispose_extra = ""

    usage = ""
    if rec.sized.serverless:
        usage = ("\nServerless (Lambda / Cloud Run jobs): NullPool engines hold no connection "
                 "between\ninvocations and survive a new event loop per invocation, so "
                 "`ENGINES = create_engines()`\nat module level is fine there; keep the "
                 "proxy in front.\n")
    text = _template("module.py.tmpl").substitute(
        header=_header(rec, generated_on, share_base, extras, estate, service),
        usage_example=_usage_example(estate, service), usage_note=usage,
        stdlib_imports="\n".join(stdlib),
        pool_import="from sqlalchemy.pool import NullPool\n" if uses_null else "",
        engine_block=engine_block(rec), part_env=part_env, default_host=_lit(default_host),
        default_port=_PROXY_PORTS.get(s.proxy, 5432),
        ssl_reason="\n".join(_comment(ssl_reason, 0)), ssl_default=_lit(ssl),
        auth_constants=auth_constants,
        statement_names=statement_names, name_func_hook=name_hook,
        auth_code=auth_code, create_engine_block=create_engine_block(rec),
        dispose_extra=dispose_extra)
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    text = re.sub(r"\n\n\n+(\s+\S)", r"\n\n\1", text)  # no double blank lines inside blocks
    return text.rstrip("\n") + "\n"
