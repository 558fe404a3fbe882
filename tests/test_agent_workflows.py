"""Workflow-as-code in the runner, end to end against devhub: roles and their prompts, step
artifacts, the input artifact, and each kind of run (develop, research, review, release).

The agents are `command` programs (and the `script` backend, not an AI) that check what they
receive and exit non-zero when something is missing, so a wrong briefing fails the run."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime

import pytest

from actions.agent.main import EXIT_OK, EXIT_RUN_FAILED
from app.artifacts import (
    IssueRef,
    ResearchArtifact,
    load_artifact,
    load_develop_artifact,
    render_artifact_block,
)
from app.briefing import Snapshot, render_run_request
from app.ids import run_id
from tests.test_agent_run import REPO, Run, make_setup

CHECKER = """\
import json, os, pathlib, sys
role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
artifact = pathlib.Path(os.environ["CODER_ARTIFACT_FILE"])
workspace = pathlib.Path(os.environ["CODER_WORKSPACE"])
record = pathlib.Path({record!r})
record.mkdir(exist_ok=True)
(record / f"{{role}}.md").write_text(briefing)
(record / f"{{role}}.env").write_text(json.dumps(dict(os.environ)))

def check(condition, what):
    if not condition:
        print(f"{{role}} did not receive {{what}}", file=sys.stderr)
        sys.exit(3)

check(not artifact.exists(), "a fresh artifact path")
check(artifact.parent.is_dir(), "a directory for its artifact")
check(workspace not in artifact.parents, "an artifact path outside the workspace")
check(os.environ["CODER_MODEL"] == {model!r}, "the model the app chose")
check("GITHUB_TOKEN" not in os.environ and "CODER_PRIVATE_KEY" not in os.environ, "no token")
"""
DEVELOP_AGENT = """\
check("## The run's input artifact" in briefing, "the input artifact heading")
check('"problemStatement": "Nobody says hello."' in briefing, "the input artifact's JSON")
if role == "architect":
    check("You plan the change; you do not make it." in briefing, "the architect prompt")
    check("## Step artifacts of earlier roles" not in briefing, "no earlier artifacts")
    check("`split` (optional)" in briefing, "the plan's fields")
    artifact.write_text(json.dumps({
        "summary": "Write hello.txt.",
        "files": ["hello.txt"],
        "steps": ["Write the file", "Test it"],
        "split": [{"title": "Document hello.txt", "body": "A README line."}],
    }))
elif role == "implementer":
    check("You make the change the issue asks for." in briefing, "the implementer prompt")
    check("### architect: plan" in briefing, "the architect's plan")
    check('"Document hello.txt"' in briefing, "the plan's split")
    check("writes no step artifact in this run" in briefing, "what to leave alone")
    pathlib.Path("hello.txt").write_text("hello\\n")
    print("COST: 0.25 1000")
elif role == "tester":
    check("You prove the change works." in briefing, "the tester prompt")
    check(briefing.count("### architect: plan") == 1, "the plan, once")
    check("- implementer did its part" in briefing, "the implementer's status")
print(f"STATUS: {role} did its part")
"""
REVIEW_AGENT = """\
import subprocess
check("You review a pull request" in briefing, "the reviewer prompt")
check("pull request #" in briefing, "its subject")
check("git diff origin/main...HEAD" in briefing, "how to see the diff")
diff = subprocess.run(["git", "diff", "--name-only", "origin/main...HEAD"], capture_output=True,
                      text=True, check=True).stdout.split()
check(diff == ["feature.py"], "the pull request's head")
pathlib.Path("feature.py").write_text("rewritten by the reviewer\\n")  # must never be pushed
artifact.write_text(json.dumps({
    "verdict": "request_changes",
    "summary": "The function never returns.",
    "comments": [{"path": "feature.py", "line": 1, "body": "Return the value."}],
}))
print("STATUS: reviewed feature.py")
"""
RESEARCH_AGENT = """\
number = os.environ["CODER_RUN_ID"]
check("You research how to solve the issue" in briefing, "the researcher prompt")
check("does not run the repository's tests" in briefing, "the no-tests rule")
spec = pathlib.Path({spec!r})
spec.parent.mkdir(parents=True, exist_ok=True)
spec.write_text("# Saying hello\\n\\nWrite hello.txt.\\n")
artifact.write_text(json.dumps({{
    "problemStatement": "Nobody says hello.",
    "proposedApproach": "Write hello.txt.",
    "decisions": [{{"decision": "Plain text", "rationale": "Simple."}}],
}}))
print("STATUS: wrote the spec")
"""
RELEASE_AGENT = """\
check("You prepare a release." in briefing, "the release prompt")
check("`tag` (required)" in briefing, "the release fields")
pathlib.Path("CHANGELOG.md").write_text("## 1.4.0\\n\\n- hello\\n")
pathlib.Path("VERSION").write_text("1.4.0\\n")
artifact.write_text(json.dumps({release}))
print("STATUS: released")
"""


@pytest.fixture
async def setup(devhub, admin, org, tmp_path):
    return await make_setup(devhub, admin, org, tmp_path)


def agent_config(command, *, steps=None, workflow="develop", tests=None, extra=""):
    lines = [f"agent: {{backend: command, command: {json.dumps(command)}}}"]
    if tests is not None:
        lines.append(f"tests: {{command: {json.dumps(tests)}}}")
    if steps is not None:
        lines += ["workflows:", f"  {workflow}:", f"    steps: [{', '.join(steps)}]"]
    return "\n".join(lines) + "\n" + extra


def write_agent(tmp_path, body, *, model="sonnet", **values):
    record = tmp_path / "record"
    agent = tmp_path / "agent.py"
    agent.write_text(
        CHECKER.format(record=str(record), model=model)
        + (body.format(**values) if values else body)
    )
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(agent))}", record


async def rest_calls(admin, before):
    return [
        (r["method"], r["path"].removeprefix(f"/api/v3/repos/{REPO}"))
        for r in (await admin.requests())[before:]
        if r["path"].startswith("/api/v3/repos/")
    ]


async def finished_research_check_run(setup):
    """A research run that finished earlier: its check run carries a ResearchArtifact."""
    app = await setup.app()
    main = await setup.get(f"/repos/{REPO}/branches/main")
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    artifact = ResearchArtifact(
        runId="researchrun2",
        repo=REPO,
        createdAt=now,
        completedAt=now,
        issue=IssueRef(repo=REPO, number=1),
        specPath=".coder/specs/1-hello.md",
        problemStatement="Nobody says hello.",
        proposedApproach="Write hello.txt.",
        branchName="coder/1-hello",
    )
    status, _, check_run = await app.post(
        f"/repos/{REPO}/check-runs",
        {
            "name": "coder/research",
            "head_sha": main["commit"]["sha"],
            "external_id": "researchrun2",
            "status": "completed",
            "conclusion": "success",
            "output": {
                "title": "Spec pushed",
                "summary": "done",
                "text": render_artifact_block(artifact),
            },
        },
    )
    assert status == 201, check_run
    return check_run


async def test_three_roles_hand_their_artifacts_on_and_the_plan_lands_in_the_artifact(
    setup, admin, tmp_path
):
    command, record = write_agent(tmp_path, DEVELOP_AGENT, model="opus")
    config = agent_config(
        command, steps=("architect", "implementer", "tester"), tests="test -f hello.txt"
    )
    await setup.put_file(".github/coder.yml", config)
    research = await finished_research_check_run(setup)
    run = await setup.run(
        model="opus",
        model_reason="escalated from sonnet: run abcdefghijkl failed",
        input_run="researchrun2",
        input_check_run=research["id"],
    )
    before = len(await admin.requests())

    assert await run.execute() == EXIT_OK, run.summary.read_text()
    calls = [call for call in await rest_calls(admin, before) if call[0] != "PATCH"]

    pull = await run.pull_now()
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert check_run["conclusion"] == "success"
    summary = check_run["output"]["summary"]
    assert "Model: opus — escalated from sonnet: run abcdefghijkl failed" in summary
    assert "Proposed split: 1 sub-issue" in summary
    assert "- **Document hello.txt** — A README line." in summary
    assert "Say `/coder split`" in summary
    artifact = load_develop_artifact(check_run["output"]["text"])
    assert artifact is not None
    assert artifact.plan is not None
    assert artifact.plan.files == ("hello.txt",)
    assert [proposal.title for proposal in artifact.plan.split] == ["Document hello.txt"]
    assert (artifact.filesChanged, artifact.testsPass, artifact.model) == (
        ("hello.txt",),
        True,
        "opus",
    )
    # What each role received, as the agents recorded it.
    tester = (record / "tester.md").read_text()
    assert tester.index("## The run's input artifact") < tester.index("### architect: plan")
    roles = ("architect", "implementer", "tester")
    envs = [json.loads((record / f"{role}.env").read_text()) for role in roles]
    paths = {env["CODER_ARTIFACT_FILE"] for env in envs}
    assert len(paths) == 3  # a fresh path per session
    # One GET for the input artifact; otherwise the usual handful (progress edits aside; the
    # label comes off in the end's GraphQL request).
    assert calls == [
        ("GET", "/installation"),
        ("GET", f"/check-runs/{research['id']}"),
        ("POST", "/check-runs"),
    ]


async def test_a_malformed_step_artifact_fails_the_run_naming_the_field(setup, tmp_path):
    body = (
        "if role == 'architect':\n"
        "    artifact.write_text(json.dumps({'files': 'hello.txt', 'colour': 'red'}))\n"
        "pathlib.Path(f'{role}.txt').write_text(role)\n"
    )
    command, _record = write_agent(tmp_path, body)
    await setup.put_file(".github/coder.yml", agent_config(command, steps=("architect", "tester")))
    run = await setup.run()

    assert await run.execute() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert check_run["conclusion"] == "failure"
    summary = check_run["output"]["summary"]
    assert "The architect's step artifact ($CODER_ARTIFACT_FILE) is invalid" in summary
    assert "files: Input should be a valid tuple" in summary
    assert "colour: not a field of this step's artifact" in summary
    assert "~~tester~~ (skipped)" in summary


async def test_a_custom_role_reads_its_prompt_from_the_default_branch(setup, tmp_path):
    body = (
        "check('Look for injection first.' in briefing, 'the custom prompt')\n"
        "pathlib.Path('audit.txt').write_text('clean')\n"
    )
    command, _record = write_agent(tmp_path, body)
    roles = "roles:\n  auditor: {prompt: .github/prompts/auditor.md}\n"
    config = agent_config(command, steps=("auditor",), extra=roles)
    await setup.put_file(".github/coder.yml", config)
    await setup.put_file(".github/prompts/auditor.md", "You audit. Look for injection first.\n")
    run = await setup.run()

    assert await run.execute() == EXIT_OK


async def test_a_custom_role_without_its_prompt_file_fails_naming_the_path(setup, tmp_path):
    command, record = write_agent(tmp_path, "")
    roles = "roles:\n  auditor: {prompt: .github/prompts/auditor.md}\n"
    await setup.put_file(
        ".github/coder.yml", agent_config(command, steps=("auditor",), extra=roles)
    )
    run = await setup.run()

    assert await run.execute() == EXIT_RUN_FAILED

    (check_run,) = await run.check_runs(run.initial_sha)
    assert check_run["conclusion"] == "failure"
    assert (
        "roles.auditor.prompt: .github/prompts/auditor.md is not on the default branch (main)"
        in check_run["output"]["summary"]
    )
    assert not record.exists()  # no agent ran


async def test_a_research_run_pushes_its_spec_and_stays_a_draft(setup, tmp_path):
    command, _record = write_agent(tmp_path, RESEARCH_AGENT, spec=".coder/specs/hello.md")
    # Tests that would fail: a research run does not run them.
    await setup.put_file(".github/coder.yml", agent_config(command, tests="false"))
    run = await setup.run(workflow="research")

    assert await run.execute() == EXIT_OK, run.summary.read_text()

    pull = await run.pull_now()
    assert pull["draft"] is True
    assert "It stays a draft: it holds a spec, not code." in pull["body"]
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert (check_run["name"], check_run["conclusion"]) == ("coder/research", "success")
    assert check_run["output"]["title"] == "Spec pushed: .coder/specs/hello.md"
    summary = check_run["output"]["summary"]
    assert "The pull request stays a draft: it holds a spec, not code." in summary
    assert "| Tests | not part of a research run |" in summary
    artifact = load_artifact(check_run["output"]["text"])
    assert isinstance(artifact, ResearchArtifact)
    assert artifact.specPath == ".coder/specs/hello.md"  # filled in by the runner
    assert artifact.problemStatement == "Nobody says hello."
    assert artifact.commitSha == pull["head"]["sha"]
    assert artifact.branchName == run.branch


async def test_a_research_run_that_writes_no_spec_fails(setup, tmp_path):
    command, _record = write_agent(tmp_path, RESEARCH_AGENT, spec="notes/hello.md")
    await setup.put_file(".github/coder.yml", agent_config(command))
    run = await setup.run(workflow="research")

    assert await run.execute() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert check_run["conclusion"] == "failure"
    assert "wrote no spec under .coder/specs/" in check_run["output"]["summary"]
    assert check_run["output"]["text"].startswith("No artifact: specPath: Field required")


async def test_a_release_run_commits_its_changelog_and_names_the_tag(setup, tmp_path):
    release = {"version": "1.4.0", "tag": "v1.4.0", "changelog": "- hello"}
    command, _record = write_agent(tmp_path, RELEASE_AGENT, release=repr(release))
    await setup.put_file(".github/coder.yml", agent_config(command, tests="test -f VERSION"))
    run = await setup.run(title="Release", body="", workflow="release")

    assert await run.execute() == EXIT_OK, run.summary.read_text()

    pull = await run.pull_now()
    assert pull["draft"] is False
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert check_run["output"]["title"] == "Release 1.4.0: 2 files changed"
    artifact = load_artifact(check_run["output"]["text"])
    assert (artifact.kind, artifact.version, artifact.tag) == ("release", "1.4.0", "v1.4.0")
    assert artifact.commitSha == pull["head"]["sha"]
    files = await setup.get(f"/repos/{REPO}/pulls/{pull['number']}/files")
    assert sorted(file["filename"] for file in files) == ["CHANGELOG.md", "VERSION"]


async def test_a_release_without_a_tag_fails_naming_the_field(setup, tmp_path):
    release = {"version": "1.4.0", "changelog": "- hello"}
    command, _record = write_agent(tmp_path, RELEASE_AGENT, release=repr(release))
    await setup.put_file(".github/coder.yml", agent_config(command))
    run = await setup.run(title="Release", body="", workflow="release")

    assert await run.execute() == EXIT_RUN_FAILED

    pull = await run.pull_now()
    assert pull["draft"] is True
    (check_run,) = await run.check_runs(pull["head"]["sha"])
    assert (
        "The release artifact is not complete: tag: Field required."
        in (check_run["output"]["summary"])
    )


async def review_run(setup, *, text=None):
    """What the app does for a review of a person's pull request: a check run on its head."""
    main = await setup.get(f"/repos/{REPO}/branches/main")
    status, _, _ref = await setup.owner.post(
        f"/repos/{REPO}/git/refs", {"ref": "refs/heads/feature", "sha": main["commit"]["sha"]}
    )
    assert status == 201
    await setup.put_file("feature.py", "def f():\n    pass\n", branch="feature")
    status, _, pull = await setup.owner.post(
        f"/repos/{REPO}/pulls",
        {"title": "Add f", "head": "feature", "base": "main", "body": "Adds f. By hand."},
    )
    assert status == 201, pull
    number = pull["number"]
    snapshot = Snapshot.taken(
        repo=REPO,
        issue_number=number,
        title=pull["title"],
        body=pull["body"],
        labeled_by="alice",
        run_id=run_id(REPO, "review", number, f"delivery-review-{number}"),
        workflow="review",
        model="sonnet",
        model_reason="default",
    )
    app = await setup.app()
    status, _, check_run = await app.post(
        f"/repos/{REPO}/check-runs",
        {
            "name": "coder/review",
            "head_sha": pull["head"]["sha"],
            "external_id": snapshot.run_id,
            "status": "queued",
            "output": {
                "title": "Queued",
                "summary": "A review is queued.",
                "text": render_run_request(snapshot) if text is None else text,
            },
        },
    )
    assert status == 201, check_run
    run = Run(
        setup,
        snapshot=snapshot,
        branch="feature",
        pull=pull,
        check_run=check_run,
        initial_sha=pull["head"]["sha"],
    )
    return run, number


async def test_a_review_reads_a_person_s_pull_request_and_pushes_nothing(setup, admin, tmp_path):
    command, _record = write_agent(tmp_path, REVIEW_AGENT)
    await setup.put_file(".github/coder.yml", agent_config(command, tests="false"))
    run, number = await review_run(setup)
    app = await setup.app()
    status, _, _labels = await app.post(
        f"/repos/{REPO}/issues/{number}/labels", {"labels": ["coder:running"]}
    )
    assert status == 200
    before = len(await admin.requests())

    assert await run.execute(CODER_ISSUE=str(number), CODER_PULL=str(number)) == EXIT_OK, (
        run.summary.read_text()
    )
    requests = (await admin.requests())[before:]
    calls = [call for call in await rest_calls(admin, before) if call[0] != "PATCH"]

    pull = await run.pull_now()
    assert pull["head"]["sha"] == run.initial_sha
    assert pull["body"] == "Adds f. By hand."  # the author's body is not the run's to edit
    assert pull["draft"] is False
    (check_run,) = await run.check_runs(run.initial_sha)
    assert check_run["id"] == run.check_run["id"]
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "success")
    assert check_run["output"]["title"] == "Review: changes requested"
    summary = check_run["output"]["summary"]
    assert "The reviewer's verdict: request_changes." in summary
    assert "- `feature.py:1` Return the value." in summary
    assert "Model: sonnet — default" in summary
    artifact = load_artifact(check_run["output"]["text"])
    assert (artifact.kind, artifact.verdict, artifact.pull.number) == (
        "review",
        "request_changes",
        number,
    )
    assert artifact.issue is None
    assert not [r for r in requests if r["path"].endswith("git-receive-pack")]
    assert calls == [
        ("GET", "/installation"),
        ("GET", f"/check-runs/{run.check_run['id']}"),
    ]
    # The pull request is the run's issue: the end's GraphQL request took the label off it.
    # GraphQL: the pull request, the check run's state before completing it, the end.
    assert "coder:running" not in {label["name"] for label in pull["labels"]}
    assert len([r for r in requests if r["path"] == "/api/graphql"]) == 3


async def test_a_review_without_a_run_request_fails_before_any_agent_runs(setup, tmp_path):
    command, record = write_agent(tmp_path, REVIEW_AGENT)
    await setup.put_file(".github/coder.yml", agent_config(command))
    run, number = await review_run(setup, text="no request here")

    assert await run.execute(CODER_ISSUE=str(number), CODER_PULL=str(number)) == EXIT_RUN_FAILED

    (check_run,) = await run.check_runs(run.initial_sha)
    assert check_run["conclusion"] == "failure"
    assert "carries no run request" in check_run["output"]["summary"]
    assert not record.exists()
