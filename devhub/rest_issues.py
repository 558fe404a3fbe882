"""REST: issues, issue comments and issue events.

https://docs.github.com/rest/issues/issues, .../issues/comments and .../issues/events
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from devhub.http import (
    API_PREFIX,
    NEEDS_TRIAGE,
    Context,
    GitHubError,
    RepoAccess,
    context,
    field_str,
    field_str_list,
    json_response,
    no_content,
    not_found,
    paged_json,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.rest_json import comment_json, issue_event_json, issue_json
from devhub.rest_labels import change_labels, emit_issue, find_issue, issue_permissions, sender_of
from devhub.state import ISSUE_STATES, Account, Comment, Issue, IssueEvent, Repo, Role, utcnow

ROUTES = web.RouteTableDef()

ISSUES = API_PREFIX + "/repos/{owner}/{repo}/issues"
ISSUE = ISSUES + "/{number:[0-9]+}"
COMMENT = ISSUES + "/comments/{comment_id:[0-9]+}"
STATE_REASONS = ("completed", "not_planned", "reopened", "duplicate")
ISSUES_DISABLED = "Issues are disabled for this repo"
NEEDS_WRITE_FOR_COMMENTS = "Must have write access to edit or delete comments by others."
ISSUE_SORTS = {
    "created": lambda i: i.created_at,
    "updated": lambda i: i.updated_at,
    "comments": lambda i: len(i.comments),
}


def _parse_since(request: web.Request) -> datetime | None:
    raw = request.query.get("since")
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise validation_failed("Issue", "since", "invalid") from None


def _title(body: dict[str, Any], *, required: bool) -> str | None:
    title = body.get("title")
    if isinstance(title, int) and not isinstance(title, bool):
        return str(title)  # GitHub's schema allows a number as a title
    value = field_str(body, "title", required=required)
    if required and not (value or "").strip():
        raise validation_failed("Issue", "title", "missing_field")
    return value


def _assignees(ctx: Context, repo: Repo, body: dict[str, Any]) -> list[Account] | None:
    names = field_str_list(body, "assignees")
    single = field_str(body, "assignee")
    if names is None and single is None and "assignee" not in body:
        return None
    names = names if names is not None else ([single] if single else [])
    people = []
    for login in names:
        account = ctx.state.account(login)
        if account is None or ctx.state.role(account, repo) < Role.READ:
            raise validation_failed("Issue", "assignees", "invalid", value=login)
        people.append(account)
    return people


@ROUTES.post(ISSUES)
async def create_issue(request: web.Request) -> web.Response:
    """Open an issue; readers may, labels and assignees need triage (else dropped, as GitHub)."""
    access = repo_access(request)
    access.require(Role.READ, app=(("issues", "write"),))
    if access.caller.kind == "anonymous":
        raise GitHubError(401, "Requires authentication")
    ctx = context(request)
    repo = access.repo
    if not repo.has_issues:
        raise GitHubError(410, ISSUES_DISABLED)
    body = await read_body(request)
    title = _title(body, required=True)
    assert title is not None
    sender = sender_of(ctx, access)
    now = utcnow()
    issue = Issue(
        ctx.state.next_id(),
        repo.next_number(),
        title,
        field_str(body, "body"),
        sender,
        now,
        now,
        via_app=access.caller.kind == "installation",
    )
    triage = access.caller.kind in {"admin", "installation"} or access.role >= Role.TRIAGE
    assignees = _assignees(ctx, repo, body)
    if triage and assignees:
        issue.assignees = assignees
    repo.issues[issue.number] = issue
    emit_issue(ctx, "opened", repo, issue, sender)
    labels = _label_list(body)
    if triage and labels:
        change_labels(ctx, access, issue, labels, replace=False)
    rendered = issue_json(ctx.urls, ctx.state, repo, issue, ctx.app)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


def _label_list(body: dict[str, Any]) -> list[str] | None:
    labels = body.get("labels")
    if labels is None:
        return None
    if not isinstance(labels, list):
        raise validation_failed("Issue", "labels", "invalid")
    names = [item.get("name") if isinstance(item, dict) else item for item in labels]
    if not all(isinstance(name, str) for name in names):
        raise validation_failed("Issue", "labels", "invalid")
    return [str(name) for name in names]


@ROUTES.get(ISSUE)
async def get_issue(request: web.Request) -> web.Response:
    """Show one issue."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    ctx = context(request)
    return json_response(issue_json(ctx.urls, ctx.state, access.repo, issue, ctx.app))


@ROUTES.patch(ISSUE)
async def update_issue(request: web.Request) -> web.Response:
    """Edit an issue: authors may edit and close their own; everything else needs triage."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    ctx = context(request)
    body = await read_body(request)
    is_author = access.caller.kind == "user" and access.caller.account is issue.user
    touches_triage = any(key in body for key in ("labels", "assignees", "assignee", "milestone"))
    if touches_triage or not is_author:
        access.require(Role.TRIAGE, app=issue_permissions(issue), message=NEEDS_TRIAGE)
    access.require(Role.READ, app=issue_permissions(issue))
    sender = sender_of(ctx, access)
    edit_issue_text(ctx, access, issue, body, sender)
    assignees = _assignees(ctx, access.repo, body)
    if assignees is not None:
        issue.assignees = assignees
    change_issue_state(ctx, access, issue, body, sender)
    labels = _label_list(body)
    if labels is not None:
        change_labels(ctx, access, issue, labels, replace=True)
    return json_response(issue_json(ctx.urls, ctx.state, access.repo, issue, ctx.app))


def edit_issue_text(
    ctx: Context, access: RepoAccess, issue: Issue, body: dict[str, Any], sender: Account
) -> None:
    """Apply `title`/`body` edits and emit `edited` with what changed."""
    changes: dict[str, dict[str, str | None]] = {}
    title = _title(body, required=False) if "title" in body else None
    if title is not None and title != issue.title:
        changes["title"] = {"from": issue.title}
        issue.title = title
    if "body" in body:
        text = field_str(body, "body")
        if text != issue.body:
            changes["body"] = {"from": issue.body or ""}  # a string in GitHub's schema
            issue.body = text
    if changes:
        issue.updated_at = utcnow()
        emit_issue(ctx, "edited", access.repo, issue, sender, changes=changes)


def change_issue_state(
    ctx: Context, access: RepoAccess, issue: Issue, body: dict[str, Any], sender: Account
) -> None:
    """Close or reopen an issue from a request body and emit `closed`/`reopened`."""
    state = field_str(body, "state")
    reason = field_str(body, "state_reason")
    if state is None or state == issue.state:
        return
    if state not in ISSUE_STATES:
        raise validation_failed("Issue", "state", "invalid")
    if reason is not None and reason not in STATE_REASONS:
        raise validation_failed("Issue", "state_reason", "invalid")
    set_issue_state(ctx, access.repo, issue, state, sender, reason=reason)


def set_issue_state(
    ctx: Context, repo: Repo, issue: Issue, state: str, sender: Account, *, reason: str | None
) -> None:
    """Close or reopen an issue (or pull request), record the event and emit the webhook."""
    now = utcnow()
    issue.state, issue.updated_at = state, now
    if state == "closed":
        issue.closed_at, issue.closed_by = now, sender
        issue.state_reason = reason or "completed"
    else:
        issue.closed_at, issue.closed_by = None, None
        issue.state_reason = "reopened"
    action = "closed" if state == "closed" else "reopened"
    issue.events.append(
        IssueEvent(ctx.state.next_id(), sender, action, now, state_reason=issue.state_reason)
    )
    emit_issue(ctx, action, repo, issue, sender)


@ROUTES.get(ISSUES)
async def list_issues(request: web.Request) -> web.Response:
    """List issues (pull requests included, as GitHub does) with GitHub's filters."""
    access = repo_access(request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    ctx = context(request)
    query = request.query
    state = query.get("state", "open")
    wanted_labels = {n.strip().casefold() for n in query.get("labels", "").split(",") if n.strip()}
    since = _parse_since(request)
    issues = [
        issue
        for issue in access.repo.issues.values()
        if (state in ("all", issue.state))
        and wanted_labels <= {label.name.casefold() for label in issue.labels}
        and (since is None or issue.updated_at >= since)
        and _matches_people(issue, query)
    ]
    sort = query.get("sort", "created")
    key = ISSUE_SORTS.get(sort, ISSUE_SORTS["created"])
    issues.sort(key=lambda i: (key(i), i.number), reverse=query.get("direction", "desc") != "asc")  # type: ignore[no-untyped-call]
    return paged_json(
        request, issues, lambda i: issue_json(ctx.urls, ctx.state, access.repo, i, ctx.app)
    )


def _matches_people(issue: Issue, query: Any) -> bool:
    creator = query.get("creator")
    if creator and issue.user.login.casefold() != creator.casefold():
        return False
    assignee = query.get("assignee")
    if assignee == "none":
        return not issue.assignees
    if assignee == "*":
        return bool(issue.assignees)
    if assignee:
        return any(a.login.casefold() == assignee.casefold() for a in issue.assignees)
    return True


@ROUTES.get(ISSUE + "/events")
async def list_issue_events(request: web.Request) -> web.Response:
    """List what happened to an issue (labeled, closed, ...)."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    urls = context(request).urls
    return paged_json(
        request, issue.events, lambda event: issue_event_json(urls, access.repo, event)
    )


# comments


def _emit_comment(
    ctx: Context,
    action: str,
    *,
    repo: Repo,
    issue: Issue,
    comment: Comment,
    sender: Account,
    **extra: Any,
) -> None:
    body = {
        "issue": issue_json(ctx.urls, ctx.state, repo, issue, ctx.app, webhook=True),
        "comment": comment_json(ctx.urls, ctx.state, repo, comment, ctx.app),
    } | extra
    ctx.webhooks.emit("issue_comment", body, action=action, sender=sender, repo=repo)


@ROUTES.get(ISSUE + "/comments")
async def list_comments(request: web.Request) -> web.Response:
    """List an issue's comments, oldest first, optionally only those updated `since`."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    ctx = context(request)
    since = _parse_since(request)
    comments = [c for c in issue.comments if since is None or c.updated_at >= since]
    return paged_json(
        request, comments, lambda c: comment_json(ctx.urls, ctx.state, access.repo, c, ctx.app)
    )


@ROUTES.post(ISSUE + "/comments")
async def create_comment(request: web.Request) -> web.Response:
    """Comment on an issue (anyone who can read it may)."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.READ, app=issue_permissions(issue))
    if access.caller.kind == "anonymous":
        raise GitHubError(401, "Requires authentication")
    ctx = context(request)
    text = field_str(await read_body(request), "body", required=True)
    assert text is not None
    sender = sender_of(ctx, access)
    now = utcnow()
    comment = Comment(
        ctx.state.next_id(),
        issue.number,
        sender,
        text,
        now,
        now,
        via_app=access.caller.kind == "installation",
    )
    issue.comments.append(comment)
    issue.updated_at = now
    access.repo.comments[comment.id] = comment
    _emit_comment(ctx, "created", repo=access.repo, issue=issue, comment=comment, sender=sender)
    rendered = comment_json(ctx.urls, ctx.state, access.repo, comment, ctx.app)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


def _comment(access: RepoAccess, request: web.Request) -> tuple[Issue, Comment]:
    comment = access.repo.comments.get(int(request.match_info["comment_id"]))
    if comment is None:
        raise not_found()
    return access.repo.issues[comment.issue_number], comment


def _require_comment_owner(access: RepoAccess, issue: Issue, comment: Comment) -> None:
    if access.caller.kind == "user" and access.caller.account is comment.user:
        return
    access.require(Role.WRITE, app=issue_permissions(issue), message=NEEDS_WRITE_FOR_COMMENTS)


@ROUTES.get(COMMENT)
async def get_comment(request: web.Request) -> web.Response:
    """Show one comment."""
    access = repo_access(request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    _issue, comment = _comment(access, request)
    ctx = context(request)
    return json_response(comment_json(ctx.urls, ctx.state, access.repo, comment, ctx.app))


@ROUTES.patch(COMMENT)
async def update_comment(request: web.Request) -> web.Response:
    """Edit a comment: its author may, others need write access."""
    access = repo_access(request)
    issue, comment = _comment(access, request)
    _require_comment_owner(access, issue, comment)
    ctx = context(request)
    text = field_str(await read_body(request), "body", required=True)
    assert text is not None
    if text != comment.body:
        previous = comment.body
        comment.body, comment.updated_at = text, utcnow()
        changes = {"body": {"from": previous}}
        _emit_comment(
            ctx,
            "edited",
            repo=access.repo,
            issue=issue,
            comment=comment,
            sender=sender_of(ctx, access),
            changes=changes,
        )
    return json_response(comment_json(ctx.urls, ctx.state, access.repo, comment, ctx.app))


@ROUTES.delete(COMMENT)
async def delete_comment(request: web.Request) -> web.Response:
    """Delete a comment: its author may, others need write access."""
    access = repo_access(request)
    issue, comment = _comment(access, request)
    _require_comment_owner(access, issue, comment)
    ctx = context(request)
    issue.comments.remove(comment)
    del access.repo.comments[comment.id]
    _emit_comment(
        ctx,
        "deleted",
        repo=access.repo,
        issue=issue,
        comment=comment,
        sender=sender_of(ctx, access),
    )
    return no_content()
