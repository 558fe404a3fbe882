"""Reconcile: close runs whose job ended without reporting, from webhooks and a periodic pass.

A run's record is its `coder/<workflow>` check run (`external_id` = run id), on a
`coder/<issue>-*` branch of an issue labelled `coder:running`, or on the head of a pull request
labelled `coder:running` (pull-request runs such as review); its job is the workflow run named
`coder run <id>`.
When the job is over and the check run is still open, the job died (killed runner, cancelled,
timed out): the check run is completed with what happened and a link to the job, and the label
comes off. The periodic pass catches whatever events were missed, through the ETag cache, so an
idle pass costs about one request per installation.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gidgethub
from gidgethub.routing import Router

from app import checks, labels
from app.briefing import RunBranch
from app.events import Model, Repository

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

    from app.github import GitHubAccess

log = logging.getLogger(__name__)

router = Router()

# `run-name: coder run ${{ inputs.run_id }}` in the workflow; run ids are 12 base32 characters.
RUN_TITLE = re.compile(r"^coder run (?P<run_id>[a-z2-7]{12})$")
# A job that succeeded completed its own check run. A skipped job may be another workflow's
# normal business; if coder's was skipped, its workflow run ends `skipped` and says so.
QUIET_JOB_CONCLUSIONS = frozenset({"success", "skipped"})
QUIET_RUN_CONCLUSIONS = frozenset({"success"})
# How long a queued check run may wait for its workflow run to appear before the dispatch is
# taken to be lost. Runs appear within seconds of a dispatch; queueing for a runner happens
# inside the workflow run, so a long queue does not count against this.
STALE_DISPATCH_SECONDS = 15 * 60

MATCHING_REFS_URL = "/repos/{owner}/{repo}/git/matching-refs/{+ref}"
COMMIT_CHECK_RUNS_URL = (
    "/repos/{owner}/{repo}/commits/{sha}/check-runs{?check_name,filter,per_page}"
)
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
ISSUE_LABEL_URL = "/repos/{owner}/{repo}/issues/{number}/labels/{name}"
RUNNING_ISSUES_URL = "/repos/{owner}/{repo}/issues{?labels,state,per_page}"
PULL_URL = "/repos/{owner}/{repo}/pulls/{number}"
WORKFLOW_RUNS_URL = "/repos/{owner}/{repo}/actions/runs{?event,per_page}"
INSTALLATIONS_URL = "/app/installations{?per_page}"
SEARCH_ISSUES_URL = "/search/issues{?q,per_page}"
SEARCH_KINDS = ("is:issue", "is:pr")
REPO_URL = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)$")


class _Job(Model):
    run_url: str
    html_url: str | None = None
    name: str = ""
    conclusion: str | None = None


class WorkflowJobCompleted(Model):
    """`workflow_job.completed`: one job of a workflow run ended."""

    workflow_job: _Job
    repository: Repository


class _WorkflowRun(Model):
    display_title: str = ""
    html_url: str | None = None
    conclusion: str | None = None


class WorkflowRunCompleted(Model):
    """`workflow_run.completed`: a whole workflow run ended."""

    workflow_run: _WorkflowRun
    repository: Repository


@dataclass(frozen=True)
class Ending:
    """How a run's job ended, for the check run that must say so."""

    job_conclusion: str | None
    what_happened: str
    link: str | None


@dataclass
class PassReport:
    """What one periodic pass looked at and did."""

    issues: int = 0
    closed: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)


def run_id_from_title(title: str | None) -> str | None:
    """Return the run id in a workflow run's title `coder run <id>`, or None if not coder's."""
    match = RUN_TITLE.match(title or "")
    return match["run_id"] if match else None


def job_ending(job_name: str, conclusion: str | None, link: str | None) -> Ending:
    """Describe a job that ended before coder-agent completed the check run."""
    return _ended(f"The job `{job_name or 'coder agent'}`", conclusion, link)


def workflow_run_ending(conclusion: str | None, link: str | None) -> Ending:
    """Describe a workflow run that ended before coder-agent completed the check run."""
    return _ended("The workflow run", conclusion, link)


def _ended(subject: str, conclusion: str | None, link: str | None) -> Ending:
    what = f"{subject} ended `{conclusion or 'without a result'}`"
    return Ending(conclusion, f"{what} before coder-agent completed this check run.", link)


def stale_ending(
    check_run: Mapping[str, Any], workflow_run: Mapping[str, Any] | None, now: datetime
) -> Ending | None:
    """Decide whether an open check run is stale, from its workflow run (or none) and now."""
    if workflow_run is not None:
        if workflow_run.get("status") != "completed":
            return None
        return workflow_run_ending(workflow_run.get("conclusion"), workflow_run.get("html_url"))
    started = check_run.get("started_at")
    if not isinstance(started, str):
        return None
    waited = (now - datetime.fromisoformat(started)).total_seconds()
    if waited <= STALE_DISPATCH_SECONDS:
        return None
    minutes = STALE_DISPATCH_SECONDS // 60
    what = f"No workflow run started within {minutes} minutes of the dispatch."
    return Ending(None, what, None)


def repo_of_issue(issue: Mapping[str, Any]) -> str | None:
    """Return `owner/name` of a search result from its `repository_url`."""
    match = REPO_URL.search(str(issue.get("repository_url", "")))
    return match["repo"] if match else None


@router.register("workflow_job", action="completed")
async def close_after_job(event: Event, gh: GitHubAPI) -> None:
    """Close the run of a coder job that ended without reporting."""
    completed = WorkflowJobCompleted.from_payload(event.data)
    job = completed.workflow_job
    if job.conclusion in QUIET_JOB_CONCLUSIONS:
        return
    # A job does not carry its run's title; the run does.
    workflow_run = await gh.getitem(job.run_url)
    run_id = run_id_from_title(workflow_run.get("display_title"))
    if run_id is None:
        return
    ending = job_ending(job.name, job.conclusion, job.html_url)
    await close_run(gh, completed.repository.full_name, run_id, ending)


@router.register("workflow_run", action="completed")
async def close_after_workflow_run(event: Event, gh: GitHubAPI) -> None:
    """Close the run of a coder workflow run that ended without reporting."""
    completed = WorkflowRunCompleted.from_payload(event.data)
    workflow_run = completed.workflow_run
    run_id = run_id_from_title(workflow_run.display_title)
    if run_id is None or workflow_run.conclusion in QUIET_RUN_CONCLUSIONS:
        return
    ending = workflow_run_ending(workflow_run.conclusion, workflow_run.html_url)
    await close_run(gh, completed.repository.full_name, run_id, ending)


async def close_run(gh: GitHubAPI, repo: str, run_id: str, ending: Ending) -> bool:
    """Complete run `run_id`'s check run if it is still open; return whether it was."""
    owner, name = repo.split("/", 1)
    issues = await gh.getitem(
        RUNNING_ISSUES_URL,
        {"owner": owner, "repo": name, "labels": labels.RUNNING, "state": "all", "per_page": 100},
    )
    for issue in issues:
        number = int(issue["number"])
        open_runs = await open_check_runs(gh, repo, number, is_pull=_is_pull(issue))
        mine = [run for run in open_runs if run.get("external_id") == run_id]
        if not mine:
            continue
        for check_run in mine:
            await complete_check_run(gh, repo, check_run, ending)
        if len(mine) == len(open_runs):
            await remove_running_label(gh, repo, number)
        return True
    return False


async def open_check_runs(
    gh: GitHubAPI, repo: str, number: int, *, is_pull: bool = False
) -> list[Mapping[str, Any]]:
    """Return the not-completed coder check runs of an issue's branches, or a pull's head."""
    if is_pull:
        owner, name = repo.split("/", 1)
        pull = await gh.getitem(PULL_URL, {"owner": owner, "repo": name, "number": str(number)})
        heads = [str(pull["head"]["sha"])]
    else:
        heads = [branch.head_sha for branch in await run_branches(gh, repo, f"coder/{number}-")]
    found = []
    for sha in heads:
        runs = await check_runs_on(gh, repo, sha)
        found += [run for run in runs if run.get("status") != "completed"]
    return found


def _is_pull(issue: Mapping[str, Any]) -> bool:
    # The issues API lists pull requests too, marked by a `pull_request` key.
    return issue.get("pull_request") is not None


async def complete_check_run(
    gh: GitHubAPI, repo: str, check_run: Mapping[str, Any], ending: Ending
) -> None:
    """Complete a check run with how its job ended."""
    owner, name = repo.split("/", 1)
    update = checks.reconciled_update(
        job_conclusion=ending.job_conclusion, what_happened=ending.what_happened, link=ending.link
    )
    where = {"owner": owner, "repo": name, "check_run_id": str(check_run["id"])}
    await gh.patch(CHECK_RUN_URL, where, data=update)
    log.info(
        "run %s in %s closed as %s: %s",
        check_run.get("external_id"),
        repo,
        update["conclusion"],
        ending.what_happened,
    )


async def reconcile_once(access: GitHubAccess, *, now: datetime | None = None) -> PassReport:
    """Run one pass over every installation: close stale runs, drop stale labels."""
    report = PassReport()
    moment = now or datetime.fromtimestamp(access.clock(), tz=UTC)
    app = access.app_client()
    async for installation in app.getiter(INSTALLATIONS_URL, {"per_page": 100}):
        gh = access.for_installation(int(installation["id"]))
        account = installation.get("account") or {}
        scope = "org" if account.get("type") == "Organization" else "user"
        try:
            await reconcile_installation(gh, f"{scope}:{account.get('login')}", moment, report)
        except Exception:
            # One installation's trouble must not stop the others; the next pass tries again.
            log.exception("reconcile: installation %s failed", installation["id"])
    return report


async def reconcile_installation(
    gh: GitHubAPI, scope: str, now: datetime, report: PassReport
) -> None:
    """Reconcile every issue or pull request labelled `coder:running` in one account."""
    workflow_runs: dict[str, dict[str, Mapping[str, Any]]] = {}
    found = []
    # GitHub's issue search wants `is:issue` or `is:pr`, never both in one query
    # (422 otherwise); pull requests carry the label while a review-like run works on them.
    for kind in SEARCH_KINDS:
        query = f'label:"{labels.RUNNING}" {kind} {scope}'
        # Read every page before changing labels, which would shift the pages under us.
        pages = gh.getiter(SEARCH_ISSUES_URL, {"q": query, "per_page": 100})
        found += [issue async for issue in pages]
    for issue in found:
        repo = repo_of_issue(issue)
        if repo is None:
            continue
        report.issues += 1
        number = int(issue["number"])
        open_runs = await open_check_runs(gh, repo, number, is_pull=_is_pull(issue))
        still_open = 0
        for check_run in open_runs:
            if repo not in workflow_runs:
                workflow_runs[repo] = await coder_workflow_runs(gh, repo)
            workflow_run = workflow_runs[repo].get(str(check_run.get("external_id")))
            ending = stale_ending(check_run, workflow_run, now)
            if ending is None:
                still_open += 1
                continue
            if workflow_run is not None:
                ending = await _with_job_link(gh, workflow_run, ending)
            await complete_check_run(gh, repo, check_run, ending)
            report.closed.append(str(check_run.get("external_id")))
        if still_open == 0:
            await remove_running_label(gh, repo, number)
            report.unlabelled.append(f"{repo}#{number}")


async def _with_job_link(gh: GitHubAPI, workflow_run: Mapping[str, Any], ending: Ending) -> Ending:
    """Point the ending at the job that failed rather than the whole workflow run."""
    jobs_url = workflow_run.get("jobs_url")
    if not isinstance(jobs_url, str):
        return ending
    answer = await gh.getitem(jobs_url)
    jobs = [job for job in answer.get("jobs", []) if job.get("conclusion") != "success"]
    if not jobs:
        return ending
    job = jobs[0]
    return job_ending(str(job.get("name", "")), job.get("conclusion"), job.get("html_url"))


async def coder_workflow_runs(gh: GitHubAPI, repo: str) -> dict[str, Mapping[str, Any]]:
    """Return the repository's recent dispatched workflow runs by coder run id (ETag-cached)."""
    owner, name = repo.split("/", 1)
    answer = await gh.getitem(
        WORKFLOW_RUNS_URL,
        {"owner": owner, "repo": name, "event": "workflow_dispatch", "per_page": 100},
    )
    runs: dict[str, Mapping[str, Any]] = {}
    for workflow_run in answer.get("workflow_runs", []):
        run_id = run_id_from_title(workflow_run.get("display_title"))
        # Newest first: keep the latest attempt of each run.
        if run_id is not None and run_id not in runs:
            runs[run_id] = workflow_run
    return runs


async def reconcile_forever(
    access: GitHubAccess,
    interval: float,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run a pass every `interval` seconds until cancelled; a failed pass is logged."""
    while True:
        await sleep(interval)
        try:
            report = await reconcile_once(access)
        except Exception:
            # The loop outlives any one pass, like the webhook worker outlives a handler.
            log.exception("reconcile pass failed")
            continue
        if report.closed or report.unlabelled:
            log.info(
                "reconcile: %d running issue(s), closed %s, unlabelled %s",
                report.issues,
                report.closed,
                report.unlabelled,
            )


async def run_branches(gh: GitHubAPI, repo: str, prefix: str) -> list[RunBranch]:
    """List the branches whose names start with `prefix` (ETag-cached)."""
    owner, name = repo.split("/", 1)
    refs = await gh.getitem(
        MATCHING_REFS_URL, {"owner": owner, "repo": name, "ref": f"heads/{prefix}"}
    )
    return [
        RunBranch(str(ref["ref"]).removeprefix("refs/heads/"), str(ref["object"]["sha"]))
        for ref in refs
    ]


async def check_runs_on(
    gh: GitHubAPI, repo: str, sha: str, workflow: str | None = None
) -> list[Mapping[str, Any]]:
    """List a commit's check runs of one workflow, or of every coder workflow (ETag-cached)."""
    owner, name = repo.split("/", 1)
    query: dict[str, str | int] = {
        "owner": owner,
        "repo": name,
        "sha": sha,
        # The default, `latest`, hides all but the newest run of each name.
        "filter": "all",
        "per_page": 100,
    }
    if workflow is not None:
        query["check_name"] = checks.check_name(workflow)
    answer = await gh.getitem(COMMIT_CHECK_RUNS_URL, query)
    return [
        run
        for run in answer.get("check_runs", [])
        if str(run.get("name", "")).startswith(checks.CHECK_PREFIX)
    ]


async def remove_running_label(gh: GitHubAPI, repo: str, number: int) -> None:
    """Take `coder:running` off an issue (already gone is fine)."""
    owner, name = repo.split("/", 1)
    where = {"owner": owner, "repo": name, "number": str(number), "name": labels.RUNNING}
    try:
        await gh.delete(ISSUE_LABEL_URL, where)
    except gidgethub.BadRequest as error:
        if error.status_code != 404:
            raise
