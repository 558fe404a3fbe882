"""Whether a request may start a run (sender, config, `--then`, input), then the run itself.

Every trigger (`app/triggers.py`, `app/chain.py`) turns its event into a `RunRequest` and calls
`start_run`. Permission, bot and config rules are the same for every trigger: write or higher,
triage for a review; bots only when allow-listed. A refusal is answered once, with a marked
comment, where a person asked; automatic triggers (pull-request actions) refuse quietly. An
input artifact is checked before anything is claimed, then kept in a `coder/input` check run
that the runner reads by id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app import checks, replies
from app.artifacts import render_artifact_block
from app.config_check import config_check_run
from app.develop import (
    APP_ACCESS,
    REVIEW_KIND,
    FailedRun,
    NewIssue,
    RunPlan,
    RunRequest,
    Subject,
    TriggerKind,
    check_request,
    fork_allowed,
    input_run_of,
    plan_run,
    sender_allowed,
    usable,
)
from app.github import create_once
from app.markers import find_marked, render_marker
from app.once import check_run_once, comment_once, where
from app.permissions import check_sender
from app.pull_runs import start_pull_run
from app.runs import base_of, start_issue_run

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI
    from pydantic import BaseModel

    from app.config import CoderConfig, ConfigResult, Workflow
    from app.permissions import SenderCheck

log = logging.getLogger(__name__)

SCHEDULED = "scheduled"
FIX = "fix"
# Requests nobody made in person: a `then:` chain (its first run's sender was checked) and a fix
# loop (on coder's own pull request, which a writer asked for; the loop checks its own trigger).
UNASKED = frozenset({TriggerKind.CHAIN, TriggerKind.LOOP})
# Automatic triggers refuse quietly, in the log: a comment on every event would be noise.
QUIET = frozenset({TriggerKind.PULL_REQUEST, TriggerKind.LOOP})
NEEDS_PULL = "{workflow} works on a pull request: ask for it on the pull request"
ISSUES_URL = "/repos/{owner}/{repo}/issues"
OWN_ISSUES_URL = "/repos/{owner}/{repo}/issues{?creator,state,sort,direction,per_page}"


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check: the config it runs under and its input artifact."""

    config: CoderConfig
    workflow: Workflow
    input: BaseModel | None


async def start_run(gh: GitHubAPI, request: RunRequest, result: ConfigResult) -> bool:
    """Check a request, then start its run on its subject; False if it was refused.

    A scheduled run's issue is opened first. A refusal has been answered where it was asked.
    """
    bot_login = await APP_ACCESS.get().bot_login()
    admitted = await admit(gh, request, result, bot_login)
    if admitted is None:
        return False
    if isinstance(request.subject, NewIssue):
        request = await open_scheduled_issue(gh, request, request.subject, bot_login)
    subject = request.subject
    assert isinstance(subject, Subject)
    config, artifact = admitted.config, admitted.input
    stored: int | None = None

    def plan_for(failed: FailedRun | None = None) -> RunPlan:
        plan = plan_run(request, config, subject, failed)
        return plan if stored is None else plan.with_input(input_run_of(artifact), stored)

    if subject.pull is not None:
        if artifact is not None:
            stored = await store_input(gh, request.repo, request.run_id, subject.pull.sha, artifact)
        await start_pull_run(
            gh, plan_for(), pull=subject.pull, bot_login=bot_login, escalate=plan_for
        )
        return True
    base = await base_of(gh, request.repo, request.default_branch)
    if artifact is not None:
        stored = await store_input(gh, request.repo, request.run_id, base.sha, artifact)
    await start_issue_run(gh, plan_for(), base=base, bot_login=bot_login, escalate=plan_for)
    return True


async def admit(
    gh: GitHubAPI, request: RunRequest, result: ConfigResult, bot_login: str
) -> Admitted | None:
    """Check the sender, the config and the input; answer a refusal once; None if refused."""
    config = usable(result)
    workflow = config.workflows.get(request.workflow)
    if workflow is None:
        log.info("%s in %s: no workflow %r", request.trigger, request.repo, request.workflow)
        return None
    if request.kind not in UNASKED:
        allowed_bots = result.config.allowed_bots if result.config is not None else ()
        sender = await check_sender(
            gh,
            request.repo,
            login=request.requested_by,
            account_type=request.sender_type,
            allowed_bots=allowed_bots,
        )
        if not sender_allowed(sender, workflow, request.kind):
            await refuse(gh, request, sender, workflow, bot_login)
            return None
    if result.config is None:
        await report_invalid_config(gh, request, result, bot_login)
        return None
    subject = request.subject
    from_fork = isinstance(subject, Subject) and subject.pull is not None and subject.pull.from_fork
    if from_fork and not (request.workflow == FIX and fork_allowed(result.config, workflow)):
        reply = replies.fork_refused(
            run_id=request.run_id,
            workflow=request.workflow,
            allowed=result.config.allow_fork_runs,
        )
        await _answer(gh, request, reply, bot_login)
        return None
    verdict = check_request(request, result.config)
    problems = verdict.problems
    if isinstance(subject, Subject) and subject.pull is None and workflow.produces == REVIEW_KIND:
        problems = (NEEDS_PULL.format(workflow=request.workflow), *problems)
    if problems:
        await refuse_input(gh, request, problems, bot_login)
        return None
    return Admitted(result.config, workflow, verdict.artifact)


async def refuse(
    gh: GitHubAPI, request: RunRequest, sender: SenderCheck, workflow: Workflow, bot_login: str
) -> None:
    """Say once why the sender may not start the run (where a person asked)."""
    log.info(
        "%s in %s refused for %s (%s)", request.trigger, request.repo, sender.login, sender.role
    )
    needs = replies.TRIAGE_OR_MORE if workflow.produces == REVIEW_KIND else replies.WRITE_ROLES
    reply = replies.refusal(
        run_id=request.run_id, sender=sender, label=request.trigger, repo=request.repo, needs=needs
    )
    await _answer(gh, request, reply, bot_login)


async def _answer(gh: GitHubAPI, request: RunRequest, reply: replies.Reply, bot_login: str) -> None:
    # Nobody asked in person for an automatic run (a pull-request action), and a scheduled run
    # has no issue yet: the log is the only place to say it.
    if request.kind in QUIET or not isinstance(request.subject, Subject):
        log.info("run %s not started in %s: %s", request.run_id, request.repo, reply.kind)
        return
    await comment_once(gh, request.repo, request.subject.number, reply, bot_login)


async def refuse_input(
    gh: GitHubAPI, request: RunRequest, problems: tuple[str, ...], bot_login: str
) -> None:
    """Name every problem with the request once: on its issue, or in a failed check run."""
    if isinstance(request.subject, Subject):
        reply = replies.input_invalid(
            run_id=request.run_id, workflow=request.workflow, problems=problems
        )
        await _answer(gh, request, reply, bot_login)
        return
    base = await base_of(gh, request.repo, request.default_branch)
    body = checks.input_refused_check_run(
        workflow=request.workflow, run_id=request.run_id, head_sha=base.sha, problems=problems
    )
    await check_run_once(gh, request.repo, body, look_first=True)


async def report_invalid_config(
    gh: GitHubAPI, request: RunRequest, result: ConfigResult, bot_login: str
) -> None:
    """Point at `coder/config` on the default branch's head (made if missing); say so once.

    Only when that commit's `coder/config` is green (a base in another repository broke since)
    does a failed `coder/<workflow>` check run list the errors instead.
    """
    base = await base_of(gh, request.repo, request.default_branch)
    check_run = await config_check_run(
        gh, request.repo, base.sha, result, branch=request.default_branch
    )
    if check_run is None:
        body = checks.config_failure_check_run(
            result.errors,
            head_sha=base.sha,
            run_id=request.run_id,
            workflow=request.workflow,
            branch=request.default_branch,
        )
        check_run = await check_run_once(gh, request.repo, body, look_first=True)
    reply = replies.config_invalid(
        run_id=request.run_id,
        errors=result.errors,
        branch=request.default_branch,
        check_run_url=check_run.get("html_url"),
    )
    await _answer(gh, request, reply, bot_login)


async def store_input(
    gh: GitHubAPI, repo: str, run_id: str, head_sha: str, artifact: BaseModel
) -> int:
    """Keep a request's input artifact in a `coder/input` check run; return its id."""
    body = checks.input_check_run(
        run_id=run_id, head_sha=head_sha, text=render_artifact_block(artifact)
    )
    check_run = await check_run_once(gh, repo, body, look_first=True)
    return int(check_run["id"])


def scheduled_title(workflow: str, given: str | None, today: str) -> str:
    """Return the title of a scheduled run's issue: the workflow's, or `<name>: <date>`."""
    return given or f"{workflow}: {today}"


async def open_scheduled_issue(
    gh: GitHubAPI, request: RunRequest, new: NewIssue, bot_login: str
) -> RunRequest:
    """Open the marked issue of a scheduled run once per dispatch key; return the request on it."""
    marker = {"workflow": request.workflow, "key": new.key}

    async def find() -> Mapping[str, Any] | None:
        query = {"creator": bot_login, "state": "all", "sort": "created", "direction": "desc"}
        pages = gh.getiter(OWN_ISSUES_URL, {**where(request.repo), **query, "per_page": 100})
        issues = [issue async for issue in pages]
        return find_marked(issues, SCHEDULED, author=bot_login, **marker)

    async def create() -> Mapping[str, Any]:
        body = f"{render_marker(SCHEDULED, **marker)}\n{new.body}".rstrip() + "\n"
        data = {"title": new.title, "body": body}
        answer: Mapping[str, Any] = await gh.post(ISSUES_URL, where(request.repo), data=data)
        return answer

    async def open_once() -> Mapping[str, Any]:
        existing = await find()
        if existing is not None:
            return existing
        return await create_once(gh, create=create, find=find)

    issue = await open_once()
    subject = Subject(
        number=int(issue["number"]),
        title=str(issue["title"]),
        body=issue.get("body"),
        labels=tuple(str(label["name"]) for label in issue.get("labels", [])),
    )
    log.info("scheduled %s in %s works on #%d", request.workflow, request.repo, subject.number)
    return replace(request.on(subject), at=str(issue["created_at"]))


def today() -> str:
    """Return today's date (UTC) for a scheduled run's title."""
    return datetime.now(UTC).date().isoformat()
