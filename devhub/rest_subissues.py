"""REST: sub-issues (add, list, remove, parent) and repository dispatch events.

https://docs.github.com/rest/issues/sub-issues and
https://docs.github.com/rest/repos/repos#create-a-repository-dispatch-event
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devhub.http import (
    API_PREFIX,
    GitHubError,
    context,
    field_str,
    json_response,
    no_content,
    not_found,
    paged_json,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.rest_json import issue_json, repo_json
from devhub.rest_labels import find_issue, sender_of
from devhub.state import Issue, Repo, Role

ROUTES = web.RouteTableDef()

REPO = API_PREFIX + "/repos/{owner}/{repo}"
ISSUE = REPO + "/issues/{number:[0-9]+}"
# GitHub's documented limits for sub-issues and dispatch events.
MAX_SUB_ISSUES = 100
MAX_EVENT_TYPE = 100
MAX_PAYLOAD_KEYS = 10
ISSUES_WRITE = (("issues", "write"),)


def _issue_by_id(repo: Repo, issue_id: object) -> Issue | None:
    if not isinstance(issue_id, int) or isinstance(issue_id, bool):
        return None
    return next((i for i in repo.issues.values() if i.id == issue_id), None)


@ROUTES.post(ISSUE + "/sub_issues")
async def add_sub_issue(request: web.Request) -> web.Response:
    """Make an issue (by id) a sub-issue of this one; 422 if it has a parent already."""
    access = repo_access(request)
    access.require(Role.TRIAGE, app=ISSUES_WRITE)
    ctx, repo = context(request), access.repo
    parent = find_issue(repo, request)
    body = await read_body(request)
    child = _issue_by_id(repo, body.get("sub_issue_id"))
    if child is None:
        raise not_found()
    if child is parent or child.is_pull_request or parent.is_pull_request:
        raise validation_failed("Issue", "sub_issue_id", "invalid")
    if child.parent is not None and child.parent is not parent and not body.get("replace_parent"):
        raise GitHubError(422, "Issue may not contain duplicate sub-issues")
    if child in parent.sub_issues:
        raise GitHubError(422, "Issue may not contain duplicate sub-issues")
    if len(parent.sub_issues) >= MAX_SUB_ISSUES:
        raise GitHubError(422, f"Parent issue may not have more than {MAX_SUB_ISSUES} sub-issues")
    ancestor: Issue | None = parent
    while ancestor is not None:
        if ancestor is child:
            raise GitHubError(422, "Sub-issue may not be an ancestor of the parent issue")
        ancestor = ancestor.parent
    if child.parent is not None:
        child.parent.sub_issues.remove(child)
    child.parent = parent
    parent.sub_issues.append(child)
    sender = sender_of(ctx, access)
    # `sub_issues` payloads carry the REST `issue` shape, whose app requires events and permissions.
    rendered_parent = issue_json(ctx.urls, ctx.state, repo, parent, ctx.app)
    rendered_child = issue_json(ctx.urls, ctx.state, repo, child, ctx.app)
    repository = repo_json(ctx.urls, repo)
    ids = {"parent_issue_id": parent.id, "sub_issue_id": child.id}
    issues = {"parent_issue": rendered_parent, "sub_issue": rendered_child}
    # Each side gets an event naming the other side's repository (here the same one).
    for action, other_repo in (
        ("sub_issue_added", "sub_issue_repo"),
        ("parent_issue_added", "parent_issue_repo"),
    ):
        payload: dict[str, Any] = {**ids, **issues, other_repo: repository}
        ctx.webhooks.emit("sub_issues", payload, action=action, sender=sender, repo=repo)
    rendered = issue_json(ctx.urls, ctx.state, repo, child, ctx.app)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


@ROUTES.get(ISSUE + "/sub_issues")
async def list_sub_issues(request: web.Request) -> web.Response:
    """List an issue's sub-issues, in order."""
    access = repo_access(request)
    access.require(Role.READ, app=(("issues", "read"),))
    ctx, repo = context(request), access.repo
    parent = find_issue(repo, request)
    return paged_json(
        request, parent.sub_issues, lambda sub: issue_json(ctx.urls, ctx.state, repo, sub, ctx.app)
    )


@ROUTES.delete(ISSUE + "/sub_issue")
async def remove_sub_issue(request: web.Request) -> web.Response:
    """Detach a sub-issue (by id) from this issue."""
    access = repo_access(request)
    access.require(Role.TRIAGE, app=ISSUES_WRITE)
    ctx, repo = context(request), access.repo
    parent = find_issue(repo, request)
    body = await read_body(request)
    child = _issue_by_id(repo, body.get("sub_issue_id"))
    if child is None or child.parent is not parent:
        raise not_found()
    parent.sub_issues.remove(child)
    child.parent = None
    return json_response(issue_json(ctx.urls, ctx.state, repo, child, ctx.app))


@ROUTES.get(ISSUE + "/parent")
async def get_parent(request: web.Request) -> web.Response:
    """Show an issue's parent; 404 when it has none."""
    access = repo_access(request)
    access.require(Role.READ, app=(("issues", "read"),))
    ctx, repo = context(request), access.repo
    issue = find_issue(repo, request)
    if issue.parent is None:
        raise not_found()
    return json_response(issue_json(ctx.urls, ctx.state, repo, issue.parent, ctx.app))


@ROUTES.post(REPO + "/dispatches")
async def create_dispatch_event(request: web.Request) -> web.Response:
    """Send a `repository_dispatch` webhook; needs write (apps: contents write)."""
    access = repo_access(request)
    access.require(Role.WRITE, app=(("contents", "write"),))
    ctx, repo = context(request), access.repo
    body = await read_body(request)
    event_type = field_str(body, "event_type", required=True) or ""
    if not 1 <= len(event_type) <= MAX_EVENT_TYPE:
        raise validation_failed("Repository", "event_type", "invalid")
    client_payload = body.get("client_payload", {})
    if not isinstance(client_payload, dict):
        raise validation_failed("Repository", "client_payload", "invalid")
    if len(client_payload) > MAX_PAYLOAD_KEYS:
        raise GitHubError(
            422, f"client_payload may not contain more than {MAX_PAYLOAD_KEYS} top-level keys"
        )
    payload = {"branch": repo.default_branch, "client_payload": client_payload}
    ctx.webhooks.emit(
        "repository_dispatch", payload, action=event_type, sender=sender_of(ctx, access), repo=repo
    )
    return no_content()
