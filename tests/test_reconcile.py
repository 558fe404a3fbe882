"""Reconcile on devhub: stale runs and labels are closed, and an idle pass is nearly free."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app import reconcile
from app.installation import ensure_labels
from app.oidc import RUNNER_PERMISSIONS
from app.reconcile import STALE_DISPATCH_SECONDS, reconcile_once
from app.server import RECONCILE_TASK
from app.settings import load_settings
from tests.support.app import serve_app
from tests.test_develop import REPO, FakeRunner, Journey, install_workflow

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


async def start_and_kill(journey, runner, *, job_events=True):
    """Start a run whose job exchanges its token and starts work, then kill its runner.

    Without `job_events`, the app does not hear of the dead job (its webhooks go nowhere), as
    when a delivery is lost: only the reconcile pass can notice.
    """
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    report = await runner.reports.get()
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
    if not job_events:
        journey.devhub.webhook_url = None
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
