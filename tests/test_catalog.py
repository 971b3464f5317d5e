"""Catalog values against the providers' documented figures (not the code's own output)."""

from __future__ import annotations

import csv

import pytest

from wizard.core import catalog
from wizard.core.catalog import DATA_DIR
from wizard.core.model import PROVIDERS, ScenarioError

NOMINAL = 2**30 / 9531392  # connections per GiB by the RDS formula on nominal memory


@pytest.mark.parametrize("name", sorted(p.name for p in DATA_DIR.glob("*.csv")))
def test_every_row_has_a_source_and_a_date(name):
    with (DATA_DIR / name).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, name
    for row in rows:
        assert row["source_url"].strip(), (name, row)
        assert len(row["read_on"].strip()) == 10, (name, row)


def test_sources_md_exists_and_names_every_catalog():
    text = (DATA_DIR / "SOURCES.md").read_text()
    for p in PROVIDERS:
        if (DATA_DIR / f"{p}.csv").exists():
            assert f"{p}.csv" in text


@pytest.mark.parametrize(("provider", "cls", "expected"), [
    # Aurora PostgreSQL documented table
    ("aws-aurora", "db.t3.medium", 420),
    ("aws-aurora", "db.t4g.medium", 405),
    ("aws-aurora", "db.r5.large", 1600),
    ("aws-aurora", "db.r6g.large", 1722),
    ("aws-aurora", "db.r6g.xlarge", 3479),
    ("aws-aurora", "db.r6g.2xlarge", 5000),
    # Aurora Serverless v2 by maximum ACU
    ("aws-aurora", "db.serverless-1acu", 189),
    ("aws-aurora", "db.serverless-16acu", 3360),
    ("aws-aurora", "db.serverless-64acu", 5000),
    # Cloud SQL memory tiers
    ("gcp-cloudsql", "db-f1-micro", 25),
    ("gcp-cloudsql", "db-g1-small", 50),
    ("gcp-cloudsql", "db-custom-2-7680", 400),
    ("gcp-cloudsql", "db-custom-4-15360", 500),
    ("gcp-cloudsql", "db-custom-4-12288", 400),  # typed custom type, 12 GB
    ("gcp-cloudsql", "db-custom-32-131072", 1000),  # 128 GB
    # Azure Flexible Server per-SKU defaults
    ("azure-flexible", "B1ms", 50),
    ("azure-flexible", "B2s", 429),
    ("azure-flexible", "D2s_v3", 859),
    ("azure-flexible", "D4ds_v5", 1718),
    ("azure-flexible", "E4ds_v5", 3437),
    ("azure-flexible", "E16ds_v5", 5000),
    # Neon
    ("neon", "0.25cu", 104),
    ("self-hosted", "default", 100),
])
def test_documented_values(provider, cls, expected):
    assert catalog.instance_class(provider, cls).max_connections == expected


def test_rds_estimates_sit_below_the_nominal_formula_and_near_measurements():
    t3m = catalog.instance_class("aws-rds", "db.t3.medium")  # 4 GiB
    assert t3m.estimated
    assert 400 <= t3m.max_connections <= 420  # measured ~413 on 4 GiB classes
    assert t3m.max_connections < 4 * NOMINAL
    assert t3m.max_connections != 170  # the widely copied wrong figure
    r6g = catalog.instance_class("aws-rds", "db.r6g.large")  # 16 GiB
    assert 1650 <= r6g.max_connections < 16 * NOMINAL  # ~1700-1800, never 683
    big = catalog.instance_class("aws-rds", "db.r6g.16xlarge")  # 512 GiB
    assert big.max_connections == 5000  # LEAST(..., 5000)


def test_rds_estimate_grows_with_memory():
    values = [catalog.rds_max_connections(m) for m in (1, 2, 4, 8, 16, 32, 64)]
    assert values == sorted(values)
    assert all(v <= m * NOMINAL for v, m in zip(values, (1, 2, 4, 8, 16, 32, 64), strict=True))


def test_catalog_rows_have_vcpu_and_memory_for_rds():
    rows = catalog.catalog("aws-rds")
    names = {r.instance_class for r in rows}
    for fam in ("t3", "t4g", "m5", "m6g", "m6i", "m7g", "r5", "r6g", "r6i", "r7g"):
        for size in ("large", "xlarge", "2xlarge"):
            assert f"db.{fam}.{size}" in names
    for fam in ("m5", "m6g", "m6i", "r5", "r6g", "r6i"):
        assert f"db.{fam}.16xlarge" in names
    assert all(r.memory_gib and r.vcpu for r in rows)


def test_unknown_class_lists_choices():
    with pytest.raises(ScenarioError) as exc:
        catalog.instance_class("azure-flexible", "B3xx")
    assert "B3xx" in str(exc.value) and "B1ms" in str(exc.value)


def test_unknown_provider():
    with pytest.raises(ScenarioError) as exc:
        catalog.catalog("oracle-cloud")
    assert "aws-rds" in str(exc.value)


def test_proxy_and_network_defaults():
    assert catalog.proxy_fact("pgbouncer", "default_pool_size")[0] == "20"
    assert catalog.proxy_fact("rds-proxy", "IdleClientTimeout")[0] == "1800"
    assert catalog.proxy_fact("aws-nat-gateway", "idle_timeout")[0] == "350"
    assert catalog.proxy_fact("azure-load-balancer", "idle_timeout")[0] == "240"
    assert catalog.proxy_fact("azure-pgbouncer", "default_pool_size")[0] == "50"


def test_aurora_estimates_never_exceed_awss_documented_figures_for_the_same_memory():
    # Aurora's table: db.r6g.large (16 GiB) 1,722, db.r6g.xlarge (32 GiB) 3,479; Serverless
    # v2 1 ACU 189, 4 ACU 823 (2 ACU, 4 GiB, is not in it: about 400, never RDS's 413).
    rows = catalog.catalog("aws-aurora")
    documented: dict[tuple[bool, float], int] = {}
    for r in rows:
        if r.basis == "documented":
            key = (r.family == "serverless-v2", r.memory_gib)
            documented[key] = max(documented.get(key, 0), r.max_connections)
    for r in rows:
        if r.basis != "formula":
            continue
        same = documented.get((r.family == "serverless-v2", r.memory_gib))
        if same is not None:
            assert r.max_connections <= same, r
    by_name = {r.instance_class: r.max_connections for r in rows}
    for name in ("db.r7g.large", "db.r8g.large", "db.r6i.large"):
        assert by_name[name] == 1722
    assert by_name["db.r7g.xlarge"] == 3479
    assert 189 < by_name["db.serverless-2acu"] <= 400
    assert "Aurora's own documented" in catalog.instance_class("aws-aurora",
                                                               "db.r7g.large").source_label
