"""The pure side of commands: verbs, typos, access, buttons, fix briefings, prompts."""

import json
from pathlib import Path

import pytest

from app.briefing import Snapshot, parse_run_request, render_run_request
from app.buttons import BUTTONS, buttons_for
from app.command_parser import parse_comment
from app.commands import ButtonPressed, IssueCommentCreated, ReviewCommentCreated, ReviewSubmitted
from app.config import parse_config
from app.fix import (
    CheckCompleted,
    FailingCheck,
    FinishedCheck,
    Thread,
    climb_from,
    fix_briefing,
    fix_runs_so_far,
    is_ci_failure,
    log_tail,
    threads_of,
    waiting_reviews,
)
from app.fix import ReviewSubmitted as FixReviewSubmitted
from app.markers import leading_marker
from app.prompt_text import (
    PLAN,
    QUESTION,
    Prompt,
    continuation_body,
    parse_prompt,
    quoted_answer,
    render_prompt,
)
from app.subject_runs import RunView, issue_of_branch, ours, run_view
from app.verbs import Access, Known, Unknown, Where, allows, help_lines, resolve


def config(text="{}"):
    result = parse_config(text)
    assert result.ok, result.errors
    return result.config


DEFAULTS = config()


@pytest.mark.parametrize(
    ("verb", "expected"),
    [
        ("fix", Known("fix", Access.WRITE, Where.PULL, "fix")),
        ("status", Known("status", Access.ANYONE, Where.ANY)),
        ("help", Known("help", Access.ANYONE, Where.ANY)),
        ("review", Known("review", Access.TRIAGE, Where.PULL, "review")),
        ("develop", Known("develop", Access.WRITE, Where.ANY, "develop")),
        ("split", Known("split", Access.WRITE, Where.ISSUE)),
        ("merge", Known("merge", Access.WRITE, Where.PULL)),
        ("fxi", Unknown("fxi", "fix")),
        ("stauts", Unknown("stauts", "status")),
        ("devlop", Unknown("devlop", "develop")),
        ("xyzzy", Unknown("xyzzy", None)),
    ],
)
def test_verbs_resolve_against_the_table_and_the_config(verb, expected):
    assert resolve(verb, DEFAULTS) == expected


def test_a_teams_own_verb_is_known_and_suggested():
    own = config("workflows: {docs: {on: {command: docs}, steps: [implementer]}}\n")
    assert resolve("docs", own) == Known("docs", Access.WRITE, Where.ANY, "docs")
    assert resolve("dosc", own) == Unknown("dosc", "docs")
    assert any(line.startswith("- `/coder docs`") for line in help_lines(own))


def test_help_lists_every_built_in_verb_once():
    lines = help_lines(DEFAULTS)
    for verb in ("fix", "retry", "cancel", "status", "answer", "approve", "merge", "pin"):
        assert sum(f"`/coder {verb}" in line for line in lines) == 1, verb
    assert sum("`/coder develop`" in line for line in lines) == 1


@pytest.mark.parametrize(
    ("access", "role", "may_write", "allowed"),
    [
        (Access.ANYONE, "read", False, True),
        (Access.TRIAGE, "triage", False, True),
        (Access.TRIAGE, "read", False, False),
        (Access.WRITE, "triage", False, False),
        (Access.WRITE, "maintain", True, True),
    ],
)
def test_access(access, role, may_write, allowed):
    assert allows(access, role, may_write=may_write) is allowed


def test_buttons_fit_githubs_limits_and_follow_the_state():
    for button in BUTTONS.values():
        assert len(button["label"]) <= 20
        assert len(button["description"]) <= 40
        assert len(button["identifier"]) <= 20
    ids = lambda *a, **k: [b["identifier"] for b in buttons_for(*a, **k)]  # noqa: E731
    assert ids("in_progress", None, fixable=True) == ["cancel"]
    assert ids("completed", "failure", fixable=True) == ["retry", "fix"]
    assert ids("completed", "failure", fixable=False) == ["retry"]
    assert ids("completed", "cancelled", fixable=True) == ["retry"]
    assert ids("completed", "success", fixable=True) == []


def comment(id_, body, *, login="maria", reply_to=None, review=None, path="calc.py", line=3):
    return {
        "id": id_,
        "body": body,
        "user": {"login": login},
        "in_reply_to_id": reply_to,
        "pull_request_review_id": review,
        "path": path,
        "line": line,
    }


def test_review_comments_group_into_threads():
    comments = [
        comment(3, "Agreed.", login="bob", reply_to=1, review=30),
        comment(1, "Name this better.", review=10),
        comment(2, "Elsewhere.", review=20, path="other.py", line=None),
    ]
    assert threads_of(comments) == [
        Thread("calc.py", 3, (("maria", "Name this better."), ("bob", "Agreed."))),
        Thread("other.py", None, (("maria", "Elsewhere."),)),
    ]
    assert [t.path for t in threads_of(comments, review_id=30)] == ["calc.py"]


def test_a_fix_briefing_puts_what_to_change_first():
    text = fix_briefing(
        pull_body="<!-- coder:run id=x -->\nCloses #3\n\u200bhidden",
        guidance="handle None",
        threads=[Thread("a.py", 2, (("maria", "why\nthis?"),))],
        reviews=[("maria", "Cover the empty case.")],
        failing=[FailingCheck("test", "failure", "1 failed", "E   assert 2 == 3", "http://c")],
    )
    assert text.startswith("## What to fix\n\nhandle None\n")
    assert "### The check `test` ended `failure`\n\nhttp://c\n\n1 failed" in text
    assert "```\nE   assert 2 == 3\n```" in text
    assert "### @maria requested changes\n\nCover the empty case." in text
    assert "- `a.py` line 2:\n  - @maria: why this?" in text
    # The pull request's own text comes last, without hidden comments or invisible characters.
    assert text.endswith("## The pull request\n\nCloses #3\nhidden")


def test_an_empty_fix_briefing_still_says_what_to_do():
    text = fix_briefing(pull_body=None, guidance="", threads=[], reviews=[], failing=[])
    assert "Make the pull request's tests pass" in text


def test_a_log_tail_keeps_the_end():
    text = "\n".join(f"line {n}" for n in range(500))
    tail = log_tail(text)
    assert tail.endswith("line 499")
    assert "line 400" not in tail


def view(run_id, workflow, check_run_id, model=None, *, status="completed", conclusion="success"):
    return RunView(
        run_id, workflow, check_run_id, "sha", status, conclusion, "", None, "", model, None, None
    )


def test_fix_attempts_count_commits_and_head_runs_once_each():
    messages = [
        "claim\n\nCoder-Run: aaa\nCoder-Workflow: develop\nCoder-Model: sonnet",
        "fix 1\n\nCoder-Run: bbb\nCoder-Workflow: fix\nCoder-Model: opus",
        "fix 1 more\n\nCoder-Run: bbb\nCoder-Workflow: fix\nCoder-Model: opus",
    ]
    head = [view("bbb", "fix", 5), view("ccc", "fix", 6, conclusion="failure")]
    assert fix_runs_so_far(messages, head) == 2
    assert fix_runs_so_far(messages[:1], []) == 0


def test_a_fix_climbs_from_the_newest_named_run_or_the_newest_trailers():
    head = [view("aaa", "develop", 5, "haiku"), view("bbb", "review", 7, "opus")]
    assert climb_from(head, []).model == "opus"
    messages = [
        "x\n\nCoder-Run: aaa\nCoder-Model: haiku",
        "y\n\nCoder-Run: bbb\nCoder-Model: sonnet",
    ]
    found = climb_from([view("zzz", "develop", 1)], messages)
    assert (found.run_id, found.model, found.why) == ("bbb", "sonnet", "needs a fix")
    assert climb_from([], []) is None


def test_only_other_apps_failures_count_as_ci():
    def check(conclusion, app_id, name="test"):
        return FinishedCheck.model_validate(
            {
                "id": 1,
                "name": name,
                "head_sha": "s",
                "conclusion": conclusion,
                "app": {"id": app_id},
            }
        )

    assert is_ci_failure(check("failure", 99), 1, ())
    assert is_ci_failure(check("timed_out", 99), 1, ())
    assert not is_ci_failure(check("success", 99), 1, ())
    assert not is_ci_failure(check("failure", 1), 1, ())  # coder's own
    assert not is_ci_failure(check("failure", 99, "lint"), 1, ("test",))


def test_runs_are_this_apps_and_a_carried_run_counts_once():
    def check_run(id_, app_id, name="coder/develop", external_id="r1", **more):
        return {"id": id_, "name": name, "external_id": external_id, "app": {"id": app_id}} | more

    runs = ours(
        [
            check_run(1, 7, status="completed", conclusion="neutral"),
            check_run(3, 7, status="completed", conclusion="success"),  # carried to the new head
            check_run(2, 8),  # another app's look-alike
            check_run(4, 7, name="coder/config", external_id="cfg"),
            check_run(5, 7, name="coder/input", external_id="in"),
        ],
        7,
    )
    assert [(r.run_id, r.check_run_id, r.state) for r in runs] == [("r1", 3, "success")]
    summary = {"summary": "Run x is queued\n\n- workflow: develop\n- model: haiku (default)"}
    assert run_view(check_run(9, 7, output=summary)).model == "haiku"
    details = {"details_url": "https://github.com/a/b/actions/runs/123/job/4"}
    assert run_view(check_run(9, 7, **details)).actions_run_id == 123
    assert issue_of_branch("coder/42-fix-it-2") == 42
    assert issue_of_branch("feature/42") is None


QUESTION_PROMPT = Prompt(
    "run1", QUESTION, 77, "develop", "implementer", "abc", "sonnet", "Which database?\nPG or MySQL?"
)


def test_a_prompt_comment_parses_back():
    body = render_prompt(QUESTION_PROMPT)
    assert body.startswith("<!-- coder:prompt id=run1 ask=question check_run=77 ")
    assert parse_prompt({"id": 5, "body": body}) == QUESTION_PROMPT.__class__(
        **{**QUESTION_PROMPT.__dict__, "comment_id": 5}
    )
    plan = Prompt("run2", PLAN, 78, "develop", "implementer", "abc", "opus", "Do it.\n\n1. a")
    assert parse_prompt({"id": 6, "body": render_prompt(plan)}).question == "Do it.\n\n1. a"
    assert parse_prompt({"id": 7, "body": "no marker"}) is None


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("> Which database?\n> PG or MySQL?\n\nPG, please.", "PG, please."),
        # GitHub's quote reply quotes the whole comment, marker line and all.
        (
            (
                "> Run `run1` (develop) stopped at `implementer` to ask:\n>\n> > Which database?\n"
                "> > PG or MySQL?\n\nMySQL"
            ),
            "MySQL",
        ),
        ("> Something else entirely\n\nPG", None),
        ("> Which database?\n> PG or MySQL?", None),  # a quote with nothing said
        ("Which database? PG.", None),  # no quote
    ],
)
def test_a_reply_quoting_the_question_answers_it(body, answer):
    found = quoted_answer(body, [QUESTION_PROMPT])
    assert (found[1] if found else None) == answer


def test_a_continuation_briefing_holds_the_question_and_the_answer():
    text = continuation_body(QUESTION_PROMPT, answer="PG", by="maria", original="Closes #3")
    assert text.startswith("## The question run `run1` asked\n\n> Which database?\n> PG or MySQL?")
    assert "## The answer, from @maria\n\nPG\n" in text
    assert text.endswith("## The pull request\n\nCloses #3")
    plan = Prompt("run2", PLAN, 78, "develop", "implementer", "abc", "opus", "1. a")
    approved = continuation_body(plan, answer="", by="maria", original=None)
    assert approved.startswith("## The approved plan (approved by @maria)\n\n1. a")
    revised = continuation_body(plan, answer="use b", by="maria", original=None, revise=True)
    assert revised.startswith("## Revise the plan\n\n@maria asked for changes")
    assert "## The plan so far\n\n1. a" in revised


# GitHub's published examples (@octokit/webhooks-examples), read by the command models.

EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"


def example(name):
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def test_githubs_examples_parse_into_the_command_models():
    comment = IssueCommentCreated.from_payload(example("issue_comment.created"))
    assert comment.comment.id > 0
    assert comment.issue.number > 0
    review = ReviewSubmitted.from_payload(example("pull_request_review.submitted"))
    assert review.review.state.lower() in {"approved", "commented", "changes_requested"}
    assert review.pull_request.head.ref
    assert review.pull_request.base.ref
    line = ReviewCommentCreated.from_payload(example("pull_request_review_comment.created"))
    assert line.comment.id > 0
    assert line.pull_request.number > 0
    pressed = ButtonPressed.from_payload(example("check_run.requested_action"))
    assert pressed.requested_action.identifier
    finished = CheckCompleted.from_payload(example("check_run.completed"))
    assert finished.check_run.conclusion is not None
    # The fix loop's own model of a review reads the same example.
    assert FixReviewSubmitted.from_payload(example("pull_request_review.submitted")).review.id


def test_a_commands_body_from_githubs_example_parses():
    payload = example("issue_comment.created")
    payload["comment"]["body"] = "Thanks!\n\n> /coder fix\n\n/coder fix the typo"
    parsed = parse_comment(IssueCommentCreated.from_payload(payload).comment.body)
    assert [(c.verb, c.argument) for c in parsed.commands] == [("fix", "the typo")]


def test_a_run_request_in_any_script_fits_githubs_byte_limit():
    for body in ("漢字" * 30_000, "😀" * 20_000, 'é\n"x' * 40_000):
        snapshot = Snapshot("a/b", 1, "t", body, "u", "r", "fix", "m")
        rendered = render_run_request(snapshot)
        assert len(rendered.encode("utf-8")) <= 60_000
        parsed = parse_run_request(rendered)
        assert parsed is not None
        assert parsed.body.endswith("(cut to fit the check run)")


def test_waiting_reviews_are_each_reviewers_latest_verdict():
    def review(id_, login, state):
        return {"id": id_, "user": {"login": login}, "state": state}

    reviews = [
        review(1, "maria", "CHANGES_REQUESTED"),
        review(2, "bob", "CHANGES_REQUESTED"),
        review(3, "maria", "COMMENTED"),  # a comment leaves her verdict as it was
        review(4, "bob", "APPROVED"),
        review(5, "eve", "CHANGES_REQUESTED"),
    ]
    assert [r["id"] for r in waiting_reviews(reviews)] == [5, 1]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("say <!-- this\n/coder fix\n-->", ["fix"]),  # mid-line, it is not an HTML block
        ("<!-- hidden\n/coder fix\n-->\n/coder help", ["help"]),
    ],
)
def test_html_blocks_open_only_at_the_start_of_a_line(body, expected):
    assert [c.verb for c in parse_comment(body).commands] == expected


def test_a_leading_marker_must_start_the_body():
    assert leading_marker("<!-- note --> <!-- coder:prompt id=x -->\nhi") is None
    assert leading_marker("<!-- coder:prompt id=x -->\nhi").fields == {"id": "x"}
