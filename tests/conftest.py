"""Shared fixtures: real PostgreSQL 15 and PgBouncer servers on 127.0.0.1 (never mocks).

    pg                  session-scoped PgServer (poolwise_app role, poolwise database)
    pgbouncer           session-scoped Bouncer, pool_mode=transaction, in front of `pg`
    pgbouncer_factory   function-scoped: pgbouncer_factory(pool_mode="session", **ini)
                        starts an extra Bouncer, stopped at the end of the test
    installed           session-scoped: the wheel built and installed into a fresh venv
                        (tests/installed.py), for runs of the `poolwise` command

A missing binary makes the fixture FAIL (not skip) with a hint to run `make test`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.installed import installed  # noqa: F401  (a shared fixture)
from wizard.fleet.pgserver import (
    Bouncer,
    InfraMissingError,
    PgServer,
    pgbouncer_server,
    postgres_server,
)


@contextlib.contextmanager
def _fail_if_missing() -> Iterator[None]:
    try:
        yield
    except InfraMissingError as exc:
        pytest.fail(f"test infrastructure missing: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """Throwaway PostgreSQL 15 cluster for the whole session."""
    with _fail_if_missing():
        cm = postgres_server()
        server = cm.__enter__()
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def pgbouncer(pg: PgServer) -> Iterator[Bouncer]:
    """PgBouncer (transaction pooling, default_pool_size=10) in front of `pg`."""
    with _fail_if_missing():
        cm = pgbouncer_server(pg, pool_mode="transaction")
        bouncer = cm.__enter__()
    try:
        yield bouncer
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture
def pgbouncer_factory(pg: PgServer) -> Iterator[Callable[..., Bouncer]]:
    """Start extra PgBouncers with other settings; all stopped when the test ends."""
    stack = contextlib.ExitStack()

    def start(pool_mode: str = "transaction", **settings: object) -> Bouncer:
        with _fail_if_missing():
            return stack.enter_context(pgbouncer_server(pg, pool_mode=pool_mode, **settings))

    with stack:
        yield start


# Deployment settings a test of the app must not inherit from the machine it runs on.
APP_SETTINGS = ("POOLWISE_STORE_URL", "POOLWISE_LIVE_DISABLED", "POOLWISE_ALLOWED_HOSTS",
                "POOLWISE_LIVE_ALLOWED_HOSTS", "POOLWISE_LIVE_DETAILED_ERRORS",
                "POOLWISE_LIVE_MAX_PER_MINUTE", "POOLWISE_LIVE_MAX_CONCURRENT",
                "POOLWISE_LIVE_MAX_PER_MINUTE_ALL", "POOLWISE_PUBLIC_URL")


@pytest.fixture
def isolated_app(tmp_path, monkeypatch):
    """Fresh Streamlit caches, a private store file and no deployment settings; the fixture
    servers listen on random ports, outside the web check's default port list."""
    import streamlit as st

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")
    from wizard.live import limits

    limits._ALL.clear()  # the process-wide live-check rate starts afresh for each test
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()
