"""What a secret looks like, so that no scenario parameter, saved scenario or export carries one.

Scenario parameters are free text in a few places (max_connections_source, regions, versions);
a pasted password, token or credentialed URL is refused there, never repeated back.
"""

from __future__ import annotations

import re
import urllib.parse
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


# Redaction by structure: the password field of any scheme://user:password@host, and the
# value of a parameter whose name says it is secret (password=..., "sslpassword": "...",
# PGPASSWORD=..., X-Amz-Signature=...). Never a search for the value in free text: with
# password "x", masking every "x" would spell the password out by which letters went.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s/@:]*:)[^\s/@]*(?=@)",
                           re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"(?P<head>\b(?:ssl)?(?:pg)?(?:password|passwd|pwd|passfile|secret|token|api[_-]?key"
    r"|X-Amz-(?:Signature|Credential|Security-Token))[\"']?\s*(?:=|:|%3D)\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)", re.IGNORECASE)
WITHHELD = ("(text withheld: it repeats the password; poolwise never shows or masks it "
            "letter by letter)")


def redact(text: str) -> str:
    """`text` with URL passwords and secret parameters' values replaced by ***, found by
    their place (scheme://user:***@, password=***), never by searching for a value."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + "***", text)
    return _SECRET_VALUE.sub(lambda m: m["head"] + "***", text)


def scrub(text: str, *secrets: str | None) -> str:
    """One message from outside (a driver's or server's error) made safe to show: redacted
    by structure (see `redact`), and withheld whole if it still holds a secret, as given
    or URL-encoded (a server that repeats the password in its own words). Never masked in
    place: which letters went would spell a short password out."""
    from urllib.parse import quote, quote_plus

    text = redact(text)
    forms = {f for s in secrets if s for f in (s, quote(s, safe=""), quote_plus(s))}
    return WITHHELD if any(f in text for f in forms) else text


def url_to_keep(url: str) -> str:
    """The URL to leave in the field after a run: as typed when it holds no password or
    token, else empty (never a secret back on screen or in the session)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        has_password = parts.password is not None
    except ValueError:
        return ""
    if has_password or looks_like_credential(url) or not url.isprintable():
        return ""
    return url.strip()
