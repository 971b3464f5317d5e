"""A byte budget on every connection the live check opens: memory never follows the server.

asyncpg reads each server message whole (a 200 MB ErrorResponse or ParameterStatus is
buffered, then decoded) and has no setting for a largest message. The live check gives
asyncpg.connect a loop wrapper whose create_connection and start_tls put a meter between
the socket and asyncpg's protocol: past MAX_SERVER_BYTES received on one connection, the
meter drops the data, aborts the connection and hands asyncpg a ServerSentTooMuch as the
cause, so the check stops with one line instead of reading on. Bytes are counted on the
wire (TLS records included), from the first byte after connect to the close.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wizard.live.errors import LiveError

# Everything the live check reads on one connection (startup, readings, up to 2,000
# pre-ping round trips of about 40 bytes) is far below this.
MAX_SERVER_BYTES = 1 << 20


class ServerSentTooMuch(LiveError):
    """The server sent more than MAX_SERVER_BYTES on one connection."""

    def __init__(self, limit: int = MAX_SERVER_BYTES) -> None:
        super().__init__(
            f"The server sent more than {limit // 1024:,} KiB on one connection; the live "
            "check reads no more than that and stopped.",
            "point the check at a PostgreSQL server or pooler (a live check reads a few "
            "KiB).", "oversized")


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.error: ServerSentTooMuch | None = None

    def take(self, n: int, transport: asyncio.BaseTransport) -> bool:
        """Count n bytes; False (and the connection aborted) once over the limit."""
        self.seen += n
        if self.error is None and self.seen <= self.limit:
            return True
        if self.error is None:
            self.error = ServerSentTooMuch(self.limit)
            transport.abort()
        return False


class _Meter(asyncio.Protocol):
    """Counts what the socket delivers before the wrapped protocol sees it."""

    def __init__(self, inner: Any, transport: asyncio.BaseTransport, budget: _Budget) -> None:
        self.inner, self.transport, self.budget = inner, transport, budget

    def data_received(self, data: bytes) -> None:
        if self.budget.take(len(data), self.transport):
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(self.budget.error or exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _BufferedMeter(_Meter, asyncio.BufferedProtocol):
    """The same for a buffered protocol (asyncio's TLS layer)."""

    def get_buffer(self, sizehint: int) -> Any:
        return self.inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self.budget.take(nbytes, self.transport):
            self.inner.buffer_updated(nbytes)


def _meter(transport: asyncio.BaseTransport, budget: _Budget) -> None:
    inner = transport.get_protocol()
    if isinstance(inner, _Meter) or transport.is_closing():
        return
    cls = _BufferedMeter if isinstance(inner, asyncio.BufferedProtocol) else _Meter
    transport.set_protocol(cls(inner, transport, budget))


class BoundedLoop:
    """The running loop, with every connection asyncpg opens through it metered."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = MAX_SERVER_BYTES) -> None:
        self._loop = loop
        self._budget = _Budget(limit)

    def new_allowance(self) -> None:
        """Start a fresh budget for the next reading (observe reads for up to an hour: its
        limit is MAX_SERVER_BYTES per sample, not per connection). No-op once exceeded."""
        if self._budget.error is None:
            self._budget.seen = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_connection(self, factory: Any, *args: Any, **kw: Any) -> Any:
        transport, protocol = await self._loop.create_connection(factory, *args, **kw)
        _meter(transport, self._budget)
        return transport, protocol

    async def start_tls(self, transport: asyncio.BaseTransport, protocol: Any, *args: Any,
                        **kw: Any) -> Any:
        new = await self._loop.start_tls(transport, protocol, *args, **kw)
        _meter(transport, self._budget)  # the raw socket now feeds the TLS layer
        return new
