"""The runner's clock: monotonic time plus a sleep that tests can drive by hand."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a sleep measured on the same clock."""

    def now(self) -> float:
        """Return the current time in seconds (monotonic)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""
        ...


class RealClock:
    """The process's monotonic clock and asyncio's sleep."""

    def now(self) -> float:
        """Return `time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep with asyncio."""
        await asyncio.sleep(max(seconds, 0.0))


class ManualClock:
    """A clock that moves only when `advance()` is called; sleepers wake when their time comes."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._moved = asyncio.Condition()
        self.sleepers = 0

    def now(self) -> float:
        """Return the manual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced past now + `seconds`."""
        until = self._now + max(seconds, 0.0)
        async with self._moved:
            self.sleepers += 1
            self._moved.notify_all()
            try:
                await self._moved.wait_for(lambda: self._now >= until)
            finally:
                self.sleepers -= 1
                self._moved.notify_all()

    async def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every sleeper whose time has come."""
        async with self._moved:
            self._now += seconds
            self._moved.notify_all()
        # Let woken sleepers run before the caller looks at what they did.
        for _ in range(5):
            await asyncio.sleep(0)

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Wait until at least `count` tasks are sleeping on this clock."""
        async with self._moved:
            await self._moved.wait_for(lambda: self.sleepers >= count)
