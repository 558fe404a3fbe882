"""`/coder` commands in new comments, review bodies and review comments (docs/commands.md).

Only `created` comments and `submitted` reviews count: an edit never runs anything again. Each
command of a comment is taken in order: resolved against the verb table (`app.verbs`), checked
against the sender's live role, acknowledged with 👀, then carried out. A command that finishes
at once gets 🚀 (or 😕); one that starts a run gets its 🚀 or 😕 when the run ends. A reply is
posted only when there is something to say, and a redelivery edits it instead of posting again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gidgethub.routing import Router
from pydantic import Field

from app import buttons, fix, labels, prompt_text, prompts, run_control, split, verbs
from app import command_replies as say
from app import issue_labels as labels_io
from app.artifacts import load_artifact
from app.briefing import parse_run_request
from app.command_parser import Command, ParsedComment, parse_comment
from app.command_session import Outcome, Session
from app.conversation import Reaction, Source
from app.develop import APP_ACCESS
from app.events import Issue, Model, Repository, User
from app.gate import start_run
from app.once import where
from app.permissions import BOT_TYPE, Refusal
from app.repo_config import fetch_config
from app.subject_runs import issue_of_branch
from app.triggers import fetch_subject, issue_subject, pull_subject

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

    from app.command_session import Handler
    from app.develop import Subject

log = logging.getLogger(__name__)

router = Router()

PULL_URL = "/repos/{owner}/{repo}/pulls/{number}"
ALWAYS_OPEN = frozenset({verbs.STATUS, verbs.HELP})
# Anyone who may comment can write commands; this many per comment bounds the replies and calls.
MAX_COMMANDS = 10


class _Comment(Model):
    id: int
    body: str | None = ""
    created_at: str


class IssueCommentCreated(Model):
    """`issue_comment.created`, with the fields a command needs."""

    issue: Issue
    comment: _Comment
    repository: Repository
    sender: User


class _Review(Model):
    id: int
    body: str | None = None
    state: str
    submitted_at: str | None = None


class _Branch(Model):
    ref: str
    sha: str
    repo: dict[str, Any] | None = None


class _Pull(Model):
    number: int
    title: str
    body: str | None = None
    state: str = "open"
    html_url: str
    head: _Branch
    base: _Branch
    labels: list[dict[str, Any]] = Field(default_factory=list)


class ReviewSubmitted(Model):
    """`pull_request_review.submitted`: its body may carry commands."""

    review: _Review
    pull_request: _Pull
    repository: Repository
    sender: User


class ReviewCommentCreated(Model):
    """`pull_request_review_comment.created`: a comment on a line of a pull request."""

    comment: _Comment
    pull_request: _Pull
    repository: Repository
    sender: User


@router.register("issue_comment", action="created")
async def answer_comment(event: Event, gh: GitHubAPI) -> None:
    """Carry out the commands of a new issue or pull-request comment."""
    created = IssueCommentCreated.from_payload(event.data)
    parsed = parse_comment(created.comment.body)
    issue, repository = created.issue, created.repository
    quotes = issue.is_pull_request and prompt_text.quotes(created.comment.body)
    if not parsed.commands and not quotes:
        return
    pull: Mapping[str, Any] | None = None
    if issue.is_pull_request:
        pull = await gh.getitem(PULL_URL, where(repository.full_name, number=issue.number))
        subject = pull_subject(pull, repository.full_name)
    else:
        subject = issue_subject(issue)
    session = await open_session(
        gh,
        event,
        repository=repository,
        subject=subject,
        state=issue.state,
        sender=created.sender,
        at=created.comment.created_at,
        source=Source("issue-comment", created.comment.id),
        pull=pull,
    )
    if parsed.commands:
        await run_commands(session, parsed)
    else:
        await answer_by_quote(session, created.comment.body)


async def answer_by_quote(session: Session, body: str | None) -> None:
    """A writer's reply quoting a waiting question answers it, as `/coder answer` would.

    Anyone else quoting it is only talking about it: no reply, and no reads on their behalf
    beyond the permission check.
    """
    if session.state != "open":
        return
    sender = await session.sender_check()
    if not sender.allowed:
        return
    found = prompt_text.quoted_answer(body, await prompts.open_prompts(session))
    if found is None:
        return
    prompt, text = found
    key = say.reply_key(session.source.kind, session.source.id, 0)
    await session.react(Reaction.EYES)
    outcome = await prompts.resume(session, prompt, text, verb=verbs.ANSWER, key=key)
    if outcome is Outcome.FAILED:
        await session.react(Reaction.CONFUSED)


@router.register("pull_request_review", action="submitted")
async def answer_review(event: Event, gh: GitHubAPI) -> None:
    """Carry out the commands in a submitted review's body."""
    submitted = ReviewSubmitted.from_payload(event.data)
    source = Source("review", submitted.review.id)
    at = submitted.review.submitted_at or ""
    await run_pull_commands(gh, event, submitted, body=submitted.review.body, source=source, at=at)


@router.register("pull_request_review_comment", action="created")
async def answer_review_comment(event: Event, gh: GitHubAPI) -> None:
    """Carry out the commands of a new comment on a line of a pull request."""
    created = ReviewCommentCreated.from_payload(event.data)
    source = Source("review-comment", created.comment.id)
    await run_pull_commands(
        gh, event, created, body=created.comment.body, source=source, at=created.comment.created_at
    )


async def run_pull_commands(
    gh: GitHubAPI,
    event: Event,
    delivered: ReviewSubmitted | ReviewCommentCreated,
    *,
    body: str | None,
    source: Source,
    at: str,
) -> None:
    """Carry out the commands written on a pull request outside its conversation."""
    parsed = parse_comment(body)
    if not parsed.commands:
        return
    pull = delivered.pull_request.model_dump()
    session = await open_session(
        gh,
        event,
        repository=delivered.repository,
        subject=pull_subject(pull, delivered.repository.full_name),
        state=delivered.pull_request.state,
        sender=delivered.sender,
        at=at,
        source=source,
        pull=pull,
    )
    await run_commands(session, parsed)


class _Suite(Model):
    head_branch: str | None = None


class _PressedOutput(Model):
    text: str | None = None


class _PressedCheckRun(Model):
    id: int
    name: str
    head_sha: str
    completed_at: str | None = None
    output: _PressedOutput = Field(default_factory=_PressedOutput)
    app: dict[str, Any] | None = None
    check_suite: _Suite = Field(default_factory=_Suite)
    pull_requests: list[dict[str, Any]] = Field(default_factory=list)


class _Action(Model):
    identifier: str


class ButtonPressed(Model):
    """`check_run.requested_action`: someone pressed one of a coder check run's buttons."""

    check_run: _PressedCheckRun
    requested_action: _Action
    repository: Repository
    sender: User


@router.register("check_run", action="requested_action")
async def press_button(event: Event, gh: GitHubAPI) -> None:
    """Handle Retry, Fix and Cancel like the commands of the same name, for whoever pressed."""
    pressed = ButtonPressed.from_payload(event.data)
    check_run, repository = pressed.check_run, pressed.repository
    verb = pressed.requested_action.identifier
    if verb not in buttons.BUTTONS:
        log.info("check run %d: unknown button %r", check_run.id, verb)
        return
    found = await button_subject(gh, repository.full_name, check_run)
    if found is None:
        log.info("check run %d: its pull request or issue is gone", check_run.id)
        return
    subject, state, pull = found
    session = await open_session(
        gh,
        event,
        repository=repository,
        subject=subject,
        state=state,
        sender=pressed.sender,
        # A claim commit is dated by its trigger, so a redelivery makes the same one: a button
        # pressed on a finished run is dated by the run's end (Cancel needs no date).
        at=check_run.completed_at or now_iso(),
        source=Source("check-run", check_run.id),
        pull=pull,
    )
    key = say.reply_key("check-run", check_run.id, 0)
    await run_command(session, Command(verb, line=0), key, ParsedComment())


def now_iso() -> str:
    """Return the current UTC time in GitHub's ISO 8601 form."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def button_subject(
    gh: GitHubAPI, repo: str, check_run: _PressedCheckRun
) -> tuple[Subject, str, Mapping[str, Any] | None] | None:
    """Find what a pressed check run is about: its pull request, or its branch's issue.

    GitHub leaves a fork's pull requests out of `check_run.pull_requests`; a run on a pull
    request names it in its run request, which only the app writes.
    """
    request = parse_run_request(check_run.output.text)
    numbers = [int(link["number"]) for link in check_run.pull_requests]
    if request is not None and not numbers:
        numbers = [request.issue_number]
    if numbers:
        number = numbers[0]
        pull = await gh.getitem(PULL_URL, where(repo, number=number))
        return pull_subject(pull, repo), str(pull.get("state", "open")), pull
    issue = issue_of_branch(check_run.check_suite.head_branch)
    found = await fetch_subject(gh, repo, issue) if issue is not None else None
    if found is None:
        return None
    return found[0], "open", None


async def open_session(
    gh: GitHubAPI,
    event: Event,
    *,
    repository: Repository,
    subject: Subject,
    state: str,
    sender: User,
    at: str,
    source: Source,
    pull: Mapping[str, Any] | None,
) -> Session:
    """Read the config the commands run under: the base branch's, never a pull request's head."""
    base = str(pull["base"]["ref"]) if pull is not None else repository.default_branch
    access = APP_ACCESS.get()
    return Session(
        gh=gh,
        repository=repository,
        subject=subject,
        state=state,
        sender=sender,
        delivery_id=event.delivery_id,
        at=at,
        source=source,
        config_result=await fetch_config(gh, repository.full_name, base),
        bot_login=await access.bot_login(),
        app_id=access.settings.app_id,
        pull=pull,
    )


async def run_commands(session: Session, parsed: ParsedComment) -> None:
    """Carry out a comment's commands in order (the first `MAX_COMMANDS` of them)."""
    if len(parsed.commands) > MAX_COMMANDS:
        key = say.reply_key(session.source.kind, session.source.id, 0)
        why = f"a comment may hold {MAX_COMMANDS} commands; the rest were not run."
        await session.reply(say.nothing_to_do(key, "...", why))
    for command in parsed.commands[:MAX_COMMANDS]:
        key = say.reply_key(session.source.kind, session.source.id, command.line)
        outcome = await run_command(session, command, key, parsed)
        log.info(
            "/coder %s on %s#%d by %s: %s",
            command.verb,
            session.repo,
            session.number,
            session.sender.login,
            outcome.value if outcome is not None else "not accepted",
        )


async def run_command(
    session: Session, command: Command, key: str, parsed: ParsedComment
) -> Outcome | None:
    """Check one command and carry it out; None if it was not accepted."""
    known = verbs.resolve(command.verb, session.config)
    if isinstance(known, verbs.Unknown):
        await session.reply(say.unknown_verb(key, known.verb, known.suggestion))
        return None
    if not fits(known.where, is_pull=session.is_pull):
        await session.reply(say.wrong_subject(key, known.verb, known.where))
        return None
    if session.state != "open" and known.verb not in ALWAYS_OPEN:
        await session.reply(say.closed(key, known.verb))
        return None
    if not await may_use(session, known, key):
        await session.react(Reaction.CONFUSED)
        return None
    await session.react(Reaction.EYES)
    handler = HANDLERS.get(known.verb, start_workflow)
    outcome = await handler(session, command, known, key, parsed)
    if outcome in {Outcome.DONE, Outcome.REPLIED}:
        await session.react(Reaction.ROCKET)
    elif outcome is Outcome.FAILED:
        await session.react(Reaction.CONFUSED)
    return outcome


def fits(where_: verbs.Where, *, is_pull: bool) -> bool:
    """Tell whether a verb works on this kind of subject (pure)."""
    if where_ is verbs.Where.PULL:
        return is_pull
    if where_ is verbs.Where.ISSUE:
        return not is_pull
    return True


async def may_use(session: Session, known: verbs.Known, key: str) -> bool:
    """Check the sender's live role against the verb; say once why not."""
    if known.access is verbs.Access.ANYONE and session.sender.type != BOT_TYPE:
        return True  # no need to ask GitHub who may read
    sender = await session.sender_check()
    if sender.refusal is Refusal.BOT_NOT_ALLOWED or not verbs.allows(
        known.access, sender.role, may_write=sender.allowed
    ):
        await session.reply(say.refused(key, known.verb, sender, session.repo, known.access))
        return False
    return True


async def start_workflow(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Start the workflow a verb names on this subject (the gate answers a refusal itself)."""
    del key
    assert known.workflow is not None
    request = session.request(
        known.workflow, command, input=parsed.input, input_errors=_problems(command, parsed)
    )
    started = await start_run(session.gh, request, session.config_result)
    return Outcome.STARTED if started else Outcome.FAILED


def _problems(command: Command, parsed: ParsedComment) -> tuple[str, ...]:
    return (*command.problems, *parsed.input_problems)


async def show_help(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Reply with the verbs."""
    del command, known, parsed
    await session.reply(say.help_reply(key, verbs.help_lines(session.config)))
    return Outcome.REPLIED


async def queue_merge(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Label the pull request `coder:merge`, when the repository's merge queue is on."""
    del command, known, parsed
    if not session.config.merge_queue.enabled:
        why = (
            "the merge queue is off for this repository (`merge_queue.enabled` in "
            "`.github/coder.yml`); nothing was queued."
        )
        await session.reply(say.nothing_to_do(key, verbs.MERGE, why))
        return Outcome.FAILED
    await add_label(session, labels.MERGE)
    return Outcome.DONE


async def pin(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Label the subject `coder:pinned`: its runs go before unpinned work."""
    del command, known, key, parsed
    await add_label(session, labels.PINNED)
    return Outcome.DONE


async def unpin(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Take `coder:pinned` off the subject (already off is fine)."""
    del command, known, key, parsed
    await remove_label(session, labels.PINNED)
    return Outcome.DONE


async def add_label(session: Session, name: str) -> None:
    """Label the subject, and remember it for the commands after this one."""
    await labels_io.add_label(session.gh, session.repo, session.number, name)
    session.relabel((*session.subject.labels, name))


async def remove_label(session: Session, name: str) -> None:
    """Take a label off the subject (not there is fine)."""
    await labels_io.remove_label(session.gh, session.repo, session.number, name)
    session.relabel(tuple(label for label in session.subject.labels if label != name))


async def split_issue(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """Open the newest run's split proposal as sub-issues of this issue, once each."""
    del command, known, parsed
    runs = await run_control.subject_runs(session)
    for run in sorted(runs, key=lambda view: view.check_run_id, reverse=True):
        proposals = split.proposals_of(load_artifact(run.text))
        if not proposals or run.active:
            continue
        numbers = await split.create_sub_issues(
            session.gh,
            session.repo,
            parent=session.number,
            proposals=proposals,
            run_id=run.run_id,
            label=split.develop_label(session.config),
            bot_login=session.bot_login,
        )
        listed = ", ".join(f"#{number}" for number in numbers)
        lines = [f"Run `{run.run_id}`'s split is open as sub-issues of this issue: {listed}."]
        await session.reply(say.text_reply(key, lines))
        return Outcome.DONE
    why = "no run of this issue proposes a split (the architect's plan has none)."
    await session.reply(say.nothing_to_do(key, verbs.SPLIT, why))
    return Outcome.FAILED


HANDLERS: dict[str, Handler] = {
    verbs.SPLIT: split_issue,
    verbs.ANSWER: prompts.answer,
    verbs.APPROVE: prompts.approve,
    verbs.HELP: show_help,
    verbs.STATUS: run_control.show_status,
    verbs.RETRY: run_control.retry,
    verbs.CANCEL: run_control.cancel,
    verbs.FIX: fix.ask_for_fix,
    verbs.MERGE: queue_merge,
    verbs.PIN: pin,
    verbs.UNPIN: unpin,
}
