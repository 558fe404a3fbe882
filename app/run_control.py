"""`/coder status`, `/coder retry` and `/coder cancel`: reading and steering a subject's runs.

The runs are read back from GitHub (`app.subject_runs`). A retry is a new request for the same
workflow on the same subject, so it goes through the gate like any other and climbs the model
ladder from the failed attempt. A cancel stops the run's Actions job first, then ends its check
run `cancelled` with who cancelled it; a job that dies of it is then already accounted for.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import gidgethub

from app import command_replies as say
from app import labels, verbs
from app.buttons import buttons_for
from app.command_session import Outcome
from app.develop import on_pull_request
from app.fix import request_fix
from app.gate import start_run
from app.ids import run_id as make_run_id
from app.issue_labels import remove_label
from app.markers import leading_marker, render_marker
from app.once import update_check_run, where
from app.reconcile import coder_workflow_runs, remove_running_label
from app.subject_runs import (
    issue_of_branch,
    newest,
    runs_of_issue,
    runs_of_pull,
    runs_of_pull_history,
)
from app.triggers import fetch_subject

if TYPE_CHECKING:
    from app.command_parser import Command, ParsedComment
    from app.command_session import Session
    from app.develop import RunRequest
    from app.subject_runs import RunView

log = logging.getLogger(__name__)

CANCEL_RUN_URL = "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel"
CANCELLED = "cancelled"
# A fix works on the pull request's branch; other workflows say so in their triggers.
PULL_WORKFLOWS = frozenset({verbs.FIX})


async def subject_runs(session: Session) -> list[RunView]:
    """Return the runs of the session's subject, oldest first."""
    pull = session.subject.pull
    if pull is not None:
        return await runs_of_pull(session.gh, session.repo, pull.sha, session.app_id)
    return await runs_of_issue(session.gh, session.repo, session.number, session.app_id)


async def show_status(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Reply with the subject's runs: state, model and cost, and whether it waits in line."""
    del command, known, parsed
    pull = session.subject.pull
    if pull is None:
        runs = await subject_runs(session)
    else:
        runs = await runs_of_pull_history(
            session.gh, session.repo, session.number, pull.sha, session.app_id
        )
    names = set(session.subject.labels)
    kind = "pull request" if session.is_pull else "issue"
    reply = say.status_reply(
        key,
        subject=f"{kind} #{session.number}",
        runs=runs,
        queued=labels.QUEUED in names,
        pinned=labels.PINNED in names,
    )
    await session.reply(reply)
    return Outcome.REPLIED


async def retry(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Run the subject's last failed run again: the same workflow, one model tier up."""
    del known, parsed
    runs = await subject_runs(session)
    if _made_by_this_delivery(session, runs, command.line):
        return Outcome.STARTED  # a redelivery: the retry it asked for exists already
    going = newest(runs, active=True)
    if not session.is_pull:
        # An issue's own runs: a run on its pull request (a fix, a review) is retried there.
        runs = [run for run in runs if not _works_on_a_pull(session, run.workflow)]
    last = newest(runs, active=False)
    why = _nothing_to_retry(going, last)
    if why is not None or last is None:
        await session.reply(say.nothing_to_do(key, verbs.RETRY, why or ""))
        return Outcome.FAILED
    workflow = session.config.workflows.get(last.workflow)
    if workflow is None:
        why = f"run `{last.run_id}` ran `{last.workflow}`, which `.github/coder.yml` no longer has."
        await session.reply(say.nothing_to_do(key, verbs.RETRY, why))
        return Outcome.FAILED
    if last.workflow in PULL_WORKFLOWS:
        return await request_fix(session, command, key, guidance="")
    subject = session.subject
    if session.is_pull and not on_pull_request(workflow):
        # The failed run worked on the issue this pull request's branch belongs to.
        number = issue_of_branch(subject.pull.ref if subject.pull else None)
        found = await fetch_subject(session.gh, session.repo, number) if number else None
        if found is None:
            why = f"the issue run `{last.run_id}` worked on is gone."
            await session.reply(say.nothing_to_do(key, verbs.RETRY, why))
            return Outcome.FAILED
        subject = found[0]
    request = session.request(last.workflow, command, subject=subject)
    started = await session_start(session, request)
    return Outcome.STARTED if started else Outcome.FAILED


def _works_on_a_pull(session: Session, name: str) -> bool:
    workflow = session.config.workflows.get(name)
    return name in PULL_WORKFLOWS or (workflow is not None and on_pull_request(workflow))


def _made_by_this_delivery(session: Session, runs: list[RunView], line: int) -> bool:
    """Tell whether one of the runs is the one this very delivery asked for (pure).

    A workflow run's trigger key is the delivery id; a fix's is the delivery id and the line.
    """
    keys = (session.delivery_id, f"{session.delivery_id}:{line}")
    return any(
        run.run_id == make_run_id(session.repo, run.workflow, session.number, key)
        for run in runs
        for key in keys
    )


def _nothing_to_retry(going: RunView | None, last: RunView | None) -> str | None:
    if going is not None:
        return f"run `{going.run_id}` ({going.workflow}) is still going; cancel it or wait."
    if last is None:
        return "there is no run here to retry."
    if not last.failed:
        return (
            f"the last run, `{last.run_id}` ({last.workflow}), ended `{last.state}`; there is "
            "nothing to retry. `/coder fix <what to change>` asks for changes."
        )
    return None


async def session_start(session: Session, request: RunRequest) -> bool:
    """Start a request through the gate (the same checks as every trigger)."""
    return await start_run(session.gh, request, session.config_result)


async def cancel(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Stop the subject's active runs: their jobs, then their check runs, then the label."""
    del command, known, parsed
    runs = await subject_runs(session)
    if any(cancelled_by(run) == session.source.render() for run in runs):
        return Outcome.DONE  # a redelivery: this very comment's cancel went through already
    active = [run for run in runs if run.active]
    if not active:
        await session.reply(say.nothing_to_do(key, verbs.CANCEL, "no run is going here."))
        return Outcome.FAILED
    for run in active:
        await cancel_run(
            session.gh, session.repo, run, by=session.sender.login, source=session.source.render()
        )
    await remove_running_label(session.gh, session.repo, session.number)
    if session.is_pull:
        # A fix that waited for the cancelled run starts now (app/fix.py `fix_what_waited`).
        await remove_label(session.gh, session.repo, session.number, labels.QUEUED)
    if session.subject.pull is not None:
        issue = issue_of_branch(session.subject.pull.ref)
        if issue is not None:
            await remove_running_label(session.gh, session.repo, issue)
    return Outcome.DONE


def cancelled_title(login: str) -> str:
    """Return the title a cancelled run's check run carries."""
    return f"Cancelled by @{login}"


def cancelled_by(run: RunView) -> str | None:
    """Return the comment (`kind:id`) whose `/coder cancel` ended a run, if one did (pure)."""
    marker = leading_marker(run.summary)
    return marker.fields.get("source") if marker is not None and marker.kind == CANCELLED else None


async def cancel_run(
    gh: gidgethub.abc.GitHubAPI, repo: str, run: RunView, *, by: str, source: str = ""
) -> None:
    """Cancel a run's Actions job (if it has one yet), then end its check run `cancelled`."""
    actions_run = run.actions_run_id
    if actions_run is None:
        found = (await coder_workflow_runs(gh, repo)).get(run.run_id)
        actions_run = int(found["id"]) if found is not None else None
    if actions_run is not None:
        try:
            await gh.post(CANCEL_RUN_URL, where(repo, run_id=actions_run), data={})
        except gidgethub.BadRequest as error:
            # 409: the workflow run is already over; the check run still needs ending.
            if error.status_code not in {404, 409}:
                raise
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = (
        render_marker(CANCELLED, run=run.run_id, source=source)
        + "\n"
        + (
            f"@{by} cancelled run `{run.run_id}` with `/coder cancel`. "
            + (
                "Its Actions job was stopped. "
                if actions_run is not None
                else "No job had started. "
            )
            + "Work it pushed stays on the branch; ask again to start over."
        )
    )
    update = {
        "status": "completed",
        "conclusion": "cancelled",
        "completed_at": now,
        "output": {"title": cancelled_title(by), "summary": summary},
        "actions": buttons_for("completed", "cancelled", fixable=False),
    }
    await update_check_run(gh, repo, run.check_run_id, update)
    log.info("run %s in %s cancelled by %s", run.run_id, repo, by)
