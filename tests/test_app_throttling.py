"""Rate limits and the delivery queue: a throttled installation waits without starving the others.

Every wait here is on an event (a recorded sleep, a queue outcome); the few `asyncio.wait_for`
timeouts only turn a regression into a failure instead of a hung test.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from gidgethub.routing import Router

from app.github import GitHubAccess
from app.retry import RetryPolicy, decide
from app.server import make_app
from app.settings import load_settings
from tests.support.app import AppServer, RecordingSleep, serve_app

if TYPE_CHECKING:
    from collections.abc import Callable

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

    from app.settings import Settings

GUARD = 30  # seconds before a regression that blocks shows up as a failure, not a hang


def requests_to(requests: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    return [r for r in requests if r["path"].endswith(suffix)]


def issue_event(action: str, repo: str, number: int, installation_id: int) -> dict[str, Any]:
    """The fields of an `issues` delivery that routing and the subject key read."""
    return {
        "action": action,
        "issue": {"number": number},
        "repository": {"full_name": repo},
        "installation": {"id": installation_id},
        "sender": {"login": "alice", "type": "User"},
    }


async def second_installation(admin: Any) -> int:
    bob = await admin.create_user("bob")
    await admin.create_org("beta", "bob")
    await admin.create_repo("beta", "things", bob.token)
    return int(await admin.install("beta", "all"))


async def test_a_parked_installation_gives_its_queue_slots_back(devhub, admin, org):
    other = await second_installation(admin)
    router = Router()

    @router.register("issues", action="opened")
    async def read_repository(event: Event, gh: GitHubAPI) -> None:
        await gh.getitem(f"/repos/{event.data['repository']['full_name']}")

    env = devhub.app_env() | {"CODER_MAX_CONCURRENCY": "2", "CODER_RECONCILE_SECONDS": "0"}
    running = await serve_app(load_settings(None, env), routers=[router])
    try:
        access = running.access
        await access.tokens.get(org.installation_id)
        await access.tokens.get(other)
        # acme's primary limit is exhausted for ten minutes; its handlers wait at the gate.
        access.gate(org.installation_id).park(time.time() + 600)
        running.sleep.hold()
        parked = []
        for number in (1, 2, 3):  # more subjects than the queue has slots
            delivery = f"acme-{number}"
            event = issue_event("opened", org.repo, number, org.installation_id)
            assert (await running.deliver("issues", event, delivery_id=delivery))[0] == 202
            parked.append(delivery)
        # All three reach the gate: each handed its slot back, so none blocks the next.
        await asyncio.wait_for(running.sleep.wait_for_calls(3), GUARD)
        event = issue_event("opened", "beta/things", 1, other)
        assert (await running.deliver("issues", event, delivery_id="beta-1"))[0] == 202
        assert await asyncio.wait_for(running.queue.wait_for("beta-1"), GUARD) == "ok"
        assert [running.queue.outcome(delivery) for delivery in parked] == [None, None, None]
        assert requests_to(await admin.requests(), f"/repos/{org.repo}") == []
        running.sleep.release()
        outcomes = [await running.queue.wait_for(delivery) for delivery in parked]
        assert outcomes == ["ok", "ok", "ok"]
    finally:
        running.sleep.release()
        await running.close()


async def test_a_secondary_limit_closes_the_installations_gate(devhub, admin, org):
    other = await second_installation(admin)
    sleep = RecordingSleep()
    async with aiohttp.ClientSession() as session:
        access = GitHubAccess(load_settings(None, devhub.app_env()), session, sleep=sleep)
        acme = access.for_installation(org.installation_id)
        await access.tokens.get(org.installation_id)
        await admin.add_fault(
            kind="secondary_rate_limit", retry_after=120, path=f"^/repos/{org.repo}$"
        )
        sleep.hold()
        refused = asyncio.create_task(acme.getitem(f"/repos/{org.repo}"))
        await sleep.wait_for_calls(1)
        assert sleep.calls[0] == pytest.approx(120, abs=0.5)
        gate = access.gate(org.installation_id)
        # Secondary limits count everything the installation does, not one resource.
        assert gate.parked_until("core") is not None
        assert gate.parked_until("graphql") is not None
        assert access.gate(other).parked_until() is None
        # Another request of the same installation waits too, without being sent.
        concurrent = asyncio.create_task(acme.getitem(f"/repos/{org.repo}/labels"))
        waited = asyncio.create_task(sleep.wait_for_calls(2))
        done, _ = await asyncio.wait({waited, concurrent}, return_when=asyncio.FIRST_COMPLETED)
        assert waited in done
        assert concurrent not in done
        assert requests_to(await admin.requests(), f"/repos/{org.repo}/labels") == []
        # Other installations are not held up.
        beta = access.for_installation(other)
        assert (await beta.getitem("/repos/beta/things"))["full_name"] == "beta/things"
        sleep.release()
        assert (await refused)["full_name"] == org.repo
        assert isinstance(await concurrent, list)
        assert len(requests_to(await admin.requests(), f"/repos/{org.repo}")) == 2


class ShiftedClock:
    """The wall clock, moved forward on demand (so a test can let time pass without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def serve_with_clock(
    settings: Settings, router: Router, clock: Callable[[], float]
) -> AppServer:
    """Serve the app as `serve_app` does, with `clock` as its GitHub access's clock."""
    sleep = RecordingSleep()

    def access_factory(settings: Settings, session: aiohttp.ClientSession) -> GitHubAccess:
        return GitHubAccess(settings, session, sleep=sleep, clock=clock)

    app = make_app(settings, access_factory=access_factory, routers=[router])
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    session = aiohttp.ClientSession()
    return AppServer(
        url=url, app=app, settings=settings, session=session, sleep=sleep, server=server
    )


async def test_the_404_window_opens_when_work_starts_not_while_queued(devhub, admin, org):
    clock = ShiftedClock()
    first_started = asyncio.Event()
    release_first = asyncio.Event()
    found: list[Any] = []
    router = Router()

    @router.register("issues", action="opened")
    async def busy(_event: Event, _gh: GitHubAPI) -> None:
        first_started.set()
        await release_first.wait()

    @router.register("issues", action="edited")
    async def read_issue(event: Event, gh: GitHubAPI) -> None:
        found.append(await gh.getitem(f"/repos/{org.repo}/issues/{event.data['issue']['number']}"))

    env = devhub.app_env() | {"CODER_RECONCILE_SECONDS": "0"}
    running = await serve_with_clock(load_settings(None, env), router, clock)
    try:
        await running.access.tokens.get(org.installation_id)
        opened = issue_event("opened", org.repo, 1, org.installation_id)
        edited = issue_event("edited", org.repo, 1, org.installation_id)
        assert (await running.deliver("issues", opened, delivery_id="first"))[0] == 202
        assert (await running.deliver("issues", edited, delivery_id="second"))[0] == 202
        await first_started.wait()
        # The second delivery (same subject) waits its turn for a minute: far past the window.
        clock.offset += 60

        async def open_the_issue(_seconds: float) -> None:
            running.sleep.hook = None
            status, _, _ = await admin.rest(org.owner.token).post(
                f"/repos/{org.repo}/issues", {"title": "late"}
            )
            assert status == 201

        running.sleep.hook = open_the_issue
        release_first.set()
        assert await asyncio.wait_for(running.queue.wait_for("second"), GUARD) == "ok"
        assert [issue["title"] for issue in found] == ["late"]
        assert running.sleep.calls == [1.0]
    finally:
        await running.close()


@pytest.mark.parametrize(
    ("status", "headers", "message", "closes"),
    [
        (403, {"retry-after": "30"}, "You have exceeded a secondary rate limit.", True),
        (429, {}, "", True),
        (
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2000"},
            "a secondary rate limit",
            True,
        ),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2000"}, "API rate limit", False),
        (502, {}, "", False),
    ],
)
def test_only_secondary_limits_close_the_whole_gate(status, headers, message, closes):
    decision = decide(
        attempt=1,
        method="GET",
        status=status,
        headers=headers,
        error=None,
        now=1000.0,
        since_event=None,
        policy=RetryPolicy(random=lambda: 0.5),
        message=message,
    )
    assert decision.retry
    assert decision.close_gate is closes
