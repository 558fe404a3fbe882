"""Writes that happen once: marked comments, check runs by `external_id`, labels (DESIGN §2).

Each one looks for what it would create (by the app's own marker, or by the run id in
`external_id`) before creating it, and again after an ambiguous failure, so a redelivered event
or a second replica never doubles a comment or a check run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app import checks, labels, replies
from app.github import create_once
from app.markers import find_marked
from app.reconcile import check_runs_on

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI

CHECK_RUNS_URL = "/repos/{owner}/{repo}/check-runs"
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
ISSUE_LABELS_URL = "/repos/{owner}/{repo}/issues/{number}/labels"
COMMENTS_URL = "/repos/{owner}/{repo}/issues/{number}/comments"
COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"


def where(repo: str, **more: str | int) -> dict[str, str]:
    """Return the owner/repo URI-template variables, plus any others."""
    owner, name = repo.split("/", 1)
    return {"owner": owner, "repo": name, **{key: str(value) for key, value in more.items()}}


async def comment_once(
    gh: GitHubAPI, repo: str, number: int, reply: replies.Reply, bot_login: str
) -> Mapping[str, Any]:
    """Post a marked comment unless the app already posted one of this kind for this run."""
    on_issue = where(repo, number=number)

    async def find() -> Mapping[str, Any] | None:
        pages = gh.getiter(COMMENTS_PAGE_URL, {**on_issue, "per_page": 100})
        comments = [comment async for comment in pages]
        return find_marked(comments, reply.kind, author=bot_login, **reply.fields)

    existing = await find()
    if existing is not None:
        return existing
    data = {"body": reply.body}
    return await create_once(
        gh, create=lambda: gh.post(COMMENTS_URL, on_issue, data=data), find=find
    )


async def check_run_once(
    gh: GitHubAPI, repo: str, body: Mapping[str, Any], *, look_first: bool
) -> Mapping[str, Any]:
    """Create a check run unless one with its `external_id` is already on the commit."""
    workflow = str(body["name"]).removeprefix(checks.CHECK_PREFIX)

    async def find() -> Mapping[str, Any] | None:
        runs = await check_runs_on(gh, repo, str(body["head_sha"]), workflow)
        return next((run for run in runs if run.get("external_id") == body["external_id"]), None)

    existing = await find() if look_first else None
    if existing is not None:
        return existing
    return await create_once(
        gh, create=lambda: gh.post(CHECK_RUNS_URL, where(repo), data=dict(body)), find=find
    )


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
