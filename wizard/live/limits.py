"""How much live checking a shared web deployment allows: per visitor and at once.

Pure Python (no Streamlit): the web step keeps each visitor's history in its session and
asks here for a slot; the CLI does not use these limits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableSequence
from typing import TypeVar

from wizard.live.errors import LiveError

ENV_MAX_CONCURRENT = "POOLWISE_LIVE_MAX_CONCURRENT"
ENV_MAX_PER_MINUTE = "POOLWISE_LIVE_MAX_PER_MINUTE"
ENV_DETAILED_ERRORS = "POOLWISE_LIVE_DETAILED_ERRORS"
ENV_MAX_PER_MINUTE_ALL = "POOLWISE_LIVE_MAX_PER_MINUTE_ALL"
DEFAULT_MAX_CONCURRENT = 2
DEFAULT_MAX_PER_MINUTE = 5
DEFAULT_MAX_PER_MINUTE_ALL = 30
WINDOW_S = 60.0
T = TypeVar("T")

# Failures that would tell a visitor what listens where (closed port, silent host, unknown
# name, another protocol, TLS quirks): shown to web visitors as one generic sentence.
NETWORK_CODES = frozenset((
    "unknown_host", "closed_port", "timeout", "not_postgres", "unreachable", "tls_refused",
    "tls_failed", "failed", "over_limit", "oversized",
))
GENERIC = LiveError("Could not reach a PostgreSQL server at that address.",
                    "check the host, port and network path (VPN, security group, firewall); "
                    "the operator can see the detail in the CLI (python -m wizard live).",
                    "unreachable")


def _int_setting(env: Mapping[str, str], name: str, default: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return min(max(value, 0), hi)


def max_concurrent(env: Mapping[str, str] | None = None) -> int:
    """Live checks running at once in this server process (POOLWISE_LIVE_MAX_CONCURRENT)."""
    return _int_setting(os.environ if env is None else env, ENV_MAX_CONCURRENT,
                        DEFAULT_MAX_CONCURRENT, 64)


def max_per_minute(env: Mapping[str, str] | None = None) -> int:
    """Live checks one visitor session may start per minute (POOLWISE_LIVE_MAX_PER_MINUTE)."""
    return _int_setting(os.environ if env is None else env, ENV_MAX_PER_MINUTE,
                        DEFAULT_MAX_PER_MINUTE, 1000)


def max_per_minute_all(env: Mapping[str, str] | None = None) -> int:
    """Live checks all sessions of this server process may start per minute together
    (POOLWISE_LIVE_MAX_PER_MINUTE_ALL): new sessions do not reset it."""
    return _int_setting(os.environ if env is None else env, ENV_MAX_PER_MINUTE_ALL,
                        DEFAULT_MAX_PER_MINUTE_ALL, 100000)


def detailed_errors(env: Mapping[str, str] | None = None) -> bool:
    """True when the operator lets web visitors see why a network connection failed."""
    env = os.environ if env is None else env
    return env.get(ENV_DETAILED_ERRORS, "").strip().lower() not in ("", "0", "false", "no",
                                                                     "off")


# Fixes in the web app's own words where the core's name a CLI flag or an environment
# variable (settings a web visitor cannot touch).
WEB_FIXES = {
    "wrong_password": "check the password and the user name in the URL; with IAM auth, "
                      "generate a fresh token and paste it as the password.",
    "exhaustion_refused": "untick the exhaustion proof, or run it when the server has more "
                          "free connections.",
    "disabled": "ask the operator of this deployment.",
}


def for_visitor(err, env: Mapping[str, str] | None = None):
    """The error a web visitor sees: network failures folded into one generic message,
    fixes that name CLI-only settings replaced by the app's own words."""
    if err.code in NETWORK_CODES and not detailed_errors(env):
        return GENERIC
    if err.code in WEB_FIXES:
        return dataclasses.replace(err, fix=WEB_FIXES[err.code]) \
            if dataclasses.is_dataclass(err) else LiveError(err.message, WEB_FIXES[err.code],
                                                             err.code)
    return err


def _take(history: MutableSequence[float], limit: int, now: float, who: str) -> None:
    recent = [t for t in history if now - t < WINDOW_S]
    history[:] = recent[-limit:] if limit else []
    if len(recent) >= limit:
        wait = math.ceil(WINDOW_S - (now - recent[-limit])) if limit else WINDOW_S
        raise LiveError(f"Too many live checks from {who} ({limit} per minute).",
                        f"wait about {wait:g} s and run it again.", "rate_limited")
    history.append(now)


# Every session's checks in this process, for the rate across sessions.
_ALL: list[float] = []
_ALL_LOCK = threading.Lock()


def take_token(history: MutableSequence[float], env: Mapping[str, str] | None = None,
               now: float | None = None) -> None:
    """Record one check in a visitor's `history` and in the process-wide count, or raise
    LiveError when either is over its rate (a visitor opening new sessions meets the
    second, POOLWISE_LIVE_MAX_PER_MINUTE_ALL)."""
    now = time.monotonic() if now is None else now
    with _ALL_LOCK:
        _take(history, max_per_minute(env), now, "this session")
        try:
            _take(_ALL, max_per_minute_all(env), now, "all visitors of this server")
        except LiveError:
            history.pop()
            raise


class _Gate:
    """A process-wide count of running checks with a limit read at each entry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    @contextlib.contextmanager
    def slot(self, env: Mapping[str, str] | None = None) -> Iterator[None]:
        limit = max_concurrent(env)
        with self._lock:
            if self.running >= limit:
                raise LiveError("The server is running as many live checks as it allows "
                                "right now.", "try again in a minute.", "busy")
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1


GATE = _Gate()


def run_gated(work: Callable[[], Awaitable[T]], started: float, pad_s: float,
              env: Mapping[str, str] | None = None) -> T:
    """Run one live check (`work()`) in its own event loop, holding a GATE slot from start to end:
    through the pad too, so a refused port and a silent host hold it alike (and "busy"
    tells another visitor nothing about either). A network failure is padded to `pad_s`
    after `started` unless the operator shows detailed errors. The loop is closed without
    waiting for a stuck DNS lookup's thread, which would hold the slot past the limits."""
    with GATE.slot(env):
        try:
            return _run(work)
        except BaseException as exc:
            network = isinstance(exc, TimeoutError) or getattr(exc, "code", "") in \
                NETWORK_CODES
            if network and not detailed_errors(env):
                pad(started, pad_s)
            raise


def _run(work: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await work()

    loop = asyncio.new_event_loop()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4,
                                                     thread_name_prefix="live-dns")
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            loop.close()


def pad(started: float, seconds: float) -> None:
    """Sleep until `seconds` after `started` (monotonic): a refused port then takes as long
    to fail as a silent one, so the time to fail does not tell them apart either."""
    left = started + seconds - time.monotonic()
    if left > 0:
        time.sleep(left)
