"""`/coder` commands on devhub: replies, reactions, permissions, trust, and the verbs."""

import json

import pytest

from app.artifacts import DevelopArtifact, render_artifact_block
from app.briefing import parse_run_request
from app.buttons import buttons_for
from app.installation import ensure_labels
from app.markers import parse_markers
from app.prompt_text import PLAN, Prompt, render_prompt
from tests.test_develop import (
    CONFIG_PATH,
    REPO,
    FakeRunner,
    install_workflow,
    redeliver_to_fresh_replica,
)
from tests.test_escalation import finish, newest_run
from tests.test_triggers import Triggers


class Commands(Triggers):
    """A person steering coder from comments."""

    async def reactions(self, comment_id):
        answer = await self.get(f"/repos/{REPO}/issues/comments/{comment_id}/reactions")
        return sorted((r["content"], r["user"]["login"]) for r in answer)

    async def last_comment(self, number, author=None):
        comments = await self.comments(number)
        if author is not None:
            comments = [c for c in comments if c["user"]["login"] == author]
        return comments[-1]

    async def replies(self, number):
        return [
            c
            for c in await self.comments(number)
            if c["user"]["login"] == "coder[bot]"
            and any(m.kind == "command-reply" for m in parse_markers(c["body"]))
        ]

    async def commented(self, number, body, token=None):
        """Comment, wait for the app, and return the comment's id."""
        delivery = await self.comment(number, body, token=token)
        payload = json.loads(delivery.body)
        return payload["comment"]["id"], delivery

    def buttons(self, check_run):
        """Return a check run's button identifiers (GitHub's REST answers leave them out)."""
        [owner, name] = REPO.split("/")
        run = self.devhub.state.repo(owner, name).check_runs[check_run["id"]]
        return [action["identifier"] for action in run.actions]

    async def coder_pull(self, number):
        """Label an issue and return the draft pull request of its run."""
        await self.label(number)
        [pull] = [p for p in await self.pulls() if p["head"]["ref"].startswith(f"coder/{number}-")]
        return pull


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Commands(devhub, admin, org, app_server)


@pytest.fixture
async def fake_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "report")
    yield runner
    await runner.close()


async def reader(admin, login="reader", permission="read"):
    person = await admin.create_user(login)
    await admin.add_collaborator(REPO, person.login, permission)
    return person


async def test_help_is_a_marked_reply_that_a_redelivery_edits(journey, admin):
    number = await journey.issue()
    person = await reader(admin)
    comment_id, delivery = await journey.commented(number, "/coder help", token=person.token)
    [reply] = await journey.replies(number)
    assert "`/coder fix [guidance]`" in reply["body"]
    assert "`/coder develop`" in reply["body"] or "`/coder status`" in reply["body"]
    # Help is open to anyone who may comment; asking it needs no permission request.
    assert await journey.reactions(comment_id) == [("eyes", "coder[bot]"), ("rocket", "coder[bot]")]
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert [c["id"] for c in await journey.replies(number)] == [reply["id"]]


async def test_a_typo_gets_did_you_mean_and_nothing_else(journey):
    number = await journey.issue()
    comment_id, _ = await journey.commented(number, "/coder fxi the tests")
    [reply] = await journey.replies(number)
    assert "`/coder fxi` is not a coder command. Did you mean `/coder fix`?" in reply["body"]
    assert await journey.reactions(comment_id) == []
    assert await journey.branches(number) == []


async def test_quotes_code_and_edits_run_nothing(journey):
    number = await journey.issue()
    body = "> /coder develop\n\n```\n/coder develop\n```\n\n    /coder develop\n"
    comment_id, _ = await journey.commented(number, body)
    assert await journey.comments(number) != []  # the person's comment only
    assert await journey.replies(number) == []
    assert await journey.branches(number) == []
    # Editing the comment into a command runs nothing: only new comments count.
    seen = await journey.seen()
    status, _, _ = await journey.rest.patch(
        f"/repos/{REPO}/issues/comments/{comment_id}", {"body": "/coder develop"}
    )
    assert status == 200
    await journey.handled("issue_comment", "edited", seen, outcome="ignored")
    assert await journey.branches(number) == []


async def test_a_reader_may_ask_for_status_but_not_for_work(journey, admin):
    number = await journey.issue()
    person = await reader(admin)
    comment_id, _ = await journey.commented(
        number, "/coder status\n/coder pin\n/coder develop", token=person.token
    )
    status_reply, pin_reply, develop_reply = await journey.replies(number)
    assert "coder has no runs for issue" in status_reply["body"]
    assert "@reader has `read` access" in pin_reply["body"]
    assert "`/coder pin` needs write access" in pin_reply["body"]
    assert "`/coder develop` needs write access" in develop_reply["body"]
    assert await journey.branches(number) == []
    assert "coder:pinned" not in await journey.issue_labels(number)
    assert ("confused", "coder[bot]") in await journey.reactions(comment_id)


async def test_bots_are_refused_unless_allow_listed_even_without_bot_in_their_login(journey, admin):
    number = await journey.issue()
    # An app account whose login lacks `[bot]`: `sender.type` says what it is.
    bot = await admin.create_user("helperapp", "Bot")
    await admin.add_collaborator(REPO, bot.login, "write")
    await journey.commented(number, "/coder pin", token=bot.token)
    [reply] = await journey.replies(number)
    assert "@helperapp is a bot that is not listed in `allowed_bots`" in reply["body"]
    assert "coder:pinned" not in await journey.issue_labels(number)

    await journey.put_file(CONFIG_PATH, "allowed_bots: [helperapp]\n")
    await journey.commented(number, "/coder pin", token=bot.token)
    assert "coder:pinned" in await journey.issue_labels(number)


async def test_a_look_alike_of_the_app_is_not_the_app(journey, admin):
    number = await journey.issue()
    # A person named like the app's bot without the suffix is a person, checked like one.
    person = await reader(admin, login="coder")
    await journey.commented(number, "/coder pin", token=person.token)
    [reply] = await journey.replies(number)
    assert "@coder has `read` access" in reply["body"]


async def test_pin_unpin_and_several_commands_in_order(journey):
    number = await journey.issue()
    comment_id, _ = await journey.commented(number, "/coder pin\n/coder status")
    assert "coder:pinned" in await journey.issue_labels(number)
    [status_reply] = await journey.replies(number)
    # The status came after the pin, in the same comment.
    assert "pinned" in status_reply["body"]
    assert ("rocket", "coder[bot]") in await journey.reactions(comment_id)
    await journey.commented(number, "/coder unpin")
    assert "coder:pinned" not in await journey.issue_labels(number)


async def test_merge_needs_the_merge_queue_on(journey):
    pull = await journey.open_pull()
    await journey.commented(pull["number"], "/coder merge")
    [reply] = await journey.replies(pull["number"])
    assert "the merge queue is off" in reply["body"]
    assert "coder:merge" not in await journey.issue_labels(pull["number"])
    await journey.put_file(CONFIG_PATH, "merge_queue: {enabled: true}\n")
    await journey.commented(pull["number"], "/coder merge")
    assert "coder:merge" in await journey.issue_labels(pull["number"])


async def test_merge_on_an_issue_says_where_it_works(journey):
    number = await journey.issue()
    await journey.commented(number, "/coder merge")
    [reply] = await journey.replies(number)
    assert "`/coder merge` works on a pull request" in reply["body"]


async def test_a_closed_issue_answers_status_only(journey):
    number = await journey.issue()
    status, _, _ = await journey.rest.patch(f"/repos/{REPO}/issues/{number}", {"state": "closed"})
    assert status == 200
    await journey.commented(number, "/coder develop\n/coder status")
    closed, status_reply = await journey.replies(number)
    assert "this is closed" in closed["body"]
    assert "coder has no runs" in status_reply["body"]
    assert await journey.branches(number) == []


async def test_status_lists_the_runs_with_state_model_and_cost(journey, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    snapshot, _ = await newest_run(journey, number, 1)
    await journey.commented(number, "/coder status")
    [reply] = await journey.replies(number)
    assert f"| `{snapshot.run_id}` | develop |" in reply["body"]
    assert "queued" in reply["body"]
    assert "| sonnet |" in reply["body"]


async def test_retry_reruns_the_last_failed_run_one_model_up(journey, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    first, check_run = await newest_run(journey, number, 1)
    await journey.commented(number, "/coder retry")
    [busy] = await journey.replies(number)
    assert f"run `{first.run_id}` (develop) is still going" in busy["body"]

    await finish(journey, org, check_run, "failure")
    comment_id, _ = await journey.commented(number, "/coder retry")
    second, _ = await newest_run(journey, number, 2)
    assert second.model == "opus"
    assert second.model_reason == f"escalated from sonnet: run {first.run_id} failed"
    assert second.asked_in == f"issue-comment:{comment_id}"
    # The run was accepted: 👀 now, and 🚀 or 😕 when it ends (the runner adds it).
    assert await journey.reactions(comment_id) == [("eyes", "coder[bot]")]


async def test_retry_after_a_success_has_nothing_to_do(journey, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    _, check_run = await newest_run(journey, number, 1)
    await finish(journey, org, check_run, "success")
    await journey.commented(number, "/coder retry")
    [reply] = await journey.replies(number)
    assert "ended `success`; there is nothing to retry" in reply["body"]
    assert len(await journey.branches(number)) == 1


async def test_cancel_stops_the_job_and_ends_the_check_run_with_who(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    await fake_runner.reports.get()  # the job is running
    comment_id, _ = await journey.commented(number, "/coder cancel")
    _, check_run = await newest_run(journey, number, 1)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "cancelled")
    assert check_run["output"]["title"] == "Cancelled by @alice"
    assert journey.buttons(check_run) == ["retry"]
    run = await journey.devhub.wait_for_run(lambda r: r.status == "completed")
    assert run.conclusion == "cancelled"
    assert "coder:running" not in await journey.issue_labels(number)
    assert ("rocket", "coder[bot]") in await journey.reactions(comment_id)
    await journey.commented(number, "/coder cancel")
    [reply] = await journey.replies(number)
    assert "no run is going here" in reply["body"]


async def test_a_queued_check_run_offers_cancel(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    _, check_run = await newest_run(journey, number, 1)
    assert journey.buttons(check_run) == ["cancel"]


async def test_fix_runs_on_the_pull_requests_branch_one_tier_up(journey, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    pull = await journey.coder_pull(number)
    develop, check_run = await newest_run(journey, number, 1)
    await finish(journey, org, check_run, "failure")
    comment_id, _ = await journey.commented(
        pull["number"], "/coder fix handle the empty list\nand None too."
    )
    runs = await journey.check_runs(pull["head"]["sha"])
    [fix] = [r for r in runs if r["name"] == "coder/fix"]
    request = parse_run_request(fix["output"]["text"])
    assert (request.workflow, request.model) == ("fix", "opus")
    assert request.model_reason == f"escalated from sonnet: run {develop.run_id} needs a fix"
    assert request.body.startswith("## What to fix\n\nhandle the empty list\nand None too.")
    assert request.attempt == 1
    assert request.asked_in == f"issue-comment:{comment_id}"
    assert journey.buttons(fix) == ["cancel"]
    # The dispatch names the pull request as the subject.
    report = await fake_runner.reports.get()
    while report["CODER_CHECK_RUN"] != str(fix["id"]):
        report = await fake_runner.reports.get()
    assert report["CODER_ISSUE"] == report["CODER_PULL"] == str(pull["number"])


async def test_fix_refuses_a_branch_that_is_not_coders(journey, fake_runner):
    await install_workflow(journey)
    pull = await journey.open_pull()
    await journey.commented(pull["number"], "/coder fix please")
    [reply] = await journey.replies(pull["number"])
    assert "coder pushes only to `coder/*` branches" in reply["body"]
    assert [
        r for r in await journey.check_runs(pull["head"]["sha"]) if r["name"] == "coder/fix"
    ] == []


async def test_fix_waits_for_the_run_that_is_going(journey, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    pull = await journey.coder_pull(number)
    await journey.commented(pull["number"], "/coder fix")
    [reply] = await journey.replies(pull["number"])
    assert "(develop) is still going here" in reply["body"]


async def test_fix_on_an_issue_says_where_it_works(journey):
    number = await journey.issue()
    await journey.commented(number, "/coder fix")
    [reply] = await journey.replies(number)
    assert "`/coder fix` works on a pull request" in reply["body"]


async def finished_coder_pull(journey, org, conclusion="success", model="sonnet"):
    """A coder pull request whose develop run ended, with an artifact naming its model."""
    number = await journey.issue()
    pull = await journey.coder_pull(number)
    develop, check_run = await newest_run(journey, number, 1)
    await finish(journey, org, check_run, conclusion, develop_artifact(develop.run_id, model))
    return number, pull, develop


def develop_artifact(run_id, model):
    artifact = DevelopArtifact.model_validate(
        {
            "kind": "develop",
            "runId": run_id,
            "repo": REPO,
            "createdAt": "2025-01-01T00:00:00Z",
            "completedAt": "2025-01-01T00:05:00Z",
            "model": model,
            "conclusion": "failure",
            "prUrl": "http://x/pull/2",
            "branchName": "coder/1-x",
            "commitSha": None,
            "testsPass": False,
        }
    )
    return render_artifact_block(artifact)


async def fix_runs(journey, pull):
    runs = await journey.check_runs(pull["head"]["sha"])
    return [r for r in runs if r["name"] == "coder/fix"]


async def report_ci(journey, pull, conclusion, **fields):
    seen = await journey.seen()
    await journey.admin.report_ci(REPO, pull["head"]["sha"], "test", conclusion, **fields)
    return await journey.handled(
        "check_run", "completed", seen, predicate=lambda d: check_name(d) == "test"
    )


def check_name(delivery):
    return json.loads(delivery.body)["check_run"]["name"]


async def test_a_failing_check_on_a_coder_pull_request_starts_a_fix(journey, org, fake_runner):
    await install_workflow(journey)
    _, pull, develop = await finished_coder_pull(journey, org)
    log = "\n".join(f"line {n}" for n in range(200)) + "\nAssertionError: 2 != 3"
    await report_ci(journey, pull, "failure", summary="1 test failed", log=log)
    [fix] = await fix_runs(journey, pull)
    request = parse_run_request(fix["output"]["text"])
    assert request.model == "opus"
    assert request.model_reason == f"escalated from sonnet: run {develop.run_id} needs a fix"
    assert "### The check `test` ended `failure`" in request.body
    assert "1 test failed" in request.body
    assert "AssertionError: 2 != 3" in request.body
    assert "line 100\n" not in request.body  # only the log's tail
    assert request.labeled_by == "coder[bot]"
    assert request.attempt == 1
    # Another failing check on the same head is the same fix run.
    seen = await journey.seen()
    await journey.admin.report_ci(REPO, pull["head"]["sha"], "lint", "failure")
    await journey.handled(
        "check_run", "completed", seen, predicate=lambda d: check_name(d) == "lint"
    )
    assert len(await fix_runs(journey, pull)) == 1


async def test_only_required_checks_count_when_some_are_named(journey, org, fake_runner):
    await journey.put_file(CONFIG_PATH, "policies: {required_checks: [build]}\n")
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await report_ci(journey, pull, "failure")
    assert await fix_runs(journey, pull) == []


async def test_the_ci_loop_stops_at_its_cap_and_says_so_once(journey, org, fake_runner):
    await journey.put_file(CONFIG_PATH, "loops: {max_fix_attempts: 0}\n")
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    delivery = await report_ci(journey, pull, "failure")
    assert await fix_runs(journey, pull) == []
    [cap] = [c for c in await journey.comments(pull["number"]) if "fix-cap" in c["body"]]
    assert "the most `loops.max_fix_attempts` allows" in cap["body"]
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len([c for c in await journey.comments(pull["number"]) if "fix-cap" in c["body"]]) == 1


async def test_the_ci_loop_can_be_turned_off(journey, org, fake_runner):
    await journey.put_file(CONFIG_PATH, "loops: {ci_failure: false}\n")
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await report_ci(journey, pull, "failure")
    assert await fix_runs(journey, pull) == []


async def test_a_failing_check_on_someone_elses_pull_request_does_nothing(journey, fake_runner):
    await install_workflow(journey)
    pull = await journey.open_pull()
    await report_ci(journey, pull, "failure")
    assert await fix_runs(journey, pull) == []


async def review(journey, pull, event, body, *, token=None, comments=None):
    rest = journey.rest if token is None else journey.admin.rest(token)
    seen = await journey.seen()
    data = {"event": event, "body": body} | ({"comments": comments} if comments else {})
    status, _, answer = await rest.post(f"/repos/{REPO}/pulls/{pull['number']}/reviews", data)
    assert status == 200, answer
    await journey.handled("pull_request_review", "submitted", seen)
    return answer


async def test_changes_requested_start_a_fix_with_the_threads(journey, admin, org, fake_runner):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    person = await reader(admin, login="maria", permission="write")
    # Someone pushed work to the branch; the review comments on a line of it.
    await journey.put_file(
        "calc.py", "def total(xs):\n    return sum(xs)\n", branch=pull["head"]["ref"]
    )
    pull = await journey.get(f"/repos/{REPO}/pulls/{pull['number']}")
    comments = [{"path": "calc.py", "line": 2, "body": "Name this better."}]
    await review(
        journey,
        pull,
        "REQUEST_CHANGES",
        "Please cover the empty case.",
        token=person.token,
        comments=comments,
    )
    # A reply in the thread (its own COMMENTED review on GitHub) starts nothing more.
    [thread] = await journey.get(f"/repos/{REPO}/pulls/{pull['number']}/comments")
    status, _, _ = await journey.rest.post(
        f"/repos/{REPO}/pulls/{pull['number']}/comments/{thread['id']}/replies", {"body": "Agreed."}
    )
    assert status == 201
    [fix] = await fix_runs(journey, pull)
    request = parse_run_request(fix["output"]["text"])
    assert "### @maria requested changes\n\nPlease cover the empty case." in request.body
    assert "- `calc.py` line 2:\n  - @maria: Name this better." in request.body
    assert request.labeled_by == "maria"


async def test_a_review_that_only_comments_or_comes_from_a_reader_starts_nothing(
    journey, admin, org, fake_runner
):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await review(journey, pull, "COMMENT", "Looks fine to me, what do you think, Bob?")
    person = await reader(admin)
    await review(journey, pull, "REQUEST_CHANGES", "Nope.", token=person.token)
    assert await fix_runs(journey, pull) == []
    # Plain comments between people never start anything either.
    await journey.commented(pull["number"], "Bob, can you take a look at the fix?")
    assert await fix_runs(journey, pull) == []
    assert await journey.replies(pull["number"]) == []


async def test_a_review_body_command_runs_once_not_twice(journey, admin, org, fake_runner):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    person = await reader(admin, login="maria", permission="write")
    await review(
        journey, pull, "REQUEST_CHANGES", "/coder fix rename it to total", token=person.token
    )
    [fix] = await fix_runs(journey, pull)
    request = parse_run_request(fix["output"]["text"])
    assert request.body.startswith("## What to fix\n\nrename it to total")
    assert request.asked_in.startswith("review:")


async def test_a_button_acts_like_the_command_for_whoever_pressed_it(
    journey, admin, org, fake_runner
):
    await install_workflow(journey)
    number, pull, _ = await finished_coder_pull(journey, org, conclusion="failure")
    _, check_run = await newest_run(journey, number, 1)
    # The test ended the run by hand; give its check run the buttons a runner would.
    gh = journey.app_server.access.for_installation(org.installation_id)
    actions = buttons_for("completed", "failure", fixable=True)
    await gh.patch(f"/repos/{REPO}/check-runs/{check_run['id']}", data={"actions": actions})
    person = await reader(admin)
    seen = await journey.seen()
    await admin.click_check_run_action(REPO, check_run["id"], "fix", person.login)
    await journey.handled("check_run", "requested_action", seen)
    assert await fix_runs(journey, pull) == []
    [reply] = await journey.replies(pull["number"])
    assert "@reader has `read` access" in reply["body"]

    seen = await journey.seen()
    await admin.click_check_run_action(REPO, check_run["id"], "fix", "alice")
    await journey.handled("check_run", "requested_action", seen)
    [fix] = await fix_runs(journey, pull)
    assert parse_run_request(fix["output"]["text"]).labeled_by == "alice"


async def test_the_app_never_acts_on_its_own_comments(journey, org):
    number = await journey.issue()
    gh = journey.app_server.access.for_installation(org.installation_id)
    seen = await journey.seen()
    await gh.post(f"/repos/{REPO}/issues/{number}/comments", data={"body": "/coder pin"})
    await journey.handled("issue_comment", "created", seen, outcome="ignored: sent by the app")
    assert "coder:pinned" not in await journey.issue_labels(number)
    assert await journey.replies(number) == []


async def test_a_fix_runs_attempt_number_shows_on_its_check_run(journey, org, fake_runner):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await journey.commented(pull["number"], "/coder fix")
    [fix] = await fix_runs(journey, pull)
    assert fix["output"]["title"] == "Queued: fix with opus, attempt 1"
    assert "- attempt: 1" in fix["output"]["summary"]


# Redeliveries, waiting loops, split, the cap.


async def test_a_redelivered_fix_retry_or_cancel_says_nothing_more(journey, org, fake_runner):
    await install_workflow(journey)
    number, pull, _ = await finished_coder_pull(journey, org, conclusion="failure")
    _, delivery = await journey.commented(pull["number"], "/coder fix")
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await fix_runs(journey, pull)) == 1
    assert await journey.replies(pull["number"]) == []

    # The fix run is going: cancel it, and redeliver the cancel.
    comment_id, delivery = await journey.commented(pull["number"], "/coder cancel")
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert await journey.replies(pull["number"]) == []
    assert ("confused", "coder[bot]") not in await journey.reactions(comment_id)

    # A retry on the issue, redelivered: one new attempt, no "still going" reply.
    _, delivery = await journey.commented(number, "/coder retry")
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await journey.branches(number)) == 2
    assert await journey.replies(number) == []


async def test_changes_requested_while_a_run_works_wait_and_then_start(
    journey, admin, org, fake_runner
):
    await install_workflow(journey)
    number = await journey.issue()
    pull = await journey.coder_pull(number)  # its develop run is going
    person = await reader(admin, login="maria", permission="write")
    await review(journey, pull, "REQUEST_CHANGES", "Use a dict.", token=person.token)
    assert await fix_runs(journey, pull) == []
    assert "coder:queued" in await journey.issue_labels(pull["number"])
    # The develop run ends; its runner takes coder:queued off, and the waiting review starts.
    develop, check_run = await newest_run(journey, number, 1)
    await finish(journey, org, check_run, "success", develop_artifact(develop.run_id, "sonnet"))
    seen = await journey.seen()
    status, _, _ = await journey.rest.delete(
        f"/repos/{REPO}/issues/{pull['number']}/labels/coder:queued"
    )
    assert status == 200
    await journey.handled("pull_request", "unlabeled", seen)
    [fix] = await fix_runs(journey, pull)
    request = parse_run_request(fix["output"]["text"])
    assert "### @maria requested changes\n\nUse a dict." in request.body
    # Taking the label off again finds that review handled: nothing more starts.
    await journey.label(pull["number"], "coder:queued")
    seen = await journey.seen()
    await journey.rest.delete(f"/repos/{REPO}/issues/{pull['number']}/labels/coder:queued")
    await journey.handled("pull_request", "unlabeled", seen)
    assert len(await fix_runs(journey, pull)) == 1


async def test_a_later_approval_supersedes_a_request_for_changes(journey, admin, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    pull = await journey.coder_pull(number)
    person = await reader(admin, login="maria", permission="write")
    await review(journey, pull, "REQUEST_CHANGES", "Use a dict.", token=person.token)
    await review(journey, pull, "APPROVE", "Fine after all.", token=person.token)
    develop, check_run = await newest_run(journey, number, 1)
    await finish(journey, org, check_run, "success", develop_artifact(develop.run_id, "sonnet"))
    seen = await journey.seen()
    await journey.rest.delete(f"/repos/{REPO}/issues/{pull['number']}/labels/coder:queued")
    await journey.handled("pull_request", "unlabeled", seen)
    assert await fix_runs(journey, pull) == []


async def test_the_cap_counts_fix_runs_however_they_were_asked(journey, org, fake_runner):
    await journey.put_file(CONFIG_PATH, "loops: {max_fix_attempts: 1}\n")
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await journey.commented(pull["number"], "/coder fix one")
    [fix] = await fix_runs(journey, pull)
    await finish(journey, org, fix, "failure")
    await report_ci(journey, pull, "failure")
    assert len(await fix_runs(journey, pull)) == 1
    [cap] = [c for c in await journey.comments(pull["number"]) if "fix-cap" in c["body"]]
    assert "has had 1 fix run(s)" in cap["body"]


async def test_split_opens_the_runs_proposal_as_sub_issues(journey, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue()
    await journey.label(number)
    develop, check_run = await newest_run(journey, number, 1)
    artifact = DevelopArtifact.model_validate(
        {
            "kind": "develop",
            "runId": develop.run_id,
            "repo": REPO,
            "createdAt": "2025-01-01T00:00:00Z",
            "completedAt": "2025-01-01T00:05:00Z",
            "model": "sonnet",
            "conclusion": "success",
            "prUrl": "http://x/pull/2",
            "branchName": "coder/1-x",
            "commitSha": None,
            "testsPass": True,
            "plan": {"summary": "two parts", "split": [{"title": "Part one"}, {"title": "Two"}]},
        }
    )
    await finish(journey, org, check_run, "success", render_artifact_block(artifact))
    comment_id, delivery = await journey.commented(number, "/coder split")
    [reply] = await journey.replies(number)
    assert "split is open as sub-issues of this issue" in reply["body"]
    subs = await journey.get(f"/repos/{REPO}/issues/{number}/sub_issues")
    assert [s["title"] for s in subs] == ["Part one", "Two"]
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await journey.get(f"/repos/{REPO}/issues/{number}/sub_issues")) == 2
    assert ("rocket", "coder[bot]") in await journey.reactions(comment_id)


async def test_a_comment_runs_at_most_ten_commands(journey):
    number = await journey.issue()
    await journey.commented(number, "\n".join(["/coder status"] * 12))
    replies = await journey.replies(number)
    assert len(replies) == 11  # ten statuses and one note
    assert any("may hold 10 commands" in r["body"] for r in replies)


async def ask_for_approval(journey, org, pull, develop):
    """What a runner leaves when its plan waits: an action_required check run and a prompt."""
    gh = journey.app_server.access.for_installation(org.installation_id)
    head = pull["head"]["sha"]
    waiting = await gh.post(
        f"/repos/{REPO}/check-runs",
        data={
            "name": "coder/develop",
            "head_sha": head,
            "external_id": develop.run_id,
            "status": "completed",
            "conclusion": "action_required",
            "output": {"title": "The plan waits for approval", "summary": "plan"},
        },
    )
    prompt = Prompt(
        develop.run_id, PLAN, waiting["id"], "develop", "implementer", head, "sonnet", "1. a"
    )
    await gh.post(
        f"/repos/{REPO}/issues/{pull['number']}/comments", data={"body": render_prompt(prompt)}
    )
    return waiting


async def continuations(journey, sha):
    runs = await journey.check_runs(sha)
    return [r for r in runs if r["name"] == "coder/develop" and r["status"] == "queued"]


async def test_a_writer_approves_again_after_a_continuation_was_refused(journey, org, fake_runner):
    await install_workflow(journey)
    _, pull, develop = await finished_coder_pull(journey, org)
    waiting = await ask_for_approval(journey, org, pull, develop)
    _, delivery = await journey.commented(pull["number"], "/coder approve")
    [first] = await continuations(journey, pull["head"]["sha"])
    request = parse_run_request(first["output"]["text"])
    assert request.resume_at == "implementer"
    assert request.answers == f"{waiting['id']}:approved"
    # A redelivery, or a second approval at the same head, is the same continuation.
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    await journey.commented(pull["number"], "/coder approve")
    assert len(await continuations(journey, pull["head"]["sha"])) == 1
    # Its job refused to act: someone pushed in between. The question is still open.
    await finish(journey, org, first, "failure")
    await journey.put_file("notes.txt", "mine\n", branch=pull["head"]["ref"])
    pull = await journey.get(f"/repos/{REPO}/pulls/{pull['number']}")
    still = await journey.get(f"/repos/{REPO}/check-runs/{waiting['id']}")
    assert still["conclusion"] == "action_required"
    await journey.commented(pull["number"], "/coder approve")
    [second] = await continuations(journey, pull["head"]["sha"])
    assert parse_run_request(second["output"]["text"]).run_id != request.run_id


def queued_came_off(delivery):
    return json.loads(delivery.body)["label"]["name"] == "coder:queued"


async def take_queued_off(journey, pull, token=None):
    rest = journey.rest if token is None else journey.admin.rest(token)
    seen = await journey.seen()
    status, _, _ = await rest.delete(f"/repos/{REPO}/issues/{pull['number']}/labels/coder:queued")
    assert status == 200
    await journey.handled("pull_request", "unlabeled", seen)


async def test_a_waiting_check_starts_after_a_review_that_was_handled(
    journey, admin, org, fake_runner
):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    person = await reader(admin, login="maria", permission="write")
    await review(journey, pull, "REQUEST_CHANGES", "Use a dict.", token=person.token)
    [fix] = await fix_runs(journey, pull)  # the review's fix runs at once
    await report_ci(journey, pull, "failure")  # CI fails meanwhile: it waits
    assert "coder:queued" in await journey.issue_labels(pull["number"])
    await finish(journey, org, fix, "failure")
    await take_queued_off(journey, pull)
    runs = await fix_runs(journey, pull)
    assert len(runs) == 2
    newest = max(runs, key=lambda r: r["id"])
    assert (
        "### The check `test` ended `failure`" in parse_run_request(newest["output"]["text"]).body
    )


async def test_a_triager_taking_the_queued_label_off_starts_nothing(
    journey, admin, org, fake_runner
):
    await install_workflow(journey)
    number = await journey.issue()
    pull = await journey.coder_pull(number)
    person = await reader(admin, login="maria", permission="write")
    await review(journey, pull, "REQUEST_CHANGES", "Use a dict.", token=person.token)
    develop, check_run = await newest_run(journey, number, 1)
    await finish(journey, org, check_run, "success", develop_artifact(develop.run_id, "sonnet"))
    triager = await reader(admin, login="tom", permission="triage")
    await take_queued_off(journey, pull, token=triager.token)
    assert await fix_runs(journey, pull) == []


async def test_cancelling_the_run_a_fix_waited_for_starts_the_fix(journey, admin, org, fake_runner):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await journey.commented(pull["number"], "/coder fix one")  # going
    person = await reader(admin, login="maria", permission="write")
    await review(journey, pull, "REQUEST_CHANGES", "Use a dict.", token=person.token)
    assert len(await fix_runs(journey, pull)) == 1
    seen = await journey.seen()
    await journey.commented(pull["number"], "/coder cancel")
    # The app took coder:queued off; that event is one of its own it acts on.
    await journey.handled("pull_request", "unlabeled", seen, predicate=queued_came_off)
    runs = await fix_runs(journey, pull)
    assert len(runs) == 2
    assert "coder:queued" not in await journey.issue_labels(pull["number"])


async def test_a_redelivered_cancel_leaves_a_newer_run_alone(journey, org, fake_runner):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await journey.commented(pull["number"], "/coder fix one")
    _, cancel = await journey.commented(pull["number"], "/coder cancel")
    await journey.commented(pull["number"], "/coder fix two")
    assert await redeliver_to_fresh_replica(journey, cancel.id) == "ok"
    going = [r for r in await fix_runs(journey, pull) if r["status"] != "completed"]
    assert len(going) == 1


async def test_a_redelivered_retry_of_a_fix_says_nothing(journey, org, fake_runner):
    await install_workflow(journey)
    _, pull, _ = await finished_coder_pull(journey, org)
    await journey.commented(pull["number"], "/coder fix one")
    [fix] = await fix_runs(journey, pull)
    await finish(journey, org, fix, "failure")
    _, delivery = await journey.commented(pull["number"], "/coder retry")
    assert len(await fix_runs(journey, pull)) == 2
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert len(await fix_runs(journey, pull)) == 2
    assert await journey.replies(pull["number"]) == []


async def test_a_redelivered_answer_after_its_continuation_started_says_nothing(
    journey, org, fake_runner
):
    await install_workflow(journey)
    _, pull, develop = await finished_coder_pull(journey, org)
    waiting = await ask_for_approval(journey, org, pull, develop)
    _, delivery = await journey.commented(pull["number"], "/coder approve")
    # The continuation's runner closed the question once it checked the branch.
    gh = journey.app_server.access.for_installation(org.installation_id)
    await gh.patch(
        f"/repos/{REPO}/check-runs/{waiting['id']}",
        data={"conclusion": "neutral", "output": {"title": "Approved by @alice", "summary": "s"}},
    )
    assert await redeliver_to_fresh_replica(journey, delivery.id) == "ok"
    assert await journey.replies(pull["number"]) == []
    assert len(await continuations(journey, pull["head"]["sha"])) == 1


async def test_a_plan_superseded_by_a_finished_run_no_longer_takes_fix(journey, org, fake_runner):
    await install_workflow(journey)
    _, pull, develop = await finished_coder_pull(journey, org)
    await ask_for_approval(journey, org, pull, develop)
    await journey.commented(pull["number"], "/coder fix something")  # revises the plan
    [revision] = await continuations(journey, pull["head"]["sha"])
    assert parse_run_request(revision["output"]["text"]).resume_at == "architect"
    await finish(journey, org, revision, "success")  # work went on without the old plan
    await journey.commented(pull["number"], "/coder fix the tests")
    [fix] = await fix_runs(journey, pull)
    assert parse_run_request(fix["output"]["text"]).body.startswith("## What to fix\n\nthe tests")


async def test_a_fix_on_a_pull_request_in_another_script_starts(journey, org, fake_runner):
    await install_workflow(journey)
    number = await journey.issue(title="漢字のテスト", body="本文" * 12_000)
    pull = await journey.coder_pull(number)
    assert pull["head"]["ref"] == f"coder/{number}-issue"  # no ASCII in the title to slug
    [check_run] = await journey.check_runs(pull["head"]["sha"])
    artifact = develop_artifact(check_run["external_id"], "sonnet")
    await finish(journey, org, check_run, "failure", artifact)
    await journey.commented(pull["number"], "/coder fix " + "直して" * 3_000)
    [fix] = await fix_runs(journey, pull)
    assert parse_run_request(fix["output"]["text"]) is not None
