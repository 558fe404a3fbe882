"""The queue slot a handler holds, and how it gives the slot back while it only waits.

`SubjectQueue` (app/dispatch.py) bounds how many handlers work at once. A handler that waits for
its installation's rate-limit gate does no work, so the GitHub client wraps that wait in
`slot_released()`: the slot goes back to the queue and is taken again before the handler goes on.
One throttled installation then cannot hold every slot while its deliveries pile up. This module
has no I/O and no queue in it, so the runner (which shares the GitHub client) can import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class Lease:
    """One handler's claim on a slot, which it can hand back while it only waits."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False
        self._ended = False
        self._away = 0  # how many of the handler's tasks are waiting without the slot
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take a slot, waiting for one to be free."""
        await self._slots.acquire()
        self._held = True
        if self._ended:  # a task the handler left behind came back after the handler ended
            self.release()

    def release(self) -> None:
        """Give the slot back if it is held."""
        if self._held:
            self._held = False
            self._slots.release()

    def end(self) -> None:
        """Give the slot back for good: the handler is done."""
        self._ended = True
        self.release()

    def leave(self) -> None:
        """Start a wait without the slot."""
        self._away += 1
        self.release()

    async def come_back(self) -> None:
        """End a wait; the last of the handler's waits to end takes a slot again."""
        self._away -= 1
        # Concurrent tasks of one handler (gather) come back one by one: one slot, taken once.
        async with self._lock:
            if self._away == 0 and not self._held and not self._ended:
                await self.acquire()


_LEASE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("coder_lease", default=None)


@contextlib.asynccontextmanager
async def slot_released() -> AsyncIterator[None]:
    """Give the current handler's queue slot back for the block; take one again after it.

    For waits that do no work (a rate-limited installation's gate). Outside a queued handler
    this does nothing.
    """
    lease = _LEASE.get()
    if lease is None:
        yield
        return
    lease.leave()
    try:
        yield
    finally:
        await lease.come_back()


class holding:  # noqa: N801 - used like a function: `with holding(lease):`
    """Run the block (a handler) as the holder of `lease`; tasks it starts inherit it."""

    # A class, not @contextmanager: it is entered once per delivery, and a generator costs more.
    __slots__ = ("_lease", "_token")

    def __init__(self, lease: Lease) -> None:
        self._lease = lease

    def __enter__(self) -> None:
        self._token = _LEASE.set(self._lease)

    def __exit__(self, *_: object) -> None:
        _LEASE.reset(self._token)
