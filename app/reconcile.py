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
from app.briefing import RunBranch, parse_run_request
from app.dispatched_runs import DispatchedRuns, run_id_from_title
from app.events import Model, Repository
from app.issue_labels import remove_label
from app.known_repos import KNOWN_REPOSITORIES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

    from app.github import GitHubAccess

log = logging.getLogger(__name__)

router = Router()

# A job that succeeded completed its own check run. A skipped job may be another workflow's
# normal business; if coder's was skipped, its workflow run ends `skipped` and says so.
QUIET_JOB_CONCLUSIONS = frozenset({"success", "skipped"})
QUIET_RUN_CONCLUSIONS = frozenset({"success"})
RUNNING_ISSUES_PAGE = 100
# The annotation GitHub puts on the check run of a job a person cancelled.
CANCELLED_BY = re.compile(
    r"^The run was canceled by @(?P<login>[A-Za-z0-9][A-Za-z0-9-]*(?:\[bot\])?)\.?$"
)
# How long a queued check run may wait for its workflow run to appear before the dispatch is
# taken to be lost. Runs appear within seconds of a dispatch; queueing for a runner happens
# inside the workflow run, so a long queue does not count against this.
STALE_DISPATCH_SECONDS = 15 * 60

MATCHING_REFS_URL = "/repos/{owner}/{repo}/git/matching-refs/{+ref}"
COMMIT_CHECK_RUNS_URL = (
    "/repos/{owner}/{repo}/commits/{sha}/check-runs{?check_name,filter,per_page}"
)
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
RUNNING_ISSUES_URL = "/repos/{owner}/{repo}/issues{?labels,state,per_page}"
PULL_URL = "/repos/{owner}/{repo}/pulls/{number}"
INSTALLATIONS_URL = "/app/installations{?per_page}"
SEARCH_ISSUES_URL = "/search/issues{?q,per_page}"
SEARCH_KINDS = ("is:issue", "is:pr")
REPO_URL = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)$")


class _Job(Model):
    run_url: str
    html_url: str | None = None
    check_run_url: str | None = None
    name: str = ""
    conclusion: str | None = None


class WorkflowJobCompleted(Model):
    """`workflow_job.completed`: one job of a workflow run ended."""

    workflow_job: _Job
    repository: Repository


class _WorkflowRun(Model):
    display_title: str = ""
    html_url: str | None = None
    jobs_url: str | None = None
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
    # What `link` points at: the job, or (when no job could be found) the whole workflow run.
    link_label: str = checks.JOB_LINK


@dataclass
class PassReport:
    """What one periodic pass looked at and did."""

    issues: int = 0
    closed: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)


def job_ending(
    job_name: str, conclusion: str | None, link: str | None, *, cancelled_by: str | None = None
) -> Ending:
    """Describe a job that ended before coder-agent completed the check run."""
    subject = f"The job `{job_name or 'coder agent'}`"
    if conclusion == "cancelled" and cancelled_by is not None:
        what = f"{subject} was cancelled by @{cancelled_by} before coder-agent completed this "
        return Ending(conclusion, what + "check run.", link)
    return _ended(subject, conclusion, link)


async def cancelled_by(gh: GitHubAPI, check_run_url: str | None) -> str | None:
    """Return who cancelled a job, from GitHub's annotation on its check run, if a person did."""
    if check_run_url is None:
        return None
    try:
        annotations = await gh.getitem(f"{check_run_url}/annotations")
    except gidgethub.HTTPException as error:
        log.warning("could not read the annotations of %s: %s", check_run_url, error)
        return None
    for annotation in annotations:
        match = CANCELLED_BY.match(str(annotation.get("message", "")).strip())
        if match is not None:
            return match["login"]
    return None


def workflow_run_ending(conclusion: str | None, link: str | None) -> Ending:
    """Describe a workflow run that ended before coder-agent completed the check run."""
    return _ended("The workflow run", conclusion, link, checks.WORKFLOW_RUN_LINK)


def _ended(
    subject: str, conclusion: str | None, link: str | None, label: str = checks.JOB_LINK
) -> Ending:
    what = f"{subject} ended `{conclusion or 'without a result'}`"
    return Ending(conclusion, f"{what} before coder-agent completed this check run.", link, label)


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

    async def with_canceller() -> Ending:
        # Only a cancelled job, and only when its run is really left open: one more request.
        by = await cancelled_by(gh, job.check_run_url)
        return job_ending(job.name, job.conclusion, job.html_url, cancelled_by=by)

    refine = with_canceller if job.conclusion == "cancelled" else None
    await close_run(gh, completed.repository.full_name, run_id, ending, refine=refine)


@router.register("workflow_run", action="requested")
async def note_dispatched_run(event: Event, gh: GitHubAPI) -> None:
    """Remember whether a coder workflow run is read-only, for its job's token exchange."""
    del gh
    known = KNOWN_REPOSITORIES.get()
    if known is not None:
        known.learn(event.data)  # the title says `read-only` for a fork's pull request


@router.register("workflow_run", action="completed")
async def close_after_workflow_run(event: Event, gh: GitHubAPI) -> None:
    """Close the run of a coder workflow run that ended without reporting."""
    completed = WorkflowRunCompleted.from_payload(event.data)
    workflow_run = completed.workflow_run
    run_id = run_id_from_title(workflow_run.display_title)
    if run_id is None or workflow_run.conclusion in QUIET_RUN_CONCLUSIONS:
        return
    ending = workflow_run_ending(workflow_run.conclusion, workflow_run.html_url)

    async def with_job() -> Ending:
        # One more request, and only for a run that really is left open.
        return await _with_job_link(gh, {"jobs_url": workflow_run.jobs_url}, ending)

    await close_run(gh, completed.repository.full_name, run_id, ending, refine=with_job)


async def close_run(
    gh: GitHubAPI,
    repo: str,
    run_id: str,
    ending: Ending,
    *,
    refine: Callable[[], Awaitable[Ending]] | None = None,
) -> bool:
    """Complete run `run_id`'s check run if it is still open; return whether it was.

    `refine` improves the ending (say, finds the job to link) once an open check run is found.
    """
    owner, name = repo.split("/", 1)
    query = {"owner": owner, "repo": name, "labels": labels.RUNNING, "state": "all"}
    pages = gh.getiter(RUNNING_ISSUES_URL, {**query, "per_page": RUNNING_ISSUES_PAGE})
    # Every page is read before anything changes: taking a label off shifts the pages.
    issues = [issue async for issue in pages]
    for issue in issues:
        number = int(issue["number"])
        open_runs = await open_check_runs(gh, repo, number, is_pull=_is_pull(issue))
        mine = [run for run in open_runs if run.get("external_id") == run_id]
        if not mine:
            continue
        if refine is not None:
            ending = await refine()
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
        job_conclusion=ending.job_conclusion,
        what_happened=ending.what_happened,
        link=ending.link,
        link_label=ending.link_label,
    )
    where = {"owner": owner, "repo": name, "check_run_id": str(check_run["id"])}
    await gh.patch(CHECK_RUN_URL, where, data=update)
    await _react_to_the_ask(gh, repo, check_run, update["conclusion"])
    log.info(
        "run %s in %s closed as %s: %s",
        check_run.get("external_id"),
        repo,
        update["conclusion"],
        ending.what_happened,
    )


async def _react_to_the_ask(
    gh: GitHubAPI, repo: str, check_run: Mapping[str, Any], conclusion: str
) -> None:
    """Answer the comment that asked for a run whose job died: 😕 (its runner never did).

    A run on a pull request names that comment in its run request, in the check run itself;
    an issue run's is in its claim commit, which this pass does not read (it costs a request).
    """
    from app.conversation import Reaction, Source, react  # noqa: PLC0415 - it imports app.once, which imports this module

    request = parse_run_request((check_run.get("output") or {}).get("text"))
    source = Source.parse(request.asked_in if request is not None else None)
    if source is not None and conclusion != "success":
        await react(gh, repo, source, Reaction.CONFUSED)
    # A fix that waited for this run (`coder:queued`) starts once the label comes off.
    pulls = {int(link["number"]) for link in check_run.get("pull_requests") or []}
    if request is not None and request.issue_number:
        pulls.add(request.issue_number)
    for number in pulls:
        await remove_label(gh, repo, number, labels.QUEUED)


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
    workflow_runs: dict[str, DispatchedRuns] = {}
    found = []
    # GitHub's issue search wants `is:issue` or `is:pr`, never both in one query
    # (422 otherwise); pull requests carry the label while a review-like run works on them.
    for kind in SEARCH_KINDS:
        query = f'label:"{labels.RUNNING}" {kind} {scope}'
        # Read every page before changing labels, which would shift the pages under us.
        pages = gh.getiter(SEARCH_ISSUES_URL, {"q": query, "per_page": 100})
        found += [issue async for issue in pages]
    try:
        for issue in found:
            repo = repo_of_issue(issue)
            if repo is None:
                continue
            report.issues += 1
            if repo not in workflow_runs:
                workflow_runs[repo] = DispatchedRuns(gh, repo)
            dispatched = workflow_runs[repo]
            await _reconcile_issue(gh, repo, issue, dispatched=dispatched, now=now, report=report)
    finally:
        for runs in workflow_runs.values():
            await runs.close()


async def _reconcile_issue(
    gh: GitHubAPI,
    repo: str,
    issue: Mapping[str, Any],
    *,
    dispatched: DispatchedRuns,
    now: datetime,
    report: PassReport,
) -> None:
    number = int(issue["number"])
    open_runs = await open_check_runs(gh, repo, number, is_pull=_is_pull(issue))
    still_open = 0
    for check_run in open_runs:
        found = await dispatched.lookup(check_run)
        ending = stale_ending(check_run, found.workflow_run, now) if found.decided else None
        if ending is None:
            still_open += 1
            continue
        if found.workflow_run is not None:
            ending = await _with_job_link(gh, found.workflow_run, ending)
        await complete_check_run(gh, repo, check_run, ending)
        report.closed.append(str(check_run.get("external_id")))
    if still_open == 0:
        await remove_running_label(gh, repo, number)
        report.unlabelled.append(f"{repo}#{number}")


async def _with_job_link(gh: GitHubAPI, workflow_run: Mapping[str, Any], ending: Ending) -> Ending:
    """Point the ending at the job that did not succeed; else keep the run's, and say so."""
    jobs_url = workflow_run.get("jobs_url")
    if not isinstance(jobs_url, str):
        return ending
    try:
        answer = await gh.getitem(jobs_url)
    except gidgethub.HTTPException as error:
        log.warning("could not list the jobs of %s: %s", workflow_run.get("html_url"), error)
        return ending
    jobs = [job for job in answer.get("jobs", []) if job.get("conclusion") != "success"]
    if not jobs:
        return ending
    job = jobs[0]
    conclusion = job.get("conclusion")
    by = await cancelled_by(gh, job.get("check_run_url")) if conclusion == "cancelled" else None
    return job_ending(str(job.get("name", "")), conclusion, job.get("html_url"), cancelled_by=by)


async def coder_workflow_runs(gh: GitHubAPI, repo: str) -> dict[str, Mapping[str, Any]]:
    """Return the repository's newest page of dispatched workflow runs by coder run id.

    Only the newest page: a run missing from it may still exist (`DispatchedRuns.lookup`).
    """
    runs = DispatchedRuns(gh, repo)
    try:
        return await runs.newest()
    finally:
        await runs.close()


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
    await remove_label(gh, repo, number, labels.RUNNING)
