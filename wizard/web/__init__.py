"""`poolwise app`: serve the web app (wizard/web/app.py) with Streamlit, from any directory.

Streamlit reads .streamlit/config.toml beside the script it runs; the wheel ships the
checkout's file there (pyproject.toml), so the installed app keeps XSRF protection and
showErrorDetails = "none". Options the operator sets (STREAMLIT_* variables, flags after
`--`) still win over that file, as with `streamlit run`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wizard.core.model import ScenarioError

HERE = Path(__file__).resolve().parent
CHECKOUT_APP = HERE.parent.parent / "app.py"
DEFAULT_PORT = 8501
# This machine only, like a development server: a shared copy sits behind a reverse proxy
# (SECURITY.md) or is started with --address 0.0.0.0.
DEFAULT_ADDRESS = "127.0.0.1"


def app_script() -> Path:
    """The script to serve: the packaged one, or the checkout's app.py when running from a
    checkout (there the settings file sits beside app.py, not in wizard/web)."""
    packaged = HERE / "app.py"
    if not (HERE / ".streamlit" / "config.toml").exists() and CHECKOUT_APP.exists():
        return CHECKOUT_APP
    return packaged


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def serve_url(address: str, port: int) -> str:
    """Where a browser on this machine reaches the app (all interfaces are said so)."""
    if address in ("", "0.0.0.0", "::"):
        return f"http://localhost:{port}/ (listening on all interfaces, {address or '*'})"
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/"


def _setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=_port, help="TCP port (default: $STREAMLIT_SERVER_PORT or "
                   f"{DEFAULT_PORT})")
    p.add_argument("--address", help="address to listen on (default: $STREAMLIT_SERVER_ADDRESS "
                   f"or {DEFAULT_ADDRESS}, this machine only; 0.0.0.0 serves the network)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, metavar="-- STREAMLIT_OPTION",
                   help="further `streamlit run` options after --, e.g. "
                   "-- --server.baseUrlPath poolwise")


def _run(args: argparse.Namespace) -> int:
    extra = list(args.streamlit_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        raise ScenarioError(f"unexpected argument {extra[0]!r}; put Streamlit options after --")
    env_port = os.environ.get("STREAMLIT_SERVER_PORT", "")
    try:
        port = args.port or (_port(env_port) if env_port else DEFAULT_PORT)
    except argparse.ArgumentTypeError as exc:
        raise ScenarioError(f"STREAMLIT_SERVER_PORT: {exc}") from None
    address = args.address or os.environ.get("STREAMLIT_SERVER_ADDRESS") or DEFAULT_ADDRESS

    from streamlit.web import cli as streamlit_cli  # only this verb pays for the import

    print(f"poolwise: serving the web app at {serve_url(address, port)}; Ctrl-C stops it",
          flush=True)
    # Streamlit's own welcome lines would look up this machine's public IP on the internet
    # (server.headless with all interfaces); the line above says where it serves instead.
    flags = ["--server.port", str(port), "--server.address", address,
             "--server.headless", "true", "--logger.hideWelcomeMessage", "true", *extra]
    # Runs the server in this process until it stops, then exits with Streamlit's code.
    return streamlit_cli.main(["run", str(app_script()), *flags], prog_name="streamlit")
