"""The installed command (issue 14): build the wheel, install it into a fresh virtual
environment and run `poolwise` from a directory outside the checkout.

The wheel is built offline (hatchling from requirements-dev.txt, no build isolation). The fresh
venv gets its dependencies from the test venv's site-packages through a .pth file and pip
installs the wheel with --no-index: no download, a few seconds, and pip still checks every
dependency pyproject.toml declares against the pinned set. POOLWISE_INSTALL_TEST=full installs
the dependencies from the registry instead, as `pip install .` does (about 35 s more).
"""

from __future__ import annotations

import json
import os
import py_compile
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.apptest import new_app, no_exception
from tests.pgserver import free_port

ROOT = Path(__file__).resolve().parent.parent
RECOMMEND = ["recommend", "--provider", "azure-flexible", "--instance-class", "B2s",
             "--app-instances", "2", "--max-app-instances", "4", "--workers", "2"]


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    poolwise: Path
    outside: Path  # an empty working directory outside the checkout
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.poolwise), *args], cwd=self.outside, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def py(self, code: str) -> str:
        out = subprocess.run([str(self.python), "-c", code], cwd=self.outside, env=self.env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


def _sh(*cmd: str | Path, **kw) -> None:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{cmd}: {out.stdout}\n{out.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("install")
    dist, venv, outside = tmp / "dist", tmp / "venv", tmp / "elsewhere"
    outside.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _sh(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist, ROOT)
    (wheel,) = dist.glob("poolwise-*.whl")
    python = venv / "bin" / "python"
    if os.environ.get("POOLWISE_INSTALL_TEST") == "full":
        _sh(sys.executable, "-m", "venv", venv)
        _sh(python, "-m", "pip", "install", "-q", wheel)
    else:
        _sh(sys.executable, "-m", "venv", "--without-pip", venv)
        site = subprocess.run([str(python), "-c", "import sysconfig; "
                               "print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
        Path(site, "_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
        _sh(*pip, "--python", python, "install", "--no-index", "-q", wheel)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "POOLWISE_STORE_URL")
           and not k.startswith("STREAMLIT_")}
    env["XDG_DATA_HOME"] = str(tmp / "xdg")
    return Installed(venv, python, venv / "bin" / "poolwise", outside, env)


def checkout(*args: str) -> subprocess.CompletedProcess:
    """The same verb through `python -m wizard` in the checkout, to compare against."""
    return subprocess.run([sys.executable, "-m", "wizard", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_installed_copy_carries_its_data_and_settings(installed: Installed) -> None:
    wizard_file, data_dir = installed.py(
        "import wizard, wizard.catalog as c; print(wizard.__file__); print(c.DATA_DIR)"
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
