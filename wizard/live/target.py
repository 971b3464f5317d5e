"""Where the live check connects: a parsed URL, the password kept apart, operator controls."""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import os
import re
import socket
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from wizard.live.errors import LiveError

ENV_PASSWORD = "POOLWISE_LIVE_PASSWORD"
ENV_DISABLED = "POOLWISE_LIVE_DISABLED"
ENV_ALLOWED_HOSTS = "POOLWISE_LIVE_ALLOWED_HOSTS"
ENV_ALLOWED_PORTS = "POOLWISE_LIVE_ALLOWED_PORTS"
# PostgreSQL (5432, and 5433-5439 for extra clusters on one host), PgBouncer (6432),
# Supabase's transaction pooler (6543): the ports a visitor of the web app may check.
DEFAULT_PORTS = "5432-5439,6432,6543"
# Values of POOLWISE_LIVE_DISABLED that leave the live check on; anything else switches it off.
_ENABLED_WORDS = ("", "0", "false", "no", "off")

# Cloud instance-metadata services and link-local networks: never a database, always refused
# (by name as typed and by every address the name resolves to).
METADATA_NAMES = frozenset((
    "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.internal",
    "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com",
    "metadata.platformequinix.com",
))
_BLOCKED_NETS = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16",  # IPv4 link-local: AWS/GCP/Azure/OCI metadata 169.254.169.254, ECS .170.2
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "0.0.0.0/32", "::/128",  # "this host" wildcards
))

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
    if isinstance(url, str) and has_control(url.strip()) or (password and has_control(password)):
        raise LiveError("The database URL or password contains a control character (newline, "
                        "tab, ...).", "type them again without control characters.", "bad_url")
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
    if any(has_control(part) for part in (host, user, database)):  # also %0D%0A-encoded
        raise LiveError("The database URL contains a control character (newline, tab, ...), "
                        "also percent-encoded.", "remove it from the user, host and database.",
                        "bad_url")
    return LiveTarget(host=host, port=port or 5432, user=user, database=database,
                      password=secret, ssl=ssl, password_from=source)


def has_control(text: str) -> bool:
    """True when `text` holds a control or format character (CR, LF, NUL, tab, bidi...)."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def live_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when the operator switched the live check off: POOLWISE_LIVE_DISABLED set to
    anything but empty, 0, false, no or off (a typo must not leave it on)."""
    env = os.environ if env is None else env
    return env.get(ENV_DISABLED, "").strip().lower() in _ENABLED_WORDS


def allowed_hosts(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The operator's host patterns (POOLWISE_LIVE_ALLOWED_HOSTS); empty means any host."""
    env = os.environ if env is None else env
    raw = env.get(ENV_ALLOWED_HOSTS, "")
    return tuple(p.strip().lower() for p in raw.split(",") if p.strip())


_OCTETS = re.compile(r"^(\d{1,3}|\*)(\.(\d{1,3}|\*)){0,3}$")


@dataclass(frozen=True)
class HostPatterns:
    """POOLWISE_LIVE_ALLOWED_HOSTS split by kind: address patterns match addresses only
    (CIDR "10.0.0.0/24", an address, or the legacy "10.0.0.*" read octet by octet), name
    patterns ("db.internal", "*.internal") match names only, never an address's text."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    octets: tuple[tuple[str, ...], ...] = ()  # "10.0.*.5" -> ("10", "0", "*", "5")
    names: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return not (self.networks or self.octets or self.names)

    def address_ok(self, address: str) -> bool:
        ip = _ip(address)
        if ip is None:
            return False
        forms = (ip, ip.ipv4_mapped) if ip.version == 6 and ip.ipv4_mapped else (ip,)
        for a in forms:
            if any(a in net for net in self.networks if net.version == a.version):
                return True
            if a.version == 4 and any(all(p in ("*", str(int(q))) for p, q in
                                          zip(pat, str(a).split("."), strict=True))
                                      for pat in self.octets):
                return True
        return False

    def name_ok(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host, p) for p in self.names)


def host_patterns(env: Mapping[str, str] | None = None) -> HostPatterns:
    """The operator's allowlist, parsed (see HostPatterns); "*" alone allows every host."""
    networks, octets, names = [], [], []
    for p in allowed_hosts(env):
        if p == "*":
            return HostPatterns()
        try:
            networks.append(ipaddress.ip_network(p.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if _OCTETS.match(p):  # legacy "10.0.0.*": an address pattern, never a name
            parts = p.split(".")
            parts += ["*"] * (4 - len(parts)) if parts[-1] == "*" else []
            if len(parts) == 4 and all(x == "*" or int(x) <= 255 for x in parts):
                octets.append(tuple(x if x == "*" else str(int(x)) for x in parts))
            continue  # a malformed address pattern allows nothing
        if any(c.isalpha() for c in p):
            names.append(p.rstrip("."))
    return HostPatterns(tuple(networks), tuple(octets), tuple(names))


def allowed_ports(env: Mapping[str, str] | None = None) -> tuple[tuple[int, int], ...]:
    """Port ranges a visitor may check (POOLWISE_LIVE_ALLOWED_PORTS, e.g. "5432,6432,7000-7010";
    default 5432-5439,6432,6543). A malformed setting allows nothing rather than everything."""
    env = os.environ if env is None else env
    raw = env.get(ENV_ALLOWED_PORTS, "").strip() or DEFAULT_PORTS
    out = []
    for item in raw.split(","):
        lo, _, hi = item.strip().partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            return ()
        if not 1 <= a <= b <= 65535:
            return ()
        out.append((a, b))
    return tuple(out)


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64 (well-known and
# local-use, RFC 6052/8215), SIIT's IPv4-translated form (RFC 2765), the deprecated
# IPv4-compatible form. IPv4-mapped (::ffff:0:0/96), 6to4 and Teredo are read by ipaddress.
_V4_IN_LAST_32 = tuple(ipaddress.ip_network(n) for n in (
    "64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96",
))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def embedded_v4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                ) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, SIIT, 6to4, Teredo)."""
    if ip.version == 4:
        return ()
    out = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out += list(ip.teredo)
    if any(ip in net for net in _V4_IN_LAST_32) and ip != ipaddress.IPv6Address("::"):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return tuple(out)


def blocked_address(address: str) -> bool:
    """True for link-local and cloud-metadata addresses, in every IPv6 form that embeds
    one (IPv4-mapped, NAT64 64:ff9b::/96 and /48, SIIT ::ffff:0:a.b.c.d, 6to4, Teredo)."""
    ip = _ip(address)
    if ip is None:
        return False
    return any(any(a in net for net in _BLOCKED_NETS if net.version == a.version)
               for a in (ip, *embedded_v4(ip)))


def blocked_name(host: str) -> bool:
    """True for a metadata-service name or a link-local/metadata address literal."""
    host = host.lower().rstrip(".").strip("[]")
    return host in METADATA_NAMES or blocked_address(host)


def refused(code: str = "host_not_allowed") -> LiveError:
    """The one refusal for an address this deployment does not allow (live check, fleet)."""
    # Says neither which hosts or ports are allowed nor why: a visitor learns nothing to aim at.
    return LiveError("This deployment does not allow a live check against that address.",
                     "check a database on an allowed host and port, or ask the operator "
                     "(see SECURITY.md).", code)


def check_allowed(target: LiveTarget, env: Mapping[str, str] | None = None, *,
                  visitor: bool = True) -> None:
    """Raise LiveError unless the operator allows a live check against this host and port.

    Runs on the name as typed, before any DNS lookup or connection (the resolved addresses
    are checked again at connect time). Metadata and link-local addresses are refused
    always; the port list applies to `visitor` targets (the web app), not to the CLI.
    """
    if not live_enabled(env):
        raise LiveError("The live check is switched off on this deployment.",
                        f"ask the operator, or run it locally (unset {ENV_DISABLED}).",
                        "disabled")
    if blocked_name(target.host):
        raise refused()
    pats = host_patterns(env)
    host = target.host.lower().rstrip(".")
    if not pats.any:
        if _ip(host) is not None:
            if not pats.address_ok(host):
                raise refused()
        elif not pats.name_ok(host) and not (pats.networks or pats.octets):
            raise refused()
        # A name outside the name patterns may still resolve into an allowed network:
        # resolve_checked decides on its addresses.
    if visitor and not any(a <= target.port <= b for a, b in allowed_ports(env)):
        raise refused("port_not_allowed")


async def resolve_checked(host: str, port: int,
                          env: Mapping[str, str] | None = None) -> list[str]:
    """The addresses `host` resolves to, or LiveError if any is link-local or metadata, or
    (with address patterns in POOLWISE_LIVE_ALLOWED_HOSTS, for a name no name pattern
    allows) any falls outside them.

    Connecting to these addresses (not the name again) keeps a rebinding DNS answer from
    switching to a refused address between the check and the connection.
    """
    if blocked_name(host):
        raise refused()
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addrs or any(blocked_address(a) for a in addrs):
        raise refused()
    if not host_allowed(host, addrs, env):
        raise refused()
    return addrs


def host_allowed(host: str, addresses: Sequence[str],
                 env: Mapping[str, str] | None = None) -> bool:
    """Whether POOLWISE_LIVE_ALLOWED_HOSTS allows `host` (as typed) that resolved to
    `addresses`: an address literal by the address patterns; a name by a name pattern,
    else by every address it resolves to matching an address pattern."""
    pats = host_patterns(env)
    if pats.any:
        return True
    name = host.lower().rstrip(".").strip("[]")
    if _ip(name) is None and pats.name_ok(name):
        return True
    return bool(addresses) and all(pats.address_ok(a) for a in addresses)


ENV_APP_HOSTS = "POOLWISE_ALLOWED_HOSTS"


def app_hosts(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Host names the web app is served under (POOLWISE_ALLOWED_HOSTS); empty = not set."""
    env = os.environ if env is None else env
    raw = env.get(ENV_APP_HOSTS, "").replace(",", " ")
    return tuple(p.strip().lower().rstrip(".") for p in raw.split() if p.strip())


def request_host_allowed(host_header: str | None, env: Mapping[str, str] | None = None) -> bool:
    """Whether a request's Host header names this deployment (DNS-rebinding guard).

    Same patterns as Streamlit's server.allowedHosts: exact names, "*.example.com", "*";
    the port is ignored. Not configured: True. Configured but no or odd Host: False.
    """
    patterns = app_hosts(env)
    if not patterns:
        return True
    if not host_header or has_control(host_header):
        return False
    try:
        parts = urlsplit(f"//{host_header.strip()}")
        name, _ = parts.hostname, parts.port
    except ValueError:
        return False
    if not name or parts.username or parts.password or parts.path or parts.query:
        return False
    name = name.lower().rstrip(".")
    return any(p == "*" or name == p or (p.startswith("*.") and name.endswith(p[1:]))
               for p in patterns)
