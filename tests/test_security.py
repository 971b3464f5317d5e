"""Server safety (issue 10): what a visitor of a shared deployment can and cannot make it do.

Credentials are tested against the real PostgreSQL fixture and a tiny fake server on
loopback that asks for a cleartext password and records what it receives.
"""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import pytest

from tests.pgserver import PgServer
from wizard.live import LiveError, parse_target, run_live_check

ENV_SECRET = "operator-env-Secret-91"


# --------------------------------------------------------------------------- fake server


class CleartextServer:
    """Answers SSLRequest with 'N', then asks for a cleartext password and records it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> CleartextServer:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
