"""SubjectQueue: deliveries about one subject run one at a time and in order; others in parallel.

A handler holds one of the queue's slots while it works (a `Lease`, see `app/slots.py`); while it
only waits for GitHub to let it go on, it gives the slot back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.slots import Lease, holding

log = logging.getLogger(__name__)

OUTCOME_OK = "ok"
OUTCOME_CANCELLED = "cancelled: shutdown"
OUTCOME_ABANDONED = "abandoned: shutdown"
OUTCOMES_KEPT = 10_000

CoroFactory = Callable[[], Awaitable[object]]


class QueueClosedError(RuntimeError):
    """The queue is shutting down and takes no new work."""


@dataclass(frozen=True, slots=True)
class _Job:
    subject: str
    delivery_id: str
    factory: CoroFactory


class SubjectQueue:
    """Per-subject FIFO with a global concurrency bound and a graceful close."""

    def __init__(self, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._slots = asyncio.Semaphore(max_concurrency)
        self._pending: dict[str, deque[_Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, _Job] = {}
        # The last OUTCOMES_KEPT outcomes, oldest out first (an OrderedDict drops its first key
        # in constant time; cachetools' LRUCache cost a delivery several times as much).
        self._outcomes: OrderedDict[str, str] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[str]]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def running(self) -> int:
        """Return how many handlers are running right now."""
        return len(self._running)

    @property
    def closing(self) -> bool:
        """Tell whether `close()` has been called."""
        return self._closing

    def submit(self, subject: str, delivery_id: str, coro_factory: CoroFactory) -> None:
        """Queue `coro_factory()` to run after everything already queued for `subject`."""
        if self._closing:
            raise QueueClosedError("the queue is closing")
        self._pending.setdefault(subject, deque()).append(_Job(subject, delivery_id, coro_factory))
        self._idle.clear()
        if subject not in self._workers:
            self._workers[subject] = asyncio.create_task(
                self._drain(subject), name=f"coder subject {subject}"
            )

    async def wait_idle(self) -> None:
        """Wait until nothing is queued or running."""
        await self._idle.wait()

    async def wait_for(self, delivery_id: str) -> str:
        """Wait for a delivery's outcome ("ok", "error: ..."); waits forever if never queued."""
        outcome = self._outcomes.get(delivery_id)
        if outcome is not None:
            return outcome
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(delivery_id, []).append(future)
        return await future

    def outcome(self, delivery_id: str) -> str | None:
        """Return a finished delivery's outcome, or None."""
        return self._outcomes.get(delivery_id)

    async def close(self, grace: float) -> list[str]:
        """Stop taking work, let running handlers finish within `grace` seconds, cancel the rest.

        Returns the delivery ids that did not run to completion. Nothing is lost for good:
        handlers are idempotent and the reconcile loop re-derives their work from GitHub.
        """
        self._closing = True
        abandoned: list[str] = []
        for queue in self._pending.values():
            while queue:
                job = queue.popleft()
                abandoned.append(job.delivery_id)
                self._abandon(job, OUTCOME_ABANDONED, "not started before shutdown")
        workers = list(self._workers.values())
        if workers:
            _, late = await asyncio.wait(workers, timeout=grace)
            abandoned.extend(job.delivery_id for job in self._running.values())
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._update_idle()
        return abandoned

    async def _drain(self, subject: str) -> None:
        queue = self._pending[subject]
        try:
            while queue and not self._closing:
                lease = Lease(self._slots)
                await lease.acquire()
                try:
                    if self._closing or not queue:
                        break
                    job = queue.popleft()
                    self._running[subject] = job
                    try:
                        with holding(lease):
                            outcome = await self._run(job)
                    finally:
                        del self._running[subject]
                    self._finish(job.delivery_id, outcome)
                finally:
                    lease.end()
        finally:
            del self._workers[subject]
            if not queue:
                self._pending.pop(subject, None)
            self._update_idle()

    async def _run(self, job: _Job) -> str:
        try:
            result = await job.factory()
        except asyncio.CancelledError:
            self._abandon(job, OUTCOME_CANCELLED, "cancelled after the shutdown grace period")
            raise
        except Exception as error:
            log.exception(
                "delivery %s failed",
                job.delivery_id,
                extra={"delivery_id": job.delivery_id, "subject": job.subject},
            )
            return f"error: {type(error).__name__}: {error}"
        return result if isinstance(result, str) else OUTCOME_OK

    def _abandon(self, job: _Job, outcome: str, why: str) -> None:
        log.warning(
            "delivery %s for %s abandoned: %s; the reconcile loop will pick it up",
            job.delivery_id,
            job.subject,
            why,
            extra={"delivery_id": job.delivery_id, "subject": job.subject, "outcome": outcome},
        )
        self._finish(job.delivery_id, outcome)

    def _finish(self, delivery_id: str, outcome: str) -> None:
        self._outcomes[delivery_id] = outcome
        self._outcomes.move_to_end(delivery_id)
        if len(self._outcomes) > OUTCOMES_KEPT:
            self._outcomes.popitem(last=False)
        for future in self._waiters.pop(delivery_id, []):
            if not future.done():
                future.set_result(outcome)

    def _update_idle(self) -> None:
        if not self._workers and not any(self._pending.values()):
            self._idle.set()
