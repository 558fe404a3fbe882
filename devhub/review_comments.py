"""Review comments: placing them in a pull request's diff, their JSON, and their webhook.

Every review comment belongs to a review: a comment posted on its own (or a reply) comes with a
`COMMENTED` review of its own, and GitHub announces both, `pull_request_review_comment.created`
and `pull_request_review.submitted`. Comments of a pending review stay the author's draft (no
webhook, not listed) until the review is submitted. The REST routes live in
`rest_review_comments.py` and `rest_reviews.py`; the diff arithmetic in `diff_anchors.py`.
https://docs.github.com/rest/pulls/comments
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from devhub import pulls
from devhub.diff_anchors import SIDES, AnchorProblem, Placement, place
from devhub.diffs import diff_entries
from devhub.http import GitHubError
from devhub.rest_json import JSON, Urls, author_association, reactions_json, user_json
from devhub.state import iso, node_id, utcnow
from devhub.state_pulls import ReviewComment

if TYPE_CHECKING:
    from collections.abc import Mapping

    from devhub.http import Context
    from devhub.state import Account, Repo, State
    from devhub.state_pulls import DiffAnchor, PullRequest, Review, Side

RESOURCE = "PullRequestReviewComment"
NOT_IN_PULL = "commit_id is not part of the pull request"


def _invalid(message: str) -> GitHubError:
    return GitHubError(422, f"Invalid request.\n\n{message}")


def field_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"For 'properties/{name}', {json.dumps(value)} is not an integer.")
    return value


def _side(body: Mapping[str, Any], name: str) -> Side | None:
    value = body.get(name)
    if value is None:
        return None
    for side in SIDES:
        if value == side:
            return side
    raise GitHubError(
        422, "Validation Failed", errors=[{"resource": RESOURCE, "field": name, "code": "invalid"}]
    )


def parse_placement(body: Mapping[str, Any], path: str) -> Placement:
    """Read `line`, `side`, `start_line`, `start_side` and `position` of one comment."""
    return Placement(
        path=path,
        line=field_int(body, "line"),
        side=_side(body, "side") or "RIGHT",
        start_line=field_int(body, "start_line"),
        start_side=_side(body, "start_side"),
        position=field_int(body, "position"),
    )


async def commit_in_pull(ctx: Context, repo: Repo, pull: PullRequest, sha: str) -> bool:
    """Tell whether a commit is one of the pull request's own commits."""
    commits = await ctx.git.commits_between(
        repo.owner.login, repo.name, pull.facts.base_sha, pull.head_sha, pulls.MAX_COMMITS
    )
    return any(commit.sha == sha for commit, _change in commits)


async def locate(
    ctx: Context, repo: Repo, pull: PullRequest, commit_id: str, placement: Placement
) -> DiffAnchor | tuple[AnchorProblem, ...]:
    """Place a comment in the pull request's diff as of `commit_id` (from the merge base)."""
    owner, name = repo.owner.login, repo.name
    base = pull.facts.base_sha
    fork_point = await ctx.git.merge_base(owner, name, base, commit_id) or base
    entries = await diff_entries(ctx, repo, fork_point, commit_id)
    entry = next((e for e in entries if e.filename == placement.path), None)
    return place(placement, entry.patch if entry is not None else None)


def problems_error(problems: tuple[AnchorProblem, ...]) -> GitHubError:
    """Answer `POST .../pulls/{n}/comments` refusals: `Validation Failed` with error objects."""
    errors: list[dict[str, Any]] = []
    for problem in problems:
        error: dict[str, Any] = {
            "resource": RESOURCE,
            "code": problem.code,
            "field": f"pull_request_review_thread.{problem.field}",
        }
        if problem.message is not None:
            error["message"] = problem.message
        errors.append(error)
    return GitHubError(422, "Validation Failed", errors=errors)


def not_in_pull_error() -> GitHubError:
    """Answer a `commit_id` that is not one of the pull request's commits."""
    error = {"resource": RESOURCE, "code": "custom", "field": "commit_id", "message": NOT_IN_PULL}
    return GitHubError(422, "Validation Failed", errors=[error])


def add_comment(
    ctx: Context,
    pull: PullRequest,
    review: Review,
    body: str,
    anchor: DiffAnchor,
    *,
    commit_id: str,
    in_reply_to: ReviewComment | None = None,
) -> ReviewComment:
    """Record a review comment of `review` (a reply joins the thread of its first comment)."""
    now = utcnow()
    comment = ReviewComment(
        id=ctx.state.next_id(),
        review=review,
        user=review.user,
        body=body,
        commit_id=commit_id,
        anchor=anchor,
        created_at=now,
        updated_at=now,
        in_reply_to=thread_root(in_reply_to) if in_reply_to is not None else None,
    )
    pull.review_comments.append(comment)
    return comment


def thread_root(comment: ReviewComment) -> ReviewComment:
    """Return the first comment of a comment's thread (GitHub threads are one level deep)."""
    return comment.in_reply_to or comment


def find_comment(repo: Repo, comment_id: int) -> tuple[PullRequest, ReviewComment] | None:
    """Find a visible review comment of a repository by id."""
    for pull in repo.pulls.values():
        for comment in pull.review_comments:
            if comment.id == comment_id and comment.visible:
                return pull, comment
    return None


def review_comment_json(
    urls: Urls,
    state: State,
    repo: Repo,
    pull: PullRequest,
    comment: ReviewComment,
) -> JSON:
    """Render a `pull-request-review-comment` (REST and webhook payloads share it)."""
    repo_api = f"{urls.api}/repos/{repo.full_name}"
    api = f"{repo_api}/pulls/comments/{comment.id}"
    pull_api = f"{repo_api}/pulls/{pull.number}"
    html = f"{urls.web}/{repo.full_name}/pull/{pull.number}#discussion_r{comment.id}"
    anchor = comment.anchor
    body: JSON = {
        "url": api,
        "pull_request_review_id": comment.review.id,
        "id": comment.id,
        "node_id": node_id("PRRC", comment.id),
        "diff_hunk": anchor.diff_hunk,
        "path": anchor.path,
        "position": anchor.position,
        "original_position": anchor.position,
        "commit_id": comment.commit_id,
        "original_commit_id": comment.commit_id,
        "user": user_json(urls, comment.user),
        "body": comment.body,
        "created_at": iso(comment.created_at),
        "updated_at": iso(comment.updated_at),
        "html_url": html,
        "pull_request_url": pull_api,
        "author_association": author_association(state, repo, comment.user),
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "pull_request": {"href": pull_api},
        },
        "reactions": reactions_json(f"{api}/reactions", comment.reactions),
        "start_line": anchor.start_line,
        "original_start_line": anchor.start_line,
        "start_side": anchor.start_side,
        "line": anchor.line,
        "original_line": anchor.line,
        "side": anchor.side,
        "subject_type": "line",
    }
    if comment.in_reply_to is not None:
        body["in_reply_to_id"] = comment.in_reply_to.id
    return body


def emit_comment(
    ctx: Context, repo: Repo, pull: PullRequest, comment: ReviewComment, sender: Account
) -> None:
    """Emit `pull_request_review_comment.created`."""
    payload = {
        "comment": review_comment_json(ctx.urls, ctx.state, repo, pull, comment),
        "pull_request": pulls.pull_json(ctx.urls, ctx.state, repo, pull, ctx.app),
    }
    ctx.webhooks.emit(
        "pull_request_review_comment", payload, action="created", sender=sender, repo=repo
    )
