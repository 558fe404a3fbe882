"""`coder demo`, the iterate part (DESIGN §1.3): CI fails, coder fixes it by itself, a status.

devhub runs no CI of its own: the demo reports the CI job's result the way GitHub Actions would
(a check run of the Actions app, with its log), through devhub's admin API, and says so. What
follows is coder's own loop: the failing check starts a fix run on the pull request's branch, one
model tier up, whose briefing holds the log's tail; the fix is pushed and the check goes green.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from app.briefing import parse_trailers

if TYPE_CHECKING:
    from app.demo import Demo
    from devhub.hub import DevHub
    from devhub.testing import AdminClient

CI_JOB = "ci / test"
CI_LOG = """\
test_calc.py::AddTest::test_adds PASSED
test_calc_more.py::AddTest::test_adds_negatives FAILED
E   TypeError: add() takes ints; got floats in add(-1.5, 0.5)
"""
ITERATE_TIMEOUT = 120.0


async def iterate(
    demo: Demo,
    *,
    hub: DevHub,
    admin: AdminClient,
    queue: Any,
    rest: Any,
    full_name: str,
    pull: dict[str, Any],
) -> None:
    """Fail CI on the pull request's head, follow coder's fix run, then ask for a status."""
    demo.step(f"CI fails on #{pull['number']}: coder starts a fix run by itself")
    demo.note("devhub runs no CI: the demo reports the job's result as GitHub Actions would")
    follower = hub.follow_deliveries()
    head = pull["head"]["sha"]
    await admin.report_ci(
        full_name, head, CI_JOB, "failure", summary="1 failed, 1 passed", log=CI_LOG
    )
    demo.fact(f"check {CI_JOB} failed on {head[:7]}", "its log says add() rejects floats")
    async with asyncio.timeout(ITERATE_TIMEOUT):
        conclusion = await _follow_fix(demo, follower)
    demo.check(conclusion == "success", "the fix run's Actions run succeeded", str(conclusion))
    _, _, fixed = await rest.get(f"/repos/{full_name}/pulls/{pull['number']}")
    new_head = fixed["head"]["sha"]
    _, _, checks = await rest.get(
        f"/repos/{full_name}/commits/{new_head}/check-runs?check_name=coder/fix"
    )
    runs = checks.get("check_runs", [])
    fix = runs[0] if runs else {}
    demo.check(fix.get("conclusion") == "success", "check run coder/fix is green", _title(fix))
    _, _, commit = await rest.get(f"/repos/{full_name}/commits/{new_head}")
    trailers = parse_trailers(commit["commit"]["message"])
    demo.check(
        trailers.get("Coder-Workflow") == "fix",
        f"commit {new_head[:7]} on the same branch",
        f"Coder-Model: {trailers.get('Coder-Model')}, one tier up from the develop run",
    )
    await admin.report_ci(full_name, new_head, CI_JOB, "success", summary="2 passed")
    demo.fact(f"check {CI_JOB} passes on {new_head[:7]}; nothing more starts")

    demo.step(f"alice asks `/coder status` on #{pull['number']}")
    seen = {d["id"] for d in await admin.deliveries()}
    await rest.post(
        f"/repos/{full_name}/issues/{pull['number']}/comments", {"body": "/coder status"}
    )
    delivery = await hub.wait_for_delivery(
        event="issue_comment", action="created", predicate=lambda d: d.id not in seen
    )
    demo.check(delivery.status_code == 202, "the comment's webhook was acknowledged")
    demo.check(await queue.wait_for(delivery.guid) == "ok", "the app handled it")
    reply = await _reply(rest, full_name, pull["number"])
    demo.check(reply is not None, "coder replied with the runs")
    for line in (reply or "").splitlines()[1:]:
        if line.strip():
            demo.note(line)


async def _follow_fix(demo: Demo, follower: Any) -> str | None:
    """Print the fix run's webhooks until its workflow run completes."""
    from app.demo import _describe  # noqa: PLC0415 - one describer for both parts

    async for delivery in follower:
        payload = json.loads(delivery.body)
        if delivery.event == "workflow_run" and not _is_coder(payload):
            continue
        line = _describe(delivery)
        if line:
            demo.live(line)
        if delivery.event == "workflow_run" and delivery.action == "completed":
            conclusion = payload["workflow_run"]["conclusion"]
            return str(conclusion) if conclusion is not None else None
    return None


def _is_coder(payload: dict[str, Any]) -> bool:
    return str(payload["workflow_run"].get("path", "")).endswith("/coder.yml")


async def _reply(rest: Any, full_name: str, number: int) -> str | None:
    """Return coder's reply to the status command."""
    _, _, comments = await rest.get(f"/repos/{full_name}/issues/{number}/comments")
    for comment in comments:
        if "coder:command-reply" in (comment.get("body") or ""):
            return str(comment["body"])
    return None


def _title(check_run: dict[str, Any]) -> str:
    return str((check_run.get("output") or {}).get("title") or "")
