"""The run pipeline's pure core: who may ask, which model, the plan, the claim commit, conflicts.

Every workflow goes through the develop pipeline of docs/develop-run.md (docs/workflows-as-code.md
generalises it): a trigger becomes a `RunRequest`, the request becomes a `RunPlan` (run id, model,
snapshot), and the plan becomes writes in `app/runs.py` (issue subjects) or `app/pull_runs.py`
(pull-request subjects). Nothing here does I/O, so every decision is tested with plain asserts.
"""

from __future__ import annotations

import enum
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.artifacts import check_input, parse_artifact_block
from app.briefing import (
    Snapshot,
    branch_name,
    initial_commit_message,
    parse_run_request,
    slugify,
)
from app.config import ACCEPTS, CoderConfig, ConfigResult, Workflow
from app.config_record import render_config_record
from app.ids import run_id as make_run_id
from app.permissions import Refusal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import BaseModel

    from app.github import GitHubAccess
    from app.permissions import SenderCheck

# The app's GitHub access for the delivery being handled. Handlers are called as `(event, gh)`,
# so server.py sets this around each dispatch. It gives the app's own bot login, which is what
# makes a marked comment trustworthy: anyone can type a marker, nobody else can post as the bot.
APP_ACCESS: ContextVar[GitHubAccess] = ContextVar("app_access")

DEVELOP = "develop"
REVIEW_KIND = "review"
MAX_ATTEMPTS = 50
# A claim (or its pull request) left without a check run this long belongs to an app process that
# died mid-way; a redelivery then finishes the job. Younger, it is another replica at work.
RESUME_AFTER_SECONDS = 120
NOREPLY_DOMAIN = "users.noreply.github.com"
# A run that ended like this was a failed attempt: the next attempt climbs the model ladder.
# `cancelled` is a person stopping it, which says nothing about the model.
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out"})
# Review only reads: the triage role (which may label and close, not push) is enough to ask.
TRIAGE_ROLES = frozenset({"triage"})
# A `repository_dispatch` sent with a workflow's GITHUB_TOKEN arrives from this bot. Sending one
# needs `contents: write`, which only a workflow of the repository itself holds (pull requests
# from forks get read-only tokens), so it speaks for the repository's writers.
# https://docs.github.com/rest/repos/repos#create-a-repository-dispatch-event
ACTIONS_BOT = "github-actions[bot]"
REASON_DEFAULT = "default"
REASON_TOP = "top of the ladder"
THEN_WORD = "then"


class TriggerKind(enum.Enum):
    """What asked for a run; it decides how a refusal is reported."""

    LABEL = "label"
    COMMAND = "command"
    PULL_REQUEST = "pull_request"  # automatic: nobody asked in person, so refusals stay quiet
    DISPATCH = "repository_dispatch"
    CHAIN = "then"  # the first run's trigger was checked already
    LOOP = "loop"  # a fix coder starts on its own pull request (a failing check, a review)


@dataclass(frozen=True)
class PullHead:
    """The pull-request side of a subject: where its check runs go."""

    sha: str
    ref: str
    html_url: str
    from_fork: bool = False


@dataclass(frozen=True)
class Subject:
    """What a run works on: an issue, or a pull request when `pull` is set."""

    number: int
    title: str
    body: str | None
    labels: tuple[str, ...] = ()
    pull: PullHead | None = None


@dataclass(frozen=True)
class NewIssue:
    """A subject still to be opened: the marked issue a scheduled run works on."""

    title: str
    body: str
    key: str


@dataclass(frozen=True)
class RunRequest:
    """A workflow asked for on a subject, as the trigger said it, before any check."""

    repo: str
    default_branch: str
    workflow: str
    subject: Subject | NewIssue
    requested_by: str
    sender_type: str
    kind: TriggerKind
    trigger: str  # for messages: "`coder:develop`", "`/coder develop`"
    trigger_key: str  # the run id's seed: delivery id, dispatch key or `then:<run id>`
    at: str  # ISO time that dates the claim commit, so the same trigger makes the same commit
    then: str | None = None
    input: Mapping[str, object] | None = None
    input_errors: tuple[str, ...] = ()
    input_run: str | None = None
    input_check_run: int | None = None
    asked_in: str | None = None  # the comment that asked (`issue-comment:<id>`), for reactions
    attempt: int | None = None  # a fix loop's attempt number
    after: FailedRun | None = None  # a run this one climbs the model ladder from (a fix)
    continues: FailedRun | None = None  # a run this one resumes, with its model (an answer)
    resume_at: str | None = None  # the step a continuation starts at
    answers: str | None = None  # the prompt a continuation answers (`<check run>:<how>`)

    @property
    def number(self) -> int:
        """Return the subject's number (0 while a scheduled run's issue is not open yet)."""
        return self.subject.number if isinstance(self.subject, Subject) else 0

    @property
    def run_id(self) -> str:
        """Return the run's id: the same trigger always maps to the same id."""
        return make_run_id(self.repo, self.workflow, self.number, self.trigger_key)

    def on(self, subject: Subject) -> RunRequest:
        """Return the request with its subject known (a scheduled run's opened issue)."""
        return replace(self, subject=subject)


@dataclass(frozen=True)
class ModelChoice:
    """The model a run uses, and why (the snapshot's `model_reason`)."""

    model: str
    reason: str


@dataclass(frozen=True)
class FailedRun:
    """The attempt before this one, when it failed: the ladder climbs from its model."""

    run_id: str
    model: str
    why: str = "failed"  # for the reason: "run <id> failed", "run <id> needs a fix"


def choose_model(
    config: CoderConfig,
    workflow: str,
    issue_labels: tuple[str, ...] | list[str],
    failed: FailedRun | None = None,
) -> ModelChoice:
    """Choose the model: the workflow's, a label's, the default; one step up after a failure."""
    chosen = _first_choice(config, workflow, issue_labels)
    ladder = config.agent.models.ladder
    if failed is None or failed.model not in ladder:
        # A model that is not on the ladder has no next step; the usual choice stands.
        return chosen
    step = ladder.index(failed.model) + 1
    if step >= len(ladder):
        return ModelChoice(ladder[-1], REASON_TOP)
    return ModelChoice(
        ladder[step], f"escalated from {failed.model}: run {failed.run_id} {failed.why}"
    )


def _first_choice(
    config: CoderConfig, workflow: str, issue_labels: tuple[str, ...] | list[str]
) -> ModelChoice:
    own = config.workflows[workflow].model if workflow in config.workflows else None
    if own is not None:
        return ModelChoice(own, f"workflow {workflow}")
    for name in issue_labels:
        if name in config.agent.models.labels:
            return ModelChoice(config.agent.models.labels[name], f"label {name}")
    return ModelChoice(config.agent.models.default, REASON_DEFAULT)


def failed_run(check_run: Mapping[str, Any]) -> FailedRun | None:
    """Return a finished check run as a failed attempt, if it failed and names its model."""
    if check_run.get("conclusion") not in FAILED_CONCLUSIONS:
        return None
    model = failed_model(check_run)
    return FailedRun(str(check_run.get("external_id")), model) if model else None


def failed_model(check_run: Mapping[str, Any]) -> str | None:
    """Return the model a check run's run used, from its artifact or its run request."""
    text = (check_run.get("output") or {}).get("text")
    artifact = parse_artifact_block(text)
    model = artifact.get("model") if artifact is not None else None
    if isinstance(model, str) and model:
        return model
    request = parse_run_request(text)
    return request.model if request is not None and request.model else None


def latest(check_runs: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Return the newest check run (the highest id; a carried run is created last)."""
    return max(check_runs, key=lambda run: int(run.get("id") or 0), default=None)


@dataclass(frozen=True)
class RunPlan:
    """Everything a run is, decided from the request and the config before any write."""

    repo: str
    default_branch: str
    issue_number: int
    run_id: str
    steps: tuple[str, ...]
    model: str
    runs_on: str | tuple[str, ...]
    workflow_file: str
    snapshot: Snapshot
    labeled_at: str
    workflow: str = DEVELOP
    model_reason: str = REASON_DEFAULT
    # The merged config the run starts under, for its check run (`app.config_record`).
    config_record: str | None = None

    @property
    def where(self) -> dict[str, str]:
        """Return the owner/repo URI-template variables."""
        owner, repo = self.repo.split("/", 1)
        return {"owner": owner, "repo": repo}

    @property
    def branch_base(self) -> str:
        """Return the run branch's first name (later attempts add `-2`, `-3`)."""
        return self.branch(1)

    def branch(self, attempt: int) -> str:
        """Return the run branch's name for an attempt."""
        snapshot = self.snapshot
        return run_branch(self.workflow, self.issue_number, snapshot.title, attempt, snapshot.then)

    def with_input(self, input_run: str | None, input_check_run: int) -> RunPlan:
        """Return the plan with the check run that holds its input artifact."""
        snapshot = replace(self.snapshot, input_run=input_run, input_check_run=input_check_run)
        return replace(self, snapshot=snapshot)

    def resumed(self, snapshot: Snapshot) -> RunPlan:
        """Return the plan a claim commit recorded (its model may have been escalated)."""
        return replace(
            self, snapshot=snapshot, model=snapshot.model, model_reason=snapshot.model_reason
        )


def plan_run(
    request: RunRequest, config: CoderConfig, subject: Subject, failed: FailedRun | None = None
) -> RunPlan:
    """Decide the run's id, model and snapshot from the request (pure)."""
    request = request.on(subject)
    workflow = config.workflows[request.workflow]
    if request.continues is not None:
        continued = request.continues
        choice = ModelChoice(continued.model, f"continues run {continued.run_id}")
    else:
        choice = choose_model(config, request.workflow, subject.labels, failed or request.after)
    snapshot = Snapshot.taken(
        repo=request.repo,
        issue_number=subject.number,
        title=subject.title,
        body=subject.body,
        labeled_by=request.requested_by,
        run_id=request.run_id,
        workflow=request.workflow,
        model=choice.model,
        model_reason=choice.reason,
        input_run=request.input_run,
        input_check_run=request.input_check_run,
        then=request.then,
        asked_in=request.asked_in,
        attempt=request.attempt,
        resume_at=request.resume_at,
        read_only=subject.pull is not None and subject.pull.from_fork,
        answers=request.answers,
    )
    return RunPlan(
        repo=request.repo,
        default_branch=request.default_branch,
        issue_number=subject.number,
        run_id=request.run_id,
        steps=workflow.steps,
        model=choice.model,
        model_reason=choice.reason,
        runs_on=config.runner.runs_on,
        workflow_file=config.runner.workflow,
        snapshot=snapshot,
        labeled_at=request.at,
        workflow=request.workflow,
        config_record=render_config_record(config),
    )


def run_branch(
    workflow: str, issue_number: int, title: str, attempt: int = 1, then: str | None = None
) -> str:
    """Return a run branch name; workflows other than develop keep their own attempt sequence."""
    # `coder/42-fix-it` stays develop's (DESIGN §4); `coder/42-research-fix-it` is research's,
    # so a research run's branch never looks like a develop attempt, nor the other way round.
    # A run asked to hand on (`--then develop`) says so: `coder/42-research-then-develop-fix-it`.
    # The branch name reaches the app in every `check_run` event, so a finished run without one
    # costs the app no request to find out (docs/workflows-as-code.md, the API budget).
    if then is not None:
        named = f"{workflow} {THEN_WORD} {then} {title}"
    else:
        named = title if workflow == DEVELOP else f"{workflow} {title}"
    return branch_name(issue_number, named, attempt)


def may_hand_on(head_branch: str | None, workflow: str) -> bool:
    """Tell whether a run's branch says it was asked to hand on (`--then`); a hint, not proof."""
    return f"-{slugify(workflow)}-{THEN_WORD}-" in (head_branch or "")


def claim_commit(plan: RunPlan, *, base_sha: str, tree_sha: str, bot_login: str) -> dict[str, Any]:
    """Return the run branch's first commit: empty, with a fixed identity and date.

    The same request always yields the same commit (the same sha), so a redelivery can recognise
    a branch it created before it died.
    """
    # GitHub's noreply address for bots is `<id>+<login>@...`; the id costs a request, and only
    # the avatar next to this one empty commit depends on it.
    identity = {
        "name": bot_login,
        "email": f"{bot_login}@{NOREPLY_DOMAIN}",
        "date": plan.labeled_at,
    }
    return {
        "message": initial_commit_message(plan.snapshot),
        "tree": tree_sha,
        "parents": [base_sha],
        "author": identity,
        "committer": identity,
    }


class Conflict(enum.Enum):
    """What a 422 on create-ref means, once the newest branch of the issue is known."""

    OURS = "this run exists"  # a redelivery, or a second replica
    RESUME = "our claim, unfinished"  # same claim commit: the process that made it died
    BUSY = "another run is going"
    NEXT = "the last run finished"  # take the next attempt number


def after_conflict(
    runs: list[Mapping[str, Any]], *, newest_sha: str, claim_sha: str, run_id: str
) -> Conflict:
    """Decide what a taken branch name means, from the newest branch's check runs (pure)."""
    if any(run.get("external_id") == run_id for run in runs):
        return Conflict.OURS
    if newest_sha == claim_sha:
        return Conflict.RESUME
    # No check run at all is a claim still being set up (or abandoned): not ours to take.
    if not runs or any(run.get("status") != "completed" for run in runs):
        return Conflict.BUSY
    return Conflict.NEXT


def abandoned(since: str, now: datetime) -> bool:
    """Tell whether a step begun at `since` (ISO 8601) is old enough to take over (pure)."""
    return (now - datetime.fromisoformat(since)).total_seconds() > RESUME_AFTER_SECONDS


def triggered_workflow(result: ConfigResult, label: str) -> tuple[str, Workflow] | None:
    """Return the workflow a label starts; with a broken config, the built-in triggers apply."""
    return usable(result).workflow_for_label(label)


def usable(result: ConfigResult) -> CoderConfig:
    """Return the config, or the built-in one while the file is broken (to know the triggers)."""
    return result.config if result.config is not None else CoderConfig()


def fork_allowed(config: CoderConfig, workflow: Workflow) -> bool:
    """Tell whether a workflow may run on a fork's pull request: a fix, with allow_fork_runs.

    Such a run gets a read-only token and hands its result back as a suggested patch; nothing
    else that runs a fork's code is allowed where a write token or the app's key is reachable.
    """
    return config.allow_fork_runs and workflow.produces == DEVELOP and bool(workflow.steps)


def on_pull_request(workflow: Workflow) -> bool:
    """Tell whether a workflow works on a pull request (a review, or `on.pull_request`)."""
    return workflow.produces == REVIEW_KIND or bool(workflow.on.pull_request)


def sender_allowed(sender: SenderCheck, workflow: Workflow, kind: TriggerKind) -> bool:
    """Tell whether the sender may start this workflow (triage may ask for a review)."""
    if sender.allowed:
        return True
    if sender.refusal is Refusal.BOT_NOT_ALLOWED:
        return kind is TriggerKind.DISPATCH and sender.login.casefold() == ACTIONS_BOT
    return workflow.produces == REVIEW_KIND and sender.role in TRIAGE_ROLES


@dataclass(frozen=True)
class InputVerdict:
    """The request's `then` and input artifact, checked: problems, or the artifact to store."""

    problems: tuple[str, ...] = ()
    artifact: BaseModel | None = None


def check_request(request: RunRequest, config: CoderConfig) -> InputVerdict:
    """Check a request's `--then` and input artifact against the config (pure)."""
    workflow = config.workflows[request.workflow]
    problems = list(request.input_errors)
    if request.then is not None:
        problems += then_problems(config, request.workflow, request.then)
    if request.input is None:
        return InputVerdict(tuple(problems))
    checked = check_input(ACCEPTS[workflow.produces], request.input)
    problems += [f"input {problem}" for problem in checked.problems]
    return InputVerdict(tuple(problems), checked.artifact if not problems else None)


def then_problems(config: CoderConfig, workflow: str, following: str) -> list[str]:
    """Name what is wrong with chaining `following` after `workflow`, if anything."""
    nxt = config.workflows.get(following)
    if nxt is None:
        return [f"then: no workflow named {following!r} in .github/coder.yml"]
    produces = config.workflows[workflow].produces
    if produces not in ACCEPTS[nxt.produces]:
        takes = " or ".join(ACCEPTS[nxt.produces])
        return [f"then: {following} takes {takes}, not the {produces} artifact {workflow} makes"]
    return []


def input_run_of(artifact: BaseModel | None) -> str | None:
    """Return the run an input artifact came from (an issue reference has none)."""
    run = getattr(artifact, "runId", None)
    return run if isinstance(run, str) else None
