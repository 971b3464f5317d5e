"""Browser fixtures: `streamlit run app.py` on a free loopback port and Debian's Chromium
driven by Playwright (Playwright cannot download its own browser here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wizard.fleet.pgserver import free_port
from wizard.web.local import CHROMIUM_ARGS, start_streamlit, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    """The wizard served by a real `streamlit run`, with a private scenario store."""
    port = free_port()
    data = tmp_path_factory.mktemp("xdg")
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    env.pop("POOLWISE_STORE_URL", None)
    proc = start_streamlit(ROOT / "app.py", port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (installs Debian's chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
