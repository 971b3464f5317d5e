"""Adversarial: a password or token never reaches any output channel.

A distinctive canary password (with characters that URL-quoting changes) is used on
every path that touches credentials - the live check, the fleet harness and its child
processes, the saved-scenario store and the exports - and every channel is grepped for
its unquoted prefix (stdout, stderr, child-process stderr, DEBUG logs, reprs, JSON,
files written). Real PostgreSQL; the only fake peers are sockets that are not PostgreSQL
(a black hole and a rogue server that echoes the password it is sent).
Slower tests: the three that spawn `python -m wizard` (about 2-4 s each).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from wizard import cli, fleet
from wizard.core.model import EngineSettings, Scenario, ScenarioError
from wizard.core.plan import recommend
from wizard.export import export, render_module
from wizard.fleet.pgserver import PgServer, free_port
from wizard.live import LiveError, parse_target, run_live_check
from wizard.live.cli import render_report
from wizard.scenario import redact, store


@pytest.fixture(autouse=True)
def _fixture_ports_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixtures listen on random ports, outside the web check's default port list."""
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")


ROOT = Path(__file__).resolve().parents[1]
MARK = "S3cr3t-Canary"  # survives URL quoting: grep for it, never for the whole password
CANARY = f"{MARK}-p@ss/w%rd:{secrets.token_hex(4)}"
QUOTED = quote(CANARY, safe="")
LOGGERS = ("", "sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg", "asyncio")


def clean(*texts: object) -> None:
    """No text holds the canary in any encoding."""
    for t in texts:
        assert MARK not in str(t), f"canary leaked into: {str(t)[:400]}"
        assert QUOTED not in str(t)


def full(exc: BaseException) -> str:
    """Everything a traceback printer would show for `exc`: message, repr, chain."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)


@pytest.fixture(scope="module")
def role(pg: PgServer) -> Iterator[str]:
    """A login role whose password is the canary; at most 3 connections."""
    name = "canary_" + secrets.token_hex(3)
    pg.psql(f"CREATE ROLE {name} LOGIN PASSWORD '{CANARY}' CONNECTION LIMIT 3;\n"
            f"GRANT CONNECT ON DATABASE {pg.database} TO {name};")
    yield name
    pg.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}';"
            f"\nDROP ROLE IF EXISTS {name};", check=False)


def live_url(pg: PgServer, role: str, *, password: str | None = None, port: int | None = None,
             host: str | None = None, query: str = "") -> str:
    auth = role + (f":{quote(password, safe='')}" if password else "")
    return f"postgresql://{auth}@{host or pg.host}:{port or pg.port}/{pg.database}{query}"


def sa_url(pg: PgServer, role: str, password: str | None = CANARY) -> str:
    return URL.create("postgresql+asyncpg", username=role, password=password, host=pg.host,
                      port=pg.port, database=pg.database).render_as_string(hide_password=False)


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


# --------------------------------------------------------------------------- live check


async def test_live_check_with_debug_logging_shows_no_password(pg: PgServer, role: str,
                                                               caplog) -> None:
    debug_logs(caplog)
    target = parse_target(live_url(pg, role), CANARY, env={})
    assert target.password == CANARY
    settings = EngineSettings(endpoint="primary", poolclass="AsyncAdaptedQueuePool",
                              pool_size=1, max_overflow=0, pool_timeout=0.3, pool_recycle=-1,
                              pool_pre_ping=True, pool_use_lifo=False, connect_args={},
                              reasons={})
    report = await run_live_check(target, pre_ping=3, exhaustion=settings)
    assert report.readings.user == role and report.exhaustion.timed_out
    # The logs were really on: the pool reported its connections at DEBUG.
    assert any(r.name.startswith("sqlalchemy.pool") and r.levelno == logging.DEBUG
               for r in caplog.records)
    clean(caplog.text, repr(target), str(target), json.dumps(target.to_dict()), repr(report),
          json.dumps(report.to_dict(), default=str), render_report(report))


async def _rogue(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Asks for a cleartext password, then puts it into its error message."""
    (n,) = struct.unpack("!i", await reader.readexactly(4))
    await reader.readexactly(n - 4)  # StartupMessage (sslmode=disable: no SSLRequest)
    writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
    await writer.drain()
    assert await reader.readexactly(1) == b"p"
    (n,) = struct.unpack("!i", await reader.readexactly(4))
    seen = (await reader.readexactly(n - 4)).rstrip(b"\0")
    body = b"SFATAL\0CXX000\0Mrogue server saw " + seen + b"\0\0"
    writer.write(b"E" + struct.pack("!i", len(body) + 4) + body)
    await writer.drain()
    writer.close()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("case", ["wrong_password", "unknown_host", "closed_port",
                                  "timeout", "not_postgres", "rogue_echo"])
async def test_live_failures_never_echo_the_password(pg: PgServer, role: str, case: str,
                                                     caplog) -> None:
    debug_logs(caplog)
    password, port, host, query, server = CANARY, None, None, "", None
    if case == "wrong_password":
        password = CANARY + "-wrong"
    elif case == "unknown_host":
        host = "no-such-db.invalid"
    elif case == "closed_port":
        port = free_port()
    elif case in ("not_postgres", "rogue_echo"):
        server = await asyncio.start_server(_http if case == "not_postgres" else _rogue,
                                            "127.0.0.1", 0)
        port, host, query = server.sockets[0].getsockname()[1], "127.0.0.1", "?sslmode=disable"
    with contextlib.ExitStack() as stack:
        if case == "timeout":
            port, host = stack.enter_context(black_hole()), "127.0.0.1"
        target = parse_target(live_url(pg, role, port=port, host=host, query=query),
                              password, env={})
        try:
            with pytest.raises(LiveError) as info:
                await run_live_check(target, pre_ping=0, connect_timeout=1.0, timeout=5.0)
        finally:
            if server is not None:
                server.close()
                await server.wait_closed()
    err = info.value
    expected = {"wrong_password": "wrong_password", "unknown_host": "unknown_host",
                "closed_port": "closed_port", "timeout": "timeout",
                "not_postgres": "not_postgres", "rogue_echo": "failed"}[case]
    assert err.code == expected
    if case == "rogue_echo":  # the server repeats the password: its text is withheld whole
        assert "rogue server saw" not in err.message and "text withheld" in err.message
    clean(full(err), json.dumps(err.to_dict()), caplog.text)


@pytest.mark.parametrize("query", [
    f"?password={MARK}", f"?PASSWORD={MARK}", f"?sslpassword={MARK}",
    f"?sslmode=require&X-Amz-Signature={MARK}", f"?{MARK}=1", f"?sslmode={MARK}",
    f"?application_name={MARK}x",
])
def test_live_url_query_secrets_are_refused_without_echo(query: str) -> None:
    with pytest.raises(LiveError) as info:
        parse_target(f"postgresql://u@db.example.com/app{query}", env={})
    assert info.value.code == "bad_url"
    clean(full(info.value))


def test_live_unsupported_parameter_still_named_when_harmless() -> None:
    with pytest.raises(LiveError, match="'connect_timeout'"):
        parse_target("postgresql://u@h/db?connect_timeout=5", env={})


def test_parse_target_reads_the_environment_only_when_asked() -> None:
    env = {"POOLWISE_LIVE_PASSWORD": CANARY}
    # A web visitor's URL must not borrow the operator's password (it would be sent to
    # whatever host the visitor typed).
    assert parse_target("postgresql://u@evil.example.com/db").password is None
    t = parse_target("postgresql://u@h/db", env=env)
    assert (t.password, t.password_from) == (CANARY, "env")
    clean(repr(t), str(t), json.dumps(t.to_dict()))


def test_live_cli_iam_token_in_url_is_flagged_never_echoed(capsys) -> None:
    token = (f"db.example.com:5432/?Action=connect&DBUser=u&X-Amz-Algorithm=AWS4-HMAC-SHA256"
             f"&X-Amz-Credential=AKIA/x&X-Amz-Signature={MARK}")
    url = f"postgresql://u:{quote(token, safe='')}@127.0.0.1:{free_port()}/db"
    code = cli.main(["live", "--url", url, "--pre-ping", "0", "--connect-timeout", "1"])
    out = capsys.readouterr()
    assert code == 4 and "IAM auth token" in out.err and "closed_port" not in out.out
    clean(out.out, out.err)


def test_live_cli_interrupted_mid_connect_prints_no_password() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLWISE_")}
    with black_hole() as port:
        url = f"postgresql://u:{QUOTED}@127.0.0.1:{port}/db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "wizard", "live", "--url", url, "--connect-timeout", "30"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            line = proc.stderr.readline()  # "warning: the URL holds a password ..."
            while line and "[connect]" not in line:
                line = proc.stderr.readline()
            time.sleep(0.3)  # inside asyncpg.connect, waiting on the black hole
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "[connect]" in line and proc.returncode != 0
    assert "KeyboardInterrupt" in err  # the interrupt's traceback really was printed
    clean(out, err)


# --------------------------------------------------------------------------- fleet


def test_fleet_with_debug_logging_and_refused_connections(pg: PgServer, role: str,
                                                          caplog) -> None:
    """The role allows 3 connections; the monitor takes 1, so a pool of 4 runs out."""
    debug_logs(caplog)
    target = fleet.Target(url=sa_url(pg, role),
                          settings=fleet.PoolSettings("p", pool_size=4, max_overflow=0,
                                                      pool_timeout=2))
    result = fleet.run_fleet(target, fleet.Workload(hold_s=0.05, concurrency=4),
                             [fleet.Phase("one", 1, 0.8)])
    assert result.phases[0].connection_errors > 0  # the driver's refusal really happened
    assert "too many connections" in result.messages["connection_error"]
    clean(caplog.text, repr(target), str(target), json.dumps(result.to_dict()),
          fleet.text_table(fleet.table([result])))


@pytest.mark.parametrize("query", [f"?password={MARK}", f"?sslpassword={MARK}",
                                   f"?ssl=require&X-Amz-Security-Token={MARK}"])
def test_fleet_cli_refuses_secrets_in_the_url_query(pg: PgServer, role: str, query: str,
                                                    capsys) -> None:
    url = sa_url(pg, role, password=None) + query
    assert cli.main(["fleet", "--url", url, "--seconds", "1", "--processes", "1"]) == 2
    out = capsys.readouterr()
    assert "query string" in out.err
    clean(out.out, out.err)


def test_fleet_safe_url_masks_password_and_query_secrets() -> None:
    url = f"postgresql+asyncpg://u:{QUOTED}@h/db?sslpassword={QUOTED}&ssl=require"
    shown = fleet.safe_url(url)
    assert shown.startswith("postgresql+asyncpg://u:***@h/db?")
    assert sorted(shown.split("?")[1].split("&")) == ["ssl=require", "sslpassword=***"]
    assert fleet.scrub(f"in {url}", fleet.secrets_of(url)).count("***") == 2  # by structure
    # The bare value in free text is never masked in place: the message is withheld whole.
    assert fleet.scrub(f"in {url} and {CANARY}", fleet.secrets_of(url)) == redact.WITHHELD


HOSTILE_EXPORT = '''
import os
URL_ENV = {"primary": "DATABASE_URL"}
ENGINE_SETTINGS = {"primary": {"pool_size": 1, "max_overflow": 0}}


def create_engine_for(role):
    # A buggy module that puts the whole URL (password URL-quoted) in its error.
    raise RuntimeError("cannot use " + os.environ[URL_ENV[role]])
'''


def test_fleet_child_errors_are_scrubbed_in_every_encoding(pg: PgServer, role: str,
                                                           tmp_path: Path) -> None:
    module = tmp_path / "hostile.py"
    module.write_text(HOSTILE_EXPORT)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("POOLWISE_")},
           fleet.PASSWORD_ENV: CANARY}
    proc = subprocess.run(
        [sys.executable, "-m", "wizard", "fleet", "--url", sa_url(pg, role, password=None),
         "--export", str(module), "--processes", "2", "--seconds", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    # Parent and child stderr together: the children's error came back, password masked.
    assert proc.returncode == 1 and "fleet process failed" in proc.stderr
    assert f"{role}:***@" in proc.stderr
    clean(proc.stdout, proc.stderr)


def test_fleet_cli_interrupted_mid_run_prints_no_password(pg: PgServer, role: str) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("POOLWISE_")},
           fleet.PASSWORD_ENV: CANARY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wizard", "fleet", "--url", sa_url(pg, role, password=None),
         "--processes", "2", "--pool-size", "1", "--max-overflow", "0", "--seconds", "8"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        banner = proc.stdout.readline()
        time.sleep(2.0)  # children spawned and driving load
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: parent and children
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert banner.startswith("fleet: 2 processes") and proc.returncode != 0
    assert "KeyboardInterrupt" in err
    clean(banner, out, err)


# --------------------------------------------------------------------------- store, export


SMUGGLED = [
    ("max_connections_source", f"postgresql://u:{CANARY}@db.example.com/app"),
    ("pgbouncer_version", f"password={CANARY}"),
    ("current_poolclass", f"X-Amz-Signature={MARK}"),
    ("replica_regions", f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{MARK}"),
    ("max_connections_source", f"token: {MARK}"),
]


@pytest.mark.parametrize(("key", "value"), SMUGGLED)
def test_store_refuses_credential_looking_values(tmp_path: Path, key: str, value: str) -> None:
    db = tmp_path / "s.sqlite"
    s = store.ScenarioStore(f"sqlite:///{db}")
    try:
        params = {"provider": "self-hosted", "max_connections": "200", "replicas": "1",
                  "proxy": "pgbouncer-transaction", "current_pool_size": "5", key: value}
        with pytest.raises(store.StoreError) as info:
            s.save("smuggled", params)
        assert repr(key) in str(info.value)
        clean(full(info.value))
        s.save("plain", {"provider": "self-hosted", "max_connections": "200",
                         "max_connections_source": "measured 2026-01-01T00:00Z"})
        assert s.names() == ["plain"]
    finally:
        s.close()
    clean(db.read_bytes().decode("latin-1"))


def test_store_refuses_a_password_key(tmp_path: Path) -> None:
    s = store.ScenarioStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        with pytest.raises(store.StoreError) as info:
            s.save("x", {"provider": "self-hosted", "password": CANARY})
        clean(full(info.value))
        assert s.names() == []
    finally:
        s.close()


def test_store_url_with_a_wrong_password_fails_without_echo(pg: PgServer, role: str) -> None:
    url = URL.create("postgresql+psycopg", username=role, password=CANARY + "-wrong",
                     host=pg.host, port=pg.port, database=pg.database)
    with pytest.raises(Exception) as info:  # noqa: PT011 - whatever the driver raises
        store.ScenarioStore(url.render_as_string(hide_password=False))
    assert "password authentication failed" in str(info.value)
    clean(full(info.value))


@pytest.mark.parametrize("kind", ["module", "report", "pgbouncer"])
def test_export_cli_refuses_a_smuggled_secret(tmp_path: Path, kind: str, capsys) -> None:
    out_file = tmp_path / "out.txt"
    short = "password=" + secrets.token_hex(3)  # within the field's 16 characters
    for value, why in ((short, "looks like it holds a password"),
                       (f"1.22 password={CANARY}", "at most 16")):  # longer: refused unread
        code = cli.main(["export", "--provider", "self-hosted", "--max-connections", "200",
                         "--proxy", "pgbouncer-transaction", "--pgbouncer-version",
                         value, "--kind", kind, "-o", str(out_file)])
        out = capsys.readouterr()
        assert code == 2 and not out_file.exists()
        assert "--pgbouncer-version: " in out.err and why in out.err, out.err
        assert value.split("=", 1)[1] not in out.out + out.err
        clean(out.out, out.err)


def test_render_functions_refuse_too() -> None:
    rec = recommend(Scenario(provider="self-hosted", instance_class=None, max_connections=200,
                             max_connections_source=f"postgresql://u:{CANARY}@h/db"))
    for kind in ("module", "report"):
        with pytest.raises(ScenarioError) as info:
            export(rec, kind)
        clean(full(info.value))


async def test_exported_module_reads_the_password_from_env_only(
        pg: PgServer, role: str, tmp_path: Path, monkeypatch, caplog) -> None:
    # Every variable a user might hold the password in is set while the module is written.
    for name in ("DATABASE_URL", "DB_PASSWORD", "POOLWISE_LIVE_PASSWORD", fleet.PASSWORD_ENV):
        monkeypatch.setenv(name, CANARY)
    source = render_module(recommend(Scenario.flags(provider="self-hosted", instance_class=None,
                                                    max_connections=100, app_instances=2)))
    clean(source)
    path = tmp_path / "db_canary.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("db_canary", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "db_canary", mod)  # its dataclass looks itself up
    spec.loader.exec_module(mod)
    debug_logs(caplog)
    monkeypatch.setenv("DATABASE_SSL", "disable")
    monkeypatch.setenv("DATABASE_URL", sa_url(pg, role))
    engine = mod.create_engine_for("primary")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_user")) == role
        clean(repr(engine), str(engine.url), repr(engine.url), caplog.text)
    finally:
        await engine.dispose()
    monkeypatch.setenv("DATABASE_URL", sa_url(pg, role, password=CANARY + "-wrong"))
    engine = mod.create_engine_for("primary")
    try:
        with pytest.raises(Exception) as info:  # noqa: PT011 - whatever the driver raises
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert "password authentication failed" in str(info.value)
    clean(full(info.value), caplog.text)


def test_redact_scrub_withholds_every_encoded_form_whole():
    from wizard.scenario.redact import WITHHELD, scrub

    secret = "p@ss/w%rd:x y"
    for said in (f"raw {secret}", "quoted p%40ss%2Fw%25rd%3Ax%20y", "plus p%40ss%2Fw%25rd%3Ax+y"):
        assert scrub(f"error: {said} end", secret, None, "") == WITHHELD
    assert scrub("nothing secret here", secret) == "nothing secret here"


@pytest.mark.parametrize("said", [
    "expected string or bytes-like object, got 'File'",
    "connection to server failed: FATAL: sorry, too many clients already",
])
def test_a_short_password_is_never_masked_letter_by_letter(said: str) -> None:
    """With password "x", masking every x spelled it out ("e***pected ... Fi***"): a
    message is shown as it is or withheld whole, never masked in place."""
    from wizard.scenario.redact import WITHHELD, scrub

    out = scrub(said, "x")
    assert out in (said, WITHHELD) and "***" not in out


@pytest.mark.parametrize(("said", "shown"), [
    ("postgresql://u:x@h:5432/db failed", "postgresql://u:***@h:5432/db failed"),
    ("postgresql+asyncpg://app:p%40ss@db/x?ssl=require",
     "postgresql+asyncpg://app:***@db/x?ssl=require"),
    ("password=x host=h", "password=*** host=h"),
    ("{'password': 'x', 'user': 'u'}", "{'password': ***, 'user': 'u'}"),
    ("PGPASSWORD=xyz sslpassword=abc X-Amz-Signature=0f", "PGPASSWORD=*** sslpassword=*** "
     "X-Amz-Signature=***"),
    ("exhaustion expected x", "exhaustion expected x"),
])
def test_redact_works_by_structure_never_by_value(said: str, shown: str) -> None:
    from wizard.scenario.redact import redact

    assert redact(said) == shown


async def test_live_cli_with_a_one_letter_password_masks_no_letters(capsys,
                                                                     monkeypatch) -> None:
    """A server's error that contains the password's letter: never masked letter by letter."""
    from tests.fakepg import FakePg, error

    monkeypatch.setenv("POOLWISE_LIVE_PASSWORD", "x")
    async with FakePg("reply", reply=error(b"expected string, got File", b"28000")) as fake:
        url = f"postgresql://u@127.0.0.1:{fake.port}/d?sslmode=disable"
        code = await asyncio.to_thread(cli.main, ["live", "--url", url, "--pre-ping", "0",
                                                  "--connect-timeout", "3"])
    out = capsys.readouterr()
    assert code == 4
    assert "***" not in out.err.replace(redact.WITHHELD, "")
    assert "e***pected" not in out.err and "Fi***" not in out.err
