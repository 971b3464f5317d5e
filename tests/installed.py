"""The installed command as a session fixture (issue 14): the wheel is built and installed into
a fresh virtual environment once per test session, then tests run `poolwise` from a directory
outside the checkout (tests/test_install.py, tests/test_guard.py).

The wheel is built offline (hatchling from requirements-dev.txt, no build isolation). The fresh
venv gets its dependencies from the test venv's site-packages through a .pth file and pip
installs the wheel with --no-index: no download, a few seconds, and pip still checks every
dependency pyproject.toml declares against the pinned set. POOLWISE_INSTALL_TEST=full installs
the dependencies from the registry instead, as `pip install .` does (about 35 s more).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="session")
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


