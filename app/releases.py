"""A merged release pull request gets its tag: the one its release run's artifact names.

A release run ends with a `ReleaseArtifact` (version, tag, changelog) in its `coder/<workflow>`
check run. When a person merges the run's pull request, the app creates `refs/tags/<tag>` on the
merge commit (`POST git/refs`); a 422 means the tag is there already (a redelivery).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import gidgethub
from gidgethub.routing import Router

from app.artifacts import ReleaseArtifact, load_artifact
from app.briefing import BRANCH_PREFIX
from app.develop import APP_ACCESS
from app.events import Model, Repository
from app.once import where
from app.reconcile import check_runs_on

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

log = logging.getLogger(__name__)

router = Router()

REFS_URL = "/repos/{owner}/{repo}/git/refs"
TAGS = "refs/tags/"
# What git accepts as a tag name, minus anything that could surprise a person reading it:
# https://git-scm.com/docs/git-check-ref-format
TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(?:/[A-Za-z0-9][A-Za-z0-9._+-]*)*$")


class _Head(Model):
    ref: str
    sha: str


class _MergedPull(Model):
    number: int
    merged: bool = False
    merge_commit_sha: str | None = None
    head: _Head


class PullRequestClosed(Model):
    """`pull_request.closed`, merged or not."""

    pull_request: _MergedPull
    repository: Repository


def valid_tag(tag: str) -> bool:
    """Tell whether a tag name is safe to create (git's rules, kept simple)."""
    return bool(TAG_NAME.match(tag)) and ".." not in tag and not tag.endswith((".", ".lock"))


def release_of(check_runs: list[Mapping[str, Any]], app_id: int) -> ReleaseArtifact | None:
    """Return the release artifact of the newest successful coder run of this app (pure)."""
    ours = [
        run
        for run in check_runs
        if run.get("conclusion") == "success" and (run.get("app") or {}).get("id") == app_id
    ]
    for run in sorted(ours, key=lambda run: int(run.get("id") or 0), reverse=True):
        artifact = load_artifact((run.get("output") or {}).get("text"))
        if isinstance(artifact, ReleaseArtifact):
            return artifact
    return None


@router.register("pull_request", action="closed")
async def tag_release(event: Event, gh: GitHubAPI) -> None:
    """Tag the merge commit of a merged release pull request."""
    closed = PullRequestClosed.from_payload(event.data)
    pull, repo = closed.pull_request, closed.repository.full_name
    if (
        not pull.merged
        or pull.merge_commit_sha is None
        or not pull.head.ref.startswith(BRANCH_PREFIX)
    ):
        return
    check_runs = await check_runs_on(gh, repo, pull.head.sha)
    artifact = release_of(check_runs, APP_ACCESS.get().settings.app_id)
    if artifact is None:
        return
    if not valid_tag(artifact.tag):
        log.warning("run %s in %s: refusing tag %r", artifact.runId, repo, artifact.tag)
        return
    try:
        await gh.post(
            REFS_URL,
            where(repo),
            data={"ref": f"{TAGS}{artifact.tag}", "sha": pull.merge_commit_sha},
        )
    except gidgethub.BadRequest as error:
        if error.status_code != 422:
            raise
        log.info("tag %s exists in %s already", artifact.tag, repo)
        return
    log.info("tagged %s at %s in %s (#%d)", artifact.tag, pull.merge_commit_sha, repo, pull.number)
