"""URLs and their secrets: what a fleet run may show of a URL, and what it must scrub.

The password reaches the processes only; every message is scrubbed before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from wizard.scenario import redact

# Query keys that carry a secret (asyncpg reads ?password=... as the password).
_SECRET_KEY = re.compile(r"pass|pwd|token|secret|signature|credential|x-amz", re.IGNORECASE)


def secret_query(url: Any) -> dict[str, str]:
    """Query parameters of a parsed URL whose key or value looks like a secret."""
    out = {}
    for k, v in url.query.items():
        for item in (v if isinstance(v, tuple) else (v,)):
            if _SECRET_KEY.search(k) or _SECRET_KEY.search(str(item)):
                out[k] = str(item)
    return out


def safe_url(url: str) -> str:
    """The URL for display: password masked, secret-looking query values masked too."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
        hidden = secret_query(u)
        if hidden:
            u = u.set(query={k: ("***" if k in hidden else v) for k, v in u.query.items()})
        return u.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
    except Exception:  # noqa: BLE001 - a bad URL must still never print its password
        return "<unparseable url>"


def secrets_of(url: str) -> list[str]:
    """Every form a URL's secrets may take in a message: as given, decoded and URL-quoted."""
    from urllib.parse import quote, quote_plus

    from sqlalchemy.engine import URL, make_url

    found: list[str] = []
    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001
        return found
    values = [v for v in [u.password, *secret_query(u).values()] if v]
    for v in values:
        rendered = URL.create("x", username="u", password=v).render_as_string(
            hide_password=False)[len("x://u:"):-1]
        found += [v, rendered, quote(v, safe=""), quote_plus(v)]
    # Longest first, so a secret is never half-replaced by one of its own substrings.
    return sorted({f for f in found if f}, key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """One error message made safe to show (wizard.scenario.redact.scrub): passwords redacted by
    structure, the whole message withheld if it still repeats a secret."""
    return redact.scrub(text, *secrets)


def make_url_password(url: str) -> str | None:
    """The password written in a URL, if any."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # noqa: BLE001 - the message could echo the URL
        return None


def with_password(url: str, password: str | None) -> str:
    """The URL with `password` set (when given), rendered with it, for the processes only."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if password:
        u = u.set(password=password)
    return u.render_as_string(hide_password=False)
