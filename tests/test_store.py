"""Saved scenarios through SQLAlchemy: SQLite by default, the real PostgreSQL fixture too."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from wizard.core.model import Scenario
from wizard.scenario import links, store

FLAT = {"provider": "aws-rds", "instance_class": "db.r6g.large", "workers": "4"}


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(store.ENV_URL, raising=False)
    s = store.ScenarioStore()
    yield s
    s.close()


def test_default_store_is_a_sqlite_file_under_the_user_data_dir(sqlite_store, tmp_path):
    path = tmp_path / "xdg" / "poolwise" / "scenarios.sqlite"
    assert sqlite_store.url == f"sqlite:///{path}"
    assert path.is_file()  # created on first use


def test_env_var_selects_another_database(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'team.sqlite'}"
    monkeypatch.setenv(store.ENV_URL, url)
    s = store.ScenarioStore()
    s.save("shared", FLAT)
    assert store.ScenarioStore(url).load("shared") == FLAT
    assert (tmp_path / "team.sqlite").is_file()


def test_save_list_load_overwrite_delete(sqlite_store):
    sqlite_store.save("b scenario", FLAT)
    sqlite_store.save("a scenario", {"provider": "neon", "instance_class": "1cu"})
    assert sqlite_store.names() == ["a scenario", "b scenario"]
    assert sqlite_store.load("b scenario") == FLAT
    first = sqlite_store.list()[1]
    sqlite_store.save("b scenario", {**FLAT, "workers": "8"})
    again = sqlite_store.list()[1]
    assert again.params["workers"] == "8"
    assert again.created_at == first.created_at and again.updated_at >= first.updated_at
    assert links.from_flat(sqlite_store.load("b scenario")).services[0].workers == 8
    assert sqlite_store.delete("b scenario") is True
    assert sqlite_store.delete("b scenario") is False
    with pytest.raises(store.StoreError, match="No saved scenario"):
        sqlite_store.load("b scenario")


@pytest.mark.parametrize(("name", "message"), [
    ("", "Give the scenario a name"),
    (" padded", "start or end with a space"),
    ("padded ", "start or end with a space"),
    ("x" * 81, "at most 80"),
    ("tab\there", "control character"),
    ("new\nline", "control character"),
])
def test_bad_names_get_a_clear_message(sqlite_store, name, message):
    with pytest.raises(store.StoreError, match=message):
        sqlite_store.save(name, FLAT)
    assert sqlite_store.names() == []


def test_unicode_and_80_char_names_are_fine(sqlite_store):
    for name in ("Zürich prod 🚀", "y" * 80):
        sqlite_store.save(name, FLAT)
    assert sorted(sqlite_store.names()) == sorted(["Zürich prod 🚀", "y" * 80])


def test_only_scenario_parameters_are_stored_never_a_password(sqlite_store):
    with pytest.raises(store.StoreError, match="'password' looks like it holds a password") as e:
        sqlite_store.save("x", {**FLAT, "password": "hunter2"})
    assert "hunter2" not in str(e.value)
    with pytest.raises(store.StoreError, match="Not a valid scenario"):
        sqlite_store.save("x", {**FLAT, "workers": "lots"})
    assert sqlite_store.names() == []


def _hammer(s: store.ScenarioStore, threads: int = 8, per_thread: int = 15) -> list[str]:
    """Every thread saves its own names and also fights over one shared name."""
    errors: list[str] = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                s.save(f"t{t}-{i}", {**FLAT, "workers": str(t + 1), "app_instances": str(i + 1)})
                s.save("contested", {**FLAT, "workers": str(t + 1)})
        except Exception as exc:  # collected: an exception in a thread must fail the test
            errors.append(repr(exc))

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return errors


def _check_nothing_lost(s: store.ScenarioStore, threads: int = 8, per_thread: int = 15) -> None:
    saved = {x.name: x.params for x in s.list()}
    assert len(saved) == threads * per_thread + 1
    for t in range(threads):
        for i in range(per_thread):
            assert saved[f"t{t}-{i}"]["workers"] == str(t + 1)
            assert saved[f"t{t}-{i}"]["app_instances"] == str(i + 1)
    # last writer wins, and the winner is one complete scenario
    assert saved["contested"]["workers"] in {str(t + 1) for t in range(threads)}
    assert links.from_flat(saved["contested"]).provider == "aws-rds"


def test_concurrent_saves_lose_nothing_on_sqlite(sqlite_store):
    assert _hammer(sqlite_store) == []
    _check_nothing_lost(sqlite_store)


def test_concurrent_stores_on_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    a, b = store.ScenarioStore(url), store.ScenarioStore(url)
    errors: list[str] = []

    def save(s: store.ScenarioStore, tag: str) -> None:
        try:
            for i in range(20):
                s.save(f"{tag}{i}", FLAT)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=save, args=(s, tag)) for s, tag in ((a, "a"), (b, "b"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(a.names()) == 40


@pytest.mark.db
def test_concurrent_saves_lose_nothing_on_postgresql(pg):
    url = pg.url("postgresql+psycopg")
    s = store.ScenarioStore(url)
    try:
        with s.engine.begin() as conn:
            store.scenarios.drop(conn, checkfirst=True)
        store.metadata.create_all(s.engine)
        assert _hammer(s) == []
        _check_nothing_lost(s)
        # a second store on the same database sees the same rows
        other = store.ScenarioStore(url)
        assert other.load("t0-0")["workers"] == "1"
        other.close()
        with pytest.raises(store.StoreError, match="start or end with a space"):
            s.save("trailing ", FLAT)
    finally:
        with s.engine.begin() as conn:
            store.scenarios.drop(conn, checkfirst=True)
        s.close()


def test_saved_scenario_round_trips_through_share(sqlite_store):
    scenario = links.from_flat({"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
                                "proxy": "pgbouncer-transaction", "rps": "50", "hold_ms": "20"})
    sqlite_store.save("gcp", links.to_flat(scenario))
    assert links.from_flat(sqlite_store.load("gcp")) == scenario
    assert Path(sqlite_store.engine.url.database).stat().st_size > 0
    assert Scenario() != scenario


# --------------------------------------------------------------------------- failures, abuse


def test_read_only_directory_names_the_cause(monkeypatch):
    # /sys refuses new directories even to root: a read-only place for the store.
    monkeypatch.setenv("XDG_DATA_HOME", "/sys/poolwise-test-data")
    monkeypatch.delenv(store.ENV_URL, raising=False)
    with pytest.raises(store.StoreUnavailable) as info:
        store.ScenarioStore()
    assert "read-only" in str(info.value) and "/sys/poolwise-test-data" in str(info.value)


def test_read_only_file_names_the_cause(tmp_path):
    path = tmp_path / "ro.sqlite"
    store.ScenarioStore(f"sqlite:///{path}").save("kept", FLAT)
    ro = store.ScenarioStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert ro.load("kept") == FLAT  # reading still works
    with pytest.raises(store.StoreUnavailable, match="read-only"):
        ro.save("new", FLAT)


def test_corrupt_file_names_the_cause(tmp_path):
    path = tmp_path / "scenarios.sqlite"
    path.write_bytes(b"this is not a database, just garbage " * 200)
    with pytest.raises(store.StoreUnavailable) as info:
        store.ScenarioStore(f"sqlite:///{path}").list()
    assert "not a readable SQLite database" in str(info.value) and str(path) in str(info.value)


def _raw_rows(s: store.ScenarioStore, rows: dict[str, str]) -> None:
    """Rows written behind the store's back (another tool, an old version, a hand edit)."""
    now = store._now()
    with s.engine.begin() as conn:
        for name, text in rows.items():
            conn.execute(store.scenarios.insert().values(name=name, params=text,
                                                         created_at=now, updated_at=now))


def test_one_bad_row_never_hides_the_others(sqlite_store):
    sqlite_store.save("a good", FLAT)
    sqlite_store.save("z good", FLAT)
    _raw_rows(sqlite_store, {"b broken json": "{not json", "c a list": '["provider"]',
                             "d numbers": '{"workers": 4}',
                             "e huge": "{" + " " * (store.MAX_PARAMS_TEXT + 1) + "}"})
    rows = {r.name: r for r in sqlite_store.list()}
    assert set(rows) == {"a good", "z good", "b broken json", "c a list", "d numbers", "e huge"}
    assert rows["a good"].problem is None and rows["z good"].params == FLAT
    assert "not valid JSON" in rows["b broken json"].problem
    assert "JSON list, not an object" in rows["c a list"].problem
    assert "not all text" in rows["d numbers"].problem
    assert "characters long" in rows["e huge"].problem
    with pytest.raises(store.StoreError, match="JSON list"):
        sqlite_store.load("c a list")
    assert sqlite_store.delete("c a list")  # a bad row can still be removed


def test_replacing_keeps_the_earlier_version_and_restore_brings_it_back(sqlite_store):
    sqlite_store.save("prod", FLAT)
    sqlite_store.save("prod", {**FLAT, "workers": "8"})
    sqlite_store.save("prod", {**FLAT, "workers": "8"})  # same again: no new version
    assert [v.name for v in sqlite_store.versions("prod")] == ["prod"]
    sqlite_store.restore("prod")
    assert sqlite_store.load("prod") == FLAT
    assert len(sqlite_store.versions("prod")) == 2  # the replaced "8" is kept in turn


def test_delete_can_be_undone(sqlite_store):
    sqlite_store.save("gone", {**FLAT, "workers": "3"})
    assert sqlite_store.delete("gone")
    assert sqlite_store.names() == []
    sqlite_store.restore("gone")
    assert sqlite_store.load("gone")["workers"] == "3"


def test_versions_kept_per_name_are_bounded(sqlite_store):
    for i in range(store.KEEP_VERSIONS + 5):
        sqlite_store.save("busy", {**FLAT, "workers": str(i + 1)})
    assert len(sqlite_store.versions("busy")) == store.KEEP_VERSIONS


def test_pages_and_search_in_sql(sqlite_store):
    now = store._now()
    with sqlite_store.engine.begin() as conn:
        conn.execute(store.scenarios.insert(), [
            {"name": f"svc {i:05d}", "params": '{"provider": "neon"}', "created_at": now,
             "updated_at": now} for i in range(10_000)])
    sqlite_store.save("100% _odd_ name", FLAT)
    assert sqlite_store.count() == 10_001
    page = sqlite_store.page(0, store.PAGE_SIZE)
    assert [p.name for p in page][:2] == ["100% _odd_ name", "svc 00000"]
    assert len(page) == store.PAGE_SIZE
    assert [p.name for p in sqlite_store.page(9_990, 100)][-1] == "svc 09999"
    assert sqlite_store.count("svc 0999") == 10
    assert sqlite_store.count("%") == 1 and sqlite_store.count("_odd_") == 1  # literal
    assert sqlite_store.count("SVC 00001") == 1  # case-insensitive


def _estate_of_32() -> dict[str, str]:
    """A valid 32-service scenario with every service's keys set, names at their maximum."""
    flat = {"provider": "self-hosted", "max_connections": "262143", "replicas": "2",
            "replica_max_connections": "262143,262143", "replica_regions": "eu-west-1,us-east-1",
            "max_connections_source": "measured 2026-11-25T10:00Z on the primary by the DBA team",
            "proxy": "none"}
    for i in range(1, 33):
        name = f"service-{i:02d}-" + "x" * 29
        flat.update({f"s{i}_name": name[:40], f"s{i}_kind": "worker",
                     f"s{i}_endpoints": "primary,replica-1,replica-2", f"s{i}_weight": "1.25",
                     f"s{i}_app_instances": "2", f"s{i}_max_app_instances": "6",
                     f"s{i}_deploy_surge_percent": "50", f"s{i}_workers": "4",
                     f"s{i}_engines": "2", f"s{i}_app_vcpus": "4", f"s{i}_split": "0.65",
                     f"s{i}_rps": "125.5", f"s{i}_hold_ms": "12.25", f"s{i}_p95_hold_ms": "80.5",
                     f"s{i}_current_pool_size": "5", f"s{i}_current_max_overflow": "10",
                     f"s{i}_current_pool_recycle": "1800",
                     f"s{i}_current_poolclass": "AsyncAdaptedQueuePool"})
    return flat


def test_a_32_service_scenario_that_saves_loads_and_restores(sqlite_store):
    from wizard.core import plan
    flat = _estate_of_32()
    plan.validate(links.from_flat(flat))  # a scenario poolwise sizes
    assert len(store.json.dumps(flat)) > 8000  # the old limit of what the store read back
    sqlite_store.save("estate", flat)
    assert sqlite_store.load("estate") == flat
    (row,) = sqlite_store.list()
    assert row.problem is None and row.params == flat
    sqlite_store.save("estate", {"provider": "aws-rds"})
    sqlite_store.restore("estate")
    assert sqlite_store.load("estate") == flat


def test_whatever_the_core_accepts_fits_what_the_store_reads():
    """The largest flat parameters links.check_text lets through (every value at its
    maximum, of characters JSON escapes, with 32 services) are no longer than the store
    reads back."""
    flat = {p.key: '"' * links.max_chars(p.key) for p in links.PARAMS}
    for i in range(1, 33):
        flat.update({links.service_key(i, k): "\\" * links.max_chars(k)
                     for k in links.SERVICE_KEYS})
    links.check_text({k: v.replace('"', "a").replace("\\", "a") for k, v in flat.items()})
    assert len(store.json.dumps(flat, sort_keys=True)) <= store.MAX_PARAMS_TEXT
