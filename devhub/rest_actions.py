"""REST: Actions workflows, dispatches, workflow runs, jobs, job logs and cancelling.

https://docs.github.com/rest/actions/workflows and .../workflow-runs, .../workflow-jobs.
A dispatch answers 204 and hands the run to devhub's local runner (runner.py); GitHub's refusals:
404 when the workflow file is not on the ref, 422 `No ref found for: <ref>`, `Workflow does not
have 'workflow_dispatch' trigger`, `Unexpected inputs provided: [...]` and `Required input '<x>'
not provided`. Job logs answer 302 to a short-lived devhub URL that serves the text, like GitHub's
redirect to blob storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from devhub.actions_runs import job_json, workflow_run_json
from devhub.git import GitError
from devhub.http import (
    API_PREFIX,
    GitHubError,
    RepoAccess,
    context,
    field_str,
    json_response,
    not_found,
    paginate,
    read_body,
    repo_access,
)
from devhub.rest_labels import sender_of
from devhub.state import Role
from devhub.workflows import (
    DispatchProblem,
    check_inputs,
    find_workflow,
    list_workflows,
    read_workflow,
    workflow_json,
)

if TYPE_CHECKING:
    from devhub.runner import LocalRunner
    from devhub.state import Repo
    from devhub.state_actions import Job, WorkflowRun

ROUTES = web.RouteTableDef()

ACTIONS = API_PREFIX + "/repos/{owner}/{repo}/actions"
WORKFLOW = ACTIONS + "/workflows/{workflow_id}"
RUN = ACTIONS + "/runs/{run_id:[0-9]+}"
JOB = ACTIONS + "/jobs/{job_id:[0-9]+}"
LOGS_ROUTE = "/_blobs/job-logs/{job_id:[0-9]+}/{key}"
READ = (("actions", "read"),)
WRITE = (("actions", "write"),)
CANNOT_CANCEL = "Cannot cancel a workflow run that is completed."
RUN_STATUSES = ("queued", "in_progress", "completed", "pending", "waiting", "requested")


def _reader(request: web.Request) -> RepoAccess:
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    return access


def _runner(request: web.Request) -> LocalRunner:
    runner = context(request).runner
    assert runner is not None
    return runner


# workflows


@ROUTES.get(ACTIONS + "/workflows")
async def list_repo_workflows(request: web.Request) -> web.Response:
    """List the workflows in `.github/workflows` on the default branch."""
    access = _reader(request)
    ctx = context(request)
    workflows = await list_workflows(ctx, access.repo)
    page, headers = paginate(request, workflows)
    rendered = [workflow_json(ctx.urls, access.repo, w) for w in page]
    return json_response({"total_count": len(workflows), "workflows": rendered}, headers=headers)


@ROUTES.get(WORKFLOW)
async def get_workflow(request: web.Request) -> web.Response:
    """Show one workflow, by id or file name."""
    access = _reader(request)
    ctx = context(request)
    workflow = await find_workflow(ctx, access.repo, request.match_info["workflow_id"])
    if workflow is None:
        raise not_found()
    return json_response(workflow_json(ctx.urls, access.repo, workflow))


@ROUTES.post(WORKFLOW + "/dispatches")
async def dispatch_workflow(request: web.Request) -> web.Response:
    """Start a `workflow_dispatch` run of a workflow on a ref; answers 204."""
    access = repo_access(request)
    access.require(Role.WRITE, app=WRITE)
    ctx, repo = context(request), access.repo
    body = await read_body(request)
    ref = field_str(body, "ref", required=True) or ""
    given = body.get("inputs") or {}
    if not isinstance(given, dict):
        raise GitHubError(422, "Invalid request.\n\nFor 'properties/inputs', not an object.")
    key = request.match_info["workflow_id"]
    registered = await find_workflow(ctx, repo, key)
    path = registered.path if registered else f".github/workflows/{key}"
    branch = ref.removeprefix("refs/heads/")
    try:
        head_sha = await ctx.git.resolve(repo.owner.login, repo.name, ref)
    except GitError:
        raise GitHubError(422, f"No ref found for: {ref}") from None
    workflow = await read_workflow(ctx, repo, head_sha, path)
    if workflow is None or (registered is None and not key.endswith((".yml", ".yaml"))):
        raise not_found()
    if workflow.problem is not None:
        raise GitHubError(422, workflow.problem)
    inputs = check_inputs(workflow, {str(k): v for k, v in given.items()})
    if isinstance(inputs, DispatchProblem):
        raise GitHubError(422, inputs.message)
    await _runner(request).dispatch(
        repo,
        workflow,
        branch=branch,
        head_sha=head_sha,
        inputs=inputs,
        actor=sender_of(ctx, access),
    )
    return web.Response(status=204)


# runs


def _filter_runs(request: web.Request, runs: list[WorkflowRun]) -> list[WorkflowRun]:
    query = request.query
    status = query.get("status")
    chosen = []
    for run in runs:
        if status is not None and status not in (run.status, run.conclusion):
            continue
        if query.get("event", run.event) != run.event:
            continue
        if query.get("branch", run.head_branch) != run.head_branch:
            continue
        if query.get("head_sha", run.head_sha) != run.head_sha:
            continue
        if query.get("actor", run.actor.login).casefold() != run.actor.login.casefold():
            continue
        chosen.append(run)
    return sorted(chosen, key=lambda r: r.id, reverse=True)


def _runs_page(request: web.Request, runs: list[WorkflowRun]) -> web.Response:
    ctx = context(request)
    chosen = _filter_runs(request, runs)
    page, headers = paginate(request, chosen)
    rendered = [workflow_run_json(ctx.urls, r) for r in page]
    return json_response({"total_count": len(chosen), "workflow_runs": rendered}, headers=headers)


@ROUTES.get(ACTIONS + "/runs")
async def list_runs(request: web.Request) -> web.Response:
    """List a repository's workflow runs, newest first (`event`, `status`, `branch`, ...)."""
    access = _reader(request)
    return _runs_page(request, list(access.repo.workflow_runs.values()))


@ROUTES.get(WORKFLOW + "/runs")
async def list_workflow_runs(request: web.Request) -> web.Response:
    """List the runs of one workflow."""
    access = _reader(request)
    ctx = context(request)
    key = request.match_info["workflow_id"]
    workflow = await find_workflow(ctx, access.repo, key)
    if workflow is None:
        raise not_found()
    runs = [r for r in access.repo.workflow_runs.values() if r.workflow_id == workflow.id]
    return _runs_page(request, runs)


def _find_run(repo: Repo, request: web.Request) -> WorkflowRun:
    run = repo.workflow_runs.get(int(request.match_info["run_id"]))
    if run is None:
        raise not_found()
    return run


@ROUTES.get(RUN)
async def get_run(request: web.Request) -> web.Response:
    """Show one workflow run."""
    access = _reader(request)
    return json_response(workflow_run_json(context(request).urls, _find_run(access.repo, request)))


@ROUTES.post(RUN + "/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    """Cancel a run: 202, its running step is stopped; 409 once it is completed."""
    access = repo_access(request)
    access.require(Role.WRITE, app=WRITE)
    run = _find_run(access.repo, request)
    if run.status == "completed":
        raise GitHubError(409, CANNOT_CANCEL)
    await _runner(request).cancel(run, by=access.caller.owner_label)
    return json_response({}, status=202)


@ROUTES.get(RUN + "/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """List a run's jobs."""
    access = _reader(request)
    ctx = context(request)
    run = _find_run(access.repo, request)
    page, headers = paginate(request, run.jobs)
    rendered = [job_json(ctx.urls, j) for j in page]
    return json_response({"total_count": len(run.jobs), "jobs": rendered}, headers=headers)


def _find_job(repo: Repo, request: web.Request) -> Job:
    wanted = int(request.match_info["job_id"])
    for run in repo.workflow_runs.values():
        for job in run.jobs:
            if job.id == wanted:
                return job
    raise not_found()


@ROUTES.get(JOB)
async def get_job(request: web.Request) -> web.Response:
    """Show one job with its steps."""
    access = _reader(request)
    return json_response(job_json(context(request).urls, _find_job(access.repo, request)))


@ROUTES.get(JOB + "/logs")
async def download_job_logs(request: web.Request) -> web.Response:
    """Redirect (302) to the job's log text, as GitHub redirects to blob storage."""
    access = _reader(request)
    ctx = context(request)
    job = _find_job(access.repo, request)
    location = f"{ctx.urls.web}/_blobs/job-logs/{job.id}/{job.log_key}"
    return web.Response(status=302, headers={"Location": location})


@ROUTES.get(LOGS_ROUTE)
async def serve_job_log(request: web.Request) -> web.Response:
    """Serve a job's log (the URL itself is the credential, like a signed blob URL)."""
    ctx = context(request)
    wanted = int(request.match_info["job_id"])
    for repo in ctx.state.repos.values():
        for run in repo.workflow_runs.values():
            for job in run.jobs:
                if job.id == wanted and job.log_key == request.match_info["key"]:
                    text = "".join(line + "\n" for line in job.log)
                    return web.Response(text=text, content_type="text/plain")
    return web.Response(status=404, text="The specified blob does not exist.\n")
