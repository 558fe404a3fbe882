"""REST: check runs and check suites, with GitHub's rules and limits.

https://docs.github.com/rest/checks/runs. Only GitHub Apps write checks (people get 403 `You must
authenticate via a GitHub App.`), with `checks: write`, and only the app that created a run may
change it. Limits: `output.summary` and `output.text` at most 65535 characters (and bytes), 50
annotations per request, 3 actions with labels and identifiers of at most 20 characters and
descriptions of at most 40. The devhub admin token acts as the built-in GitHub Actions app, which
is how tests stand in for another CI system.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub.checks import (
    RunChange,
    annotation_json,
    check_run_json,
    create_run,
    emit_run,
    suite_json,
    update_run,
)
from devhub.git import GitError
from devhub.http import (
    API_PREFIX,
    NOT_ACCESSIBLE,
    Context,
    GitHubError,
    RepoAccess,
    context,
    field_str,
    json_response,
    not_found,
    paged_json,
    paginate,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.rest_labels import sender_of
from devhub.state import Role, permission_allows
from devhub.state_checks import CHECK_CONCLUSIONS, CHECK_STATUSES

if TYPE_CHECKING:
    from devhub.state import App, Repo
    from devhub.state_checks import CheckRun

ROUTES = web.RouteTableDef()

REPO = API_PREFIX + "/repos/{owner}/{repo}"
RUN = REPO + "/check-runs/{check_run_id:[0-9]+}"
APPS_ONLY = "You must authenticate via a GitHub App."
OTHER_APP = (
    "Invalid app_id `{app_id}` - check run can only be modified by the GitHub App that created it."
)
MAX_TEXT = 65535
MAX_ANNOTATIONS = 50
MAX_ACTIONS = 3
ACTION_LIMITS = {"label": 20, "description": 40, "identifier": 20}
ANNOTATION_LEVELS = ("notice", "warning", "failure")
ANNOTATION_FIELDS = ("path", "start_line", "end_line", "annotation_level", "message")


def _invalid(message: str) -> GitHubError:
    return GitHubError(422, f"Invalid request.\n\n{message}")


def writer_app(ctx: Context, access: RepoAccess) -> App:
    """Return the app a check write acts for, or refuse as GitHub does."""
    caller = access.caller
    if caller.kind == "admin":
        assert ctx.actions_app is not None
        return ctx.actions_app
    if caller.kind != "installation":
        raise GitHubError(403, APPS_ONLY)
    if not permission_allows(caller.permissions, "checks", "write"):
        raise GitHubError(403, NOT_ACCESSIBLE)
    return ctx.app


def _reader(request: web.Request) -> RepoAccess:
    access = repo_access(request)
    access.require(Role.READ, app=(("checks", "read"),))
    return access


def _find_run(repo: Repo, request: web.Request) -> CheckRun:
    run = repo.check_runs.get(int(request.match_info["check_run_id"]))
    if run is None:
        raise not_found()
    return run


# request parsing


def _text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"For 'properties/{name}', {value!r} is not a string.")
    if len(value) > MAX_TEXT:
        raise _invalid(f"Only {MAX_TEXT} characters are allowed; {len(value)} were supplied.")
    if len(value.encode()) > MAX_TEXT:
        errors = [
            {
                "resource": "CheckRun",
                "code": "custom",
                "field": name,
                "message": f"{name} exceeds a maximum bytesize of {MAX_TEXT}",
            }
        ]
        raise GitHubError(422, "Validation Failed", errors=errors)
    return value


def _items(body: dict[str, Any], name: str, limit: int) -> list[Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid(f"For 'properties/{name}', {value!r} is not an array.")
    if len(value) > limit:
        raise _invalid(f"No more than {limit} items are allowed; {len(value)} were supplied.")
    return value


def _annotations(output: dict[str, Any]) -> list[dict[str, Any]]:
    annotations = _items(output, "annotations", MAX_ANNOTATIONS) or []
    for annotation in annotations:
        if not isinstance(annotation, dict):
            raise _invalid("For 'items', an annotation is not an object.")
        for key in ANNOTATION_FIELDS:
            if key not in annotation:
                raise _invalid(f'"{key}" wasn\'t supplied.')
        if annotation["annotation_level"] not in ANNOTATION_LEVELS:
            raise validation_failed("CheckRun", "annotation_level", "invalid")
    return [dict(a) for a in annotations]


def _output(body: dict[str, Any]) -> tuple[dict[str, str | None] | None, list[dict[str, Any]]]:
    output = body.get("output")
    if output is None:
        return None, []
    if not isinstance(output, dict):
        raise _invalid(f"For 'properties/output', {output!r} is not an object.")
    for key in ("title", "summary"):
        if output.get(key) is None:
            raise _invalid(f'"{key}" wasn\'t supplied.')
    parsed = {
        "title": _text(output.get("title"), "title"),
        "summary": _text(output.get("summary"), "summary"),
        "text": _text(output.get("text"), "text"),
    }
    return parsed, _annotations(output)


def _actions(body: dict[str, Any]) -> list[dict[str, str]] | None:
    actions = _items(body, "actions", MAX_ACTIONS)
    if actions is None:
        return None
    parsed = []
    for action in actions:
        if not isinstance(action, dict):
            raise _invalid("For 'items', an action is not an object.")
        entry = {}
        for key, limit in ACTION_LIMITS.items():
            value = action.get(key)
            if not isinstance(value, str):
                raise _invalid(f'"{key}" wasn\'t supplied.')
            if len(value) > limit:
                raise _invalid(f"Only {limit} characters are allowed; {len(value)} were supplied.")
            entry[key] = value
        parsed.append(entry)
    return parsed


def _moment(body: dict[str, Any], name: str) -> datetime | None:
    raw = field_str(body, name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise validation_failed("CheckRun", name, "invalid") from None


def parse_change(body: dict[str, Any], *, creating: bool, completed: bool) -> RunChange:
    """Read a create/update body with GitHub's validation; `completed`: the run already is."""
    status = field_str(body, "status")
    conclusion = field_str(body, "conclusion")
    if status is not None and status not in CHECK_STATUSES:
        raise validation_failed("CheckRun", "status", "invalid")
    if conclusion is not None and (conclusion not in CHECK_CONCLUSIONS or conclusion == "stale"):
        raise validation_failed("CheckRun", "conclusion", "invalid")
    completed_at = _moment(body, "completed_at")
    wants_completion = status == "completed" or completed_at is not None
    if wants_completion and conclusion is None and not completed:
        # Completing a run needs a conclusion (GitHub: "Required if you provide completed_at
        # or a status of completed").
        raise _invalid('"conclusion" wasn\'t supplied.')
    output, annotations = _output(body)
    return RunChange(
        name=field_str(body, "name", required=creating),
        status=status,
        conclusion=conclusion,
        external_id=field_str(body, "external_id"),
        details_url=field_str(body, "details_url"),
        started_at=_moment(body, "started_at"),
        completed_at=completed_at,
        output=output,
        annotations=annotations,
        actions=_actions(body),
    )


# check runs


@ROUTES.post(REPO + "/check-runs")
async def create_check_run(request: web.Request) -> web.Response:
    """Create a check run on a commit (in the calling app's suite for that commit)."""
    access = repo_access(request)
    ctx, repo = context(request), access.repo
    app = writer_app(ctx, access)
    body = await read_body(request)
    head_sha = field_str(body, "head_sha", required=True) or ""
    change = parse_change(body, creating=True, completed=False)
    try:
        sha = await ctx.git.resolve(repo.owner.login, repo.name, head_sha)
    except GitError:
        sha = None
    if sha is None or sha != head_sha:
        raise GitHubError(422, f"No commit found for SHA: {head_sha}")
    run = await create_run(ctx, repo, app, sha, change=change, sender=sender_of(ctx, access))
    return json_response(check_run_json(ctx.urls, repo, run), status=201)


@ROUTES.get(RUN)
async def get_check_run(request: web.Request) -> web.Response:
    """Show one check run."""
    access = _reader(request)
    ctx = context(request)
    return json_response(check_run_json(ctx.urls, access.repo, _find_run(access.repo, request)))


@ROUTES.patch(RUN)
async def update_check_run(request: web.Request) -> web.Response:
    """Update a check run; only the app that created it may (annotations are appended)."""
    access = repo_access(request)
    ctx, repo = context(request), access.repo
    app = writer_app(ctx, access)
    run = _find_run(repo, request)
    if run.app is not app:
        raise GitHubError(403, OTHER_APP.format(app_id=app.id))
    body = await read_body(request)
    change = parse_change(body, creating=False, completed=run.status == "completed")
    update_run(ctx, repo, run, change, sender_of(ctx, access))
    return json_response(check_run_json(ctx.urls, repo, run))


@ROUTES.get(RUN + "/annotations")
async def list_annotations(request: web.Request) -> web.Response:
    """List a check run's annotations, oldest first."""
    access = _reader(request)
    ctx = context(request)
    run = _find_run(access.repo, request)
    return paged_json(
        request, run.annotations, lambda a: annotation_json(ctx.urls, access.repo, run, a)
    )


@ROUTES.post(RUN + "/rerequest")
async def rerequest_check_run(request: web.Request) -> web.Response:
    """Ask the owning app to run a check again (`check_run.rerequested`); answers 201."""
    access = repo_access(request)
    ctx, repo = context(request), access.repo
    app = writer_app(ctx, access)
    run = _find_run(repo, request)
    if run.app is not app:
        raise GitHubError(403, OTHER_APP.format(app_id=app.id))
    emit_run(ctx, "rerequested", repo, run, sender_of(ctx, access))
    return json_response({}, status=201)


async def _commit_sha(request: web.Request, access: RepoAccess) -> str:
    ctx, repo = context(request), access.repo
    try:
        return await ctx.git.resolve(repo.owner.login, repo.name, request.match_info["ref"])
    except GitError:
        raise GitHubError(422, f"No commit found for SHA: {request.match_info['ref']}") from None


@ROUTES.get(REPO + "/commits/{ref:.+}/check-runs")
async def list_for_ref(request: web.Request) -> web.Response:
    """List a commit's check runs (`check_name`, `status`, `app_id`, `filter` latest or all)."""
    access = _reader(request)
    ctx, repo, query = context(request), access.repo, request.query
    sha = await _commit_sha(request, access)
    runs = sorted(
        (r for r in repo.check_runs.values() if r.head_sha == sha),
        key=lambda r: r.id,
        reverse=True,
    )
    if query.get("filter", "latest") == "latest":
        seen: set[tuple[int, str]] = set()
        latest = []
        for run in runs:
            if (run.app.id, run.name) not in seen:
                seen.add((run.app.id, run.name))
                latest.append(run)
        runs = latest
    runs = [
        r
        for r in runs
        if query.get("check_name", r.name) == r.name
        and query.get("status", r.status) == r.status
        and query.get("app_id", str(r.app.id)) == str(r.app.id)
    ]
    page, headers = paginate(request, runs)
    rendered = [check_run_json(ctx.urls, repo, r) for r in page]
    return json_response({"total_count": len(runs), "check_runs": rendered}, headers=headers)


# check suites


@ROUTES.get(REPO + "/commits/{ref:.+}/check-suites")
async def list_suites_for_ref(request: web.Request) -> web.Response:
    """List a commit's check suites, one per app."""
    access = _reader(request)
    ctx, repo = context(request), access.repo
    sha = await _commit_sha(request, access)
    suites = [s for s in repo.check_suites.values() if s.head_sha == sha]
    app_id = request.query.get("app_id")
    suites = [s for s in suites if app_id is None or str(s.app.id) == app_id]
    page, headers = paginate(request, suites)
    rendered = [suite_json(ctx.urls, repo, s) for s in page]
    return json_response({"total_count": len(suites), "check_suites": rendered}, headers=headers)


@ROUTES.get(REPO + "/check-suites/{check_suite_id:[0-9]+}")
async def get_suite(request: web.Request) -> web.Response:
    """Show one check suite."""
    access = _reader(request)
    ctx = context(request)
    suite = access.repo.check_suites.get(int(request.match_info["check_suite_id"]))
    if suite is None:
        raise not_found()
    return json_response(suite_json(ctx.urls, access.repo, suite))
