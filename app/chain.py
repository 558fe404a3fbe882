"""`check_run.completed` on a coder run: the research summary, sub-issues, and the next workflow.

When the runner completes a `coder/<workflow>` check run `success` (with the app's token, so the
app is the sender; ingress lets `check_run` through), the app reads the run's artifact from the
check run's text, then:

1. after a research run, posts the research summary on the issue, once (a marker);
2. with `auto_split`, turns the plan's split proposals into sub-issues (`app/split.py`);
3. with `then:` (the workflow's, or the run's own `Coder-Then` from its snapshot), validates the
   artifact against the next workflow's input and either starts it on the same subject, with run
   id `run_id(repo, next, subject, "then:<run id>")`, or fails `coder/<next>` on the same head
   naming every wrong field. Nothing is ever skipped silently; a redelivery starts nothing twice.

The issue comes from the branch name (`coder/<issue>-...`) and the snapshot is read only for a
run that may hand on, so a run that hands nothing on costs no request here.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from gidgethub.routing import Router
from pydantic import Field

from app import checks, replies, split
from app.artifacts import ResearchArtifact, check_input, load_artifact, parse_artifact_block
from app.briefing import Snapshot, parse_run_request, snapshot_from_commit
from app.config import ACCEPTS, CoderConfig
from app.config_check import config_check_run
from app.develop import (
    APP_ACCESS,
    RunRequest,
    TriggerKind,
    may_hand_on,
    on_pull_request,
    then_problems,
)
from app.events import Model, PullRequestLink, Repository
from app.gate import start_run
from app.ids import run_id as make_run_id
from app.once import check_run_once, comment_once, where
from app.repo_config import fetch_config
from app.runs import base_of
from app.triggers import fetch_subject

if TYPE_CHECKING:
    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event
    from pydantic import BaseModel

    from app.config import ConfigResult, Workflow

log = logging.getLogger(__name__)

router = Router()

PULL_COMMITS_URL = "/repos/{owner}/{repo}/pulls/{number}/commits{?per_page}"
COMPARE_URL = "/repos/{owner}/{repo}/compare/{basehead}"
THEN_KEY = "then:"
RUN_BRANCH = re.compile(r"^coder/(?P<number>[0-9]+)-")
NO_SNAPSHOT = "the finished run's snapshot could not be found, so its subject is unknown"
NO_PULL = "{workflow} works on a pull request, and run {run_id} has none"
SUCCESS = "success"
NEUTRAL = "neutral"


class _Output(Model):
    title: str | None = None
    summary: str | None = None
    text: str | None = None


class _App(Model):
    id: int


class _Suite(Model):
    head_branch: str | None = None


class FinishedCheckRun(Model):
    """A completed check run, with what a chain needs of it."""

    id: int
    name: str
    head_sha: str
    conclusion: str | None = None
    external_id: str | None = None
    completed_at: str | None = None
    output: _Output = Field(default_factory=_Output)
    app: _App | None = None
    check_suite: _Suite = Field(default_factory=_Suite)
    pull_requests: list[PullRequestLink] = Field(default_factory=list)


class _Repository(Repository):
    html_url: str = ""


class CheckRunCompleted(Model):
    """`check_run.completed`."""

    check_run: FinishedCheckRun
    repository: _Repository


def is_our_success(check_run: FinishedCheckRun, app_id: int) -> bool:
    """Tell whether a check run is a coder run of this app that succeeded (pure)."""
    return check_run.conclusion == SUCCESS and _ours(check_run, app_id)


def is_our_unverified_end(check_run: FinishedCheckRun, app_id: int) -> bool:
    """Tell whether a check run is the `neutral` end of a coder run of this app (pure).

    A run that pushed work its repository has no tests for ends `neutral`: it did the work but
    nothing checked it. The carried-away, duplicate and input check runs are `neutral` too, but
    only a run's end carries an artifact.
    """
    return (
        check_run.conclusion == NEUTRAL
        and _ours(check_run, app_id)
        and check_run.name != checks.check_name(checks.INPUT_CHECK)
        and parse_artifact_block(check_run.output.text) is not None
    )


def _ours(check_run: FinishedCheckRun, app_id: int) -> bool:
    # Any app may name a check run `coder/...`; only ours carry our runs.
    return (
        check_run.name.startswith(checks.CHECK_PREFIX)
        and bool(check_run.external_id)
        and check_run.app is not None
        and check_run.app.id == app_id
    )


def spec_url(repo_html_url: str, artifact: ResearchArtifact) -> str:
    """Return the web address of a research run's spec."""
    ref = artifact.commitSha or artifact.branchName
    return f"{repo_html_url}/blob/{ref}/{artifact.specPath}"


@router.register("check_run", action="completed")
async def follow_run(event: Event, gh: GitHubAPI) -> None:
    """After a coder run succeeds: its summary, its sub-issues, and the workflow that follows."""
    completed = CheckRunCompleted.from_payload(event.data)
    check_run, repo = completed.check_run, completed.repository
    access = APP_ACCESS.get()
    app_id = access.settings.app_id
    unverified = is_our_unverified_end(check_run, app_id)
    if not unverified and not is_our_success(check_run, app_id):
        return
    result = await fetch_config(gh, repo.full_name, repo.default_branch)
    name = check_run.name.removeprefix(checks.CHECK_PREFIX)
    if result.config is None:
        await config_invalid(gh, completed, result, await access.bot_login())
        return
    config = result.config
    workflow = config.workflows.get(name)
    if workflow is None:
        return
    if unverified:
        await hold_follow_ups(gh, completed, workflow, await access.bot_login())
        return
    number = subject_number(check_run, workflow)
    artifact = load_artifact(check_run.output.text)
    if number is not None:
        await _after_success(
            gh,
            completed=completed,
            number=number,
            workflow=workflow,
            artifact=artifact,
            config=config,
            bot_login=await access.bot_login(),
        )
    # Only a run that may hand on costs a request to read its snapshot (its `Coder-Then`, who
    # asked); the others are done here, so a plain run stays within the API budget.
    if workflow.then is None and not may_hand_on(check_run.check_suite.head_branch, name):
        return
    snapshot = await run_snapshot(gh, repo.full_name, repo.default_branch, check_run)
    following = (snapshot.then if snapshot is not None else None) or workflow.then
    if following is not None:
        await start_next(gh, completed, snapshot, following, result)


async def hold_follow_ups(
    gh: GitHubAPI, completed: CheckRunCompleted, workflow: Workflow, bot_login: str
) -> None:
    """Say where an unverified (`neutral`) run's `then:` and `auto_split` did not happen.

    `then:` starts the next workflow when a run succeeds (DESIGN §5), and a run nothing tested
    has not: the next workflow's check run says so (neutral), and so does the issue for a split.
    """
    check_run, repo = completed.check_run, completed.repository
    name = check_run.name.removeprefix(checks.CHECK_PREFIX)
    previous = str(check_run.external_id)
    why = check_run.output.title or "ended neutral"
    number = subject_number(check_run, workflow)
    if workflow.auto_split and number is not None:
        artifact = load_artifact(check_run.output.text)
        if split.proposals_of(artifact):
            reply = replies.split_held(run_id=previous, workflow=name, why=why)
            await comment_once(gh, repo.full_name, number, reply, bot_login)
    following = await _following(gh, completed, workflow)
    if following is None:
        return
    body = checks.chain_held_check_run(
        workflow=following,
        run_id=make_run_id(repo.full_name, following, number or 0, f"{THEN_KEY}{previous}"),
        head_sha=check_run.head_sha,
        after=previous,
        why=why,
    )
    log.info("run %s in %s: %s not started, the run is unverified", previous, repo.full_name, name)
    await check_run_once(gh, repo.full_name, body, look_first=True)


async def config_invalid(
    gh: GitHubAPI, completed: CheckRunCompleted, result: ConfigResult, bot_login: str
) -> None:
    """Say that nothing can follow a run while the config is invalid, pointing at coder/config.

    The next workflow, when the run's own request names one, gets a red check run; otherwise
    the broken file cannot say what would follow, and the subject gets one marked comment.
    """
    check_run, repo = completed.check_run, completed.repository
    previous = str(check_run.external_id)
    base = await base_of(gh, repo.full_name, repo.default_branch)
    config_run = await config_check_run(
        gh, repo.full_name, base.sha, result, branch=repo.default_branch
    )
    link = (config_run or {}).get("html_url")
    snapshot = await run_snapshot(gh, repo.full_name, repo.default_branch, check_run)
    number = snapshot.issue_number if snapshot is not None else None
    log.warning("run %s in %s: the config is invalid; nothing follows it", previous, repo.full_name)
    if snapshot is not None and snapshot.then is not None:
        body = checks.chain_config_invalid_check_run(
            result.errors,
            workflow=snapshot.then,
            run_id=make_run_id(repo.full_name, snapshot.then, number or 0, f"{THEN_KEY}{previous}"),
            head_sha=check_run.head_sha,
            after=previous,
            branch=repo.default_branch,
            config_check_url=link,
        )
        await check_run_once(gh, repo.full_name, body, look_first=True)
        return
    number = number or (check_run.pull_requests[0].number if check_run.pull_requests else None)
    if number is None:
        return
    reply = replies.follow_ups_held(
        run_id=previous, errors=result.errors, branch=repo.default_branch, check_run_url=link
    )
    await comment_once(gh, repo.full_name, number, reply, bot_login)


async def _following(gh: GitHubAPI, completed: CheckRunCompleted, workflow: Workflow) -> str | None:
    check_run = completed.check_run
    name = check_run.name.removeprefix(checks.CHECK_PREFIX)
    if workflow.then is None and not may_hand_on(check_run.check_suite.head_branch, name):
        return None
    repo = completed.repository
    snapshot = await run_snapshot(gh, repo.full_name, repo.default_branch, check_run)
    return (snapshot.then if snapshot is not None else None) or workflow.then


def subject_number(check_run: FinishedCheckRun, workflow: Workflow) -> int | None:
    """Return the issue (or pull request) a finished run worked on, from the event (pure)."""
    pulls = check_run.pull_requests
    if not on_pull_request(workflow):
        match = RUN_BRANCH.match(check_run.check_suite.head_branch or "")
        if match is not None:
            return int(match["number"])
    return pulls[0].number if pulls else None


async def _after_success(
    gh: GitHubAPI,
    *,
    completed: CheckRunCompleted,
    number: int,
    workflow: Workflow,
    artifact: BaseModel | None,
    config: CoderConfig,
    bot_login: str,
) -> None:
    repo, run_id = completed.repository, str(completed.check_run.external_id)
    if isinstance(artifact, ResearchArtifact):
        reply = replies.research_summary(
            run_id=run_id,
            problem=artifact.problemStatement,
            approach=artifact.proposedApproach,
            decisions=[(d.decision, d.rationale) for d in artifact.decisions],
            spec=spec_url(repo.html_url, artifact),
        )
        await comment_once(gh, repo.full_name, number, reply, bot_login)
    proposals = split.proposals_of(artifact)
    if workflow.auto_split and proposals:
        await split.create_sub_issues(
            gh,
            repo.full_name,
            parent=number,
            proposals=proposals,
            run_id=run_id,
            label=split.develop_label(config),
            bot_login=bot_login,
        )


async def run_snapshot(
    gh: GitHubAPI, repo: str, default_branch: str, check_run: FinishedCheckRun
) -> Snapshot | None:
    """Find the finished run's snapshot: its run request, or its branch's claim commit."""
    snapshot = parse_run_request(check_run.output.text)
    if snapshot is None:
        message = await _claim_message(gh, repo, default_branch, check_run)
        snapshot = snapshot_from_commit(repo, message) if message is not None else None
    if snapshot is None or snapshot.run_id != check_run.external_id:
        return None
    return snapshot


async def _claim_message(
    gh: GitHubAPI, repo: str, default_branch: str, check_run: FinishedCheckRun
) -> str | None:
    # The claim commit is the run branch's first: the oldest commit of its pull request.
    if check_run.pull_requests:
        number = check_run.pull_requests[0].number
        commits = await gh.getitem(PULL_COMMITS_URL, where(repo, number=number, per_page=1))
    else:
        basehead = f"{default_branch}...{check_run.head_sha}"
        commits = (await gh.getitem(COMPARE_URL, where(repo, basehead=basehead)))["commits"]
    if not commits:
        return None
    return str(commits[0]["commit"]["message"])


async def start_next(
    gh: GitHubAPI,
    completed: CheckRunCompleted,
    snapshot: Snapshot | None,
    following: str,
    result: ConfigResult,
) -> None:
    """Start the workflow that follows a finished run, or fail its check run saying why."""
    check_run, repo = completed.check_run, completed.repository
    config = result.config
    assert config is not None
    previous = str(check_run.external_id)
    name = check_run.name.removeprefix(checks.CHECK_PREFIX)
    problems = then_problems(config, name, following)
    nxt = config.workflows.get(following)
    if snapshot is None:
        problems.append(NO_SNAPSHOT)
    if nxt is not None and not problems:
        checked = check_input(ACCEPTS[nxt.produces], parse_artifact_block(check_run.output.text))
        problems += checked.problems
    number: int | None = snapshot.issue_number if snapshot is not None else None
    if nxt is not None and on_pull_request(nxt) and not problems:
        number = _pull_of(check_run, snapshot)
        if number is None:
            problems.append(NO_PULL.format(workflow=following, run_id=previous))
    subject = None
    if not problems and number is not None:
        subject = await fetch_subject(gh, repo.full_name, number)
    if problems or subject is None or snapshot is None:
        await _stop(gh, completed, following, number or 0, problems or ["the subject is gone"])
        return
    request = RunRequest(
        repo=repo.full_name,
        default_branch=repo.default_branch,
        workflow=following,
        subject=subject[0],
        requested_by=snapshot.labeled_by,
        sender_type="User",
        kind=TriggerKind.CHAIN,
        trigger=f"`then: {following}` after run {previous}",
        trigger_key=f"{THEN_KEY}{previous}",
        at=check_run.completed_at or subject[1],
        input_run=previous,
        input_check_run=check_run.id,
    )
    log.info("run %s in %s: %s follows", previous, repo.full_name, following)
    await start_run(gh, request, result)


def _pull_of(check_run: FinishedCheckRun, snapshot: Snapshot | None) -> int | None:
    if snapshot is not None and parse_run_request(check_run.output.text) is not None:
        return snapshot.issue_number  # the run itself worked on a pull request
    return check_run.pull_requests[0].number if check_run.pull_requests else None


async def _stop(
    gh: GitHubAPI, completed: CheckRunCompleted, following: str, number: int, problems: list[str]
) -> None:
    check_run, repo = completed.check_run, completed.repository
    previous = str(check_run.external_id)
    body = checks.chain_stopped_check_run(
        workflow=following,
        run_id=make_run_id(repo.full_name, following, number, f"{THEN_KEY}{previous}"),
        head_sha=check_run.head_sha,
        after=previous,
        problems=problems,
    )
    log.info("run %s in %s: %s stopped: %s", previous, repo.full_name, following, problems)
    await check_run_once(gh, repo.full_name, body, look_first=True)
