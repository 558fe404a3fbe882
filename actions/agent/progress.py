"""Progress on GitHub while a run works: the check run's output and the PR body's checklist.

Edits are coalesced: each target gets at most one edit per `interval` (15 s, DESIGN §4), always
with the newest state. A failed progress edit is logged and never fails the run; the final
results (the check run, the last PR body) are written by the run's end, not from here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from actions.agent.kinds import PUSH_STEP, TESTS_STEP
from app.briefing import Progress, Step, StepState, render_checklist, render_pr_body

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from actions.agent.clock import Clock
    from app.briefing import Snapshot

log = logging.getLogger(__name__)

T = TypeVar("T")
INTERVAL_SECONDS = 15.0
TITLE_RUNNING = "coder is working: {step}"


class Coalescer(Generic[T]):
    """Publish the newest submitted state at most once per `interval`; `close()` lands the last."""

    def __init__(
        self,
        publish: Callable[[T], Awaitable[None]],
        *,
        clock: Clock,
        interval: float = INTERVAL_SECONDS,
        name: str = "progress",
    ) -> None:
        self._publish = publish
        self._clock = clock
        self._interval = interval
        self._name = name
        self._latest: T | None = None
        self._dirty = False
        self._last_published: float | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def submit(self, state: T) -> None:
        """Make `state` the newest; it is published now or when the interval allows."""
        if self._closing.is_set():
            raise RuntimeError(f"{self._name}: submit after close")
        self._latest = state
        self._dirty = True
        if self._task is None:
            self._task = asyncio.create_task(self._loop())
        self._wake.set()

    def published_elsewhere(self) -> None:
        """Note an edit of the same target made outside this coalescer: the next one waits."""
        self._last_published = self._clock.now()

    async def close(self) -> None:
        """Publish the newest state at once if it has not been, then stop."""
        await self._stop()

    async def abandon(self) -> None:
        """Stop without publishing what is pending (an edit already on its way still lands)."""
        self._dirty = False
        await self._stop()

    async def _stop(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._dirty:
                await self._wait_for_window()
            if self._dirty:
                await self._publish_latest()
            if self._closing.is_set() and not self._dirty:
                return

    async def _wait_for_window(self) -> None:
        if self._last_published is None or self._closing.is_set():
            return
        wait = self._last_published + self._interval - self._clock.now()
        if wait <= 0:
            return
        sleeper = asyncio.create_task(self._clock.sleep(wait))
        closing = asyncio.create_task(self._closing.wait())
        try:
            await asyncio.wait({sleeper, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, closing):
                task.cancel()
            await asyncio.gather(sleeper, closing, return_exceptions=True)

    async def _publish_latest(self) -> None:
        state = self._latest
        assert state is not None
        self._dirty = False
        self._last_published = self._clock.now()
        try:
            await self._publish(state)
            self.published += 1
        except Exception as error:  # progress is best effort; the finish step reports
            log.warning("%s update failed: %s", self._name, error)


@dataclass(frozen=True)
class CheckRunOutput:
    """A check run's `output` title and summary."""

    title: str
    summary: str


class ProgressReporter:
    """Track the run's checklist and status, and coalesce them onto the check run and PR body."""

    def __init__(
        self,
        snapshot: Snapshot,
        roles: tuple[str, ...],
        *,
        publish_check_run: Callable[[CheckRunOutput], Awaitable[None]],
        publish_pull_body: Callable[[str], Awaitable[None]] | None,
        clock: Clock,
        interval: float = INTERVAL_SECONDS,
        after_roles: tuple[str, ...] = (TESTS_STEP, PUSH_STEP),
    ) -> None:
        self.snapshot = snapshot
        self.progress = Progress(tuple(Step(name) for name in (*roles, *after_roles)))
        self.status = ""
        self._check_run = Coalescer(
            publish_check_run, clock=clock, interval=interval, name="check run"
        )
        # A run on someone else's pull request (a review) leaves its body alone.
        self._pull_body = (
            None
            if publish_pull_body is None
            else Coalescer(publish_pull_body, clock=clock, interval=interval, name="PR body")
        )
        self._check_run_stopped = False

    def step(self, name: str, state: StepState, note: str = "") -> None:
        """Move one checklist step and publish."""
        self.progress = self.progress.with_step(name, state, note)
        self._submit()

    def say(self, status: str) -> None:
        """Set the one-line status (e.g. the agent's latest STATUS) and publish."""
        self.status = status
        self._submit()

    @property
    def edits(self) -> int:
        """Return how many progress edits reached GitHub."""
        body_edits = 0 if self._pull_body is None else self._pull_body.published
        return self._check_run.published + body_edits

    def check_run_started(self) -> None:
        """Note the runner's own start edit of the check run, so progress waits its 15 s."""
        self._check_run.published_elsewhere()

    async def stop_check_run(self) -> None:
        """Stop editing the check run (the finish step writes its final state)."""
        self._check_run_stopped = True
        await self._check_run.abandon()

    async def final_pull_body(self, status: str) -> str | None:
        """Stop publishing; return the PR body with `status` for the run's end to write.

        None if the run leaves the body alone. A progress edit already on its way lands first;
        one still waiting for its window is dropped, as the final body supersedes it.
        """
        self.status = status
        await self.stop_check_run()
        if self._pull_body is None:
            return None
        await self._pull_body.abandon()
        return self.pull_body()

    def pull_body(self) -> str:
        """Render the PR body for the current state."""
        return render_pr_body(self.snapshot, self.progress, self.status)

    def check_run_output(self) -> CheckRunOutput:
        """Render the check run's in-progress output."""
        running = [s.name for s in self.progress.steps if s.state is StepState.RUNNING]
        title = TITLE_RUNNING.format(step=running[0] if running else "preparing")
        summary = render_checklist(self.progress)
        if self.status:
            summary = f"**Status:** {self.status}\n\n{summary}"
        return CheckRunOutput(title, summary)

    def _submit(self) -> None:
        if not self._check_run_stopped:
            self._check_run.submit(self.check_run_output())
        if self._pull_body is not None:
            self._pull_body.submit(self.pull_body())
