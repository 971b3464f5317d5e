"""Where the live check connects: a parsed URL, the password kept apart, operator controls."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from wizard.live.errors import LiveError

ENV_PASSWORD = "POOLWISE_LIVE_PASSWORD"
ENV_DISABLED = "POOLWISE_LIVE_DISABLED"
ENV_ALLOWED_HOSTS = "POOLWISE_LIVE_ALLOWED_HOSTS"

SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Query keys that carry a secret (libpq's password/sslpassword, tokens): refused, never read.
_SECRET_KEY = re.compile(r"pass|pwd|token|secret|signature|credential|x-amz", re.IGNORECASE)
# libpq keywords poolwise does not read: named in the error. Any other key is not shown,
# since a mistyped URL can put part of a password after "?".
_KNOWN_KEYS = frozenset((
    "application_name", "channel_binding", "connect_timeout", "dbname", "gssencmode",
    "host", "hostaddr", "keepalives", "keepalives_idle", "load_balance_hosts", "options",
    "port", "prepared_statement_cache_size", "sslcert", "sslkey", "sslrootcert",
    "sslcrl", "target_session_attrs", "user", "server_settings", "timeout",
))


@dataclass(frozen=True)
class LiveTarget:
    """A database or pooler endpoint. The password never shows in repr, str or to_dict."""

    host: str
    port: int
    user: str
    database: str
    password: str | None = field(default=None, repr=False, compare=False)
    ssl: str = "prefer"
    password_from: str = "none"  # "argument", "url", "env" or "none"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{self.user}@{host}:{self.port}/{self.database}"

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "user": self.user,
                "database": self.database, "ssl": self.ssl, "url": str(self),
                "password_given": self.password is not None}


def parse_target(
    url: str,
    password: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    password_env: str = ENV_PASSWORD,
) -> LiveTarget:
    """Parse postgresql://user@host:port/db[?sslmode=...]; raise LiveError if malformed.

    The password comes from `password`, else the URL, else the `password_env` variable
    of `env` - only when `env` is given: a web deployment must not lend the operator's
    password to a host a visitor typed. Error messages never repeat the URL (it may hold
    a password).
    """
    env = {} if env is None else env
    bad = "Use postgresql://USER@HOST:PORT/DATABASE (password in the password field or " \
          f"the {password_env} environment variable)."
    if not isinstance(url, str) or not url.strip():
        raise LiveError("The database URL is empty.", bad, "bad_url")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise LiveError("The database URL is malformed (bad port or brackets).", bad,
                        "bad_url") from None
    if parts.scheme.lower() not in SCHEMES:
        raise LiveError(f"The database URL must start with postgresql://, not "
                        f"{parts.scheme[:20]!r}.", bad, "bad_url")
    host = parts.hostname or ""
    if not host:
        raise LiveError("The database URL names no host.", bad, "bad_url")
    user = unquote(parts.username or "")
    if not user:
        raise LiveError("The database URL names no user.", bad, "bad_url")
    database = unquote(parts.path.lstrip("/")) or user
    if "/" in database:
        raise LiveError("The database URL path must be one database name.", bad, "bad_url")
    ssl = "prefer"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_KEY.search(key) or _SECRET_KEY.search(value):
            raise LiveError("The database URL holds a password or token in its query string.",
                            "remove it and use the password field or the "
                            f"{password_env} environment variable.", "bad_url")
        if key in ("sslmode", "ssl"):
            value = {"true": "require", "false": "disable"}.get(value.lower(), value.lower())
            if value not in SSL_MODES:
                raise LiveError("The sslmode in the URL is not valid.",
                                "use one of " + ", ".join(SSL_MODES) + ".", "bad_url")
            ssl = value
        else:
            name = repr(key) if key in _KNOWN_KEYS else "(name not shown)"
            raise LiveError(f"The database URL has an unsupported parameter {name}.",
                            "only sslmode=... is read; drop the others.", "bad_url")
    source, secret = "none", None
    if password is not None and password != "":
        source, secret = "argument", password
    elif parts.password:
        source, secret = "url", unquote(parts.password)
    elif env.get(password_env):
        source, secret = "env", env[password_env]
    return LiveTarget(host=host, port=port or 5432, user=user, database=database,
                      password=secret, ssl=ssl, password_from=source)


def live_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when the operator switched the live check off (POOLWISE_LIVE_DISABLED)."""
    env = os.environ if env is None else env
    return env.get(ENV_DISABLED, "").strip().lower() not in ("1", "true", "yes", "on")


def allowed_hosts(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The operator's host patterns (POOLWISE_LIVE_ALLOWED_HOSTS); empty means any host."""
    env = os.environ if env is None else env
    raw = env.get(ENV_ALLOWED_HOSTS, "")
    return tuple(p.strip().lower() for p in raw.split(",") if p.strip())


def check_allowed(target: LiveTarget, env: Mapping[str, str] | None = None) -> None:
    """Raise LiveError unless the operator allows a live check against this host.

    Runs on the name as typed, before any DNS lookup or connection.
    """
    if not live_enabled(env):
        raise LiveError("The live check is switched off on this deployment.",
                        f"ask the operator, or run it locally (unset {ENV_DISABLED}).",
                        "disabled")
    patterns = allowed_hosts(env)
    host = target.host.lower().rstrip(".")
    if patterns and not any(fnmatch.fnmatchcase(host, p) for p in patterns):
        raise LiveError(f"Host {target.host!r} is not on this deployment's allowlist.",
                        f"use an allowed host ({', '.join(patterns)}) or ask the operator to "
                        f"extend {ENV_ALLOWED_HOSTS}.", "host_not_allowed")
