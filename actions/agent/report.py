"""Writing a run's end to GitHub and to the job: check run, job outputs, step summary, masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import aiohttp
import gidgethub

from actions.agent.auth import AuthError, obtain_token
from actions.agent.github import create_check_run, for_token, update_check_run
from actions.agent.logs import SECRETS
from app.buttons import buttons_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable
    from pathlib import Path

    from actions.agent.env import Reach
    from app.github import GitHub
    from app.retry import RetryPolicy

log = logging.getLogger("coder-agent")

CHECK_RUN_PREFIX = "coder/"


def mask(out: TextIO, secrets: Iterable[str]) -> None:
    """Tell GitHub's log to mask each secret; this must come before anything could print one."""
    # https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions#masking-a-value-in-a-log
    out.writelines(f"::add-mask::{secret}\n" for secret in secrets)
    out.flush()


@dataclass(frozen=True)
class CheckRunEnd:
    """A check run's final fields, and where the run's work ended up."""

    repository: str
    check_run: int
    run_id: str
    workflow: str
    conclusion: str
    output: dict[str, str]
    started_at: datetime
    completed_at: datetime
    details_url: str | None = None
    pushed_sha: str | None = None
    fixable: bool = False  # a coder branch's pull request a Fix button can work on


async def complete_check_run(gh: GitHub, end: CheckRunEnd) -> int:
    """Complete the run's check run, carried to the pushed commit if there is one; return its id."""
    fields: dict[str, Any] = {
        "status": "completed",
        "conclusion": end.conclusion,
        "completed_at": iso(end.completed_at),
        "output": end.output,
    }
    if end.details_url:
        fields["details_url"] = end.details_url
    fields["actions"] = buttons_for("completed", end.conclusion, fixable=end.fixable)
    if end.pushed_sha is None:
        await update_check_run(gh, end.repository, end.check_run, fields)
        return end.check_run
    # A check run belongs to one commit: the run's live check run moves to the new head (same
    # name and external_id) and the old one says where it went (docs/develop-run.md).
    carried = await create_check_run(
        gh,
        end.repository,
        name=f"{CHECK_RUN_PREFIX}{end.workflow}",
        head_sha=end.pushed_sha,
        external_id=end.run_id,
        fields={**fields, "started_at": iso(end.started_at)},
    )
    continued = {
        "status": "completed",
        "conclusion": "neutral",
        "completed_at": iso(end.completed_at),
        "output": {
            "title": f"Continued on {end.pushed_sha[:12]}",
            "summary": f"This run continued on commit {end.pushed_sha} (check run {carried}).",
        },
        "actions": [],
    }
    await update_check_run(gh, end.repository, end.check_run, continued)
    return carried


async def completed_check_run(gh: GitHub, end: CheckRunEnd) -> int | None:
    """Complete the run's check run (see `complete_check_run`); its id, or None if GitHub failed."""
    try:
        return await complete_check_run(gh, end)
    except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError) as error:
        log.warning("could not complete the check run: %s", error)
        return None


async def best_effort(what: str, call: Awaitable[object]) -> bool:
    """Await a GitHub call whose failure must not end the run; log it and go on."""
    try:
        await call
    except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError) as error:
        log.warning("could not %s: %s", what, error)
        return False
    return True


def write_job_files(
    *,
    output_path: Path | None,
    step_summary_path: Path | None,
    outputs: dict[str, str],
    summary: str,
) -> None:
    """Append the step outputs to `GITHUB_OUTPUT` and the summary to `GITHUB_STEP_SUMMARY`."""
    if output_path is not None:
        with output_path.open("a", encoding="utf-8") as handle:
            # Every value is an id or a word, so the one-line `name=value` form is safe.
            handle.writelines(f"{name}={value}\n" for name, value in outputs.items())
    if step_summary_path is not None:
        with step_summary_path.open("a", encoding="utf-8") as handle:
            handle.write(summary.rstrip("\n") + "\n")


def iso(moment: datetime) -> str:
    """Return GitHub's ISO 8601 form (`YYYY-MM-DDTHH:MM:SSZ`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def report_env_failure(
    reach: Reach, message: str, *, out: TextIO, policy: RetryPolicy | None = None
) -> None:
    """Complete the check run `failure` with an environment problem, if a token can be had."""
    if reach.check_run is None:
        return
    async with aiohttp.ClientSession() as session:
        try:
            token = await obtain_token(session, reach, policy=policy)
        except AuthError as error:
            log.warning("could not report the failure on GitHub: %s", error)
            return
        secrets = (token.token, *token.also_secret)
        mask(out, secrets)
        SECRETS.remember(secrets)
        gh = for_token(
            session,
            token.token,
            api_url=reach.api_url,
            graphql_url=reach.graphql_url,
            policy=policy,
        )
        fields = {
            "status": "completed",
            "conclusion": "failure",
            "output": {"title": "coder-agent could not start", "summary": message},
        }
        await best_effort(
            "report the failure", update_check_run(gh, reach.repository, reach.check_run, fields)
        )
