"""`then:` chains on devhub: a finished run's artifact starts the next workflow, or says why not.

The jobs run a stand-in for coder-agent on devhub's local runner: it exchanges the job's OIDC
token at the app, as the runner does, and completes its check run with the artifact the test
gives it for that workflow. The chain itself is the app's real path: `check_run.completed` sent
by the app's own token, through ingress, to `app/chain.py`.
"""

import asyncio
import json
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.ids import run_id
from app.installation import ensure_labels
from app.markers import parse_markers
from tests.test_develop import (
    CONFIG_PATH,
    REPO,
    install_workflow,
    redeliver_to_fresh_replica,
    workflow_runs,
)
from tests.test_triggers import Triggers

STAND_IN = r"""
import json, os, sys, urllib.error, urllib.request

def call(method, url, headers=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")

report_url, plan_path = sys.argv[1], sys.argv[2]
with open(plan_path) as plan_file:
    plan = json.load(plan_file)
id_token_url = os.environ["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=coder"
bearer = {"Authorization": "bearer " + os.environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]}
_, id_token = call("GET", id_token_url, bearer)
_, answer = call("POST", os.environ["CODER_APP_URL"] + "/api/token",
                 {"Authorization": "Bearer " + id_token["value"]})
auth = {"Authorization": "token " + answer["token"]}
api = os.environ["GITHUB_API_URL"] + "/repos/" + os.environ["GITHUB_REPOSITORY"]
check_run_url = api + "/check-runs/" + os.environ["CODER_CHECK_RUN"]
_, check_run = call("GET", check_run_url, auth)
workflow = check_run["name"].split("/", 1)[1]
_, pull = call("GET", api + "/pulls/" + os.environ["CODER_PULL"], auth)
report = {"workflow": workflow, "check_run": check_run["id"], "run_id": os.environ["CODER_RUN_ID"],
          "issue": os.environ["CODER_ISSUE"], "pull": os.environ["CODER_PULL"]}
template = plan.get(workflow)
if template is not None:
    text = json.dumps(template)
    values = {"RUN_ID": os.environ["CODER_RUN_ID"], "REPO": os.environ["GITHUB_REPOSITORY"],
              "BRANCH": pull["head"]["ref"], "PULL_URL": pull["html_url"],
              "ISSUE": os.environ["CODER_ISSUE"]}
    for key, value in values.items():
        text = text.replace("$" + key, value)
    block = "```json coder-artifact\n" + json.dumps(json.loads(text), indent=2) + "\n```"
    output = {"title": "done", "summary": "The stand-in finished.", "text": block}
    status, _ = call("PATCH", check_run_url, auth,
                     {"status": "completed", "conclusion": "success", "output": output})
    report["completed"] = status
call("POST", report_url, body=report)
"""


class StandIn:
    """The stand-in runner: a report per job; `plan` gives the artifact each workflow ends with."""

    def __init__(self):
        self.reports = asyncio.Queue()
        self.server = None

    async def start(self, devhub, tmp_path, plan):
        app = web.Application()

        async def report(request):
            await self.reports.put(await request.json())
            return web.json_response({})

        app.router.add_post("/report", report)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        script = tmp_path / "stand_in.py"
        script.write_text(STAND_IN)
        plan_path = tmp_path / "plan.json"
        plan_path.write_text(json.dumps(plan))
        url = str(self.server.make_url("/report"))
        devhub.runner_command = [sys.executable, str(script), url, str(plan_path)]
        return self

    async def next(self, workflow):
        report = await asyncio.wait_for(self.reports.get(), timeout=60)
        assert report["workflow"] == workflow, report
        return report

    async def close(self):
        await self.server.close()


EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"


async def test_check_runs_the_app_completed_itself_pass_ingress(app_server):
    # The runner completes a run's check run with the app's token, so the app is the sender of
    # `check_run.completed`; that event is how a chain learns a run ended, so it is let in.
    bot = {"login": await app_server.access.bot_login(), "id": 99, "type": "Bot"}
    completed = json.loads((EXAMPLES / "check_run.completed.json").read_text())
    status, body = await app_server.deliver("check_run", completed | {"sender": bot})
    assert (status, body) == (202, {"status": "accepted"})
    # Other events the app caused stay out (they would loop back).
    labeled = json.loads((EXAMPLES / "issues.labeled.json").read_text())
    status, body = await app_server.deliver("issues", labeled | {"sender": bot})
    assert (status, body) == (200, {"status": "ignored"})


RESEARCH = {
    "kind": "research",
    "runId": "$RUN_ID",
    "repo": "$REPO",
    "createdAt": "2025-01-01T10:00:00Z",
    "completedAt": "2025-01-01T10:05:00Z",
    "model": "sonnet",
    "specPath": ".coder/specs/$ISSUE-frobnicator.md",
    "problemStatement": "The frobnicator frobs twice.",
    "proposedApproach": "Frob once, then check.",
    "decisions": [{"decision": "Keep the public API", "rationale": "Callers rely on it."}],
    "branchName": "$BRANCH",
}
TIMES = {"createdAt": "2025-01-01T10:00:00Z", "completedAt": "2025-01-01T10:05:00Z"}
DEVELOP = {
    "kind": "develop",
    "runId": "$RUN_ID",
    "repo": "$REPO",
    **TIMES,
    "model": "sonnet",
    "prUrl": "$PULL_URL",
    "branchName": "$BRANCH",
    "commitSha": None,
    "testsPass": None,
}
BROKEN_RESEARCH = {key: value for key, value in RESEARCH.items() if key != "problemStatement"}


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Triggers(devhub, admin, org, app_server)


async def stand_in(devhub, tmp_path, plan):
    return await StandIn().start(devhub, tmp_path, plan)


def completed_check_run(name):
    """Match the `check_run.completed` delivery of check run `name`."""
    return lambda delivery: json.loads(delivery.body)["check_run"]["name"] == name


async def test_a_research_run_hands_its_artifact_to_develop(journey, devhub, tmp_path, admin):
    runner = await stand_in(devhub, tmp_path, {"research": RESEARCH})
    try:
        await journey.put_file(CONFIG_PATH, "workflows:\n  research: {then: develop}\n")
        await install_workflow(journey)
        number = await journey.issue()
        seen = await journey.seen()
        await journey.label(number, "coder:research")
        research = await runner.next("research")
        assert research["completed"] == 200
        delivery = await journey.handled(
            "check_run", "completed", seen, predicate=completed_check_run("coder/research")
        )
        develop = await runner.next("develop")
    finally:
        await runner.close()
    # The runner completed the check run with the app's token: the app is the sender, and
    # ingress still lets this event through.
    assert json.loads(delivery.body)["sender"]["login"] == "coder[bot]"
    assert delivery.status_code == 202
    research_id = research["run_id"]
    develop_id = run_id(REPO, "develop", number, f"then:{research_id}")
    assert develop["run_id"] == develop_id
    branch = f"coder/{number}-fix-the-frobnicator"
    snapshot, head = await journey.snapshot(branch)
    assert (snapshot.run_id, snapshot.workflow, snapshot.labeled_by) == (
        develop_id,
        "develop",
        "alice",
    )
    assert (snapshot.input_run, snapshot.input_check_run) == (research_id, research["check_run"])
    [check_run] = await journey.check_runs(head)
    assert (check_run["name"], check_run["external_id"]) == ("coder/develop", develop_id)
    # The research summary, once, on the issue.
    [summary] = [c for c in await journey.comments(number) if c["user"]["login"] == "coder[bot]"]
    [marker] = parse_markers(summary["body"])
    assert marker.matches("research-summary", {"run": research_id})
    assert "The frobnicator frobs twice." in summary["body"]
    assert "Frob once, then check." in summary["body"]
    assert "- Keep the public API: Callers rely on it." in summary["body"]
    spec = f"/{REPO}/blob/coder/{number}-research-fix-the-frobnicator/.coder/specs/{number}-"
    assert spec in summary["body"]
    # Redelivered to a fresh replica: the develop run exists, and the summary too.
    before = len(await journey.comments(number))
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await journey.branches(number)) == 2
    assert len(await workflow_runs(journey)) == 2
    assert len(await journey.comments(number)) == before


async def test_a_broken_artifact_stops_the_chain_with_a_red_check_run(journey, devhub, tmp_path):
    runner = await stand_in(devhub, tmp_path, {"research": BROKEN_RESEARCH})
    try:
        await install_workflow(journey)
        number = await journey.issue()
        seen = await journey.seen()
        # No `then:` in the config: this run asked for one itself (`Coder-Then`).
        await journey.comment(number, "/coder research --then develop")
        research = await runner.next("research")
        delivery = await journey.handled(
            "check_run", "completed", seen, predicate=completed_check_run("coder/research")
        )
    finally:
        await runner.close()
    [branch] = await journey.branch_names(number)
    snapshot, _ = await journey.snapshot(branch)
    assert snapshot.then == "develop"
    head = json.loads(delivery.body)["check_run"]["head_sha"]
    [stopped] = [r for r in await journey.check_runs(head) if r["name"] == "coder/develop"]
    assert stopped["conclusion"] == "failure"
    assert stopped["external_id"] == run_id(REPO, "develop", number, f"then:{research['run_id']}")
    assert stopped["output"]["title"] == "chain stopped: problemStatement: Field required"
    assert "- problemStatement: Field required" in stopped["output"]["summary"]
    assert len(await workflow_runs(journey)) == 1
    # Redelivered: the stopped chain is not reported twice, and nothing starts.
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    develop_runs = [r for r in await journey.check_runs(head) if r["name"] == "coder/develop"]
    assert len(develop_runs) == 1
    assert await journey.branch_names(number) == [branch]


async def test_a_run_that_hands_nothing_on_costs_the_app_no_request(
    journey, devhub, tmp_path, admin
):
    runner = await stand_in(devhub, tmp_path, {"develop": DEVELOP})
    try:
        await journey.put_file(CONFIG_PATH, "limits: {per_repo: 2}\n")
        await install_workflow(journey)
        number = await journey.issue()
        before = len(await admin.requests())
        seen = await journey.seen()
        await journey.label(number)
        await runner.next("develop")
        await journey.handled(
            "check_run", "completed", seen, predicate=completed_check_run("coder/develop")
        )
    finally:
        await runner.close()
    # The app's own token sees every repository; the runner's is narrowed to one.
    app_calls = [
        (r["method"], r["path"].split(f"/repos/{REPO}/", 1)[-1])
        for r in (await admin.requests())[before:]
        if r["token_owner"] == "coder[bot]" and not r["token_repository_ids"] and r["rate_limited"]
    ]
    # The run's nine, and nothing for looking at how it ended (the config read is a free 304).
    assert len(app_calls) == 9, app_calls
    assert app_calls[-1] == ("POST", "actions/workflows/coder.yml/dispatches")
