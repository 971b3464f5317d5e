"""Widget values <-> share parameters <-> Scenario, without a running app."""

from __future__ import annotations

import pytest

from tests.support import SERVICES_ESTATE, SERVICES_PATHS
from wizard.core.model import PROVIDERS, ScenarioError
from wizard.scenario import links
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


@pytest.mark.parametrize("link", [*LINKS, SERVICES_ESTATE, SERVICES_PATHS])
def test_link_to_widgets_and_back_is_the_same_scenario(link):
    values = state.scenario_values(link)
    flat = state.flat_from_values(values)
    assert links.from_flat(flat) == links.from_flat(link)
    assert state.flat_from_values(state.scenario_values(flat)) == flat


def test_defaults_are_a_valid_first_result():
    flat = state.flat_from_values(state.default_values())
    assert flat == {"provider": "aws-rds", "instance_class": "db.r6g.large"}


def test_every_provider_has_a_default_class_in_its_catalog():
    from wizard.core import catalog
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
    from wizard.core.model import FIELD_LABELS
    from wizard.ui.labels import app_words

    assert app_words("--max-app-instances must be a whole number, got 'x'") == (
        "Autoscaling maximum must be a whole number, got 'x'")
    assert app_words("unknown class 'a' (see `python -m wizard catalog --provider x`)") == (
        "unknown class 'a'")
    # every share parameter has a field name
    assert set(links.BY_KEY) <= set(FIELD_LABELS)


# --- issue 21/20: crafted links cost one validation and are never rewritten silently --

SMALLER_REPLICA = {"provider": "aws-rds", "instance_class": "db.r6g.xlarge", "replicas": "1",
                   "replica_instance_class": "db.r6g.large"}


def _long_link(refused: dict[str, str]) -> dict[str, str]:
    """An ~8 KB link: 32 services with their fleet and load, then `refused`."""
    link: dict[str, str] = {}
    for i in range(1, 33):
        link.update({f"s{i}_name": f"service-number-{i:02d}-of-the-estate",
                     f"s{i}_app_instances": "2", f"s{i}_max_app_instances": "4",
                     f"s{i}_workers": "2", f"s{i}_engines": "2", f"s{i}_app_vcpus": "4",
                     f"s{i}_split": "0.5", f"s{i}_weight": "1.5",
                     f"s{i}_current_pool_size": "3", f"s{i}_current_max_overflow": "1",
                     f"s{i}_endpoints": "primary,replica-1", f"s{i}_deploy_surge_percent": "50",
                     f"s{i}_current_pool_recycle": "1800"})
    # The refused values last: a search key by key reaches them after every service's.
    return {"provider": refused["provider"], **link, **refused}


def _count_parses(monkeypatch) -> list[int]:
    calls = [0]
    real = links.from_flat

    def counted(params):
        calls[0] += 1
        return real(params)
    monkeypatch.setattr(links, "from_flat", counted)
    return calls


@pytest.mark.parametrize("refused", [
    SMALLER_REPLICA,  # values that do not go together
    {"provider": "aws-rds", "instance_class": "db.r6g.large", "replicas": "1",
     "s7_workers": "2.5"},  # a value that does not parse
    {"provider": "neon", "instance_class": "1cu", "replicas": "1",
     "proxy": "rds-proxy"},  # a choice the field does not offer
])
def test_finding_a_long_links_culprit_costs_about_one_validation(monkeypatch, refused):
    link = _long_link(refused)
    assert len("&".join(f"{k}={v}" for k, v in link.items())) > 8000
    calls = _count_parses(monkeypatch)
    key, message = state.culprit(link)
    assert message and key in link
    assert calls[0] <= 2, f"{calls[0]} validations to find the field at fault"
    calls[0] = 0
    state.link_values(link)
    assert calls[0] <= 6, f"{calls[0]} validations to open the link"


def test_a_refused_link_keeps_its_own_values():
    # Issue 20: it opened as db.r6g.large with another scenario, blaming the replica.
    values, notes, refused = state.link_values(SMALLER_REPLICA)
    assert values["instance_class"] == "db.r6g.xlarge"
    assert values["replica_class_0"] == "db.r6g.large"
    assert state.flat_from_values(values) == SMALLER_REPLICA
    assert notes == [] and "below the primary" in refused
    # The replicas' fields show it, in replica 1's box (ui/topology.replica_problem).
    where, message = state._problem_now(state.flat_key(SMALLER_REPLICA))
    assert where == "replicas" and message.startswith("replica 1:")
    assert "below the primary" in message


@pytest.mark.parametrize(("query", "dropped"), [
    ({"provider": "neon", "proxy": "rds-proxy", "workers": "3"}, "proxy"),
    ({"provider": "aws-rds", "instance_class": "db.nope.huge", "workers": "2"},
     "instance_class"),
    ({"provider": "aws-rds", "split": "7", "app_instances": "5"}, "split"),
    ({"provider": "aws-rds", "replicas": "7", "workers": "2"}, "replicas"),  # 5 boxes at most
])
def test_a_value_its_field_cannot_hold_is_dropped_with_a_note(query, dropped):
    values, notes, refused = state.link_values(query)
    flat = state.flat_from_values(values)
    assert len(notes) == 1 and not refused
    assert dropped not in flat or flat[dropped] != query[dropped]


def test_every_text_field_has_a_documented_maximum():
    for p in (*links.PARAMS, *links.SERVICE_PARAMS):
        cap = links.max_chars(p.key)
        assert 0 < cap <= 2000, p.key
        key = p.key if p in links.PARAMS else "s1_" + p.key
        link = {"provider": "self-hosted", key: "9" * (cap + 1)}
        if p in links.SERVICE_PARAMS:
            link.setdefault("s1_name", "api")
        with pytest.raises(ScenarioError, match=f"at most {cap}") as exc:
            links.from_flat(link)
        assert exc.value.key == key
    huge = {"provider": "self-hosted", "proxy": "pgbouncer-transaction",
            "pgbouncer_version": "1." + "2" * 3_000_000}
    with pytest.raises(ScenarioError) as exc:
        links.from_flat(huge)
    assert len(str(exc.value)) < 200 and exc.value.key == "pgbouncer_version"


def test_control_characters_and_non_ascii_text_are_refused():
    for value in ("db.r6g.large\n::error::x", "r\u00e9gion", "a\x00b"):
        with pytest.raises(ScenarioError, match="printable ASCII"):
            links.from_flat({"provider": "aws-rds", "replica_regions": value})


def test_caches_never_key_an_unbounded_value(monkeypatch):
    """The process-wide caches hold at most CACHE_ENTRIES keys of MAX_FLAT_CHARS each: a
    multi-MB typed value is computed uncached (and refused)."""
    huge = {"provider": "self-hosted", "max_connections": "100",
            "proxy": "pgbouncer-transaction", "pgbouncer_version": "1" * 2_000_000}
    key = state.flat_key(huge)

    def no_cache(_key):
        raise AssertionError("a multi-MB key went into a process-wide cache")
    monkeypatch.setattr(state, "_recommend_cached", no_cache)
    monkeypatch.setattr(state, "_problem_cached", no_cache)
    rec, error, _ = state._recommend(key)
    assert rec is None and "at most 16" in error
    assert state._problem(key)[0] == "pgbouncer_version"
    assert state.cacheable(state.flat_key(_long_link(SMALLER_REPLICA)))


def test_a_33rd_service_is_refused():
    values = state.default_values()
    for i in range(1, 33):
        values[links.service_key(i, "name")] = f"svc{i}"
    assert not state.room_for_service(values)
    assert state.room_for_service({k: v for k, v in values.items() if k != "s32_name"})
    values["s33_name"] = "svc33"
    flat = state.flat_from_values(values)
    assert "s33_name" in flat  # read back, not silently dropped
    key, message = state.culprit(flat)
    assert "at most 32 services" in message
