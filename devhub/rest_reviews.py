"""REST: pull request reviews (list, get, create with inline comments) and their webhook.

https://docs.github.com/rest/pulls/reviews. Creating a review answers 200, not 201, and refuses to
approve or request changes on one's own pull request, with GitHub's `validation_failed_simple` body
(errors are sentences: "Pull request review thread line must be part of the diff and ..."). A
review's `comments` become review comments tied to it (`pull_request_review_id`); each is
announced with `pull_request_review_comment.created` when the review is submitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub import pulls, review_comments
from devhub.diff_anchors import to_sentence
from devhub.http import (
    API_PREFIX,
    Context,
    GitHubError,
    context,
    field_str,
    json_response,
    not_found,
    paged_json,
    read_body,
)
from devhub.rest_json import JSON, Urls, author_association, user_json
from devhub.rest_labels import sender_of
from devhub.rest_pulls import access_for_review
from devhub.state import Role, iso, node_id, utcnow
from devhub.state_pulls import DiffAnchor, Review, ReviewState

if TYPE_CHECKING:
    from devhub.state import Account, Repo, State
    from devhub.state_pulls import PullRequest

ROUTES = web.RouteTableDef()

REVIEWS = API_PREFIX + "/repos/{owner}/{repo}/pulls/{number:[0-9]+}/reviews"
REVIEW = REVIEWS + "/{review_id:[0-9]+}"
READ = (("pull_requests", "read"),)
COMMIT_NOT_IN_PULL = "The commitOID is not part of the pull request"
EVENTS: dict[str, ReviewState] = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}
OWN_PULL = {
    "APPROVED": "Can not approve your own pull request",
    "CHANGES_REQUESTED": "Can not request changes on your own pull request",
}
BODY_NEEDED = ("CHANGES_REQUESTED", "COMMENTED")


def _unprocessable(message: str) -> GitHubError:
    # Reviews answer with `validation-error-simple`: errors are plain strings.
    error = GitHubError(422, "Unprocessable Entity")
    error.errors = [message]
    return error


def review_json(urls: Urls, state: State, repo: Repo, pull: PullRequest, review: Review) -> JSON:
    """Render a `pull-request-review`."""
    html = f"{urls.web}/{repo.full_name}/pull/{pull.number}"
    api = f"{urls.api}/repos/{repo.full_name}/pulls/{pull.number}"
    body: JSON = {
        "id": review.id,
        "node_id": node_id("PRR", review.id),
        "user": user_json(urls, review.user),
        "body": review.body,
        "state": review.state,
        "html_url": f"{html}#pullrequestreview-{review.id}",
        "pull_request_url": api,
        "_links": {
            "html": {"href": f"{html}#pullrequestreview-{review.id}"},
            "pull_request": {"href": api},
        },
        "commit_id": review.commit_id,
        "author_association": author_association(state, repo, review.user),
    }
    if review.submitted_at is not None:
        body["submitted_at"] = iso(review.submitted_at)
    return body


def emit_review(
    ctx: Context, repo: Repo, pull: PullRequest, review: Review, sender: Account
) -> None:
    """Emit `pull_request_review.submitted` (lower-case state, and null for an empty body)."""
    rendered = review_json(ctx.urls, ctx.state, repo, pull, review)
    payload = {
        "review": rendered | {"state": review.state.lower(), "body": review.body or None},
        "pull_request": pulls.pull_json(ctx.urls, ctx.state, repo, pull, ctx.app),
    }
    ctx.webhooks.emit("pull_request_review", payload, action="submitted", sender=sender, repo=repo)


def start_review(
    ctx: Context,
    pull: PullRequest,
    reviewer: Account,
    state: ReviewState,
    *,
    body: str,
    commit_id: str,
    via_app: bool,
) -> Review:
    """Record a review on a pull request (pending ones have no `submitted_at`)."""
    review = Review(
        id=ctx.state.next_id(),
        user=reviewer,
        body=body,
        state=state,
        commit_id=commit_id,
        submitted_at=None if state == "PENDING" else utcnow(),
        via_app=via_app,
    )
    pull.reviews.append(review)
    return review


def _find_review(pull: PullRequest, request: web.Request) -> Review:
    wanted = int(request.match_info["review_id"])
    review = next((r for r in pull.reviews if r.id == wanted), None)
    if review is None:
        raise not_found()
    return review


@ROUTES.get(REVIEWS)
async def list_reviews(request: web.Request) -> web.Response:
    """List a pull request's reviews, oldest first."""
    access, pull = access_for_review(request)
    access.require(Role.READ, app=READ)
    ctx = context(request)
    return paged_json(
        request,
        pull.reviews,
        lambda r: review_json(ctx.urls, ctx.state, access.repo, pull, r),
    )


@ROUTES.get(REVIEW)
async def get_review(request: web.Request) -> web.Response:
    """Show one review."""
    access, pull = access_for_review(request)
    access.require(Role.READ, app=READ)
    ctx = context(request)
    review = _find_review(pull, request)
    return json_response(review_json(ctx.urls, ctx.state, access.repo, pull, review))


@ROUTES.get(REVIEW + "/comments")
async def list_review_comments(request: web.Request) -> web.Response:
    """List the inline comments of one review, oldest first."""
    access, pull = access_for_review(request)
    access.require(Role.READ, app=READ)
    ctx = context(request)
    review = _find_review(pull, request)
    chosen = [c for c in pull.review_comments if c.review is review]
    return paged_json(
        request,
        chosen,
        lambda c: review_comments.review_comment_json(ctx.urls, ctx.state, access.repo, pull, c),
    )


async def _inline_comments(
    ctx: Context, repo: Repo, pull: PullRequest, commit_id: str, items: object
) -> list[tuple[str, DiffAnchor]]:
    """Place a review's `comments` in the diff; refuse them all if one cannot be placed."""
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise GitHubError(422, "Invalid request.\n\nFor 'properties/comments', not an array.")
    if items and not await review_comments.commit_in_pull(ctx, repo, pull, commit_id):
        raise _unprocessable(COMMIT_NOT_IN_PULL)
    placed: list[tuple[str, DiffAnchor]] = []
    sentences: list[str] = []
    for item in items:
        comment: dict[str, Any] = item
        path = field_str(comment, "path", required=True) or ""
        text = field_str(comment, "body", required=True) or ""
        placement = review_comments.parse_placement(comment, path)
        anchor = await review_comments.locate(ctx, repo, pull, commit_id, placement)
        if isinstance(anchor, DiffAnchor):
            placed.append((text, anchor))
            continue
        sentences += [p.sentence for p in anchor if p.sentence not in sentences]
    if sentences:
        raise _unprocessable(to_sentence(sentences))
    return placed


@ROUTES.post(REVIEWS)
async def create_review(request: web.Request) -> web.Response:
    """Review a pull request: APPROVE, REQUEST_CHANGES, COMMENT, or a pending draft."""
    access, pull = access_for_review(request)
    access.require(Role.READ, app=(("pull_requests", "write"),))
    if access.caller.kind == "anonymous":
        raise GitHubError(401, "Requires authentication")
    ctx, repo = context(request), access.repo
    body = await read_body(request)
    event = field_str(body, "event")
    text = field_str(body, "body") or ""
    state: ReviewState = "PENDING" if event is None else EVENTS.get(event, "PENDING")
    if event is not None and event not in EVENTS:
        raise _unprocessable(f"Unknown review event: {event}")
    reviewer = sender_of(ctx, access)
    if state in OWN_PULL and reviewer is pull.issue.user:
        raise _unprocessable(OWN_PULL[state])
    commit_id = field_str(body, "commit_id") or pull.head_sha
    inline = await _inline_comments(ctx, repo, pull, commit_id, body.get("comments"))
    # A COMMENT review may consist of inline comments alone.
    blank_allowed = state == "COMMENTED" and inline
    if state in BODY_NEEDED and not text.strip() and not blank_allowed:
        raise _unprocessable(f"Review Body can't be blank when the event is {event}")
    via_app = access.caller.kind == "installation"
    review = start_review(
        ctx, pull, reviewer, state, body=text, commit_id=commit_id, via_app=via_app
    )
    for comment_text, anchor in inline:
        comment = review_comments.add_comment(
            ctx, pull, review, comment_text, anchor, commit_id=commit_id
        )
        if review.state != "PENDING":
            review_comments.emit_comment(ctx, repo, pull, comment, reviewer)
    if review.state != "PENDING":
        emit_review(ctx, repo, pull, review, reviewer)
    return json_response(review_json(ctx.urls, ctx.state, repo, pull, review))
