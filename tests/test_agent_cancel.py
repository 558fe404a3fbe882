"""Cancel races against devhub: a job that starts after `/coder cancel` ended its check run runs
nothing, and a run whose check run is cancelled while it works does not overwrite it.

The app's part (the cancel) is done by hand with the app's token, as `app.run_control` does."""

from __future__ import annotations

import asyncio
import json
import shlex

import pytest

from actions.agent.main import EXIT_OK
from tests.test_agent_run import GOOD_AGENT, REPO, config, make_setup
from tests.test_agent_workflows import review_run

CANCELLED = {
    "status": "completed",
    "conclusion": "cancelled",
    "output": {
        "title": "Cancelled by @alice",
        "summary": "@alice cancelled run with `/coder cancel`.",
    },
}


@pytest.fixture
async def setup(devhub, admin, org, tmp_path):
    return await make_setup(devhub, admin, org, tmp_path)


async def cancel(setup, check_run_id):
    app = await setup.app()
    status, _, answer = await app.patch(f"/repos/{REPO}/check-runs/{check_run_id}", CANCELLED)
    assert status == 200, answer


async def requests_since(admin, before):
    return [(r["method"], r["path"]) for r in (await admin.requests())[before:]]


def assert_left_as_cancelled(check_run):
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "cancelled")
    assert check_run["output"]["title"] == "Cancelled by @alice"


async def test_a_job_that_starts_after_its_run_was_cancelled_runs_nothing(setup, admin):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    run = await setup.run()
    await cancel(setup, run.check_run["id"])
    before = len(await admin.requests())

    assert await run.execute() == EXIT_OK
    calls = await requests_since(admin, before)

    (check_run,) = await run.check_runs(run.initial_sha)
    assert_left_as_cancelled(check_run)
    pull = await run.pull_now()
    assert (pull["head"]["sha"], pull["body"], pull["draft"]) == (
        run.initial_sha,
        run.pull["body"],
        True,
    )
    # The token, and the one GraphQL query that read the check run's state with the pull
    # request: no extra REST call, no clone, nothing written.
    assert [call for call in calls if not call[1].startswith("/api/v3/app/")] == [
        ("GET", f"/api/v3/repos/{REPO}/installation"),
        ("POST", "/api/graphql"),
    ]
    assert not (run.temp / f"coder-{run.snapshot.run_id}").exists()
    assert run.outputs()["conclusion"] == "cancelled"


async def test_a_review_job_that_starts_after_its_run_was_cancelled_runs_nothing(setup, tmp_path):
    canary = tmp_path / "the-agent-ran"
    command = f"touch {shlex.quote(str(canary))}"
    await setup.put_file(
        ".github/coder.yml", f"agent: {{backend: command, command: {json.dumps(command)}}}\n"
    )
    run, number = await review_run(setup)
    await cancel(setup, run.check_run["id"])

    assert await run.execute(CODER_ISSUE=str(number), CODER_PULL=str(number)) == EXIT_OK

    assert not canary.exists()
    (check_run,) = await run.check_runs(run.initial_sha)
    assert_left_as_cancelled(check_run)


CANCELLED_WHILE_WORKING_AGENT = """\
import pathlib, socket
pathlib.Path("hello.txt").write_text("hello\\n")
print("STATUS: wrote hello.txt", flush=True)
with socket.create_connection(("127.0.0.1", {port})) as link:
    link.sendall(b"written\\n")
    link.recv(16)  # the test cancels the run, then lets the agent finish
"""


async def test_a_run_cancelled_while_it_works_leaves_the_cancel_standing(setup):
    cancelled = asyncio.Event()
    run = None

    async def cancel_then_go_on(reader, writer):
        await reader.readline()
        await cancel(setup, run.check_run["id"])
        cancelled.set()
        writer.write(b"go\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cancel_then_go_on, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", CANCELLED_WHILE_WORKING_AGENT.format(port=port))
    run = await setup.run()

    code = await run.execute()
    server.close()

    assert cancelled.is_set(), "the agent never reached the cancel"
    assert code == EXIT_OK
    pull = await run.pull_now()
    head = pull["head"]["sha"]
    assert head != run.initial_sha  # the agent's work was pushed before the run ended
    (check_run,) = await run.check_runs(run.initial_sha)
    assert_left_as_cancelled(check_run)
    assert await run.check_runs(head) == []  # not carried to the new head as a success
    assert pull["draft"] is True
    assert "was completed (cancelled) while it worked" in pull["body"]
    assert "coder:running" not in await run.issue_labels()
    assert run.outputs() == {"conclusion": "cancelled", "commit": head, "pr": str(pull["number"])}
