"""Workflow runs and jobs: status transitions, their JSON, and `workflow_run`/`workflow_job` events.

Every transition is announced as GitHub does: `workflow_run` requested, in_progress, completed;
`workflow_job` queued, in_progress, completed. Each job also has a check run owned by the GitHub
Actions app (its id is the job's id, as on GitHub), in that app's suite for the head commit:
https://docs.github.com/webhooks/webhook-events-and-payloads#workflow_run
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from devhub import checks
from devhub.pulls import pull_brief_json, pulls_for_sha
from devhub.rest_json import JSON, Urls, repo_json, user_json
from devhub.state import iso, node_id, utcnow
from devhub.state_actions import Job, Step, WorkflowRun

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.state import Repo

# The worst conclusion wins when a run sums up its jobs.
CONCLUSION_ORDER = ("failure", "cancelled", "timed_out", "action_required", "neutral", "success")
RUNNER_NAME = "devhub"


class RunEvents:
    """Wakes `wait_for` callers whenever a run or job changes."""

    def __init__(self) -> None:
        self.changed = asyncio.Condition()

    async def notify(self) -> None:
        """Wake every waiter."""
        async with self.changed:
            self.changed.notify_all()


def run_conclusion(run: WorkflowRun) -> str:
    """Sum up the jobs' conclusions: the worst one, or `skipped` when nothing ran."""
    found = {job.conclusion for job in run.jobs}
    for conclusion in CONCLUSION_ORDER:
        if conclusion in found:
            return conclusion
    return "skipped"


# rendering


def workflow_run_json(urls: Urls, run: WorkflowRun, *, webhook: bool = False) -> JSON:
    """Render a `workflow-run`."""
    repo = run.repo
    api = f"{urls.api}/repos/{repo.full_name}/actions/runs/{run.id}"
    suite_id = run.check_suite_id or 0
    rendered_repo = repo_json(urls, repo)
    body: JSON = {
        "id": run.id,
        "name": run.workflow_name,
        "node_id": node_id("WFR", run.id),
        "check_suite_id": suite_id,
        "check_suite_node_id": node_id("CS", suite_id),
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.workflow_path,
        "display_title": run.display_title,
        "run_number": run.run_number,
        "event": run.event,
        "status": run.status,
        "conclusion": run.conclusion,
        "workflow_id": run.workflow_id,
        "url": api,
        "html_url": f"{urls.web}/{repo.full_name}/actions/runs/{run.id}",
        "pull_requests": [
            pull_brief_json(urls, repo, p) for p in pulls_for_sha(repo, run.head_sha)
        ],
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "actor": user_json(urls, run.actor),
        "triggering_actor": user_json(urls, run.actor),
        "run_attempt": run.run_attempt,
        "referenced_workflows": [],
        "run_started_at": iso(run.run_started_at or run.created_at),
        "jobs_url": f"{api}/jobs",
        "logs_url": f"{api}/logs",
        "check_suite_url": f"{urls.api}/repos/{repo.full_name}/check-suites/{suite_id}",
        "artifacts_url": f"{api}/artifacts",
        "cancel_url": f"{api}/cancel",
        "rerun_url": f"{api}/rerun",
        "previous_attempt_url": None,
        "workflow_url": f"{urls.api}/repos/{repo.full_name}/actions/workflows/{run.workflow_id}",
        "head_commit": run.head_commit,
        "repository": rendered_repo,
        "head_repository": repo_json(urls, run.head_repo) if run.head_repo else rendered_repo,
    }
    if webhook:
        body.pop("referenced_workflows")
    return body


def job_json(urls: Urls, job: Job) -> JSON:
    """Render a `job`."""
    run = job.run
    repo = run.repo
    api = f"{urls.api}/repos/{repo.full_name}/actions"
    return {
        "id": job.id,
        "run_id": run.id,
        "run_url": f"{api}/runs/{run.id}",
        "run_attempt": run.run_attempt,
        "node_id": node_id("CR", job.id),
        "head_sha": run.head_sha,
        "url": f"{api}/jobs/{job.id}",
        "html_url": f"{urls.web}/{repo.full_name}/actions/runs/{run.id}/job/{job.id}",
        "status": job.status,
        "conclusion": job.conclusion,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at or job.created_at),
        "completed_at": iso(job.completed_at),
        "name": job.name,
        "steps": [_step_json(step) for step in job.steps],
        "check_run_url": f"{urls.api}/repos/{repo.full_name}/check-runs/{job.id}",
        "labels": list(job.labels),
        "runner_id": 1 if job.runner_name else None,
        "runner_name": job.runner_name,
        "runner_group_id": 1 if job.runner_name else None,
        "runner_group_name": "Default" if job.runner_name else None,
        "workflow_name": run.workflow_name,
        "head_branch": run.head_branch,
    }


def _step_json(step: Step) -> JSON:
    return {
        "name": step.name,
        "status": step.status,
        "conclusion": step.conclusion,
        "number": step.number,
        "started_at": iso(step.started_at),
        "completed_at": iso(step.completed_at),
    }


# events


def emit_run(ctx: Context, action: str, run: WorkflowRun, workflow: JSON) -> None:
    """Emit `workflow_run.<action>`."""
    body = {"workflow": workflow, "workflow_run": workflow_run_json(ctx.urls, run, webhook=True)}
    ctx.webhooks.emit("workflow_run", body, action=action, sender=run.actor, repo=run.repo)


def emit_job(ctx: Context, action: str, job: Job) -> None:
    """Emit `workflow_job.<action>`."""
    body = {"workflow_job": job_json(ctx.urls, job)}
    ctx.webhooks.emit("workflow_job", body, action=action, sender=job.run.actor, repo=job.run.repo)


# transitions


def next_run_number(repo: Repo, workflow_id: int) -> int:
    """Return the next `run_number` of a workflow (GitHub counts per workflow)."""
    return 1 + sum(1 for r in repo.workflow_runs.values() if r.workflow_id == workflow_id)


async def open_run(ctx: Context, run: WorkflowRun, jobs: list[tuple[str, str, list[str]]]) -> None:
    """Record a new run with its queued jobs and announce it (`requested`, then `queued`)."""
    assert ctx.actions_app is not None
    repo = run.repo
    commit = await ctx.git.get_commit(repo.owner.login, repo.name, run.head_sha)
    # Every workflow run has a check suite of its own, not one per app and commit.
    suite = await checks.new_suite(ctx, repo, ctx.actions_app, run.head_sha)
    run.check_suite_id = suite.id
    run.head_commit = {
        "id": commit.sha,
        "tree_id": commit.tree,
        "message": commit.message,
        "timestamp": commit.committer.date,
        "author": {"name": commit.author.name, "email": commit.author.email},
        "committer": {"name": commit.committer.name, "email": commit.committer.email},
    }
    repo.workflow_runs[run.id] = run
    emit_run(ctx, "requested", run, workflow_brief(ctx, run))
    for key, name, labels in jobs:
        job = Job(
            id=ctx.state.next_id(), run=run, key=key, name=name, labels=labels, created_at=utcnow()
        )
        # The job's check run links to the job page; its external id is a uuid, as GitHub's are.
        html_url = job_json(ctx.urls, job)["html_url"]
        change = checks.RunChange(
            name=name, status="queued", details_url=html_url, external_id=str(uuid.uuid4())
        )
        job.check_run = await checks.create_run(
            ctx,
            repo,
            ctx.actions_app,
            run.head_sha,
            change=change,
            sender=run.actor,
            run_id=job.id,
            suite=suite,
        )
        run.jobs.append(job)
        emit_job(ctx, "queued", job)


def workflow_brief(ctx: Context, run: WorkflowRun) -> JSON:
    """Render the `workflow` object of `workflow_run` events."""
    repo = run.repo
    return {
        "id": run.workflow_id,
        "node_id": node_id("W", run.workflow_id),
        "name": run.workflow_name,
        "path": run.workflow_path,
        "state": "active",
        "created_at": iso(repo.created_at),
        "updated_at": iso(repo.created_at),
        "url": f"{ctx.urls.api}/repos/{repo.full_name}/actions/workflows/{run.workflow_id}",
        "html_url": f"{ctx.urls.web}/{repo.full_name}/blob/{run.head_branch}/{run.workflow_path}",
        "badge_url": f"{ctx.urls.web}/{repo.full_name}/workflows/{run.workflow_name}/badge.svg",
    }


def start_run(ctx: Context, run: WorkflowRun) -> None:
    """Move a run to `in_progress` (once)."""
    if run.status == "in_progress":
        return
    run.status, run.run_started_at, run.updated_at = "in_progress", utcnow(), utcnow()
    emit_run(ctx, "in_progress", run, workflow_brief(ctx, run))


def start_job(ctx: Context, job: Job) -> None:
    """Move a job to `in_progress` on devhub's runner."""
    now = utcnow()
    job.status, job.started_at, job.runner_name = "in_progress", now, RUNNER_NAME
    if job.check_run is not None:
        change = checks.RunChange(status="in_progress", started_at=now)
        checks.update_run(ctx, job.run.repo, job.check_run, change, job.run.actor)
    emit_job(ctx, "in_progress", job)


def finish_job(ctx: Context, job: Job, conclusion: str, *, text: str | None = None) -> None:
    """Complete a job (and its check run, with `text` as its output text) with a conclusion."""
    now = utcnow()
    job.status, job.conclusion, job.completed_at = "completed", conclusion, now
    for step in job.steps:
        if step.status != "completed":
            step.status, step.completed_at = "completed", now
            step.conclusion = step.conclusion or (
                "skipped" if step.started_at is None else conclusion
            )
    if job.check_run is not None:
        title = f"{job.name} {conclusion}"
        change = checks.RunChange(
            conclusion=conclusion,
            completed_at=now,
            output={"title": title, "summary": job.summary or title, "text": text},
            annotations=cancel_annotations(job.run, conclusion),
        )
        checks.update_run(ctx, job.run.repo, job.check_run, change, job.run.actor)
    emit_job(ctx, "completed", job)


def cancel_annotations(run: WorkflowRun, conclusion: str) -> list[dict[str, Any]]:
    """Return the annotation GitHub puts on a job a person cancelled, naming who did."""
    if conclusion != "cancelled" or run.cancelled_by is None:
        return []
    # GitHub's own words, on the job's check run (shown as the run's annotation).
    message = f"The run was canceled by @{run.cancelled_by}."
    where = {"path": ".github", "start_line": 1, "end_line": 1}
    return [{**where, "annotation_level": "failure", "message": message}]


def finish_run(ctx: Context, run: WorkflowRun, conclusion: str | None = None) -> None:
    """Complete a run: its conclusion is the worst of its jobs' unless given."""
    run.status, run.updated_at = "completed", utcnow()
    run.conclusion = conclusion or run_conclusion(run)
    emit_run(ctx, "completed", run, workflow_brief(ctx, run))
