"""How a run ends: honest conclusions, the summary people read, the artifact the next step reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from actions.agent.backends import Finished, StopReason
from actions.agent.finish import (
    WAITS_FOR_APPROVAL,
    Conclusion,
    RunResult,
    build_artifact,
    conclude,
    job_outputs,
    pull_status,
    render_summary,
    render_text,
    render_title,
)
from actions.agent.step_artifacts import check_step_artifact
from actions.agent.tests import TestResult
from app.artifacts import ResearchArtifact, ReviewArtifact, load_develop_artifact
from app.briefing import Progress

STARTED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PASSED = TestResult(passed=True, exit_code=0, tail="3 passed", seconds=4.0)
FAILED = TestResult(passed=False, exit_code=1, tail="E   assert 1 == 2\n1 failed", seconds=5.0)


def result(**overrides):
    fields = {
        "repository": "acme/widgets",
        "run_id": "abcdefghijkl",
        "issue": 7,
        "pull_url": "http://127.0.0.1/acme/widgets/pull/8",
        "branch": "coder/7-add-a-flag",
        "model": "sonnet",
        "started_at": STARTED,
        "completed_at": datetime(2026, 5, 1, 12, 4, 10, tzinfo=UTC),
        "seconds": 250.0,
        "progress": Progress.for_roles(("implementer",)),
        "agent": Finished(0),
        "agent_role": "implementer",
        "changed_files": ("src/cli.py", "tests/test_cli.py"),
        "commit_sha": "0123456789abcdef0123456789abcdef01234567",
        "tests_command": "make test",
        "tests": PASSED,
        "cost_usd": 0.4213,
        "tokens": 12345,
        "budget_usd": 5.0,
        "rest_calls": 6,
        "graphql_calls": 1,
        "progress_edits": 3,
    }
    return RunResult(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "conclusion", "reason"),
    [
        ({}, Conclusion.SUCCESS, "The tests passed."),
        ({"tests_command": None, "tests": None}, Conclusion.NEUTRAL, "no tests"),
        ({"tests": FAILED}, Conclusion.FAILURE, "The tests failed (exit code 1)."),
        (
            {"tests": TestResult(False, -15, "", 1200.0, StopReason.RUN_LIMIT)},
            Conclusion.FAILURE,
            "tests.timeout_minutes",
        ),
        (
            {"tests": TestResult(False, -15, "", 60.0, StopReason.RUN_LIMIT, True)},
            Conclusion.TIMED_OUT,
            "ran out of time while the tests ran",
        ),
        ({"changed_files": (), "commit_sha": None}, Conclusion.FAILURE, "changed nothing"),
        (
            {"changed_files": (), "commit_sha": None, "tests_command": None, "tests": None},
            Conclusion.FAILURE,
            "changed nothing",
        ),
        ({"agent": Finished(2), "tests": None}, Conclusion.FAILURE, "agent failed (exit code 2)"),
        (
            {"agent": Finished(None, None, "claude CLI not found on PATH"), "changed_files": ()},
            Conclusion.FAILURE,
            "claude CLI not found on PATH",
        ),
        (
            {"agent": Finished(-15, StopReason.IDLE), "tests": None},
            Conclusion.TIMED_OUT,
            "limits.idle_minutes",
        ),
        (
            {"agent": Finished(-15, StopReason.RUN_LIMIT), "tests": None},
            Conclusion.TIMED_OUT,
            "limits.run_minutes",
        ),
        (
            {"agent": Finished(-15, StopReason.IDLE), "tests": None},
            Conclusion.TIMED_OUT,
            "; its work so far is pushed (0123456789ab).",
        ),
        (
            {
                "agent": Finished(-15, StopReason.RUN_LIMIT),
                "tests": None,
                "changed_files": (),
                "commit_sha": None,
            },
            Conclusion.TIMED_OUT,
            "; it had changed nothing, so nothing was pushed.",
        ),
        (
            {"stuck_question": "Which flag name?", "tests": None},
            Conclusion.ACTION_REQUIRED,
            "asks: Which flag name?",
        ),
        ({"over_budget": True, "cost_usd": 6.0}, Conclusion.FAILURE, "over the run's budget"),
        ({"error": "git push failed: rejected"}, Conclusion.FAILURE, "git push failed"),
    ],
)
def test_conclusions(overrides, conclusion, reason):
    got, why = conclude(result(**overrides))
    assert got is conclusion
    assert reason in why


def test_only_success_neutral_and_a_check_run_ended_by_someone_else_exit_zero():
    ok = {Conclusion.SUCCESS, Conclusion.NEUTRAL, Conclusion.CANCELLED}
    assert {c for c in Conclusion if c.ok} == ok


def test_the_summary_says_what_changed_tests_time_model_and_cost():
    run = result()
    summary = render_summary(Conclusion.SUCCESS, "The tests passed.", run)
    assert summary.startswith("**The tests passed.**")
    assert "| Files changed | 2 |" in summary
    assert "| Tests | passed (`make test`, 4 s) |" in summary
    assert "| Duration | 4 min 10 s |" in summary
    assert "\nModel: sonnet\n" in summary
    assert "| Cost | $0.42 (12,345 tokens) |" in summary
    assert "| Commit | `0123456789ab` |" in summary
    assert "| GitHub API | 6 REST, 1 GraphQL, 3 progress edits |" in summary
    assert "- `src/cli.py`" in summary
    assert "Test output" not in summary


def test_failing_tests_show_their_tail_in_a_fence_that_cannot_be_closed_early():
    tail = "```\n**not bold**\n````"
    run = result(tests=TestResult(passed=False, exit_code=1, tail=tail, seconds=2.0))
    summary = render_summary(Conclusion.FAILURE, "The tests failed (exit code 1).", run)
    assert "`````text\n```\n**not bold**\n````\n`````" in summary
    assert "failed (`make test`, 2 s, exit code 1)" in summary


def test_a_stuck_run_quotes_the_question_and_says_how_to_answer():
    run = result(stuck_question="Which flag?\nverbose or debug?", tests=None)
    assert conclude(run)[0] is Conclusion.ACTION_REQUIRED
    summary = render_summary(Conclusion.ACTION_REQUIRED, "stuck", run)
    assert "> Which flag?\n> verbose or debug?" in summary
    assert "`/coder answer <your answer>`" in summary


def test_a_plan_waiting_for_approval_is_action_required_and_says_how_to_approve():
    run = result(awaiting_approval=True, tests=None)
    assert conclude(run) == (Conclusion.ACTION_REQUIRED, WAITS_FOR_APPROVAL)
    assert render_title(Conclusion.ACTION_REQUIRED, run) == "The plan waits for approval"
    assert "`/coder approve`" in render_summary(Conclusion.ACTION_REQUIRED, "waits", run)


def test_long_file_lists_and_huge_outputs_stay_within_githubs_limit():
    files = tuple(f"src/file_{n}.py" for n in range(500))
    tail = "x" * 200_000
    run = result(changed_files=files, tests=TestResult(False, 1, tail, 1.0))
    summary = render_summary(Conclusion.FAILURE, "The tests failed.", run)
    assert len(summary) <= 65_535
    assert "… and 450 more" in summary


def test_the_artifact_round_trips_through_the_check_run_text():
    run = result()
    artifact = build_artifact(Conclusion.SUCCESS, run)
    loaded = load_develop_artifact(render_text(artifact))
    assert loaded == artifact
    assert loaded.commitSha == run.commit_sha
    assert loaded.testsPass is True
    assert loaded.filesChanged == run.changed_files
    assert loaded.prUrl == run.pull_url


def test_a_run_without_tests_records_tests_pass_as_unknown():
    artifact = build_artifact(Conclusion.NEUTRAL, result(tests_command=None, tests=None))
    assert artifact.testsPass is None
    assert artifact.conclusion == "neutral"


def test_titles_pr_status_and_job_outputs():
    run = result()
    assert render_title(Conclusion.SUCCESS, run) == "Tests passed; 2 files changed"
    assert render_title(Conclusion.ACTION_REQUIRED, run) == "The agent needs an answer"
    assert pull_status(Conclusion.SUCCESS, "The tests passed.").endswith("Ready for review.")
    assert pull_status(Conclusion.FAILURE, "The agent changed nothing.") == (
        "Still a draft: The agent changed nothing."
    )
    assert job_outputs(Conclusion.FAILURE, None, 8) == {
        "conclusion": "failure",
        "commit": "",
        "pr": "8",
    }


def artifacts(*steps):
    return tuple(check_step_artifact(role, kind, raw) for role, kind, raw in steps)


RESEARCH_FIELDS = {"problemStatement": "Slow.", "proposedApproach": "Cache it."}
SPEC_RUN = {
    "kind": "research",
    "tests_command": None,
    "tests": None,
    "changed_files": (".coder/specs/7-cache.md",),
}


@pytest.mark.parametrize(
    ("overrides", "conclusion", "reason"),
    [
        (
            {**SPEC_RUN, "step_artifacts": artifacts(("researcher", "research", RESEARCH_FIELDS))},
            Conclusion.SUCCESS,
            "The spec is pushed",
        ),
        (
            {**SPEC_RUN, "changed_files": ("notes.md",)},
            Conclusion.FAILURE,
            "The run wrote no spec under .coder/specs/.",
        ),
        (
            {**SPEC_RUN, "step_artifacts": ()},
            Conclusion.FAILURE,
            (
                "The research artifact is not complete: problemStatement: Field required; "
                "proposedApproach: Field required."
            ),
        ),
        (
            {
                **SPEC_RUN,
                "step_artifacts": artifacts(
                    ("researcher", "research", {**RESEARCH_FIELDS, "specPath": "docs/x.md"})
                ),
            },
            Conclusion.FAILURE,
            "specPath: docs/x.md is not under .coder/specs/",
        ),
        (
            {
                "kind": "design",
                "tests": None,
                "changed_files": (".coder/specs/7-ui/README.md",),
            },
            Conclusion.SUCCESS,
            "The spec is pushed",
        ),
        (
            {
                "kind": "review",
                "on_pull": True,
                "changed_files": (),
                "commit_sha": None,
                "tests": None,
                "step_artifacts": artifacts(
                    ("reviewer", "review", {"verdict": "approve", "summary": "Good."})
                ),
            },
            Conclusion.SUCCESS,
            "The reviewer's verdict: approve.",
        ),
        (
            {"kind": "review", "on_pull": True, "changed_files": (), "tests": None},
            Conclusion.FAILURE,
            "verdict: Field required",
        ),
        (
            {"kind": "release", "step_artifacts": ()},
            Conclusion.FAILURE,
            "The release artifact is not complete: version: Field required",
        ),
        (
            {
                "kind": "release",
                "step_artifacts": artifacts(
                    ("release", "release", {"version": "2.0.0", "tag": "v2.0.0", "changelog": "-"})
                ),
            },
            Conclusion.SUCCESS,
            "The tests passed.",
        ),
        (
            {"artifact_error": "The architect's step artifact ($CODER_ARTIFACT_FILE) is invalid"},
            Conclusion.FAILURE,
            "architect's step artifact",
        ),
    ],
)
def test_conclusions_by_kind(overrides, conclusion, reason):
    got, why = conclude(result(**overrides))
    assert got is conclusion
    assert reason in why


def test_the_artifact_of_each_kind_carries_what_the_agents_wrote():
    research = result(
        **SPEC_RUN, step_artifacts=artifacts(("researcher", "research", RESEARCH_FIELDS))
    )
    artifact = build_artifact(Conclusion.SUCCESS, research)
    assert isinstance(artifact, ResearchArtifact)
    assert artifact.specPath == ".coder/specs/7-cache.md"  # the runner's default
    assert (artifact.branchName, artifact.commitSha) == (research.branch, research.commit_sha)
    review = result(
        kind="review",
        on_pull=True,
        pull_number=8,
        step_artifacts=artifacts(("reviewer", "review", {"verdict": "comment", "summary": "Hm."})),
    )
    artifact = build_artifact(Conclusion.SUCCESS, review)
    assert isinstance(artifact, ReviewArtifact)
    assert (artifact.pull.number, artifact.issue, artifact.verdict) == (8, None, "comment")
    assert build_artifact(Conclusion.FAILURE, result(kind="review")) is None
    assert (
        render_text(None, ("verdict: Field required",)) == "No artifact: verdict: Field required."
    )


def test_the_plan_and_its_split_proposal_show_in_the_summary_and_the_artifact():
    plan = {
        "summary": "Split the parser.",
        "files": ["src/parse.py"],
        "steps": ["Extract the lexer"],
        "split": [{"title": "Lexer", "body": "Move tokens.\nMore."}, {"title": "Parser"}],
    }
    run = result(
        step_artifacts=artifacts(("architect", "develop", plan)),
        model="opus",
        model_reason="label documentation",
    )
    summary = render_summary(Conclusion.SUCCESS, "The tests passed.", run)
    assert "\nModel: opus — label documentation\n" in summary
    assert "Proposed split: 2 sub-issues" in summary
    assert "- **Lexer** — Move tokens.\n- **Parser**" in summary
    assert "Say `/coder split` to open these as sub-issues." in summary
    assert "1. Extract the lexer" in summary
    auto = render_summary(Conclusion.SUCCESS, "ok", replace(run, auto_split=True))
    assert "auto_split is on" in auto
    artifact = build_artifact(Conclusion.SUCCESS, run)
    assert artifact.plan.split[0].title == "Lexer"


def test_spec_runs_stay_drafts_and_reviews_have_their_own_titles():
    assert pull_status(Conclusion.SUCCESS, "The spec is pushed.", "research") == (
        "The spec is pushed. It stays a draft: it holds a spec, not code."
    )
    assert pull_status(Conclusion.SUCCESS, "ok.", "release").endswith("Ready for review.")
    review = result(
        kind="review",
        step_artifacts=artifacts(
            (
                "reviewer",
                "review",
                {
                    "verdict": "request_changes",
                    "summary": "Breaks callers.",
                    "comments": [{"path": "a.py", "line": 3, "body": "Keep `old()`."}],
                },
            )
        ),
    )
    assert render_title(Conclusion.SUCCESS, review) == "Review: changes requested"
    summary = render_summary(Conclusion.SUCCESS, "verdict", review)
    assert "> Breaks callers." in summary
    assert "- `a.py:3` Keep 'old()'." in summary
