"""What the app's own check runs say: queued, refused, chain stopped, reconciled. Pure.

Each function returns the JSON body of a check-runs request
(https://docs.github.com/en/rest/checks/runs). Summaries are short and factual: what happened,
and what to do next (DESIGN §2, "honest status").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.buttons import buttons_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.config import ConfigError

CHECK_PREFIX = "coder/"
# GitHub accepts at most 50 annotations per request and 65535 characters per output field.
MAX_ANNOTATIONS = 50
MAX_OUTPUT_CHARS = 65_535
TRUNCATED = "\n\n(truncated)"
MAX_TITLE_CHARS = 120
# What a reconciled check run's link points at: the job, or the workflow run when no job of
# it could be found (the summary says which).
JOB_LINK = "The job"
WORKFLOW_RUN_LINK = "The workflow run (no job of it could be found)"
# The check run that holds an input artifact given with a request (a command's coder-input block,
# `coder run --input`, a dispatch's `client_payload.input`); the runner reads it by id.
INPUT_CHECK = "input"

# How a job that ended without the runner reporting maps onto the check run. A job that
# "succeeded" but left the check run open did not do what it promised, so it is a failure.
JOB_CONCLUSIONS = {"cancelled": "cancelled", "timed_out": "timed_out"}
DEFAULT_RECONCILED = "failure"


def check_name(workflow: str) -> str:
    """Return the check-run name of a workflow, e.g. `coder/develop`."""
    return f"{CHECK_PREFIX}{workflow}"


def runs_on_json(runs_on: str | Sequence[str]) -> str:
    """Return `runner.runs-on` as the JSON the workflow's `fromJSON(inputs.runs_on)` reads."""
    value: str | list[str] = runs_on if isinstance(runs_on, str) else list(runs_on)
    return json.dumps(value)


@dataclass(frozen=True)
class QueuedRun:
    """What a freshly dispatched run is, for its first check-run output."""

    run_id: str
    workflow: str
    model: str
    issue_number: int
    labeled_by: str
    runs_on: str | tuple[str, ...]
    pull_url: str
    steps: tuple[str, ...]
    model_reason: str = ""
    attempt: int | None = None  # a fix run's attempt number on its pull request


def queued_check_run(run: QueuedRun, head_sha: str, text: str | None = None) -> dict[str, Any]:
    """Return the body that creates a run's check run, queued on its head.

    `text` is the run request a pull-request run carries (`app.briefing.render_run_request`).
    """
    runner = run.runs_on if isinstance(run.runs_on, str) else ", ".join(run.runs_on)
    model = f"{run.model} ({_plain(run.model_reason)})" if run.model_reason else run.model
    summary = "\n".join(
        [
            (
                f"Run `{run.run_id}` for #{run.issue_number} is queued, asked for by "
                f"@{run.labeled_by}."
            ),
            "",
            f"- workflow: {run.workflow} ({', '.join(run.steps)})",
            *([f"- attempt: {run.attempt}"] if run.attempt else []),
            f"- model: {model}",
            f"- runs on: {runner}",
            "",
            (
                "Nothing has run yet. This check turns in progress when the job starts and "
                "completes with what changed, the tests, the time and the cost."
            ),
        ]
    )
    attempt = f", attempt {run.attempt}" if run.attempt else ""
    output = {"title": f"Queued: {run.workflow} with {run.model}{attempt}", "summary": summary}
    if text is not None:
        output["text"] = _clip(text)
    return {
        "name": check_name(run.workflow),
        "head_sha": head_sha,
        "status": "queued",
        "external_id": run.run_id,
        "details_url": run.pull_url,
        "output": output,
        "actions": buttons_for("queued", None, fixable=False),
    }


def chain_stopped_check_run(
    *, workflow: str, run_id: str, head_sha: str, after: str, problems: Sequence[str]
) -> dict[str, Any]:
    """Return the failed check run of a `then:` step whose input was refused, naming each field."""
    lines = [
        f"`{workflow}` did not start after run `{after}`: its artifact is not a valid input.",
        "",
        *(f"- {_plain(problem)}" for problem in problems),
        "",
        "Fix what produced the artifact, then run the workflow again.",
    ]
    first = _plain(problems[0]) if problems else "no artifact"
    return {
        "name": check_name(workflow),
        "head_sha": head_sha,
        "external_id": run_id,
        "conclusion": "failure",
        "output": {
            "title": _short(f"chain stopped: {first}"),
            "summary": _clip("\n".join(lines)),
        },
    }


def chain_held_check_run(
    *, workflow: str, run_id: str, head_sha: str, after: str, why: str
) -> dict[str, Any]:
    """Return the neutral check run of a `then:` step not started because its run is unverified."""
    lines = [
        (
            f"`{workflow}` did not start after run `{after}`: that run ended neutral "
            f"({_plain(why)}), and `then:` follows only a run that succeeded."
        ),
        "",
        (
            "A run ends neutral when it pushed work that nothing tested: set `tests.command` in "
            f"`.github/coder.yml` so runs can succeed, or start `{workflow}` by hand."
        ),
    ]
    return {
        "name": check_name(workflow),
        "head_sha": head_sha,
        "external_id": run_id,
        "conclusion": "neutral",
        "output": {
            "title": _short(f"not started: run {after} ended neutral"),
            "summary": _clip("\n".join(lines)),
        },
    }


def chain_config_invalid_check_run(
    errors: Sequence[ConfigError],
    *,
    workflow: str,
    run_id: str,
    head_sha: str,
    after: str,
    branch: str,
    config_check_url: str | None,
) -> dict[str, Any]:
    """Return the failed check run of a `then:` step not started because the config is invalid."""
    count = len(errors)
    noun = "error" if count == 1 else "errors"
    lines = [
        (
            f"`{workflow}` did not start after run `{after}`: the config on `{branch}` has "
            f"{count} {noun}."
        ),
        "",
        *(
            f"- `{error.path}:{error.line}:{error.column}` {_plain(error.message)}"
            for error in errors
        ),
        "",
    ]
    if config_check_url:
        lines.append(
            f"The `coder/config` check run shows each error at its line: {config_check_url}"
        )
    lines.append(f"Fix the file on `{branch}`, then start `{workflow}` again.")
    return {
        "name": check_name(workflow),
        "head_sha": head_sha,
        "external_id": run_id,
        "conclusion": "failure",
        "output": {
            "title": _short(f"chain stopped: the config on {branch} is invalid"),
            "summary": _clip("\n".join(lines)),
        },
    }


def input_refused_check_run(
    *, workflow: str, run_id: str, head_sha: str, problems: Sequence[str]
) -> dict[str, Any]:
    """Return the failed check run of a request that had nowhere to be answered (no issue)."""
    lines = [
        f"No run of `{workflow}` started: the request has problems.",
        "",
        *(f"- {_plain(problem)}" for problem in problems),
    ]
    return {
        "name": check_name(workflow),
        "head_sha": head_sha,
        "external_id": run_id,
        "conclusion": "failure",
        "output": {
            "title": _short(f"Refused: {_plain(problems[0])}" if problems else "Refused"),
            "summary": _clip("\n".join(lines)),
        },
    }


def input_check_run(*, run_id: str, head_sha: str, text: str) -> dict[str, Any]:
    """Return the check run that holds a run's input artifact, which the runner reads."""
    return {
        "name": check_name(INPUT_CHECK),
        "head_sha": head_sha,
        "external_id": run_id,
        "conclusion": "neutral",
        "output": {
            "title": f"Input of run {run_id}",
            "summary": f"The input artifact run `{run_id}` was asked to start from.",
            "text": _clip(text),
        },
    }


def duplicate_update(winner_id: int | str) -> dict[str, Any]:
    """Return the update that retires a check run a racing replica created twice."""
    return {
        "conclusion": "neutral",
        "output": {
            "title": f"duplicate of {winner_id}",
            "summary": f"Another check run ({winner_id}) holds this run; nothing ran here.",
        },
    }


def config_failure_check_run(
    errors: Sequence[ConfigError], *, head_sha: str, run_id: str, workflow: str, branch: str
) -> dict[str, Any]:
    """Return the body of a failed check run listing config errors, annotated at their lines."""
    count = len(errors)
    noun = "error" if count == 1 else "errors"
    lines = [
        f"No run started: the config on `{branch}` has {count} {noun}.",
        "",
        *(
            f"- `{error.path}:{error.line}:{error.column}` {_plain(error.message)}"
            for error in errors
        ),
        "",
        "Fix the file on the default branch, then ask again.",
    ]
    return {
        "name": check_name(workflow),
        "head_sha": head_sha,
        "external_id": run_id,
        "conclusion": "failure",
        "output": {
            "title": f"Invalid {errors[0].path}" if errors else "Invalid config",
            "summary": _clip("\n".join(lines)),
            # Only the repository's own file can be annotated; an `_extends` base is elsewhere.
            "annotations": [_annotation(error) for error in errors if error.in_repository][
                :MAX_ANNOTATIONS
            ],
        },
    }


def _annotation(error: ConfigError) -> dict[str, Any]:
    return {
        "path": error.path,
        "start_line": error.line,
        "end_line": error.line,
        # Columns are only allowed when the annotation starts and ends on one line, as here.
        "start_column": error.column,
        "end_column": error.column,
        "annotation_level": "failure",
        "title": "coder config",
        "message": error.message,
    }


def dispatch_failed_update(
    *, workflow_file: str, branch: str, status: int, message: str
) -> dict[str, Any]:
    """Return the update that fails a check run whose workflow could not be dispatched."""
    if status == 404:
        title = f"Workflow {workflow_file} not found"
        summary = (
            f"No job started: `.github/workflows/{workflow_file}` does not exist on `{branch}`, "
            "so there was nothing to dispatch. The comment on the issue says how to add it."
        )
    else:
        title = "Dispatch refused"
        summary = (
            f"No job started: GitHub refused to dispatch `.github/workflows/{workflow_file}` "
            f"on `{branch}` ({status}: {_plain(message)})."
        )
    return {"conclusion": "failure", "output": {"title": title, "summary": _clip(summary)}}


def reconciled_conclusion(job_conclusion: str | None) -> str:
    """Return the check-run conclusion for a job that ended without reporting."""
    return JOB_CONCLUSIONS.get(job_conclusion or "", DEFAULT_RECONCILED)


def reconciled_update(
    *,
    job_conclusion: str | None,
    what_happened: str,
    link: str | None,
    fixable: bool = False,
    link_label: str = JOB_LINK,
) -> dict[str, Any]:
    """Return the update that closes a check run whose job ended without closing it."""
    conclusion = reconciled_conclusion(job_conclusion)
    lines = [what_happened, ""]
    if link:
        lines.append(f"{link_label}: {link}")
    lines.append("Nothing was reported by the job itself. Ask again to start over.")
    update: dict[str, Any] = {
        "conclusion": conclusion,
        "output": {"title": f"Ended: {conclusion}", "summary": _clip("\n".join(lines))},
        "actions": buttons_for("completed", conclusion, fixable=fixable),
    }
    if link:
        update["details_url"] = link
    return update


def _plain(text: str) -> str:
    # Keep messages on one line and out of code spans' way.
    return " ".join(text.replace("`", "'").split())


def _short(title: str) -> str:
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 3] + "..."


def _clip(text: str) -> str:
    return clip_output(text)


def clip_output(text: str, suffix: str = TRUNCATED, limit: int = MAX_OUTPUT_CHARS) -> str:
    """Cut text to fit a check run's output field, which GitHub measures in UTF-8 bytes."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    kept = encoded[: limit - len(suffix.encode("utf-8"))].decode("utf-8", errors="ignore")
    return kept + suffix
