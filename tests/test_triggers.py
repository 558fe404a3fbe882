"""Every trigger on devhub: labels, workflow commands, pull-request actions, repository_dispatch."""

import pytest

from app.artifacts import parse_artifact_block
from app.briefing import parse_run_request, snapshot_from_commit
from app.ids import run_id
from app.installation import ensure_labels
from app.markers import parse_markers
from tests.test_develop import (
    CONFIG_PATH,
    REPO,
    FakeRunner,
    Journey,
    install_workflow,
    redeliver_to_fresh_replica,
    workflow_runs,
)


class Triggers(Journey):
    """A person using GitHub, plus comments, pull requests and dispatches."""

    async def comment(self, number, body, token=None, outcome="ok"):
        """Comment and wait until the app has handled the delivery."""
        rest = self.rest if token is None else self.admin.rest(token)
        seen = await self.seen()
        status, _, answer = await rest.post(
            f"/repos/{REPO}/issues/{number}/comments", {"body": body}
        )
        assert status == 201, answer
        return await self.handled("issue_comment", "created", seen, outcome=outcome)

    async def dispatch(self, event_type, client_payload=None):
        seen = await self.seen()
        body = {"event_type": event_type, "client_payload": client_payload or {}}
        status, _, answer = await self.rest.post(f"/repos/{REPO}/dispatches", body)
        assert status == 204, answer
        return await self.handled("repository_dispatch", seen=seen)

    async def open_pull(self, branch="feature", title="Add a feature", token=None):
        """Push a branch with one change and open a pull request from it."""
        main = await self.get(f"/repos/{REPO}/git/ref/heads/main")
        status, _, answer = await self.rest.post(
            f"/repos/{REPO}/git/refs",
            {"ref": f"refs/heads/{branch}", "sha": main["object"]["sha"]},
        )
        assert status == 201, answer
        await self.put_file(f"{branch}.txt", "change\n", branch=branch)
        rest = self.rest if token is None else self.admin.rest(token)
        seen = await self.seen()
        status, _, pull = await rest.post(
            f"/repos/{REPO}/pulls", {"title": title, "head": branch, "base": "main"}
        )
        assert status == 201, pull
        await self.handled("pull_request", "opened", seen)
        return pull

    async def snapshot(self, branch):
        """Read the snapshot in a run branch's claim commit."""
        ref = await self.get(f"/repos/{REPO}/git/ref/heads/{branch}")
        commit = await self.get(f"/repos/{REPO}/git/commits/{ref['object']['sha']}")
        return snapshot_from_commit(REPO, commit["message"]), ref["object"]["sha"]

    async def branch_names(self, number):
        return sorted(b["ref"].removeprefix("refs/heads/") for b in await self.branches(number))

    async def markers(self, number):
        return [
            (m.kind, m.fields)
            for c in await self.comments(number)
            if c["user"]["login"] == "coder[bot]"
            for m in parse_markers(c["body"])
        ]


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Triggers(devhub, admin, org, app_server)


@pytest.fixture
async def fake_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "report")
    yield runner
    await runner.close()


async def test_built_in_workflows_run_with_no_config(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number, "coder:research")
    await journey.label(number, "coder:design")
    await journey.label(number, "coder:develop")
    await journey.comment(number, "Please.\n/coder release")
    base = f"coder/{number}-"
    assert await journey.branch_names(number) == [
        f"{base}design-fix-the-frobnicator",
        f"{base}fix-the-frobnicator",
        f"{base}release-fix-the-frobnicator",
        f"{base}research-fix-the-frobnicator",
    ]
    for workflow, branch in [
        ("research", f"{base}research-fix-the-frobnicator"),
        ("design", f"{base}design-fix-the-frobnicator"),
        ("release", f"{base}release-fix-the-frobnicator"),
    ]:
        snapshot, head = await journey.snapshot(branch)
        assert snapshot.workflow == workflow
        # (Not its status: the template runs one job per issue at a time, and GitHub cancels a
        # waiting job when another one joins the queue of the same concurrency group.)
        [check_run] = await journey.check_runs(head)
        assert check_run["name"] == f"coder/{workflow}"
        assert check_run["external_id"] == snapshot.run_id
    titles = sorted(pull["title"] for pull in await journey.pulls())
    assert titles == [
        "[coder design] Fix the frobnicator",
        "[coder release] Fix the frobnicator",
        "[coder research] Fix the frobnicator",
        "[coder] Fix the frobnicator",
    ]
    assert len(await workflow_runs(journey)) == 4
    assert await journey.markers(number) == []


async def test_each_workflow_keeps_its_own_attempts(journey, fake_runner, org):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number, "coder:develop")
    # A develop run is going; research is another workflow, so it is not kept waiting.
    await journey.label(number, "coder:research")
    [develop, research] = await journey.branch_names(number)
    _, head = await journey.snapshot(research)
    [check_run] = await journey.check_runs(head)
    gh = journey.app_server.access.for_installation(org.installation_id)
    await gh.patch(f"/repos/{REPO}/check-runs/{check_run['id']}", data={"conclusion": "success"})
    await journey.rest.delete(f"/repos/{REPO}/issues/{number}/labels/coder:research")
    await journey.label(number, "coder:research")
    assert await journey.branch_names(number) == [develop, research, f"{research}-2"]


async def test_a_custom_workflow_from_config_runs(journey, fake_runner):
    await journey.put_file(
        CONFIG_PATH,
        "workflows:\n"
        "  docs:\n"
        '    on: {label: "coder:docs", command: docs}\n'
        "    steps: [implementer, tester]\n"
        "    model: haiku\n",
    )
    await install_workflow(journey)
    number = await journey.issue(title="Document the API")
    await journey.rest.post(f"/repos/{REPO}/labels", {"name": "coder:docs", "color": "ededed"})
    await journey.label(number, "coder:docs")
    [branch] = await journey.branch_names(number)
    assert branch == f"coder/{number}-docs-document-the-api"
    snapshot, head = await journey.snapshot(branch)
    assert (snapshot.workflow, snapshot.model, snapshot.model_reason) == (
        "docs",
        "haiku",
        "workflow docs",
    )
    [check_run] = await journey.check_runs(head)
    assert check_run["name"] == "coder/docs"
    assert "- workflow: docs (implementer, tester)" in check_run["output"]["summary"]
    report = await fake_runner.reports.get()
    assert report["inputs"]["run_id"] == snapshot.run_id


ISSUE_INPUT = '```json coder-input\n{{"kind": "issue", "repo": "{repo}", "number": {number}}}\n```'


async def test_a_command_with_then_and_an_input_block(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    body = f"/coder develop --then review\n\n{ISSUE_INPUT.format(repo=REPO, number=number)}"
    delivery = await journey.comment(number, body)
    [branch] = await journey.branch_names(number)
    snapshot, _ = await journey.snapshot(branch)
    assert snapshot.run_id == run_id(REPO, "develop", number, delivery.guid)
    assert snapshot.then == "review"
    assert snapshot.input_run is None  # an issue reference comes from no run
    # The input waits in a `coder/input` check run on the base commit, for the runner to read.
    [stored] = [r for r in await journey.check_runs("main") if r["name"] == "coder/input"]
    assert snapshot.input_check_run == stored["id"]
    assert (stored["external_id"], stored["conclusion"]) == (snapshot.run_id, "neutral")
    assert parse_artifact_block(stored["output"]["text"]) == {
        "kind": "issue",
        "repo": REPO,
        "number": number,
    }
    assert await journey.markers(number) == []


BAD_RESEARCH = (
    '```json coder-input\n{"kind": "research", "runId": "abc", "repo": "acme/widgets"}\n```'
)


async def test_a_bad_input_gets_one_reply_naming_the_fields(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    delivery = await journey.comment(number, f"/coder develop\n{BAD_RESEARCH}")
    assert await journey.branches(number) == []
    [comment] = [c for c in await journey.comments(number) if c["user"]["login"] == "coder[bot]"]
    assert [m.kind for m in parse_markers(comment["body"])] == ["input-invalid"]
    for field in ("problemStatement", "proposedApproach", "specPath", "branchName", "createdAt"):
        assert f"input {field}: Field required" in comment["body"]
    assert [r for r in await journey.check_runs("main") if r["name"] == "coder/input"] == []
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await journey.markers(number)) == 1
    assert await workflow_runs(journey) == []


async def test_a_then_that_cannot_follow_is_refused(journey):
    number = await journey.issue()
    await journey.comment(number, "/coder research --then review")
    assert await journey.branches(number) == []
    [comment] = [c for c in await journey.comments(number) if c["user"]["login"] == "coder[bot]"]
    assert (
        "then: review takes develop, not the research artifact research makes" in (comment["body"])
    )
    await journey.comment(number, "/coder research --then nightly")
    assert "then: no workflow named 'nightly'" in (await journey.comments(number))[-1]["body"]


async def test_a_triager_may_ask_for_a_review_but_not_for_code(journey, admin, fake_runner):
    await install_workflow(journey)
    person = await admin.create_user("triager")
    await admin.add_collaborator(REPO, person.login, "triage")
    number = await journey.issue()
    await journey.comment(number, "/coder develop", token=person.token)
    assert await journey.branches(number) == []
    [(kind, _)] = await journey.markers(number)
    assert kind == "command-reply"
    assert "@triager has `triage` access" in (await journey.comments(number))[-1]["body"]
    assert "needs write access or more" in (await journey.comments(number))[-1]["body"]
    pull = await journey.open_pull()
    await journey.comment(pull["number"], "/coder review", token=person.token)
    [check_run] = [
        r for r in await journey.check_runs(pull["head"]["sha"]) if r["name"] == "coder/review"
    ]
    assert parse_run_request(check_run["output"]["text"]).labeled_by == "triager"


async def test_a_review_label_on_a_pull_request_runs_on_its_head(journey, fake_runner, admin):
    await install_workflow(journey)
    pull = await journey.open_pull()
    number, head = pull["number"], pull["head"]["sha"]
    before = len(await journey.branches(number))
    delivery = await journey.label(number, "coder:review")
    [check_run] = [r for r in await journey.check_runs(head) if r["name"] == "coder/review"]
    snapshot = parse_run_request(check_run["output"]["text"])
    assert snapshot.run_id == run_id(REPO, "review", number, delivery.guid)
    assert (snapshot.workflow, snapshot.issue_number, snapshot.title) == (
        "review",
        number,
        "Add a feature",
    )
    assert (check_run["status"], check_run["external_id"]) == ("queued", snapshot.run_id)
    assert check_run["details_url"] == pull["html_url"]
    assert "coder:running" in await journey.issue_labels(number)
    # No branch of its own, no pull request of its own.
    assert len(await journey.branches(number)) == before
    assert len(await journey.pulls()) == 1
    report = await fake_runner.reports.get()
    assert report["inputs"] | {"runs_on": None} == {
        "read_only": "false",
        "run_id": snapshot.run_id,
        "issue": str(number),
        "pull": str(number),
        "check_run": str(check_run["id"]),
        "runs_on": None,
    }
    # Redelivered: the check run with this run id is there, so nothing more happens.
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len([r for r in await journey.check_runs(head) if r["name"] == "coder/review"]) == 1
    assert len(await workflow_runs(journey)) == 1


async def test_pull_request_actions_from_config_start_a_review(journey, fake_runner):
    await journey.put_file(CONFIG_PATH, "workflows:\n  review: {on: {pull_request: [opened]}}\n")
    await install_workflow(journey)
    pull = await journey.open_pull()
    runs = [r for r in await journey.check_runs(pull["head"]["sha"]) if r["name"] == "coder/review"]
    assert len(runs) == 1
    assert parse_run_request(runs[0]["output"]["text"]).labeled_by == "alice"
    # Another action (here `edited`) is not in the list: nothing more.
    seen = await journey.seen()
    await journey.rest.patch(f"/repos/{REPO}/pulls/{pull['number']}", {"title": "Renamed"})
    await journey.handled("pull_request", "edited", seen)
    assert len(await workflow_runs(journey)) == 1


async def test_a_dispatch_runs_a_workflow_on_the_issue_it_names(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    delivery = await journey.dispatch("coder.research", {"issue": number, "then": "develop"})
    [branch] = await journey.branch_names(number)
    snapshot, _ = await journey.snapshot(branch)
    assert snapshot.run_id == run_id(REPO, "research", number, f"dispatch:{delivery.guid}")
    assert (snapshot.workflow, snapshot.then, snapshot.labeled_by) == (
        "research",
        "develop",
        "alice",
    )


SCHEDULED_CONFIG = """\
workflows:
  dependencies:
    title: Weekly dependency bump
    steps: [implementer, tester]
    produces: develop
"""


async def scheduled_issues(journey):
    issues = await journey.get(f"/repos/{REPO}/issues?state=all&creator=coder[bot]")
    # The issues API lists the app's pull requests too.
    return [(i["number"], i["title"]) for i in issues if "pull_request" not in i]


async def test_a_scheduled_dispatch_opens_one_issue_per_key(journey, fake_runner):
    await journey.put_file(CONFIG_PATH, SCHEDULED_CONFIG)
    await install_workflow(journey)
    await journey.dispatch("coder.dependencies", {"key": "2025-W01", "body": "Bump them all."})
    [(number, title)] = await scheduled_issues(journey)
    assert title == "Weekly dependency bump"
    issue = await journey.get(f"/repos/{REPO}/issues/{number}")
    [marker] = parse_markers(issue["body"])
    assert marker.matches("scheduled", {"workflow": "dependencies", "key": "2025-W01"})
    assert "Bump them all." in issue["body"]
    [branch] = await journey.branch_names(number)
    assert branch == f"coder/{number}-dependencies-weekly-dependency-bump"
    snapshot, _ = await journey.snapshot(branch)
    assert snapshot.run_id == run_id(REPO, "dependencies", number, "dispatch:2025-W01")
    # The same period asked again (a re-run of the schedule): the same issue, no second run.
    await journey.dispatch("coder.dependencies", {"key": "2025-W01"})
    assert await scheduled_issues(journey) == [(number, title)]
    assert len(await journey.branches(number)) == 1
    assert len(await workflow_runs(journey)) == 1
    # The next period gets its own issue and run.
    await journey.dispatch("coder.dependencies", {"key": "2025-W02"})
    assert len(await scheduled_issues(journey)) == 2
    assert len(await workflow_runs(journey)) == 2
    # A workflow the config does not define starts nothing.
    await journey.dispatch("coder.nightly", {"key": "x"})
    assert len(await scheduled_issues(journey)) == 2


async def test_a_dispatch_without_an_issue_and_with_a_bad_input_opens_nothing(journey):
    broken = {"key": "k", "input": {"kind": "issue", "repo": REPO}}
    await journey.dispatch("coder.develop", broken)
    assert await scheduled_issues(journey) == []
    [check_run] = [r for r in await journey.check_runs("main") if r["name"] == "coder/develop"]
    assert check_run["conclusion"] == "failure"
    assert check_run["output"]["title"] == "Refused: input number: Field required"
    await journey.dispatch("coder.develop", {"issue": "seven"})
    [check_run, _] = [r for r in await journey.check_runs("main") if r["name"] == "coder/develop"]
    assert "client_payload.issue: expected an issue number" in check_run["output"]["summary"]
