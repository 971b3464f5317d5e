"""What a secret looks like, so that no scenario parameter, saved scenario or export carries one.

Scenario parameters are free text in a few places (max_connections_source, regions, versions);
a pasted password, token or credentialed URL is refused there, never repeated back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

CREDENTIAL = re.compile(
    r"://[^/\s@]*:[^/\s@]*@"  # scheme://user:password@
    r"|\b(ssl)?(password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]"
    r"|X-Amz-(Signature|Credential|Security-Token)|Action(=|%3D)connect"  # RDS IAM token
    r"|-----BEGIN|\beyJ[A-Za-z0-9_-]{8,}\.|\bAKIA[0-9A-Z]{16}\b",  # PEM key, JWT, AWS key
    re.IGNORECASE)


def looks_like_credential(text: str) -> bool:
    """True when the text contains something shaped like a password, token or key."""
    return bool(CREDENTIAL.search(text))


def credential_params(params: Mapping[str, object]) -> list[str]:
    """Keys whose name or value looks like a password, token or URL with credentials."""
    return [str(k) for k, v in params.items()
            if looks_like_credential(str(v)) or looks_like_credential(f"{k}=")]


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every secret, as given or URL-encoded, replaced by ***."""
    from urllib.parse import quote, quote_plus

    forms = {f for s in secrets if s for f in (s, quote(s, safe=""), quote_plus(s))}
    # Longest first, so a secret is never half-replaced by one of its own substrings.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text
