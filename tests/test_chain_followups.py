"""What follows a finished run besides `then:`: sub-issues, a review of the PR, a release tag."""

import json

import pytest

from app.artifacts import (
    DevelopArtifact,
    PlanArtifact,
    ReleaseArtifact,
    ResearchArtifact,
)
from app.briefing import parse_run_request
from app.chain import FinishedCheckRun, is_our_success, spec_url
from app.config import parse_config
from app.ids import run_id
from app.installation import ensure_labels
from app.markers import parse_markers
from app.releases import release_of, valid_tag
from app.split import develop_label, proposals_of, sub_issue_body
from tests.test_chain import DEVELOP, TIMES, StandIn, completed_check_run
from tests.test_develop import (
    CONFIG_PATH,
    REPO,
    install_workflow,
    redeliver_to_fresh_replica,
    workflow_runs,
)
from tests.test_devhub_graphql import graphql
from tests.test_triggers import Triggers

SPLIT = {
    "kind": "plan",
    "summary": "Two parts.",
    "split": [
        {"title": "Frob once", "body": "The counter."},
        {"title": "Check the frob", "body": "The test."},
    ],
}
RELEASE = {
    "kind": "release",
    "runId": "$RUN_ID",
    "repo": "$REPO",
    **TIMES,
    "version": "1.2.0",
    "tag": "v1.2.0",
    "changelog": "- Frobs once.",
    "prUrl": "$PULL_URL",
    "branchName": "$BRANCH",
}


def check_run(**fields):
    base = {"id": 1, "name": "coder/research", "head_sha": "a" * 40}
    return FinishedCheckRun.model_validate(base | fields)


def test_only_a_successful_coder_run_of_this_app_is_followed():
    mine = {"conclusion": "success", "external_id": "abc", "app": {"id": 7}}
    assert is_our_success(check_run(**mine), 7)
    # Any app may name a check run `coder/...`; only this app's carry its runs.
    assert not is_our_success(check_run(**mine), 8)
    assert not is_our_success(check_run(**(mine | {"conclusion": "neutral"})), 7)
    assert not is_our_success(check_run(**(mine | {"name": "ci/test"})), 7)
    assert not is_our_success(check_run(**(mine | {"external_id": ""})), 7)


def test_a_spec_link_points_at_the_commit_or_else_the_branch():
    fields = {
        "runId": "r",
        "repo": REPO,
        **TIMES,
        "specPath": ".coder/specs/1-x.md",
        "problemStatement": "p",
        "proposedApproach": "a",
        "branchName": "coder/1-research-x",
    }
    on_branch = ResearchArtifact.model_validate(fields)
    assert spec_url("https://h/acme/widgets", on_branch) == (
        "https://h/acme/widgets/blob/coder/1-research-x/.coder/specs/1-x.md"
    )
    on_commit = ResearchArtifact.model_validate(fields | {"commitSha": "c" * 40})
    assert (
        spec_url("https://h/a/b", on_commit) == f"https://h/a/b/blob/{'c' * 40}/.coder/specs/1-x.md"
    )


def test_split_proposals_come_from_the_plan():
    plan = PlanArtifact.model_validate(SPLIT)
    develop = DevelopArtifact.model_validate(
        DEVELOP | {"runId": "r", "repo": REPO, "prUrl": "u", "branchName": "b", "plan": SPLIT}
    )
    assert proposals_of(develop) == plan.split
    assert proposals_of(None) == ()
    body = sub_issue_body(parent=4, run_id="r", index=2, proposal=plan.split[1])
    [marker] = parse_markers(body)
    assert marker.matches("split", {"parent": "4", "run": "r", "index": "2"})
    assert "The test." in body
    assert "Split from #4" in body
    assert develop_label(parse_config(None).config) == "coder:develop"
    custom = parse_config("workflows: {develop: {on: {label: build}}}\n").config
    assert develop_label(custom) == "build"


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("v1.2.0", True),
        ("release/2025-01", True),
        ("v1..2", False),
        ("-v1", False),
        ("v1 2", False),
        ("v1.lock", False),
        ("refs/../x", False),
    ],
)
def test_only_plain_tag_names_are_created(tag, ok):
    assert valid_tag(tag) is ok


def test_the_release_is_the_newest_successful_release_artifact_of_this_app():
    artifact = ReleaseArtifact.model_validate(
        RELEASE | {"runId": "r", "repo": REPO, "prUrl": "u", "branchName": "b"}
    )
    text = "```json coder-artifact\n" + artifact.model_dump_json() + "\n```"
    runs = [
        {"id": 1, "conclusion": "success", "app": {"id": 7}, "output": {"text": text}},
        {"id": 2, "conclusion": "failure", "app": {"id": 7}, "output": {"text": text}},
        {"id": 3, "conclusion": "success", "app": {"id": 9}, "output": {"text": text}},
    ]
    assert release_of(runs, 7) == artifact
    assert release_of(runs[1:], 7) is None


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Triggers(devhub, admin, org, app_server)


async def test_auto_split_opens_linked_sub_issues_once(journey, devhub, tmp_path):
    runner = await StandIn().start(devhub, tmp_path, {"develop": DEVELOP | {"plan": SPLIT}})
    try:
        await journey.put_file(CONFIG_PATH, "workflows:\n  develop: {auto_split: true}\n")
        await install_workflow(journey)
        number = await journey.issue()
        seen = await journey.seen()
        await journey.label(number)
        develop = await runner.next("develop")
        delivery = await journey.handled(
            "check_run", "completed", seen, predicate=completed_check_run("coder/develop")
        )
    finally:
        await runner.close()
    subs = await journey.get(f"/repos/{REPO}/issues/{number}/sub_issues")
    assert [issue["title"] for issue in subs] == ["Frob once", "Check the frob"]
    for index, issue in enumerate(subs, start=1):
        assert issue["user"]["login"] == "coder[bot]"
        assert [label["name"] for label in issue["labels"]] == ["coder:develop"]
        [marker] = parse_markers(issue["body"])
        assert marker.matches("split", {"parent": str(number), "run": develop["run_id"]})
        assert marker.fields["index"] == str(index)
    issues_before = await journey.get(f"/repos/{REPO}/issues?state=all&per_page=100")
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await journey.get(f"/repos/{REPO}/issues/{number}/sub_issues")) == 2
    issues_after = await journey.get(f"/repos/{REPO}/issues?state=all&per_page=100")
    assert len(issues_after) == len(issues_before)


async def test_develop_then_review_reviews_the_runs_pull_request(journey, devhub, tmp_path):
    runner = await StandIn().start(devhub, tmp_path, {"develop": DEVELOP})
    try:
        await journey.put_file(CONFIG_PATH, "workflows:\n  develop: {then: review}\n")
        await install_workflow(journey)
        number = await journey.issue()
        await journey.label(number)
        develop = await runner.next("develop")
        review = await runner.next("review")
    finally:
        await runner.close()
    [pull] = await journey.pulls()
    review_id = run_id(REPO, "review", pull["number"], f"then:{develop['run_id']}")
    assert (review["run_id"], review["issue"], review["pull"]) == (
        review_id,
        str(pull["number"]),
        str(pull["number"]),
    )
    [check_run] = [
        r for r in await journey.check_runs(pull["head"]["sha"]) if r["name"] == "coder/review"
    ]
    snapshot = parse_run_request(check_run["output"]["text"])
    assert (snapshot.run_id, snapshot.input_run, snapshot.input_check_run) == (
        review_id,
        develop["run_id"],
        develop["check_run"],
    )
    assert len(await workflow_runs(journey)) == 2


MARK_READY = """
mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) {
  pullRequest { isDraft } } }
"""


async def test_a_merged_release_pull_request_is_tagged(journey, devhub, admin, org, tmp_path):
    runner = await StandIn().start(devhub, tmp_path, {"release": RELEASE})
    try:
        await install_workflow(journey)
        number = await journey.issue(title="Release 1.2.0")
        await journey.comment(number, "/coder release")
        await runner.next("release")
    finally:
        await runner.close()
    [pull] = await journey.pulls()
    status, _, answer = await graphql(
        admin, devhub, org.owner.token, MARK_READY, id=pull["node_id"]
    )
    assert status == 200, answer
    seen = await journey.seen()
    status, _, merged = await journey.rest.put(f"/repos/{REPO}/pulls/{pull['number']}/merge", {})
    assert status == 200, merged
    delivery = await journey.handled("pull_request", "closed", seen)
    tag = await journey.get(f"/repos/{REPO}/git/ref/tags/v1.2.0")
    assert tag["object"]["sha"] == merged["sha"]
    # Redelivered: the tag is there already (422), which is fine.
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert json.loads(delivery.body)["pull_request"]["merged"] is True
