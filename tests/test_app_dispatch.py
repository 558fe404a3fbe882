"""SubjectQueue: per-subject order, bounded concurrency, outcomes, and graceful shutdown."""

import asyncio
import logging

import pytest

from app.dispatch import QueueClosedError, SubjectQueue


class Jobs:
    """Handlers that announce when they start and finish only when released."""

    def __init__(self):
        self.started = asyncio.Queue()
        self.log = []
        self._release = {}

    def make(self, name, *, result=None, error=None):
        release = self._release[name] = asyncio.Event()

        async def handler():
            self.log.append(f"start {name}")
            await self.started.put(name)
            try:
                await release.wait()
            finally:
                self.log.append(f"end {name}")
            if error is not None:
                raise error
            return result

        return handler

    def release(self, name):
        self._release[name].set()

    async def next_started(self):
        return await self.started.get()

    def nothing_else_started(self):
        return self.started.empty()


async def settle():
    # Let every runnable task reach its next await; no wall-clock involved.
    for _ in range(10):
        await asyncio.sleep(0)


async def test_same_subject_runs_in_submission_order_one_at_a_time():
    queue, jobs = SubjectQueue(8), Jobs()
    for name in ("a1", "a2", "a3"):
        queue.submit("acme/w#1", name, jobs.make(name))
    assert await jobs.next_started() == "a1"
    await settle()
    assert jobs.nothing_else_started()
    jobs.release("a1")
    assert await jobs.next_started() == "a2"
    jobs.release("a2")
    assert await jobs.next_started() == "a3"
    jobs.release("a3")
    await queue.wait_idle()
    assert jobs.log == ["start a1", "end a1", "start a2", "end a2", "start a3", "end a3"]


async def test_different_subjects_run_concurrently():
    queue, jobs = SubjectQueue(8), Jobs()
    queue.submit("acme/w#1", "a1", jobs.make("a1"))
    queue.submit("acme/w#2", "b1", jobs.make("b1"))
    started = {await jobs.next_started(), await jobs.next_started()}
    assert started == {"a1", "b1"}
    assert queue.running == 2
    jobs.release("a1")
    jobs.release("b1")
    await queue.wait_idle()


async def test_global_concurrency_is_bounded():
    queue, jobs = SubjectQueue(2), Jobs()
    for subject in ("s1", "s2", "s3"):
        queue.submit(subject, subject, jobs.make(subject))
    first = {await jobs.next_started(), await jobs.next_started()}
    await settle()
    assert jobs.nothing_else_started()
    assert queue.running == 2
    jobs.release(min(first))
    assert await jobs.next_started() == "s3"
    for name in ("s1", "s2", "s3"):
        jobs.release(name)
    await queue.wait_idle()


async def test_a_subject_waiting_for_a_slot_does_not_block_its_order():
    queue, jobs = SubjectQueue(1), Jobs()
    queue.submit("x", "x1", jobs.make("x1"))
    queue.submit("y", "y1", jobs.make("y1"))
    queue.submit("x", "x2", jobs.make("x2"))
    assert await jobs.next_started() == "x1"
    jobs.release("x1")
    second = await jobs.next_started()
    jobs.release(second)
    third = await jobs.next_started()
    jobs.release(third)
    await queue.wait_idle()
    assert jobs.log.index("end x1") < jobs.log.index("start x2")


async def test_outcomes_ok_returned_text_and_errors():
    queue, jobs = SubjectQueue(4), Jobs()
    queue.submit("a", "ok", jobs.make("ok"))
    queue.submit("b", "text", jobs.make("text", result="ignored: sent by the app"))
    queue.submit("c", "bad", jobs.make("bad", error=ValueError("no such label")))
    for name in ("ok", "text", "bad"):
        jobs.release(name)
    assert await queue.wait_for("ok") == "ok"
    assert await queue.wait_for("text") == "ignored: sent by the app"
    assert await queue.wait_for("bad") == "error: ValueError: no such label"
    # Already finished: answered at once.
    assert await queue.wait_for("ok") == "ok"
    assert queue.outcome("bad") == "error: ValueError: no such label"


async def test_an_error_is_logged_with_its_delivery_id_and_the_subject_goes_on(caplog):
    queue, jobs = SubjectQueue(4), Jobs()
    queue.submit("a", "d-1", jobs.make("d-1", error=RuntimeError("boom")))
    queue.submit("a", "d-2", jobs.make("d-2"))
    jobs.release("d-1")
    jobs.release("d-2")
    assert await queue.wait_for("d-2") == "ok"
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].delivery_id == "d-1"
    assert failures[0].exc_info is not None


async def test_wait_for_is_woken_by_completion():
    queue, jobs = SubjectQueue(4), Jobs()
    queue.submit("a", "d-1", jobs.make("d-1"))
    waiter = asyncio.create_task(queue.wait_for("d-1"))
    await jobs.next_started()
    await settle()
    assert not waiter.done()
    jobs.release("d-1")
    assert await waiter == "ok"


async def test_wait_idle_returns_at_once_when_nothing_is_queued():
    await SubjectQueue(1).wait_idle()


async def test_close_lets_running_work_finish_and_abandons_what_never_started(caplog):
    queue, jobs = SubjectQueue(4), Jobs()
    queue.submit("a", "running", jobs.make("running"))
    queue.submit("a", "queued", jobs.make("queued"))
    await jobs.next_started()
    closing = asyncio.create_task(queue.close(grace=3600))
    await settle()
    assert not closing.done()
    jobs.release("running")
    abandoned = await closing
    assert abandoned == ["queued"]
    assert queue.outcome("running") == "ok"
    assert queue.outcome("queued") == "abandoned: shutdown"
    assert "start queued" not in jobs.log
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("queued" in line and "abandoned" in line for line in warnings)


async def test_close_cancels_work_still_running_after_the_grace_period(caplog):
    queue, jobs = SubjectQueue(4), Jobs()
    queue.submit("a", "stuck", jobs.make("stuck"))
    await jobs.next_started()
    abandoned = await queue.close(grace=0)
    assert abandoned == ["stuck"]
    assert queue.outcome("stuck") == "cancelled: shutdown"
    # The handler's own cleanup ran: cancellation unwinds it, it is not torn away.
    assert jobs.log == ["start stuck", "end stuck"]
    assert any("stuck" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    await queue.wait_idle()


async def test_close_drops_work_waiting_for_a_slot():
    queue, jobs = SubjectQueue(1), Jobs()
    queue.submit("a", "a1", jobs.make("a1"))
    queue.submit("b", "b1", jobs.make("b1"))
    await jobs.next_started()
    closing = asyncio.create_task(queue.close(grace=3600))
    await settle()
    jobs.release("a1")
    assert await closing == ["b1"]
    assert "start b1" not in jobs.log


async def test_submit_after_close_is_refused():
    queue = SubjectQueue(1)
    await queue.close(grace=0)
    assert queue.closing
    with pytest.raises(QueueClosedError):
        queue.submit("a", "late", Jobs().make("late"))


def test_concurrency_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        SubjectQueue(0)
