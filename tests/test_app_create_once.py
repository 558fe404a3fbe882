"""`create_once`: a create whose answer was lost is looked up, not sent again.

devhub's `when: after` faults do the work and then answer 502 (or drop the connection), which is
exactly the case a retry could double: GitHub made the thing, the app never heard.
"""

from __future__ import annotations

import http
from typing import TYPE_CHECKING, Any

import aiohttp
import gidgethub
import pytest

from app.github import GitHub, create_once
from app.installation import ensure_labels
from app.labels import CODER_LABELS
from app.retry import RetryPolicy
from devhub.testing import DevHubError
from tests.test_develop import REPO, FakeRunner, Journey, install_workflow, markers_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# The contract first, with no GitHub at all: a client that is never asked to send anything.


@pytest.fixture
async def offline_gh() -> AsyncIterator[OfflineClient]:
    async with aiohttp.ClientSession() as session:
        yield OfflineClient(session)


class OfflineClient(GitHub):
    """A client with a short, jitter-free policy whose sleeps are only recorded."""

    def __init__(self, session: aiohttp.ClientSession, max_attempts: int = 3) -> None:
        self.slept: list[float] = []

        async def no_token() -> str:
            raise AssertionError("create_once itself never sends a request")

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        super().__init__(
            session,
            authorization=no_token,
            base_url="http://127.0.0.1:9",
            graphql_url="",
            policy=RetryPolicy(max_attempts=max_attempts, random=lambda: 0.5),
            sleep=sleep,
        )


class Remote:
    """A GitHub that keeps what was created and may lose the answers."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.created: list[str] = []
        self.finds = 0

    async def create(self) -> str:
        self.created.append(f"object {len(self.created) + 1}")
        if self.failures:
            raise self.failures.pop(0)
        return self.created[-1]

    async def find(self) -> str | None:
        self.finds += 1
        return self.created[-1] if self.created else None


def broken() -> gidgethub.GitHubBroken:
    return gidgethub.GitHubBroken(http.HTTPStatus.BAD_GATEWAY)


async def test_a_lost_answer_is_found_not_created_again(offline_gh):
    remote = Remote(broken())
    assert await create_once(offline_gh, create=remote.create, find=remote.find) == "object 1"
    assert remote.created == ["object 1"]
    assert remote.finds == 1
    assert offline_gh.slept == [0.25]  # one backoff (jitter 0.5 of 0.5 s) before looking


async def test_a_dropped_connection_after_sending_is_looked_up_too(offline_gh):
    remote = Remote(aiohttp.ServerDisconnectedError())
    assert await create_once(offline_gh, create=remote.create, find=remote.find) == "object 1"
    assert remote.created == ["object 1"]


async def test_nothing_found_means_create_again(offline_gh):
    created: list[int] = []

    async def create() -> int:
        created.append(1)
        if len(created) == 1:
            raise broken()
        return len(created)

    async def find() -> None:
        return None

    assert await create_once(offline_gh, create=create, find=find) == 2


async def test_attempts_are_bounded(offline_gh):
    remote = Remote(*(broken() for _ in range(5)))

    async def find_nothing() -> None:
        return None

    with pytest.raises(gidgethub.GitHubBroken):
        await create_once(offline_gh, create=remote.create, find=find_nothing)
    assert len(remote.created) == 3  # the policy's max_attempts
    assert len(offline_gh.slept) == 2


async def test_a_clear_refusal_is_not_looked_up(offline_gh):
    remote = Remote(gidgethub.BadRequest(http.HTTPStatus.UNPROCESSABLE_ENTITY))
    with pytest.raises(gidgethub.BadRequest):
        await create_once(offline_gh, create=remote.create, find=remote.find)
    assert remote.finds == 0


# devhub's `when: after` faults


async def test_an_after_fault_does_the_work_then_answers_502(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await admin.add_fault(kind="status", when="after", method="POST", path=r"/issues$", status=502)
    status, _, body = await rest.post(f"/repos/{org.repo}/issues", {"title": "made anyway"})
    assert (status, body["message"]) == (502, "Bad Gateway")
    _, _, issues = await rest.get(f"/repos/{org.repo}/issues")
    assert [issue["title"] for issue in issues] == ["made anyway"]
    [logged] = [r for r in await admin.requests() if r["fault"] == "status"]
    assert logged["status"] == 502


async def test_an_after_reset_does_the_work_then_drops_the_connection(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await admin.add_fault(kind="reset", when="after", method="POST", path=r"/issues$")
    with pytest.raises(aiohttp.ClientError):
        await rest.post(f"/repos/{org.repo}/issues", {"title": "made anyway"})
    _, _, issues = await rest.get(f"/repos/{org.repo}/issues")
    assert [issue["title"] for issue in issues] == ["made anyway"]


async def test_after_applies_to_status_and_reset_faults_only(devhub, admin):
    for spec, message in (
        ({"kind": "latency", "when": "after"}, "when=after applies to status and reset"),
        ({"kind": "status", "when": "later"}, "when must be one of before, after"),
    ):
        with pytest.raises(DevHubError) as raised:
            await admin.add_fault(**spec)
        assert raised.value.status == 422
        assert message in raised.value.body["message"]


# The app's creates, through devhub


def posts(requests: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] == "POST" and r["path"].endswith(suffix)]


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    return Journey(devhub, admin, org, app_server)


@pytest.fixture
async def fake_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "report")
    yield runner
    await runner.close()


async def test_labels_whose_create_answer_was_lost_are_made_once(admin, org, app_server):
    # The org was installed before the app listened: no installation event creates them first.
    gh = app_server.access.for_installation(org.installation_id)
    await admin.add_fault(kind="status", when="after", method="POST", path=r"/labels$", status=502)
    await ensure_labels(gh, REPO)
    _, _, labels = await admin.rest(org.owner.token).get(f"/repos/{REPO}/labels?per_page=100")
    names = [label["name"] for label in labels]
    assert sorted(n for n in names if n in {label.name for label in CODER_LABELS}) == sorted(
        label.name for label in CODER_LABELS
    )
    assert len(posts(await admin.requests(), "/labels")) == len(CODER_LABELS)


async def test_a_refusal_comment_whose_answer_was_lost_is_posted_once(journey, admin):
    await ensure_labels(
        journey.app_server.access.for_installation(journey.org.installation_id), REPO
    )
    person = await admin.create_user("triager")
    await admin.add_collaborator(REPO, person.login, "triage")
    number = await journey.issue()
    await admin.add_fault(
        kind="status", when="after", method="POST", path=rf"/issues/{number}/comments$", status=502
    )
    await journey.label(number, token=person.token)
    comments = await journey.comments(number)
    assert [kind for kind, _ in markers_of(comments)] == ["refusal"]
    assert len(posts(await admin.requests(), f"/issues/{number}/comments")) == 1


@pytest.mark.parametrize("kind", ["status", "reset"])
async def test_a_pull_request_whose_answer_was_lost_is_opened_once(
    journey, admin, fake_runner, kind
):
    await ensure_labels(
        journey.app_server.access.for_installation(journey.org.installation_id), REPO
    )
    await install_workflow(journey)
    await admin.add_fault(kind=kind, when="after", method="POST", path=r"/pulls$", status=502)
    number = await journey.issue()
    await journey.label(number)
    assert len(await journey.pulls()) == 1
    assert len(posts(await admin.requests(), f"/repos/{REPO}/pulls")) == 1
    [branch] = await journey.branches(number)
    assert len(await journey.check_runs(branch["object"]["sha"])) == 1
