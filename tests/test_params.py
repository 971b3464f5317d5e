"""Issue 19: one parameter table (wizard/core/params.py). Every place a parameter's key must
appear (CLI flags, link keys, scenario-file keys, bounds, the form's labels, help and
defaults) derives from it, so adding a field is one row and the code that uses the value."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from wizard import cli
from wizard.core import bounds, model
from wizard.core import params as table
from wizard.core.model import Scenario, ScenarioError, Service
from wizard.scenario import files, links
from wizard.ui import labels, state

ROOT = Path(__file__).resolve().parent.parent
TOP = {p.key for p in table.TABLE if p.flag}
IN_SERVICE = {p.key for p in table.TABLE if p.in_service}


def _cli_flags() -> dict[str, argparse.Action]:
    """The scenario flags the CLI adds, keyed as the table ("--no-pre-ping" -> pre_ping)."""
    p = argparse.ArgumentParser()
    cli.add_scenario_flags(p)
    out = {}
    for action in p._actions:
        for opt in action.option_strings:
            if opt in ("-h", "--help", "--scenario"):
                continue
            key = opt[2:].removeprefix("no-").replace("-", "_")
            out[key] = action
    return out


# An accepted value of each kind (the test is about keys, not values).
_EXAMPLE = {"int": "1", "float": "1", "bool": "true", "str": '"x"', "list": '["x"]'}


def _file_refuses_key(text: str) -> bool:
    try:
        files.parse(text)
    except ScenarioError as exc:
        return "unknown key" in str(exc)
    return False


def test_every_place_a_key_appears_derives_from_the_table():
    # CLI flags == link keys == a scenario file's top-level keys
    flags = _cli_flags()
    assert set(flags) == TOP == set(links.BY_KEY)
    assert [p.key for p in links.PARAMS] == [p.key for p in table.TABLE if p.flag]
    for p in table.TABLE:
        if p.flag:
            assert flags[p.key].help == p.help, p.key
            assert not _file_refuses_key(f"{p.key} = {_EXAMPLE[p.kind]}\n"), p.key
        else:
            assert _file_refuses_key(f"{p.key} = {_EXAMPLE[p.kind]}\n"), p.key
    assert _file_refuses_key("no_such_knob = 1\n")
    # a service's keys: links' s<N>_ keys and a [[service]] table's
    assert set(links.SERVICE_KEYS) == IN_SERVICE
    assert set(links.FLEET_KEYS) == {p.key for p in table.TABLE
                                     if p.flag and p.owner == "service"}
    assert {p.key for p in links.SERVICE_PARAMS} == {p.key for p in table.TABLE if not p.flag}
    for p in table.TABLE:
        text = f'[[service]]\nname = "api"\n{p.key} = {_EXAMPLE[p.kind]}\n'
        if p.key != "name":
            assert _file_refuses_key(text) == (p.key not in IN_SERVICE), p.key
    # bounds: every number has its range, and only the table's ranges exist
    assert bounds.RANGES == {p.key: p.range for p in table.TABLE if p.range}
    assert {p.key for p in table.TABLE if p.kind in ("int", "float")} <= set(bounds.RANGES)
    # the longest value of each, and the free-text shapes
    for p in table.TABLE:
        assert links.max_chars(p.key) == p.chars, p.key
        assert (p.key in links._TEXT_SHAPES) == (p.shape is not None), p.key
    # the form: labels (core messages name fields by them), help, service defaults
    for p in table.TABLE:
        assert p.label and model.field_name(p.key) == p.label, p.key
        assert labels.HELP.get(p.key) == (p.hint or None), p.key
    # the rest of HELP is the form's own widgets (catalog or measured, the toggles)
    assert set(labels.HELP) - set(table.BY_KEY) <= set(state.WIDGET_KEYS)
    assert state.SERVICE_DEFAULTS == {p.key: p.default for p in table.TABLE
                                      if p.owner == "service" and p.default is not None}


def test_the_defaults_are_the_models():
    # a default Scenario's value of every top-level parameter is the table's default
    assert links.values(Scenario()) == {p.key: p.default for p in table.TABLE if p.flag}
    assert Service().weight == table.BY_KEY["weight"].default
    # the CLI's opt-out flags are the booleans on by default
    flags = _cli_flags()
    for p in table.TABLE:
        if p.kind == "bool":
            assert flags[p.key].option_strings == [
                ("--no-" if p.default else "--") + p.key.replace("_", "-")]


def test_the_cli_groups_its_flags_by_owner():
    p = argparse.ArgumentParser()
    cli.add_scenario_flags(p)
    groups = {g.title: {a.dest for a in g._group_actions} for g in p._action_groups}
    for param in table.TABLE:
        if param.flag:
            assert cli.flag_dest(param.key) in groups[table.OWNER_WORDS[param.owner]], param.key
    assert groups["scenario file"] == {"scenario"}


def _flat_value(p: table.Param, value):
    """A model value as the codecs key it (replicas: their count; tuples: lists, None when
    empty or all unset)."""
    if p.key == "replicas":
        return len(value)
    if isinstance(value, tuple):
        if "[]." in p.field:
            return [v if v is not None else "" for v in value] if any(value) else None
        return list(value) or None
    return value


def test_each_rows_field_is_where_the_model_keeps_the_value():
    scenarios = [files.load(path) for path in sorted((ROOT / "tests/golden").glob("*.toml"))]
    scenarios.append(links.from_flat({
        "provider": "aws-rds", "replicas": "2", "replica_readers": "3,", "replica_regions": "a",
        "proxy": "pgbouncer-transaction", "pgbouncer_max_db_connections": "40",
        "current_max_overflow": "3", "rps": "5", "hold_ms": "2", "network": "aws-nlb"}))
    scenarios.append(links.from_flat({**RDS, **LOAD, **MEASURED, "measured_seconds": "30"}))
    checked = set()
    for s in scenarios:
        services = s.services
        if not s.named:  # the flags form: one row per key
            flat = links.values(s)
            for p in links.PARAMS:
                obj = services[0] if p.owner == "service" else s
                assert _flat_value(p, table.read(obj, p)) == flat[p.key], p.key
                checked.add(p.key)
        for svc in services:
            own = state.service_values(svc)
            for p in table.TABLE:
                if p.in_service:
                    assert _flat_value(p, table.read(svc, p)) == own[p.key], p.key
                    checked.add(p.key)
    assert checked == set(table.BY_KEY)


# A link that sets each parameter to a value other than its default (with what it needs:
# a pooler for the pooler's settings, a load for its p95, replicas for their lists).
RDS = {"provider": "aws-rds", "instance_class": "db.r6g.large"}
PGB = {**RDS, "proxy": "pgbouncer-transaction"}
LOAD = {"rps": "10", "hold_ms": "5"}
CURRENT = {"current_pool_size": "5"}
MEASURED = {"measured_busy_mean": "3.5", "measured_busy_p95": "6", "measured_processes": "4",
            "measured_at": "2026-12-06T03:10:00Z", "measured_where": "db.example.com:5432/app"}
SETS: dict[str, dict[str, str]] = {
    "provider": {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680"},
    "instance_class": {**RDS, "instance_class": "db.r6g.xlarge"},
    "max_connections": {**RDS, "max_connections": "100"},
    "max_connections_source": {**RDS, "max_connections": "100",
                               "max_connections_source": "measured today"},
    "db_vcpus": {**RDS, "db_vcpus": "4"},
    "min_acu": {"provider": "aws-aurora", "instance_class": "db.serverless-16acu",
                "min_acu": "1"},
    "pg_version": {**RDS, "pg_version": "15"},
    "pg_minor": {**RDS, "pg_minor": "4"},
    "replicas": {**RDS, "replicas": "2"},
    "replica_instance_class": {**RDS, "replicas": "1",
                               "replica_instance_class": "db.r6g.xlarge"},
    "replica_max_connections": {**RDS, "replicas": "1", "replica_max_connections": "2000"},
    "replica_readers": {**RDS, "replicas": "1", "replica_readers": "2"},
    "replica_regions": {**RDS, "replicas": "1", "replica_regions": "eu-west-1"},
    "proxy": PGB,
    "pgbouncer_version": {**PGB, "pgbouncer_version": "1.22"},
    "pgbouncer_pool_size": {**PGB, "pgbouncer_pool_size": "30"},
    "pgbouncer_reserve_pool": {**PGB, "pgbouncer_reserve_pool": "5"},
    "pgbouncer_max_client_conn": {**PGB, "pgbouncer_max_client_conn": "500"},
    "pgbouncer_max_db_connections": {**PGB, "pgbouncer_max_db_connections": "40"},
    "max_prepared_statements": {**PGB, "max_prepared_statements": "100"},
    "user_db_pairs": {**PGB, "user_db_pairs": "2"},
    "rds_proxy_max_connections_percent": {**RDS, "proxy": "rds-proxy",
                                          "rds_proxy_max_connections_percent": "50"},
    "app_instances": {**RDS, "app_instances": "3"},
    "max_app_instances": {**RDS, "max_app_instances": "6"},
    "deploy_surge_percent": {**RDS, "deploy_surge_percent": "50"},
    "workers": {**RDS, "workers": "4"},
    "engines": {**RDS, "engines": "2"},
    "serverless_concurrency": {**RDS, "serverless_concurrency": "50"},
    "app_vcpus": {**RDS, "app_vcpus": "4"},
    "superuser_reserved": {**RDS, "superuser_reserved": "4"},
    "provider_reserved": {**RDS, "provider_reserved": "4"},
    "admin_reserve": {**RDS, "admin_reserve": "5"},
    "migrations_reserve": {**RDS, "migrations_reserve": "2"},
    "replication_reserve": {**RDS, "replication_reserve": "2"},
    "split": {**RDS, "split": "0.5"},
    "rps": {**RDS, **LOAD},
    "hold_ms": {**RDS, **LOAD},
    "p95_hold_ms": {**RDS, **LOAD, "p95_hold_ms": "9"},
    "network": {**RDS, "network": "aws-nlb"},
    "iam_auth": {**RDS, "iam_auth": "1"},
    "pre_ping": {**RDS, "pre_ping": "0"},
    "current_pool_size": {**RDS, **CURRENT},
    "current_max_overflow": {**RDS, **CURRENT, "current_max_overflow": "3"},
    "current_pool_recycle": {**RDS, **CURRENT, "current_pool_recycle": "300"},
    "current_poolclass": {**RDS, **CURRENT, "current_poolclass": "QueuePool"},
    "current_statement_cache_size": {**RDS, **CURRENT, "current_statement_cache_size": "0"},
    # a measured load, alone or beside the guess it is compared with
    "measured_busy_mean": {**RDS, **MEASURED},
    "measured_busy_p95": {**RDS, **LOAD, **MEASURED},
    "measured_processes": {**RDS, **MEASURED, "measured_processes": "8"},
    "measured_at": {**RDS, **MEASURED},
    "measured_where": {**RDS, **MEASURED, "measured_where": "[::1]:6432/app_db"},
    "measured_seconds": {**RDS, **MEASURED, "measured_seconds": "30"},
}


@pytest.mark.parametrize("key", sorted(TOP))
def test_a_link_setting_any_parameter_opens_in_the_form_unchanged(key):
    link = SETS[key]
    assert key in link and links.from_flat(link)  # a valid link that sets it
    values, notes, refused = state.link_values(link)
    assert not notes and not refused
    assert state.flat_from_values(values) == link
    # with services, each service's own keys survive too
    own = {k: v for k, v in link.items() if k in links.FLEET_KEYS}
    if own:
        rest = {k: v for k, v in link.items() if k not in own}
        multi = {**rest, "s1_name": "api", **{f"s1_{k}": v for k, v in own.items()},
                 "s2_name": "jobs"}
        values, notes, refused = state.link_values(multi)
        assert not notes and not refused
        flat = state.flat_from_values(values)
        # (a service's current pool names its poolclass, the default included)
        assert {k: v for k, v in flat.items() if (k, v) != (
            "s1_current_poolclass", "AsyncAdaptedQueuePool")} == multi


def test_help_lists_the_models_choices():
    def items(text: str) -> list[str]:
        return text.replace(" or ", ", ").split(": ")[-1].split(", ")

    assert items(table.BY_KEY["provider"].help) == list(model.PROVIDERS)
    assert items(table.BY_KEY["proxy"].help) == list(model.PROXIES)
    assert items(table.BY_KEY["network"].help) == list(model.NETWORK_CUTOFFS)
    assert items(table.BY_KEY["kind"].help) == list(model.SERVICE_KINDS)


def test_every_row_is_well_formed():
    assert len(table.BY_KEY) == len(table.TABLE)
    for p in table.TABLE:
        assert p.kind in table.KINDS and p.owner in table.OWNERS, p.key
        assert p.help and p.label, p.key
        assert p.key == p.key.lower() and p.key.isidentifier(), p.key
        if p.range:
            assert p.range.key == p.key and p.range.low < p.range.high, p.key
            assert p.range.integer == (p.kind != "float"), p.key
            if p.default is not None:
                bounds.check(p.key, p.default)
        else:
            assert p.kind not in ("int", "float"), p.key
        if p.default is not None and p.kind == "str":
            assert len(p.default) <= p.chars, p.key
        if not p.flag:
            assert p.owner == "service", p.key


def test_the_table_imports_only_the_standard_library():
    tree = ast.parse((ROOT / "wizard/core/params.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    assert names and names <= set(sys.stdlib_module_names) | {"__future__"}, names


def test_the_forms_widgets_show_the_tables_labels_on_the_tables_steps():
    from tests.support import go, new_app

    links_ = ({"provider": "aws-rds", "instance_class": "db.r6g.large", "replicas": "1",
               "proxy": "pgbouncer-transaction", "max_connections": "100", "rps": "10",
               "hold_ms": "5", "current_pool_size": "5"},
              {"provider": "aws-aurora", "proxy": "rds-proxy", "serverless_concurrency": "100"})
    shown: dict[str, str] = {}
    on: dict[str, str] = {}
    for query in links_:
        at = new_app(query)
        for step in table.STEPS:
            go(at, step)
            for kind in ("number_input", "text_input", "selectbox", "multiselect", "checkbox",
                         "toggle", "slider"):
                for w in getattr(at, kind):
                    if w.key in table.BY_KEY:
                        shown[w.key], on[w.key] = w.label, step
    assert len(shown) >= 40, sorted(set(TOP) - set(shown))
    assert {k: v for k, v in shown.items() if v != table.BY_KEY[k].label} == {}
    # each on the step the table names (a refused link opens there: state.step_of)
    assert {k: v for k, v in on.items() if v != table.BY_KEY[k].step} == {}
    assert all(state.step_of(p.key) == p.step for p in table.TABLE)


# Run in a fresh interpreter: one row is added to the table before anything derives from it.
_ADD_A_ROW = r"""
import argparse, json
from wizard.core import params
row = params._p("test_knob", "int", "service", "Test knob", "a knob for the test",
                hint="Where to find the knob.", default=4, rng=(1, 9))
params.TABLE = (*params.TABLE, row)
params.BY_KEY = {p.key: p for p in params.TABLE}
from wizard import cli
from wizard.core import bounds, model
from wizard.core.model import ScenarioError
from wizard.scenario import files, links
from wizard.ui import labels, state
p = argparse.ArgumentParser()
cli.add_scenario_flags(p)
def refusal(read, given):
    try:
        read(given)
    except ScenarioError as exc:
        return str(exc)
    return ""
print(json.dumps({
    "flag": [a.help for a in p._actions if "--test-knob" in a.option_strings],
    "link": "test_knob" in links.BY_KEY, "fleet": "test_knob" in links.FLEET_KEYS,
    "service": "test_knob" in links.SERVICE_KEYS,
    "range": bounds.RANGES["test_knob"].words(),
    "label": model.field_name("test_knob"), "help": labels.HELP.get("test_knob"),
    "default": state.SERVICE_DEFAULTS.get("test_knob"),
    "file_top": refusal(files.parse, "provider = 'aws-rds'\ntest_knob = 3\n"),
    "file_service": refusal(files.parse,
                            "provider = 'aws-rds'\n[[service]]\nname = 'api'\ntest_knob = 3\n"),
    "link_top": refusal(links.from_flat, {"provider": "aws-rds", "test_knob": "10"}),
    "link_service": refusal(links.from_flat,
                            {"provider": "aws-rds", "s1_name": "api", "s1_test_knob": "0"}),
}))
"""


def test_adding_a_parameter_is_one_row():
    out = subprocess.run([sys.executable, "-c", _ADD_A_ROW], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {
        "flag": ["a knob for the test"], "link": True, "fleet": True, "service": True,
        "range": "1 to 9", "label": "Test knob", "help": "Where to find the knob.",
        "default": 4, "file_top": "", "file_service": "",
        "link_top": "Test knob must be 1 to 9, got 10",
        "link_service": "service 1 (api): Test knob must be 1 to 9, got 0",
    }

