"""What starts a workflow: an issue label, a pull-request action, a `repository_dispatch` of type
`coder.<workflow>` (docs/workflows-as-code.md, "Triggers"); `/coder <verb>` comments are
`app.commands`'.

Each handler reads the event and the config, builds a `RunRequest` and hands it to
`app.gate.start_run`, which checks the sender, the config and the input the same way for all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gidgethub
from gidgethub.routing import Router
from pydantic import Field

from app.develop import (
    NewIssue,
    PullHead,
    RunRequest,
    Subject,
    TriggerKind,
    triggered_workflow,
    usable,
)
from app.events import Issue, Label, Model, Repository, User
from app.gate import scheduled_title, start_run, today
from app.once import where
from app.repo_config import fetch_config

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

log = logging.getLogger(__name__)

router = Router()

DISPATCH_PREFIX = "coder."
ISSUE_URL = "/repos/{owner}/{repo}/issues/{number}"
PULL_URL = "/repos/{owner}/{repo}/pulls/{number}"


class _LabeledIssue(Issue):
    updated_at: str


class IssueLabeled(Model):
    """`issues.labeled`, with the fields a run needs."""

    issue: _LabeledIssue
    label: Label
    repository: Repository
    sender: User


class _Side(Model):
    ref: str
    sha: str
    repo: dict[str, Any] | None = None


class _Pull(Model):
    number: int
    title: str
    body: str | None = None
    state: str = "open"
    html_url: str
    updated_at: str
    head: _Side
    labels: list[Label] = Field(default_factory=list)


class PullRequestEvent(Model):
    """Any `pull_request` action, with the fields a run needs."""

    action: str
    pull_request: _Pull
    repository: Repository
    sender: User
    label: Label | None = None


class RepositoryDispatch(Model):
    """`repository_dispatch`: `action` is the `event_type` the sender chose."""

    action: str
    client_payload: dict[str, Any] | None = None
    repository: Repository
    sender: User


def issue_subject(issue: Issue) -> Subject:
    """Return an issue, as delivered, as a run's subject."""
    return Subject(issue.number, issue.title, issue.body, tuple(x.name for x in issue.labels))


def pull_subject(pull: Mapping[str, Any] | _Pull, repo: str) -> Subject:
    """Return a pull request (REST or webhook shape) as a run's subject."""
    data = pull.model_dump() if isinstance(pull, _Pull) else pull
    head = data["head"]
    head_repo = (head.get("repo") or {}).get("full_name")
    # A deleted fork leaves `head.repo` null: it is still not this repository's code.
    from_fork = head_repo is None or str(head_repo).casefold() != repo.casefold()
    return Subject(
        number=int(data["number"]),
        title=str(data["title"]),
        body=data.get("body"),
        labels=tuple(str(label["name"]) for label in data.get("labels") or []),
        pull=PullHead(str(head["sha"]), str(head["ref"]), str(data["html_url"]), from_fork),
    )


async def fetch_subject(gh: GitHubAPI, repo: str, number: int) -> tuple[Subject, str] | None:
    """Read an issue or pull request as a subject, with its creation time; None if missing."""
    try:
        issue = await gh.getitem(ISSUE_URL, where(repo, number=number))
        if issue.get("pull_request") is None:
            labels = tuple(str(label["name"]) for label in issue.get("labels", []))
            subject = Subject(number, str(issue["title"]), issue.get("body"), labels)
        else:
            subject = pull_subject(await gh.getitem(PULL_URL, where(repo, number=number)), repo)
    except gidgethub.BadRequest as error:
        if error.status_code in {404, 410}:  # deleted, or transferred out of reach
            return None
        raise
    return subject, str(issue["created_at"])


def label_request(event_data: Mapping[str, Any], workflow: str, delivery_id: str) -> RunRequest:
    """Return what an `issues.labeled` delivery asks for (pure)."""
    labeled = IssueLabeled.from_payload(event_data)
    repo = labeled.repository
    return RunRequest(
        repo=repo.full_name,
        default_branch=repo.default_branch,
        workflow=workflow,
        subject=issue_subject(labeled.issue),
        requested_by=labeled.sender.login,
        sender_type=labeled.sender.type,
        kind=TriggerKind.LABEL,
        trigger=f"`{labeled.label.name}`",
        trigger_key=delivery_id,
        # The payload's time: the same event always dates the claim commit the same way.
        at=labeled.issue.updated_at,
    )


@router.register("issues", action="labeled")
async def label_run(event: Event, gh: GitHubAPI) -> None:
    """Start the workflow whose `on.label` was just added to an open issue."""
    labeled = IssueLabeled.from_payload(event.data)
    issue, repo = labeled.issue, labeled.repository
    if issue.is_pull_request or issue.state != "open":
        return  # a label on a pull request arrives as `pull_request.labeled`
    result = await fetch_config(gh, repo.full_name, repo.default_branch)
    triggered = triggered_workflow(result, labeled.label.name)
    if triggered is not None:
        await start_run(gh, label_request(event.data, triggered[0], event.delivery_id), result)


@router.register("pull_request")
async def pull_request_run(event: Event, gh: GitHubAPI) -> None:
    """Start the workflows a pull-request action (`on.pull_request`) or label asks for."""
    changed = PullRequestEvent.from_payload(event.data)
    pull, repo = changed.pull_request, changed.repository
    if pull.state != "open":
        return
    result = await fetch_config(gh, repo.full_name, repo.default_branch)
    config = usable(result)
    asked: dict[str, tuple[TriggerKind, str]] = {}
    if changed.action == "labeled" and changed.label is not None:
        found = config.workflow_for_label(changed.label.name)
        if found is not None:
            asked[found[0]] = (TriggerKind.LABEL, f"`{changed.label.name}`")
    for name, _ in config.workflows_for_pull_request(changed.action):
        asked.setdefault(name, (TriggerKind.PULL_REQUEST, f"pull_request.{changed.action}"))
    subject = pull_subject(pull, repo.full_name)
    for workflow, (kind, trigger) in asked.items():
        request = RunRequest(
            repo=repo.full_name,
            default_branch=repo.default_branch,
            workflow=workflow,
            subject=subject,
            requested_by=changed.sender.login,
            sender_type=changed.sender.type,
            kind=kind,
            trigger=trigger,
            trigger_key=event.delivery_id,
            at=pull.updated_at,
        )
        await start_run(gh, request, result)


def dispatched_workflow(event_type: str) -> str | None:
    """Return the workflow a `repository_dispatch` event type names (`coder.<workflow>`)."""
    name = event_type.removeprefix(DISPATCH_PREFIX)
    return name if event_type.startswith(DISPATCH_PREFIX) and name else None


def read_client_payload(
    client_payload: Mapping[str, Any] | None,
) -> tuple[int | None, str | None, Mapping[str, object] | None, str, str | None, list[str]]:
    """Read `{issue?, then?, input?, body?, key?}`: the values, and what is wrong with them."""
    client = client_payload or {}
    problems = []
    issue = client.get("issue")
    if issue is not None and (not isinstance(issue, int) or isinstance(issue, bool) or issue < 1):
        problems.append("client_payload.issue: expected an issue number")
        issue = None
    then = client.get("then")
    if then is not None and not isinstance(then, str):
        problems.append("client_payload.then: expected a workflow name")
        then = None
    artifact = client.get("input")
    if artifact is not None and not isinstance(artifact, dict):
        problems.append("client_payload.input: expected a JSON object")
        artifact = None
    key = client.get("key")
    body = client.get("body")
    return (
        issue,
        then,
        artifact,
        str(body) if body is not None else "",
        str(key) if key not in (None, "") else None,
        problems,
    )


@router.register("repository_dispatch")
async def dispatch_run(event: Event, gh: GitHubAPI) -> None:
    """Start `coder.<workflow>` on the payload's issue, or on a marked issue opened once per key."""
    dispatched = RepositoryDispatch.from_payload(event.data)
    workflow = dispatched_workflow(dispatched.action)
    if workflow is None:
        return
    repo = dispatched.repository
    result = await fetch_config(gh, repo.full_name, repo.default_branch)
    config = usable(result)
    if workflow not in config.workflows:
        log.info(
            "repository_dispatch %s in %s: no such workflow", dispatched.action, repo.full_name
        )
        return
    issue, then, artifact, body, key, problems = read_client_payload(dispatched.client_payload)
    dispatch_key = key or event.delivery_id
    subject: Subject | NewIssue
    if issue is None:
        title = scheduled_title(workflow, config.workflows[workflow].title, today())
        subject, at = NewIssue(title, body, dispatch_key), ""
    else:
        found = await fetch_subject(gh, repo.full_name, issue)
        if found is None:
            log.info("repository_dispatch %s: no issue #%d in %s", workflow, issue, repo.full_name)
            return
        subject, at = found
    request = RunRequest(
        repo=repo.full_name,
        default_branch=repo.default_branch,
        workflow=workflow,
        subject=subject,
        requested_by=dispatched.sender.login,
        sender_type=dispatched.sender.type,
        kind=TriggerKind.DISPATCH,
        trigger=f"`{dispatched.action}`",
        trigger_key=f"dispatch:{dispatch_key}",
        at=at,
        then=then,
        input=artifact,
        input_errors=tuple(problems),
    )
    await start_run(gh, request, result)
