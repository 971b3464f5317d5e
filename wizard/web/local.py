"""A throwaway local `streamlit run` of a script, for the benchmarks and the browser tests:
start it on a loopback port, wait until it answers its health check, stop it. Also the
flags they give Debian's Chromium (Playwright cannot download its own browser here)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as resp:
                if resp.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("streamlit did not become healthy in time")


def start_streamlit(script: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    streamlit = Path(sys.executable).parent / "streamlit"
    return subprocess.Popen(
        [str(streamlit), "run", str(script), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
