"""Fix runs: `/coder fix [guidance]`, and the loops that start one without a person asking.

A fix is the `fix` workflow on a pull request: its check run `coder/fix` goes on the head, and
its job pushes to the same `coder/*` branch (docs/commands.md). It climbs one model tier from the
pull request's last run, so a first attempt stays cheap and a failure costs more only when it
has to. Its briefing holds what to change: the guidance, the review threads, and for a failing
check its name, summary and log tail.

Two loops close without a person (config `loops`, on by default): a failing check on a coder
pull request, and a review that requests changes. Both stop at `loops.max_fix_attempts` and say
so on the pull request once. Attempts are counted from GitHub: the fix commits on the pull
request (`Coder-Workflow: fix`) and the fix runs on its head.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import gidgethub
from gidgethub.routing import Router
from pydantic import Field

from app import command_replies as say
from app import labels, replies
from app.briefing import (
    BRANCH_PREFIX,
    TRAILER_MODEL,
    TRAILER_RUN,
    TRAILER_WORKFLOW,
    parse_trailers,
    sanitize,
)
from app.command_parser import parse_comment
from app.command_session import Outcome
from app.develop import APP_ACCESS, FailedRun, RunRequest, Subject, TriggerKind
from app.events import Model, Repository, User
from app.gate import start_run
from app.ids import run_id as make_run_id
from app.issue_labels import add_label
from app.markers import render_marker
from app.once import comment_once, where
from app.permissions import check_sender
from app.repo_config import fetch_config
from app.subject_runs import RunView, newest, runs_of_pull
from app.triggers import pull_subject
from app.verbs import FIX

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

    from app.command_parser import Command, ParsedComment
    from app.command_session import Session
    from app.config import ConfigResult
    from app.verbs import Known

log = logging.getLogger(__name__)

router = Router()

PULL_URL = "/repos/{owner}/{repo}/pulls/{number}"
PULL_COMMITS_URL = "/repos/{owner}/{repo}/pulls/{number}/commits{?per_page}"
REVIEW_COMMENTS_URL = "/repos/{owner}/{repo}/pulls/{number}/comments{?per_page}"
REVIEWS_URL = "/repos/{owner}/{repo}/pulls/{number}/reviews{?per_page}"
COMMIT_CHECK_RUNS_URL = "/repos/{owner}/{repo}/commits/{sha}/check-runs{?filter,per_page}"
JOB_LOGS_URL = "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs"
ACTIONS_JOB_URL = re.compile(r"/actions/runs/[0-9]+/job/(?P<id>[0-9]+)")
FAILING = frozenset({"failure", "timed_out"})
FIX_CAP = "fix-cap"
NEEDS_FIX = "needs a fix"
# The briefing travels in the check run's run request (at most 65535 characters, as JSON).
MAX_BRIEFING_CHARS = 30_000
MAX_LOG_LINES = 80
MAX_LOG_CHARS = 8_000
MAX_COMMENT_CHARS = 2_000
MAX_THREADS = 30
MAX_CHECKS = 5


@dataclass(frozen=True)
class Thread:
    """One review thread: the line it is on and what was said, oldest first."""

    path: str
    line: int | None
    comments: tuple[tuple[str, str], ...]  # (login, body)


@dataclass(frozen=True)
class FailingCheck:
    """A check that failed on the pull request's head, as the fix run's briefing shows it."""

    name: str
    conclusion: str
    summary: str
    log_tail: str
    url: str


def threads_of(comments: Iterable[Mapping[str, Any]], review_id: int | None = None) -> list[Thread]:
    """Group review comments into threads (replies under the comment they answer) (pure).

    With `review_id`, only the threads that review started or answered.
    """
    roots: dict[int, list[Mapping[str, Any]]] = {}
    for comment in sorted(comments, key=lambda c: int(c.get("id") or 0)):
        root = comment.get("in_reply_to_id") or comment.get("id")
        roots.setdefault(int(root or 0), []).append(comment)
    threads = []
    for members in roots.values():
        if review_id is not None and not any(
            c.get("pull_request_review_id") == review_id for c in members
        ):
            continue
        first = members[0]
        line = first.get("line") or first.get("original_line")
        said = tuple(
            (str((c.get("user") or {}).get("login", "")), _clip(str(c.get("body") or "")))
            for c in members
        )
        threads.append(Thread(str(first.get("path", "")), line, said))
    return threads[-MAX_THREADS:]


def log_tail(log_text: str) -> str:
    """Return the last lines of a job log, within the briefing's budget (pure)."""
    lines = log_text.rstrip().splitlines()[-MAX_LOG_LINES:]
    return "\n".join(lines)[-MAX_LOG_CHARS:]


def fix_briefing(
    *,
    pull_body: str | None,
    guidance: str,
    threads: Sequence[Thread],
    reviews: Sequence[tuple[str, str]],
    failing: Sequence[FailingCheck],
) -> str:
    """Render what a fix run is asked to change, then the pull request it works on (pure)."""
    parts: list[str] = ["## What to fix", ""]
    if guidance.strip():
        parts += [guidance.strip(), ""]
    for check in failing[:MAX_CHECKS]:
        parts += [f"### The check `{check.name}` ended `{check.conclusion}`", ""]
        if check.url:
            parts += [check.url, ""]
        if check.summary.strip():
            parts += [_clip(check.summary.strip()), ""]
        if check.log_tail.strip():
            parts += ["The end of its log:", "", _fenced(check.log_tail), ""]
    for login, body in reviews:
        parts += [f"### @{login} requested changes", "", _clip(body.strip()), ""]
    if threads:
        parts += ["### Review threads", ""]
        for thread in threads:
            where_ = f"`{thread.path}`" + (f" line {thread.line}" if thread.line else "")
            parts.append(f"- {where_}:")
            parts += [f"  - @{login}: {_one_line(body)}" for login, body in thread.comments]
        parts.append("")
    if len(parts) == 2:
        parts += ["Make the pull request's tests pass and finish what it set out to do.", ""]
    parts += ["## The pull request", "", sanitize(pull_body or "") or "(no description)"]
    text = "\n".join(parts)
    return text if len(text) <= MAX_BRIEFING_CHARS else text[:MAX_BRIEFING_CHARS] + "\n(cut)"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_COMMENT_CHARS else text[:MAX_COMMENT_CHARS] + " (cut)"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fenced(text: str) -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}\n{text}\n{fence}"


def fix_runs_so_far(commit_messages: Iterable[str], head_runs: Iterable[RunView]) -> int:
    """Count the fix runs a pull request has had: its fix commits' runs and its head's (pure)."""
    runs = set()
    for message in commit_messages:
        trailers = parse_trailers(message)
        if trailers.get(TRAILER_WORKFLOW) == FIX and trailers.get(TRAILER_RUN):
            runs.add(trailers[TRAILER_RUN])
    runs |= {run.run_id for run in head_runs if run.workflow == FIX}
    return len(runs)


def runs_in(commit_messages: Iterable[str]) -> set[str]:
    """Return the runs whose commits these are (their `Coder-Run` trailers) (pure)."""
    return {
        trailers[TRAILER_RUN]
        for message in commit_messages
        if TRAILER_RUN in (trailers := parse_trailers(message))
    }


def climb_from(head_runs: Iterable[RunView], commit_messages: Sequence[str]) -> FailedRun | None:
    """Return the run a fix climbs the model ladder from (pure).

    The newest run on the head that names its model; failing that (a job that died before it
    reported), the newest commit's `Coder-Run` and `Coder-Model` trailers.
    """
    named = [run for run in head_runs if run.model]
    last = max(named, key=lambda run: run.check_run_id, default=None)
    if last is not None:
        return FailedRun(last.run_id, str(last.model), NEEDS_FIX)
    for message in reversed(commit_messages):
        trailers = parse_trailers(message)
        if trailers.get(TRAILER_MODEL) and trailers.get(TRAILER_RUN):
            return FailedRun(trailers[TRAILER_RUN], trailers[TRAILER_MODEL], NEEDS_FIX)
    return None


@dataclass(frozen=True)
class FixAsk:
    """Who asks for a fix, and why: a command, a failing check, or a review."""

    requested_by: str
    sender_type: str
    kind: TriggerKind
    trigger: str
    trigger_key: str
    at: str
    guidance: str = ""
    review_id: int | None = None
    reviews: tuple[tuple[str, str], ...] = ()
    failing: tuple[FailingCheck, ...] = ()
    asked_in: str | None = None


@dataclass(frozen=True)
class FixContext:
    """The pull request a fix works on, and the config it runs under."""

    gh: GitHubAPI
    repository: Repository
    subject: Subject
    config_result: ConfigResult
    bot_login: str
    app_id: int

    @property
    def repo(self) -> str:
        """Return `owner/name`."""
        return self.repository.full_name


async def ask_for_fix(
    session: Session, command: Command, known: Known, key: str, parsed: ParsedComment
) -> Outcome:
    """`/coder fix [guidance]`: a fix run on this pull request's branch.

    While a plan waits for approval here, the guidance revises the plan instead.
    """
    del known, parsed
    from app import prompts  # noqa: PLC0415 - prompts imports what fix does

    plans = [prompt for prompt in await prompts.open_prompts(session) if prompt.kind == "plan"]
    if plans and command.argument.strip():
        return await prompts.revise_plan(session, plans[0], command.argument, key)
    return await request_fix(session, command, key, guidance=command.argument)


async def request_fix(session: Session, command: Command, key: str, *, guidance: str) -> Outcome:
    """Start a fix run that a person asked for (with `/coder fix` or `/coder retry`)."""
    pull = session.subject.pull
    assert pull is not None
    if not pull.ref.startswith(BRANCH_PREFIX) and not pull.from_fork:
        why = (
            f"coder pushes only to `{BRANCH_PREFIX}*` branches, and this pull request's branch "
            f"is `{pull.ref}`. Label an issue `coder:develop` for a coder branch of its own."
        )
        await session.reply(say.nothing_to_do(key, FIX, why))
        return Outcome.FAILED
    context = FixContext(
        session.gh,
        session.repository,
        session.subject,
        session.config_result,
        session.bot_login,
        session.app_id,
    )
    ask = FixAsk(
        requested_by=session.sender.login,
        sender_type=session.sender.type,
        kind=TriggerKind.COMMAND,
        trigger=f"`/coder {command.verb}`",
        trigger_key=f"{session.delivery_id}:{command.line}",
        at=session.at,
        guidance=guidance,
        asked_in=session.source.render(),
    )
    started = await start_fix(context, ask)
    if started.busy is not None:
        why = f"run `{started.busy.run_id}` ({started.busy.workflow}) is still going here; "
        why += "wait for it or `/coder cancel` it, then ask again."
        await session.reply(say.nothing_to_do(key, FIX, why))
    return Outcome.STARTED if started.started else Outcome.FAILED


@dataclass(frozen=True)
class FixStart:
    """Whether a fix run started; if not because another run is going, which."""

    started: bool
    busy: RunView | None = None
    made_before: bool = False  # the run this ask makes exists already (nothing new started)
    capped: bool = False


async def start_fix(context: FixContext, ask: FixAsk, *, cap: int | None = None) -> FixStart:
    """Gather what to fix, then start the fix run through the gate.

    No fix starts while another run works on the pull request. With `cap` (the loops), none
    starts once the pull request has had that many fix runs.
    """
    gh, repo, subject = context.gh, context.repo, context.subject
    assert subject.pull is not None
    # The run this ask makes has one id (DESIGN §2): found, it was started by an earlier delivery.
    expected = make_run_id(repo, FIX, subject.number, ask.trigger_key)
    head_runs = await runs_of_pull(gh, repo, subject.pull.sha, context.app_id)
    if any(run.run_id == expected for run in head_runs):
        return FixStart(started=True, made_before=True)
    going = newest(head_runs, active=True)
    if going is not None:
        log.info("no fix in %s#%d yet: run %s is going", repo, subject.number, going.run_id)
        if ask.kind is TriggerKind.LOOP:
            # The runner takes the label off when its run ends; that event asks again.
            await add_label(gh, repo, subject.number, labels.QUEUED)
        return FixStart(started=False, busy=going)
    messages = await _commit_messages(gh, repo, subject.number)
    if expected in runs_in(messages):
        return FixStart(started=True, made_before=True)  # made, and pushed before the head moved
    so_far = fix_runs_so_far(messages, head_runs)
    if cap is not None and so_far >= cap:
        await say_cap_reached(context, so_far, ask.trigger)
        return FixStart(started=False, capped=True)
    comments = await _all(gh, REVIEW_COMMENTS_URL, where(repo, number=subject.number))
    body = fix_briefing(
        pull_body=subject.body,
        guidance=ask.guidance,
        threads=threads_of(comments, ask.review_id),
        reviews=ask.reviews,
        failing=ask.failing,
    )
    request = RunRequest(
        repo=repo,
        default_branch=context.repository.default_branch,
        workflow=FIX,
        subject=replace(subject, body=body),
        requested_by=ask.requested_by,
        sender_type=ask.sender_type,
        kind=ask.kind,
        trigger=ask.trigger,
        trigger_key=ask.trigger_key,
        at=ask.at,
        asked_in=ask.asked_in,
        attempt=so_far + 1,
        after=climb_from(head_runs, messages),
    )
    return FixStart(started=await start_run(gh, request, context.config_result))


async def say_cap_reached(context: FixContext, so_far: int, trigger: str) -> None:
    """Say once on the pull request that the loops stop here, and what a person can do."""
    key = f"pr{context.subject.number}-{so_far}"
    lines = [
        render_marker(FIX_CAP, run=key),
        (
            f"coder did not start another fix run for {trigger}: this pull request has had "
            f"{so_far} fix run(s), the most `loops.max_fix_attempts` allows."
        ),
        "",
        "A writer can still ask with `/coder fix <what to change>`, or push a fix.",
    ]
    reply = replies.Reply(FIX_CAP, key, "\n".join(lines))
    await comment_once(context.gh, context.repo, context.subject.number, reply, context.bot_login)
    log.info("fix loop in %s#%d stopped at %d", context.repo, context.subject.number, so_far)


async def _commit_messages(gh: GitHubAPI, repo: str, number: int) -> list[str]:
    commits = await _all(gh, PULL_COMMITS_URL, where(repo, number=number))
    return [str((commit.get("commit") or {}).get("message", "")) for commit in commits]


async def _all(gh: GitHubAPI, url: str, variables: Mapping[str, str]) -> list[Mapping[str, Any]]:
    return [item async for item in gh.getiter(url, {**variables, "per_page": "100"})]


# The loops.


class _PullLink(Model):
    number: int
    head: dict[str, Any]
    base: dict[str, Any]


class _App(Model):
    id: int
    slug: str | None = None


class _CheckOutput(Model):
    title: str | None = None
    summary: str | None = None
    text: str | None = None


class FinishedCheck(Model):
    """A finished check run of any app, with what a fix briefing reads of it."""

    id: int
    name: str
    head_sha: str
    conclusion: str | None = None
    html_url: str | None = None
    details_url: str | None = None
    completed_at: str | None = None
    output: _CheckOutput = Field(default_factory=_CheckOutput)
    app: _App | None = None
    pull_requests: list[_PullLink] = Field(default_factory=list)


class CheckCompleted(Model):
    """`check_run.completed`, for any app's check run (CI included)."""

    check_run: FinishedCheck
    repository: Repository
    sender: User


class _Review(Model):
    id: int
    body: str | None = None
    state: str
    submitted_at: str | None = None
    user: User


class ReviewSubmitted(Model):
    """`pull_request_review.submitted`."""

    review: _Review
    pull_request: dict[str, Any]
    repository: Repository
    sender: User


def is_ci_failure(check_run: FinishedCheck, app_id: int, required: Sequence[str]) -> bool:
    """Tell whether a finished check is a CI failure that the loop answers (pure)."""
    if check_run.conclusion not in FAILING:
        return False
    if check_run.app is not None and check_run.app.id == app_id:
        return False  # coder's own runs end red for their own reasons; `retry` is for those
    return check_run.name in required if required else True


@router.register("check_run", action="completed")
async def fix_failing_check(event: Event, gh: GitHubAPI) -> None:
    """A required check failed on a coder pull request's head: start a fix run."""
    completed = CheckCompleted.from_payload(event.data)
    check_run, repository = completed.check_run, completed.repository
    access = APP_ACCESS.get()
    links = [
        link
        for link in check_run.pull_requests
        if str(link.head.get("ref", "")).startswith(BRANCH_PREFIX)
        and link.head.get("sha") == check_run.head_sha
    ]
    if not links or check_run.conclusion not in FAILING:
        return
    link = links[0]
    result = await fetch_config(gh, repository.full_name, str(link.base.get("ref")))
    config = result.config
    if config is None or not config.loops.ci_failure:
        return
    if not is_ci_failure(check_run, access.settings.app_id, config.policies.required_checks):
        return
    context = await _context(gh, repository, link.number, result, access)
    if context is None:
        return
    failing = await failing_checks(gh, repository.full_name, check_run.head_sha, access)
    ask = FixAsk(
        requested_by=context.bot_login,
        sender_type="Bot",
        kind=TriggerKind.LOOP,
        trigger=f"the failing check `{check_run.name}`",
        trigger_key=f"ci:{check_run.head_sha}",
        at=check_run.completed_at or "",
        failing=failing or (await _failing(gh, repository.full_name, check_run.model_dump()),),
    )
    await start_fix(context, ask, cap=config.loops.max_fix_attempts)


@router.register("pull_request_review", action="submitted")
async def fix_requested_changes(event: Event, gh: GitHubAPI) -> None:
    """A writer requested changes on a coder pull request: start a fix run with the threads."""
    submitted = ReviewSubmitted.from_payload(event.data)
    review, repository = submitted.review, submitted.repository
    pull = submitted.pull_request
    if review.state.lower() != "changes_requested" or pull.get("state") != "open":
        return
    if not str(pull["head"]["ref"]).startswith(BRANCH_PREFIX):
        return
    if parse_comment(review.body).commands:
        return  # the review asks in words (`/coder fix ...`): `app.commands` answers that
    result = await fetch_config(gh, repository.full_name, str(pull["base"]["ref"]))
    config = result.config
    if config is None or not config.loops.changes_requested:
        return
    sender = await check_sender(
        gh,
        repository.full_name,
        login=submitted.sender.login,
        account_type=submitted.sender.type,
        allowed_bots=config.allowed_bots,
    )
    if not sender.allowed:
        log.info("changes requested by %s (%s): no fix run", sender.login, sender.role)
        return
    access = APP_ACCESS.get()
    subject = pull_subject(pull, repository.full_name)
    context = FixContext(
        gh, repository, subject, result, await access.bot_login(), access.settings.app_id
    )
    ask = review_ask(
        review.id,
        login=submitted.sender.login,
        sender_type=submitted.sender.type,
        body=review.body,
        submitted_at=review.submitted_at,
    )
    await start_fix(context, ask, cap=config.loops.max_fix_attempts)


def review_ask(
    review_id: int, *, login: str, sender_type: str, body: str | None, submitted_at: str | None
) -> FixAsk:
    """Return the fix a review requesting changes asks for (pure)."""
    return FixAsk(
        requested_by=login,
        sender_type=sender_type,
        kind=TriggerKind.LOOP,
        trigger=f"@{login}'s review requesting changes",
        trigger_key=f"review:{review_id}",
        at=submitted_at or "",
        review_id=review_id,
        reviews=((login, body or ""),) if (body or "").strip() else (),
    )


def waiting_reviews(reviews: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return each reviewer's latest review where it requests changes, newest first (pure)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for review in sorted(reviews, key=lambda r: int(r.get("id") or 0)):
        login = str((review.get("user") or {}).get("login", ""))
        if str(review.get("state", "")).upper() in {"APPROVED", "CHANGES_REQUESTED", "DISMISSED"}:
            latest[login] = review  # a comment-only review leaves the verdict as it was
    asking = [r for r in latest.values() if str(r.get("state")).upper() == "CHANGES_REQUESTED"]
    return sorted(asking, key=lambda r: int(r.get("id") or 0), reverse=True)


class _Unlabeled(Model):
    label: dict[str, Any]
    pull_request: dict[str, Any]
    repository: Repository
    sender: User


@router.register("pull_request", action="unlabeled")
async def fix_what_waited(event: Event, gh: GitHubAPI) -> None:
    """`coder:queued` came off a coder pull request (its run ended): what waited, starts now.

    A review requesting changes or a failing check that arrived while another run worked on
    the pull request could not start a fix then; the loop labelled the pull request instead.
    """
    unlabeled = _Unlabeled.from_payload(event.data)
    pull, repository = unlabeled.pull_request, unlabeled.repository
    if unlabeled.label.get("name") != labels.QUEUED or pull.get("state") != "open":
        return
    if not str(pull["head"]["ref"]).startswith(BRANCH_PREFIX):
        return
    result = await fetch_config(gh, repository.full_name, str(pull["base"]["ref"]))
    config = result.config
    if config is None:
        return
    access = APP_ACCESS.get()
    remover = unlabeled.sender
    if remover.login != await access.bot_login():
        # A person taking the label off asks coder to look again: that needs write, like
        # asking with `/coder fix` (triage may label, and must not restart work).
        checked = await check_sender(
            gh,
            repository.full_name,
            login=remover.login,
            account_type=remover.type,
            allowed_bots=config.allowed_bots,
        )
        if not checked.allowed:
            log.info("coder:queued taken off by %s (%s): nothing", remover.login, checked.role)
            return
    subject = pull_subject(pull, repository.full_name)
    context = FixContext(
        gh, repository, subject, result, await access.bot_login(), access.settings.app_id
    )
    cap = config.loops.max_fix_attempts
    if config.loops.changes_requested:
        reviews = await _all(gh, REVIEWS_URL, where(repository.full_name, number=subject.number))
        for review in waiting_reviews(reviews):
            user = review.get("user") or {}
            sender = await check_sender(
                gh,
                repository.full_name,
                login=str(user.get("login", "")),
                account_type=str(user.get("type", "User")),
                allowed_bots=config.allowed_bots,
            )
            if not sender.allowed:
                continue
            ask = review_ask(
                int(review["id"]),
                login=sender.login,
                sender_type=str(user.get("type", "User")),
                body=review.get("body"),
                submitted_at=review.get("submitted_at"),
            )
            started = await start_fix(context, ask, cap=cap)
            if not started.made_before:
                return  # started now, or waits again, or the cap says no: one thing at a time
    if config.loops.ci_failure and subject.pull is not None:
        failing = await failing_checks(gh, repository.full_name, subject.pull.sha, access)
        required = config.policies.required_checks
        failing = tuple(check for check in failing if not required or check.name in required)
        if failing:
            ask = FixAsk(
                requested_by=context.bot_login,
                sender_type="Bot",
                kind=TriggerKind.LOOP,
                trigger=f"the failing check `{failing[0].name}`",
                trigger_key=f"ci:{subject.pull.sha}",
                at="",
                failing=failing,
            )
            await start_fix(context, ask, cap=cap)


async def _context(
    gh: GitHubAPI, repository: Repository, number: int, result: ConfigResult, access: Any
) -> FixContext | None:
    try:
        pull = await gh.getitem(PULL_URL, where(repository.full_name, number=number))
    except gidgethub.BadRequest as error:
        if error.status_code == 404:
            return None
        raise
    if pull.get("state") != "open":
        return None
    subject = pull_subject(pull, repository.full_name)
    return FixContext(
        gh, repository, subject, result, await access.bot_login(), access.settings.app_id
    )


async def failing_checks(
    gh: GitHubAPI, repo: str, head_sha: str, access: Any
) -> tuple[FailingCheck, ...]:
    """Return the head's failing checks other than coder's own, with their log tails."""
    answer = await gh.getitem(
        COMMIT_CHECK_RUNS_URL, where(repo, sha=head_sha, filter="latest", per_page=100)
    )
    found = []
    for check_run in answer.get("check_runs", []):
        app = check_run.get("app") or {}
        if check_run.get("conclusion") in FAILING and app.get("id") != access.settings.app_id:
            found.append(await _failing(gh, repo, check_run))
    return tuple(found[:MAX_CHECKS])


async def _failing(gh: GitHubAPI, repo: str, check_run: Mapping[str, Any]) -> FailingCheck:
    output = check_run.get("output") or {}
    summary = "\n\n".join(
        str(part)
        for part in (output.get("title"), output.get("summary"), output.get("text"))
        if part
    )
    return FailingCheck(
        name=str(check_run.get("name", "")),
        conclusion=str(check_run.get("conclusion", "")),
        summary=summary,
        log_tail=await _job_log_tail(gh, repo, check_run.get("details_url")),
        url=str(check_run.get("html_url") or ""),
    )


async def _job_log_tail(gh: GitHubAPI, repo: str, details_url: str | None) -> str:
    """Read the end of an Actions job's log, when the check run is one (else nothing)."""
    match = ACTIONS_JOB_URL.search(details_url or "")
    if match is None:
        return ""
    try:
        text = await gh.getitem(JOB_LOGS_URL, where(repo, job_id=match["id"]))
    except gidgethub.HTTPException as error:
        # No `actions: read`, or the log expired (GitHub keeps logs for a limited time).
        log.info("no log for job %s in %s (%s)", match["id"], repo, error)
        return ""
    return log_tail(text if isinstance(text, str) else "")
