"""The admin API for what only github.com's UI does around Actions and checks.

Setting secrets (GitHub's REST API takes them encrypted with a libsodium sealed box; devhub's
admin API takes the value), listing workflow runs with what devhub's runner did, and clicking a
check run's button (`check_run.requested_action`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub.admin import PREFIX, AdminError, admin_body, admin_context
from devhub.checks import emit_run
from devhub.http import json_response
from devhub.state import iso

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.rest_json import JSON
    from devhub.state import Repo
    from devhub.state_actions import WorkflowRun

ROUTES = web.RouteTableDef()

SECRET_NAME_MAX = 255


def _repo(ctx: Context, request: web.Request) -> Repo:
    repo = ctx.state.repo(request.match_info["owner"], request.match_info["repo"])
    if repo is None:
        raise AdminError(404, "no such repository")
    return repo


async def _secret_value(request: web.Request) -> tuple[str, str]:
    name = request.match_info["name"].upper()
    if not name or len(name) > SECRET_NAME_MAX or name.startswith("GITHUB_"):
        raise AdminError(422, "secret names are letters, digits and _, not starting with GITHUB_")
    value = (await admin_body(request)).get("value")
    if not isinstance(value, str):
        raise AdminError(422, "value must be a string")
    return name, value


@ROUTES.put(PREFIX + "/repos/{owner}/{repo}/secrets/{name}")
async def put_repo_secret(request: web.Request) -> web.Response:
    """Set a repository secret (201 when new, 204 when replaced)."""
    ctx = admin_context(request)
    repo = _repo(ctx, request)
    name, value = await _secret_value(request)
    existed = name in repo.secrets
    repo.secrets[name] = value
    return web.Response(status=204 if existed else 201)


@ROUTES.put(PREFIX + "/orgs/{org}/secrets/{name}")
async def put_org_secret(request: web.Request) -> web.Response:
    """Set an organization secret, visible to all its repositories."""
    ctx = admin_context(request)
    org = ctx.state.account(request.match_info["org"])
    if org is None or org.type != "Organization":
        raise AdminError(404, "no such organization")
    name, value = await _secret_value(request)
    store = ctx.state.org_secrets.setdefault(org.id, {})
    existed = name in store
    store[name] = value
    return web.Response(status=204 if existed else 201)


def run_summary(ctx: Context, run: WorkflowRun) -> JSON:
    """Describe a run for the admin API: what it is and what devhub's runner did."""
    return {
        "id": run.id,
        "repository": run.repo.full_name,
        "workflow": run.workflow_path,
        "display_title": run.display_title,
        "event": run.event,
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "status": run.status,
        "conclusion": run.conclusion,
        "executed": run.executes,
        "note": run.note,
        "inputs": run.inputs,
        "created_at": iso(run.created_at),
        "html_url": f"{ctx.urls.web}/{run.repo.full_name}/actions/runs/{run.id}",
        "jobs": [
            {
                "id": job.id,
                "name": job.name,
                "status": job.status,
                "conclusion": job.conclusion,
                "outputs": job.outputs,
                "summary": job.summary,
                "log_url": f"{ctx.urls.web}/_blobs/job-logs/{job.id}/{job.log_key}",
            }
            for job in run.jobs
        ],
    }


@ROUTES.get(PREFIX + "/runs")
async def list_runs(request: web.Request) -> web.Response:
    """List every workflow run, oldest first, with what the local runner did."""
    ctx = admin_context(request)
    runs = sorted(
        (run for repo in ctx.state.repos.values() for run in repo.workflow_runs.values()),
        key=lambda run: run.id,
    )
    return json_response([run_summary(ctx, run) for run in runs])


@ROUTES.post(PREFIX + "/repos/{owner}/{repo}/check-runs/{check_run_id:[0-9]+}/requested-action")
async def request_action(request: web.Request) -> web.Response:
    """Click a check run button as `login`: emits `check_run.requested_action` to its app."""
    ctx = admin_context(request)
    repo = _repo(ctx, request)
    run = repo.check_runs.get(int(request.match_info["check_run_id"]))
    if run is None:
        raise AdminError(404, "no such check run")
    body: dict[str, Any] = await admin_body(request)
    identifier, login = body.get("identifier"), body.get("login")
    if not any(action["identifier"] == identifier for action in run.actions):
        raise AdminError(422, f"the check run has no action with identifier {identifier!r}")
    user = ctx.state.account(login) if isinstance(login, str) else None
    if user is None:
        raise AdminError(422, "login must name an existing user")
    emit_run(ctx, "requested_action", repo, run, user, requested_action={"identifier": identifier})
    return web.Response(status=204)
