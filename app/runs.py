"""A run on an issue: claim the branch (the lock), open the draft pull request, queue, dispatch.

docs/develop-run.md, for every workflow with an issue subject (docs/workflows-as-code.md). Every
write is idempotent: a redelivery, or a second replica handling the same delivery, ends with one
branch, one pull request and one check run. `dispatch` is shared with pull-request runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gidgethub

from app import checks, replies
from app.briefing import (
    TITLE_PREFIX,
    TRAILER_MODEL,
    Progress,
    RunBranch,
    Snapshot,
    newest_attempt,
    parse_trailers,
    render_pr_body,
    snapshot_from_commit,
)
from app.conversation import Reaction, Source, react
from app.develop import (
    DEVELOP,
    FAILED_CONCLUSIONS,
    MAX_ATTEMPTS,
    Conflict,
    FailedRun,
    RunPlan,
    abandoned,
    after_conflict,
    claim_commit,
    failed_model,
    latest,
)
from app.github import create_once
from app.known_repos import remember_dispatch
from app.once import add_running_label, check_run_once, comment_once, nothing, update_check_run
from app.reconcile import check_runs_on, remove_running_label, run_branches

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gidgethub.abc import GitHubAPI

log = logging.getLogger(__name__)

STATUS_QUEUED = "Queued: waiting for the job to start."
REF_EXISTS = "reference already exists"

BRANCH_URL = "/repos/{owner}/{repo}/branches/{+branch}"
COMMITS_URL = "/repos/{owner}/{repo}/git/commits"
COMMIT_URL = "/repos/{owner}/{repo}/git/commits/{sha}"
REFS_URL = "/repos/{owner}/{repo}/git/refs"
REF_URL = "/repos/{owner}/{repo}/git/ref/{+ref}"
PULLS_URL = "/repos/{owner}/{repo}/pulls"
PULLS_BY_HEAD_URL = "/repos/{owner}/{repo}/pulls{?head,state,per_page}"
DISPATCH_URL = "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches"


@dataclass(frozen=True)
class Base:
    """The default branch's head: the parent and tree of a run branch's claim commit."""

    sha: str
    tree_sha: str


async def base_of(gh: GitHubAPI, repo: str, branch: str) -> Base:
    """Read a branch's head commit and tree."""
    owner, name = repo.split("/", 1)
    answer = await gh.getitem(BRANCH_URL, {"owner": owner, "repo": name, "branch": branch})
    commit = answer["commit"]
    return Base(str(commit["sha"]), str(commit["commit"]["tree"]["sha"]))


async def start_issue_run(
    gh: GitHubAPI,
    plan: RunPlan,
    *,
    base: Base,
    bot_login: str,
    escalate: Callable[[FailedRun], RunPlan],
) -> None:
    """Claim the run branch and, if this request holds it, open and dispatch the run."""
    claimed = await claim_branch(gh, plan, base=base, bot_login=bot_login, escalate=escalate)
    if claimed is not None:
        branch, plan = claimed
        await open_run(gh, plan, branch, bot_login)


async def claim_branch(
    gh: GitHubAPI,
    plan: RunPlan,
    *,
    base: Base,
    bot_login: str,
    escalate: Callable[[FailedRun], RunPlan],
) -> tuple[RunBranch, RunPlan] | None:
    """Create the run branch (the lock); None if this run or another one holds the issue.

    After a failed attempt the next one climbs the model ladder, so its claim commit (which
    records the model) is made again for the plan that attempt runs.
    """
    sha = await _claim(gh, plan, base, bot_login)
    base_name = plan.branch_base
    attempt = 1
    for _ in range(MAX_ATTEMPTS):
        branch = plan.branch(attempt)
        if await _create_ref(gh, plan.where, branch, sha):
            log.info("run %s claimed %s in %s", plan.run_id, branch, plan.repo)
            return RunBranch(branch, sha), plan
        newest = newest_attempt(await run_branches(gh, plan.repo, base_name), base_name)
        if newest is None:
            continue  # deleted again since: try the same name once more
        newest_branch, attempt = newest
        runs = await check_runs_on(gh, plan.repo, newest_branch.head_sha, plan.workflow)
        verdict = after_conflict(
            runs, newest_sha=newest_branch.head_sha, claim_sha=sha, run_id=plan.run_id
        )
        if verdict is Conflict.BUSY and not runs:
            # A claim without a check run: ours if its commit names this run (an escalated claim
            # has another sha than the first one this request makes).
            recorded = await commit_snapshot(gh, plan.repo, newest_branch.head_sha)
            if recorded is not None and recorded.run_id == plan.run_id:
                verdict, plan = Conflict.RESUME, plan.resumed(recorded)
        log.info("run %s: %s exists: %s", plan.run_id, newest_branch.name, verdict.value)
        if verdict is Conflict.RESUME:
            # Fresh, it is another replica's claim of this very request, still being set up.
            return (newest_branch, plan) if abandoned(plan.labeled_at, datetime.now(UTC)) else None
        if verdict is not Conflict.NEXT:
            return None
        failed = await previous_failure(gh, plan.repo, runs, newest_branch.head_sha)
        if failed is not None:
            escalated = escalate(failed)
            if escalated.snapshot != plan.snapshot:
                plan = escalated
                sha = await _claim(gh, plan, base, bot_login)
        attempt += 1
    raise RuntimeError(f"no free branch name after {MAX_ATTEMPTS} attempts")


async def _claim(gh: GitHubAPI, plan: RunPlan, base: Base, bot_login: str) -> str:
    body = claim_commit(plan, base_sha=base.sha, tree_sha=base.tree_sha, bot_login=bot_login)
    # Commits are content-addressed: posting the same commit again yields the same sha.
    commit = await create_once(
        gh, create=lambda: gh.post(COMMITS_URL, plan.where, data=body), find=nothing
    )
    return str(commit["sha"])


async def previous_failure(
    gh: GitHubAPI, repo: str, runs: list[Mapping[str, Any]], head_sha: str
) -> FailedRun | None:
    """Return the last attempt if it failed, with the model it ran (from its commit if need be)."""
    last = latest(runs)
    if last is None or last.get("conclusion") not in FAILED_CONCLUSIONS:
        return None
    model = failed_model(last)
    if model is None:
        # No artifact (the job died): the branch's head commit, the claim or the runner's,
        # carries `Coder-Model`.
        model = parse_trailers(await commit_message(gh, repo, head_sha)).get(TRAILER_MODEL)
    return FailedRun(str(last.get("external_id")), model) if model else None


async def commit_message(gh: GitHubAPI, repo: str, sha: str) -> str:
    """Read a commit's message."""
    owner, name = repo.split("/", 1)
    commit = await gh.getitem(COMMIT_URL, {"owner": owner, "repo": name, "sha": sha})
    return str(commit.get("message", ""))


async def commit_snapshot(gh: GitHubAPI, repo: str, sha: str) -> Snapshot | None:
    """Read the snapshot a claim commit carries; None if the commit is not a claim."""
    return snapshot_from_commit(repo, await commit_message(gh, repo, sha))


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
            await add_running_label(gh, plan.repo, plan.issue_number)
            return
        if not abandoned(str(pull["created_at"]), datetime.now(UTC)):
            return
        log.warning("run %s: finishing a claim left half-done", plan.run_id)
    body = checks.queued_check_run(
        queued(plan, str(pull["html_url"])), claimed.head_sha, text=plan.config_record
    )
    check_run = await check_run_once(gh, plan.repo, body, look_first=False)
    await add_running_label(gh, plan.repo, plan.issue_number)
    await dispatch(
        gh,
        plan,
        pull_number=int(pull["number"]),
        pull_url=str(pull["html_url"]),
        check_run_id=int(check_run["id"]),
        bot_login=bot_login,
    )


def queued(plan: RunPlan, pull_url: str) -> checks.QueuedRun:
    """Describe a planned run for its queued check run."""
    return checks.QueuedRun(
        run_id=plan.run_id,
        workflow=plan.workflow,
        model=plan.model,
        model_reason=plan.model_reason,
        issue_number=plan.issue_number,
        labeled_by=plan.snapshot.labeled_by,
        runs_on=plan.runs_on,
        pull_url=pull_url,
        steps=plan.steps,
        attempt=plan.snapshot.attempt,
    )


def pull_title(plan: RunPlan) -> str:
    """Return the run's pull-request title; workflows other than develop say which they are."""
    if plan.workflow == DEVELOP:
        return f"{TITLE_PREFIX}{plan.snapshot.title}"
    return f"[coder {plan.workflow}] {plan.snapshot.title}"


async def open_pull(gh: GitHubAPI, plan: RunPlan, branch: str) -> tuple[Mapping[str, Any], bool]:
    """Open the run's draft pull request; return it and whether this call created it."""
    where = plan.where
    body = {
        "title": pull_title(plan),
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


async def dispatch(
    gh: GitHubAPI,
    plan: RunPlan,
    *,
    pull_number: int,
    pull_url: str,
    check_run_id: int,
    bot_login: str,
) -> None:
    """Dispatch the workflow with ids only; if GitHub refuses, fail the run visibly."""
    inputs = {
        "run_id": plan.run_id,
        "issue": str(plan.issue_number),
        "pull": str(pull_number),
        "check_run": str(check_run_id),
        "runs_on": checks.runs_on_json(plan.runs_on),
    }
    if plan.snapshot.read_only:
        # Only then: a workflow from before `allow_fork_runs` declares no such input, and GitHub
        # refuses inputs a workflow does not declare (422).
        inputs["read_only"] = "true"
    where = {**plan.where, "workflow": plan.workflow_file}
    # Before the job can exist: its token exchange then checks its workflow against this.
    remember_dispatch(plan.repo, plan.workflow_file, plan.default_branch)
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
        await update_check_run(gh, plan.repo, check_run_id, update)
        await react(gh, plan.repo, Source.parse(plan.snapshot.asked_in), Reaction.CONFUSED)
        reply = _dispatch_reply(plan, pull_url, status, message)
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
