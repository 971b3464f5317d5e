"""Widget values <-> share parameters <-> Scenario, without a running app."""

from __future__ import annotations

import pytest

from wizard import share
from wizard.model import PROVIDERS, ScenarioError
from wizard.ui import state

LINKS = [
    {"provider": "aws-rds", "instance_class": "db.r6g.large"},
    {"provider": "aws-aurora", "instance_class": "db.r6g.large"},  # default class name
    {"provider": "azure-flexible", "instance_class": "D2s_v3", "proxy": "azure-pgbouncer",
     "pgbouncer_pool_size": "40", "user_db_pairs": "2"},
    {"provider": "aws-rds", "instance_class": "db.t3.medium", "max_connections": "120",
     "replicas": "2", "replica_instance_class": "db.t3.small,", "replica_readers": ",3",
     "workers": "3", "max_app_instances": "10", "network": "aws-nat-gateway,aws-nlb"},
    {"provider": "supabase", "instance_class": "Small", "proxy": "supavisor-transaction",
     "serverless_concurrency": "40"},
    {"provider": "neon", "instance_class": "1cu", "proxy": "neon-pooler", "pre_ping": "0"},
    {"provider": "self-hosted", "instance_class": "default", "proxy": "pgbouncer-transaction",
     "pgbouncer_version": "1.24", "max_prepared_statements": "100", "rps": "80",
     "hold_ms": "12.5", "p95_hold_ms": "40", "split": "0.5", "admin_reserve": "5"},
    {"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
     "current_pool_size": "20", "current_max_overflow": "5", "iam_auth": "1"},
    {"provider": "aws-aurora", "instance_class": "db.serverless-16acu", "min_acu": "0.5",
     "replicas": "1", "replica_regions": "eu-west-1", "max_connections": "1900",
     "max_connections_source": "measured 2026-11-25T08:00Z"},
]


@pytest.mark.parametrize("link", LINKS)
def test_link_to_widgets_and_back_is_the_same_scenario(link):
    values = state.scenario_values(link)
    flat = state.flat_from_values(values)
    assert share.from_flat(flat) == share.from_flat(link)
    assert state.flat_from_values(state.scenario_values(flat)) == flat


def test_defaults_are_a_valid_first_result():
    flat = state.flat_from_values(state.default_values())
    assert flat == {"provider": "aws-rds", "instance_class": "db.r6g.large"}


def test_every_provider_has_a_default_class_in_its_catalog():
    from wizard import catalog
    for provider in PROVIDERS:
        cls = state.default_class(provider)
        assert cls in [c.instance_class for c in catalog.catalog(provider)]


def test_proxies_offered_per_provider():
    assert "rds-proxy" in state.proxies_for("aws-aurora")
    assert "rds-proxy" not in state.proxies_for("gcp-cloudsql")
    assert state.proxies_for("neon") == ["none", "pgbouncer-transaction", "pgbouncer-session",
                                         "neon-pooler"]


@pytest.mark.parametrize("link", [
    {"provider": "aws-rds", "bogus": "1"},
    {"provider": "aws-rds", "instance_class": "db.x.nope"},
    {"provider": "gcp-cloudsql", "proxy": "azure-pgbouncer"},
    {"provider": "aws-rds", "replicas": "9"},
])
def test_bad_links_raise_scenario_error(link):
    with pytest.raises(ScenarioError):
        state.scenario_values(link)


def test_plain_text_cannot_become_markdown():
    from wizard.ui.text import as_read
    from wizard.ui.text import md_escape as plain

    # every character Markdown, LaTeX or a Streamlit directive could act on is escaped
    for text in ("**b** [x](http://e.test) ![i](x) `c` $x^2$ :red[r] # h <b>", "1. item"):
        escaped = plain(text)
        assert as_read(escaped) == text
        for ch in "*[]()!`$:#<>":
            assert all(escaped[i - 1] == "\\" for i, c in enumerate(escaped) if c == ch)


def test_core_messages_name_the_app_fields_not_the_cli_flags():
    from wizard.model import FIELD_LABELS
    from wizard.ui.labels import app_words

    assert app_words("--max-app-instances must be a whole number, got 'x'") == (
        "Autoscaling maximum must be a whole number, got 'x'")
    assert app_words("unknown class 'a' (see `python -m wizard catalog --provider x`)") == (
        "unknown class 'a'")
    # every share parameter has a field name
    assert set(share.BY_KEY) <= set(FIELD_LABELS)
