"""The agent's own credentials never reach GitHub or the job log, against devhub.

A stand-in `claude` (not Claude: a script speaking its stream-json) prints the API key it was
given in a `STATUS:` line and in its `STUCK:` question, and in the read-only run also writes it
into a file that ends up in the patch handed to the app (stubbed here, with the job's OIDC)."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from actions.agent.backends import agent_secrets
from actions.agent.logs import configure_logging
from actions.agent.main import EXIT_RUN_FAILED
from app.briefing import Snapshot, render_run_request
from app.ids import run_id
from app.prompt_text import parse_prompt
from tests.support.devhub import installation_token
from tests.test_agent_run import REPO, make_setup

KEY = "sk-ant-api03-a-key-only-the-agent-should-hold-0123456789"
OAUTH = "sk-ant-oat01-an-oauth-token-for-claude-code-9876543210"
LEAKY_CLAUDE = """\
import json, os, pathlib
key = os.environ["ANTHROPIC_API_KEY"]
pathlib.Path({file!r}).write_text({content})

def emit(message):
    print(json.dumps(message), flush=True)

def say(text):
    emit({{"type": "assistant", "message": {{"content": [{{"type": "text", "text": text}}]}}}})

emit({{"type": "system", "subtype": "init", "model": "claude-sonnet-4-5"}})
say(f"STATUS: calling the API with {{key}}")
say(f"STUCK: Is {{key}} the key the tests should use?")
emit({{"type": "result", "subtype": "success", "is_error": False, "num_turns": 2,
      "result": f"STUCK: Is {{key}} the key the tests should use?", "total_cost_usd": 0.01,
      "usage": {{"input_tokens": 10, "output_tokens": 20}}}})
"""
CLAUDE_CONFIG = "agent: {backend: claude}\nworkflows:\n  develop:\n    steps: [implementer]\n"


@pytest.fixture
async def setup(devhub, admin, org, tmp_path):
    return await make_setup(devhub, admin, org, tmp_path)


@pytest.fixture
def job_log():
    """Capture the runner's log as the job log shows it (coder-agent's own handler)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield configure_logging
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def stand_in_claude(tmp_path, *, file, content):
    bin_dir = tmp_path / "claude-bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(f"#!{sys.executable}\n" + LEAKY_CLAUDE.format(file=file, content=content))
    claude.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def assert_only_masked(log, secret):
    """The secret is in the job log only in its own `::add-mask::` line, which hides it."""
    assert f"::add-mask::{secret}" in log.splitlines()
    assert log.count(secret) == 1


def test_the_secrets_handed_to_agents_are_their_credentials():
    environ = {
        "ANTHROPIC_API_KEY": KEY,
        "CLAUDE_CODE_OAUTH_TOKEN": OAUTH,
        "CLAUDE_CODE_USE_BEDROCK": "1",  # a flag, not a secret: masking it would blank every 1
        "ANTHROPIC_BASE_URL": "https://gateway.example/v1",  # no password in it: no secret
        "HTTPS_PROXY": "http://runner:pr%40xy-password-42@proxy.example:3128",
        "GITHUB_TOKEN": "ghs_not_handed_to_any_agent_00000000",
        "PATH": "/usr/bin",
    }
    assert agent_secrets(environ) == (KEY, OAUTH, "pr%40xy-password-42", "pr@xy-password-42")


async def test_the_agent_s_key_reaches_no_check_run_comment_body_or_log(setup, tmp_path, job_log):
    path = stand_in_claude(tmp_path, file="draft.txt", content='"half done\\n"')
    await setup.put_file(".github/coder.yml", CLAUDE_CONFIG)
    run = await setup.run()
    job_log(run.stdout)

    assert await run.execute(PATH=path, ANTHROPIC_API_KEY=KEY) == EXIT_RUN_FAILED

    pull = await run.pull_now()
    head = pull["head"]["sha"]
    assert head != run.initial_sha  # the work so far was pushed
    check_runs = [*await run.check_runs(run.initial_sha), *await run.check_runs(head)]
    [asked] = [c for c in check_runs if c["conclusion"] == "action_required"]
    assert "[REDACTED] the key the tests should use?" in asked["output"]["summary"]
    comments = await setup.get(f"/repos/{REPO}/issues/{pull['number']}/comments")
    [prompt] = [c for c in comments if parse_prompt(c)]
    assert "> Is [REDACTED] the key the tests should use?" in prompt["body"]
    commit = await setup.get(f"/repos/{REPO}/git/commits/{head}")
    on_github = json.dumps([check_runs, comments, pull, commit])
    assert "calling the API with [REDACTED]" in on_github  # the status, in the PR body
    assert KEY not in on_github
    assert KEY not in run.summary.read_text()
    assert_only_masked(run.stdout.getvalue(), KEY)


@pytest.fixture
async def app_stub(admin, devhub, org):
    """The job's OIDC provider and the app's token and result endpoints, for a read-only run."""
    token = await installation_token(
        admin,
        devhub,
        org.installation_id,
        repositories=["widgets"],
        permissions={"contents": "read", "pull_requests": "read", "checks": "read"},
    )
    results = []

    async def oidc(_request):
        return web.json_response({"value": "eyJhbGciOiJSUzI1NiJ9.eyJqb2IiOiJjb2RlciJ9.c2lnbmVk"})

    async def exchange(_request):
        return web.json_response({"token": token, "read_only": True})

    async def result(request):
        results.append(await request.json())
        return web.json_response({"status": "written"})

    app = web.Application()
    app.router.add_get("/oidc", oidc)
    app.router.add_post("/api/token", exchange)
    app.router.add_post("/api/runs/result", result)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), results
    finally:
        await server.close()


async def test_a_stuck_read_only_run_hands_in_its_question_and_no_key(
    setup, tmp_path, job_log, app_stub
):
    path = stand_in_claude(tmp_path, file="notes.txt", content='f"debug: {key}\\n"')
    await setup.put_file(".github/coder.yml", CLAUDE_CONFIG)
    develop = await setup.run()
    pull = develop.pull
    fix = Snapshot.taken(
        repo=REPO,
        issue_number=pull["number"],
        title=pull["title"],
        body="## What to fix\n\nuse the right key",
        labeled_by="alice",
        run_id=run_id(REPO, "fix", pull["number"], "delivery-fork-fix"),
        workflow="fix",
        model="opus",
    )
    app = await setup.app()
    status, _, check_run = await app.post(
        f"/repos/{REPO}/check-runs",
        {
            "name": "coder/fix",
            "head_sha": develop.initial_sha,
            "external_id": fix.run_id,
            "status": "queued",
            "output": {"title": "Queued", "summary": "q", "text": render_run_request(fix)},
        },
    )
    assert status == 201, check_run
    app_url, results = app_stub
    job_log(develop.stdout)

    code = await develop.execute(
        PATH=path,
        ANTHROPIC_API_KEY=KEY,
        CODER_APP_ID=None,
        CODER_PRIVATE_KEY=None,
        ACTIONS_ID_TOKEN_REQUEST_URL=f"{app_url}/oidc?api-version=2.0",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN="request-token-0123456789",
        CODER_APP_URL=app_url,
        CODER_RUN_ID=fix.run_id,
        CODER_ISSUE=str(pull["number"]),
        CODER_CHECK_RUN=str(check_run["id"]),
    )

    assert code == EXIT_RUN_FAILED  # action_required: the job ends, the check run says why
    [handed_in] = results
    assert handed_in["check_run"] == check_run["id"]
    assert handed_in["conclusion"] == "action_required"
    assert "### The question" in handed_in["summary"]
    assert "Is [REDACTED] the key the tests should use?" in handed_in["summary"]
    assert handed_in["prompt"] == {
        "ask": "question",
        "question": "Is [REDACTED] the key the tests should use?",
        "workflow": "fix",
        "resume_at": "implementer",
        "sha": develop.initial_sha,
        "model": "opus",
    }
    assert "+++ b/notes.txt" in handed_in["patch"]
    assert "+debug: [REDACTED]" in handed_in["patch"]
    assert KEY not in json.dumps(handed_in)
    assert_only_masked(develop.stdout.getvalue(), KEY)
    # The job's token only reads: the app asks on the pull request, the runner does not.
    comments = await setup.get(f"/repos/{REPO}/issues/{pull['number']}/comments")
    assert [c for c in comments if parse_prompt(c)] == []
    ended = await setup.get(f"/repos/{REPO}/check-runs/{check_run['id']}")
    assert ended["status"] == "queued"  # the app writes it, from the result
