"""REST: pull request reviews (list, create) and the `pull_request_review` webhook.

https://docs.github.com/rest/pulls/reviews. Creating a review answers 200, not 201, and refuses to
approve or request changes on one's own pull request, with GitHub's `validation_failed_simple` body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from devhub import pulls
from devhub.http import (
    API_PREFIX,
    GitHubError,
    context,
    field_str,
    json_response,
    paged_json,
    read_body,
)
from devhub.rest_json import JSON, Urls, author_association, user_json
from devhub.rest_labels import sender_of
from devhub.rest_pulls import access_for_review
from devhub.state import Role, iso, node_id, utcnow
from devhub.state_pulls import Review, ReviewState

if TYPE_CHECKING:
    from devhub.state import Repo, State
    from devhub.state_pulls import PullRequest

ROUTES = web.RouteTableDef()

REVIEWS = API_PREFIX + "/repos/{owner}/{repo}/pulls/{number:[0-9]+}/reviews"
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


@ROUTES.get(REVIEWS)
async def list_reviews(request: web.Request) -> web.Response:
    """List a pull request's reviews, oldest first."""
    access, pull = access_for_review(request)
    access.require(Role.READ, app=(("pull_requests", "read"),))
    ctx = context(request)
    return paged_json(
        request,
        pull.reviews,
        lambda r: review_json(ctx.urls, ctx.state, access.repo, pull, r),
    )


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
    if state in BODY_NEEDED and not text.strip():
        raise _unprocessable(f"Review Body can't be blank when the event is {event}")
    review = Review(
        id=ctx.state.next_id(),
        user=reviewer,
        body=text,
        state=state,
        commit_id=field_str(body, "commit_id") or pull.head_sha,
        submitted_at=None if state == "PENDING" else utcnow(),
        via_app=access.caller.kind == "installation",
    )
    pull.reviews.append(review)
    rendered = review_json(ctx.urls, ctx.state, repo, pull, review)
    if state != "PENDING":
        # Webhook payloads spell review states in lower case ("changes_requested").
        payload = {
            "review": rendered | {"state": state.lower()},
            "pull_request": pulls.pull_json(ctx.urls, ctx.state, repo, pull, ctx.app),
        }
        ctx.webhooks.emit(
            "pull_request_review", payload, action="submitted", sender=reviewer, repo=repo
        )
    return json_response(rendered)
