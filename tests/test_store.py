"""Saved scenarios through SQLAlchemy: SQLite by default, the real PostgreSQL fixture too."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from wizard import share, store
from wizard.model import Scenario

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
    assert share.from_flat(sqlite_store.load("b scenario")).workers == 8
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
    assert share.from_flat(saved["contested"]).provider == "aws-rds"


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
    scenario = share.from_flat({"provider": "gcp-cloudsql", "instance_class": "db-custom-2-7680",
                                "proxy": "pgbouncer-transaction", "rps": "50", "hold_ms": "20"})
    sqlite_store.save("gcp", share.to_flat(scenario))
    assert share.from_flat(sqlite_store.load("gcp")) == scenario
    assert Path(sqlite_store.engine.url.database).stat().st_size > 0
    assert Scenario() != scenario
