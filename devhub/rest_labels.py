"""REST: repository labels and the labels on an issue.

https://docs.github.com/rest/issues/labels
"""

from __future__ import annotations

import json
import re
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
    json_response,
    no_content,
    not_found,
    paged_json,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.pulls import emit_pull, pull_for_issue
from devhub.rest_json import issue_json, label_json
from devhub.state import Account, Issue, IssueEvent, Label, Repo, Role, utcnow

ROUTES = web.RouteTableDef()

LABELS = API_PREFIX + "/repos/{owner}/{repo}/labels"
ISSUE_LABELS = API_PREFIX + "/repos/{owner}/{repo}/issues/{number:[0-9]+}/labels"
COLOR = re.compile(r"^[0-9a-fA-F]{6}$")
DEFAULT_COLOR = "ededed"
LABEL_APP_PERMISSIONS = (("issues", "write"), ("pull_requests", "write"))
CANNOT_CREATE_LABELS = "You do not have permission to create labels on this repository."
LABEL_MISSING = "Label does not exist"


def issue_permissions(issue: Issue) -> tuple[tuple[str, str], ...]:
    """Return the app permission that writes to an issue (pull requests need their own)."""
    return (("pull_requests", "write"),) if issue.is_pull_request else (("issues", "write"),)


def find_issue(repo: Repo, request: web.Request) -> Issue:
    """Return `{number}` from the path, or GitHub's 404."""
    issue = repo.issues.get(int(request.match_info["number"]))
    if issue is None:
        raise not_found()
    return issue


def sender_of(ctx: Context, access: RepoAccess) -> Account:
    """Return the account an action is attributed to (the app's bot for installations)."""
    return access.caller.account or ctx.admin


def emit_issue(
    ctx: Context, action: str, repo: Repo, issue: Issue, sender: Account, **extra: Any
) -> None:
    """Emit an `issues` webhook, or `pull_request` when the issue is a pull request."""
    pull = pull_for_issue(repo, issue)
    if pull is not None:
        emit_pull(ctx, action, repo, pull, sender, **extra)
        return
    body = {"issue": issue_json(ctx.urls, ctx.state, repo, issue, ctx.app, webhook=True)} | extra
    ctx.webhooks.emit("issues", body, action=action, sender=sender, repo=repo)


def create_label(
    ctx: Context, repo: Repo, sender: Account, name: str, *, color: str, description: str | None
) -> Label:
    """Add a label to a repository and emit `label.created`."""
    label = Label(ctx.state.next_id(), name, color.lower(), description)
    repo.labels[name.casefold()] = label
    ctx.webhooks.emit(
        "label",
        {"label": label_json(ctx.urls, repo, label)},
        action="created",
        sender=sender,
        repo=repo,
    )
    return label


def change_labels(
    ctx: Context, access: RepoAccess, issue: Issue, names: list[str], *, replace: bool
) -> None:
    """Add (or set) labels on an issue, creating unknown ones as GitHub does, with webhooks."""
    repo, sender = access.repo, sender_of(ctx, access)
    wanted: list[Label] = []
    for name in names:
        label = repo.label(name)
        if label is None:
            if access.role < Role.WRITE and access.caller.kind in {"user", "anonymous"}:
                raise GitHubError(
                    403,
                    CANNOT_CREATE_LABELS,
                    errors=[{"resource": "Repository", "field": "label", "code": "unauthorized"}],
                )
            label = create_label(ctx, repo, sender, name, color=DEFAULT_COLOR, description=None)
        if label not in wanted:
            wanted.append(label)
    removed = [label for label in issue.labels if replace and label not in wanted]
    added = [label for label in wanted if label not in issue.labels]
    for label in removed:
        issue.labels.remove(label)
    issue.labels.extend(added)
    if added or removed:
        issue.updated_at = utcnow()
    for action, labels in (("unlabeled", removed), ("labeled", added)):
        for label in labels:
            issue.events.append(IssueEvent(ctx.state.next_id(), sender, action, utcnow(), label))
            emit_issue(ctx, action, repo, issue, sender, label=label_json(ctx.urls, repo, label))


def _label_names(body: object) -> list[str]:
    items = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise validation_failed("Label", "labels", "invalid")
    names = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            raise validation_failed("Label", "name", "invalid")
        names.append(name.strip())
    return names


async def _labels_body(request: web.Request) -> object:
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else {"labels": []}
    except ValueError:
        raise GitHubError(400, "Problems parsing JSON") from None


def _color(value: str | None) -> str:
    color = (value or DEFAULT_COLOR).removeprefix("#")
    if not COLOR.match(color):
        raise validation_failed("Label", "color", "invalid")
    return color


# repository labels


@ROUTES.get(LABELS)
async def list_labels(request: web.Request) -> web.Response:
    """List a repository's labels."""
    access = repo_access(request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    ctx = context(request)
    labels = sorted(access.repo.labels.values(), key=lambda label: label.id)
    return paged_json(request, labels, lambda label: label_json(ctx.urls, access.repo, label))


@ROUTES.post(LABELS)
async def create_repo_label(request: web.Request) -> web.Response:
    """Create a label; an existing name (any case) is 422 `already_exists`."""
    access = repo_access(request)
    access.require(Role.WRITE, app=LABEL_APP_PERMISSIONS, message=NEEDS_TRIAGE)
    ctx = context(request)
    body = await read_body(request)
    name = (field_str(body, "name", required=True) or "").strip()
    if not name:
        raise validation_failed("Label", "name", "missing_field")
    if access.repo.label(name) is not None:
        raise validation_failed("Label", "name", "already_exists")
    color = _color(field_str(body, "color"))
    description = field_str(body, "description")
    sender = sender_of(ctx, access)
    label = create_label(ctx, access.repo, sender, name, color=color, description=description)
    rendered = label_json(ctx.urls, access.repo, label)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


def _label(access: RepoAccess, request: web.Request) -> Label:
    label = access.repo.label(request.match_info["name"])
    if label is None:
        raise not_found()
    return label


@ROUTES.get(LABELS + "/{name:.+}")
async def get_label(request: web.Request) -> web.Response:
    """Show one label."""
    access = repo_access(request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    return json_response(label_json(context(request).urls, access.repo, _label(access, request)))


@ROUTES.patch(LABELS + "/{name:.+}")
async def update_label(request: web.Request) -> web.Response:
    """Rename or recolour a label; emits `label.edited` with what changed."""
    access = repo_access(request)
    access.require(Role.WRITE, app=LABEL_APP_PERMISSIONS, message=NEEDS_TRIAGE)
    ctx = context(request)
    label = _label(access, request)
    body = await read_body(request)
    changes: dict[str, dict[str, str | None]] = {}
    new_name = field_str(body, "new_name")
    if new_name is not None and new_name != label.name:
        clash = access.repo.label(new_name)
        if clash is not None and clash is not label:
            raise validation_failed("Label", "name", "already_exists")
        changes["name"] = {"from": label.name}
        del access.repo.labels[label.name.casefold()]
        label.name = new_name
        access.repo.labels[new_name.casefold()] = label
    if "color" in body:
        color = _color(field_str(body, "color")).lower()
        if color != label.color:
            changes["color"] = {"from": label.color}
            label.color = color
    if "description" in body:
        description = field_str(body, "description")
        if description != label.description:
            # The webhook schema types `from` as a string; GitHub reports "no description" as "".
            changes["description"] = {"from": label.description or ""}
            label.description = description
    rendered = label_json(ctx.urls, access.repo, label)
    if changes:
        ctx.webhooks.emit(
            "label",
            {"label": rendered, "changes": changes},
            action="edited",
            sender=sender_of(ctx, access),
            repo=access.repo,
        )
    return json_response(rendered)


@ROUTES.delete(LABELS + "/{name:.+}")
async def delete_label(request: web.Request) -> web.Response:
    """Delete a label and take it off every issue."""
    access = repo_access(request)
    access.require(Role.WRITE, app=LABEL_APP_PERMISSIONS, message=NEEDS_TRIAGE)
    ctx = context(request)
    label = _label(access, request)
    del access.repo.labels[label.name.casefold()]
    for issue in access.repo.issues.values():
        if label in issue.labels:
            issue.labels.remove(label)
    ctx.webhooks.emit(
        "label",
        {"label": label_json(ctx.urls, access.repo, label)},
        action="deleted",
        sender=sender_of(ctx, access),
        repo=access.repo,
    )
    return no_content()


# labels on an issue


def _issue_labels(request: web.Request, access: RepoAccess, issue: Issue) -> web.Response:
    urls = context(request).urls
    return json_response([label_json(urls, access.repo, label) for label in issue.labels])


@ROUTES.get(ISSUE_LABELS)
async def list_issue_labels(request: web.Request) -> web.Response:
    """List the labels on an issue."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.READ, app=(("issues", "read"), ("pull_requests", "read")))
    ctx = context(request)
    return paged_json(request, issue.labels, lambda label: label_json(ctx.urls, access.repo, label))


@ROUTES.post(ISSUE_LABELS)
async def add_issue_labels(request: web.Request) -> web.Response:
    """Add labels to an issue (unknown names become new labels)."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.TRIAGE, app=issue_permissions(issue), message=NEEDS_TRIAGE)
    change_labels(
        context(request), access, issue, _label_names(await _labels_body(request)), replace=False
    )
    return _issue_labels(request, access, issue)


@ROUTES.put(ISSUE_LABELS)
async def set_issue_labels(request: web.Request) -> web.Response:
    """Replace an issue's labels."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.TRIAGE, app=issue_permissions(issue), message=NEEDS_TRIAGE)
    change_labels(
        context(request), access, issue, _label_names(await _labels_body(request)), replace=True
    )
    return _issue_labels(request, access, issue)


@ROUTES.delete(ISSUE_LABELS + "/{name:.+}")
async def remove_issue_label(request: web.Request) -> web.Response:
    """Take one label off an issue; 404 `Label does not exist` if it is not there."""
    access = repo_access(request)
    issue = find_issue(access.repo, request)
    access.require(Role.TRIAGE, app=issue_permissions(issue), message=NEEDS_TRIAGE)
    ctx = context(request)
    label = access.repo.label(request.match_info["name"])
    if label is None or label not in issue.labels:
        raise GitHubError(404, LABEL_MISSING)
    unlabel(ctx, access.repo, issue, label, sender_of(ctx, access))
    return _issue_labels(request, access, issue)


def unlabel(ctx: Context, repo: Repo, issue: Issue, label: Label, sender: Account) -> None:
    """Take a label the issue carries off it, record the event and emit `unlabeled`."""
    issue.labels.remove(label)
    issue.updated_at = utcnow()
    issue.events.append(IssueEvent(ctx.state.next_id(), sender, "unlabeled", utcnow(), label))
    emit_issue(ctx, "unlabeled", repo, issue, sender, label=label_json(ctx.urls, repo, label))
