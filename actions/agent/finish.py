"""How a run ends: the conclusion rules, and everything written about it (pure rendering).

Honest status (DESIGN §2): `success` only when work was pushed and the tests passed; `neutral`
when work was pushed and the repository configures no tests; anything that spent money and
changed nothing is `failure`, and says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field type, kept importable
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from actions.agent.backends.base import StopReason
from actions.agent.kind_summary import kind_sections, model_line, success_title
from actions.agent.kinds import SPEC_DIR, assemble, rules_for, spec_files
from actions.agent.step_artifacts import fields_of, plan_of
from app.artifacts import IssueRef, PullRef, render_artifact_block
from app.briefing import render_checklist
from app.checks import clip_output

if TYPE_CHECKING:
    from typing import Any

    from pydantic import BaseModel

    from actions.agent.backends.base import Finished
    from actions.agent.step_artifacts import StepArtifact
    from actions.agent.tests import TestResult
    from app.briefing import Progress

MAX_FILES_LISTED = 50
MAX_OUTPUT_CHARS = 60_000  # GitHub caps check-run summary and text at 65535 bytes
BACKTICK_RUN = re.compile(r"`+")
HOW_TO_ANSWER = (
    "Answer on the pull request with `/coder answer <your answer>`, or reply quoting the "
    "question: a new run goes on from this step with the answer. The job has ended, so waiting "
    "costs nothing."
)
HOW_TO_APPROVE = (
    "`/coder approve` on the pull request runs the steps after the architect with this plan; "
    "`/coder fix <changes>` has the architect plan again first."
)
WAITS_FOR_APPROVAL = "The architect's plan waits for approval (approve_plan)."


class Conclusion(StrEnum):
    """A check run conclusion the runner can end with."""

    SUCCESS = "success"
    NEUTRAL = "neutral"
    FAILURE = "failure"
    TIMED_OUT = "timed_out"
    ACTION_REQUIRED = "action_required"
    # Someone else completed the check run (`/coder cancel`) before the job started or while
    # it worked; the runner leaves it as it is.
    CANCELLED = "cancelled"

    @property
    def ok(self) -> bool:
        """Tell whether the job should exit 0 (a run cancelled by a person is not a failure)."""
        return self in {Conclusion.SUCCESS, Conclusion.NEUTRAL, Conclusion.CANCELLED}


ArtifactConclusion = Literal[
    "success", "neutral", "failure", "timed_out", "cancelled", "action_required"
]
ARTIFACT_CONCLUSION: dict[Conclusion, ArtifactConclusion] = {
    Conclusion.SUCCESS: "success",
    Conclusion.NEUTRAL: "neutral",
    Conclusion.FAILURE: "failure",
    Conclusion.TIMED_OUT: "timed_out",
    Conclusion.ACTION_REQUIRED: "action_required",
    Conclusion.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class RunResult:
    """Everything the finish step needs to know about a run."""

    repository: str
    run_id: str
    issue: int
    pull_url: str
    branch: str
    model: str
    started_at: datetime
    completed_at: datetime
    seconds: float
    progress: Progress
    agent: Finished | None = None  # the last agent session's end
    agent_role: str | None = None
    stuck_question: str | None = None
    awaiting_approval: bool = False  # the run stopped after the architect (approve_plan)
    over_budget: bool = False
    error: str | None = None  # the runner itself could not go on
    changed_files: tuple[str, ...] = ()
    commit_sha: str | None = None  # the commit pushed, if one was
    tests_command: str | None = None
    tests: TestResult | None = None
    cost_usd: float = 0.0
    tokens: int | None = None
    budget_usd: float | None = None
    rest_calls: int = 0
    graphql_calls: int = 0
    progress_edits: int = 0
    kind: str = "develop"  # the workflow's `produces`
    on_pull: bool = False  # the run works on a pull request (a review), not an issue
    pull_number: int | None = None
    model_reason: str = ""
    step_artifacts: tuple[StepArtifact, ...] = ()
    artifact_error: str | None = None  # a step artifact was malformed
    auto_split: bool = False
    attempt: int | None = None  # a fix run's attempt number on its pull request
    read_only: bool = False  # a fork's code: the change is a suggested patch, not a push

    @property
    def agent_fields(self) -> dict[str, Any]:
        """Return the fields the agents wrote for the run's artifact, with the runner's defaults."""
        fields = fields_of(self.step_artifacts, self.kind)
        specs = spec_files(self.changed_files)
        if self.kind == "research" and specs:
            fields.setdefault("specPath", specs[0])
        if self.kind == "design" and specs:
            fields.setdefault("specDir", specs[0].rpartition("/")[0] + "/")
        return fields


def conclude(result: RunResult) -> tuple[Conclusion, str]:
    """Return the run's conclusion and the one-sentence reason for it."""
    agent = result.agent
    if result.error is not None:
        return Conclusion.FAILURE, result.error
    if agent is not None and agent.stopped in {StopReason.IDLE, StopReason.RUN_LIMIT}:
        limit = (
            "printed nothing for too long (limits.idle_minutes)"
            if agent.stopped is StopReason.IDLE
            else "ran out of time (limits.run_minutes)"
        )
        return Conclusion.TIMED_OUT, f"The {result.agent_role} agent {limit}; {_kept(result)}."
    if result.tests is not None and result.tests.run_deadline_hit:
        return Conclusion.TIMED_OUT, "The run ran out of time while the tests ran."
    if result.stuck_question is not None:
        return Conclusion.ACTION_REQUIRED, f"The agent is stuck and asks: {result.stuck_question}"
    if result.awaiting_approval:
        return Conclusion.ACTION_REQUIRED, WAITS_FOR_APPROVAL
    if result.over_budget:
        return Conclusion.FAILURE, (
            f"The agent spent ${result.cost_usd:.2f}, over the run's budget of "
            f"${result.budget_usd or 0:.2f} (budget.per_run_usd)."
        )
    if agent is not None and not agent.ok:
        why = agent.error or f"exit code {agent.exit_code}"
        return Conclusion.FAILURE, f"The {result.agent_role} agent failed ({why})."
    if result.artifact_error is not None:
        return Conclusion.FAILURE, result.artifact_error
    rules = rules_for(result.kind)
    pushed = result.commit_sha is not None or result.read_only
    if rules.pushes and (not result.changed_files or not pushed):
        return Conclusion.FAILURE, "The agent changed nothing."
    if rules.needs_spec and not spec_files(result.changed_files):
        return Conclusion.FAILURE, f"The run wrote no spec under {SPEC_DIR}."
    problems = artifact_problems(result)
    if problems:
        return (
            Conclusion.FAILURE,
            f"The {result.kind} artifact is not complete: {'; '.join(problems)}.",
        )
    if result.kind == "review":
        return Conclusion.SUCCESS, f"The reviewer's verdict: {result.agent_fields['verdict']}."
    if not rules.runs_tests:
        return Conclusion.SUCCESS, "The spec is pushed; this kind of run needs no tests."
    if result.tests_command is None:
        return Conclusion.NEUTRAL, "Pushed; the repository configures no tests (tests.command)."
    if result.tests is None:
        return Conclusion.FAILURE, "The tests did not run."
    if result.tests.timed_out:
        return Conclusion.FAILURE, "The tests timed out (tests.timeout_minutes)."
    if not result.tests.passed:
        return Conclusion.FAILURE, f"The tests failed (exit code {result.tests.exit_code})."
    return Conclusion.SUCCESS, "The tests passed."


def _kept(result: RunResult) -> str:
    """Say what became of a stopped run's work: pushed (and where), or that there was none."""
    if result.commit_sha is not None and result.changed_files:
        return f"its work so far is pushed ({result.commit_sha[:12]})"
    return "it had changed nothing, so nothing was pushed"


def render_title(conclusion: Conclusion, result: RunResult) -> str:
    """Return the check run's output title."""
    files = f"{len(result.changed_files)} file{'s' if len(result.changed_files) != 1 else ''}"
    if conclusion is Conclusion.SUCCESS and result.kind != "develop":
        return success_title(result.kind, result.agent_fields, files)
    return {
        Conclusion.SUCCESS: f"Tests passed; {files} changed",
        Conclusion.NEUTRAL: f"{files} changed; no tests configured",
        Conclusion.FAILURE: "coder could not finish this run",
        Conclusion.TIMED_OUT: "Stopped at a time limit",
        Conclusion.ACTION_REQUIRED: (
            "The plan waits for approval"
            if result.awaiting_approval
            else "The agent needs an answer"
        ),
    }[conclusion]


def render_summary(conclusion: Conclusion, reason: str, result: RunResult) -> str:
    """Return the check run's summary (also the job's step summary)."""
    lines = [
        f"**{reason}**",
        "",
        model_line(result.model, result.model_reason),
        "",
        "| | |",
        "|---|---|",
        f"| Conclusion | `{conclusion}` |",
        *([f"| Attempt | {result.attempt} |"] if result.attempt else []),
        f"| Files changed | {len(result.changed_files)} |",
        f"| Tests | {_tests_cell(result)} |",
        f"| Duration | {_duration(result.seconds)} |",
        f"| Cost | {_cost(result)} |",
        f"| Commit | {f'`{result.commit_sha[:12]}`' if result.commit_sha else 'none pushed'} |",
        (
            f"| GitHub API | {result.rest_calls} REST, {result.graphql_calls} GraphQL, "
            f"{result.progress_edits} progress edits |"
        ),
    ]
    if result.stuck_question is not None:
        lines += ["", "### The question", "", _quote(result.stuck_question), "", HOW_TO_ANSWER]
    if result.awaiting_approval:
        lines += ["", HOW_TO_APPROVE]
    if result.changed_files:
        lines += ["", "### Files changed", ""]
        lines += [f"- `{path}`" for path in result.changed_files[:MAX_FILES_LISTED]]
        if len(result.changed_files) > MAX_FILES_LISTED:
            lines.append(f"- … and {len(result.changed_files) - MAX_FILES_LISTED} more")
    if result.tests is not None and not result.tests.passed and result.tests.tail:
        lines += ["", "### Test output (last lines)", "", _fenced(result.tests.tail)]
    lines += kind_sections(
        kind=result.kind,
        succeeded=conclusion is Conclusion.SUCCESS,
        fields=result.agent_fields,
        plan=plan_of(result.step_artifacts),
        auto_split=result.auto_split,
    )
    lines += ["", "### Progress", "", render_checklist(result.progress)]
    return _cap("\n".join(lines))


def build_artifact(conclusion: Conclusion, result: RunResult) -> BaseModel | None:
    """Return the run's typed artifact, or None when the agents left it incomplete."""
    artifact, _problems = assemble(
        result.kind, _runner_fields(conclusion, result), result.agent_fields
    )
    return artifact


def artifact_problems(result: RunResult) -> tuple[str, ...]:
    """Name what keeps the run's artifact from being complete (fields, spec locations)."""
    _artifact, problems = assemble(
        result.kind, _runner_fields(Conclusion.SUCCESS, result), result.agent_fields
    )
    fields = result.agent_fields
    spec_path, spec_dir = fields.get("specPath"), fields.get("specDir")
    if result.kind == "research" and isinstance(spec_path, str):
        if not spec_path.startswith(SPEC_DIR):
            problems += (f"specPath: {spec_path} is not under {SPEC_DIR}",)
        elif spec_path not in result.changed_files:
            problems += (f"specPath: {spec_path} is not a file this run wrote",)
    in_specs = isinstance(spec_dir, str) and f"{spec_dir.rstrip('/')}/".startswith(SPEC_DIR)
    if result.kind == "design" and isinstance(spec_dir, str) and not in_specs:
        problems += (f"specDir: {spec_dir} is not under {SPEC_DIR}",)
    return problems


def _runner_fields(conclusion: Conclusion, result: RunResult) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "runId": result.run_id,
        "repo": result.repository,
        "createdAt": result.started_at,
        "completedAt": result.completed_at,
        "issue": None if result.on_pull else IssueRef(repo=result.repository, number=result.issue),
        "model": result.model,
        "costUsd": round(result.cost_usd, 6),
        "durationSeconds": round(result.seconds, 3),
        "conclusion": ARTIFACT_CONCLUSION[conclusion],
    }
    if result.kind == "review":
        number = result.pull_number or result.issue
        return {**fields, "pull": PullRef(repo=result.repository, number=number)}
    fields |= {"branchName": result.branch, "commitSha": result.commit_sha}
    if result.kind in {"develop", "release"}:
        fields["prUrl"] = result.pull_url
    if result.kind == "develop":
        fields |= {
            "testsPass": None if result.tests is None else result.tests.passed,
            "filesChanged": result.changed_files,
            "plan": plan_of(result.step_artifacts),
        }
    return fields


def render_text(artifact: BaseModel | None, problems: tuple[str, ...] = ()) -> str:
    """Return the check run's `output.text`: the artifact block, or why there is none."""
    if artifact is None:
        return "No artifact: " + ("; ".join(problems) or "the run did not produce one") + "."
    return render_artifact_block(artifact)


def pull_status(conclusion: Conclusion, reason: str, kind: str = "develop") -> str:
    """Return the PR body's status line for a finished run."""
    if conclusion is Conclusion.SUCCESS and rules_for(kind).ready_on_success:
        return f"{reason} Ready for review."
    if conclusion is Conclusion.SUCCESS:
        return f"{reason} It stays a draft: it holds a spec, not code."
    return f"Still a draft: {reason}"


def job_outputs(conclusion: Conclusion, commit_sha: str | None, pull: int) -> dict[str, str]:
    """Return the step's outputs: conclusion, commit and pr."""
    return {"conclusion": str(conclusion), "commit": commit_sha or "", "pr": str(pull)}


def _tests_cell(result: RunResult) -> str:
    tests = result.tests
    if not rules_for(result.kind).runs_tests:
        return f"not part of a {result.kind} run"
    if result.tests_command is None:
        return "not configured"
    if tests is None:
        return "not run"
    verdict = "passed" if tests.passed else "timed out" if tests.timed_out else "failed"
    code = "" if tests.passed else f", exit code {tests.exit_code}"
    return f"{verdict} (`{_inline(result.tests_command)}`, {_duration(tests.seconds)}{code})"


def _cost(result: RunResult) -> str:
    tokens = f" ({result.tokens:,} tokens)" if result.tokens else ""
    return f"${result.cost_usd:.2f}{tokens}"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines() or [""])


def _inline(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ")


def _fenced(text: str) -> str:
    longest = max((len(run) for run in BACKTICK_RUN.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _cap(text: str) -> str:
    return clip_output(text, "\n\n… (cut to fit GitHub's limit)", MAX_OUTPUT_CHARS)
