"""Each known pitfall yields a finding with severity, message and fix."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from wizard.core import findings
from wizard.core.codes import CODES
from wizard.core.findings import url_findings
from wizard.core.model import (
    SEVERITIES,
    CurrentPool,
    Load,
    ProxySettings,
    Replica,
    Scenario,
    Service,
    SizingError,
)
from wizard.core.plan import recommend
from wizard.scenario import files


def codes(s: Scenario) -> dict[str, str]:
    return {w.code: w.severity for w in recommend(s).warnings}


BIG_FLEET = dict(provider="aws-rds", instance_class="db.t3.medium", app_instances=10,
                 max_app_instances=20, workers=4)


@pytest.mark.parametrize(("scenario", "code"), [
    (Scenario.flags(**BIG_FLEET), "DEFAULTS_OVER_MAX"),  # SQLAlchemy defaults x 100 engines
    (Scenario.flags(**BIG_FLEET, current=CurrentPool(pool_size=20, max_overflow=10)),
     "WORST_CASE_OVER_MAX"),
    (Scenario.flags(serverless_concurrency=200), "SERVERLESS_NO_PROXY"),
    (Scenario.flags(serverless_concurrency=50, proxy="rds-proxy",
                    current=CurrentPool(poolclass="AsyncAdaptedQueuePool")),
     "SERVERLESS_QUEUEPOOL"),
    (Scenario(proxy="pgbouncer-transaction"), "PREPARED_STATEMENTS_TXN_POOLER"),
    (Scenario(provider="supabase", instance_class="Large", proxy="supavisor-transaction"),
     "PREPARED_STATEMENTS_TXN_POOLER"),
    (Scenario.flags(network=("aws-nat-gateway",), current=CurrentPool(pool_recycle=-1)),
     "RECYCLE_MISSING"),
    (Scenario.flags(network=("aws-nat-gateway",), current=CurrentPool(pool_recycle=3600)),
     "RECYCLE_ABOVE_IDLE"),
    (Scenario.flags(current=CurrentPool(pool_recycle=30)), "RECYCLE_TOO_SHORT"),
    (Scenario.flags(provider="aws-aurora", app_instances=20, workers=2,
                    replicas=(Replica(instance_class="db.t3.medium"),)), "REPLICA_SMALLER"),
    (Scenario.flags(proxy="rds-proxy", current=CurrentPool(pool_size=50)),
     "LARGE_POOL_BEHIND_PROXY"),
    (Scenario(proxy="rds-proxy"), "RDS_PROXY_PINNING"),
    (Scenario(provider="azure-flexible", instance_class="D2s_v3", proxy="azure-pgbouncer",
              proxy_settings=ProxySettings(user_db_pairs=20)), "PROXY_SERVER_POOL_OVER_MAX"),
    (Scenario.flags(deploy_surge_percent=0), "DEPLOY_SURGE_NOT_COUNTED"),
    (Scenario.flags(serverless_concurrency=20, proxy="rds-proxy"), "NULLPOOL_INTROSPECTION"),
    (Scenario.flags(workers=1), "WORKERS_COUNTED"),
    (Scenario(iam_auth=True), "IAM_TOKEN_PER_CONNECTION"),
    (Scenario(provider="aws-rds", instance_class="db.t3.medium"), "ESTIMATED_MAX_CONNECTIONS"),
])
def test_pitfall_is_caught(scenario, code):
    found = codes(scenario)
    assert code in found, found


def test_findings_are_ranked_and_complete():
    rec = recommend(Scenario.flags(**BIG_FLEET, current=CurrentPool(pool_size=20, max_overflow=10)))
    severities = [w.severity for w in rec.warnings]
    order = {"error": 0, "warning": 1, "info": 2}
    assert severities == sorted(severities, key=order.__getitem__)
    for w in rec.warnings:
        assert w.message and w.fix


def test_recommended_settings_themselves_are_not_flagged():
    rec = recommend(Scenario(network=("aws-nat-gateway",)))
    assert rec.services[0].rec.engine("primary").pool_recycle < 350
    assert rec.services[0].rec.engine("primary").pool_recycle >= 60
    assert "RECYCLE_ABOVE_IDLE" not in {w.code for w in rec.warnings}


def test_iam_token_in_url_is_flagged_without_echoing_it():
    url = ("postgresql+asyncpg://app:host.rds.amazonaws.com:5432/?Action=connect"
           "&X-Amz-Signature=deadbeefcafe@host/db")
    found = url_findings(url)
    assert found and found[0].code == "IAM_TOKEN_IN_URL"
    assert "deadbeefcafe" not in found[0].message + found[0].fix
    assert url_findings("postgresql+asyncpg://app@db.internal/app") == []


def test_pool_recycle_stays_under_every_cutoff_on_the_path():
    rec = recommend(Scenario(proxy="rds-proxy", network=("aws-nlb", "aws-nat-gateway")))
    assert rec.services[0].rec.engine("primary").pool_recycle < 350
    gcp = recommend(Scenario(provider="gcp-cloudsql", instance_class="db-custom-2-7680"))
    assert gcp.services[0].rec.engine("primary").pool_recycle < 600  # GCP VPC connection tracking


def test_proxy_server_pool_below_the_fleet_load():
    # 40 instances (+25% surge = 50) x 400 req/s x 30 ms = 600 Erlangs across the fleet,
    # far above Azure's built-in PgBouncer default of 50 server connections per pair.
    s = Scenario.flags(provider="azure-flexible", instance_class="D4ds_v5", proxy="azure-pgbouncer",
                       app_instances=6, max_app_instances=40, workers=4,
                       load=Load(rps=400, hold_ms=30))
    rec = recommend(s)
    side = rec.endpoint("primary").server_side
    assert side.needed > 600 and side.limit == 50
    assert "PROXY_SERVER_POOL_BELOW_LOAD" in {w.code for w in rec.warnings}
    # Self-managed PgBouncer without a pool size grows its server pool to the need instead.
    own = recommend(Scenario.flags(provider="azure-flexible", instance_class="D4ds_v5",
                                   proxy="pgbouncer-transaction", app_instances=6,
                                   max_app_instances=40, workers=4, load=Load(rps=400, hold_ms=30)))
    assert own.endpoint("primary").server_side.limit == own.endpoint("primary").server_side.needed


def test_pool_timeout_reason_names_the_proxy_wait():
    eng = recommend(Scenario(proxy="rds-proxy")).services[0].rec.engine("primary")
    reason = eng.reasons["pool_timeout"]
    assert "ConnectionBorrowTimeout" in reason and "120" in reason


def test_smaller_replica_that_fits_the_primary_settings_is_not_flagged():
    # 2 instances (+1 surge) x 1 worker: 3 read engines x 20 fit a db.t3.medium (~400).
    rec = recommend(Scenario(provider="aws-aurora",
                             replicas=(Replica(instance_class="db.t3.medium"),)))
    assert "REPLICA_SMALLER" not in {w.code for w in rec.warnings}


def test_rds_proxy_default_percent_gets_a_concrete_fix():
    rec = recommend(Scenario(proxy="rds-proxy"))
    found = [w for w in rec.warnings if w.code == "PROXY_SERVER_POOL_OVER_MAX"]
    ep = rec.endpoint("primary")
    assert found and f"{ep.usable * 100 // ep.max_connections}%" in found[0].fix


# ------------------------------------------- issue 18: findings belong to what they speak of

_RDS_ESTATE = dict(provider="aws-rds", instance_class="db.r6g.large", proxy="rds-proxy",
                   replicas=(Replica(),))


def _estate_rec():
    from wizard.core.model import Service
    return recommend(Scenario(**_RDS_ESTATE, services=(
        Service(name="api", app_instances=10, max_app_instances=20, workers=4,
                load=Load(200, 20)),
        Service(name="worker", kind="worker", app_instances=5, workers=2),
        Service(name="cron", kind="cron", app_instances=1))))


def test_a_service_without_load_never_gets_db_cores_busy():
    # Old main: the worker and the cron carried the api's "100.0 busy on average".
    rec = _estate_rec()
    for name in ("worker", "cron"):
        own = rec.service(name).rec.warnings
        assert not [f for f in own if f.code == "DB_CORES_BUSY"], name
        assert not [f for f in own if "busy on average" in f.message], name
    plan = [f for f in rec.warnings if f.code == "DB_CORES_BUSY"]
    assert plan and all(f.services == ("api",) for f in plan)
    assert all(findings.said(f, rec).startswith("api: ") for f in plan)


def test_a_path_finding_appears_once_per_endpoint_and_path():
    # Old main: one PROXY_SERVER_POOL_OVER_MAX per service (each with its own worst case).
    rec = _estate_rec()
    for code in ("PROXY_SERVER_POOL_OVER_MAX", "RDS_PROXY_PINNING", "RDS_PROXY_WRITER_ONLY"):
        assert len([f for f in rec.warnings if f.code == code]) == 1, code
    (over,) = [f for f in rec.warnings if f.code == "PROXY_SERVER_POOL_OVER_MAX"]
    worst = sum(b.worst_case for b in rec.endpoint("primary").by_service)
    assert f"at most {worst:,}" in over.message


def test_pool_below_load_is_never_raised_without_a_load():
    # Old main: Supavisor session mode said "the fleet's load needs about 160" with no load.
    s = Scenario.flags(provider="supabase", instance_class="large", proxy="supavisor-session",
                       app_instances=20, workers=2)
    assert "PROXY_SERVER_POOL_BELOW_LOAD" not in codes(s)
    assert not [f for f in recommend(s).warnings if "load" in f.message.lower()
                and f.code != "NO_LOAD"]
    # With a load it still is.
    loaded = Scenario.flags(provider="azure-flexible", instance_class="D2s_v3",
                            proxy="azure-pgbouncer", app_instances=20, workers=4,
                            load=Load(400, 30))
    assert "PROXY_SERVER_POOL_BELOW_LOAD" in codes(loaded)


def test_behind_azure_pgbouncer_the_fix_is_its_pool_size_not_a_bigger_sku():
    # The default pool (50) keeps 300 busy connections waiting while 840 are usable.
    s = Scenario.flags(provider="azure-flexible", instance_class="D2s_v3", proxy="azure-pgbouncer",
                       app_instances=20, workers=4, load=Load(400, 30))
    rec = recommend(s)
    over = [f for f in rec.warnings if f.code == "LOAD_OVER_BUDGET"]
    assert over and all("pgbouncer.default_pool_size" in f.fix for f in over)
    # The pool findings point at the pool (the cores finding's bigger class is about CPU).
    assert not [f for f in rec.warnings if f.code.startswith(("LOAD_", "PROXY_"))
                and ("bigger SKU" in f.fix or "bigger class" in f.fix)]
    pairs = Scenario(provider="azure-flexible", instance_class="D2s_v3",
                     proxy="azure-pgbouncer", proxy_settings=ProxySettings(user_db_pairs=20))
    (f,) = [f for f in recommend(pairs).warnings if f.code == "PROXY_SERVER_POOL_OVER_MAX"]
    assert "pgbouncer.default_pool_size" in f.fix and "SKU" not in f.fix


@pytest.mark.parametrize("load", [None, Load(200, 30)])
def test_neon_pooler_fixes_never_size_the_pooler(load):
    s = Scenario.flags(provider="neon", instance_class="1cu", proxy="neon-pooler", app_instances=20,
                       workers=4, load=load)
    rec = recommend(s)
    assert rec.warnings
    for f in rec.warnings:
        low = f.fix.lower()
        assert "lower neon-pooler" not in low and "server pool toward" not in low, f
        assert "size the proxy" not in low and "raise the proxy's pool" not in low, f
    cores = [f for f in rec.warnings if f.code.startswith("DB_CORES")]
    assert cores and all("cannot be changed" in f.fix or "bigger class" in f.fix
                         for f in cores)


def test_defaults_over_max_for_serverless_speaks_of_concurrent_invocations():
    s = Scenario.flags(provider="aws-rds", instance_class="db.r6g.large",
                       serverless_concurrency=200)
    (f,) = [f for f in recommend(s).warnings if f.code == "DEFAULTS_OVER_MAX"]
    assert "concurrent invocation" in f.message and "autoscaling" not in f.message


# --- findings are data (issue 19) ---------------------------------------------------------

_GOLDEN = Path(__file__).parent / "golden"
_CORE = Path(findings.__file__).parent


def _golden_recs():
    for path in sorted(_GOLDEN.glob("*.toml")):
        try:
            yield path.stem, recommend(files.parse(path.read_text(), str(path)))
        except SizingError:
            continue


def test_every_code_a_finding_can_carry_is_in_the_codes_table():
    # Every finding is made through codes.finding("CODE", ...): read the code of each call.
    made = set()
    for mod in ("findings.py", "current.py"):
        tree = ast.parse((_CORE / mod).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                    "finding", "_plan_finding", "Finding"):
                first = node.args[0]
                if isinstance(first, ast.Name) and first.id == "code":
                    continue  # _plan_finding hands its caller's code on
                if isinstance(first, ast.IfExp):  # "A" if mine else "B"
                    made |= {first.body.value, first.orelse.value}
                else:
                    assert isinstance(first, ast.Constant), ast.dump(first)
                    made.add(first.value)
    assert made and made <= set(CODES), made - set(CODES)
    # and the table lists no code nothing makes (CANNOT_FIT: the check's, from a SizingError)
    assert set(CODES) - made == {"CANNOT_FIT"}
    for code, entry in CODES.items():
        assert entry.severity in SEVERITIES and entry.title, code
        assert entry.step in (None, "database", "proxy", "topology", "load", "export"), code
        assert entry.scope in ("service", "endpoint"), code


def test_findings_carry_their_subject_as_fields_never_as_a_message_prefix():
    seen = 0
    for name, rec in _golden_recs():
        names = [v.name for v in rec.services]
        roles = [e.role for e in rec.endpoints]
        for f in [*rec.warnings, *(w for v in rec.services for w in v.rec.warnings)]:
            seen += 1
            assert f.code in CODES and f.severity in CODES[f.code].severities, (name, f)
            assert f.endpoint is None or f.endpoint in roles, (name, f)
            assert not re.match(r"(primary|replica-\d+): ", f.message), (name, f.message)
            assert not any(f.message.startswith(f"{n}: ") for n in names), (name, f.message)
            assert f.services and set(f.services) <= set(names), (name, f)
            assert f.service is None or f.services == (f.service,), (name, f)
            json.dumps(f.facts)  # the numbers are plain JSON
    assert seen > 50


def test_the_plan_merges_a_finding_by_code_endpoint_and_facts_naming_its_services():
    rec = recommend(Scenario(provider="aws-rds", instance_class="db.r6g.large", services=(
        Service(name="web"), Service(name="jobs", kind="worker"),
        Service(name="api", workers=4))))
    names = [v.name for v in rec.services]
    # WORKERS_COUNTED: web and jobs count one worker per instance (api runs 4).
    (workers,) = [f for f in rec.warnings if f.code == "WORKERS_COUNTED"]
    assert workers.services == ("web", "jobs") and workers.service is None
    assert findings.subject(workers, names) == "web, jobs: "
    assert findings.said(workers, rec) == "web, jobs: " + workers.message
    own = [f for v in rec.services for f in v.rec.warnings if f.code == "WORKERS_COUNTED"]
    assert len(own) == 2 and {f.service for f in own} == {"web", "jobs"}
    # A finding every service has names none of them before its message.
    every = [f for f in rec.warnings if set(f.services) == set(names)]
    assert every and all(not findings.subject(f, names).startswith(names[0]) for f in every)
    # One service of one: nothing before its message but the endpoint.
    one = recommend(Scenario(provider="aws-rds", instance_class="db.r6g.large"))
    (no_load,) = [f for f in one.warnings if f.code == "NO_LOAD"]
    assert no_load.service == "app" and findings.said(no_load, one).startswith("primary: no ")


def test_a_plan_finding_about_an_endpoint_concerns_it_whole_and_names_whom_to_change():
    s = Scenario(provider="self-hosted", instance_class="default", max_connections=100,
                 services=(Service(name="api", app_instances=4, workers=2,
                                   current=CurrentPool(pool_size=20, max_overflow=10)),
                           Service(name="jobs", kind="worker", app_instances=1)))
    rec = recommend(s)
    (over,) = [f for f in rec.warnings if f.code == "SERVICES_OVER_USABLE"]
    assert over.endpoint == "primary" and over.services == ("api",)
    assert over.facts["parts"] == {"api": 300, "jobs": over.facts["connections"] - 300}
    assert over.facts["usable"] == rec.endpoint("primary").usable
    assert findings.subject(over, ["api", "jobs"]) == "primary: "


def test_cron_without_load_is_worded_with_crons_cap_of_2_not_the_default():
    # Old main: "pool_size + max_overflow = 2 is the default cap of 10 per engine".
    rec = _estate_rec()
    (note,) = [f for f in rec.service("cron").rec.warnings
               if f.code == "NO_LOAD" and f.endpoint == "primary"]
    assert note.facts["cap"] == 2 and note.facts["per_engine"] == 2
    assert "cron's fixed cap of 2" in note.message and "default cap" not in note.message
    (web,) = [f for f in rec.service("worker").rec.warnings
              if f.code == "NO_LOAD" and f.endpoint == "primary"]
    assert web.facts["cap"] == 10 and "default cap of 10" in web.message  # behind RDS Proxy
