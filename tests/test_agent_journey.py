"""The develop journey end to end on devhub: a label, the app, a dispatched job, coder-agent.

The job runs the installed `coder-agent` console script on devhub's local runner with the
Actions environment contract; it gets its token through OIDC and the app's `POST /api/token`.
The agent is the `script` backend: deterministic, not an AI.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

from app.artifacts import load_develop_artifact
from app.installation import ensure_labels

REPO = "acme/widgets"
ROOT = Path(__file__).resolve().parent.parent
CONFIG = """\
agent: {backend: script, script: tools/agent.py}
tests: {command: "test -f hello.txt"}
"""
AGENT = """\
import os, pathlib
role = os.environ["CODER_ROLE"]
print(f"STATUS: {role} at work")
if role == "implementer":
    pathlib.Path("hello.txt").write_text("hello\\n")
    print("COST: 0.05")
"""


async def put_file(rest, path, text):
    content = base64.b64encode(text.encode()).decode()
    status, _, answer = await rest.put(
        f"/repos/{REPO}/contents/{path}", {"message": f"add {path}", "content": content}
    )
    assert status == 201, answer


async def get(rest, path):
    status, _, answer = await rest.get(path)
    assert status == 200, answer
    return answer


async def test_a_labelled_issue_becomes_a_ready_tested_pull_request(
    devhub, admin, org, app_server, tmp_path
):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    owner = admin.rest(org.owner.token)
    workflow = (ROOT / "workflows-templates" / "coder.yml").read_text()
    await put_file(owner, ".github/workflows/coder.yml", workflow)
    await put_file(owner, ".github/coder.yml", CONFIG)
    await put_file(owner, "tools/agent.py", AGENT)
    canary = tmp_path / "canary"
    title = f"Say hello $(touch {canary})"
    status, _, issue = await owner.post(
        f"/repos/{REPO}/issues", {"title": title, "body": f"`touch {canary}`"}
    )
    assert status == 201, issue

    status, _, _labels = await owner.post(
        f"/repos/{REPO}/issues/{issue['number']}/labels", {"labels": ["coder:develop"]}
    )
    assert status == 200
    run = await devhub.wait_for_run(lambda r: r.status == "completed", timeout=90)

    job_log = "\n".join(line for job in run.jobs for line in job.log)
    assert run.conclusion == "success", job_log
    (pull,) = await get(owner, f"/repos/{REPO}/pulls?state=all")
    assert pull["draft"] is False, job_log
    assert pull["head"]["ref"].startswith(f"coder/{issue['number']}-say-hello")
    (check_run,) = (
        await get(owner, f"/repos/{REPO}/commits/{pull['head']['sha']}/check-runs?filter=all")
    )["check_runs"]
    assert (check_run["name"], check_run["conclusion"]) == ("coder/develop", "success")
    artifact = load_develop_artifact(check_run["output"]["text"])
    assert artifact is not None
    assert artifact.filesChanged == ("hello.txt",)
    assert artifact.testsPass is True
    labels = await get(owner, f"/repos/{REPO}/issues/{issue['number']}/labels")
    assert "coder:running" not in {label["name"] for label in labels}
    assert "token for acme/widgets (oidc)" in job_log
    assert not canary.exists()


HANGING_AGENT = """\
import os, socket, time
with socket.create_connection(("127.0.0.1", {port})) as report:
    report.sendall(str(os.getpid()).encode())
time.sleep(3600)
"""


async def test_cancelling_the_job_stops_the_agent_it_started(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    started: asyncio.Queue[int] = asyncio.Queue()

    async def agent_reports(reader, writer):
        started.put_nowait(int(await reader.read()))
        writer.close()

    server = await asyncio.start_server(agent_reports, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    owner = admin.rest(org.owner.token)
    workflow = (ROOT / "workflows-templates" / "coder.yml").read_text()
    await put_file(owner, ".github/workflows/coder.yml", workflow)
    await put_file(owner, ".github/coder.yml", CONFIG)
    await put_file(owner, "tools/agent.py", HANGING_AGENT.format(port=port))
    status, _, issue = await owner.post(f"/repos/{REPO}/issues", {"title": "Hang around"})
    assert status == 201, issue
    status, _, _labels = await owner.post(
        f"/repos/{REPO}/issues/{issue['number']}/labels", {"labels": ["coder:develop"]}
    )
    assert status == 200

    agent_pid = await asyncio.wait_for(started.get(), timeout=60)
    running = await devhub.wait_for_run(lambda r: r.status == "in_progress")
    status, _, answer = await owner.post(f"/repos/{REPO}/actions/runs/{running.id}/cancel")
    assert status == 202, answer
    finished = await devhub.wait_for_run(running.id, timeout=60)
    server.close()

    assert finished.conclusion == "cancelled"
    job_log = "\n".join(line for job in finished.jobs for line in job.log)
    assert "coder-agent was cancelled; the agent was stopped" in job_log
    assert await exited(agent_pid)

    # The app hears the job ended and closes the run's check run: cancelled, and by whom.
    delivery = await devhub.wait_for_delivery(event="workflow_job", action="completed")
    assert await app_server.queue.wait_for(delivery.guid) == "ok"
    (pull,) = await get(owner, f"/repos/{REPO}/pulls?state=all")
    (check_run,) = (
        await get(owner, f"/repos/{REPO}/commits/{pull['head']['sha']}/check-runs?filter=all")
    )["check_runs"]
    assert (check_run["name"], check_run["status"]) == ("coder/develop", "completed")
    assert check_run["conclusion"] == "cancelled"
    summary = check_run["output"]["summary"]
    assert "The job `coder agent` was cancelled by @alice" in summary
    [job] = finished.jobs
    assert check_run["details_url"] == f"{devhub.url}/{REPO}/actions/runs/{running.id}/job/{job.id}"
    labels = await get(owner, f"/repos/{REPO}/issues/{issue['number']}/labels")
    assert "coder:running" not in {label["name"] for label in labels}


async def exited(pid, timeout=5.0):
    """Wait until process `pid` has terminated (a zombie counts); False if it never does."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(True))
    try:
        return await asyncio.wait_for(done, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
