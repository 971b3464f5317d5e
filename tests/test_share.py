"""Scenario <-> flat parameters: the mapping behind share links and CLI flags."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wizard import cli
from wizard.core import model
from wizard.core.model import CurrentPool, Load, ProxySettings, Replica, Reserves, Scenario
from wizard.scenario import links


def test_default_scenario_is_a_short_link():
    assert links.to_flat(Scenario()) == {"provider": "aws-rds", "instance_class": "db.r6g.large"}


def test_full_scenario_round_trips():
    s = Scenario.flags(provider="aws-aurora", instance_class="db.r6g.large",
                       max_connections=1700, max_connections_source="measured 2026-11-25T08:00Z",
                       replicas=(Replica("db.r6g.xlarge", None, 3, "eu-west-1"),
                           Replica(None, 900, None, "us-east-1")),
                       proxy="rds-proxy",
                       proxy_settings=ProxySettings(rds_proxy_max_connections_percent=60),
                       app_instances=3, max_app_instances=9, deploy_surge_percent=50, workers=4,
                       engines_per_process=2, app_vcpus=4, pg_version=17,
                       reserves=Reserves(superuser=3, provider=2, admin=5, migrations=2,
                                   replication_slots=1),
                       pool_split=0.6, load=Load(120.0, 15.0, 40.0), network=("aws-nlb",),
                       iam_auth=True, current=CurrentPool(20, 5, -1, "AsyncAdaptedQueuePool"))
    flat = links.to_flat(s)
    assert links.from_flat(flat) == s
    assert links.from_flat(dict(parse_qsl(links.to_query(s)))) == s


def test_cli_command_quotes_for_the_shell():
    s = Scenario(max_connections_source="measured 2026-11-25T08:00Z", max_connections=100)
    cmd = links.cli_command(s)
    assert "'measured 2026-11-25T08:00Z'" in cmd


@pytest.mark.parametrize("params", [
    {"provider": "aws-rds", "workers": "many"},
    {"provider": "aws-rds", "iam_auth": "maybe"},
    {"provider": "aws-rds", "password": "x"},
    {"provider": "aws-rds", "replicas": "-1"},
    {"provider": "aws-rds", "rps": "10"},
])
def test_tampered_parameters_raise_scenario_error(params):
    with pytest.raises(model.ScenarioError):
        links.from_flat(params)


def test_no_parameter_can_carry_a_secret():
    keys = {p.key for p in links.PARAMS}
    assert not {k for k in keys if any(w in k for w in ("password", "token", "secret", "url"))}


@settings(max_examples=100, deadline=None)
@given(st.builds(Scenario.flags, provider=st.just("self-hosted"), instance_class=st.none(),
                 max_connections=st.integers(1, 10000), app_instances=st.integers(1, 100),
                 workers=st.integers(1, 32), pool_split=st.floats(0.01, 1.0),
                 network=st.lists(st.sampled_from(["aws-nlb", "gcp-vpc"]), max_size=2)
                 .map(tuple)))
def test_round_trip_property(s):
    assert links.from_flat(dict(parse_qsl(links.to_query(s)))) == s


@pytest.mark.parametrize(("key", "value"), [
    ("max_connections_source", "postgresql://app:Hunter2-Canary@db/app"),
    ("pgbouncer_version", "password=Hunter2-Canary"),
    ("replica_regions", "token: Hunter2-Canary"),
    ("instance_class", "x?X-Amz-Signature=Hunter2-Canary"),
])
def test_credential_looking_values_are_refused_without_echo(key, value):
    with pytest.raises(model.ScenarioError) as exc:
        links.from_flat({"provider": "aws-rds", key: value})
    assert "Hunter2-Canary" not in str(exc.value)


@pytest.mark.parametrize(("key", "value"), [
    ("pgbouncer_version", "latest; rm -rf"),
    ("replica_regions", "eu west 1"),
    ("current_poolclass", "SingletonThreadPool"),
    ("max_connections_source", "x" * 200),
])
def test_free_text_parameters_have_a_shape(key, value):
    with pytest.raises(model.ScenarioError) as exc:
        links.from_flat({"provider": "aws-rds", key: value})
    assert exc.value.key == key
    assert links.field_name(key) in str(exc.value)


def test_cli_command_leaves_out_empty_values():
    s = Scenario(provider="self-hosted", instance_class=None, max_connections=100)
    assert "--instance-class" not in links.cli_command(s)


@pytest.mark.parametrize("key, raw", [
    ("workers", "[4]"), ("workers", "4.0"), ("app_instances", "true"), ("replicas", "1e1"),
    ("iam_auth", "maybe"), ("max_connections", "9" * 5000),
])
def test_link_and_flag_values_of_the_wrong_type_are_refused_not_coerced(key, raw):
    with pytest.raises(model.ScenarioError) as exc:
        links.from_flat({"provider": "self-hosted", "max_connections": "100", key: raw})
    assert exc.value.key == key and len(str(exc.value)) < 200
    if key != "iam_auth":  # a flag without a value on the command line
        assert cli.main(["recommend", "--provider", "self-hosted", "--max-connections", "100",
                         f"--{key.replace('_', '-')}", raw]) == 2
