"""Check runs and suites: creating and changing them, their JSON, and their webhooks.

One suite per app and head commit holds that app's runs. `check_run.created`/`completed` and
`check_suite.completed` go to every subscribed app; `rerequested` and `requested_action` only to
the app that owns the run:
https://docs.github.com/webhooks/webhook-events-and-payloads#check_run
The REST routes (and GitHub's validation) live in `rest_checks.py`; the local runner uses
`create_run`/`update_run` for the check runs of workflow jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devhub.git import GitError
from devhub.pulls import pull_brief_json, pulls_for_sha
from devhub.rest_json import JSON, Urls, app_json, person_json, repo_json
from devhub.state import iso, node_id, utcnow
from devhub.state_checks import CheckRun, CheckSuite

if TYPE_CHECKING:
    from datetime import datetime

    from devhub.http import Context
    from devhub.state import Account, App, Repo


@dataclass
class RunChange:
    """What a create or update request sets on a check run (None: leave as it is)."""

    name: str | None = None
    status: str | None = None
    conclusion: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: dict[str, str | None] | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, str]] | None = None


async def suite_for(ctx: Context, repo: Repo, app: App, head_sha: str) -> CheckSuite:
    """Return the app's suite for a commit, creating it (GitHub makes one per app and commit)."""
    for suite in repo.check_suites.values():
        if suite.app is app and suite.head_sha == head_sha:
            return suite
    return await new_suite(ctx, repo, app, head_sha)


async def new_suite(ctx: Context, repo: Repo, app: App, head_sha: str) -> CheckSuite:
    """Create a suite of the app on a commit (GitHub Actions makes one per workflow run)."""
    owner, name = repo.owner.login, repo.name
    commit = await ctx.git.get_commit(owner, name, head_sha)
    try:
        heads = await ctx.git.list_refs(owner, name, "refs/heads/")
    except GitError:
        heads = {}
    branch = next(
        (ref.removeprefix("refs/heads/") for ref, sha in heads.items() if sha == head_sha), None
    )
    now = utcnow()
    suite = CheckSuite(
        id=ctx.state.next_id(),
        app=app,
        head_sha=head_sha,
        head_branch=branch,
        created_at=now,
        updated_at=now,
        head_commit={
            "id": commit.sha,
            "tree_id": commit.tree,
            "message": commit.message,
            "timestamp": commit.committer.date,
            "author": person_json(commit.author),
            "committer": person_json(commit.committer),
        },
    )
    repo.check_suites[suite.id] = suite
    return suite


def _apply(run: CheckRun, change: RunChange) -> None:
    if change.name is not None:
        run.name = change.name
    if change.external_id is not None:
        run.external_id = change.external_id
    if change.details_url is not None:
        run.details_url = change.details_url
    if change.output is not None:
        run.output = dict(change.output)
    run.annotations.extend(change.annotations)
    if change.actions is not None:
        run.actions = list(change.actions)
    if change.started_at is not None:
        run.started_at = change.started_at
    if change.conclusion is not None:
        # A conclusion completes the run, whatever `status` says (GitHub's rule).
        run.status, run.conclusion = "completed", change.conclusion
        run.completed_at = change.completed_at or run.completed_at or utcnow()
    elif change.status is not None:
        run.status = change.status
    if run.status == "in_progress" and run.started_at is None:
        run.started_at = utcnow()


async def create_run(
    ctx: Context,
    repo: Repo,
    app: App,
    head_sha: str,
    *,
    change: RunChange,
    sender: Account,
    run_id: int | None = None,
    suite: CheckSuite | None = None,
) -> CheckRun:
    """Create a check run in the app's suite and emit `check_run.created` (and `completed`).

    `run_id` lets a workflow job and its check run share one id, as on GitHub; `suite` puts it
    in a given suite (a workflow run's) instead of the app's suite for the commit.
    """
    if suite is None:
        suite = await suite_for(ctx, repo, app, head_sha)
    run = CheckRun(
        id=run_id if run_id is not None else ctx.state.next_id(),
        suite=suite,
        name=change.name or "",
        status="queued",
        conclusion=None,
        external_id="",
        details_url=None,
        started_at=utcnow(),
        completed_at=None,
    )
    _apply(run, change)
    suite.runs.append(run)
    suite.completed_announced = False
    suite.updated_at = utcnow()
    repo.check_runs[run.id] = run
    emit_run(ctx, "created", repo, run, sender)
    _after_change(ctx, repo, run, sender, was_completed=False)
    return run


def update_run(ctx: Context, repo: Repo, run: CheckRun, change: RunChange, sender: Account) -> None:
    """Change a check run; emit `check_run.completed` when it completes."""
    was_completed = run.status == "completed"
    _apply(run, change)
    run.suite.updated_at = utcnow()
    _after_change(ctx, repo, run, sender, was_completed=was_completed)


def _after_change(
    ctx: Context, repo: Repo, run: CheckRun, sender: Account, *, was_completed: bool
) -> None:
    if run.status != "completed" or was_completed:
        return
    emit_run(ctx, "completed", repo, run, sender)
    suite = run.suite
    if suite.status == "completed" and not suite.completed_announced:
        suite.completed_announced = True
        body = {"check_suite": suite_json(ctx.urls, repo, suite, webhook=True)}
        ctx.webhooks.emit("check_suite", body, action="completed", sender=sender, repo=repo)


def emit_run(
    ctx: Context, action: str, repo: Repo, run: CheckRun, sender: Account, **extra: Any
) -> None:
    """Emit a `check_run` webhook; `rerequested`/`requested_action` only reach the owner app."""
    if action in {"rerequested", "requested_action"} and run.app is not ctx.app:
        return
    body = {"check_run": check_run_json(ctx.urls, repo, run, webhook=True)} | extra
    ctx.webhooks.emit("check_run", body, action=action, sender=sender, repo=repo)


# rendering


def _app_json(urls: Urls, app: App, *, webhook: bool) -> JSON:
    del webhook  # check run and suite payloads carry the full `integration`
    return app_json(urls, app)


def check_run_json(urls: Urls, repo: Repo, run: CheckRun, *, webhook: bool = False) -> JSON:
    """Render a `check-run` (REST) or `check-run-with-simple-check-suite` (webhooks)."""
    api = f"{urls.api}/repos/{repo.full_name}/check-runs/{run.id}"
    suite: JSON = {"id": run.suite.id}
    if webhook:
        suite = suite_json(urls, repo, run.suite, webhook=True)
    return {
        "id": run.id,
        "head_sha": run.head_sha,
        "node_id": node_id("CR", run.id),
        "external_id": run.external_id,
        "url": api,
        "html_url": f"{urls.web}/{repo.full_name}/runs/{run.id}",
        "details_url": run.details_url or run.app.external_url,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "output": {
            "title": run.output.get("title"),
            "summary": run.output.get("summary"),
            "text": run.output.get("text"),
            "annotations_count": len(run.annotations),
            "annotations_url": f"{api}/annotations",
        },
        "name": run.name,
        "check_suite": suite,
        "app": _app_json(urls, run.app, webhook=webhook),
        "pull_requests": [
            pull_brief_json(urls, repo, p) for p in pulls_for_sha(repo, run.head_sha)
        ],
    }


def suite_json(urls: Urls, repo: Repo, suite: CheckSuite, *, webhook: bool = False) -> JSON:
    """Render a `check-suite`."""
    api = f"{urls.api}/repos/{repo.full_name}"
    body: JSON = {
        "id": suite.id,
        "node_id": node_id("CS", suite.id),
        "head_branch": suite.head_branch,
        "head_sha": suite.head_sha,
        "status": suite.status,
        "conclusion": suite.conclusion,
        "url": f"{api}/check-suites/{suite.id}",
        "before": None,
        "after": suite.head_sha,
        "pull_requests": [
            pull_brief_json(urls, repo, p) for p in pulls_for_sha(repo, suite.head_sha)
        ],
        "app": _app_json(urls, suite.app, webhook=webhook),
        "created_at": iso(suite.created_at),
        "updated_at": iso(suite.updated_at),
        "rerequestable": True,
        "runs_rerequestable": True,
        "latest_check_runs_count": len(suite.runs),
        "check_runs_url": f"{api}/check-suites/{suite.id}/check-runs",
        "head_commit": suite.head_commit,
    }
    if not webhook:
        body["repository"] = repo_json(urls, repo)
    return body


def annotation_json(urls: Urls, repo: Repo, run: CheckRun, annotation: dict[str, Any]) -> JSON:
    """Render a `check-annotation`."""
    blob = f"{urls.web}/{repo.full_name}/blob/{run.head_sha}/{annotation['path']}"
    return {
        "path": annotation["path"],
        "start_line": annotation["start_line"],
        "end_line": annotation["end_line"],
        "start_column": annotation.get("start_column"),
        "end_column": annotation.get("end_column"),
        "annotation_level": annotation["annotation_level"],
        "title": annotation.get("title"),
        "message": annotation["message"],
        "raw_details": annotation.get("raw_details"),
        "blob_href": blob,
    }
