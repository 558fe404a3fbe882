"""devhub's check runs and suites: GitHub's rules (apps only, owner app only), limits, webhooks."""

from __future__ import annotations

import json

from tests.support.devhub import installation_token
from tests.test_devhub_pulls import branch, payloads


async def head_of(rest, repo, ref="main"):
    _, _, found = await rest.get(f"/repos/{repo}/git/ref/heads/{ref}")
    return found["object"]["sha"]


async def test_check_run_lifecycle_and_webhooks(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    head = await branch(rest, org.repo, "coder/1-x", {"x.txt": "x\n"})
    await rest.post(f"/repos/{org.repo}/pulls", {"title": "X", "head": "coder/1-x", "base": "main"})
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    status, _, run = await bot.post(
        f"/repos/{org.repo}/check-runs",
        {
            "name": "coder/develop",
            "head_sha": head,
            "status": "queued",
            "external_id": "run-1",
            "details_url": "https://example.invalid/runs/1",
            "output": {"title": "Queued", "summary": "Waiting for a runner."},
            "actions": [
                {"label": "Cancel", "description": "Stop this run", "identifier": "cancel"}
            ],
        },
    )
    assert status == 201, run
    assert (run["status"], run["conclusion"], run["external_id"]) == ("queued", None, "run-1")
    assert run["app"]["slug"] == "coder"
    assert [p["number"] for p in run["pull_requests"]] == [1]
    check = f"/repos/{org.repo}/check-runs/{run['id']}"
    status, _, moved = await bot.patch(check, {"status": "in_progress"})
    assert (status, moved["status"]) == (200, "in_progress")
    status, _, done = await bot.patch(
        check,
        {
            "conclusion": "success",
            "output": {
                "title": "Done",
                "summary": "All good.",
                "text": "details",
                "annotations": [
                    {
                        "path": "x.txt",
                        "start_line": 1,
                        "end_line": 1,
                        "annotation_level": "notice",
                        "message": "looks fine",
                    }
                ],
            },
        },
    )
    assert status == 200, done
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    assert done["completed_at"] is not None
    assert done["output"]["annotations_count"] == 1
    _, _, annotations = await bot.get(check + "/annotations")
    assert [a["message"] for a in annotations] == ["looks fine"]
    _, _, listed = await rest.get(f"/repos/{org.repo}/commits/coder/1-x/check-runs")
    assert [r["id"] for r in listed["check_runs"]] == [run["id"]]
    _, _, by_name = await rest.get(f"/repos/{org.repo}/commits/{head}/check-runs?check_name=other")
    assert by_name == {"total_count": 0, "check_runs": []}
    completed = await devhub.wait_for_delivery(event="check_suite", action="completed")
    suite = json.loads(completed.body)["check_suite"]
    assert (suite["conclusion"], suite["head_sha"]) == ("success", head)
    assert [p["action"] for p in payloads(devhub, "check_run")] == ["created", "completed"]
    _, _, suites = await rest.get(f"/repos/{org.repo}/commits/{head}/check-suites")
    assert [s["id"] for s in suites["check_suites"]] == [suite["id"]]
    _, _, one = await rest.get(f"/repos/{org.repo}/check-suites/{suite['id']}")
    assert one["latest_check_runs_count"] == 1


async def test_only_apps_and_only_the_creating_app_may_write(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    head = await head_of(rest, org.repo)
    status, _, answer = await rest.post(
        f"/repos/{org.repo}/check-runs", {"name": "ci", "head_sha": head}
    )
    assert (status, answer["message"]) == (403, "You must authenticate via a GitHub App.")
    # The admin token writes as the built-in GitHub Actions app (a stand-in for another CI).
    status, _, ci = await admin.rest(devhub.admin_token).post(
        f"/repos/{org.repo}/check-runs", {"name": "test", "head_sha": head, "status": "in_progress"}
    )
    assert status == 201, ci
    assert ci["app"]["slug"] == "github-actions"
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    status, _, refused = await bot.patch(
        f"/repos/{org.repo}/check-runs/{ci['id']}", {"conclusion": "success"}
    )
    assert status == 403
    assert refused["message"] == (
        "Invalid app_id `1` - check run can only be modified by the GitHub App that created it."
    )
    narrow = await installation_token(
        admin, devhub, org.installation_id, permissions={"contents": "read"}
    )
    status, _, denied = await admin.rest(narrow).post(
        f"/repos/{org.repo}/check-runs", {"name": "x", "head_sha": head}
    )
    assert (status, denied["message"]) == (403, "Resource not accessible by integration")


async def test_limits_and_validation(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    head = await head_of(rest, org.repo)
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    runs = f"/repos/{org.repo}/check-runs"
    status, _, answer = await bot.post(
        runs,
        {"name": "big", "head_sha": head, "output": {"title": "t", "summary": "x" * 65536}},
    )
    assert (status, answer["message"]) == (
        422,
        "Invalid request.\n\nOnly 65535 characters are allowed; 65536 were supplied.",
    )
    status, _, answer = await bot.post(
        runs,
        {"name": "wide", "head_sha": head, "output": {"title": "t", "summary": "é" * 40000}},
    )
    assert status == 422
    assert answer["errors"][0]["message"] == "summary exceeds a maximum bytesize of 65535"
    annotation = {
        "path": "README.md",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "warning",
        "message": "m",
    }
    status, _, answer = await bot.post(
        runs,
        {
            "name": "many",
            "head_sha": head,
            "output": {"title": "t", "summary": "s", "annotations": [annotation] * 51},
        },
    )
    assert (status, answer["message"]) == (
        422,
        "Invalid request.\n\nNo more than 50 items are allowed; 51 were supplied.",
    )
    button = {"label": "L", "description": "D", "identifier": "i"}
    status, _, answer = await bot.post(
        runs, {"name": "buttons", "head_sha": head, "actions": [button] * 4}
    )
    assert (status, answer["message"]) == (
        422,
        "Invalid request.\n\nNo more than 3 items are allowed; 4 were supplied.",
    )
    status, _, answer = await bot.post(
        runs,
        {"name": "label", "head_sha": head, "actions": [button | {"label": "x" * 21}]},
    )
    assert (status, answer["message"]) == (
        422,
        "Invalid request.\n\nOnly 20 characters are allowed; 21 were supplied.",
    )
    # Strict mode saw those four requests break GitHub's request schema, as they should.
    assert len(devhub.contract_violations) == 4
    assert all("(checks/create): request body" in v for v in devhub.contract_violations)
    devhub.contract_violations.clear()
    status, _, answer = await bot.post(
        runs, {"name": "half", "head_sha": head, "status": "completed"}
    )
    assert (status, answer["message"]) == (
        422,
        'Invalid request.\n\n"conclusion" wasn\'t supplied.',
    )
    status, _, answer = await bot.post(runs, {"name": "nowhere", "head_sha": "f" * 40})
    assert (status, answer["message"]) == (422, f"No commit found for SHA: {'f' * 40}")
    # Annotations beyond 50 arrive over several updates and add up.
    status, _, run = await bot.post(runs, {"name": "batched", "head_sha": head})
    for _ in range(2):
        await bot.patch(
            f"{runs}/{run['id']}",
            {"output": {"title": "t", "summary": "s", "annotations": [annotation] * 50}},
        )
    _, _, updated = await bot.get(f"{runs}/{run['id']}")
    assert updated["output"]["annotations_count"] == 100
    _, _, page = await bot.get(f"{runs}/{run['id']}/annotations?per_page=100")
    assert len(page) == 100


async def test_buttons_and_rerequest_reach_the_owner_app(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    head = await head_of(rest, org.repo)
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    _, _, run = await bot.post(
        f"/repos/{org.repo}/check-runs",
        {
            "name": "coder/develop",
            "head_sha": head,
            "conclusion": "action_required",
            "output": {"title": "Stuck", "summary": "Which database?"},
            "actions": [{"label": "Retry", "description": "Run it again", "identifier": "retry"}],
        },
    )
    await admin.click_check_run_action(org.repo, run["id"], "retry", "alice")
    delivery = await devhub.wait_for_delivery(event="check_run", action="requested_action")
    body = json.loads(delivery.body)
    assert body["requested_action"] == {"identifier": "retry"}
    assert body["sender"]["login"] == "alice"
    status, _, _ = await bot.post(f"/repos/{org.repo}/check-runs/{run['id']}/rerequest")
    assert status == 201
    await devhub.wait_for_delivery(event="check_run", action="rerequested")
