"""Writes that happen once, even when two replicas race past the look-before-create on devhub."""

import asyncio

from app import checks, replies
from app.config import ConfigError
from app.github import GitHubAccess
from app.once import check_run_once, comment_once
from app.permissions import Refusal, SenderCheck
from tests.test_develop import REPO, markers_of

RUN_ID = "abcdefghijkl"


class BothLookThenBothPost:
    """A replica's GitHub client whose first POST waits until every replica is about to post.

    Both replicas have looked and found nothing by then: the race `look, then create` cannot
    stop on its own.
    """

    def __init__(self, gh, barrier):
        self._gh = gh
        self._barrier = barrier
        self._waited = False

    def __getattr__(self, name):
        return getattr(self._gh, name)

    async def post(self, *args, **kwargs):
        if not self._waited:
            self._waited = True
            await self._barrier.wait()
        return await self._gh.post(*args, **kwargs)


def racing_replicas(app_server, org, count=2):
    """Clients for `count` replicas (each its own access: no shared cache) that race to post."""
    barrier = asyncio.Barrier(count)
    replicas = [GitHubAccess(app_server.settings, app_server.session) for _ in range(count)]
    return [
        BothLookThenBothPost(replica.for_installation(org.installation_id), barrier)
        for replica in replicas
    ]


async def test_two_replicas_posting_one_refusal_leave_one_comment(devhub, admin, org, app_server):
    rest = admin.rest(org.owner.token)
    status, _, issue = await rest.post(f"/repos/{REPO}/issues", {"title": "Racing"})
    assert status == 201
    sender = SenderCheck(login="triager", role="triage", refusal=Refusal.NO_WRITE)
    reply = replies.refusal(run_id=RUN_ID, sender=sender, label="coder:develop", repo=REPO)
    bot = await app_server.access.bot_login()

    posted = await asyncio.gather(
        *(
            comment_once(gh, REPO, issue["number"], reply, bot)
            for gh in racing_replicas(app_server, org)
        )
    )

    status, _, comments = await rest.get(f"/repos/{REPO}/issues/{issue['number']}/comments")
    assert status == 200
    assert [c["user"]["login"] for c in comments] == [bot]
    assert markers_of(comments) == [("refusal", {"run": RUN_ID})]
    # Both replicas answer with the comment that stayed: the older one.
    assert {c["id"] for c in posted} == {comments[0]["id"]}
    deletes = [
        r
        for r in await admin.requests()
        if r["method"] == "DELETE" and "/issues/comments/" in r["path"]
    ]
    assert [r["status"] for r in deletes] == [204]


async def test_two_replicas_failing_one_config_leave_one_red_check_run(
    devhub, admin, org, app_server
):
    rest = admin.rest(org.owner.token)
    status, _, main = await rest.get(f"/repos/{REPO}/branches/main")
    assert status == 200
    head = main["commit"]["sha"]
    errors = [ConfigError(".github/coder.yml", 4, 3, "max_concurrent: must be 1 or more")]
    body = checks.config_failure_check_run(
        errors, head_sha=head, run_id=RUN_ID, workflow="develop", branch="main"
    )

    created = await asyncio.gather(
        *(
            check_run_once(gh, REPO, body, look_first=True)
            for gh in racing_replicas(app_server, org)
        )
    )

    status, _, listing = await rest.get(f"/repos/{REPO}/commits/{head}/check-runs?filter=all")
    assert status == 200
    ours = sorted(
        (run for run in listing["check_runs"] if run["external_id"] == RUN_ID),
        key=lambda run: run["id"],
    )
    assert len(ours) == 2  # GitHub cannot delete a check run: the younger one says what it is
    older, younger = ours
    assert (older["status"], older["conclusion"]) == ("completed", "failure")
    assert (younger["status"], younger["conclusion"]) == ("completed", "neutral")
    assert younger["output"]["title"] == f"duplicate of {older['id']}"
    assert {run["id"] for run in created} == {older["id"]}


async def test_a_lone_writer_keeps_its_comment_and_a_redelivery_adds_none(
    devhub, admin, org, app_server
):
    rest = admin.rest(org.owner.token)
    status, _, issue = await rest.post(f"/repos/{REPO}/issues", {"title": "Alone"})
    assert status == 201
    sender = SenderCheck(login="triager", role="triage", refusal=Refusal.NO_WRITE)
    reply = replies.refusal(run_id=RUN_ID, sender=sender, label="coder:develop", repo=REPO)
    bot = await app_server.access.bot_login()
    gh = app_server.access.for_installation(org.installation_id)
    first = await comment_once(gh, REPO, issue["number"], reply, bot)
    again = await comment_once(gh, REPO, issue["number"], reply, bot)
    assert again["id"] == first["id"]
    status, _, comments = await rest.get(f"/repos/{REPO}/issues/{issue['number']}/comments")
    assert [c["id"] for c in comments] == [first["id"]]
