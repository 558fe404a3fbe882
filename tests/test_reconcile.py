"""Reconcile on devhub: stale runs and labels are closed, and an idle pass is nearly free."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from app import dispatched_runs, reconcile
from app.installation import ensure_labels
from app.oidc import RUNNER_PERMISSIONS
from app.reconcile import STALE_DISPATCH_SECONDS, reconcile_once
from app.server import RECONCILE_TASK
from app.settings import load_settings
from tests.support.app import serve_app
from tests.test_develop import REPO, FakeRunner, Journey, deliver_to_all, install_workflow

LATER = timedelta(seconds=STALE_DISPATCH_SECONDS + 60)


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Journey(devhub, admin, org, app_server)


def pass_requests(requests, since):
    """The app's requests after `since`: (method, path, status)."""
    return [
        (r["method"], r["path"], r["status"])
        for r in requests[since:]
        if r["token_owner"] in {"coder[bot]", "app/coder"} and "/access_tokens" not in r["path"]
    ]


async def test_a_label_left_behind_by_a_finished_run_is_removed(journey, admin):
    number = await journey.issue()
    await journey.label(number)  # no workflow file: the run fails at once
    await journey.rest.post(f"/repos/{REPO}/issues/{number}/labels", {"labels": ["coder:running"]})
    report = await reconcile_once(journey.app_server.access)
    assert report.unlabelled == [f"{REPO}#{number}"]
    assert report.closed == []
    assert "coder:running" not in await journey.issue_labels(number)


async def test_an_idle_pass_costs_about_one_request(journey, admin):
    await reconcile_once(journey.app_server.access)
    before = len(await admin.requests())
    report = await reconcile_once(journey.app_server.access)
    assert report.issues == 0
    requests = pass_requests(await admin.requests(), before)
    # The list of installations (JWT) and two searches per installation (issues, then pull
    # requests: GitHub's search takes one kind at a time), all unchanged: free 304s.
    assert [status for _, _, status in requests] == [304, 304, 304]


async def test_a_run_whose_dispatch_was_lost_is_failed_later(journey, admin):
    # GitHub fails the dispatch with a 5xx: the app cannot know whether a job will start.
    await admin.add_fault(kind="status", status=502, method="POST", path="/dispatches$", times=None)
    number = await journey.issue()
    await journey.label(number, outcome="error: GitHubBroken: Bad Gateway")
    [branch] = await journey.branches(number)
    [check_run] = await journey.check_runs(branch["object"]["sha"])
    assert check_run["status"] == "queued"
    assert "coder:running" in await journey.issue_labels(number)
    access = journey.app_server.access
    assert (await reconcile_once(access)).closed == []
    report = await reconcile_once(access, now=datetime.now(UTC) + LATER)
    assert report.closed == [check_run["external_id"]]
    [closed] = await journey.check_runs(branch["object"]["sha"])
    assert (closed["status"], closed["conclusion"]) == ("completed", "failure")
    assert "No workflow run started" in closed["output"]["summary"]
    assert "coder:running" not in await journey.issue_labels(number)


@pytest.fixture
async def exchanging_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "exchange")
    yield runner
    await runner.close()


async def start_run(journey, runner):
    """Start a run whose job exchanges its token and starts work; return its issue and report."""
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    return number, await runner.reports.get()


async def start_and_kill(journey, runner, *, job_events=True, before_kill=None, webhooks_to=None):
    """Start a run whose job exchanges its token and starts work, then kill its runner.

    Without `job_events`, the app does not hear of the dead job (its webhooks go nowhere, or to
    `webhooks_to`), as when a delivery is lost: only the reconcile pass can notice.
    """
    number, report = await start_run(journey, runner)
    assert report["exchange"] == {
        "status": 200,
        "repository": REPO,
        "permissions": RUNNER_PERMISSIONS,
    }
    assert report["in_progress"] == 200
    [branch] = await journey.branches(number)
    head = branch["object"]["sha"]
    [check_run] = await journey.check_runs(head)
    assert check_run["status"] == "in_progress"
    run_id = int(report["GITHUB_RUN_ID"])
    if before_kill is not None:
        await before_kill()
    if not job_events:
        journey.devhub.webhook_url = webhooks_to
    assert await journey.devhub.kill_runner(run_id)
    workflow_run = await journey.devhub.wait_for_run(run_id)
    assert workflow_run.conclusion == "failure"
    return number, head, check_run


async def assert_closed_with_job_link(journey, number, head):
    [check_run] = await journey.check_runs(head)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "failure")
    jobs = await journey.get(f"/repos/{REPO}/actions/runs")
    [run] = jobs["workflow_runs"]
    [job] = (await journey.get(f"/repos/{REPO}/actions/runs/{run['id']}/jobs"))["jobs"]
    assert check_run["details_url"] == job["html_url"]
    assert job["html_url"] in check_run["output"]["summary"]
    assert "`coder agent` ended `failure`" in check_run["output"]["summary"]
    assert "coder:running" not in await journey.issue_labels(number)


async def test_a_killed_runner_is_failed_by_the_reconcile_pass(journey, exchanging_runner):
    number, head, check_run = await start_and_kill(journey, exchanging_runner, job_events=False)
    report = await reconcile_once(journey.app_server.access)
    assert report.closed == [check_run["external_id"]]
    await assert_closed_with_job_link(journey, number, head)
    # Nothing is left in progress, and a second pass has nothing to do.
    again = await reconcile_once(journey.app_server.access)
    assert (again.issues, again.closed) == (0, [])


async def test_a_killed_runner_is_failed_from_its_job_event(journey, exchanging_runner):
    number, head, _ = await start_and_kill(journey, exchanging_runner)
    # The app dispatched the job, so it is the sender of the job's events; ingress lets these
    # through (they are how a dead job is noticed) and the handler closes the run.
    delivery = await journey.devhub.wait_for_delivery(event="workflow_job", action="completed")
    assert delivery.status_code == 202
    assert await journey.app_server.queue.wait_for(delivery.guid) == "ok"
    await assert_closed_with_job_link(journey, number, head)
    # The workflow run's event that follows finds the run closed and changes nothing.
    delivery = await journey.devhub.wait_for_delivery(event="workflow_run", action="completed")
    assert await journey.app_server.queue.wait_for(delivery.guid) == "ok"
    await assert_closed_with_job_link(journey, number, head)


async def only_to_the_app(journey, receiver, event, action="completed"):
    """Send the app one delivery the receiver caught (the others are lost); wait for it."""
    await journey.devhub.wait_for_delivery(event=event, action=action)
    [received] = [
        r
        for r in receiver.received
        if r.headers["X-GitHub-Event"] == event and json.loads(r.body).get("action") == action
    ]
    assert await deliver_to_all([journey.app_server], received) == ["ok"]


async def test_a_workflow_run_event_alone_closes_the_run_with_a_link_to_its_job(
    journey, exchanging_runner, receiver
):
    number, head, _ = await start_and_kill(
        journey, exchanging_runner, job_events=False, webhooks_to=receiver.url
    )
    # Only the workflow run's event reaches the app (the job's was lost).
    await only_to_the_app(journey, receiver, "workflow_run")
    await assert_closed_with_job_link(journey, number, head)
    [check_run] = await journey.check_runs(head)
    assert "The job: " in check_run["output"]["summary"]


async def test_without_its_jobs_the_workflow_run_is_linked_and_named(
    journey, exchanging_runner, admin, receiver
):
    number, head, _ = await start_and_kill(
        journey, exchanging_runner, job_events=False, webhooks_to=receiver.url
    )
    await admin.add_fault(kind="status", status=404, method="GET", path="/jobs$", times=None)
    await only_to_the_app(journey, receiver, "workflow_run")
    [check_run] = await journey.check_runs(head)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "failure")
    [run] = (await journey.get(f"/repos/{REPO}/actions/runs"))["workflow_runs"]
    assert check_run["details_url"] == run["html_url"]
    summary = check_run["output"]["summary"]
    assert "The workflow run ended `failure`" in summary
    assert f"The workflow run (no job of it could be found): {run['html_url']}" in summary
    assert "coder:running" not in await journey.issue_labels(number)


async def test_the_run_is_found_past_the_first_page_of_running_issues(
    journey, exchanging_runner, monkeypatch
):
    monkeypatch.setattr(reconcile, "RUNNING_ISSUES_PAGE", 1)

    async def another_running_issue():
        # Newer, so it comes first: the run's own issue is on the second page.
        other = await journey.issue(title="Something else")
        status, _, _ = await journey.rest.post(
            f"/repos/{REPO}/issues/{other}/labels", {"labels": ["coder:running"]}
        )
        assert status == 200

    number, head, _ = await start_and_kill(
        journey, exchanging_runner, before_kill=another_running_issue
    )
    delivery = await journey.devhub.wait_for_delivery(event="workflow_job", action="completed")
    assert await journey.app_server.queue.wait_for(delivery.guid) == "ok"
    await assert_closed_with_job_link(journey, number, head)


OTHER_WORKFLOW = """\
name: other
on: workflow_dispatch
permissions: {}
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo hello
"""


async def dispatch_other_runs(journey, count):
    """Dispatch a workflow that is not coder's `count` times (newer runs than coder's)."""
    await journey.put_file(".github/workflows/other.yml", OTHER_WORKFLOW)
    journey.devhub.webhook_url = None  # their events are none of the app's business here
    for _ in range(count):
        status, _, answer = await journey.rest.post(
            f"/repos/{REPO}/actions/workflows/other.yml/dispatches", {"ref": "main"}
        )
        assert status == 204, answer


async def test_a_live_run_older_than_the_first_page_of_runs_is_not_failed(
    journey, exchanging_runner, monkeypatch
):
    monkeypatch.setattr(dispatched_runs, "WORKFLOW_RUNS_PAGE", 2)
    number, report = await start_run(journey, exchanging_runner)
    await dispatch_other_runs(journey, 3)
    runs = (await journey.get(f"/repos/{REPO}/actions/runs?per_page=100"))["workflow_runs"]
    assert [r["id"] for r in runs][-1] == int(report["GITHUB_RUN_ID"])  # the oldest of four
    # Long after its dispatch: a run not found would be failed as never started.
    report_pass = await reconcile_once(journey.app_server.access, now=datetime.now(UTC) + LATER)
    assert report_pass.closed == []
    [branch] = await journey.branches(number)
    [check_run] = await journey.check_runs(branch["object"]["sha"])
    assert check_run["status"] == "in_progress"
    assert "coder:running" in await journey.issue_labels(number)


async def test_a_run_its_check_run_links_is_read_directly(
    journey, exchanging_runner, monkeypatch, admin, org
):
    monkeypatch.setattr(dispatched_runs, "WORKFLOW_RUNS_PAGE", 1)
    monkeypatch.setattr(dispatched_runs, "MAX_WORKFLOW_RUN_PAGES", 1)
    number, report = await start_run(journey, exchanging_runner)
    await dispatch_other_runs(journey, 2)
    [branch] = await journey.branches(number)
    [check_run] = await journey.check_runs(branch["object"]["sha"])
    # What the real runner does when it starts: point the check run at its Actions run.
    actions_run = f"{journey.devhub.url}/{REPO}/actions/runs/{report['GITHUB_RUN_ID']}"
    gh = journey.app_server.access.for_installation(org.installation_id)
    await gh.patch(f"/repos/{REPO}/check-runs/{check_run['id']}", data={"details_url": actions_run})
    before = len(await admin.requests())
    report_pass = await reconcile_once(journey.app_server.access, now=datetime.now(UTC) + LATER)
    assert report_pass.closed == []
    reads = [r["path"] for r in (await admin.requests())[before:] if "/actions/runs" in r["path"]]
    assert reads == [
        f"/api/v3/repos/{REPO}/actions/runs",
        f"/api/v3/repos/{REPO}/actions/runs/{report['GITHUB_RUN_ID']}",
    ]


class StopAfter:
    """A `sleep` for the loop that records its waits and stops the loop on the n-th one."""

    def __init__(self, passes):
        self.waits = []
        self.passes = passes

    async def __call__(self, seconds):
        self.waits.append(seconds)
        if len(self.waits) > self.passes:
            raise asyncio.CancelledError


async def test_the_loop_runs_a_pass_per_interval_and_survives_a_failed_one(journey, admin):
    # The first pass cannot even list the installations; the loop logs it and carries on.
    await admin.add_fault(
        kind="status", status=502, method="GET", path="^/app/installations$", times=5
    )
    sleep = StopAfter(passes=2)
    with pytest.raises(asyncio.CancelledError):
        await reconcile.reconcile_forever(journey.app_server.access, 42.0, sleep=sleep)
    assert sleep.waits == [42.0, 42.0, 42.0]
    requests = await admin.requests()
    listings = [r["status"] for r in requests if r["path"].endswith("/app/installations")]
    searches = [r["status"] for r in requests if r["path"].endswith("/search/issues")]
    assert (listings, searches) == ([502] * 5 + [200], [200, 200])


async def test_the_server_runs_the_loop_only_when_asked(devhub):
    def loops():
        return [t for t in asyncio.all_tasks() if t.get_name() == RECONCILE_TASK]

    running = await serve_app(load_settings(None, devhub.app_env()))
    try:
        assert len(loops()) == 1
    finally:
        await running.close()
    assert loops() == []
    off = await serve_app(load_settings(None, devhub.app_env() | {"CODER_RECONCILE_SECONDS": "0"}))
    try:
        assert loops() == []
    finally:
        await off.close()
