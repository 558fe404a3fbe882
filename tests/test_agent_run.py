"""coder-agent end to end against devhub: the app's part is set up by hand, the runner runs in
process with the `script` backend (deterministic, not an AI), and GitHub is devhub."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re

import pytest

from actions.agent.clock import ManualClock
from actions.agent.logs import configure_logging
from actions.agent.main import EXIT_CANNOT_START, EXIT_OK, EXIT_RUN_FAILED, run_main
from actions.agent.run import Deps
from app.artifacts import load_develop_artifact
from app.briefing import (
    Snapshot,
    branch_name,
    initial_commit_message,
    parse_trailers,
    render_run_request,
)
from app.ids import run_id
from tests.support.devhub import installation_token

REPO = "acme/widgets"
GOOD_AGENT = """\
import os, pathlib
role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
print(f"STATUS: {role} read a briefing of {len(briefing.splitlines())} lines")
if role == "implementer":
    pathlib.Path("hello.txt").write_text("hello\\n")
    print("COST: 0.12 3400")
"""
IDLE_AGENT = """\
import time
print("STATUS: thinking very hard", flush=True)
time.sleep(3600)
"""
STUCK_AGENT = """\
import pathlib
pathlib.Path("draft.txt").write_text("half done\\n")
print("STATUS: wrote a draft")
print("STUCK: Should the flag be --verbose or --debug?")
"""
IDLE_AGENT_FILE = "tools/agent.py"
PROGRESS_EDIT = re.compile(r"/(pulls|check-runs)/[0-9]+")


def config(tests="test -f hello.txt", steps=("implementer",)):
    lines = ["agent: {backend: script, script: tools/agent.py}"]
    if tests is not None:
        lines.append(f"tests: {{command: {json.dumps(tests)}}}")
    lines += [
        "workflows:",
        "  develop:",
        '    on: {label: "coder:develop", command: develop}',
        f"    steps: [{', '.join(steps)}]",
    ]
    return "\n".join(lines) + "\n"


class Setup:
    """What the app does before a job starts, done by hand: branch, draft PR, check run, label."""

    def __init__(self, devhub, admin, org, tmp_path):
        self.devhub = devhub
        self.admin = admin
        self.org = org
        self.tmp_path = tmp_path
        self.owner = admin.rest(org.owner.token)

    async def put_file(self, path, text, branch="main"):
        content = base64.b64encode(text.encode()).decode()
        status, _, answer = await self.owner.put(
            f"/repos/{REPO}/contents/{path}",
            {"message": f"add {path}", "content": content, "branch": branch},
        )
        assert status == 201, answer

    async def get(self, path):
        status, _, answer = await self.owner.get(path)
        assert status == 200, answer
        return answer

    async def app(self):
        token = await installation_token(self.admin, self.devhub, self.org.installation_id)
        return self.admin.rest(token)

    async def run(
        self, title="Add a hello file", body="Please add hello.txt.", workflow="develop", **taken
    ):
        app = await self.app()
        status, _, issue = await self.owner.post(
            f"/repos/{REPO}/issues", {"title": title, "body": body}
        )
        assert status == 201, issue
        number = issue["number"]
        identifier = run_id(REPO, workflow, number, f"delivery-{number}")
        snapshot = Snapshot.taken(
            repo=REPO,
            issue_number=number,
            title=title,
            body=body,
            labeled_by="alice",
            run_id=identifier,
            workflow=workflow,
            **{"model": "sonnet", **taken},
        )
        main = await self.get(f"/repos/{REPO}/branches/main")
        bot = {"name": "coder-test[bot]", "email": "coder-test[bot]@users.noreply.devhub.test"}
        status, _, commit = await app.post(
            f"/repos/{REPO}/git/commits",
            {
                "message": initial_commit_message(snapshot),
                "tree": main["commit"]["commit"]["tree"]["sha"],
                "parents": [main["commit"]["sha"]],
                "author": bot,
                "committer": bot,
            },
        )
        assert status == 201, commit
        branch = branch_name(number, title)
        status, _, ref = await app.post(
            f"/repos/{REPO}/git/refs", {"ref": f"refs/heads/{branch}", "sha": commit["sha"]}
        )
        assert status == 201, ref
        status, _, pull = await app.post(
            f"/repos/{REPO}/pulls",
            {
                "title": f"[coder] {snapshot.title}",
                "head": branch,
                "base": "main",
                "body": f"Closes #{number}",
                "draft": True,
            },
        )
        assert status == 201, pull
        status, _, check_run = await app.post(
            f"/repos/{REPO}/check-runs",
            {
                "name": f"coder/{workflow}",
                "head_sha": commit["sha"],
                "external_id": identifier,
                "status": "queued",
            },
        )
        assert status == 201, check_run
        status, _, _labels = await app.post(
            f"/repos/{REPO}/issues/{number}/labels", {"labels": ["coder:running"]}
        )
        assert status == 200
        return Run(
            self,
            snapshot=snapshot,
            branch=branch,
            pull=pull,
            check_run=check_run,
            initial_sha=commit["sha"],
        )


class Run:
    """One prepared run: its ids, and the environment a job would give coder-agent."""

    def __init__(self, setup, *, snapshot, branch, pull, check_run, initial_sha):
        self.setup = setup
        self.snapshot = snapshot
        self.branch = branch
        self.pull = pull
        self.check_run = check_run
        self.initial_sha = initial_sha
        self.temp = setup.tmp_path / f"runner-{snapshot.issue_number}"
        self.temp.mkdir()
        self.output = self.temp / "output"
        self.summary = self.temp / "summary"
        self.stdout = io.StringIO()

    def environ(self, **overrides):
        """The job's environment; an override of None leaves that variable out."""
        merged = {**self._environ(), **overrides}
        return {key: value for key, value in merged.items() if value is not None}

    def _environ(self):
        hub = self.setup.devhub
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.temp),
            "LANG": "C.UTF-8",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SERVER_URL": hub.url,
            "GITHUB_API_URL": hub.api_url,
            "GITHUB_GRAPHQL_URL": f"{hub.url}/api/graphql",
            "GITHUB_RUN_ID": "4242",
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "CODER_RUN_ID": self.snapshot.run_id,
            "CODER_ISSUE": str(self.snapshot.issue_number),
            "CODER_PULL": str(self.pull["number"]),
            "CODER_CHECK_RUN": str(self.check_run["id"]),
            # No OIDC here: the app-key fallback (tests of the OIDC path run the whole journey).
            "CODER_APP_ID": str(hub.app_id),
            "CODER_PRIVATE_KEY": hub.private_key_path.read_text(),
        }
        return env

    async def execute(self, clock=None, **overrides):
        environ = self.environ(**overrides)
        deps = Deps(
            environ=environ, out=self.stdout, grace_seconds=2.0, clock=clock or ManualClock()
        )
        return await run_main(environ, deps)

    async def check_runs(self, sha):
        answer = await self.setup.get(f"/repos/{REPO}/commits/{sha}/check-runs?filter=all")
        return answer["check_runs"]

    async def pull_now(self):
        return await self.setup.get(f"/repos/{REPO}/pulls/{self.pull['number']}")

    async def issue_labels(self):
        labels = await self.setup.get(f"/repos/{REPO}/issues/{self.snapshot.issue_number}/labels")
        return {label["name"] for label in labels}

    def outputs(self):
        return dict(line.split("=", 1) for line in self.output.read_text().splitlines())


async def make_setup(devhub, admin, org, tmp_path):
    status, _, _label = await admin.rest(org.owner.token).post(
        f"/repos/{REPO}/labels", {"name": "coder:running", "color": "fbca04"}
    )
    assert status == 201
    return Setup(devhub, admin, org, tmp_path)


@pytest.fixture
async def setup(devhub, admin, org, tmp_path):
    return await make_setup(devhub, admin, org, tmp_path)


async def test_a_run_that_works_ends_green_on_the_pushed_commit(setup):
    await setup.put_file(".github/coder.yml", config(steps=("architect", "implementer")))
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()

    assert await run.execute() == EXIT_OK

    pull = await run.pull_now()
    head = pull["head"]["sha"]
    assert head != run.initial_sha
    assert pull["draft"] is False
    assert "**Status:** The tests passed. Ready for review." in pull["body"]
    assert "- [x] architect" in pull["body"]
    assert "- [x] implementer" in pull["body"]
    assert "- [x] tests" in pull["body"]

    (carried,) = await run.check_runs(head)
    assert carried["name"] == "coder/develop"
    assert carried["external_id"] == run.snapshot.run_id
    assert (carried["status"], carried["conclusion"]) == ("completed", "success")
    assert carried["details_url"].endswith(f"/{REPO}/actions/runs/4242")
    assert carried["output"]["title"] == "Tests passed; 1 file changed"
    assert "| Cost | $0.12 (3,400 tokens) |" in carried["output"]["summary"]
    artifact = load_develop_artifact(carried["output"]["text"])
    assert artifact is not None
    assert (artifact.commitSha, artifact.testsPass, artifact.filesChanged) == (
        head,
        True,
        ("hello.txt",),
    )
    (old,) = await run.check_runs(run.initial_sha)
    assert (old["status"], old["conclusion"]) == ("completed", "neutral")
    assert old["output"]["title"] == f"Continued on {head[:12]}"

    commit = await setup.get(f"/repos/{REPO}/git/commits/{head}")
    assert commit["parents"][0]["sha"] == run.initial_sha
    assert commit["author"]["name"] == "coder-test[bot]"
    assert parse_trailers(commit["message"]) == {
        "Coder-Run": run.snapshot.run_id,
        "Coder-Workflow": "develop",
        "Coder-Model": "sonnet",
    }
    assert "- implementer read a briefing of" in commit["message"]

    assert "coder:running" not in await run.issue_labels()
    assert run.outputs() == {"conclusion": "success", "commit": head, "pr": str(pull["number"])}
    assert "The tests passed." in run.summary.read_text()


async def test_the_fallback_works_with_probots_secret_names(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()
    coder_names = run.environ()
    assert (
        await run.execute(
            CODER_APP_ID=None,
            CODER_PRIVATE_KEY=None,
            APP_ID=coder_names["CODER_APP_ID"],
            PRIVATE_KEY=coder_names["CODER_PRIVATE_KEY"],
        )
        == EXIT_OK
    )
    assert (await run.pull_now())["draft"] is False


async def test_the_token_is_masked_first_and_never_printed_or_kept(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(run.stdout)  # the job log, as coder-agent's main() sets it up
    try:
        assert await run.execute() == EXIT_OK
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    log = run.stdout.getvalue()
    assert "[implementer] STATUS implementer read a briefing of" in log
    assert "GitHub API: " in log
    lines = log.splitlines()
    masks = [line.removeprefix("::add-mask::") for line in lines if line.startswith("::add-mask::")]
    assert lines[0].startswith("::add-mask::")
    assert len(masks) == 2  # the installation token and the app JWT it was minted with
    everything = run.stdout.getvalue() + run.summary.read_text() + run.output.read_text()
    for secret in masks:
        assert everything.count(secret) == 1  # only in its own mask line
        for path in run.temp.rglob("*"):
            if path.is_file():
                assert secret not in path.read_text(errors="replace"), path


async def test_an_agent_that_changes_nothing_fails_and_pushes_nothing(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", "print('STATUS: looked around, changed nothing')\n")
    run = await setup.run()

    assert await run.execute() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    assert pull["head"]["sha"] == run.initial_sha
    assert pull["draft"] is True
    assert "**Status:** Still a draft: The agent changed nothing." in pull["body"]
    (check_run,) = await run.check_runs(run.initial_sha)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "failure")
    assert check_run["output"]["summary"].startswith("**The agent changed nothing.**")
    assert "| Tests | not run |" in check_run["output"]["summary"]
    assert run.outputs()["conclusion"] == "failure"
    assert "coder:running" not in await run.issue_labels()


async def test_an_agent_that_exits_non_zero_is_red_with_the_reason(setup):
    await setup.put_file(".github/coder.yml", config())
    agent = "import sys\nprint('STATUS: giving up', flush=True)\nsys.exit(3)\n"
    await setup.put_file("tools/agent.py", agent)
    run = await setup.run()

    assert await run.execute() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    assert pull["head"]["sha"] == run.initial_sha
    assert pull["draft"] is True
    reason = "The implementer agent failed (exit code 3)."
    assert f"**Status:** Still a draft: {reason}" in pull["body"]
    (check_run,) = await run.check_runs(run.initial_sha)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "failure")
    assert check_run["output"]["summary"].startswith(f"**{reason}**")
    assert "| Commit | none pushed |" in check_run["output"]["summary"]
    assert run.outputs() == {"conclusion": "failure", "commit": "", "pr": str(pull["number"])}
    assert "coder:running" not in await run.issue_labels()


async def test_failing_tests_leave_a_draft_with_the_tail(setup):
    await setup.put_file(".github/coder.yml", config(tests="echo 'boom: 1 failed'; exit 3"))
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()

    assert await run.execute() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    assert pull["draft"] is True
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert check_run["conclusion"] == "failure"
    assert "boom: 1 failed" in check_run["output"]["summary"]
    assert "The tests failed (exit code 3)." in pull["body"]


async def test_a_stuck_agent_asks_and_its_work_is_pushed(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", STUCK_AGENT)
    run = await setup.run()

    assert await run.execute() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert check_run["conclusion"] == "action_required"
    assert "> Should the flag be --verbose or --debug?" in check_run["output"]["summary"]
    files = await setup.get(f"/repos/{REPO}/pulls/{pull['number']}/files")
    assert [file["filename"] for file in files] == ["draft.txt"]


async def test_a_hung_agent_is_stopped_and_its_run_times_out(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file(IDLE_AGENT_FILE, IDLE_AGENT)
    run = await setup.run()
    clock = ManualClock()
    execution = asyncio.create_task(run.execute(clock=clock))
    # A fast clock: ten fake minutes pass in a moment, whatever the runner is waiting for.
    while not execution.done():
        await clock.advance(60)
        await asyncio.sleep(0.01)
    assert execution.result() == EXIT_RUN_FAILED
    (check_run,) = await run.check_runs(run.initial_sha)
    assert check_run["conclusion"] == "timed_out"
    assert "; it had changed nothing, so nothing was pushed." in check_run["output"]["summary"]
    assert "coder:running" not in await run.issue_labels()


HUNG_AFTER_WORK_AGENT = """\
import pathlib, socket, time
pathlib.Path("partial.txt").write_text("half of it\\n")
print("STATUS: wrote half of it", flush=True)
with socket.create_connection(("127.0.0.1", {port})) as report:
    report.sendall(b"written")
time.sleep(3600)
"""


async def test_a_hung_agent_has_its_work_so_far_pushed_and_times_out(setup):
    written = asyncio.Event()

    async def agent_reports(reader, writer):
        await reader.read()
        written.set()
        writer.close()

    server = await asyncio.start_server(agent_reports, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file(IDLE_AGENT_FILE, HUNG_AFTER_WORK_AGENT.format(port=port))
    run = await setup.run()
    clock = ManualClock()
    execution = asyncio.create_task(run.execute(clock=clock))
    # The clock moves only once the agent has written its file and is hanging.
    reported = asyncio.create_task(written.wait())
    await asyncio.wait({execution, reported}, return_when=asyncio.FIRST_COMPLETED)
    assert written.is_set(), "the run ended before the agent wrote its file"
    while not execution.done():
        await clock.advance(60)
        await asyncio.sleep(0.01)
    server.close()
    assert execution.result() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    head = pull["head"]["sha"]
    assert head != run.initial_sha
    assert pull["draft"] is True
    files = await setup.get(f"/repos/{REPO}/pulls/{pull['number']}/files")
    assert [file["filename"] for file in files] == ["partial.txt"]
    commit = await setup.get(f"/repos/{REPO}/git/commits/{head}")
    assert parse_trailers(commit["message"])["Coder-Run"] == run.snapshot.run_id
    (carried,) = await run.check_runs(head)
    assert (carried["status"], carried["conclusion"]) == ("completed", "timed_out")
    reason = (
        "The implementer agent printed nothing for too long (limits.idle_minutes); "
        f"its work so far is pushed ({head[:12]})."
    )
    assert carried["output"]["summary"].startswith(f"**{reason}**")
    assert "| Tests | not run |" in carried["output"]["summary"]
    (old,) = await run.check_runs(run.initial_sha)
    assert (old["conclusion"], old["output"]["title"]) == ("neutral", f"Continued on {head[:12]}")
    assert f"**Status:** Still a draft: {reason}" in pull["body"]
    assert run.outputs() == {"conclusion": "timed_out", "commit": head, "pr": str(pull["number"])}
    assert "coder:running" not in await run.issue_labels()


async def test_hostile_issue_titles_reach_no_shell(setup, tmp_path):
    canary = tmp_path / "canary"
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run(
        title=f'a"; touch {canary} | sh $(touch {canary}) `touch {canary}`',
        body=f"$(rm -rf ~) and $(touch {canary})",
    )
    assert await run.execute() == EXIT_OK
    assert not canary.exists()
    pull = await run.pull_now()
    commit = await setup.get(f"/repos/{REPO}/git/commits/{pull['head']['sha']}")
    assert commit["message"].startswith(f'a"; touch {canary} | sh $(touch {canary})')


async def test_a_branch_outside_coder_is_refused_before_anything_runs(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()
    main = await setup.get(f"/repos/{REPO}/branches/main")
    status, _, _ref = await setup.owner.post(
        f"/repos/{REPO}/git/refs", {"ref": "refs/heads/feature", "sha": main["commit"]["sha"]}
    )
    assert status == 201
    await setup.put_file("feature.txt", "x\n", branch="feature")
    status, _, other = await setup.owner.post(
        f"/repos/{REPO}/pulls", {"title": "not coder's", "head": "feature", "base": "main"}
    )
    assert status == 201, other

    assert await run.execute(CODER_PULL=str(other["number"])) == EXIT_RUN_FAILED

    (check_run,) = await run.check_runs(run.initial_sha)
    assert check_run["conclusion"] == "failure"
    assert "'feature' is not a coder branch" in check_run["output"]["summary"]
    assert (await setup.get(f"/repos/{REPO}/branches/feature"))["commit"]["sha"] == (
        other["head"]["sha"]
    )


async def test_an_invalid_environment_fails_the_check_run_if_it_can(setup):
    await setup.put_file(".github/coder.yml", config())
    run = await setup.run()
    assert await run.execute(CODER_ISSUE="seven") == EXIT_CANNOT_START
    (check_run,) = await run.check_runs(run.initial_sha)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "failure")
    assert "CODER_ISSUE must be a positive integer" in check_run["output"]["summary"]


async def test_the_runner_costs_a_handful_of_rest_calls(setup, admin):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()
    before = len(await admin.requests())
    assert await run.execute() == EXIT_OK
    api = [
        (r["method"], r["path"].removeprefix(f"/api/v3/repos/{REPO}"))
        for r in (await admin.requests())[before:]
        if r["path"].startswith("/api/v3/")
    ]
    minting = [("GET", "/installation")]
    progress = [call for call in api if PROGRESS_EDIT.fullmatch(call[1]) and call[0] == "PATCH"]
    rest = [call for call in api if call not in progress and not call[1].startswith("/api/v3/app")]
    # GraphQL (its own budget) reads the pull request with the ids the end needs and the check
    # run's state (no `GET check-runs/{id}` for an issue run), reads that state again before
    # completing it (was it cancelled meanwhile?), and ends the run in one request: the final
    # PR body, ready for review, `coder:running` off.
    assert rest == [*minting, ("POST", "/check-runs")]
    graphql = [r for r in (await admin.requests())[before:] if r["path"] == "/api/graphql"]
    assert len(graphql) == 3
    # Start, a coalesced edit or two, the old check run's "continued".
    assert 2 <= len(progress) <= 8
    assert "REST" in run.summary.read_text()
    assert "coder:running" not in await run.issue_labels()
    assert (await run.pull_now())["draft"] is False


async def test_a_fix_asked_for_at_one_commit_refuses_a_branch_that_moved(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()
    pull, asked_at = run.pull, run.initial_sha
    # The app queues a fix on the pull request at its head A (the run request is its snapshot).
    fix = Snapshot.taken(
        repo=REPO,
        issue_number=pull["number"],
        title=pull["title"],
        body="## What to fix\n\nadd hello.txt",
        labeled_by="alice",
        run_id=run_id(REPO, "fix", pull["number"], "delivery-fix"),
        workflow="fix",
        model="opus",
    )
    app = await setup.app()
    status, _, check_run = await app.post(
        f"/repos/{REPO}/check-runs",
        {
            "name": "coder/fix",
            "head_sha": asked_at,
            "external_id": fix.run_id,
            "status": "queued",
            "output": {"title": "Queued", "summary": "q", "text": render_run_request(fix)},
        },
    )
    assert status == 201, check_run
    # Someone pushes B to the branch before the job starts.
    await setup.put_file("notes.txt", "mine\n", branch=run.branch)
    moved = (await run.pull_now())["head"]["sha"]

    code = await run.execute(
        CODER_RUN_ID=fix.run_id,
        CODER_ISSUE=str(pull["number"]),
        CODER_CHECK_RUN=str(check_run["id"]),
    )

    assert code != EXIT_OK
    assert (await run.pull_now())["head"]["sha"] == moved  # nothing was pushed
    ended = await setup.get(f"/repos/{REPO}/check-runs/{check_run['id']}")
    assert ended["conclusion"] == "failure"
    assert f"the branch moved from {asked_at[:12]} to {moved[:12]}" in ended["output"]["summary"]
