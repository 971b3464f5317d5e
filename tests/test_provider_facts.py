"""Provider facts of issue 9, each against the value the provider's own documentation states.

Expected numbers come from the cited pages (quoted in data/providers.csv and data/SOURCES.md),
never from poolwise's output.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.core import catalog, limits, model
from wizard.core.model import Load, ProxySettings, Replica, Reserves, Scenario
from wizard.core.plan import recommend

ROOT = Path(__file__).resolve().parent.parent
NO_APP_RESERVES = Reserves(admin=0, migrations=0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wizard", "recommend", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def everything_said(rec) -> str:
    """Every finding and fix text, every reason and source of a recommendation."""
    parts = [f"{w.message} {w.fix}" for w in rec.warnings]
    for ep in rec.endpoints:
        parts += [ep.max_connections_source, ep.explanation]
        for side in (ep.server_side, ep.client_side):
            if side is not None:
                parts += [side.limit_source, side.detail]
    for eng in rec.services[0].rec.engines:
        parts += list(eng.reasons.values())
    return "\n".join(parts)


# 1. Aurora Serverless v2 ------------------------------------------------------------------
# AWS "Maximum connections for Aurora Serverless v2": 16 ACU -> 3,360, 32 ACU -> 5,000;
# capped at 2,000 when the minimum capacity is 0 or 0.5 ACU.

@pytest.mark.parametrize(("min_acu", "expected"), [
    (None, 2000), (0, 2000), (0.5, 2000), (1, 3360), (4, 3360)])
def test_serverless_v2_cap_unless_minimum_is_one_acu_or_more(min_acu, expected):
    rec = recommend(Scenario(provider="aws-aurora", instance_class="db.serverless-16acu",
                             min_acu=min_acu))
    assert rec.endpoint("primary").max_connections == expected


def test_serverless_v2_cap_says_why_where_the_number_is_shown():
    ep = recommend(Scenario(provider="aws-aurora",
                            instance_class="db.serverless-32acu")).endpoint("primary")
    assert ep.max_connections == 2000
    src = ep.max_connections_source
    assert "minimum ACU not given" in src and "0/0.5 ACU" in src and "min ACU >= 1" in src
    lifted = recommend(Scenario(provider="aws-aurora", instance_class="db.serverless-32acu",
                                min_acu=1)).endpoint("primary")
    assert lifted.max_connections == 5000


def test_serverless_v2_below_the_cap_is_untouched():
    # 8 ACU -> 1,669 (AWS table), below 2,000 whatever the minimum.
    ep = recommend(Scenario(provider="aws-aurora",
                            instance_class="db.serverless-8acu")).endpoint("primary")
    assert ep.max_connections == 1669


# 2. rds.rds_reserved_connections ----------------------------------------------------------
# AWS release notes: "Starting in RDS for PostgreSQL versions 17.1, 16.5, 15.9, 14.14, 13.17,
# and 12.21, some connection slots are reserved for the new rds_reserved role".
FIRST_MINORS = {17: 1, 16: 5, 15: 9, 14: 14, 13: 17, 12: 21}
RDS_RESERVED = 4  # AWS states no default; 4 is what RDS users report (shared/facts)


def _rds_reserved(pg_version, pg_minor, provider="aws-rds"):
    s = Scenario(provider=provider, pg_version=pg_version, pg_minor=pg_minor)
    return {r.name.split(" ")[0]: r.count for r in limits.reserves_for(s, True, 1000)}.get(
        "rds.rds_reserved_connections", 0)


@pytest.mark.parametrize(("major", "first"), sorted(FIRST_MINORS.items()))
def test_rds_reserved_connections_from_the_documented_minors(major, first):
    assert _rds_reserved(major, first - 1) == 0
    assert _rds_reserved(major, first) == RDS_RESERVED
    assert _rds_reserved(major, first + 3) == RDS_RESERVED
    # No minor given: a new instance gets the current minor, which has it.
    assert _rds_reserved(major, None) == RDS_RESERVED


def test_rds_reserved_connections_outside_the_listed_majors():
    assert _rds_reserved(11, None) == 0
    assert _rds_reserved(18, 0) == RDS_RESERVED
    assert _rds_reserved(17, None, provider="aws-aurora") == 0  # RDS release notes only


def test_older_minor_from_the_cli_frees_the_slots():
    new = run_cli("--provider", "aws-rds", "--instance-class", "db.m6g.large", "--json")
    old = run_cli("--provider", "aws-rds", "--instance-class", "db.m6g.large", "--pg-minor",
                  "4", "--json")
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert "rds.rds_reserved_connections" in new.stdout
    assert "rds.rds_reserved_connections" not in old.stdout


def test_minor_version_survives_link_and_widgets():
    from wizard.scenario import links
    from wizard.ui import state
    link = {"provider": "aws-rds", "instance_class": "db.r6g.large", "pg_minor": "4"}
    flat = state.flat_from_values(state.scenario_values(link))
    assert links.from_flat(flat).pg_minor == 4 == links.from_flat(link).pg_minor


# 3. Supabase ------------------------------------------------------------------------------
# Supabase: "if you are heavily using the PostgREST database API ... past 40% of the Database
# Max Connections. Otherwise, you can commit 80% to the pool." Compute and Disk: Micro 60 max
# connections and 200 pooler clients, Small 90 / 400, Large 160 / 800.

@pytest.mark.parametrize(("size", "max_connections"), [("Micro", 60), ("Small", 90),
                                                       ("Large", 160), ("16XL", 500)])
def test_supabase_app_budget_stays_within_80_percent(size, max_connections):
    ep = recommend(Scenario(provider="supabase", instance_class=size,
                            reserves=NO_APP_RESERVES)).endpoint("primary")
    assert ep.max_connections == max_connections
    assert ep.usable <= max_connections * 80 // 100
    assert any("Auth" in r.name and r.count >= max_connections * 20 // 100
               for r in ep.reserves)


def test_unset_supavisor_pool_is_not_the_whole_budget():
    for size, mc in (("Micro", 60), ("Medium", 120), ("XL", 240)):
        ep = recommend(Scenario(provider="supabase", instance_class=size,
                                proxy="supavisor-transaction")).endpoint("primary")
        assert ep.server_side.limit < ep.usable
        assert ep.server_side.limit <= mc * 40 // 100  # the conservative Supabase guidance
        assert "not given" in ep.server_side.limit_source


def test_given_supavisor_pool_is_used():
    ep = recommend(Scenario(provider="supabase", instance_class="Large",
                            proxy="supavisor-transaction",
                            proxy_settings=ProxySettings(pool_size=30))).endpoint("primary")
    assert ep.server_side.limit == 30


def test_supavisor_client_limit_fix_is_a_bigger_compute_size():
    # Micro takes 200 pooler clients: 300 engines need at least Small (400).
    with pytest.raises(model.SizingError) as err:
        recommend(Scenario.flags(provider="supabase", instance_class="Micro",
                                 proxy="supavisor-transaction", app_instances=240))
    assert "compute size" in err.value.fix and "Small" in err.value.fix
    assert "max_client_conn" not in str(err.value)


def test_heavy_data_api_advice_is_offered():
    rec = recommend(Scenario(provider="supabase", instance_class="Medium"))
    found = {w.code: w for w in rec.warnings}
    assert "40%" in found["PROVIDER_SERVICES_RESERVE"].fix
    assert "72" in found["PROVIDER_SERVICES_RESERVE"].fix  # 60 % of 120


# 4. Neon ----------------------------------------------------------------------------------
# Neon: "Seven connections are reserved for the Neon superuser account. For a 0.25 CU compute,
# this means 97 connections are available for your application (104 total - 7 reserved)."
# Pooler: 0.9 x max_connections per user/database pair, max_prepared_statements=1000.

def test_neon_reserves_seven_in_total():
    ep = recommend(Scenario(provider="neon", instance_class="0.25cu",
                            reserves=NO_APP_RESERVES)).endpoint("primary")
    assert ep.max_connections == 104
    assert ep.usable == 97


def test_neon_pooler_on_quarter_cu_has_no_false_error():
    rec = recommend(Scenario(provider="neon", instance_class="0.25cu", proxy="neon-pooler"))
    assert not [w for w in rec.warnings if w.severity == "error"], rec.warnings
    ep = rec.endpoint("primary")
    assert ep.server_side.configured == int(104 * 0.9) <= ep.usable


def test_neon_pooler_keeps_statement_caches_on():
    rec = recommend(Scenario(provider="neon", instance_class="1cu", proxy="neon-pooler"))
    args = rec.services[0].rec.engine("primary").connect_args
    assert "statement_cache_size" not in args and "prepared_statement_cache_size" not in args
    assert "PREPARED_STATEMENTS_TXN_POOLER" not in {w.code for w in rec.warnings}


NEON_FORBIDDEN = re.compile(r"\bini\b|max_client_conn|--pgbouncer-pool-size|default_pool_size "
                            r"to|Raise the proxy|RDS Proxy")


def test_no_neon_fix_asks_for_a_setting_users_cannot_change():
    classes = [r.instance_class for r in catalog.catalog("neon")]
    sweep = itertools.product(classes[::3], ("neon-pooler", "none"), (1, 3), (2, 60, 400),
                              (None, Load(rps=300, hold_ms=40)))
    for cls, proxy, pairs, instances, load in sweep:
        s = Scenario.flags(provider="neon", instance_class=cls, proxy=proxy,
                           app_instances=instances, workers=4, load=load,
                           proxy_settings=ProxySettings(user_db_pairs=pairs))
        try:
            text = everything_said(recommend(s))
        except model.SizingError as exc:
            text = str(exc)
        assert not NEON_FORBIDDEN.search(text), (s, text)


# 5. Streaming replicas --------------------------------------------------------------------
# PostgreSQL hot standby ("Administrator's Overview"): max_connections on a standby must be
# equal to or greater than on the primary, or the standby does not run.

def test_self_hosted_replica_defaults_to_the_primary_value_from_the_cli():
    out = run_cli("--provider", "self-hosted", "--max-connections", "200", "--replicas", "1",
                  "--json")
    assert out.returncode == 0, out.stderr
    assert '"max_connections": 200' in out.stdout.split('"replica-1"')[1]


def test_self_hosted_smaller_replica_is_refused_with_the_fix():
    out = run_cli("--provider", "self-hosted", "--max-connections", "200", "--replicas", "1",
                  "--replica-max-connections", "100")
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "200" in lines[0] and "--replica-max-connections" in lines[0]


@pytest.mark.parametrize(("provider", "primary", "replica", "needle"), [
    ("aws-rds", "db.r6g.large", "db.t3.medium", "parameter group"),
    ("gcp-cloudsql", "db-custom-4-15360", "db-custom-2-7680", "max_connections flag"),
    ("azure-flexible", "D4s_v3", "D2s_v3", "replica server"),
    ("supabase", "Large", "Small", "compute size"),
])
def test_managed_streaming_replica_below_primary_is_refused(provider, primary, replica, needle):
    s = Scenario(provider=provider, instance_class=primary,
                 replicas=(Replica(instance_class=replica),))
    with pytest.raises(model.ScenarioError) as err:
        recommend(s)
    assert needle in str(err.value)


def test_same_class_replicas_run():
    for provider, cls in (("aws-rds", "db.r6g.large"), ("supabase", "Large"),
                          ("gcp-cloudsql", "db-custom-4-15360")):
        rec = recommend(Scenario(provider=provider, instance_class=cls,
                                 replicas=(Replica(instance_class=cls),)))
        assert rec.endpoint("replica-1").max_connections == rec.endpoint(
            "primary").max_connections


def test_neon_replica_takes_the_primary_max_connections():
    # Neon syncs max_connections from the primary when a read replica compute starts.
    rec = recommend(Scenario(provider="neon", instance_class="2cu",
                             replicas=(Replica(instance_class="0.25cu"),)))
    assert rec.endpoint("replica-1").max_connections == 839  # the 2 CU primary's
    assert rec.endpoint("replica-1").instance_class == "0.25cu"


def test_aurora_reader_keeps_its_own_class_value():
    rec = recommend(Scenario(provider="aws-aurora", instance_class="db.r6g.large",
                             replicas=(Replica(instance_class="db.t3.medium"),)))
    assert rec.endpoint("replica-1").max_connections == 420  # AWS Aurora table


# 6. RDS Proxy and RDS read replicas -------------------------------------------------------
# AWS: "For RDS DB instances in replication configurations, you can associate a proxy only
# with the writer DB instance, not a read replica."

def test_rds_proxy_does_not_front_rds_replicas():
    rec = recommend(Scenario.flags(provider="aws-rds", proxy="rds-proxy", app_instances=6,
                                   replicas=(Replica(),)))
    rep = rec.endpoint("replica-1")
    assert rep.server_side is None and rep.client_side is None
    assert rep.worst_case == rep.clients * (rep.pool_size + rep.max_overflow) <= rep.usable
    assert rec.endpoint("primary").server_side is not None
    assert "RDS_PROXY_WRITER_ONLY" in {w.code for w in rec.warnings}


def test_rds_proxy_reader_endpoints_on_aurora_stay():
    rec = recommend(Scenario(provider="aws-aurora", proxy="rds-proxy", replicas=(Replica(),)))
    assert rec.endpoint("replica-1").server_side is not None
    assert "RDS_PROXY_WRITER_ONLY" not in {w.code for w in rec.warnings}


# 7. Cloud SQL custom machine types --------------------------------------------------------
# Google: cores "1 to 96 (must be either 1 or an even number)"; memory "0.9 to 6.5 GB per
# vCPU (must be a multiple of 256 MB and at least 3.75 GB)".

@pytest.mark.parametrize("name", [
    "db-custom-1-3840",     # smallest: 3.75 GB on 1 vCPU
    "db-custom-2-7680",
    "db-custom-96-638976",  # 96 x 6.5 GB = 624 GB
    "db-custom-96-89088",   # 96 x 0.9 GB = 86.4 GB, rounded up to 256 MB
])
def test_cloudsql_custom_types_within_the_rules(name):
    assert catalog.instance_class("gcp-cloudsql", name).max_connections > 0


@pytest.mark.parametrize(("name", "rule"), [
    ("db-custom-4-99999999", "per vCPU"),
    ("db-custom-3-12288", "even number"),
    ("db-custom-98-400384", "even number"),
    ("db-custom-0-3840", "even number"),
    ("db-custom-2-3584", "at least 3840 MB"),
    ("db-custom-2-7681", "multiple of 256 MB"),
    ("db-custom-1-7680", "per vCPU"),    # 7.5 GB on 1 vCPU
    ("db-custom-8-7168", "per vCPU"),    # 0.875 GB per vCPU
])
def test_cloudsql_custom_types_outside_the_rules_are_refused(name, rule):
    with pytest.raises(model.ScenarioError) as err:
        catalog.instance_class("gcp-cloudsql", name)
    assert rule in str(err.value) and "\n" not in str(err.value)


def test_cloudsql_bad_custom_type_is_one_line_from_the_cli():
    out = run_cli("--provider", "gcp-cloudsql", "--instance-class", "db-custom-4-99999999")
    assert out.returncode == 2 and out.stdout == ""
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "6.5 GB per vCPU" in lines[0]
