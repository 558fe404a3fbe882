"""The admin API's stand-in for a repository's CI: a job result reported as GitHub Actions'.

On github.com CI results arrive as check runs of the GitHub Actions app, one per workflow job: the
check run shares the job's id, its `details_url` is the job's page, its `external_id` a uuid, and
the job's `check_run_url` points back; job logs come from `GET .../actions/jobs/{id}/logs`.
`POST /_devhub/repos/{o}/{r}/ci` records such a job (of `.github/workflows/ci.yml` by default) as
already run, with the given conclusion and log, and emits what GitHub would: `workflow_run`,
`workflow_job`, `check_run` `created` and `completed`, and `check_suite.completed`.
https://docs.github.com/rest/guides/using-the-rest-api-to-interact-with-checks
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub import actions_runs
from devhub.admin import PREFIX, AdminError, admin_body, admin_context
from devhub.admin_actions import run_summary
from devhub.git import GitError
from devhub.http import json_response
from devhub.pulls import pulls_for_sha
from devhub.runner_env import log_line
from devhub.state import utcnow
from devhub.state_actions import Step, WorkflowRun
from devhub.state_checks import CHECK_CONCLUSIONS
from devhub.workflows import WORKFLOWS_DIR, read_workflow, workflow_id

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.rest_json import JSON
    from devhub.state import Account, Repo

ROUTES = web.RouteTableDef()

DEFAULT_WORKFLOW = "ci.yml"
DEFAULT_WORKFLOW_NAME = "CI"
RUNS_ON = ["ubuntu-latest"]
NOTE = "reported through devhub's admin API (POST /_devhub/repos/{o}/{r}/ci); nothing ran"
CONCLUSIONS = tuple(c for c in CHECK_CONCLUSIONS if c != "stale")


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise AdminError(422, f"{name} must be a string")
    return value


async def _branch_of(ctx: Context, repo: Repo, sha: str) -> str:
    """Name the branch a commit is the head of: a pull request's, any branch's, else the default."""
    for pull in pulls_for_sha(repo, sha, from_forks=True):
        return pull.head_ref
    try:
        heads = await ctx.git.list_refs(repo.owner.login, repo.name, "refs/heads/")
    except GitError:
        heads = {}
    found = [ref.removeprefix("refs/heads/") for ref, head in heads.items() if head == sha]
    return repo.default_branch if repo.default_branch in found or not found else found[0]


async def _new_run(
    ctx: Context, repo: Repo, head_sha: str, workflow_file: str, actor: Account
) -> WorkflowRun:
    path = f"{WORKFLOWS_DIR}/{workflow_file}"
    workflow = await read_workflow(ctx, repo, head_sha, path)
    name = workflow.name if workflow is not None else DEFAULT_WORKFLOW_NAME
    number = workflow_id(ctx, repo, path)
    commit = await ctx.git.get_commit(repo.owner.login, repo.name, head_sha)
    pull_requests = pulls_for_sha(repo, head_sha, from_forks=True)
    head_repo = pull_requests[0].head_repo if pull_requests else repo
    now = utcnow()
    return WorkflowRun(
        id=ctx.state.next_id(),
        repo=repo,
        workflow_id=number,
        workflow_path=path,
        workflow_name=name,
        run_number=actions_runs.next_run_number(repo, number),
        # A CI workflow runs `on: [push, pull_request]`; an open pull request's run is its.
        event="pull_request" if pull_requests else "push",
        display_title=pull_requests[0].issue.title if pull_requests else commit.message.strip(),
        head_branch=await _branch_of(ctx, repo, head_sha),
        head_sha=head_sha,
        actor=actor,
        created_at=now,
        updated_at=now,
        note=NOTE,
        head_repo=head_repo if head_repo is not repo else None,
    )


@ROUTES.post(PREFIX + "/repos/{owner}/{repo}/ci")
async def report_ci(request: web.Request) -> web.Response:
    """Record a finished CI job as GitHub Actions would: workflow run, job, check run, log."""
    ctx = admin_context(request)
    repo = ctx.state.repo(request.match_info["owner"], request.match_info["repo"])
    if repo is None:
        raise AdminError(404, "no such repository")
    body = await admin_body(request)
    head_sha = _text(body, "head_sha", required=True) or ""
    job_name = _text(body, "name", required=True) or ""
    conclusion = _text(body, "conclusion", required=True) or ""
    if conclusion not in CONCLUSIONS:
        raise AdminError(422, f"conclusion must be one of {', '.join(CONCLUSIONS)}")
    summary, text, log = _text(body, "summary"), _text(body, "text"), _text(body, "log")
    details_url = _text(body, "details_url")
    workflow_file = _text(body, "workflow") or DEFAULT_WORKFLOW
    try:
        found = await ctx.git.resolve(repo.owner.login, repo.name, head_sha)
    except GitError:
        found = None
    if found != head_sha:
        raise AdminError(422, f"head_sha must be the full sha of a commit of {repo.full_name}")
    pull_requests = pulls_for_sha(repo, head_sha, from_forks=True)
    actor = pull_requests[0].issue.user if pull_requests else ctx.admin
    run = await _new_run(ctx, repo, head_sha, workflow_file, actor)
    await actions_runs.open_run(ctx, run, [(job_name, job_name, list(RUNS_ON))])
    job = run.jobs[0]
    actions_runs.start_run(ctx, run)
    actions_runs.start_job(ctx, job)
    now = utcnow()
    job.steps = [
        Step(number, step_name, "completed", step_conclusion, now, now)
        for number, step_name, step_conclusion in (
            (1, "Set up job", "success"),
            (2, job_name, conclusion),
            (3, "Complete job", "success"),
        )
    ]
    job.log = [log_line(line, []) for line in (log or "").splitlines()]
    job.summary = summary or ""
    if details_url is not None and job.check_run is not None:
        job.check_run.details_url = details_url  # a CI that links elsewhere than the job page
    actions_runs.finish_job(ctx, job, conclusion, text=text)
    actions_runs.finish_run(ctx, run)
    if ctx.runner is not None:
        await ctx.runner.events.notify()  # `hub.wait_for_run` sees reported runs too
    answer: JSON = run_summary(ctx, run) | {"check_run_id": job.id}
    return json_response(answer, status=201)
