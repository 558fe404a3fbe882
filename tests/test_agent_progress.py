"""Progress edits: at most one per 15 s per target, always the newest, and the last one lands."""

from __future__ import annotations

import asyncio
import itertools

from actions.agent.clock import ManualClock
from actions.agent.progress import Coalescer, ProgressReporter
from app.briefing import Snapshot, StepState


class Recorder:
    """Records what was published and when, on the manual clock."""

    def __init__(self, clock, fail_first=False):
        self.clock = clock
        self.published = []
        self.arrived = asyncio.Condition()
        self.fail_first = fail_first

    async def __call__(self, state):
        async with self.arrived:
            self.published.append((self.clock.now(), state))
            self.arrived.notify_all()
        if self.fail_first and len(self.published) == 1:
            raise RuntimeError("GitHub said 502")

    async def wait_for(self, count):
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.published) >= count)


async def test_the_first_update_goes_out_at_once_and_later_ones_wait_for_the_window():
    clock = ManualClock(start=0.0)
    record = Recorder(clock)
    coalescer = Coalescer(record, clock=clock, interval=15.0)
    coalescer.submit("a")
    await record.wait_for(1)
    coalescer.submit("b")
    coalescer.submit("c")
    await clock.wait_for_sleepers(1)
    assert record.published == [(0.0, "a")]
    await clock.advance(14.0)
    assert record.published == [(0.0, "a")]
    await clock.advance(1.0)
    await record.wait_for(2)
    assert record.published == [(0.0, "a"), (15.0, "c")]  # "b" was superseded, never sent
    await coalescer.close()
    assert coalescer.published == 2


async def test_an_edit_made_elsewhere_starts_the_window():
    clock = ManualClock(start=0.0)
    record = Recorder(clock)
    coalescer = Coalescer(record, clock=clock, interval=15.0)
    coalescer.published_elsewhere()  # the runner's start edit of the same check run
    coalescer.submit("a")
    await clock.wait_for_sleepers(1)
    assert record.published == []
    await clock.advance(15.0)
    await record.wait_for(1)
    assert record.published == [(15.0, "a")]
    await coalescer.close()


async def test_close_lands_the_final_state_at_once():
    clock = ManualClock(start=0.0)
    record = Recorder(clock)
    coalescer = Coalescer(record, clock=clock, interval=15.0)
    coalescer.submit("first")
    await record.wait_for(1)
    coalescer.submit("final")
    await clock.wait_for_sleepers(1)
    await coalescer.close()
    assert record.published == [(0.0, "first"), (0.0, "final")]


async def test_close_with_nothing_pending_sends_nothing_more():
    clock = ManualClock(start=0.0)
    record = Recorder(clock)
    coalescer = Coalescer(record, clock=clock)
    coalescer.submit("only")
    await record.wait_for(1)
    await coalescer.close()
    assert record.published == [(0.0, "only")]


async def test_abandon_drops_what_is_pending():
    clock = ManualClock(start=0.0)
    record = Recorder(clock)
    coalescer = Coalescer(record, clock=clock)
    coalescer.submit("sent")
    await record.wait_for(1)
    coalescer.submit("stale")
    await clock.wait_for_sleepers(1)
    await coalescer.abandon()
    await clock.advance(60)
    assert record.published == [(0.0, "sent")]


async def test_a_failed_edit_is_logged_and_the_next_one_still_goes(caplog):
    clock = ManualClock(start=0.0)
    record = Recorder(clock, fail_first=True)
    coalescer = Coalescer(record, clock=clock, name="PR body")
    coalescer.submit("one")
    await record.wait_for(1)
    coalescer.submit("two")
    await clock.wait_for_sleepers(1)
    await clock.advance(15)
    await record.wait_for(2)
    await coalescer.close()
    assert [state for _at, state in record.published] == ["one", "two"]
    assert coalescer.published == 1
    assert "PR body update failed: GitHub said 502" in caplog.text


async def test_many_updates_in_a_minute_make_at_most_five_edits():
    clock = ManualClock(start=0.0)
    record = Recorder(clock)
    coalescer = Coalescer(record, clock=clock, interval=15.0)
    for second in range(60):
        coalescer.submit(second)
        await clock.advance(1)
    await coalescer.close()
    times = [at for at, _state in record.published]
    # Every edit but the last (which close() lands at once) respects the window.
    assert all(later - earlier >= 15 for earlier, later in itertools.pairwise(times[:-1]))
    assert record.published[-1][1] == 59
    assert len(record.published) <= 6  # 0, 15, 30, 45 and the final state at close


def snapshot():
    return Snapshot(
        repo="acme/widgets",
        issue_number=7,
        title="Add a flag",
        body="Please add --verbose.",
        labeled_by="alice",
        run_id="abcdefghijkl",
        workflow="develop",
        model="sonnet",
    )


async def test_the_reporter_renders_the_checklist_on_the_check_run_and_the_pr_body():
    clock = ManualClock(start=0.0)
    check_runs, bodies = Recorder(clock), Recorder(clock)
    reporter = ProgressReporter(
        snapshot(),
        ("architect", "implementer"),
        publish_check_run=check_runs,
        publish_pull_body=bodies,
        clock=clock,
    )
    reporter.step("architect", StepState.RUNNING)
    await check_runs.wait_for(1)
    await bodies.wait_for(1)
    _at, output = check_runs.published[0]
    assert output.title == "coder is working: architect"
    assert "- [ ] **architect** (running)" in output.summary
    assert "Closes #7" in bodies.published[0][1]

    reporter.say("architect: reading cli.py")
    reporter.step("architect", StepState.DONE)  # waits for the PR body's next window
    await clock.wait_for_sleepers(1)
    final_body = await reporter.final_pull_body("Still a draft: the tests failed.")
    assert len(check_runs.published) == 1  # the check run's final state belongs to the finish step
    # The run's end writes the final body; the progress edit it supersedes is never sent.
    assert len(bodies.published) == 1
    assert final_body is not None
    assert "**Status:** Still a draft: the tests failed." in final_body
    assert "- [x] architect" in final_body
    assert reporter.edits == 2


async def test_a_review_reports_on_its_check_run_only_and_lists_no_push():
    clock = ManualClock(start=0.0)
    check_runs = Recorder(clock)
    reporter = ProgressReporter(
        snapshot(),
        ("reviewer",),
        publish_check_run=check_runs,
        publish_pull_body=None,
        clock=clock,
        after_roles=(),
    )
    reporter.step("reviewer", StepState.RUNNING)
    await check_runs.wait_for(1)
    assert [step.name for step in reporter.progress.steps] == ["reviewer"]
    assert await reporter.final_pull_body("done") is None
    assert reporter.edits == 1
