"""A child process in its own process group, watched for the run deadline, idleness and stops.

Agents and test commands start their own children (compilers, test runners, servers). Each runs
as a session leader (`start_new_session`), so one signal reaches the whole group: SIGTERM first,
SIGKILL after a grace period. Whatever the group leaves behind when the leader exits is killed too,
so a stray background process can neither hold the pipes open nor outlive its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actions.agent.backends.base import Limits, StopReason

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from pathlib import Path

    from actions.agent.clock import Clock

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024  # a longer line is passed on in pieces


@dataclass(frozen=True)
class Line:
    """One line the process printed, without its newline."""

    stream: str
    text: str


class ManagedProcess:
    """Run `argv`, yield its output lines, and stop it when a limit or a stop request says so."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        clock: Clock,
        limits: Limits,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self._cwd = cwd
        self._env = dict(env)
        self._clock = clock
        self._limits = limits
        self._stop = stop or asyncio.Event()
        self._last_activity = clock.now()
        self.returncode: int | None = None
        self.stopped: StopReason | None = None

    async def lines(self) -> AsyncIterator[Line]:
        """Start the process and yield its stdout/stderr lines until it and its pipes close."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(limit=CHUNK_BYTES, loop=loop),
            *self.argv,
            cwd=self._cwd,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        child = _Child(transport, protocol)
        self._last_activity = self._clock.now()
        queue: asyncio.Queue[Line | None] = asyncio.Queue()
        readers = [
            asyncio.create_task(self._read(name, reader, queue))
            for name, reader in (("stdout", protocol.stdout), ("stderr", protocol.stderr))
            if reader is not None
        ]
        watchdog = asyncio.create_task(self._watch(child))
        closer = asyncio.create_task(self._close_when_done(child, readers, queue))
        try:
            while (line := await queue.get()) is not None:
                yield line
        finally:
            if child.returncode is None:
                # The consumer stopped listening early: stop the process as a requested stop.
                await self._terminate(child, StopReason.REQUESTED)
            await closer
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            self.returncode = child.returncode
            transport.close()

    async def _read(
        self, stream: str, reader: asyncio.StreamReader, queue: asyncio.Queue[Line | None]
    ) -> None:
        pending = b""
        while chunk := await reader.read(CHUNK_BYTES):
            self._last_activity = self._clock.now()
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                queue.put_nowait(Line(stream, _decode(raw)))
            while len(pending) > MAX_LINE_BYTES:
                queue.put_nowait(Line(stream, _decode(pending[:MAX_LINE_BYTES])))
                pending = pending[MAX_LINE_BYTES:]
        if pending:
            queue.put_nowait(Line(stream, _decode(pending)))

    async def _close_when_done(
        self, child: _Child, readers: list[asyncio.Task[None]], queue: asyncio.Queue[Line | None]
    ) -> None:
        await child.exited.wait()
        self.returncode = child.returncode
        _signal_group(child.pid, signal.SIGKILL)  # leftovers of the group
        # A process that left the group (setsid) could still hold a pipe; do not wait on it forever.
        _done, pending = await asyncio.wait(readers, timeout=self._limits.grace_seconds)
        for reader in pending:
            reader.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        queue.put_nowait(None)

    async def _watch(self, process: _Child) -> None:
        limits = self._limits
        while process.returncode is None:
            now = self._clock.now()
            if self._stop.is_set():
                await self._terminate(process, StopReason.REQUESTED)
                return
            if limits.deadline is not None and now >= limits.deadline:
                await self._terminate(process, StopReason.RUN_LIMIT)
                return
            idle_until = (
                None if limits.idle_seconds is None else self._last_activity + limits.idle_seconds
            )
            if idle_until is not None and now >= idle_until:
                await self._terminate(process, StopReason.IDLE)
                return
            wakes = [moment for moment in (limits.deadline, idle_until) if moment is not None]
            waiters: list[asyncio.Task[Any]] = [asyncio.create_task(self._stop.wait())]
            if wakes:
                waiters.append(asyncio.create_task(self._clock.sleep(min(wakes) - now)))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)

    async def _terminate(self, process: _Child, reason: StopReason) -> None:
        if self.stopped is None:
            self.stopped = reason
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.exited.wait(), self._limits.grace_seconds)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.exited.wait()


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol, plus an event set the moment the child exits.

    `Process.wait()` only returns once the child's pipes are closed too, and a grandchild that
    inherited them can keep them open indefinitely; the exit itself is what the runner needs.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


class _Child:
    """The running child: its pid, its exit event and its exit code."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _Protocol) -> None:
        self._transport = transport
        self.pid = transport.get_pid()
        self.exited = protocol.exited

    @property
    def returncode(self) -> int | None:
        """Return the exit code (negative: the signal), or None while it runs."""
        return self._transport.get_returncode()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _decode(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", errors="replace")
