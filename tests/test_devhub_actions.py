"""devhub's Actions: workflows, dispatch, the local runner's environment contract, runs, jobs,
logs, cancel, a killed runner, timeouts, concurrency, variables and secrets.

The runner starts a stand-in for `coder-agent` (a tiny Python script set as `runner_command`) that
checks the environment contract and writes GITHUB_OUTPUT and GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import jwt
import pytest

from tests.support.devhub import installation_token
from tests.test_devhub_pulls import commit_file, payloads

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = (REPO_ROOT / "workflows-templates" / "coder.yml").read_text(encoding="utf-8")
INPUTS = {"run_id": "r-1", "issue": "7", "pull": "8", "check_run": "9"}

STAND_IN = r'''
import json, os, sys, time, urllib.request

REQUIRED = """GITHUB_ACTIONS CI GITHUB_EVENT_PATH GITHUB_EVENT_NAME GITHUB_OUTPUT
GITHUB_STEP_SUMMARY GITHUB_ENV GITHUB_REPOSITORY GITHUB_REPOSITORY_ID
GITHUB_REPOSITORY_OWNER GITHUB_RUN_ID GITHUB_RUN_ATTEMPT GITHUB_JOB
GITHUB_WORKFLOW GITHUB_REF GITHUB_SHA GITHUB_ACTOR GITHUB_SERVER_URL
GITHUB_API_URL GITHUB_GRAPHQL_URL GITHUB_WORKSPACE RUNNER_TEMP RUNNER_OS
RUNNER_NAME PATH HOME LANG ACTIONS_ID_TOKEN_REQUEST_URL
ACTIONS_ID_TOKEN_REQUEST_TOKEN""".split()
mode = sys.argv[1] if len(sys.argv) > 1 else "check"
missing = [name for name in REQUIRED if not os.environ.get(name)]
assert not missing, missing
assert os.environ["GITHUB_ACTIONS"] == os.environ["CI"] == "true"
assert os.environ["HOME"].startswith(os.path.dirname(os.environ["RUNNER_TEMP"]))
assert os.getcwd() == os.environ["GITHUB_WORKSPACE"]
assert "DEVHUB_TEST_LEAK" not in os.environ, "devhub's own environment leaked"
with open(os.environ["GITHUB_EVENT_PATH"]) as handle:
    event = json.load(handle)
request = urllib.request.Request(
    os.environ["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=coder",
    headers={"Authorization": "bearer " + os.environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]},
)
with urllib.request.urlopen(request) as answer:
    token = json.load(answer)["value"]
with open(os.environ["GITHUB_OUTPUT"], "a") as out:
    out.write("token=" + token + "\n")
    out.write("inputs=" + json.dumps(event["inputs"]) + "\n")
    out.write("ref=" + event["ref"] + "\n")
    names = ("CODER_APP_URL", "CODER_RUN_ID", "CODER_ISSUE", "CODER_APP_ID", "GITHUB_REPOSITORY")
    for name in names:
        out.write(name + "=" + os.environ.get(name, "<unset>") + "\n")
    out.write("notes<<EOF\nline one\nline two\nEOF\n")
with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as summary:
    summary.write("## coder stand-in\n")
print("stand-in running for", os.environ["GITHUB_REPOSITORY"], flush=True)
print("secret is", os.environ.get("CODER_APP_ID"), flush=True)
if mode == "block":
    print("blocking until stopped", flush=True)
    time.sleep(3600)
sys.exit(3 if mode == "fail" else 0)
'''


JOB_TIMEOUT = re.compile(r"^(    timeout-minutes:) .*$", re.MULTILINE)
AGENT_USES = re.compile(r"^(\s+)uses: \S*actions/agent@", re.MULTILINE)


def with_job_timeout(text, minutes):
    """Set the job's `timeout-minutes` in a workflow (the template has one)."""
    changed = JOB_TIMEOUT.sub(rf"\g<1> {minutes}", text, count=1)
    assert changed != text
    return changed


@pytest.fixture
def stand_in(devhub, tmp_path, monkeypatch):
    """Point devhub's runner at the stand-in script; return a function to pick its mode."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN, encoding="utf-8")
    monkeypatch.setenv("DEVHUB_TEST_LEAK", "must not reach the job")

    def use(mode="check"):
        devhub.runner_command = [sys.executable, str(script), mode]

    use()
    return use


async def add_workflow(rest, repo, name="coder.yml", text=TEMPLATE):
    await commit_file(rest, repo, "main", f".github/workflows/{name}", text, message=f"add {name}")


async def dispatch(rest, repo, inputs=None, workflow="coder.yml", ref="main"):
    body = {"ref": ref, "inputs": INPUTS if inputs is None else inputs}
    return await rest.post(f"/repos/{repo}/actions/workflows/{workflow}/dispatches", body)


async def app_rest(admin, devhub, org):
    return admin.rest(await installation_token(admin, devhub, org.installation_id))


async def dispatched_run(devhub, count=1):
    """Return the `count`-th run devhub recorded (waiting for it)."""
    return await devhub.wait_for_run(
        lambda r: sum(1 for x in r.repo.workflow_runs.values() if x.id <= r.id) == count
    )


async def test_dispatch_runs_the_agent_step_with_githubs_contract(
    devhub, admin, org, receiver, stand_in
):
    devhub.webhook_url = receiver.url
    alice = admin.rest(org.owner.token)
    await add_workflow(alice, org.repo)
    await admin.set_secret(org.repo, "CODER_APP_ID", "12345")
    bot = await app_rest(admin, devhub, org)
    status, _, body = await dispatch(bot, org.repo)
    assert (status, body) == (204, None)
    run = await devhub.wait_for_run((await dispatched_run(devhub)).id)
    assert (run.status, run.conclusion, run.executes) == ("completed", "success", True)
    assert run.display_title == "coder run r-1"
    job = run.jobs[0]
    assert job.name == "coder agent"
    assert job.labels == ["ubuntu-latest"]
    assert job.outputs["CODER_RUN_ID"] == "r-1"
    assert job.outputs["CODER_ISSUE"] == "7"
    assert job.outputs["CODER_APP_ID"] == "12345"
    # With CODER_APP_URL unset, the runner uses the origin of the app's webhook URL.
    assert job.outputs["CODER_APP_URL"] == receiver.url.removesuffix("/hook")
    assert json.loads(job.outputs["inputs"]) == INPUTS | {
        "runs_on": '"ubuntu-latest"',
        "read_only": "false",
    }
    assert job.outputs["ref"] == "refs/heads/main"
    assert job.outputs["notes"] == "line one\nline two"
    assert job.summary == "## coder stand-in\n"

    # REST: the run, its jobs, steps and logs.
    status, _, listed = await bot.get(f"/repos/{org.repo}/actions/runs?event=workflow_dispatch")
    assert [r["id"] for r in listed["workflow_runs"]] == [run.id]
    rendered = listed["workflow_runs"][0]
    assert rendered["display_title"] == "coder run r-1"
    assert rendered["html_url"] == f"{devhub.url}/acme/widgets/actions/runs/{run.id}"
    assert (rendered["head_branch"], rendered["event"], rendered["conclusion"]) == (
        "main",
        "workflow_dispatch",
        "success",
    )
    _, _, jobs = await bot.get(f"/repos/{org.repo}/actions/runs/{run.id}/jobs")
    steps = {s["name"]: s["conclusion"] for s in jobs["jobs"][0]["steps"]}
    # Only the agent step ran; the template's other steps (setup-python) are recorded skipped.
    assert steps.pop("Set up job") == steps.pop("Complete job") == "success"
    assert steps.pop("coder agent") == "success"
    assert steps
    assert set(steps.values()) == {"skipped"}
    assert jobs["jobs"][0]["html_url"].endswith(f"/actions/runs/{run.id}/job/{job.id}")
    async with admin.session.get(
        f"{devhub.api_url}/repos/{org.repo}/actions/jobs/{job.id}/logs",
        headers={"Authorization": f"token {org.owner.token}"},
        allow_redirects=False,
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    async with admin.session.get(location) as response:
        log = await response.text()
    assert "stand-in running for acme/widgets" in log
    assert "secret is ***" in log
    assert "12345" not in log
    assert "skipped by devhub: only coder's agent step runs locally" in log

    # Every transition was announced, in GitHub's order.
    await devhub.wait_for_delivery(event="workflow_run", action="completed")
    assert [p["action"] for p in payloads(devhub, "workflow_run")] == [
        "requested",
        "in_progress",
        "completed",
    ]
    assert [p["action"] for p in payloads(devhub, "workflow_job")] == [
        "queued",
        "in_progress",
        "completed",
    ]
    completed = payloads(devhub, "workflow_run", "completed")[0]
    assert completed["workflow_run"]["display_title"] == "coder run r-1"
    assert completed["workflow_run"]["name"] == "coder"
    # The job's check run belongs to the GitHub Actions app, and shares the job's id.
    _, _, checks = await bot.get(f"/repos/{org.repo}/commits/{run.head_sha}/check-runs")
    assert [(c["id"], c["app"]["slug"], c["conclusion"]) for c in checks["check_runs"]] == [
        (job.id, "github-actions", "success")
    ]


async def test_the_id_token_verifies_against_the_published_keys(devhub, admin, org, stand_in):
    alice = admin.rest(org.owner.token)
    await add_workflow(alice, org.repo)
    await dispatch(await app_rest(admin, devhub, org), org.repo)
    run = await devhub.wait_for_run((await dispatched_run(devhub)).id)
    token = run.jobs[0].outputs["token"]
    async with admin.session.get(
        f"{devhub.url}/_services/token/.well-known/openid-configuration"
    ) as response:
        discovery = await response.json()
    assert discovery["issuer"] == devhub.oidc_issuer == f"{devhub.url}/_services/token"
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    client = jwt.PyJWKClient(discovery["jwks_uri"])
    key = await asyncio.to_thread(client.get_signing_key_from_jwt, token)
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="coder", issuer=discovery["issuer"]
    )
    repo = devhub.state.repo("acme", "widgets")
    assert claims["sub"] == "repo:acme/widgets:ref:refs/heads/main"
    assert claims | {"exp": 0, "iat": 0, "nbf": 0, "jti": ""} == claims | {
        "exp": 0,
        "iat": 0,
        "nbf": 0,
        "jti": "",
        "repository": "acme/widgets",
        "repository_id": str(repo.id),
        "repository_owner": "acme",
        "repository_owner_id": str(repo.owner.id),
        "run_id": str(run.id),
        "run_number": "1",
        "run_attempt": "1",
        "workflow": "coder",
        "workflow_ref": "acme/widgets/.github/workflows/coder.yml@refs/heads/main",
        "job_workflow_ref": "acme/widgets/.github/workflows/coder.yml@refs/heads/main",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "sha": run.head_sha,
        "actor": "coder[bot]",
        "event_name": "workflow_dispatch",
        "runner_environment": "self-hosted",
    }
    assert 300 <= claims["exp"] - claims["iat"] <= 600
    assert claims["nbf"] <= claims["iat"]
    # The request token dies with the job.
    status = await _id_token_status(admin, devhub, "not-a-job-token")
    assert status == 401


async def _id_token_status(admin, devhub, token):
    url = f"{devhub.url}/_services/token/idtoken?api-version=2.0&audience=coder"
    async with admin.session.get(url, headers={"Authorization": f"bearer {token}"}) as response:
        return response.status


async def test_dispatch_refusals(devhub, admin, org, stand_in):
    alice = admin.rest(org.owner.token)
    bot = await app_rest(admin, devhub, org)
    status, _, missing = await dispatch(bot, org.repo)
    assert (status, missing["message"]) == (404, "Not Found")
    await add_workflow(alice, org.repo)
    await add_workflow(
        alice,
        org.repo,
        "ci.yml",
        "on: push\njobs:\n  t:\n    runs-on: x\n    steps: [{run: 'true'}]\n",
    )
    status, _, answer = await dispatch(bot, org.repo, ref="nope")
    assert (status, answer["message"]) == (422, "No ref found for: nope")
    status, _, answer = await dispatch(bot, org.repo, INPUTS | {"extra": "1"})
    assert (status, answer["message"]) == (422, 'Unexpected inputs provided: ["extra"]')
    status, _, answer = await dispatch(bot, org.repo, {"run_id": "x"})
    assert (status, answer["message"]) == (422, "Required input 'issue' not provided")
    status, _, answer = await dispatch(bot, org.repo, {}, workflow="ci.yml")
    assert (status, answer["message"]) == (
        422,
        "Workflow does not have 'workflow_dispatch' trigger",
    )
    narrow = await installation_token(
        admin, devhub, org.installation_id, permissions={"contents": "read"}
    )
    status, _, answer = await dispatch(admin.rest(narrow), org.repo)
    assert (status, answer["message"]) == (403, "Resource not accessible by integration")
    _, _, workflows = await bot.get(f"/repos/{org.repo}/actions/workflows")
    assert sorted(w["path"] for w in workflows["workflows"]) == [
        ".github/workflows/ci.yml",
        ".github/workflows/coder.yml",
    ]
    coder = next(w for w in workflows["workflows"] if w["name"] == "coder")
    _, _, by_id = await bot.get(f"/repos/{org.repo}/actions/workflows/{coder['id']}")
    _, _, by_file = await bot.get(f"/repos/{org.repo}/actions/workflows/coder.yml")
    assert by_id == by_file
    assert devhub.state.repo("acme", "widgets").workflow_runs == {}


async def test_workflows_without_the_agent_step_are_recorded_not_run(devhub, admin, org, stand_in):
    alice = admin.rest(org.owner.token)
    ci = (
        "name: ci\non: workflow_dispatch\njobs:\n  test:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: make test\n"
    )
    await add_workflow(alice, org.repo, "ci.yml", ci)
    status, _, _ = await dispatch(alice, org.repo, {}, workflow="ci.yml")
    assert status == 204
    run = await devhub.wait_for_run((await dispatched_run(devhub)).id)
    assert (run.conclusion, run.executes, run.jobs[0].conclusion) == ("skipped", False, "skipped")
    runs = await admin.runs()
    assert runs[0]["executed"] is False
    assert "devhub runs only jobs that use coder's agent action" in runs[0]["note"]
    async with admin.session.get(runs[0]["jobs"][0]["log_url"]) as response:
        assert "recorded the run without running it" in await response.text()


async def test_cancel_stops_the_step(devhub, admin, org, receiver, stand_in):
    devhub.webhook_url = receiver.url
    stand_in("block")
    alice = admin.rest(org.owner.token)
    await add_workflow(alice, org.repo)
    bot = await app_rest(admin, devhub, org)
    await dispatch(bot, org.repo)
    started = await devhub.wait_for_run(lambda r: any(j.pid for j in r.jobs))
    status, _, body = await bot.post(f"/repos/{org.repo}/actions/runs/{started.id}/cancel")
    assert (status, body) == (202, {})
    run = await devhub.wait_for_run(started.id)
    assert (run.conclusion, run.jobs[0].conclusion) == ("cancelled", "cancelled")
    assert any("The operation was canceled." in line for line in run.jobs[0].log)
    status, _, refused = await bot.post(f"/repos/{org.repo}/actions/runs/{run.id}/cancel")
    assert (status, refused["message"]) == (409, "Cannot cancel a workflow run that is completed.")
    completed = await devhub.wait_for_delivery(event="workflow_job", action="completed")
    assert json.loads(completed.body)["workflow_job"]["conclusion"] == "cancelled"


async def test_a_killed_runner_fails_the_job(devhub, admin, org, receiver, stand_in):
    devhub.webhook_url = receiver.url
    stand_in("block")
    alice = admin.rest(org.owner.token)
    await add_workflow(alice, org.repo)
    await dispatch(await app_rest(admin, devhub, org), org.repo)
    queued = await dispatched_run(devhub)
    assert await devhub.kill_runner(queued.id) is True
    run = await devhub.wait_for_run(queued.id)
    assert (run.conclusion, run.jobs[0].conclusion) == ("failure", "failure")
    assert any("lost communication with the server" in line for line in run.jobs[0].log)
    delivery = await devhub.wait_for_delivery(event="workflow_run", action="completed")
    assert json.loads(delivery.body)["workflow_run"]["conclusion"] == "failure"
    assert await devhub.kill_runner(run.id) is False  # nothing left to kill


async def test_timeouts(devhub, admin, org, stand_in):
    stand_in("block")
    alice = admin.rest(org.owner.token)
    job_limit = with_job_timeout(TEMPLATE, "0.005")
    await add_workflow(alice, org.repo, "coder.yml", job_limit)
    bot = await app_rest(admin, devhub, org)
    await dispatch(bot, org.repo)
    run = await devhub.wait_for_run((await dispatched_run(devhub)).id)
    assert run.jobs[0].conclusion == "cancelled"
    assert any("exceeded the maximum execution time" in line for line in run.jobs[0].log)
    step_limit = AGENT_USES.sub(r"\g<1>timeout-minutes: 0.005\n\g<0>", TEMPLATE, count=1)
    assert step_limit != TEMPLATE
    await add_workflow(alice, org.repo, "coder.yml", step_limit)
    await dispatch(bot, org.repo)
    second = await devhub.wait_for_run((await dispatched_run(devhub, 2)).id)
    assert second.jobs[0].conclusion == "failure"
    assert any("has timed out after 0.005 minutes" in line for line in second.jobs[0].log)


async def test_a_concurrency_group_runs_one_at_a_time(devhub, admin, org, receiver, stand_in):
    devhub.webhook_url = receiver.url
    stand_in("block")
    alice = admin.rest(org.owner.token)
    await add_workflow(alice, org.repo)
    bot = await app_rest(admin, devhub, org)
    await dispatch(bot, org.repo)
    first = await devhub.wait_for_run(lambda r: any(j.pid for j in r.jobs))
    await dispatch(bot, org.repo, INPUTS | {"run_id": "r-2"})
    second = await devhub.wait_for_run(lambda r: r.status == "pending")
    assert second.id != first.id
    await bot.post(f"/repos/{org.repo}/actions/runs/{first.id}/cancel")
    await devhub.wait_for_run(first.id)
    running = await devhub.wait_for_run(lambda r: r.id == second.id and any(j.pid for j in r.jobs))
    await bot.post(f"/repos/{org.repo}/actions/runs/{running.id}/cancel")
    await devhub.wait_for_run(second.id)
    await devhub.wait_for_delivery(
        event="workflow_run",
        action="completed",
        predicate=lambda d: json.loads(d.body)["workflow_run"]["id"] == second.id,
    )
    order = [
        (p["action"], p["workflow_run"]["id"])
        for p in payloads(devhub, "workflow_run")
        if p["action"] != "requested"
    ]
    assert order == [
        ("in_progress", first.id),
        ("completed", first.id),
        ("in_progress", second.id),
        ("completed", second.id),
    ]


async def test_repository_variable_wins_over_the_fallback(devhub, admin, org, receiver, stand_in):
    devhub.webhook_url = receiver.url
    alice = admin.rest(org.owner.token)
    await add_workflow(alice, org.repo)
    await alice.post(
        f"/repos/{org.repo}/actions/variables",
        {"name": "CODER_APP_URL", "value": "http://app.example"},
    )
    await dispatch(await app_rest(admin, devhub, org), org.repo)
    run = await devhub.wait_for_run((await dispatched_run(devhub)).id)
    assert run.jobs[0].outputs["CODER_APP_URL"] == "http://app.example"
    assert run.jobs[0].outputs["CODER_APP_ID"] == ""  # an unset secret is empty, as on GitHub


async def test_a_failing_step_fails_the_run(devhub, admin, org, stand_in):
    stand_in("fail")
    alice = admin.rest(org.owner.token)
    await add_workflow(alice, org.repo)
    await dispatch(await app_rest(admin, devhub, org), org.repo)
    run = await devhub.wait_for_run((await dispatched_run(devhub)).id)
    assert (run.conclusion, run.jobs[0].conclusion) == ("failure", "failure")
    assert any("Process completed with exit code 3." in line for line in run.jobs[0].log)
