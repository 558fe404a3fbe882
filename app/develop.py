"""`issues.labeled`: a label that starts a workflow becomes a run (docs/develop-run.md).

Check the sender, claim the branch (create-ref is the lock), open a draft pull request, create the
queued check run, label the issue `coder:running` and dispatch the workflow with ids only. Every
write is idempotent: a redelivery, or a second replica handling the same delivery, ends with one
branch, one pull request and one check run.
"""

from __future__ import annotations

import enum
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gidgethub
from gidgethub.routing import Router

from app import checks, labels, replies
from app.briefing import (
    TITLE_PREFIX,
    Progress,
    RunBranch,
    Snapshot,
    branch_name,
    initial_commit_message,
    newest_attempt,
    render_pr_body,
)
from app.config import CoderConfig, ConfigResult, Workflow
from app.events import IssuesLabeled, Model
from app.github import create_once
from app.ids import run_id as make_run_id
from app.markers import find_marked
from app.permissions import check_sender
from app.reconcile import check_runs_on, remove_running_label, run_branches
from app.repo_config import fetch_config

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

    from app.github import GitHubAccess

log = logging.getLogger(__name__)

router = Router()

# The app's GitHub access for the delivery being handled. Handlers are called as `(event, gh)`,
# so server.py sets this around each dispatch. It gives the app's own bot login, which is what
# makes a marked comment trustworthy: anyone can type a marker, nobody else can post as the bot.
APP_ACCESS: ContextVar[GitHubAccess] = ContextVar("app_access")

WORKFLOW = "develop"
MAX_ATTEMPTS = 50
# A claim (or its pull request) left without a check run this long belongs to an app process that
# died mid-way; a redelivery then finishes the job. Younger, it is another replica at work.
RESUME_AFTER_SECONDS = 120
NOREPLY_DOMAIN = "users.noreply.github.com"
STATUS_QUEUED = "Queued: waiting for the job to start."
REF_EXISTS = "reference already exists"

BRANCH_URL = "/repos/{owner}/{repo}/branches/{+branch}"
COMMITS_URL = "/repos/{owner}/{repo}/git/commits"
REFS_URL = "/repos/{owner}/{repo}/git/refs"
REF_URL = "/repos/{owner}/{repo}/git/ref/{+ref}"
PULLS_URL = "/repos/{owner}/{repo}/pulls"
PULLS_BY_HEAD_URL = "/repos/{owner}/{repo}/pulls{?head,state,per_page}"
CHECK_RUNS_URL = "/repos/{owner}/{repo}/check-runs"
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
ISSUE_LABELS_URL = "/repos/{owner}/{repo}/issues/{number}/labels"
COMMENTS_URL = "/repos/{owner}/{repo}/issues/{number}/comments"
COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"
DISPATCH_URL = "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches"


class _IssueTimes(Model):
    updated_at: str


class _LabeledTimes(Model):
    issue: _IssueTimes


@dataclass(frozen=True)
class RunPlan:
    """Everything a run is, decided from the event and the config before any write."""

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
    workflow: str = WORKFLOW

    @property
    def where(self) -> dict[str, str]:
        """Return the owner/repo URI-template variables."""
        owner, repo = self.repo.split("/", 1)
        return {"owner": owner, "repo": repo}


class Conflict(enum.Enum):
    """What a 422 on create-ref means, once the newest branch of the issue is known."""

    OURS = "this run exists"  # a redelivery, or a second replica
    RESUME = "our claim, unfinished"  # same claim commit: the process that made it died
    BUSY = "another run is going"
    NEXT = "the last run finished"  # take the next attempt number


def triggered_workflow(result: ConfigResult, label: str) -> tuple[str, Workflow] | None:
    """Return the workflow a label starts; with a broken config, the built-in triggers apply."""
    config = result.config if result.config is not None else CoderConfig()
    return config.workflow_for_label(label)


def choose_model(config: CoderConfig, issue_labels: list[str]) -> str:
    """Return the model for an issue: the first label with a model of its own, else the default."""
    for name in issue_labels:
        if name in config.agent.models.labels:
            return config.agent.models.labels[name]
    return config.agent.models.default


def plan_run(
    labeled: IssuesLabeled, config: CoderConfig, *, delivery_id: str, labeled_at: str
) -> RunPlan:
    """Decide the run's id, model and snapshot from the labeled event (pure)."""
    repo, issue = labeled.repository, labeled.issue
    run_id = make_run_id(repo.full_name, WORKFLOW, issue.number, delivery_id)
    model = choose_model(config, [label.name for label in issue.labels])
    snapshot = Snapshot.taken(
        repo=repo.full_name,
        issue_number=issue.number,
        title=issue.title,
        body=issue.body,
        labeled_by=labeled.sender.login,
        run_id=run_id,
        workflow=WORKFLOW,
        model=model,
    )
    return RunPlan(
        repo=repo.full_name,
        default_branch=repo.default_branch,
        issue_number=issue.number,
        run_id=run_id,
        steps=config.workflows[WORKFLOW].steps,
        model=model,
        runs_on=config.runner.runs_on,
        workflow_file=config.runner.workflow,
        snapshot=snapshot,
        labeled_at=labeled_at,
    )


def claim_commit(plan: RunPlan, *, base_sha: str, tree_sha: str, bot_login: str) -> dict[str, Any]:
    """Return the run branch's first commit: empty, with a fixed identity and date.

    The same event always yields the same commit (the same sha), so a redelivery can recognise
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


@router.register("issues", action="labeled")
async def start_run(event: Event, gh: GitHubAPI) -> None:
    """Start a develop run for an issue whose new label starts it."""
    labeled = IssuesLabeled.from_payload(event.data)
    if labeled.issue.is_pull_request or labeled.issue.state != "open":
        return
    repo, number = labeled.repository, labeled.issue.number
    result = await fetch_config(gh, repo.full_name, repo.default_branch)
    triggered = triggered_workflow(result, labeled.label.name)
    if triggered is None or triggered[0] != WORKFLOW:
        return
    run_id = make_run_id(repo.full_name, WORKFLOW, number, event.delivery_id)
    sender = await check_sender(
        gh,
        repo.full_name,
        login=labeled.sender.login,
        account_type=labeled.sender.type,
        allowed_bots=result.config.allowed_bots if result.config is not None else (),
    )
    bot_login = await APP_ACCESS.get().bot_login()
    if not sender.allowed:
        reply = replies.refusal(
            run_id=run_id, sender=sender, label=labeled.label.name, repo=repo.full_name
        )
        await comment_once(gh, repo.full_name, number, reply, bot_login)
        return
    if result.config is None:
        await report_invalid_config(gh, labeled, result, run_id, bot_login)
        return
    labeled_at = _LabeledTimes.from_payload(event.data).issue.updated_at
    plan = plan_run(labeled, result.config, delivery_id=event.delivery_id, labeled_at=labeled_at)
    claimed = await claim_branch(gh, plan, bot_login)
    if claimed is not None:
        await open_run(gh, plan, claimed, bot_login)


async def report_invalid_config(
    gh: GitHubAPI, labeled: IssuesLabeled, result: ConfigResult, run_id: str, bot_login: str
) -> None:
    """Fail `coder/develop` on the default branch's head with the errors, and say so once."""
    repo = labeled.repository
    owner, name = repo.full_name.split("/", 1)
    branch = await gh.getitem(
        BRANCH_URL, {"owner": owner, "repo": name, "branch": repo.default_branch}
    )
    head_sha = str(branch["commit"]["sha"])
    body = checks.config_failure_check_run(
        result.errors,
        head_sha=head_sha,
        run_id=run_id,
        workflow=WORKFLOW,
        branch=repo.default_branch,
    )
    check_run = await check_run_once(gh, repo.full_name, body, look_first=True)
    reply = replies.config_invalid(
        run_id=run_id,
        errors=result.errors,
        branch=repo.default_branch,
        check_run_url=check_run.get("html_url"),
    )
    await comment_once(gh, repo.full_name, labeled.issue.number, reply, bot_login)


async def claim_branch(gh: GitHubAPI, plan: RunPlan, bot_login: str) -> RunBranch | None:
    """Create the run branch (the lock), or None if this run or another one holds the issue."""
    where = plan.where
    base = await gh.getitem(BRANCH_URL, {**where, "branch": plan.default_branch})
    commit_body = claim_commit(
        plan,
        base_sha=str(base["commit"]["sha"]),
        tree_sha=str(base["commit"]["commit"]["tree"]["sha"]),
        bot_login=bot_login,
    )
    # Commits are content-addressed: posting the same commit again yields the same sha.
    commit = await create_once(
        gh, create=lambda: gh.post(COMMITS_URL, where, data=commit_body), find=_nothing
    )
    sha = str(commit["sha"])
    base_name = branch_name(plan.issue_number, plan.snapshot.title)
    attempt = 1
    for _ in range(MAX_ATTEMPTS):
        branch = branch_name(plan.issue_number, plan.snapshot.title, attempt)
        if await _create_ref(gh, where, branch, sha):
            log.info("run %s claimed %s in %s", plan.run_id, branch, plan.repo)
            return RunBranch(branch, sha)
        newest = newest_attempt(await run_branches(gh, plan.repo, base_name), base_name)
        if newest is None:
            continue  # deleted again since: try the same name once more
        newest_branch, attempt = newest
        runs = await check_runs_on(gh, plan.repo, newest_branch.head_sha, plan.workflow)
        verdict = after_conflict(
            runs, newest_sha=newest_branch.head_sha, claim_sha=sha, run_id=plan.run_id
        )
        log.info("run %s: %s exists: %s", plan.run_id, newest_branch.name, verdict.value)
        if verdict is Conflict.RESUME:
            # Fresh, it is another replica's claim of this very event, still being set up.
            return newest_branch if abandoned(plan.labeled_at, datetime.now(UTC)) else None
        if verdict is not Conflict.NEXT:
            return None
        attempt += 1
    raise RuntimeError(f"no free branch name after {MAX_ATTEMPTS} attempts")


async def _create_ref(gh: GitHubAPI, where: Mapping[str, str], branch: str, sha: str) -> bool:
    async def create() -> bool:
        try:
            await gh.post(REFS_URL, dict(where), data={"ref": f"refs/heads/{branch}", "sha": sha})
        except gidgethub.BadRequest as error:
            if error.status_code == 422 and REF_EXISTS in str(error).lower():
                return False
            raise
        return True

    async def find() -> bool | None:
        # After an ambiguous failure: a ref at our commit means our create went through.
        try:
            found = await gh.getitem(REF_URL, {**where, "ref": f"heads/{branch}"})
        except gidgethub.BadRequest as error:
            if error.status_code == 404:
                return None
            raise
        return bool(found["object"]["sha"] == sha)

    return await create_once(gh, create=create, find=find)


async def open_run(gh: GitHubAPI, plan: RunPlan, claimed: RunBranch, bot_login: str) -> None:
    """Open the draft pull request, then the check run, the label and the dispatch, once each."""
    pull, created = await open_pull(gh, plan, claimed.name)
    if not created:
        # The pull request is the lock for what follows: only its creator goes on, unless the
        # creator evidently died before creating the check run.
        runs = await check_runs_on(gh, plan.repo, claimed.head_sha, plan.workflow)
        if any(run.get("external_id") == plan.run_id for run in runs):
            await add_running_label(gh, plan)
            return
        if not abandoned(str(pull["created_at"]), datetime.now(UTC)):
            return
        log.warning("run %s: finishing a claim left half-done", plan.run_id)
    queued = checks.QueuedRun(
        run_id=plan.run_id,
        workflow=plan.workflow,
        model=plan.model,
        issue_number=plan.issue_number,
        labeled_by=plan.snapshot.labeled_by,
        runs_on=plan.runs_on,
        pull_url=str(pull["html_url"]),
        steps=plan.steps,
    )
    body = checks.queued_check_run(queued, claimed.head_sha)
    check_run = await check_run_once(gh, plan.repo, body, look_first=False)
    await add_running_label(gh, plan)
    await dispatch(gh, plan, pull, check_run, bot_login)


async def open_pull(gh: GitHubAPI, plan: RunPlan, branch: str) -> tuple[Mapping[str, Any], bool]:
    """Open the run's draft pull request; return it and whether this call created it."""
    where = plan.where
    body = {
        "title": f"{TITLE_PREFIX}{plan.snapshot.title}",
        "head": branch,
        "base": plan.default_branch,
        "body": render_pr_body(plan.snapshot, Progress.for_roles(plan.steps), STATUS_QUEUED),
        "draft": True,
    }

    async def find() -> Mapping[str, Any] | None:
        head = f"{where['owner']}:{branch}"
        found = await gh.getitem(
            PULLS_BY_HEAD_URL, {**where, "head": head, "state": "all", "per_page": 1}
        )
        return found[0] if found else None

    async def create() -> tuple[Mapping[str, Any], bool]:
        try:
            return await gh.post(PULLS_URL, where, data=body), True
        except gidgethub.BadRequest as error:
            # 422 "A pull request already exists for <owner>:<branch>": atomic, like create-ref.
            existing = await find() if error.status_code == 422 else None
            if existing is None:
                raise
            return existing, False

    async def find_ours() -> tuple[Mapping[str, Any], bool] | None:
        existing = await find()  # after an ambiguous failure of our own POST
        return None if existing is None else (existing, True)

    return await create_once(gh, create=create, find=find_ours)


async def check_run_once(
    gh: GitHubAPI, repo: str, body: Mapping[str, Any], *, look_first: bool
) -> Mapping[str, Any]:
    """Create a check run unless one with its `external_id` is already on the commit."""
    owner, name = repo.split("/", 1)
    workflow = str(body["name"]).removeprefix(checks.CHECK_PREFIX)

    async def find() -> Mapping[str, Any] | None:
        runs = await check_runs_on(gh, repo, str(body["head_sha"]), workflow)
        return next((run for run in runs if run.get("external_id") == body["external_id"]), None)

    existing = await find() if look_first else None
    if existing is not None:
        return existing
    where = {"owner": owner, "repo": name}
    return await create_once(
        gh, create=lambda: gh.post(CHECK_RUNS_URL, where, data=dict(body)), find=find
    )


async def add_running_label(gh: GitHubAPI, plan: RunPlan) -> None:
    """Label the issue `coder:running` (adding a label it already has changes nothing)."""
    where = {**plan.where, "number": str(plan.issue_number)}
    data = {"labels": [labels.RUNNING]}
    await create_once(gh, create=lambda: gh.post(ISSUE_LABELS_URL, where, data=data), find=_nothing)


async def dispatch(
    gh: GitHubAPI,
    plan: RunPlan,
    pull: Mapping[str, Any],
    check_run: Mapping[str, Any],
    bot_login: str,
) -> None:
    """Dispatch the workflow with ids only; if GitHub refuses, fail the run visibly."""
    inputs = {
        "run_id": plan.run_id,
        "issue": str(plan.issue_number),
        "pull": str(pull["number"]),
        "check_run": str(check_run["id"]),
        "runs_on": checks.runs_on_json(plan.runs_on),
    }
    where = {**plan.where, "workflow": plan.workflow_file}
    try:
        # Never resent after an ambiguous failure: a second dispatch would start a second job.
        # A run whose job never starts is failed, visibly, by the reconcile loop.
        await gh.post(DISPATCH_URL, where, data={"ref": plan.default_branch, "inputs": inputs})
    except gidgethub.BadRequest as error:
        if error.status_code not in {404, 422}:
            raise
        status, message = int(error.status_code), str(error)
        update = checks.dispatch_failed_update(
            workflow_file=plan.workflow_file,
            branch=plan.default_branch,
            status=status,
            message=message,
        )
        check_run_where = {**plan.where, "check_run_id": str(check_run["id"])}
        await gh.patch(CHECK_RUN_URL, check_run_where, data=update)
        reply = _dispatch_reply(plan, str(pull["html_url"]), status, message)
        await comment_once(gh, plan.repo, plan.issue_number, reply, bot_login)
        await remove_running_label(gh, plan.repo, plan.issue_number)
        return
    log.info("run %s dispatched %s in %s", plan.run_id, plan.workflow_file, plan.repo)


def _dispatch_reply(plan: RunPlan, pull_url: str, status: int, message: str) -> replies.Reply:
    if status == 404:
        return replies.workflow_missing(
            run_id=plan.run_id,
            workflow_file=plan.workflow_file,
            branch=plan.default_branch,
            pull_url=pull_url,
        )
    return replies.dispatch_failed(
        run_id=plan.run_id,
        workflow_file=plan.workflow_file,
        branch=plan.default_branch,
        status=status,
        message=message,
    )


async def comment_once(
    gh: GitHubAPI, repo: str, number: int, reply: replies.Reply, bot_login: str
) -> Mapping[str, Any]:
    """Post a marked comment unless the app already posted one of this kind for this run."""
    owner, name = repo.split("/", 1)
    where = {"owner": owner, "repo": name, "number": str(number)}

    async def find() -> Mapping[str, Any] | None:
        comments = [c async for c in gh.getiter(COMMENTS_PAGE_URL, {**where, "per_page": 100})]
        marker = {replies.RUN_KEY: reply.run_id}
        return find_marked(comments, reply.kind, author=bot_login, **marker)

    existing = await find()
    if existing is not None:
        return existing
    data = {"body": reply.body}
    return await create_once(gh, create=lambda: gh.post(COMMENTS_URL, where, data=data), find=find)


async def _nothing() -> None:
    return None
