"""A run on a pull request (review, or any workflow asked for on one): no branch of its own.

docs/workflows-as-code.md, "Pull-request subject". The check run `coder/<workflow>` goes on the
pull request's head with `external_id` = run id, and its `output.text` carries the snapshot
(`app.briefing.render_run_request`), since there is no claim commit to hold it. The lock is that
check run: look first, then create; when two replicas race and both create one, the younger
retires itself as a duplicate of the older.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app import checks
from app.briefing import render_run_request
from app.develop import FailedRun, RunPlan, failed_run, latest
from app.github import create_once
from app.once import CHECK_RUNS_URL, add_running_label, update_check_run, where
from app.reconcile import check_runs_on
from app.runs import dispatch, queued

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gidgethub.abc import GitHubAPI

    from app.develop import PullHead

log = logging.getLogger(__name__)


async def start_pull_run(
    gh: GitHubAPI,
    plan: RunPlan,
    *,
    pull: PullHead,
    bot_login: str,
    escalate: Callable[[FailedRun], RunPlan],
) -> None:
    """Queue the run's check run on the pull request's head once, label it, dispatch."""
    runs = await check_runs_on(gh, plan.repo, pull.sha, plan.workflow)
    if any(run.get("external_id") == plan.run_id for run in runs):
        log.info("run %s already exists on %s", plan.run_id, pull.sha)
        return
    last = latest(runs)
    failed = failed_run(last) if last is not None else None
    if failed is not None:
        plan = escalate(failed)
    text = "\n\n".join(filter(None, (render_run_request(plan.snapshot), plan.config_record)))
    body = checks.queued_check_run(queued(plan, pull.html_url), pull.sha, text=text)
    check_run = await _create(gh, plan, body, pull.sha)
    winner = await _winner(gh, plan, pull.sha)
    if winner is not None and int(winner["id"]) != int(check_run["id"]):
        log.info("run %s: check run %s duplicates %s", plan.run_id, check_run["id"], winner["id"])
        await update_check_run(
            gh, plan.repo, check_run["id"], checks.duplicate_update(winner["id"])
        )
        return
    await add_running_label(gh, plan.repo, plan.issue_number)
    await dispatch(
        gh,
        plan,
        pull_number=plan.issue_number,
        pull_url=pull.html_url,
        check_run_id=int(check_run["id"]),
        bot_login=bot_login,
    )


async def _create(
    gh: GitHubAPI, plan: RunPlan, body: Mapping[str, Any], head_sha: str
) -> Mapping[str, Any]:
    async def find() -> Mapping[str, Any] | None:
        return await _winner(gh, plan, head_sha)

    return await create_once(
        gh, create=lambda: gh.post(CHECK_RUNS_URL, where(plan.repo), data=dict(body)), find=find
    )


async def _winner(gh: GitHubAPI, plan: RunPlan, head_sha: str) -> Mapping[str, Any] | None:
    """Return the oldest check run of this run on the head: the one that holds the run."""
    runs = await check_runs_on(gh, plan.repo, head_sha, plan.workflow)
    ours = [run for run in runs if run.get("external_id") == plan.run_id]
    return min(ours, key=lambda run: int(run["id"]), default=None)
