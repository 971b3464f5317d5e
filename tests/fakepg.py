"""A hostile PostgreSQL server on loopback: speaks just enough of the wire protocol to
log a client in, then misbehaves (huge messages, millions of rows, silence).

    async with FakePg("stall") as fake:
        url = f"postgresql://u@127.0.0.1:{fake.port}/d?sslmode=disable"

`sent` counts the bytes the server got out before the client hung up: a client that
stops reading at its limit leaves most of a huge answer unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from typing import Self

CHUNK = 64 * 1024


def msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def error(text: bytes, code: bytes = b"XX000", severity: bytes = b"FATAL") -> bytes:
    return msg(b"E", b"S" + severity + b"\0V" + severity + b"\0C" + code + b"\0M" + text
               + b"\0\0")


def _param(name: bytes, value: bytes) -> bytes:
    return msg(b"S", name + b"\0" + value + b"\0")


LOGIN = (msg(b"R", struct.pack("!i", 0)) + _param(b"server_version", b"16.0")
         + _param(b"client_encoding", b"UTF8") + _param(b"integer_datetimes", b"on")
         + msg(b"K", struct.pack("!ii", 1234, 5678)) + msg(b"Z", b"I"))


def _row_description(n_cols: int) -> bytes:
    body = struct.pack("!h", n_cols)
    for i in range(n_cols):  # text columns
        body += f"c{i}".encode() + b"\0" + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0)
    return msg(b"T", body)


def _data_row(values: list[bytes]) -> bytes:
    body = struct.pack("!h", len(values))
    for v in values:
        body += struct.pack("!i", len(v)) + v
    return msg(b"D", body)


class LoopbackServer:
    """A server on a free loopback port for the length of an `async with`; a subclass
    answers each client in `_serve`."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class FakePg(LoopbackServer):
    """Modes: huge_error (an ErrorResponse of `size` bytes instead of a login),
    huge_param (a ParameterStatus of `size` bytes during login), stall (logs in, then
    never answers), rows (logs in, answers the first query, whatever it asks, with
    `rows` rows of pg_stat_activity-like text), many_rows (answers every extended-protocol
    query with `rows` rows of three text columns), reply
    (an ErrorResponse `reply` instead of a login)."""

    def __init__(self, mode: str, *, size: int = 8 << 20, rows: int = 1_000_000,
                 reply: bytes = b"", tls: ssl.SSLContext | None = None) -> None:
        self.mode, self.size, self.rows, self.reply = mode, size, rows, reply
        self.tls = tls  # answer SSLRequest with "S" and speak TLS with this context
        self.sent = 0
        self.connections = 0
        super().__init__()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            writer.write(data[i:i + CHUNK])
            await writer.drain()
            self.sent += len(data[i:i + CHUNK])

    async def _stream(self, writer: asyncio.StreamWriter, head: bytes, size: int,
                      tail: bytes) -> None:
        """head + size bytes of 'x' + tail, without building it in memory."""
        await self._send(writer, head)
        block = b"x" * CHUNK
        left = size
        while left > 0:
            part = block[:left]
            writer.write(part)
            await writer.drain()
            self.sent += len(part)
            left -= len(part)
        await self._send(writer, tail)

    async def _startup(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        while True:
            (n,) = struct.unpack("!i", await reader.readexactly(4))
            body = await reader.readexactly(n - 4)
            if body[:4] == struct.pack("!i", 80877103):  # SSLRequest
                writer.write(b"S" if self.tls else b"N")
                await writer.drain()
                if self.tls:
                    await writer.start_tls(self.tls)
                continue
            return

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._startup(reader, writer)
            if self.mode == "huge_error":
                body_len = 4 + len(b"SFATAL\0CXX000\0M") + self.size + 2
                await self._stream(writer, b"E" + struct.pack("!i", body_len)
                                   + b"SFATAL\0CXX000\0M", self.size, b"\0\0")
            elif self.mode == "reply":
                await self._send(writer, self.reply)
            elif self.mode == "huge_param":
                await self._send(writer, msg(b"R", struct.pack("!i", 0)))
                name = b"server_version\0"
                await self._stream(writer, b"S" + struct.pack("!i", 4 + len(name) + self.size
                                                              + 1) + name, self.size, b"\0")
                await self._send(writer, LOGIN[9:])
            else:
                await self._send(writer, LOGIN)
                if self.mode == "rows":
                    await self._answer_rows(reader, writer)
                elif self.mode == "many_rows":
                    await self._answer_queries(reader, writer)
            await reader.read()  # stall: wait for the client to give up
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()

    async def _answer_rows(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        """The check's first query (BEGIN READ ONLY) gets `rows` rows."""
        kind = await reader.readexactly(1)
        (n,) = struct.unpack("!i", await reader.readexactly(4))
        await reader.readexactly(n - 4)
        assert kind == b"Q"
        batch = _data_row([b"client backend", b"idle", b"x" * 20]) * 1000
        await self._send(writer, _row_description(3))
        for _ in range(self.rows // 1000):
            await self._send(writer, batch)
        await self._send(writer, msg(b"C", b"SELECT 1\0") + msg(b"Z", b"T"))

    async def _answer_queries(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        """Simple queries are acknowledged; each extended query (Parse, Describe, Flush,
        then Bind, Execute, Sync) gets `rows` rows of three text columns."""
        query, executing = b"", False
        row = _data_row([b"client backend", b"idle", b"y" * 20])
        while True:
            kind = await reader.readexactly(1)
            (n,) = struct.unpack("!i", await reader.readexactly(4))
            body = await reader.readexactly(n - 4)
            if kind == b"Q":
                tag = body.split(b" ", 1)[0].rstrip(b"\0;").upper()
                await self._send(writer, msg(b"C", tag + b"\0") + msg(b"Z", b"T"))
            elif kind == b"P":
                query = body.split(b"\0", 2)[1]
            elif kind == b"H" and query:  # asyncpg describes with a Flush, not a Sync
                n_params = query.count(b"$")
                oids = [1009 if b"text[]" in query else 25] * n_params
                await self._send(writer, msg(b"1") + msg(b"t", struct.pack(
                    "!h" + "i" * n_params, n_params, *oids)) + _row_description(3))
                query = b""
            elif kind == b"E":
                executing = True
            elif kind == b"S":
                if executing:
                    await self._send(writer, msg(b"2") + row * self.rows
                                     + msg(b"C", b"SELECT 1\0"))
                    executing = False
                await self._send(writer, msg(b"Z", b"T"))
            elif kind == b"X":
                return
