"""REST: review comments on a pull request's diff (create, reply, list, get).

https://docs.github.com/rest/pulls/comments. Like issue comments, anyone who may read the
repository may comment (installations need `pull_requests: write`); reading needs read access
(`pull_requests: read`). A comment must sit on a line of the diff as of its `commit_id`, which must
be one of the pull request's commits; GitHub's refusals are `Validation Failed` with
`pull_request_review_thread.*` fields. `in_reply_to` ignores everything but `body` and joins the
thread of that comment. Each new comment comes with its own `COMMENTED` review.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from devhub import review_comments
from devhub.http import (
    API_PREFIX,
    GitHubError,
    RepoAccess,
    context,
    field_str,
    json_response,
    not_found,
    paged_json,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.rest_labels import sender_of
from devhub.rest_pulls import access_for_review
from devhub.rest_reviews import emit_review, start_review
from devhub.review_comments import RESOURCE, field_int, find_comment, thread_root
from devhub.state import Role
from devhub.state_pulls import DiffAnchor

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.state import Repo
    from devhub.state_pulls import PullRequest, ReviewComment

ROUTES = web.RouteTableDef()

PULLS = API_PREFIX + "/repos/{owner}/{repo}/pulls"
PULL_COMMENTS = PULLS + "/{number:[0-9]+}/comments"
COMMENT = PULLS + "/comments/{comment_id:[0-9]+}"
READ = (("pull_requests", "read"),)
WRITE = (("pull_requests", "write"),)
NO_FILE_COMMENTS = "devhub does not model file-level review comments (subject_type: file)"
SORTS = {"created": lambda c: c.created_at, "updated": lambda c: c.updated_at}


def _writer(request: web.Request) -> tuple[RepoAccess, PullRequest]:
    access, pull = access_for_review(request)
    access.require(Role.READ, app=WRITE)
    if access.caller.kind == "anonymous":
        raise GitHubError(401, "Requires authentication")
    return access, pull


def _render(ctx: Context, repo: Repo, pull: PullRequest, comment: ReviewComment) -> web.Response:
    rendered = review_comments.review_comment_json(ctx.urls, ctx.state, repo, pull, comment)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


def _publish(
    ctx: Context,
    access: RepoAccess,
    pull: PullRequest,
    text: str,
    anchor: DiffAnchor,
    *,
    commit_id: str,
    in_reply_to: ReviewComment | None = None,
) -> web.Response:
    """Record a comment with its own review and announce both."""
    author = sender_of(ctx, access)
    via_app = access.caller.kind == "installation"
    review = start_review(
        ctx, pull, author, "COMMENTED", body="", commit_id=commit_id, via_app=via_app
    )
    comment = review_comments.add_comment(
        ctx, pull, review, text, anchor, commit_id=commit_id, in_reply_to=in_reply_to
    )
    review_comments.emit_comment(ctx, access.repo, pull, comment, author)
    emit_review(ctx, access.repo, pull, review, author)
    return _render(ctx, access.repo, pull, comment)


def _reply(
    ctx: Context, access: RepoAccess, pull: PullRequest, text: str, target: ReviewComment
) -> web.Response:
    root = thread_root(target)
    return _publish(
        ctx, access, pull, text, root.anchor, commit_id=root.commit_id, in_reply_to=root
    )


def _in_pull(pull: PullRequest, comment_id: int) -> ReviewComment:
    for comment in pull.review_comments:
        if comment.id == comment_id and comment.visible:
            return comment
    raise not_found()


@ROUTES.post(PULL_COMMENTS)
async def create_review_comment(request: web.Request) -> web.Response:
    """Comment on a line (or range) of the diff, or reply to a comment (`in_reply_to`); 201."""
    access, pull = _writer(request)
    ctx, repo = context(request), access.repo
    body = await read_body(request)
    text = field_str(body, "body", required=True) or ""
    in_reply_to = field_int(body, "in_reply_to")
    if in_reply_to is not None:
        return _reply(ctx, access, pull, text, _in_pull(pull, in_reply_to))
    commit_id = field_str(body, "commit_id", required=True) or ""
    path = field_str(body, "path", required=True) or ""
    if body.get("subject_type") == "file":
        error = {"resource": RESOURCE, "field": "subject_type", "code": "custom"}
        raise GitHubError(422, "Validation Failed", errors=[error | {"message": NO_FILE_COMMENTS}])
    placement = review_comments.parse_placement(body, path)
    if not await review_comments.commit_in_pull(ctx, repo, pull, commit_id):
        raise review_comments.not_in_pull_error()
    anchor = await review_comments.locate(ctx, repo, pull, commit_id, placement)
    if not isinstance(anchor, DiffAnchor):
        raise review_comments.problems_error(anchor)
    return _publish(ctx, access, pull, text, anchor, commit_id=commit_id)


@ROUTES.post(PULL_COMMENTS + "/{comment_id:[0-9]+}/replies")
async def reply_to_review_comment(request: web.Request) -> web.Response:
    """Reply to a review comment (the reply joins the thread of its first comment); 201."""
    access, pull = _writer(request)
    ctx = context(request)
    text = field_str(await read_body(request), "body", required=True) or ""
    target = _in_pull(pull, int(request.match_info["comment_id"]))
    return _reply(ctx, access, pull, text, target)


def _since(request: web.Request) -> datetime | None:
    raw = request.query.get("since")
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise validation_failed(RESOURCE, "since", "invalid") from None


@ROUTES.get(PULL_COMMENTS)
async def list_pull_review_comments(request: web.Request) -> web.Response:
    """List a pull request's review comments, oldest first (`sort`, `direction`, `since`)."""
    access, pull = access_for_review(request)
    access.require(Role.READ, app=READ)
    ctx = context(request)
    since = _since(request)
    chosen = [
        c for c in pull.review_comments if c.visible and (since is None or c.updated_at >= since)
    ]
    sort = request.query.get("sort")
    if sort in SORTS:
        # `direction` counts only with `sort` (GitHub: "Ignored without sort parameter").
        descending = request.query.get("direction", "desc") == "desc"
        chosen.sort(key=lambda c: (SORTS[sort](c), c.id), reverse=descending)
    return paged_json(
        request,
        chosen,
        lambda c: review_comments.review_comment_json(ctx.urls, ctx.state, access.repo, pull, c),
    )


@ROUTES.get(COMMENT)
async def get_review_comment(request: web.Request) -> web.Response:
    """Show one review comment."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    ctx = context(request)
    found = find_comment(access.repo, int(request.match_info["comment_id"]))
    if found is None:
        raise not_found()
    pull, comment = found
    rendered = review_comments.review_comment_json(ctx.urls, ctx.state, access.repo, pull, comment)
    return json_response(rendered)
