"""`slot_released`: a handler that only waits gives its queue slot back, and takes one again."""

import asyncio

from app.dispatch import SubjectQueue
from app.slots import slot_released


async def settle():
    # Let every runnable task reach its next await; no wall-clock involved.
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_waiting_handler_lets_another_subject_run():
    queue = SubjectQueue(1)
    away, back, other_ran = asyncio.Event(), asyncio.Event(), asyncio.Event()
    log = []

    async def waits():
        async with slot_released():
            away.set()
            await back.wait()
        log.append("waiter back at work")

    async def other():
        log.append("other")
        other_ran.set()

    queue.submit("a", "d1", waits)
    await away.wait()
    queue.submit("b", "d2", other)
    assert await queue.wait_for("d2") == "ok"  # ran in the only slot while d1 waited
    back.set()
    assert await queue.wait_for("d1") == "ok"
    assert log == ["other", "waiter back at work"]


async def test_coming_back_waits_for_a_free_slot():
    queue = SubjectQueue(1)
    away, back, busy, done = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    log = []

    async def waits():
        async with slot_released():
            away.set()
            await back.wait()
        log.append("waiter resumed")

    async def works():
        busy.set()
        await done.wait()
        log.append("worker done")

    queue.submit("a", "d1", waits)
    await away.wait()
    queue.submit("b", "d2", works)
    await busy.wait()
    back.set()
    await settle()
    assert log == []  # the bound holds: the waiter needs the slot the worker has
    done.set()
    assert [await queue.wait_for(d) for d in ("d1", "d2")] == ["ok", "ok"]
    assert log == ["worker done", "waiter resumed"]


async def test_gathered_waits_take_one_slot_back_not_two():
    queue = SubjectQueue(1)
    both_away, back = asyncio.Event(), asyncio.Event()
    resumed, finish = asyncio.Event(), asyncio.Event()
    log = []

    async def one_wait():
        async with slot_released():
            log.append("away")
            if log.count("away") == 2:
                both_away.set()
            await back.wait()

    async def gathers():
        await asyncio.gather(one_wait(), one_wait())
        resumed.set()
        await finish.wait()

    async def other():
        log.append("other")

    queue.submit("a", "d1", gathers)
    await both_away.wait()
    back.set()
    await resumed.wait()  # both came back with the one slot there is
    queue.submit("b", "d2", other)
    await settle()
    assert log == ["away", "away"]  # d1 holds that slot again
    finish.set()
    assert [await queue.wait_for(d) for d in ("d1", "d2")] == ["ok", "ok"]
    assert log == ["away", "away", "other"]


async def test_a_task_left_behind_does_not_keep_a_slot():
    queue = SubjectQueue(1)
    left_behind, back = asyncio.Event(), asyncio.Event()
    tasks = []

    async def lingers():
        async with slot_released():
            left_behind.set()
            await back.wait()

    async def handler():
        tasks.append(asyncio.create_task(lingers()))
        await left_behind.wait()

    queue.submit("a", "d1", handler)
    assert await queue.wait_for("d1") == "ok"
    back.set()
    await tasks[0]  # comes back after its handler ended: it must not take a slot for good

    async def later():
        return "ran"

    queue.submit("b", "d2", later)
    assert await queue.wait_for("d2") == "ran"


async def test_outside_a_queue_it_does_nothing():
    async with slot_released():
        pass
