"""The exported engine module, for every supported scenario: compiles, passes ruff, imports,
and builds engines whose pools carry the Recommendation's numbers (no database needed)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.pool import NullPool

import wizard
from tests.support import SCENARIOS, TRANSACTION_POOLER_SCENARIOS, load_module, rec_for, ruff_check
from wizard.core.plan import recommend
from wizard.export import render_module
from wizard.export.common import installed_command
from wizard.scenario import links

DUMMY_URL = "postgresql://app@db.invalid:5432/app"  # never connected to


def _module(tmp_path: Path, name: str, **kw):
    src = render_module(rec_for(name), **kw)
    path = tmp_path / "db.py"
    path.write_text(src)
    return src, load_module(path, "poolwise_export_" + re.sub(r"\W", "_", name))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_module_compiles_passes_ruff_and_imports(name: str, tmp_path: Path) -> None:
    src, mod = _module(tmp_path, name)
    compile(src, "db.py", "exec")
    res = ruff_check(src)
    assert res.returncode == 0, res.stdout + res.stderr
    # Optional extras are imported lazily: none is needed (or installed) to import.
    for extra in ("boto3", "google.cloud.sql.connector", "azure.identity", "fastapi"):
        assert extra not in sys.modules
    assert callable(mod.create_engines) and callable(mod.register_pool_metrics)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_module_settings_reach_the_engines(name: str, tmp_path: Path, monkeypatch) -> None:
    rec = rec_for(name)
    _, mod = _module(tmp_path, name)
    for var in mod.URL_ENV.values():
        monkeypatch.setenv(var, DUMMY_URL)
    monkeypatch.setenv("CLOUDSQL_INSTANCE", "proj:region:inst")
    monkeypatch.setenv("CLOUDSQL_REPLICA_1_INSTANCE", "proj:region:inst-r1")
    monkeypatch.delenv("POOLWISE_POOL_TIMEOUT", raising=False)
    engines = mod.create_engines()
    try:
        assert len(engines.reads) == len(rec.scenario.replicas)
        for role, engine in zip([e.role for e in rec.endpoints],
                                [engines.write, *engines.reads], strict=True):
            g = rec.services[0].rec.engine(role)
            pool = engine.sync_engine.pool
            if g.poolclass == "NullPool":
                assert isinstance(pool, NullPool)
                continue
            assert pool.size() == g.pool_size
            assert pool._max_overflow == g.max_overflow
            assert pool._timeout == g.pool_timeout
            assert pool._recycle == g.pool_recycle
            assert pool._pre_ping is g.pool_pre_ping
            assert mod.ENGINE_SETTINGS[role]["pool_use_lifo"] is g.pool_use_lifo
            for key, value in g.connect_args.items():
                if key != "ssl":
                    assert mod.CONNECT_ARGS[role][key] == value
    finally:
        asyncio.run(mod.dispose_engines(engines))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_header_carries_provenance_and_no_secret(name: str) -> None:
    rec = rec_for(name)
    s = rec.scenario
    src = render_module(rec, generated_on="2030-01-02", share_base="https://pw.example/")
    head = src.split('"""')[0]
    assert all(line.startswith("#") for line in head.strip().splitlines())
    assert "Generated on 2030-01-02" in head and f"poolwise {wizard.__version__}" in head
    assert f"{s.provider} {rec.endpoint('primary').instance_class or '(no class)'}" in head
    assert f"proxy: {s.proxy}" in head
    assert links.share_url(s, "https://pw.example/") in head
    # The CLI command, unwrapped from its shell continuations, is the core's, as the
    # installed command writing the module's own file.
    cli = " ".join(ln[1:].strip().rstrip("\\").strip() for ln in head.splitlines()
                   if ln.startswith("#   poolwise") or ln.startswith("#     --"))
    assert cli == installed_command(links.cli_command(s, "export")) + " --output db.py"
    assert cli.startswith("poolwise export ")
    engines = rec.endpoint("primary").clients
    assert f"= {engines:,} engines on the primary" in " ".join(
        ln.lstrip("# ") for ln in head.splitlines())
    # Credentials only as placeholders or environment lookups.
    creds = re.findall(r"://([^/\s:@]+):([^@\s]+)@", src)
    assert set(creds) <= {("USER", "PASSWORD")}
    assert ("CLOUDSQL_INSTANCE" if s.proxy == "cloudsql-connector" else "DATABASE_URL") in head


def test_env_var_names_per_replica() -> None:
    src = render_module(rec_for("two-replicas"))
    for var in ("DATABASE_URL", "DATABASE_REPLICA_1_URL", "DATABASE_REPLICA_2_URL"):
        assert f"#   {var}" in src


@pytest.mark.parametrize("name", TRANSACTION_POOLER_SCENARIOS)
def test_transaction_poolers_turn_statement_caches_off(name: str, tmp_path: Path) -> None:
    _, mod = _module(tmp_path, name)
    args = mod.CONNECT_ARGS["primary"]
    assert args["statement_cache_size"] == 0
    assert args["prepared_statement_cache_size"] == 0
    assert "server_settings" not in args  # PgBouncer refuses unknown startup parameters


@pytest.mark.parametrize("name", ["pgbouncer-tx-1.24", "pgbouncer-session", "direct-rds",
                                  "rds-proxy", "neon-pooler"])
def test_statement_caches_kept_where_statements_survive(name: str, tmp_path: Path) -> None:
    _, mod = _module(tmp_path, name)
    assert "statement_cache_size" not in mod.CONNECT_ARGS["primary"]
    assert "prepared_statement_cache_size" not in mod.CONNECT_ARGS["primary"]


@pytest.mark.parametrize("name", ["direct-rds", "rds-iam", "rds-proxy", "azure-entra",
                                  "supavisor-tx", "neon-pooler"])
def test_tls_required_by_default_and_switchable(name: str, tmp_path: Path, monkeypatch) -> None:
    _, mod = _module(tmp_path, name)
    url = mod.make_url(DUMMY_URL)
    monkeypatch.delenv("DATABASE_SSL", raising=False)
    assert mod.connect_args("primary", url)["ssl"] == "require"
    monkeypatch.setenv("DATABASE_SSL", "verify-full")
    assert mod.connect_args("primary", url)["ssl"] == "verify-full"


def test_cloudsql_auth_proxy_defaults_to_local_proxy(tmp_path: Path, monkeypatch) -> None:
    _, mod = _module(tmp_path, "cloudsql-auth-proxy")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_HOST", raising=False)
    monkeypatch.setenv("DB_USER", "app")
    monkeypatch.setenv("DB_NAME", "appdb")
    url = mod.database_url()
    assert (url.host, url.port, url.database, url.drivername) == (
        "127.0.0.1", 5432, "appdb", "postgresql+asyncpg")
    assert mod.SSL_DEFAULT is None


def test_missing_url_names_the_variable(tmp_path: Path, monkeypatch) -> None:
    _, mod = _module(tmp_path, "two-replicas")
    monkeypatch.setenv("DATABASE_URL", DUMMY_URL)
    monkeypatch.delenv("DATABASE_REPLICA_2_URL", raising=False)
    monkeypatch.delenv("DB_REPLICA_2_HOST", raising=False)
    monkeypatch.delenv("DB_HOST", raising=False)
    monkeypatch.setenv("DATABASE_REPLICA_1_URL", DUMMY_URL)
    with pytest.raises(RuntimeError, match="DATABASE_REPLICA_2_URL"):
        mod.create_engines()


def test_heroku_style_url_gets_asyncpg_and_sslmode_moves(tmp_path: Path, monkeypatch) -> None:
    _, mod = _module(tmp_path, "pgbouncer-tx-1.18")
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.invalid:6432/app?sslmode=require")
    monkeypatch.delenv("DATABASE_SSL", raising=False)
    engine = mod.create_engine_for("primary")
    try:
        assert engine.url.drivername == "postgresql+asyncpg"
        assert "sslmode" not in engine.url.query
        assert mod.connect_args("primary", mod.database_url())["ssl"] == "require"
    finally:
        asyncio.run(engine.dispose())


def test_serverless_module_uses_nullpool_and_command_timeout(tmp_path: Path) -> None:
    rec = rec_for("lambda-rds-proxy")
    _, mod = _module(tmp_path, "lambda-rds-proxy")
    assert mod.ENGINE_SETTINGS["primary"] == {"poolclass": NullPool}
    assert mod.CONNECT_ARGS["primary"]["command_timeout"] == rec.services[0].rec.engine(
        "primary").connect_args["command_timeout"]
    assert mod.SSL_DEFAULT == "require"


@pytest.mark.parametrize("name", ["rds-iam", "aurora-rds-proxy-iam", "azure-entra"])
def test_iam_token_per_connection_hook(name: str, tmp_path: Path, monkeypatch) -> None:
    src, mod = _module(tmp_path, name)
    monkeypatch.setenv("DATABASE_URL", DUMMY_URL)
    engine = mod.create_engine_for("primary")
    try:
        assert event.contains(engine.sync_engine, "do_connect", mod.provide_iam_token)
        assert mod.SSL_DEFAULT == "require"
    finally:
        asyncio.run(engine.dispose())
    assert "generate_db_auth_token" in src if name != "azure-entra" else "get_token" in src


def test_non_iam_modules_have_no_token_hook() -> None:
    assert "do_connect" not in render_module(rec_for("direct-rds"))


def test_cloudsql_connector_imports_lazily(tmp_path: Path, monkeypatch) -> None:
    _, mod = _module(tmp_path, "cloudsql-connector")
    assert mod.CLOUDSQL_IAM_AUTH is True
    monkeypatch.setenv("CLOUDSQL_INSTANCE", "proj:region:inst")
    engine = mod.create_engine_for("primary")

    async def connect() -> None:
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    # The module imports and builds its engine without the connector; only connecting
    # needs it (it is not in the project's requirements).
    with pytest.raises(ModuleNotFoundError, match="google"):
        asyncio.run(connect())


@pytest.mark.parametrize(("network", "serverless", "ip_type", "refresh"), [
    ("gcp-vpc", None, "private", "background"),
    ("", None, "public", "background"),
    ("gcp-vpc", "40", "private", "lazy"),
])
def test_cloudsql_connector_sets_ip_type_and_refresh_strategy(tmp_path: Path, network,
                                                              serverless, ip_type, refresh):
    flat = {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
            "proxy": "cloudsql-connector"}
    if network:
        flat["network"] = network
    if serverless:
        flat["serverless_concurrency"] = serverless
    text = render_module(recommend(links.from_flat(flat)))
    path = tmp_path / "db.py"
    path.write_text(text)
    mod = load_module(path, f"poolwise_db_cloudsql_{ip_type}_{refresh}_{id(tmp_path)}")
    assert (mod.CLOUDSQL_IP_TYPE, mod.CLOUDSQL_REFRESH_STRATEGY) == (ip_type, refresh)
    assert "ip_type=os.environ.get(CLOUDSQL_IP_TYPE_ENV) or CLOUDSQL_IP_TYPE" in text
    assert "refresh_strategy=CLOUDSQL_REFRESH_STRATEGY" in text


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_reason_is_worded_from_its_steps(name: str) -> None:
    """Issue 19: a reason is data (value, formula, why, source); its sentence is worded from
    the steps in one place, for every setting the module writes."""
    from wizard.core.model import reason_text

    for svc in rec_for(name).services:
        for eng in svc.rec.engines:
            assert set(eng.steps) == set(eng.reasons) >= {
                "poolclass", "pool_size", "max_overflow", "pool_timeout", "pool_recycle",
                "pool_pre_ping", "pool_use_lifo", "connect_args"}
            for key, steps in eng.steps.items():
                assert steps and eng.reasons[key] == reason_text(steps)
                assert all(s.source == "" or s.source.startswith("https://") for s in steps)


def test_the_module_comments_each_connect_arg_step_whole_and_leaves_tls_to_its_code():
    """The module reads the steps, never splits a sentence back: a step whose words hold
    "; " stays one comment, and the TLS step (its value "ssl") is said by the code."""
    from dataclasses import replace

    from wizard.core.model import Step
    from wizard.export.module import engine_block

    rec = rec_for("direct-rds")
    plan = rec.services[0].rec
    eng = plan.engine("primary")
    odd = Step("timeout=10", why="one step; with a semicolon in its words")
    assert any(s.value == "ssl" for s in eng.steps["connect_args"])
    eng = replace(eng, steps={**eng.steps, "connect_args": (
        odd, *(s for s in eng.steps["connect_args"] if s.value == "ssl"))})
    block = engine_block(replace(plan, engines=(eng,)))
    comments = [ln.strip()[2:] for ln in block.split("CONNECT_ARGS")[-1].splitlines()
                if ln.strip().startswith("# ")]
    assert comments == [odd.text]
