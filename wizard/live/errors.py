"""How a live check fails: LiveError (a message and the likely fix), and the helpers that
keep what a server sends short and free of secrets. A leaf: it imports no other part of
the live check (wizard/live/diagnosis.py turns a driver failure into a LiveError).

Messages never carry the password: they are built from the host, port, user and
database only, and anything taken from a driver error passes through `scrub`.
"""

from __future__ import annotations

from wizard.scenario import redact


class LiveError(Exception):
    """A live check failed or refused; `message` says what, `fix` what to do."""

    def __init__(self, message: str, fix: str, code: str = "failed"):
        super().__init__(f"{message} Fix: {fix}")
        self.message = message
        self.fix = fix
        self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "fix": self.fix}


scrub = redact.scrub  # one home for redaction; re-exported for the live check
MAX_SERVER_TEXT = 200  # characters of any server text kept or shown


def short(text: str, most: int = MAX_SERVER_TEXT) -> str:
    """Server text as shown: its first line, at most `most` characters."""
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    return line[:most] + ("…" if len(line) > most or len(lines) > 1 else "")


def address(host: str, port: int) -> str:
    """host:port as a message shows it ([v6 address]:port)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
