"""`issues.labeled` on devhub: refusals, invalid config, the claim, and exactly-once effects."""

import asyncio
import base64
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app import develop
from app.briefing import snapshot_from_commit
from app.installation import ensure_labels
from app.markers import parse_markers
from app.settings import load_settings
from tests.support.app import serve_app

REPO = "acme/widgets"
CONFIG_PATH = ".github/coder.yml"


class Journey:
    """A person using GitHub: issues, labels, files; and what the app did in answer."""

    def __init__(self, devhub, admin, org, app_server):
        self.devhub = devhub
        self.admin = admin
        self.org = org
        self.app_server = app_server
        self.rest = admin.rest(org.owner.token)

    async def issue(self, title="Fix the frobnicator", body="It frobs twice.", token=None):
        rest = self.rest if token is None else self.admin.rest(token)
        status, _, issue = await rest.post(f"/repos/{REPO}/issues", {"title": title, "body": body})
        assert status == 201, issue
        return issue["number"]

    async def label(self, number, name="coder:develop", token=None, app=None, outcome="ok"):
        """Add a label and wait until the app has handled the delivery."""
        rest = self.rest if token is None else self.admin.rest(token)
        seen = await self.seen()
        status, _, answer = await rest.post(
            f"/repos/{REPO}/issues/{number}/labels", {"labels": [name]}
        )
        assert status == 200, answer
        event = "pull_request" if await self.is_pull(number) else "issues"
        return await self.handled(event, "labeled", seen, app=app, outcome=outcome)

    async def is_pull(self, number):
        return "pull_request" in await self.get(f"/repos/{REPO}/issues/{number}")

    async def seen(self):
        """Return the ids of the deliveries so far (to wait for the next one)."""
        return {d["id"] for d in await self.admin.deliveries()}

    async def handled(self, event, action=None, seen=(), *, app=None, outcome="ok", predicate=None):
        """Wait for a new delivery of `event` and, if the app took it, for its outcome."""
        delivery = await self.devhub.wait_for_delivery(
            event=event,
            action=action,
            predicate=lambda d: d.id not in seen and (predicate is None or predicate(d)),
        )
        if delivery.status_code == 202:
            assert await (app or self.app_server).queue.wait_for(delivery.guid) == outcome
        return delivery

    async def put_file(self, path, text, message="add file", branch=None):
        """Commit a file (a push the app hears of) and wait until the app has handled it."""
        content = base64.b64encode(text.encode()).decode()
        body = {"message": message, "content": content} | ({"branch": branch} if branch else {})
        seen = await self.seen()
        status, _, answer = await self.rest.put(f"/repos/{REPO}/contents/{path}", body)
        assert status == 201, answer
        await self.handled("push", seen=seen)

    async def get(self, path):
        status, _, answer = await self.rest.get(path)
        assert status == 200, answer
        return answer

    async def comments(self, number):
        return await self.get(f"/repos/{REPO}/issues/{number}/comments?per_page=100")

    async def branches(self, number):
        return await self.get(f"/repos/{REPO}/git/matching-refs/heads/coder/{number}-")

    async def pulls(self):
        return await self.get(f"/repos/{REPO}/pulls?state=all&per_page=100")

    async def check_runs(self, ref):
        answer = await self.get(f"/repos/{REPO}/commits/{ref}/check-runs?filter=all")
        return answer["check_runs"]

    async def issue_labels(self, number):
        return {label["name"] for label in await self.get(f"/repos/{REPO}/issues/{number}/labels")}


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    # What the app does on installation; here the app started after the org was installed.
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Journey(devhub, admin, org, app_server)


def markers_of(comments):
    return [(m.kind, m.fields) for c in comments for m in parse_markers(c["body"])]


async def test_a_label_that_starts_nothing_is_ignored(journey):
    number = await journey.issue()
    await journey.label(number, "bug")
    assert await journey.branches(number) == []
    assert await journey.comments(number) == []


async def test_triagers_are_refused_once(journey, admin):
    # Triage is the least access that can label an issue on GitHub; reading is not enough.
    person = await admin.create_user("triager")
    await admin.add_collaborator(REPO, person.login, "triage")
    number = await journey.issue()
    delivery = await journey.label(number, token=person.token)
    comments = await journey.comments(number)
    assert [c["user"]["login"] for c in comments] == ["coder[bot]"]
    assert markers_of(comments)[0] == ("refusal", {"run": markers_of(comments)[0][1]["run"]})
    assert "@triager has `triage` access" in comments[0]["body"]
    assert await journey.branches(number) == []
    # A redelivery, here to a fresh replica with an empty dedupe cache, posts nothing more.
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await journey.comments(number)) == 1


async def test_a_bot_is_refused_unless_allow_listed(journey, admin):
    bot = await admin.create_user("helper[bot]", "Bot")
    await admin.add_collaborator(REPO, bot.login, "write")
    number = await journey.issue()
    delivery = await journey.label(number, token=bot.token)
    comments = await journey.comments(number)
    assert [c["user"]["login"] for c in comments] == ["coder[bot]"]
    assert markers_of(comments)[0][0] == "refusal"
    assert "allowed_bots" in comments[0]["body"]
    assert await journey.branches(number) == []
    assert await journey.pulls() == []
    # A redelivery, to a fresh replica with an empty dedupe cache, posts nothing more.
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert [c["id"] for c in await journey.comments(number)] == [comments[0]["id"]]
    assert await journey.branches(number) == []


async def test_a_forged_refusal_marker_does_not_silence_the_app(journey, admin):
    person = await admin.create_user("triager")
    await admin.add_collaborator(REPO, person.login, "triage")
    number = await journey.issue()
    seen = {d["id"] for d in await admin.deliveries()}
    await journey.label(number, token=person.token)
    refusal = (await journey.comments(number))[0]
    await journey.rest.delete(f"/repos/{REPO}/issues/comments/{refusal['id']}")
    # Someone pastes the marker into their own comment before the redelivery arrives.
    await journey.rest.post(f"/repos/{REPO}/issues/{number}/comments", {"body": refusal["body"]})
    delivery = next(
        d for d in await admin.deliveries() if d["id"] not in seen and d["event"] == "issues"
    )
    assert await redeliver_to_fresh_replica(journey, delivery["id"]) == "ok"
    authors = [c["user"]["login"] for c in await journey.comments(number)]
    assert authors == ["alice", "coder[bot]"]


async def test_an_invalid_config_fails_a_check_run_at_the_line(journey):
    await journey.put_file(CONFIG_PATH, "agent:\n  backend: claude\nlimits:\n  max_concurrent: 0\n")
    number = await journey.issue()
    await journey.label(number)
    assert await journey.branches(number) == []
    # The push put `coder/config` on the commit; the trigger points there and adds no other.
    runs = await journey.check_runs("main")
    assert [(run["name"], run["conclusion"]) for run in runs] == [("coder/config", "failure")]
    check_run = runs[0]
    annotations = await journey.get(f"/repos/{REPO}/check-runs/{check_run['id']}/annotations")
    assert [(a["path"], a["start_line"]) for a in annotations] == [(CONFIG_PATH, 4)]
    comments = await journey.comments(number)
    assert len(comments) == 1
    assert markers_of(comments)[0][0] == "config-invalid"
    assert f"`{CONFIG_PATH}:4`" in comments[0]["body"]
    assert check_run["html_url"] in comments[0]["body"]


async def test_a_missing_workflow_fails_the_run_and_says_how_to_add_it(journey, admin):
    number = await journey.issue()
    delivery = await journey.label(number)
    [branch] = await journey.branches(number)
    assert branch["ref"] == f"refs/heads/coder/{number}-fix-the-frobnicator"
    [pull] = await journey.pulls()
    assert pull["draft"] is True
    [check_run] = await journey.check_runs(branch["object"]["sha"])
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "failure")
    assert ".github/workflows/coder.yml" in check_run["output"]["summary"]
    comments = await journey.comments(number)
    assert [kind for kind, _ in markers_of(comments)] == ["workflow-missing"]
    assert "workflows-templates/coder.yml" in comments[0]["body"]
    assert "coder:running" not in await journey.issue_labels(number)
    # Redelivered to a fresh replica: the run exists, nothing is written again.
    before = len(await admin.requests())
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert await app_writes(admin, since=before) == CLAIM_ATTEMPT
    assert len(await journey.comments(number)) == 1


# A redelivery tries the claim again (the commit is the same object, the ref is taken: 422),
# then finds its run and stops.
CLAIM_ATTEMPT = [("POST", "git/commits", 201), ("POST", "git/refs", 422)]


async def app_writes(admin, since=0):
    """The app's writes after request number `since`: (method, path after the repo, status)."""
    return [
        (r["method"], r["path"].split(f"/repos/{REPO}/", 1)[-1], r["status"])
        for r in (await admin.requests())[since:]
        if r["token_owner"] == "coder[bot]"
        and r["method"] != "GET"
        and "/access_tokens" not in r["path"]
    ]


async def deliver_to_all(apps, received):
    """Send one recorded delivery, byte for byte, to several replicas at once."""

    async def send(app):
        async with app.session.post(
            app.webhook_url, data=received.body, headers=received.headers
        ) as response:
            assert response.status == 202, await response.text()
        return await app.queue.wait_for(received.headers["X-GitHub-Delivery"])

    return await asyncio.gather(*(send(app) for app in apps))


async def label_for_replicas(journey, receiver, number):
    """Add the label with deliveries going to `receiver`; return the recorded delivery."""
    journey.devhub.webhook_url = receiver.url
    status, _, _ = await journey.rest.post(
        f"/repos/{REPO}/issues/{number}/labels", {"labels": ["coder:develop"]}
    )
    assert status == 200
    await journey.devhub.wait_for_delivery(event="issues", action="labeled")
    return next(r for r in receiver.received if r.headers["X-GitHub-Event"] == "issues")


# The workflow as users install it, and a stand-in for coder-agent that devhub's local runner
# starts in its place: it reports what it was given (and, when asked, exchanges the job's OIDC
# token at the app and marks the check run in progress), then works until it is stopped.
TEMPLATE = Path(__file__).parents[1] / "workflows-templates" / "coder.yml"
FAKE_AGENT = """
import base64, json, os, sys, time, urllib.error, urllib.request

def call(method, url, headers=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")

report_url, mode = sys.argv[1], sys.argv[2]
names = ["CODER_RUN_ID", "CODER_ISSUE", "CODER_PULL", "CODER_CHECK_RUN", "GITHUB_RUN_ID"]
report = {name: os.environ.get(name) for name in names}
with open(os.environ["GITHUB_EVENT_PATH"]) as event:
    report["inputs"] = json.load(event)["inputs"]
if mode == "exchange":
    id_token_url = os.environ["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=coder"
    bearer = {"Authorization": "bearer " + os.environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]}
    _, id_token = call("GET", id_token_url, bearer)
    payload = id_token["value"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    wanted = ("event_name", "workflow_ref", "job_workflow_ref")
    report["claims"] = {name: claims.get(name) for name in wanted}
    app_url = os.environ["CODER_APP_URL"] + "/api/token"
    status, answer = call("POST", app_url, {"Authorization": "Bearer " + id_token["value"]})
    report["exchange"] = {"status": status, "repository": answer.get("repository"),
                          "permissions": answer.get("permissions")}
    check_run = "{}/repos/{}/check-runs/{}".format(
        os.environ["GITHUB_API_URL"], os.environ["GITHUB_REPOSITORY"], os.environ["CODER_CHECK_RUN"]
    )
    status, _ = call("PATCH", check_run, {"Authorization": "token " + answer["token"]},
                     {"status": "in_progress"})
    report["in_progress"] = status
call("POST", report_url, body=report)
time.sleep(3600)
"""


class FakeRunner:
    """Collects what the stand-in agent reports, one report per job."""

    def __init__(self):
        self.reports = asyncio.Queue()
        self.server = None

    async def start(self, devhub, tmp_path, mode):
        app = web.Application()

        async def report(request):
            await self.reports.put(await request.json())
            return web.json_response({})

        app.router.add_post("/report", report)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        script = tmp_path / "fake_agent.py"
        script.write_text(FAKE_AGENT)
        url = str(self.server.make_url("/report"))
        devhub.runner_command = [sys.executable, str(script), url, mode]
        return self

    async def close(self):
        await self.server.close()


async def install_workflow(journey, app_url=None):
    """Add coder's workflow template, and the CODER_APP_URL variable it reads."""
    await journey.put_file(".github/workflows/coder.yml", TEMPLATE.read_text())
    variable = {"name": "CODER_APP_URL", "value": app_url or journey.app_server.url}
    status, _, answer = await journey.rest.post(f"/repos/{REPO}/actions/variables", variable)
    assert status == 201, answer


@pytest.fixture
async def fake_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "report")
    yield runner
    await runner.close()


async def test_a_run_is_visible_and_dispatched_with_ids_only(journey, fake_runner):
    await journey.put_file(CONFIG_PATH, "runner: {runs-on: [self-hosted, gpu]}\n")
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    [branch] = await journey.branches(number)
    assert branch["ref"] == f"refs/heads/coder/{number}-fix-the-frobnicator"
    head = branch["object"]["sha"]
    main = await journey.get(f"/repos/{REPO}/branches/main")
    commit = await journey.get(f"/repos/{REPO}/git/commits/{head}")
    # The claim commit is empty and carries the issue as it was when labelled.
    assert commit["tree"]["sha"] == main["commit"]["commit"]["tree"]["sha"]
    assert [p["sha"] for p in commit["parents"]] == [main["commit"]["sha"]]
    snapshot = snapshot_from_commit(REPO, commit["message"])
    assert (snapshot.title, snapshot.body, snapshot.labeled_by) == (
        "Fix the frobnicator",
        "It frobs twice.",
        "alice",
    )
    [pull] = await journey.pulls()
    assert (pull["draft"], pull["head"]["ref"], pull["base"]["ref"]) == (
        True,
        f"coder/{number}-fix-the-frobnicator",
        "main",
    )
    assert pull["title"] == "[coder] Fix the frobnicator"
    assert f"Closes #{number}" in pull["body"]
    [check_run] = await journey.check_runs(head)
    assert (check_run["name"], check_run["status"]) == ("coder/develop", "queued")
    assert check_run["external_id"] == snapshot.run_id
    assert check_run["details_url"] == pull["html_url"]
    assert "queued" in check_run["output"]["summary"]
    assert "self-hosted, gpu" in check_run["output"]["summary"]
    assert "coder:running" in await journey.issue_labels(number)
    assert await journey.comments(number) == []
    report = await fake_runner.reports.get()
    # Ids only; the event payload keeps them as the strings that were dispatched, and fills in
    # the defaults of the inputs that were not (a run is read-only only on a fork's code).
    assert report["inputs"] == {
        "read_only": "false",
        "run_id": snapshot.run_id,
        "issue": str(number),
        "pull": str(pull["number"]),
        "check_run": str(check_run["id"]),
        "runs_on": '["self-hosted", "gpu"]',
    }
    assert report["CODER_RUN_ID"] == snapshot.run_id
    [workflow_run] = (await journey.get(f"/repos/{REPO}/actions/runs"))["workflow_runs"]
    assert workflow_run["display_title"] == f"coder run {snapshot.run_id}"


async def test_a_develop_run_costs_nine_app_requests(journey, fake_runner, admin):
    # An onboarded repository has its own config; without one the app also looks for the org's
    # defaults in acme/.github (one more read, the config's business, not the run's).
    await journey.put_file(CONFIG_PATH, "limits: {per_repo: 2}\n")
    await install_workflow(journey)
    number = await journey.issue()
    before = len(await admin.requests())
    await journey.label(number)
    calls = [
        (r["method"], r["path"].split(f"/repos/{REPO}/", 1)[-1], r["status"])
        for r in (await admin.requests())[before:]
        if r["token_owner"] == "coder[bot]"
    ]
    assert calls == [
        ("GET", "contents/.github/coder.yml", 200),
        ("GET", "collaborators/alice/permission", 200),
        ("GET", "branches/main", 200),
        ("POST", "git/commits", 201),
        ("POST", "git/refs", 201),
        ("POST", "pulls", 201),
        ("POST", "check-runs", 201),
        ("POST", f"issues/{number}/labels", 200),
        ("POST", "actions/workflows/coder.yml/dispatches", 204),
    ]


async def workflow_runs(journey):
    return (await journey.get(f"/repos/{REPO}/actions/runs"))["workflow_runs"]


async def test_two_replicas_handling_one_delivery_make_one_run(journey, receiver, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    received = await label_for_replicas(journey, receiver, number)
    replica = await serve_app(load_settings(None, journey.devhub.app_env()))
    try:
        assert await deliver_to_all([journey.app_server, replica], received) == ["ok", "ok"]
    finally:
        await replica.close()
    branches = await journey.branches(number)
    assert len(branches) == 1
    assert len(await journey.pulls()) == 1
    assert len(await journey.check_runs(branches[0]["object"]["sha"])) == 1
    assert len(await workflow_runs(journey)) == 1
    assert await journey.comments(number) == []


async def test_a_redelivered_label_starts_nothing_more(journey, fake_runner, admin):
    await install_workflow(journey)
    number = await journey.issue()
    delivery = await journey.label(number)
    before = len(await admin.requests())
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert await app_writes(admin, since=before) == CLAIM_ATTEMPT
    assert len(await journey.pulls()) == 1
    assert len(await workflow_runs(journey)) == 1


async def test_a_label_added_while_a_run_is_going_waits_for_it(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    await journey.rest.delete(f"/repos/{REPO}/issues/{number}/labels/coder:develop")
    await journey.label(number)
    assert len(await journey.branches(number)) == 1
    assert len(await journey.pulls()) == 1
    assert len(await workflow_runs(journey)) == 1


async def test_a_label_added_after_a_run_finished_starts_attempt_two(journey, fake_runner, org):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    [first] = await journey.branches(number)
    [check_run] = await journey.check_runs(first["object"]["sha"])
    gh = journey.app_server.access.for_installation(org.installation_id)
    await gh.patch(f"/repos/{REPO}/check-runs/{check_run['id']}", data={"conclusion": "success"})
    await journey.rest.delete(f"/repos/{REPO}/issues/{number}/labels/coder:develop")
    await journey.label(number)
    names = sorted(b["ref"] for b in await journey.branches(number))
    base = f"refs/heads/coder/{number}-fix-the-frobnicator"
    assert names == [base, f"{base}-2"]
    assert len(await journey.pulls()) == 2
    assert len(await workflow_runs(journey)) == 2


async def test_each_label_after_a_finished_run_starts_the_next_attempt(journey, fake_runner, org):
    await install_workflow(journey)
    number = await journey.issue()
    gh = journey.app_server.access.for_installation(org.installation_id)
    base = f"refs/heads/coder/{number}-fix-the-frobnicator"
    expected = [base, f"{base}-2", f"{base}-3"]
    for attempt in range(1, 4):
        await journey.label(number)
        refs = {b["ref"]: b["object"]["sha"] for b in await journey.branches(number)}
        assert sorted(refs) == expected[:attempt]
        [check_run] = await journey.check_runs(refs[expected[attempt - 1]])
        assert check_run["status"] == "queued"
        # The attempt's job finishes (green), and someone asks again.
        update = {"conclusion": "success"}
        await gh.patch(f"/repos/{REPO}/check-runs/{check_run['id']}", data=update)
        await journey.rest.delete(f"/repos/{REPO}/issues/{number}/labels/coder:develop")
    heads = sorted(pull["head"]["ref"] for pull in await journey.pulls())
    assert heads == [ref.removeprefix("refs/heads/") for ref in expected]
    assert len(await workflow_runs(journey)) == 3


async def test_an_allow_listed_bot_starts_a_run(journey, admin, fake_runner):
    await journey.put_file(CONFIG_PATH, 'allowed_bots: ["helper[bot]"]\n')
    await install_workflow(journey)
    bot = await admin.create_user("helper[bot]", "Bot")
    await admin.add_collaborator(REPO, bot.login, "triage")
    number = await journey.issue()
    await journey.label(number, token=bot.token)
    assert len(await journey.branches(number)) == 1
    assert await journey.comments(number) == []


async def test_a_failed_pull_request_post_is_looked_up_not_doubled(journey, admin, fake_runner):
    await install_workflow(journey)
    await admin.add_fault(kind="status", status=502, method="POST", path="/pulls$", times=1)
    number = await journey.issue()
    await journey.label(number)
    assert len(await journey.pulls()) == 1
    assert len(await workflow_runs(journey)) == 1


async def test_a_claim_left_half_done_is_finished_by_a_redelivery(
    journey, admin, fake_runner, monkeypatch
):
    await install_workflow(journey)
    # The app dies after the branch: every pull-request POST fails.
    await admin.add_fault(kind="status", status=502, method="POST", path="/pulls$", times=None)
    number = await journey.issue()
    delivery = await journey.label(number, outcome="error: GitHubBroken: Bad Gateway")
    assert len(await journey.branches(number)) == 1
    assert await journey.pulls() == []
    await admin.clear_faults()
    # Redelivered soon after, the claim looks like another replica's work in progress...
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert await journey.pulls() == []
    # ...and once it is old enough to count as abandoned, the redelivery finishes the job.
    monkeypatch.setattr(develop, "RESUME_AFTER_SECONDS", -1)
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    [branch] = await journey.branches(number)
    assert len(await journey.pulls()) == 1
    assert len(await journey.check_runs(branch["object"]["sha"])) == 1
    assert len(await workflow_runs(journey)) == 1
    assert "coder:running" in await journey.issue_labels(number)


async def redeliver_to_fresh_replica(journey, delivery_id):
    """Redeliver to a new replica (the first one remembers the delivery id) and wait."""
    replica = await serve_app(load_settings(None, journey.devhub.app_env()))
    try:
        journey.devhub.webhook_url = replica.webhook_url
        again = await journey.admin.redeliver(delivery_id)
        return await replica.queue.wait_for(again["guid"])
    finally:
        journey.devhub.webhook_url = journey.app_server.webhook_url
        await replica.close()
