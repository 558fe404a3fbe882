"""Writes that happen once: marked comments, check runs by `external_id`, labels (DESIGN §2).

Each one looks for what it would create (by the app's own marker, or by the run id in
`external_id`) before creating it, and again after an ambiguous failure, so a redelivered event
never doubles a comment or a check run. Looking is not a lock: two replicas handling the same
delivery at once can both look, find nothing and both create. So after creating, each looks
again, and when there are two the younger retires (the same rule as `app.pull_runs`): a comment
deletes itself, a check run is completed as a duplicate of the older one. Both callers then
hold the same, oldest, write.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gidgethub

from app import checks, labels, replies
from app.github import create_once
from app.markers import all_marked
from app.reconcile import check_runs_on

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI

CHECK_RUNS_URL = "/repos/{owner}/{repo}/check-runs"
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
ISSUE_LABELS_URL = "/repos/{owner}/{repo}/issues/{number}/labels"
COMMENTS_URL = "/repos/{owner}/{repo}/issues/{number}/comments"
COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"
COMMENT_URL = "/repos/{owner}/{repo}/issues/comments/{comment_id}"

log = logging.getLogger(__name__)


def where(repo: str, **more: str | int) -> dict[str, str]:
    """Return the owner/repo URI-template variables, plus any others."""
    owner, name = repo.split("/", 1)
    return {"owner": owner, "repo": name, **{key: str(value) for key, value in more.items()}}


async def comment_once(
    gh: GitHubAPI, repo: str, number: int, reply: replies.Reply, bot_login: str
) -> Mapping[str, Any]:
    """Post a marked comment unless the app already posted one of this kind for this run."""
    on_issue = where(repo, number=number)

    async def marked() -> list[Mapping[str, Any]]:
        pages = gh.getiter(COMMENTS_PAGE_URL, {**on_issue, "per_page": 100})
        comments = [comment async for comment in pages]
        return all_marked(comments, reply.kind, author=bot_login, **reply.fields)

    async def find() -> Mapping[str, Any] | None:
        return oldest(await marked())

    existing = await find()
    if existing is not None:
        return existing
    data = {"body": reply.body}
    posted = await create_once(
        gh, create=lambda: gh.post(COMMENTS_URL, on_issue, data=data), find=find
    )
    winner = oldest([posted, *await marked()])
    assert winner is not None
    if int(winner["id"]) != int(posted["id"]):
        log.info("comment %s in %s duplicates %s; deleting it", posted["id"], repo, winner["id"])
        await _delete_comment(gh, repo, posted["id"])
    return winner


async def _delete_comment(gh: GitHubAPI, repo: str, comment_id: int | str) -> None:
    try:
        await gh.delete(COMMENT_URL, where(repo, comment_id=comment_id))
    except gidgethub.BadRequest as error:
        if error.status_code != 404:
            raise


def oldest(found: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Return the write that holds the effect: the lowest id (GitHub's ids only grow)."""
    return min(found, key=lambda item: int(item["id"]), default=None)


async def check_run_once(
    gh: GitHubAPI, repo: str, body: Mapping[str, Any], *, look_first: bool
) -> Mapping[str, Any]:
    """Create a check run unless one with its `external_id` is already on the commit.

    `look_first=False` is for a commit the caller holds a lock on (a run branch it just
    created); otherwise a racing replica's twin is retired as a duplicate of the older one.
    """
    workflow = str(body["name"]).removeprefix(checks.CHECK_PREFIX)

    async def ours() -> list[Mapping[str, Any]]:
        runs = await check_runs_on(gh, repo, str(body["head_sha"]), workflow)
        return [run for run in runs if run.get("external_id") == body["external_id"]]

    async def find() -> Mapping[str, Any] | None:
        return oldest(await ours())

    existing = await find() if look_first else None
    if existing is not None:
        return existing
    created: Mapping[str, Any] = await create_once(
        gh, create=lambda: gh.post(CHECK_RUNS_URL, where(repo), data=dict(body)), find=find
    )
    if not look_first:
        return created
    winner = oldest([created, *await ours()])
    assert winner is not None
    if int(winner["id"]) != int(created["id"]):
        log.info("check run %s in %s duplicates %s", created["id"], repo, winner["id"])
        await update_check_run(gh, repo, created["id"], checks.duplicate_update(winner["id"]))
    return winner


async def update_check_run(
    gh: GitHubAPI, repo: str, check_run_id: int | str, update: Mapping[str, Any]
) -> None:
    """Change one of the app's check runs."""
    await gh.patch(CHECK_RUN_URL, where(repo, check_run_id=check_run_id), data=dict(update))


async def add_running_label(gh: GitHubAPI, repo: str, number: int) -> None:
    """Label an issue or pull request `coder:running` (adding it twice changes nothing)."""
    data = {"labels": [labels.RUNNING]}
    await create_once(
        gh,
        create=lambda: gh.post(ISSUE_LABELS_URL, where(repo, number=number), data=data),
        find=nothing,
    )


async def nothing() -> None:
    """Find nothing: for writes that are harmless to repeat."""
    return
