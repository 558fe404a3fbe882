"""devhub's stand-in for CI: job results reported as GitHub Actions check runs, jobs and logs."""

from __future__ import annotations

import json
import uuid

import pytest

from devhub.testing import DevHubError
from tests.support.devhub import installation_token
from tests.test_devhub_pulls import branch, payloads

LOG = "collected 3 items\nFAILED tests/test_x.py::test_y - assert 1 == 2\n1 failed, 2 passed\n"


async def open_pull(admin, org):
    """Open pull request #1 from `feature`; return its head sha."""
    rest = admin.rest(org.owner.token)
    head = await branch(rest, org.repo, "feature", {"x.py": "x = 1\n"})
    status, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Add x", "head": "feature", "base": "main"}
    )
    assert status == 201, pull
    return head


async def test_a_failed_ci_job_reaches_the_app_as_a_github_actions_check_run(
    devhub, admin, org, receiver
):
    devhub.webhook_url = receiver.url
    head = await open_pull(admin, org)
    reported = await admin.report_ci(
        org.repo, head, "test", "failure", summary="1 test failed", text="test_y", log=LOG
    )
    job_id = reported["check_run_id"]
    assert (reported["workflow"], reported["status"], reported["conclusion"]) == (
        ".github/workflows/ci.yml",
        "completed",
        "failure",
    )
    assert reported["executed"] is False
    assert [j["id"] for j in reported["jobs"]] == [job_id]

    completed = await devhub.wait_for_delivery(event="check_run", action="completed")
    check_run = json.loads(completed.body)["check_run"]
    assert check_run["id"] == job_id
    assert check_run["app"]["slug"] == "github-actions"
    assert check_run["app"]["id"] == 15368
    assert (check_run["name"], check_run["conclusion"]) == ("test", "failure")
    assert check_run["output"]["summary"] == "1 test failed"
    assert check_run["output"]["text"] == "test_y"
    uuid.UUID(check_run["external_id"])  # Actions check runs carry a uuid
    run_id = reported["id"]
    assert check_run["details_url"] == (
        f"{devhub.url}/{org.repo}/actions/runs/{run_id}/job/{job_id}"
    )
    [pull] = check_run["pull_requests"]
    assert pull["number"] == 1
    assert (pull["head"]["ref"], pull["head"]["sha"]) == ("feature", head)
    assert pull["base"]["ref"] == "main"
    assert pull["head"]["repo"]["name"] == "widgets"
    assert [p["action"] for p in payloads(devhub, "check_run")] == ["created", "completed"]
    await devhub.wait_for_delivery(event="check_suite", action="completed")
    [suite] = payloads(devhub, "check_suite", "completed")
    assert suite["check_suite"]["conclusion"] == "failure"
    assert suite["check_suite"]["app"]["slug"] == "github-actions"
    await devhub.wait_for_delivery(event="workflow_run", action="completed")
    [workflow_run] = payloads(devhub, "workflow_run", "completed")
    assert workflow_run["workflow_run"]["event"] == "pull_request"
    assert workflow_run["workflow_run"]["check_suite_id"] == suite["check_suite"]["id"]

    # The app reads the run, the job and its log through the REST API, as on github.com.
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    _, _, listed = await bot.get(f"/repos/{org.repo}/commits/{head}/check-runs")
    assert [(c["id"], c["app"]["slug"]) for c in listed["check_runs"]] == [
        (job_id, "github-actions")
    ]
    status, _, job = await bot.get(f"/repos/{org.repo}/actions/jobs/{job_id}")
    assert status == 200, job
    assert job["check_run_url"].endswith(f"/repos/{org.repo}/check-runs/{job_id}")
    assert job["html_url"] == check_run["details_url"]
    assert (job["conclusion"], job["name"], job["workflow_name"]) == ("failure", "test", "CI")
    assert [s["conclusion"] for s in job["steps"]] == ["success", "failure", "success"]
    async with admin.session.get(
        f"{devhub.api_url}/repos/{org.repo}/actions/jobs/{job_id}/logs",
        headers={"Authorization": f"token {org.owner.token}"},
        allow_redirects=False,
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    async with admin.session.get(location) as response:
        text = await response.text()
    lines = text.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == LOG.splitlines()
    assert all(line.split(" ", 1)[0].endswith("Z") for line in lines)
    finished = await devhub.wait_for_run(run_id)
    assert finished.conclusion == "failure"


async def test_each_report_is_a_workflow_run_with_its_own_suite(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    _, _, ref = await rest.get(f"/repos/{org.repo}/git/ref/heads/main")
    head = ref["object"]["sha"]
    lint = await admin.report_ci(org.repo, head, "lint", "success")
    test = await admin.report_ci(
        org.repo, head, "test", "success", details_url="https://ci.example.invalid/1"
    )
    assert lint["event"] == test["event"] == "push"
    assert lint["head_branch"] == "main"
    _, _, suites = await rest.get(f"/repos/{org.repo}/commits/{head}/check-suites")
    assert len(suites["check_suites"]) == 2
    assert {s["conclusion"] for s in suites["check_suites"]} == {"success"}
    _, _, run = await rest.get(f"/repos/{org.repo}/check-runs/{test['check_run_id']}")
    assert run["details_url"] == "https://ci.example.invalid/1"
    _, _, runs = await rest.get(f"/repos/{org.repo}/actions/runs?head_sha={head}")
    assert [r["run_number"] for r in runs["workflow_runs"]] == [2, 1]
    for bad, message in (
        ({"conclusion": "stale"}, "conclusion must be one of"),
        ({"head_sha": "f" * 40}, "head_sha must be the full sha"),
    ):
        body = {"head_sha": head, "name": "x", "conclusion": "success"} | bad
        with pytest.raises(DevHubError) as refused:
            await admin.report_ci(org.repo, body["head_sha"], body["name"], body["conclusion"])
        assert refused.value.status == 422
        assert message in refused.value.body["message"]
