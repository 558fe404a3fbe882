"""The app's marked comments: refusals, invalid config or input, dispatch trouble, summaries. Pure.

Every comment starts with a hidden marker naming its kind and run, so a redelivered event finds
the comment it already posted instead of posting it twice (DESIGN §2). Messages are factual:
what happened and what to do next (STYLE §8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.markers import render_marker
from app.permissions import Refusal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.config import ConfigError
    from app.permissions import SenderCheck

REFUSAL = "refusal"
CONFIG_INVALID = "config-invalid"
WORKFLOW_MISSING = "workflow-missing"
DISPATCH_FAILED = "dispatch-failed"
INPUT_INVALID = "input-invalid"
FORK_REFUSED = "fork-refused"
RESEARCH_SUMMARY = "research-summary"
FOLLOW_UPS_HELD = "follow-ups-held"
SPLIT_HELD = "split-held"
RUN_KEY = "run"
WORKFLOWS_DIR = ".github/workflows"
TEMPLATE_PATH = "workflows-templates/coder.yml"
APP_URL_VARIABLE = "CODER_APP_URL"
MAX_LISTED_ERRORS = 20
WRITE_ROLES = "write, maintain or admin"
TRIAGE_OR_MORE = "triage, write, maintain or admin"


@dataclass(frozen=True)
class Reply:
    """A comment to post once: its marker kind, the run it is about, and its markdown."""

    kind: str
    run_id: str
    body: str

    @property
    def fields(self) -> dict[str, str]:
        """Return the marker fields that find this comment again."""
        return {RUN_KEY: self.run_id}


def marker(kind: str, run_id: str) -> str:
    """Return the hidden marker a comment of `kind` about run `run_id` starts with."""
    return render_marker(kind, **{RUN_KEY: run_id})


def _reply(kind: str, run_id: str, lines: list[str]) -> Reply:
    return Reply(kind, run_id, "\n".join([marker(kind, run_id), *lines]))


def refusal(
    *, run_id: str, sender: SenderCheck, label: str, repo: str, needs: str = WRITE_ROLES
) -> Reply:
    """Explain why a request (`label`: the label or command that asked) did not start a run."""
    if sender.refusal is Refusal.BOT_NOT_ALLOWED:
        reason = (
            f"@{sender.login} is a bot that is not listed in `allowed_bots` in "
            "`.github/coder.yml`, so its requests do not start runs."
        )
    else:
        reason = (
            f"@{sender.login} has `{sender.role}` access to {repo}; starting this run needs "
            f"{needs}."
        )
    return _reply(
        REFUSAL,
        run_id,
        [
            f"coder did not start a run for {_quoted(label)}: {reason}",
            "",
            f"Someone with {needs} access can ask again with {_quoted(label)}.",
        ],
    )


def _quoted(trigger: str) -> str:
    return trigger if trigger.startswith("`") else f"`{trigger}`"


def input_invalid(*, run_id: str, workflow: str, problems: Sequence[str]) -> Reply:
    """Name every problem with a request's `--then` or input artifact; nothing was started."""
    listed = [f"- {_inline(problem)}" for problem in problems[:MAX_LISTED_ERRORS]]
    if len(problems) > MAX_LISTED_ERRORS:
        listed.append(f"- and {len(problems) - MAX_LISTED_ERRORS} more")
    return _reply(
        INPUT_INVALID,
        run_id,
        [
            f"coder did not start `{workflow}`: the request has problems.",
            "",
            *listed,
            "",
            "Fix them and ask again. docs/workflows-as-code.md lists what each workflow accepts.",
        ],
    )


def fork_refused(*, run_id: str, workflow: str, allowed: bool = False) -> Reply:
    """Explain that coder does not run this on a pull request from a fork."""
    if allowed:
        how = (
            "`allow_fork_runs` lets only `/coder fix` work on a fork's pull request (with a "
            "read-only token, the result posted as a suggested patch)."
        )
    else:
        how = (
            "A maintainer can push the branch to this repository and ask there, or set "
            "`allow_fork_runs: true` in `.github/coder.yml` to let `/coder fix` suggest a patch "
            "with a read-only token."
        )
    return _reply(
        FORK_REFUSED,
        run_id,
        [
            (
                f"coder did not start `{workflow}`: this pull request comes from a fork, and "
                "coder never runs a fork's code where a write token or secrets are available."
            ),
            "",
            how,
        ],
    )


def research_summary(
    *, run_id: str, problem: str, approach: str, decisions: Sequence[tuple[str, str]], spec: str
) -> Reply:
    """Summarise a finished research run on its issue: problem, approach, decisions, spec."""
    lines = [
        f"Research run `{run_id}` finished. The spec: {spec}",
        "",
        "**Problem**",
        "",
        problem.strip(),
        "",
        "**Proposed approach**",
        "",
        approach.strip(),
    ]
    if decisions:
        lines += ["", "**Decisions**", ""]
        lines += [
            f"- {_inline(decision)}" + (f": {_inline(why)}" if why else "")
            for decision, why in decisions
        ]
    return _reply(RESEARCH_SUMMARY, run_id, lines)


def config_invalid(
    *, run_id: str, errors: Sequence[ConfigError], branch: str, check_run_url: str | None
) -> Reply:
    """Name the config's problems, file:line each, and link the check run that annotates them."""
    listed = [
        f"- `{error.path}:{error.line}`: {_inline(error.message)}"
        for error in errors[:MAX_LISTED_ERRORS]
    ]
    if len(errors) > MAX_LISTED_ERRORS:
        listed.append(f"- and {len(errors) - MAX_LISTED_ERRORS} more")
    path = errors[0].path if errors else ".github/coder.yml"
    lines = [f"coder did not start a run: `{path}` on `{branch}` is invalid.", "", *listed, ""]
    if check_run_url:
        lines.append(f"The check run shows each error at its line: {check_run_url}")
    lines.append(f"Fix the file on `{branch}`, then ask again.")
    return _reply(CONFIG_INVALID, run_id, lines)


def follow_ups_held(
    *, run_id: str, errors: Sequence[ConfigError], branch: str, check_run_url: str | None
) -> Reply:
    """Say that a finished run's follow-ups wait for the config to be fixed."""
    listed = [
        f"- `{error.path}:{error.line}`: {_inline(error.message)}"
        for error in errors[:MAX_LISTED_ERRORS]
    ]
    if len(errors) > MAX_LISTED_ERRORS:
        listed.append(f"- and {len(errors) - MAX_LISTED_ERRORS} more")
    lines = [
        (
            f"Run `{run_id}` finished, but `.github/coder.yml` on `{branch}` is invalid, so "
            "coder cannot tell what follows it (`then:`, `auto_split`, a research summary); "
            "nothing did."
        ),
        "",
        *listed,
        "",
    ]
    if check_run_url:
        lines.append(f"The `coder/config` check run shows each error at its line: {check_run_url}")
    lines.append(f"Fix the file on `{branch}`, then ask for the next workflow.")
    return _reply(FOLLOW_UPS_HELD, run_id, lines)


def split_held(*, run_id: str, workflow: str, why: str) -> Reply:
    """Say that `auto_split` did not split an issue because its run is unverified."""
    lines = [
        (
            f"coder did not split this issue after {workflow} run `{run_id}`: the run ended "
            f"neutral ({_inline(why)}), and `auto_split` follows only a run that succeeded."
        ),
        "",
        (
            "Set `tests.command` in `.github/coder.yml` so runs can succeed, or split by hand "
            "with `/coder split`."
        ),
    ]
    return _reply(SPLIT_HELD, run_id, lines)


def workflow_missing(
    *, run_id: str, workflow_file: str, branch: str, pull_url: str | None
) -> Reply:
    """Explain that the workflow file is missing and how to add it."""
    path = f"{WORKFLOWS_DIR}/{workflow_file}"
    lines = [
        f"coder could not start run `{run_id}`: `{path}` does not exist on `{branch}`.",
        "",
        "To add it:",
        (
            f"1. Copy `{TEMPLATE_PATH}` from coder to `{path}` on `{branch}` (the onboarding "
            "pull request does this), or set `runner.workflow` in `.github/coder.yml` to the "
            "file you use."
        ),
        (
            f"2. Set the Actions variable `{APP_URL_VARIABLE}` to this app's public URL, so the "
            "job can exchange its OIDC token for a repository token."
        ),
        "3. Ask again (add the label again, or repeat the command).",
    ]
    if pull_url:
        lines += ["", f"The run's pull request stays as a draft: {pull_url}"]
    return _reply(WORKFLOW_MISSING, run_id, lines)


def dispatch_failed(
    *, run_id: str, workflow_file: str, branch: str, status: int, message: str
) -> Reply:
    """Explain that GitHub refused to dispatch the workflow."""
    path = f"{WORKFLOWS_DIR}/{workflow_file}"
    return _reply(
        DISPATCH_FAILED,
        run_id,
        [
            (
                f"coder could not start run `{run_id}`: GitHub refused to dispatch `{path}` on "
                f"`{branch}` ({status}: {_inline(message)})."
            ),
            "",
            (
                "The workflow needs a `workflow_dispatch` trigger with the inputs of "
                f"`{TEMPLATE_PATH}`. Fix it, then ask again."
            ),
        ],
    )


def _inline(text: str) -> str:
    return " ".join(text.replace("`", "'").split())
