"""Pull-request runs under races, and the gate's refusals, on devhub; subjects from payloads."""

import json
from pathlib import Path

import pytest

from app import develop
from app.config import parse_config
from app.develop import PullHead, RunRequest, Subject, TriggerKind, sender_allowed
from app.gate import start_run
from app.installation import ensure_labels
from app.markers import parse_markers
from app.permissions import Refusal, SenderCheck
from app.repo_config import fetch_config
from app.settings import load_settings
from app.triggers import pull_subject
from tests.support.app import serve_app
from tests.test_develop import REPO, FakeRunner, deliver_to_all, install_workflow, workflow_runs
from tests.test_triggers import Triggers

EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"


def test_a_pull_request_from_another_repository_is_a_fork():
    payload = json.loads((EXAMPLES / "pull_request.opened.json").read_text())
    repo = payload["repository"]["full_name"]
    pull = payload["pull_request"]
    same = pull_subject(pull, repo)
    assert same.pull == PullHead(
        pull["head"]["sha"], pull["head"]["ref"], pull["html_url"], from_fork=False
    )
    assert (same.number, same.title) == (pull["number"], pull["title"])
    pull["head"]["repo"]["full_name"] = "someone/Hello-World"
    assert pull_subject(pull, repo).pull.from_fork
    pull["head"]["repo"] = None  # the fork was deleted
    assert pull_subject(pull, repo).pull.from_fork


WORKFLOWS = parse_config(None).config.workflows


@pytest.mark.parametrize(
    ("sender", "workflow", "kind", "allowed"),
    [
        (SenderCheck("alice", "write"), "develop", TriggerKind.LABEL, True),
        (SenderCheck("bob", "triage", Refusal.NO_WRITE), "develop", TriggerKind.LABEL, False),
        # Review only reads: triage may ask for one, read may not.
        (SenderCheck("bob", "triage", Refusal.NO_WRITE), "review", TriggerKind.COMMAND, True),
        (SenderCheck("carol", "read", Refusal.NO_WRITE), "review", TriggerKind.COMMAND, False),
        # A dispatch sent by a workflow's GITHUB_TOKEN speaks for the repository itself.
        (
            SenderCheck("github-actions[bot]", "bot", Refusal.BOT_NOT_ALLOWED),
            "develop",
            TriggerKind.DISPATCH,
            True,
        ),
        (
            SenderCheck("github-actions[bot]", "bot", Refusal.BOT_NOT_ALLOWED),
            "develop",
            TriggerKind.LABEL,
            False,
        ),
        (
            SenderCheck("helper[bot]", "bot", Refusal.BOT_NOT_ALLOWED),
            "develop",
            TriggerKind.DISPATCH,
            False,
        ),
    ],
)
def test_who_may_start_what(sender, workflow, kind, allowed):
    assert sender_allowed(sender, WORKFLOWS[workflow], kind) is allowed


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Triggers(devhub, admin, org, app_server)


@pytest.fixture
async def fake_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "report")
    yield runner
    await runner.close()


async def test_two_replicas_racing_on_a_review_make_one_run(journey, receiver, admin, fake_runner):
    await install_workflow(journey)
    pull = await journey.open_pull()
    journey.devhub.webhook_url = receiver.url
    status, _, _ = await journey.rest.post(
        f"/repos/{REPO}/issues/{pull['number']}/labels", {"labels": ["coder:review"]}
    )
    assert status == 200
    await journey.devhub.wait_for_delivery(event="pull_request", action="labeled")
    [received] = [r for r in receiver.received if json.loads(r.body).get("action") == "labeled"]
    # Both replicas look before either creates: both create, and the younger check run retires.
    path = f"/repos/{REPO}/commits/{pull['head']['sha']}/check-runs"
    await admin.add_fault(kind="latency", delay_ms=300, method="GET", path=path, times=2)
    replica = await serve_app(load_settings(None, journey.devhub.app_env()))
    try:
        outcomes = await deliver_to_all([journey.app_server, replica], received)
    finally:
        await replica.close()
    assert outcomes == ["ok", "ok"]
    runs = [r for r in await journey.check_runs(pull["head"]["sha"]) if r["name"] == "coder/review"]
    live = [r for r in runs if r["conclusion"] != "neutral"]
    assert len(live) == 1
    assert [r["output"]["title"] for r in runs if r not in live] == [
        f"duplicate of {live[0]['id']}"
    ] * (len(runs) - 1)
    assert len(runs) == 2  # the latency made them race
    assert len(await workflow_runs(journey)) == 1
    assert (await fake_runner.reports.get())["inputs"]["check_run"] == str(live[0]["id"])


async def request_on(journey, subject, **fields):
    """Hand a request straight to the gate, as a trigger would."""
    gh = journey.app_server.access.for_installation(journey.org.installation_id)
    result = await fetch_config(gh, REPO, "main")
    request = RunRequest(
        repo=REPO,
        default_branch="main",
        workflow=fields.pop("workflow", "review"),
        subject=subject,
        requested_by="alice",
        sender_type="User",
        kind=fields.pop("kind", TriggerKind.COMMAND),
        trigger="`/coder review`",
        trigger_key="delivery-1",
        at="2025-01-01T00:00:00Z",
        **fields,
    )
    token = develop.APP_ACCESS.set(journey.app_server.access)
    try:
        await start_run(gh, request, result)
    finally:
        develop.APP_ACCESS.reset(token)
    return request


async def bot_markers(journey, number):
    return [
        m.kind
        for c in await journey.comments(number)
        if c["user"]["login"] == "coder[bot]"
        for m in parse_markers(c["body"])
    ]


async def test_a_pull_request_from_a_fork_is_refused_once(journey):
    pull = await journey.open_pull()
    head = PullHead(pull["head"]["sha"], "feature", pull["html_url"], from_fork=True)
    subject = Subject(pull["number"], pull["title"], None, pull=head)
    await request_on(journey, subject)
    await request_on(journey, subject)
    assert await bot_markers(journey, pull["number"]) == ["fork-refused"]
    assert [
        r for r in await journey.check_runs(pull["head"]["sha"]) if r["name"] == "coder/review"
    ] == []


async def test_a_review_needs_a_pull_request(journey):
    number = await journey.issue()
    await request_on(journey, Subject(number, "Fix it", None))
    assert await bot_markers(journey, number) == ["input-invalid"]
    assert "review works on a pull request" in (await journey.comments(number))[-1]["body"]
    assert await journey.branches(number) == []


async def test_an_automatic_trigger_refuses_quietly(journey, admin):
    outsider = await admin.create_user("outsider")
    number = await journey.issue()
    gh = journey.app_server.access.for_installation(journey.org.installation_id)
    result = await fetch_config(gh, REPO, "main")
    request = RunRequest(
        repo=REPO,
        default_branch="main",
        workflow="develop",
        subject=Subject(number, "Fix it", None),
        requested_by=outsider.login,
        sender_type="User",
        kind=TriggerKind.PULL_REQUEST,
        trigger="pull_request.opened",
        trigger_key="d",
        at="2025-01-01T00:00:00Z",
    )
    token = develop.APP_ACCESS.set(journey.app_server.access)
    try:
        await start_run(gh, request, result)
    finally:
        develop.APP_ACCESS.reset(token)
    assert await journey.comments(number) == []
    assert await journey.branches(number) == []
