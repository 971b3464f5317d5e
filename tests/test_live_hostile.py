"""A database the visitor controls: the live check against hostile loopback servers.

Each fake (tests/fakepg.py) speaks just enough PostgreSQL to log asyncpg in, then sends
too much or nothing. The check must stop at its byte and time limits with one line.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakepg import FakePg, error
from wizard.live import LiveError, parse_target, run_live_check
from wizard.live.wire import MAX_SERVER_BYTES


@pytest.fixture(autouse=True)
def _fixture_ports_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLWISE_LIVE_ALLOWED_PORTS", "1024-65535")
    monkeypatch.delenv("POOLWISE_LIVE_ALLOWED_HOSTS", raising=False)


def target(fake: FakePg, password: str = "pw"):
    return parse_target(f"postgresql://u@127.0.0.1:{fake.port}/d?sslmode=disable", password)


async def fail(fake: FakePg, *, guard: float = 15.0, **kw) -> tuple[LiveError, float]:
    t0 = time.monotonic()
    with pytest.raises(LiveError) as info:
        await asyncio.wait_for(run_live_check(target(fake), pre_ping=0, **kw), guard)
    return info.value, time.monotonic() - t0


@pytest.mark.parametrize("mode", ["huge_error", "huge_param"])
async def test_huge_server_messages_are_cut_off_at_the_byte_limit(mode: str) -> None:
    """A 64 MiB error message or startup parameter: the check reads at most 1 MiB, stops
    within the connect limit and says so in one short line."""
    async with FakePg(mode, size=64 << 20) as fake:
        err, elapsed = await fail(fake, connect_timeout=5)
    assert err.code == "oversized", err
    assert fake.sent < 16 * MAX_SERVER_BYTES  # kernel buffers at most; the rest never read
    assert elapsed < 5
    assert len(err.message) < 300 and "xxxx" not in err.message


async def test_a_long_error_message_under_the_byte_limit_is_shown_short() -> None:
    """Server text is shown at most a few hundred characters, on one line."""
    async with FakePg("reply", reply=error(b"denied " + b"y" * 300_000
                                           + b"\nsecond line")) as fake:
        err, _ = await fail(fake, connect_timeout=5)
    assert len(err.message) < 400 and "second line" not in err.message
    assert "denied yyy" in err.message


async def test_a_million_rows_are_refused_not_read() -> None:
    """Memory must not follow the server's answer: the check stops at the byte limit."""
    async with FakePg("rows", rows=1_000_000) as fake:
        err, elapsed = await fail(fake, connect_timeout=5)
    assert err.code == "oversized", err
    assert fake.sent < 16 * MAX_SERVER_BYTES
    assert elapsed < 5


async def test_a_server_that_stalls_after_login_is_cut_off_within_the_phase_limit() -> None:
    """Logged in, then silence: the readings phase ends at its limit (the connect
    timeout), long before the whole check's 30 s."""
    async with FakePg("stall") as fake:
        err, elapsed = await fail(fake, connect_timeout=1.0)
    assert err.code == "stalled", err
    assert elapsed < 3.5


@pytest.mark.parametrize("ssl", ["disable", "require"])
async def test_pg_hba_reject_names_the_rule_not_tls(ssl: str) -> None:
    """PostgreSQL's words for a `reject` line end in "no encryption" too: the cause is the
    rule, and TLS is offered as a fix only for an unencrypted connection."""
    text = (b'pg_hba.conf rejects connection for host "127.0.0.1", user "u", database "d", '
            + (b"no encryption" if ssl == "disable" else b"SSL encryption"))
    async with FakePg("reply", reply=error(text, b"28000")) as fake:
        t = parse_target(f"postgresql://u@127.0.0.1:{fake.port}/d?sslmode=disable", "pw")
        with pytest.raises(LiveError) as info:
            await asyncio.wait_for(run_live_check(t, pre_ping=0, connect_timeout=3), 10)
    err = info.value
    assert err.code == "hba_reject", err
    assert "pg_hba.conf" in err.message and "reject" in err.message
    assert "requires TLS" not in err.message
    assert "allow this user" in err.fix


# --------------------------------------------------------------------------- probing


def _gated_run(port: int, pad_s: float) -> tuple[float, str]:
    """One web-style check (limits.run_gated) of 127.0.0.1:port; (seconds held, code)."""
    from wizard.live import limits

    t = parse_target(f"postgresql://u@127.0.0.1:{port}/d", "pw")
    started = time.monotonic()
    try:
        limits.run_gated(lambda: run_live_check(t, pre_ping=0, connect_timeout=pad_s), started,
                         pad_s)
    except LiveError as err:
        return time.monotonic() - started, err.code
    return time.monotonic() - started, "ok"


def test_the_slot_is_held_through_the_pad(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused port fails at once but keeps its slot for the whole pad: ten sessions
    cannot probe ten targets at once, the eleventh visitor gets "busy"."""
    import threading

    from wizard.fleet.pgserver import free_port
    from wizard.live import limits

    monkeypatch.setenv("POOLWISE_LIVE_MAX_CONCURRENT", "1")
    out: list[tuple[float, str]] = []
    th = threading.Thread(target=lambda: out.append(_gated_run(free_port(), 2.0)))
    th.start()
    time.sleep(1.0)  # the refusal came back long ago; the pad is running
    try:
        assert limits.GATE.running == 1
        with pytest.raises(LiveError) as info, limits.GATE.slot():
            pass
        assert info.value.code == "busy"
    finally:
        th.join(10)
    assert limits.GATE.running == 0
    held, code = out[0]
    assert code == "closed_port" and held >= 2.0


def test_busy_lasts_as_long_for_a_silent_host_as_for_a_closed_port() -> None:
    """How long a check holds its slot says nothing about the target: a refused port is
    padded to the connect timeout a silent host runs into."""
    import socket

    from wizard.fleet.pgserver import free_port

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # accepts in the kernel, never answers
    try:
        silent, code_s = _gated_run(hole.getsockname()[1], 1.5)
    finally:
        hole.close()
    closed, code_c = _gated_run(free_port(), 1.5)
    assert (code_s, code_c) == ("timeout", "closed_port")
    assert abs(silent - closed) < 0.4, (silent, closed)


def test_a_process_wide_rate_counts_every_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """New sessions (fresh histories) do not reset the rate across sessions."""
    from wizard.live import limits

    monkeypatch.setattr(limits, "_ALL", [])
    env = {"POOLWISE_LIVE_MAX_PER_MINUTE": "5", "POOLWISE_LIVE_MAX_PER_MINUTE_ALL": "3"}
    for _ in range(3):
        limits.take_token([], env, now=100.0)
    with pytest.raises(LiveError) as info:
        limits.take_token([], env, now=101.0)
    assert info.value.code == "rate_limited" and "all visitors" in info.value.message
    limits.take_token([], env, now=161.0)  # a minute later


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory):
    """A self-signed certificate for a fake server that speaks TLS (openssl CLI)."""
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(d / "k.pem"),
                    "-out", str(d / "c.pem")], check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    return ctx


async def test_the_byte_limit_holds_over_tls(server_tls) -> None:
    """sslmode=prefer against a TLS server: the meter counts the encrypted stream."""
    async with FakePg("huge_error", size=64 << 20, tls=server_tls) as fake:
        t = parse_target(f"postgresql://u@127.0.0.1:{fake.port}/d?sslmode=require", "pw")
        with pytest.raises(LiveError) as info:
            await asyncio.wait_for(run_live_check(t, pre_ping=0, connect_timeout=5), 15)
    assert info.value.code == "oversized", info.value
    assert fake.sent < 16 * MAX_SERVER_BYTES


async def test_more_rows_than_asked_for_are_refused_in_one_line() -> None:
    """10,000 rows (under the byte limit) for a query that asks for at most a few dozen:
    refused by count, with one line."""
    async with FakePg("many_rows", rows=10_000) as fake:
        err, elapsed = await fail(fake, connect_timeout=5)
    assert err.code == "oversized", err
    assert "rows" in err.message and "\n" not in err.message and len(err.message) < 200
    assert elapsed < 5


def test_cli_prints_one_short_line_for_a_huge_error_message(capsys) -> None:
    """The CLI printed a 200 MB error message: now one line of a few hundred bytes."""
    import threading

    from wizard import cli

    loop = asyncio.new_event_loop()
    fake = FakePg("reply", reply=error(b"denied " + b"z" * 500_000))
    loop.run_until_complete(fake.__aenter__())
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    try:
        code = cli.main(["live", "--url", f"postgresql://u@127.0.0.1:{fake.port}/d"
                         "?sslmode=disable", "--pre-ping", "0", "--connect-timeout", "3"])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)
        loop.run_until_complete(fake.__aexit__())
        loop.close()
    out = capsys.readouterr()
    assert code == 4
    lines = [ln for ln in out.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and len(lines[0]) < 500 and "denied zzz" in lines[0]
    assert len(out.err) < 2000 and len(out.out) < 2000


def test_the_web_step_keeps_its_slot_through_the_pad(isolated_app, monkeypatch) -> None:
    """The live step itself (AppTest): while a refused port's failure is padded, the slot
    is still taken, so another visitor gets "busy" for as long as with a silent host."""
    import threading

    from tests.support import go, new_app
    from wizard.fleet.pgserver import free_port
    from wizard.live import limits

    monkeypatch.setenv("POOLWISE_LIVE_MAX_CONCURRENT", "1")
    at = go(new_app(), "live")
    at.text_input(key="live_url").input(f"postgresql://u@127.0.0.1:{free_port()}/d")
    at.text_input(key="live_password").input("pw")
    at.slider(key="live_pre_ping").set_value(0)
    next(b for b in at.button if b.label == "Run the live check").click()
    th = threading.Thread(target=at.run)
    t0 = time.monotonic()
    th.start()
    try:
        time.sleep(2.5)  # refused at once; the pad runs to 5 s
        running = limits.GATE.running
    finally:
        th.join(30)
    assert running == 1
    assert time.monotonic() - t0 >= 5.0 and limits.GATE.running == 0
    assert any("Could not reach" in str(e.value) for e in at.error)
