"""`coder run` and `coder artifacts get` against devhub, with a person's own token."""

import asyncio
import json

import pytest
from click.testing import CliRunner

from app.artifacts import IssueRef, parse_artifact_block, render_artifact_block
from app.cli import main
from app.cli_runs import api_url_for
from app.installation import ensure_labels
from app.markers import parse_markers
from tests.test_develop import REPO, FakeRunner, install_workflow, workflow_runs
from tests.test_triggers import Triggers


def test_the_api_follows_gh_host():
    assert api_url_for(None) == "https://api.github.com"
    assert api_url_for("github.com") == "https://api.github.com"
    assert api_url_for("ghe.example.com") == "https://ghe.example.com/api/v3"


def test_a_token_is_required(tmp_path):
    result = CliRunner().invoke(
        main,
        ["run", "develop", "--repo", REPO, "--issue", "1"],
        env={"GITHUB_TOKEN": "", "GH_TOKEN": ""},
    )
    assert result.exit_code == 2
    assert "GITHUB_TOKEN" in result.output


def test_an_input_file_must_be_a_json_object(tmp_path):
    path = tmp_path / "input.json"
    path.write_text("[1]")
    args = ["run", "develop", "--repo", REPO, "--issue", "1", "--input", str(path)]
    result = CliRunner().invoke(main, args, env={"GITHUB_TOKEN": "t"})
    assert result.exit_code == 2
    assert "must hold a JSON object" in result.output


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Triggers(devhub, admin, org, app_server)


@pytest.fixture
async def fake_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "report")
    yield runner
    await runner.close()


async def coder(journey, *args, token=None):
    """Run the `coder` CLI in a thread (it runs its own event loop) as alice."""
    env = {"GITHUB_TOKEN": token or journey.org.owner.token, "GH_TOKEN": ""}
    arguments = [*args, "--api-url", journey.devhub.api_url]
    return await asyncio.to_thread(CliRunner().invoke, main, arguments, env=env)


def requests_by(requests, login, since):
    return [(r["method"], r["path"]) for r in requests[since:] if r["token_owner"] == login]


async def test_coder_run_adds_the_workflows_label(journey, admin, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    before = len(await admin.requests())
    seen = await journey.seen()
    result = await coder(journey, "run", "develop", "--repo", REPO, "--issue", str(number))
    assert result.exit_code == 0, result.output
    assert f"added `coder:develop` to {REPO}#{number}" in result.output
    await journey.handled("issues", "labeled", seen)
    assert ("POST", f"/api/v3/repos/{REPO}/issues/{number}/labels") in requests_by(
        await admin.requests(), "alice", before
    )
    assert len(await journey.branches(number)) == 1
    # Asked again while the label is on: it comes off and on again, so GitHub says `labeled`.
    seen = await journey.seen()
    result = await coder(journey, "run", "develop", "--repo", REPO, "--issue", str(number))
    assert result.exit_code == 0, result.output
    await journey.handled("issues", "labeled", seen)


async def test_coder_run_with_then_and_input_posts_the_command(journey, fake_runner, tmp_path):
    await install_workflow(journey)
    number = await journey.issue()
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"kind": "issue", "repo": REPO, "number": number}))
    seen = await journey.seen()
    result = await coder(
        journey,
        "run",
        "research",
        "--repo",
        REPO,
        "--issue",
        str(number),
        "--then",
        "develop",
        "--input",
        str(path),
    )
    assert result.exit_code == 0, result.output
    assert "asked with `/coder research`" in result.output
    await journey.handled("issue_comment", "created", seen)
    [comment] = await journey.comments(number)
    assert comment["user"]["login"] == "alice"
    assert comment["body"].startswith("/coder research --then develop\n")
    [branch] = await journey.branch_names(number)
    snapshot, _ = await journey.snapshot(branch)
    assert (snapshot.workflow, snapshot.then) == ("research", "develop")
    stored = await journey.get(f"/repos/{REPO}/check-runs/{snapshot.input_check_run}")
    assert parse_artifact_block(stored["output"]["text"])["number"] == number


async def test_coder_run_with_a_bad_input_is_answered_by_the_app(journey, tmp_path):
    number = await journey.issue()
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"kind": "issue", "repo": REPO}))
    seen = await journey.seen()
    args = ["run", "develop", "--repo", REPO, "--issue", str(number), "--input", str(path)]
    result = await coder(journey, *args)
    assert result.exit_code == 0, result.output
    await journey.handled("issue_comment", "created", seen)
    reply = (await journey.comments(number))[-1]
    assert [m.kind for m in parse_markers(reply["body"])] == ["input-invalid"]
    assert "input number: Field required" in reply["body"]
    assert await journey.branches(number) == []


async def test_coder_run_names_the_workflows_there_are(journey):
    number = await journey.issue()
    result = await coder(journey, "run", "nightly", "--repo", REPO, "--issue", str(number))
    assert result.exit_code == 1
    assert "no workflow 'nightly' in acme/widgets" in result.output
    assert "develop" in result.output


async def test_coder_artifacts_get_prints_a_runs_artifact(journey, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    [branch] = await journey.branch_names(number)
    snapshot, head = await journey.snapshot(branch)
    [check_run] = await journey.check_runs(head)
    artifact = IssueRef(repo=REPO, number=number)
    gh = journey.app_server.access.for_installation(org.installation_id)
    output = {"title": "done", "summary": "done", "text": render_artifact_block(artifact)}
    await gh.patch(
        f"/repos/{REPO}/check-runs/{check_run['id']}",
        data={"conclusion": "success", "output": output},
    )
    result = await coder(journey, "artifacts", "get", REPO, snapshot.run_id)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(artifact.model_dump_json())
    missing = await coder(journey, "artifacts", "get", REPO, "aaaaaaaaaaaa")
    assert missing.exit_code == 1
    assert "no artifact for run aaaaaaaaaaaa" in missing.output
    assert len(await workflow_runs(journey)) == 1


async def finished_run(journey, org):
    """A develop run whose check run completed with an artifact; return it and its snapshot."""
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    [branch] = await journey.branch_names(number)
    snapshot, head = await journey.snapshot(branch)
    [check_run] = await journey.check_runs(head)
    artifact = IssueRef(repo=REPO, number=number)
    gh = journey.app_server.access.for_installation(org.installation_id)
    output = {"title": "done", "summary": "done", "text": render_artifact_block(artifact)}
    await gh.patch(
        f"/repos/{REPO}/check-runs/{check_run['id']}",
        data={"conclusion": "success", "output": output},
    )
    return artifact, snapshot, branch


async def close_and_delete(journey, branch, body=None):
    """Close the run's pull request and delete its branch, as after a merge."""
    [pull] = await journey.pulls()
    change = {"state": "closed"} | ({"body": body} if body is not None else {})
    status, _, answer = await journey.rest.patch(f"/repos/{REPO}/pulls/{pull['number']}", change)
    assert status == 200, answer
    status, _, answer = await journey.rest.delete(f"/repos/{REPO}/git/refs/heads/{branch}")
    assert status == 204, answer
    status, _, _ = await journey.rest.get(f"/repos/{REPO}/git/ref/heads/{branch}")
    assert status == 404


@pytest.mark.parametrize(
    "body",
    [
        None,  # the pull request still names the run: found by an issue search
        "Rewritten by a later run.",  # it does not: found among closed run-branch pull requests
    ],
)
async def test_an_artifact_is_found_after_its_branch_is_deleted(journey, org, fake_runner, body):
    artifact, snapshot, branch = await finished_run(journey, org)
    await close_and_delete(journey, branch, body)
    result = await coder(journey, "artifacts", "get", REPO, snapshot.run_id)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(artifact.model_dump_json())
    missing = await coder(journey, "artifacts", "get", REPO, "aaaaaaaaaaaa")
    assert missing.exit_code == 1
