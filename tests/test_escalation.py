"""Model escalation: the pure ladder, and a failed run's next attempt on devhub."""

import pytest

from app.artifacts import ReviewArtifact, render_artifact_block
from app.briefing import Snapshot, render_run_request, snapshot_from_commit
from app.config import parse_config
from app.develop import FailedRun, ModelChoice, choose_model, failed_run
from app.installation import ensure_labels
from tests.test_develop import (
    REPO,
    FakeRunner,
    Journey,
    install_workflow,
    redeliver_to_fresh_replica,
)


def config(text="{}"):
    result = parse_config(text)
    assert result.ok, result.errors
    return result.config


LADDER = config("agent: {models: {default: haiku, labels: {documentation: sonnet}}}\n")


def test_a_first_attempt_takes_the_workflow_model_then_a_label_then_the_default():
    assert choose_model(LADDER, "develop", []) == ModelChoice("haiku", "default")
    assert choose_model(LADDER, "develop", ["bug", "documentation"]) == ModelChoice(
        "sonnet", "label documentation"
    )
    own = config("workflows: {research: {model: opus}}\nagent: {models: {labels: {bug: haiku}}}\n")
    assert choose_model(own, "research", ["bug"]) == ModelChoice("opus", "workflow research")


@pytest.mark.parametrize(
    ("failed_model", "expected"),
    [
        ("haiku", ModelChoice("sonnet", "escalated from haiku: run r1 failed")),
        ("sonnet", ModelChoice("opus", "escalated from sonnet: run r1 failed")),
        ("opus", ModelChoice("opus", "top of the ladder")),
        # Not on the ladder: there is no next step, the usual choice stands.
        ("gpt-x", ModelChoice("haiku", "default")),
    ],
)
def test_a_new_attempt_after_a_failure_climbs_one_step(failed_model, expected):
    assert choose_model(LADDER, "develop", [], FailedRun("r1", failed_model)) == expected


def test_the_climb_starts_from_the_failed_run_not_from_todays_choice():
    # The label asks for sonnet, but the failed attempt ran haiku: the next one runs sonnet.
    failed = FailedRun("r1", "haiku")
    assert choose_model(LADDER, "develop", ["documentation"], failed).model == "sonnet"


def check_run(conclusion, text=None, run_id="r1"):
    return {"external_id": run_id, "conclusion": conclusion, "output": {"text": text}}


ARTIFACT = {
    "kind": "review",
    "runId": "r1",
    "repo": REPO,
    "createdAt": "2025-01-01T00:00:00Z",
    "completedAt": "2025-01-01T00:05:00Z",
    "model": "sonnet",
    "conclusion": "failure",
    "pull": {"repo": REPO, "number": 3},
    "verdict": "comment",
    "summary": "x",
}


def test_a_failed_run_names_its_model_from_its_artifact_or_its_run_request():
    block = render_artifact_block(ReviewArtifact.model_validate(ARTIFACT))
    assert failed_run(check_run("failure", block)) == FailedRun("r1", "sonnet")
    request = Snapshot(REPO, 3, "t", "b", "alice", "r1", "review", "haiku")
    assert failed_run(check_run("timed_out", render_run_request(request))) == FailedRun(
        "r1", "haiku"
    )
    # Nothing to read the model from: the caller asks the branch's commit.
    assert failed_run(check_run("failure")) is None
    # Cancelled (a person stopped it) and successful runs are not failed attempts.
    assert failed_run(check_run("cancelled", block)) is None
    assert failed_run(check_run("success", block)) is None


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Journey(devhub, admin, org, app_server)


@pytest.fixture
async def fake_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "report")
    yield runner
    await runner.close()


async def newest_run(journey, number, attempt):
    """Return the attempt's branch snapshot and its check run."""
    base = f"coder/{number}-fix-the-frobnicator"
    branch = base if attempt == 1 else f"{base}-{attempt}"
    ref = await journey.get(f"/repos/{REPO}/git/ref/heads/{branch}")
    head = ref["object"]["sha"]
    commit = await journey.get(f"/repos/{REPO}/git/commits/{head}")
    [check_run] = await journey.check_runs(head)
    return snapshot_from_commit(REPO, commit["message"]), check_run


async def finish(journey, org, check_run, conclusion, text=None):
    """Complete a run's check run as its runner would, with the app's token."""
    gh = journey.app_server.access.for_installation(org.installation_id)
    output = {"title": conclusion, "summary": conclusion} | ({"text": text} if text else {})
    await gh.patch(
        f"/repos/{REPO}/check-runs/{check_run['id']}",
        data={"conclusion": conclusion, "output": output},
    )


async def relabel(journey, number):
    await journey.rest.delete(f"/repos/{REPO}/issues/{number}/labels/coder:develop")
    await journey.label(number)


async def test_a_failed_run_then_a_relabel_runs_the_next_model(journey, org, fake_runner):
    await journey.put_file(".github/coder.yml", "agent: {models: {default: haiku}}\n")
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    first, check_run = await newest_run(journey, number, 1)
    assert (first.model, first.model_reason) == ("haiku", "default")
    # The job died without an artifact: the model comes from the branch's commit.
    await finish(journey, org, check_run, "failure")

    await relabel(journey, number)
    second, check_run = await newest_run(journey, number, 2)
    reason = f"escalated from haiku: run {first.run_id} failed"
    assert (second.model, second.model_reason) == ("sonnet", reason)
    assert check_run["output"]["title"] == "Queued: develop with sonnet"
    assert f"- model: sonnet ({reason})" in check_run["output"]["summary"]
    # This one reported an artifact that names its model.
    artifact = dict(ARTIFACT, runId=second.run_id, model="sonnet")
    block = render_artifact_block(ReviewArtifact.model_validate(artifact))
    await finish(journey, org, check_run, "timed_out", block)

    await relabel(journey, number)
    third, check_run = await newest_run(journey, number, 3)
    assert (third.model, third.model_reason) == (
        "opus",
        f"escalated from sonnet: run {second.run_id} failed",
    )
    await finish(journey, org, check_run, "failure")

    await relabel(journey, number)
    fourth, check_run = await newest_run(journey, number, 4)
    assert (fourth.model, fourth.model_reason) == ("opus", "top of the ladder")
    await finish(journey, org, check_run, "success")

    # After a success, a new request starts from the usual choice again.
    await relabel(journey, number)
    fifth, _ = await newest_run(journey, number, 5)
    assert (fifth.model, fifth.model_reason) == ("haiku", "default")


async def test_a_redelivered_relabel_after_a_failure_starts_nothing_more(
    journey, org, fake_runner, admin
):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    _, check_run = await newest_run(journey, number, 1)
    await finish(journey, org, check_run, "failure")
    await journey.rest.delete(f"/repos/{REPO}/issues/{number}/labels/coder:develop")
    delivery = await journey.label(number)
    second, _ = await newest_run(journey, number, 2)
    assert second.model == "opus"  # default sonnet failed: one step up
    # The escalated claim has another commit than the first one the request makes, yet a
    # redelivery still recognises the run as its own.
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await journey.branches(number)) == 2
    assert len(await journey.pulls()) == 2
