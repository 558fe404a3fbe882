"""Full loops on devhub with the real runner: stuck → answer, CI failure → fix, a plan → approve.

Every job runs the installed `coder-agent` on devhub's local runner; the agent is the `script`
backend (deterministic, not an AI), a small program in the repository that reads its briefing.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from app.briefing import parse_trailers
from app.installation import ensure_labels
from app.markers import parse_markers

REPO = "acme/widgets"
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = (ROOT / "workflows-templates" / "coder.yml").read_text()
CONFIG = """\
agent: {backend: script, script: tools/agent.py}
tests: {command: "test -f hello.txt"}
"""


class Person:
    """Alice, the repository's owner, on GitHub; and what coder did in answer."""

    def __init__(self, devhub, admin, org, app_server):
        self.devhub = devhub
        self.admin = admin
        self.app_server = app_server
        self.rest = admin.rest(org.owner.token)

    async def call(self, method, path, body=None, ok=(200, 201)):
        status, _, answer = await self.rest.request(method, path, body)
        assert status in ok, (method, path, status, answer)
        return answer

    async def get(self, path):
        return await self.call("GET", f"/repos/{REPO}{path}")

    async def put_file(self, path, text, branch=None):
        content = base64.b64encode(text.encode()).decode()
        body = {"message": f"add {path}", "content": content} | (
            {"branch": branch} if branch else {}
        )
        await self.call("PUT", f"/repos/{REPO}/contents/{path}", body)

    async def setup(self, agent, config=CONFIG):
        await self.put_file(".github/workflows/coder.yml", TEMPLATE)
        await self.put_file(".github/coder.yml", config)
        await self.put_file("tools/agent.py", agent)

    async def develop(self, title="Say hello"):
        issue = await self.call("POST", f"/repos/{REPO}/issues", {"title": title, "body": "Hi."})
        number = issue["number"]
        await self.call(
            "POST", f"/repos/{REPO}/issues/{number}/labels", {"labels": ["coder:develop"]}
        )
        return number

    async def comment(self, number, body):
        seen = {d["id"] for d in await self.admin.deliveries()}
        comment = await self.call("POST", f"/repos/{REPO}/issues/{number}/comments", {"body": body})
        delivery = await self.devhub.wait_for_delivery(
            event="issue_comment", action="created", predicate=lambda d: d.id not in seen
        )
        assert await self.app_server.queue.wait_for(delivery.guid) == "ok"
        return comment

    async def pull_of(self, number):
        pulls = await self.get("/pulls?state=all")
        [pull] = [p for p in pulls if p["head"]["ref"].startswith(f"coder/{number}-")]
        return pull

    async def check_runs(self, sha, name=None):
        runs = (await self.get(f"/commits/{sha}/check-runs?filter=all"))["check_runs"]
        return [r for r in runs if name is None or r["name"] == name]

    async def reactions(self, comment_id):
        answer = await self.get(f"/issues/comments/{comment_id}/reactions")
        return {r["content"] for r in answer}


@pytest.fixture
async def alice(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Person(devhub, admin, org, app_server)


def job_log(run):
    return "\n".join(line for job in run.jobs for line in job.log)


def is_coder(run):
    return run.workflow_path.endswith("/coder.yml")


async def finished(devhub, seen):
    """Wait for the next coder job (not in `seen`) to complete; return its workflow run."""
    run = await devhub.wait_for_run(
        lambda r: r.id not in seen and is_coder(r) and r.status == "completed", timeout=90
    )
    seen.add(run.id)
    return run


STUCK_AGENT = """\
import os, pathlib
role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
print(f"STATUS: {role} at work")
if role == "implementer":
    pathlib.Path("draft.txt").write_text("started\\n")
    if "## The answer, from @alice" not in briefing:
        print("STUCK: Which greeting should it print?")
    else:
        greeting = briefing.split("## The answer, from @alice")[1].split("##")[0].strip()
        pathlib.Path("hello.txt").write_text(greeting + "\\n")
"""


async def test_stuck_then_answered_then_done(alice, devhub):
    await alice.setup(STUCK_AGENT)
    number = await alice.develop()
    seen: set[int] = set()
    run = await finished(devhub, seen)
    assert run.conclusion == "failure", job_log(run)  # the job ends; the check run says why
    pull = await alice.pull_of(number)
    [check_run] = await alice.check_runs(pull["head"]["sha"], "coder/develop")
    assert check_run["conclusion"] == "action_required"
    assert "Which greeting should it print?" in check_run["output"]["summary"]
    # The work so far is pushed; the question is on the pull request, marked.
    files = await alice.get(f"/pulls/{pull['number']}/files")
    assert [f["filename"] for f in files] == ["draft.txt"]
    [prompt] = [
        c
        for c in await alice.get(f"/issues/{pull['number']}/comments")
        if "coder:prompt" in c["body"]
    ]
    [marker] = parse_markers(prompt["body"])
    assert (marker.fields["ask"], marker.fields["resume_at"]) == ("question", "implementer")
    assert marker.fields["check_run"] == str(check_run["id"])

    answer = await alice.comment(pull["number"], "/coder answer Hello, world")
    run = await finished(devhub, seen)
    assert run.conclusion == "success", job_log(run)
    pull = await alice.pull_of(number)
    assert pull["draft"] is False
    [done] = await alice.check_runs(pull["head"]["sha"], "coder/develop")
    assert done["conclusion"] == "success"
    hello = await alice.get(f"/contents/hello.txt?ref={pull['head']['ref']}")
    assert base64.b64decode(hello["content"]).decode() == "Hello, world\n"
    # The continuation started at the step that asked: the architect did not run again.
    assert "[architect]" not in job_log(run)
    assert await alice.reactions(answer["id"]) == {"eyes", "rocket"}
    # The question's check run says who answered; a second answer finds nothing waiting.
    asked = await alice.call("GET", f"/repos/{REPO}/check-runs/{check_run['id']}")
    assert (asked["conclusion"], asked["output"]["title"]) == ("neutral", "Answered by @alice")
    await alice.comment(pull["number"], "/coder answer again")
    assert (
        "no run here is waiting for an answer"
        in (await alice.get(f"/issues/{pull['number']}/comments"))[-1]["body"]
    )


FIXING_AGENT = """\
import os, pathlib
role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
print(f"STATUS: {role} at work")
if role == "implementer" and "The check `ci` ended `failure`" in briefing:
    assert "ZeroDivisionError" in briefing, briefing
    pathlib.Path("calc.py").write_text("def ratio(a, b):\\n    return a / b if b else 0\\n")
elif role == "implementer":
    pathlib.Path("hello.txt").write_text("hello\\n")
    pathlib.Path("calc.py").write_text("def ratio(a, b):\\n    return a / b\\n")
"""


async def test_a_failing_ci_check_is_fixed_and_goes_green(alice, devhub, admin):
    await alice.setup(FIXING_AGENT)
    number = await alice.develop()
    seen: set[int] = set()
    run = await finished(devhub, seen)
    assert run.conclusion == "success", job_log(run)
    pull = await alice.pull_of(number)
    head = pull["head"]["sha"]
    # CI (another app) fails on the pushed commit.
    log = "tests/test_calc.py::test_zero FAILED\nZeroDivisionError: division by zero\n"
    await admin.report_ci(REPO, head, "ci", "failure", summary="1 failed", log=log)
    run = await finished(devhub, seen)
    assert run.conclusion == "success", job_log(run)
    pull = await alice.pull_of(number)
    assert pull["head"]["sha"] != head
    commit = await alice.get(f"/git/commits/{pull['head']['sha']}")
    trailers = parse_trailers(commit["message"])
    assert (trailers["Coder-Workflow"], trailers["Coder-Model"]) == ("fix", "opus")
    [fix] = await alice.check_runs(pull["head"]["sha"], "coder/fix")
    assert fix["conclusion"] == "success"
    calc = await alice.get(f"/contents/calc.py?ref={pull['head']['ref']}")
    assert "if b else 0" in base64.b64decode(calc["content"]).decode()
    # CI is green on the fix: nothing more starts.
    await admin.report_ci(REPO, pull["head"]["sha"], "ci", "success")
    assert [r for r in await alice.check_runs(pull["head"]["sha"]) if r["name"] == "coder/fix"] == [
        fix
    ]


PLANNING_AGENT = """\
import json, os, pathlib
role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
print(f"STATUS: {role} at work")
if role == "architect":
    steps = ["write hello.txt"]
    if "## Revise the plan" in briefing:
        steps.append("and say it twice")
    plan = {"kind": "plan", "summary": "Greet.", "files": ["hello.txt"], "steps": steps}
    pathlib.Path(os.environ["CODER_ARTIFACT_FILE"]).write_text(json.dumps(plan))
if role == "implementer":
    assert "## The approved plan (approved by @alice)" in briefing, briefing
    twice = "say it twice" in briefing
    pathlib.Path("hello.txt").write_text("hello\\n" * (2 if twice else 1))
"""


async def test_a_plan_waits_for_approval_is_revised_then_approved(alice, devhub):
    config = CONFIG + "workflows: {develop: {approve_plan: true}}\n"
    await alice.setup(PLANNING_AGENT, config)
    number = await alice.develop()
    seen: set[int] = set()
    await finished(devhub, seen)
    pull = await alice.pull_of(number)
    [waiting] = await alice.check_runs(pull["head"]["sha"], "coder/develop")
    assert (waiting["conclusion"], waiting["output"]["title"]) == (
        "action_required",
        "The plan waits for approval",
    )
    prompts = [
        c
        for c in await alice.get(f"/issues/{pull['number']}/comments")
        if "coder:prompt" in c["body"]
    ]
    assert "1. write hello.txt" in prompts[-1]["body"]

    await alice.comment(pull["number"], "/coder fix say it twice as well")
    await finished(devhub, seen)
    prompts = [
        c
        for c in await alice.get(f"/issues/{pull['number']}/comments")
        if "coder:prompt" in c["body"]
    ]
    assert len(prompts) == 2
    assert "2. and say it twice" in prompts[-1]["body"]

    await alice.comment(pull["number"], "/coder approve")
    run = await finished(devhub, seen)
    assert run.conclusion == "success", job_log(run)
    pull = await alice.pull_of(number)
    hello = await alice.get(f"/contents/hello.txt?ref={pull['head']['ref']}")
    assert base64.b64decode(hello["content"]).decode() == "hello\nhello\n"
    assert json.loads(json.dumps(pull))["draft"] is False


HANGING_AGENT = """\
import os, socket, time
print("STATUS: thinking", flush=True)
if os.environ["CODER_ROLE"] == "implementer":
    with socket.create_connection(("127.0.0.1", {port})) as started:
        started.sendall(b"started")
    time.sleep(3600)
"""


async def test_cancel_while_running_stops_the_job(alice, devhub):
    started: asyncio.Queue[bytes] = asyncio.Queue()

    async def agent_started(reader, writer):
        started.put_nowait(await reader.read())
        writer.close()

    server = await asyncio.start_server(agent_started, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await alice.setup(HANGING_AGENT.format(port=port))
    number = await alice.develop()
    # The implementer runs: the job has taken the run, its check run is in progress.
    assert await asyncio.wait_for(started.get(), timeout=60) == b"started"
    running = await devhub.wait_for_run(lambda r: r.status == "in_progress")
    pull = await alice.pull_of(number)
    comment = await alice.comment(number, "/coder cancel")
    done = await devhub.wait_for_run(running.id, timeout=60)
    server.close()
    assert done.conclusion == "cancelled"
    [check_run] = await alice.check_runs(pull["head"]["sha"], "coder/develop")
    assert (check_run["conclusion"], check_run["output"]["title"]) == (
        "cancelled",
        "Cancelled by @alice",
    )
    assert await alice.reactions(comment["id"]) == {"eyes", "rocket"}


REVIEWED_AGENT = """\
import os, pathlib
role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
print(f"STATUS: {role} at work")
if role == "implementer" and "requested changes" in briefing:
    assert "Say it louder." in briefing and "@bob: Capitals, please." in briefing, briefing
    pathlib.Path("hello.txt").write_text("HELLO\\n")
elif role == "implementer":
    pathlib.Path("hello.txt").write_text("hello\\n")
"""


async def test_changes_requested_are_fixed(alice, devhub, admin):
    await alice.setup(REVIEWED_AGENT)
    bob = await admin.create_user("bob")
    await admin.add_collaborator(REPO, "bob", "write")
    number = await alice.develop()
    seen: set[int] = set()
    run = await finished(devhub, seen)
    assert run.conclusion == "success", job_log(run)
    pull = await alice.pull_of(number)
    review = {
        "event": "REQUEST_CHANGES",
        "body": "Say it louder.",
        "comments": [{"path": "hello.txt", "line": 1, "body": "Capitals, please."}],
    }
    status, _, answer = await admin.rest(bob.token).post(
        f"/repos/{REPO}/pulls/{pull['number']}/reviews", review
    )
    assert status == 200, answer
    run = await finished(devhub, seen)
    assert run.conclusion == "success", job_log(run)
    pull = await alice.pull_of(number)
    hello = await alice.get(f"/contents/hello.txt?ref={pull['head']['ref']}")
    assert base64.b64decode(hello["content"]).decode() == "HELLO\n"
    [fix] = await alice.check_runs(pull["head"]["sha"], "coder/fix")
    assert fix["conclusion"] == "success"


FORK_AGENT = """\
import os, pathlib
role = os.environ["CODER_ROLE"]
print(f"STATUS: {role} at work")
if role == "implementer":
    assert pathlib.Path("feature.txt").read_text() == "from bob\\n"  # the fork's code
    pathlib.Path("hello.txt").write_text("hello from the fix\\n")
"""


async def fork_pull(alice, admin):
    """Bob forks acme/widgets, pushes a branch to his fork and opens a pull request from it."""
    bob = await admin.create_user("bob")
    fork = await admin.fork(REPO, bob.token)
    bob_rest = admin.rest(bob.token)
    main = await alice.call("GET", f"/repos/{fork['full_name']}/git/ref/heads/main")
    status, _, _ = await bob_rest.post(
        f"/repos/{fork['full_name']}/git/refs",
        {"ref": "refs/heads/feature", "sha": main["object"]["sha"]},
    )
    assert status == 201
    content = base64.b64encode(b"from bob\n").decode()
    status, _, _ = await bob_rest.put(
        f"/repos/{fork['full_name']}/contents/feature.txt",
        {"message": "add feature", "content": content, "branch": "feature"},
    )
    assert status == 201
    status, _, pull = await bob_rest.post(
        f"/repos/{REPO}/pulls", {"title": "A feature", "head": "bob:feature", "base": "main"}
    )
    assert status == 201, pull
    return fork, pull


async def test_a_fork_is_never_run_without_allow_fork_runs(alice, devhub, admin):
    await alice.setup(FORK_AGENT)
    _, pull = await fork_pull(alice, admin)
    await alice.comment(pull["number"], "/coder fix please")
    reply = (await alice.get(f"/issues/{pull['number']}/comments"))[-1]["body"]
    assert "this pull request comes from a fork" in reply
    assert "allow_fork_runs: true" in reply
    assert await alice.check_runs(pull["head"]["sha"], "coder/fix") == []


async def test_with_allow_fork_runs_a_fix_suggests_a_patch_with_a_read_only_token(
    alice, devhub, admin
):
    await alice.setup(FORK_AGENT, CONFIG + "allow_fork_runs: true\n")
    fork, pull = await fork_pull(alice, admin)
    head = pull["head"]["sha"]
    branches_before = {b["name"] for b in await alice.get("/branches")}
    comment = await alice.comment(pull["number"], "/coder fix add a greeting")
    run = await finished(devhub, set())
    log = job_log(run)
    assert run.display_title.endswith(" read-only")
    assert "token for acme/widgets (read-only, oidc)" in log, log
    [fix] = await alice.check_runs(head, "coder/fix")
    assert fix["conclusion"] == "success", fix["output"]
    assert "nothing was pushed" in fix["output"]["summary"]
    [suggestion] = [
        c
        for c in await alice.get(f"/issues/{pull['number']}/comments")
        if "suggested-patch" in c["body"]
    ]
    assert suggestion["user"]["login"] == "coder[bot]"
    assert "```diff\n" in suggestion["body"]
    assert "+hello from the fix" in suggestion["body"]
    # Nothing was written with the job's token: the fork and the base are as they were.
    assert (await alice.call("GET", f"/repos/{REPO}/pulls/{pull['number']}"))["head"]["sha"] == head
    assert {b["name"] for b in await alice.get("/branches")} == branches_before
    fork_head = await alice.call("GET", f"/repos/{fork['full_name']}/git/ref/heads/feature")
    assert fork_head["object"]["sha"] == head
    # The job's token (the only one narrowed to this repository) was minted read-only, and
    # every request made with it only read: REST GETs, a GraphQL query, a git fetch.
    [minted] = [t for t in devhub.state.tokens.values() if t.repository_ids and t.permissions]
    assert minted.permissions == {
        "contents": "read",
        "pull_requests": "read",
        "checks": "read",
        "metadata": "read",
    }
    by_job = [r for r in await admin.requests() if r["token_repository_ids"]]
    assert by_job
    reads = ("/git-upload-pack", "/info/refs", "/api/graphql")
    assert [r for r in by_job if r["method"] != "GET" and not r["path"].endswith(reads)] == []
    assert "coder:running" not in {
        label["name"] for label in await alice.get(f"/issues/{pull['number']}/labels")
    }
    assert await alice.reactions(comment["id"]) == {"eyes", "rocket"}


WAITING_AGENT = """\
import os, pathlib, socket
role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
print(f"STATUS: {role} at work", flush=True)
if role == "implementer" and "requested changes" in briefing:
    pathlib.Path("hello.txt").write_text("HELLO\\n")
elif role == "implementer":
    pathlib.Path("hello.txt").write_text("hello\\n")
    with socket.create_connection(("127.0.0.1", PORT)) as gate:
        gate.sendall(b"working")
        gate.recv(1)  # until the test lets it go
"""


async def test_a_review_that_came_while_the_run_worked_is_fixed_after_it(alice, devhub, admin):
    started: asyncio.Queue = asyncio.Queue()

    async def gate(reader, writer):
        await reader.read(7)
        release = asyncio.get_running_loop().create_future()
        started.put_nowait(release)
        await release
        writer.write(b"x")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(gate, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await alice.setup(WAITING_AGENT.replace("PORT", str(port)))
    bob = await admin.create_user("bob")
    await admin.add_collaborator(REPO, "bob", "write")
    number = await alice.develop()
    release = await asyncio.wait_for(started.get(), timeout=60)  # the develop run is working
    pull = await alice.pull_of(number)
    seen = {d["id"] for d in await admin.deliveries()}
    status, _, answer = await admin.rest(bob.token).post(
        f"/repos/{REPO}/pulls/{pull['number']}/reviews",
        {"event": "REQUEST_CHANGES", "body": "Say it louder."},
    )
    assert status == 200, answer
    delivery = await devhub.wait_for_delivery(
        event="pull_request_review", predicate=lambda d: d.id not in seen
    )
    assert await alice.app_server.queue.wait_for(delivery.guid) == "ok"
    labels = {label["name"] for label in await alice.get(f"/issues/{pull['number']}/labels")}
    assert "coder:queued" in labels  # the fix waits for the run that is going
    release.set_result(None)
    seen_runs: set[int] = set()
    develop = await finished(devhub, seen_runs)
    assert develop.conclusion == "success", job_log(develop)
    fix = await finished(devhub, seen_runs)  # its end took coder:queued off: the fix started
    assert fix.conclusion == "success", job_log(fix)
    server.close()
    pull = await alice.pull_of(number)
    hello = await alice.get(f"/contents/hello.txt?ref={pull['head']['ref']}")
    assert base64.b64decode(hello["content"]).decode() == "HELLO\n"
    labels = {label["name"] for label in await alice.get(f"/issues/{pull['number']}/labels")}
    assert "coder:queued" not in labels
