"""Server safety (issue 10): what a visitor of a shared deployment can and cannot make it do.

Credentials are tested against the real PostgreSQL fixture and a tiny fake server on
loopback that asks for a cleartext password and records what it receives.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakepg import LoopbackServer
from wizard.core.model import EngineSettings
from wizard.fleet.pgserver import PgServer, free_port
from wizard.live import (
    LiveError,
    check_allowed,
    live_enabled,
    parse_target,
    run_live_check,
)

ROOT = Path(__file__).resolve().parents[1]

ENV_SECRET = "operator-env-Secret-91"


# --------------------------------------------------------------------------- fake server


class CleartextServer(LoopbackServer):
    """Answers SSLRequest with 'N', then asks for a cleartext password and records it."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = struct.unpack("!i", await reader.readexactly(4))[0]
                body = await reader.readexactly(length - 4)
                code = struct.unpack("!i", body[:4])[0]
                if code == 80877103:  # SSLRequest: no TLS here
                    writer.write(b"N")
                    await writer.drain()
                    continue
                break  # StartupMessage
            writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            await writer.drain()
            kind = await reader.readexactly(1)
            length = struct.unpack("!i", await reader.readexactly(4))[0]
            payload = await reader.readexactly(length - 4)
            if kind == b"p":
                self.received.append(payload.rstrip(b"\0"))
            err = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
            writer.write(b"E" + struct.pack("!i", len(err) + 4) + err)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _operator_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, password: str,
                  user: str) -> None:
    """The server operator's libpq environment, all pointing at `password`."""
    line = f"*:*:*:*:{password}\n"
    passfile = tmp_path / "pgpass"
    passfile.write_text(line)
    passfile.chmod(0o600)
    home = tmp_path / "home"
    (home / ".postgresql").mkdir(parents=True)
    (home / ".pgpass").write_text(line)
    (home / ".pgpass").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PGPASSWORD", password)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.setenv("PGUSER", user)
    monkeypatch.setenv("PGDATABASE", "postgres")
    monkeypatch.setenv("PGSSLMODE", "disable")
    monkeypatch.setenv("PGSSLCERT", str(tmp_path / "missing-client.crt"))
    monkeypatch.setenv("PGSSLKEY", str(tmp_path / "missing-client.key"))
    monkeypatch.setenv("PGTARGETSESSIONATTRS", "read-only")
    monkeypatch.setenv("POOLWISE_LIVE_PASSWORD", password)
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")  # the fixtures' ports


# --------------------------------------------------------------------------- 1 credentials


@pytest.mark.db
async def test_web_check_never_uses_server_password_env_or_files(
        pg: PgServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With PGPASSWORD, PGPASSFILE and ~/.pgpass all holding the real password, a web check
    with a blank password field fails authentication instead of logging in."""
    _operator_env(monkeypatch, tmp_path, pg.password, pg.user)
    target = parse_target(f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}", None)
    assert target.password is None  # the web form gave none
    with pytest.raises(LiveError) as info:
        await run_live_check(target, pre_ping=0, connect_timeout=3)
    assert info.value.code == "wrong_password"


@pytest.mark.db
async def test_web_check_with_typed_password_still_works_under_hostile_env(
        pg: PgServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The isolation does not break a normal check: env pointing elsewhere is ignored."""
    _operator_env(monkeypatch, tmp_path, "not-the-password", "nobody")
    target = parse_target(f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}",
                          pg.password)
    report = await run_live_check(target, pre_ping=2, connect_timeout=3)
    assert report.readings is not None and report.readings.user == pg.user


async def test_fake_server_never_receives_the_env_password(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A server asking for a cleartext password gets an empty one, never the operator's."""
    _operator_env(monkeypatch, tmp_path, ENV_SECRET, "operator")
    async with CleartextServer() as fake:
        monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", str(fake.port))
        target = parse_target(f"postgresql://visitor@127.0.0.1:{fake.port}/db", None)
        with pytest.raises(LiveError):
            await run_live_check(target, pre_ping=0, connect_timeout=3)
    assert fake.received, "the fake server was never asked for a password"
    assert all(ENV_SECRET.encode() not in p for p in fake.received)
    assert fake.received == [b""] * len(fake.received)
    assert os.environ["PGPASSWORD"] == ENV_SECRET  # the test really set it


# --------------------------------------------------------------------------- 5 network probe


@pytest.mark.parametrize("url, password", [
    ("postgresql://u%0D%0AINFO%0D%0A@127.0.0.1:5432/db", "pw"),  # CR/LF in the user
    ("postgresql://u@127.0.0.1:5432/db%0d%0aSET%20x%201", "pw"),  # ... in the database
    ("postgresql://u@127.0.0.1:5432/db%00", "pw"),  # NUL
    ("postgresql://u@127.0.0.1:5432/d\tb", "pw"),  # a raw tab in the URL
    ("postgresql://u@127.0.0.1:5432/db", "pw\r\nFLUSHALL"),  # ... in the password
    ("postgresql://u@127.0.0.1:5432/\u202edb", "pw"),  # bidi override
])
def test_control_characters_refused_in_every_url_part(url: str, password: str) -> None:
    with pytest.raises(LiveError) as info:
        parse_target(url, password)
    assert info.value.code == "bad_url"
    assert "FLUSHALL" not in str(info.value) and "INFO" not in str(info.value)


@pytest.mark.parametrize("host", [
    "169.254.169.254", "169.254.170.2", "[fe80::1]", "[fd00:ec2::254]",
    "[::ffff:169.254.169.254]", "metadata.google.internal", "METADATA.google.internal.",
    "metadata", "instance-data", "100.100.100.200",
    "0xa9fea9fe", "2852039166",  # 169.254.169.254 in other spellings: caught after DNS
    # Every IPv6 form that embeds 169.254.169.254: NAT64 (well-known, local-use), SIIT,
    # IPv4-compatible, 6to4, Teredo (client address stored inverted).
    "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::a9fe:a9fe]", "[::ffff:0:a9fe:a9fe]",
    "[::a9fe:a9fe]", "[2002:a9fe:a9fe::1]", "[2001:0:4136:e378:8000:63bf:5601:5601]",
])
async def test_metadata_and_link_local_always_refused(
        host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused even with every host and port allowed, and without any packet sent there."""
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_HOSTS", "*")
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1-65535")
    target = parse_target(f"postgresql://u@{host}:5432/db", "pw")
    with pytest.raises(LiveError) as info:
        await asyncio.wait_for(run_live_check(target, pre_ping=0, connect_timeout=2), 10)
    assert info.value.code == "host_not_allowed"


@pytest.mark.parametrize("host", [
    "64:ff9b::a9fe:a9fe", "::ffff:0:a9fe:a9fe", "64:ff9b::6464:64c8", "2002:a9fe:a9fe::",
])
def test_embedded_ipv4_forms_refused_before_any_lookup(host: str) -> None:
    with pytest.raises(LiveError) as info:
        check_allowed(parse_target(f"postgresql://u@[{host}]:5432/db", "pw"),
                      {"POOLWISE_LIVE_ALLOWED_HOSTS": "*"})
    assert info.value.code == "host_not_allowed"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


ALLOW = {"POOLWISE_LIVE_ALLOWED_HOSTS": "10.0.0.*, 192.168.0.0/16, *.internal, db"}


@pytest.mark.parametrize(("host", "allowed"), [
    ("10.0.0.5", True), ("192.168.7.9", True), ("x.internal", True), ("db", True),
    ("[::ffff:10.0.0.5]", True),
    ("10.0.0.5.attacker.example", False), ("10.0.0.999", False), ("10.0.1.5", False),
    ("10.0.0.5.internal.attacker.example", False), ("192.168.0.0.attacker.example", False),
    ("dbx", False), ("192.169.0.1", False),
])
def test_allowed_hosts_address_patterns_match_addresses_names_match_names(
        host: str, allowed: bool) -> None:
    """`10.0.0.*` is an address pattern: it allows 10.0.0.5, never a name that starts with
    that text nor a number that is no address; `*.internal` allows names only. A name is
    judged on the addresses it resolves to (here one outside every pattern)."""
    from wizard.live.target import host_allowed

    t = parse_target(f"postgresql://u@{host}:5432/db", "pw")
    literal = _is_address(t.host)
    resolved = [t.host] if literal else ["203.0.113.5"]
    assert host_allowed(t.host, resolved, ALLOW) is allowed
    if allowed:
        check_allowed(t, ALLOW)
    elif literal:  # an address literal: refused before any lookup
        with pytest.raises(LiveError):
            check_allowed(t, ALLOW)


async def test_a_name_is_allowed_by_address_pattern_only_through_its_addresses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from wizard.live.target import resolve_checked

    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_HOSTS", "127.0.0.0/8, ::1")
    assert "127.0.0.1" in await resolve_checked("localhost", 5432)
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_HOSTS", "10.0.0.*")
    for host in ("localhost", "127.0.0.1"):  # resolves outside 10.0.0.*
        with pytest.raises(LiveError) as info:
            await resolve_checked(host, 5432)
        assert info.value.code == "host_not_allowed"


def test_ports_limited_for_visitors_by_a_documented_setting() -> None:
    t = lambda port: parse_target(f"postgresql://u@db.example.com:{port}/d", "pw")  # noqa: E731
    for port in (5432, 5433, 6432, 6543):
        check_allowed(t(port), {})
    for port in (22, 80, 443, 6379, 11211, 8080, 2375):
        with pytest.raises(LiveError) as info:
            check_allowed(t(port), {})
        assert info.value.code == "port_not_allowed"
        assert "5432" not in str(info.value)  # the allowed list is not handed out
        check_allowed(t(port), {}, visitor=False)  # the CLI user is the operator
    env = {"POOLWISE_LIVE_ALLOWED_PORTS": "7000-7010, 15432"}
    check_allowed(t(7005), env)
    check_allowed(t(15432), env)
    with pytest.raises(LiveError):
        check_allowed(t(5432), env)
    with pytest.raises(LiveError):  # a malformed setting allows nothing
        check_allowed(t(5432), {"POOLWISE_LIVE_ALLOWED_PORTS": "5432,lots"})


async def test_port_refused_before_any_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A visitor's check of a non-database port never opens a socket there."""
    monkeypatch.delenv("POOLWISE_LIVE_ALLOWED_PORTS", raising=False)
    seen: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(LiveError) as info:
            await run_live_check(parse_target(f"postgresql://u@127.0.0.1:{port}/d", "pw"),
                                 pre_ping=0, connect_timeout=2)
        await asyncio.sleep(0.1)
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.code == "port_not_allowed" and seen == []


def _exhaustion_settings(pool_size: int = 1, max_overflow: int = 1) -> EngineSettings:
    return EngineSettings("primary", "AsyncAdaptedQueuePool", pool_size, max_overflow, 0.5, -1,
                          True, False, {}, {})


@pytest.mark.db
async def test_exhaustion_refused_while_another_runs(
        pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")
    from wizard.live.check import EXHAUSTION_LOCK

    target = parse_target(f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}",
                          pg.password)
    assert EXHAUSTION_LOCK.acquire(blocking=False)
    try:
        report = await run_live_check(target, pre_ping=0, exhaustion=_exhaustion_settings())
    finally:
        EXHAUSTION_LOCK.release()
    assert report.exhaustion is None
    assert [e.code for e in report.errors] == ["exhaustion_busy"]


@pytest.mark.db
def test_parallel_exhaustion_tests_never_overlap(
        pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four visitors at once (threads, as Streamlit runs sessions): at most one test holds
    connections at a time, so together they never take more than one test's holders."""
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")
    target = parse_target(f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}",
                          pg.password)
    reports = []
    spans: list[tuple[float, float]] = []  # when each test held its connections

    def one() -> None:
        marks: list[tuple[float, float]] = []

        def progress(stage: str, fraction: float) -> None:
            if stage == "exhaustion" and 0 < fraction <= 0.9:  # inside the proof itself
                marks.append((fraction, time.monotonic()))

        reports.append(asyncio.run(run_live_check(
            target, pre_ping=0, exhaustion=_exhaustion_settings(2, 2), progress=progress)))
        if marks:
            spans.append((min(t for _, t in marks), max(t for _, t in marks)))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    ran = [r for r in reports if r.exhaustion is not None]
    busy = [r for r in reports if [e.code for e in r.errors] == ["exhaustion_busy"]]
    assert len(reports) == 4 and len(ran) + len(busy) == 4 and ran
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, spans  # never two proofs holding connections at once


# --------------------------------------------------------------------------- 10 off switch


@pytest.mark.parametrize("value", ["1", "true", "YES", "on", "2", "disabled", "y", "please",
                                   "False-ish", " x "])
def test_any_other_disabled_value_switches_the_check_off(value: str) -> None:
    assert live_enabled({"POOLWISE_LIVE_DISABLED": value}) is False


@pytest.mark.parametrize("value", ["", "0", "false", "No", " off ", "FALSE"])
def test_only_explicit_no_leaves_it_on(value: str) -> None:
    assert live_enabled({"POOLWISE_LIVE_DISABLED": value}) is True


# --------------------------------------------------------------------------- 9 CLI bounds


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POOLWISE_")}
    return subprocess.run([sys.executable, "-m", "wizard", *args], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("flags", [
    ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "-1"], ["--timeout", "1e9"],
    ["--connect-timeout", "nan"], ["--pre-ping", "99999999"], ["--pre-ping", "-1"],
    ["--pool-timeout", "nan"], ["--max-overflow", "-1"], ["--pool-size", "100000"],
])
def test_live_cli_refuses_unbounded_numbers(flags: list[str]) -> None:
    proc = _cli("live", "--url", f"postgresql://u@127.0.0.1:{free_port()}/d", *flags)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flags[0] in lines[0]
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- 3 tracebacks


def test_error_details_are_hidden_from_visitors() -> None:
    """client.showErrorDetails must be "none": in Streamlit 1.67, false means "stacktrace"."""
    import tomllib

    from streamlit.config import ShowErrorDetailsConfigOptions as Opt

    conf = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    value = conf["client"]["showErrorDetails"]
    assert value == Opt.NONE.value
    assert not Opt.is_false_variation(value) and not Opt.is_true_variation(value)
    proc = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    shown = proc.stdout[proc.stdout.index("showErrorDetails ="):][:60]
    assert 'showErrorDetails = "none"' in shown


# --------------------------------------------------------------------------- 8 export links


@pytest.mark.parametrize("kind", ["module", "report", "pgbouncer"])
def test_exports_link_to_the_public_url_never_localhost(kind: str) -> None:
    flags = ["export", "--provider", "aws-rds", "--proxy", "pgbouncer-transaction",
             "--kind", kind, "-o", "-"]
    proc = _cli(*flags, env={"POOLWISE_PUBLIC_URL": "https://poolwise.corp.example/tools"})
    assert proc.returncode == 0, proc.stderr
    assert "https://poolwise.corp.example/tools/?provider=aws-rds" in proc.stdout
    assert "localhost" not in proc.stdout
    bare = _cli(*flags)  # no setting, no request: no made-up host either
    assert bare.returncode == 0 and "localhost" not in bare.stdout
    assert "POOLWISE_PUBLIC_URL" in bare.stdout


def test_public_url_setting_must_be_a_plain_http_address() -> None:
    from wizard.scenario import links

    assert links.public_url({"POOLWISE_PUBLIC_URL": "https://pw.example:8443"}) == \
        "https://pw.example:8443/"
    for bad in ("javascript:alert(1)", "https://user:pw@pw.example/", "ftp://pw.example/",
                "https://pw.example/\r\nX: y", "pw.example"):
        assert links.public_url({"POOLWISE_PUBLIC_URL": bad}) is None, bad


def test_export_step_links_to_the_public_url(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("POOLWISE_PUBLIC_URL", "https://poolwise.corp.example/")
    import streamlit as st

    st.cache_data.clear()
    at = AppTest.from_file("../app.py", default_timeout=30).run()
    at.radio(key="step").set_value("export").run()
    code = " ".join(str(c.value) for c in at.code)
    assert "https://poolwise.corp.example/?provider=" in code and "localhost" not in code


# --------------------------------------------------------------------------- 9 export -o


def _export_to(path: str) -> subprocess.CompletedProcess:
    return _cli("export", "--provider", "aws-rds", "-o", path)


def _one_line_refusal(proc: subprocess.CompletedProcess, why: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and "Traceback" not in proc.stderr, lines


def test_export_refuses_devices_directories_proc_and_symlinks(tmp_path: Path) -> None:
    dev = tmp_path / "fakefull"
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 7))  # a character device like /dev/full
    _one_line_refusal(_export_to(str(dev)), "character device")
    assert Path(dev).is_char_device()
    _one_line_refusal(_export_to("/dev/full"), "system directory")
    _one_line_refusal(_export_to(str(tmp_path)), "is a directory")
    _one_line_refusal(_export_to("/proc/self/comm"), "system directory")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    _one_line_refusal(_export_to(str(fifo)), "named pipe")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "db.py"
    link.symlink_to(victim)
    _one_line_refusal(_export_to(str(link)), "symbolic link")
    assert victim.read_text() == "keep me" and link.is_symlink()


def test_export_writes_a_regular_file_atomically_with_normal_permissions(
        tmp_path: Path) -> None:
    out = tmp_path / "sub" / "db.py"
    old = os.umask(0o022)
    try:
        proc = _export_to(str(out))
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and (out.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["db.py"]  # no temp file left behind
    compile(out.read_text(), str(out), "exec")
    out.chmod(0o640)  # an existing file keeps the mode its owner gave it
    assert _export_to(str(out)).returncode == 0 and (out.stat().st_mode & 0o777) == 0o640


def test_export_to_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    _one_line_refusal(_export_to("/sys/poolwise-test/db.py"), "system directory")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_refusal(_export_to(str(blocker / "db.py")), "cannot")


# --------------------------------------------------------------------------- 9 fleet


@pytest.mark.parametrize("flags, why", [
    (["--max-overflow", "-1"], "--max-overflow"),
    (["--pool-size", "100000"], "--pool-size"),
    (["--pool-timeout", "nan"], "--pool-timeout"),
])
def test_fleet_refuses_unbounded_pools(flags: list[str], why: str) -> None:
    proc = _cli("fleet", "--url", "postgresql+asyncpg://u@127.0.0.1:5432/d", *flags)
    _one_line_refusal(proc, why)


@pytest.mark.parametrize("env, host", [
    ({"POOLWISE_LIVE_DISABLED": "yes please"}, "127.0.0.1"),
    ({"POOLWISE_LIVE_ALLOWED_HOSTS": "db.internal"}, "127.0.0.1"),
    ({"POOLWISE_LIVE_ALLOWED_HOSTS": "10.0.0.0/8"}, "localhost"),  # resolves outside
    ({"POOLWISE_LIVE_ALLOWED_HOSTS": "127.0.0.*"}, "127.0.0.1.attacker.example"),
    ({}, "169.254.169.254"),
    ({}, "[64:ff9b::a9fe:a9fe]"),
    ({}, "metadata.google.internal"),
])
def test_fleet_has_the_live_checks_off_switch_and_allowlist(env: dict[str, str],
                                                            host: str) -> None:
    proc = _cli("fleet", "--url", f"postgresql+asyncpg://u@{host}:{free_port()}/d", env=env)
    _one_line_refusal(proc, "not allowed" if "DISABLED" not in str(env) else "switched off")


# --- issue 21: `make run` serves this machine only unless told otherwise -------------------

def _make_run(**env: str) -> str:
    """The command `make run` starts (dry run: nothing is installed or started)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ADDRESS", "PORT", "STREAMLIT_SERVER_ADDRESS", "STREAMLIT_SERVER_PORT")}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "run", *(f"{k}={v}" for k, v in env.items())],
                         cwd=root, env=clean, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return " ".join(out.stdout.replace("\\\n", " ").split())


@pytest.mark.skipif(not Path("/usr/bin/make").exists(), reason="needs make")
def test_make_run_listens_on_localhost_by_default():
    cmd = _make_run()
    assert "streamlit run app.py" in cmd
    assert "--server.address 127.0.0.1" in cmd  # as `poolwise app`; README says localhost
    assert "--server.port 8501" in cmd
    team = _make_run(ADDRESS="0.0.0.0", PORT="9000")  # README: how to serve a team
    assert "--server.address 0.0.0.0" in team and "--server.port 9000" in team
