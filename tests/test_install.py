"""The installed command (issue 14): build the wheel, install it into a fresh virtual
environment and run `poolwise` from a directory outside the checkout (the `installed`
fixture, tests/installed.py: one build per session, shared with tests/test_guard.py).
"""

from __future__ import annotations

import json
import py_compile
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.installed import ROOT, Installed
from tests.support import new_app, no_exception
from wizard.fleet.pgserver import free_port

RECOMMEND = ["recommend", "--provider", "azure-flexible", "--instance-class", "B2s",
             "--app-instances", "2", "--max-app-instances", "4", "--workers", "2"]


def checkout(*args: str) -> subprocess.CompletedProcess:
    """The same verb through `python -m wizard` in the checkout, to compare against."""
    return subprocess.run([sys.executable, "-m", "wizard", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_installed_copy_carries_its_data_and_settings(installed: Installed) -> None:
    wizard_file, data_dir = installed.py(
        "import wizard, wizard.core.catalog as c; print(wizard.__file__); print(c.DATA_DIR)"
    ).splitlines()
    assert Path(wizard_file).is_relative_to(installed.venv)  # not the checkout
    shipped = Path(data_dir)
    assert shipped.is_relative_to(installed.venv)
    repo = sorted(p.name for p in (ROOT / "data").iterdir())
    assert sorted(p.name for p in shipped.iterdir()) == repo
    for name in repo:
        assert (shipped / name).read_bytes() == (ROOT / "data" / name).read_bytes(), name
    # Streamlit's own lookup (config beside the main script) gives the packaged app the
    # checkout's security settings; test_security checks the file's values.
    script = Path(wizard_file).parent / "web" / "app.py"
    shown = installed.py(
        "from streamlit import config; "
        f"config._main_script_path = {str(script)!r}; "
        "config.get_config_options(force_reparse=True); "
        "print(config.get_option('client.showErrorDetails'), "
        "config.get_option('server.enableXsrfProtection'))")
    want = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert shown == f"{want['client']['showErrorDetails']} {want['server']['enableXsrfProtection']}"


@pytest.mark.slow
def test_installed_recommend_matches_the_checkout(installed: Installed) -> None:
    out = installed.run(*RECOMMEND, "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    # Azure's concepts-limits table: B2s default max_connections 429.
    assert got["endpoints"][0]["max_connections"] == 429
    ref = checkout(*RECOMMEND, "--json")
    assert ref.returncode == 0, ref.stderr
    assert got == json.loads(ref.stdout)
    usage = installed.run("--help")
    assert usage.stdout.startswith("usage: poolwise ") and " app" in usage.stdout
    bad = installed.run("recommend", "--provider", "nowhere")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "valid choices" in bad.stderr


@pytest.mark.slow
def test_installed_export_writes_the_same_module(installed: Installed) -> None:
    out = installed.run("export", *RECOMMEND[1:], "-o", "db.py")
    assert out.returncode == 0, out.stderr
    written = installed.outside / "db.py"
    py_compile.compile(str(written), doraise=True)
    ref = checkout("export", *RECOMMEND[1:], "-o", "-")
    assert ref.returncode == 0, ref.stderr
    assert written.read_text() == ref.stdout


@pytest.mark.slow
def test_installed_page_draws_the_same_wizard(installed: Installed) -> None:
    """The packaged script, run from the installed copy, draws what the checkout's app.py does."""
    shown = installed.py(
        "import json, pathlib, wizard.web; from streamlit.testing.v1 import AppTest; "
        "at = AppTest.from_file(str(pathlib.Path(wizard.web.__file__).parent / 'app.py'), "
        "default_timeout=60).run(); "
        "print(json.dumps([[e.value for e in at.exception], [m.value for m in at.markdown]]))")
    errors, markdown = json.loads(shown.splitlines()[-1])
    assert errors == []
    ref = new_app(timeout=60)
    no_exception(ref)
    assert markdown == [m.value for m in ref.markdown]
    assert any("usable" in m for m in markdown)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


@pytest.mark.slow
def test_installed_app_serves(installed: Installed) -> None:
    port = free_port()
    proc = subprocess.Popen([str(installed.poolwise), "app", "--port", str(port)],
                            cwd=installed.outside, env=installed.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first, first
        health, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{port}/_stcore/health")
                break
            except OSError:
                time.sleep(0.3)
        assert health == (200, "ok"), (health, proc.poll())
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "<html" in page.lower()
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        proc.stdout.close()
    assert code == 0


@pytest.mark.parametrize("args, words", [
    (["--port", "70000"], "1 to 65535"),
    (["--port", "80", "stray"], "after --"),
])
def test_app_refuses_bad_options_in_one_line(args: list[str], words: str) -> None:
    out = checkout("app", *args)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1 and words in out.stderr
