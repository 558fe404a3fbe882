"""Run the repository's own tests (`tests.command`) in the workspace and keep the tail."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actions.agent.backends.base import Limits, StopReason
from actions.agent.backends.process import ManagedProcess

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from actions.agent.clock import Clock

TAIL_LINES = 60


@dataclass(frozen=True)
class TestResult:
    """How the test command ended, and the last lines it printed."""

    __test__ = False  # not a pytest class, despite the name

    passed: bool
    exit_code: int | None
    tail: str
    seconds: float
    stopped: StopReason | None = None  # RUN_LIMIT: tests.timeout_minutes or the run's deadline
    run_deadline_hit: bool = False  # the whole run ran out of time, not just the tests

    @property
    def timed_out(self) -> bool:
        """Tell whether a time limit stopped the tests."""
        return self.stopped is not None


async def run_tests(
    command: str,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock,
    timeout_seconds: float,
    run_deadline: float | None = None,
    grace_seconds: float = 10.0,
) -> TestResult:
    """Run `command` with `bash -c` in the workspace; stdout and stderr both count for the tail."""
    started = clock.now()
    test_deadline = started + timeout_seconds
    deadline = test_deadline if run_deadline is None else min(test_deadline, run_deadline)
    process = ManagedProcess(
        ["bash", "-c", command],
        cwd=workspace,
        env=env,
        clock=clock,
        limits=Limits(deadline=deadline, grace_seconds=grace_seconds),
    )
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    async for line in process.lines():
        tail.append(line.text)
    return TestResult(
        passed=process.returncode == 0 and process.stopped is None,
        exit_code=process.returncode,
        tail="\n".join(tail),
        seconds=clock.now() - started,
        stopped=process.stopped,
        run_deadline_hit=process.stopped is not None and deadline < test_deadline,
    )
