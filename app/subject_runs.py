"""The runs of one issue or pull request, read back from GitHub (DESIGN §4).

A run is a `coder/<workflow>` check run of this app whose `external_id` is the run id. An issue's
runs sit on the heads of its `coder/<issue>-*` branches; a pull request's on its head commit (a
run that pushed carries its check run to the new head, so the head shows every live one). The
reads are ETag-cached, so asking again while nothing changed costs no rate limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app import checks
from app.artifacts import parse_artifact_block
from app.briefing import BRANCH_PREFIX, TRAILER_RUN, parse_run_request, parse_trailers
from app.once import where
from app.reconcile import check_runs_on, run_branches

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gidgethub.abc import GitHubAPI

# Check runs named `coder/...` that are records, not runs.
NOT_RUNS = frozenset({checks.check_name(checks.INPUT_CHECK), checks.check_name("config")})
FAILED = frozenset({"failure", "timed_out", "cancelled", "action_required", "stale"})
RUN_BRANCH = re.compile(rf"^{re.escape(BRANCH_PREFIX)}(?P<number>[0-9]+)-")
PULL_COMMITS_URL = "/repos/{owner}/{repo}/pulls/{number}/commits{?per_page}"
ACTIONS_RUN_URL = re.compile(r"/actions/runs/(?P<id>[0-9]+)")
# The queued check run's summary names the model (`app.checks.queued_check_run`).
MODEL_LINE = re.compile(r"^- model: (?P<model>\S+)", re.MULTILINE)


@dataclass(frozen=True)
class RunView:
    """One run as its check run shows it."""

    run_id: str
    workflow: str
    check_run_id: int
    head_sha: str
    status: str
    conclusion: str | None
    html_url: str
    details_url: str | None
    title: str
    model: str | None
    cost_usd: float | None
    started_at: str | None
    text: str | None = None  # `output.text`: the run request, or the artifact once it ended
    summary: str = ""

    @property
    def active(self) -> bool:
        """Tell whether the run has not ended."""
        return self.status != "completed"

    @property
    def failed(self) -> bool:
        """Tell whether the run ended without doing what it was asked."""
        return self.status == "completed" and self.conclusion in FAILED

    @property
    def state(self) -> str:
        """Return the run's state in one word: its conclusion, or its status while open."""
        return self.conclusion or self.status

    @property
    def actions_run_id(self) -> int | None:
        """Return the Actions run the runner linked as the check run's details, if any."""
        match = ACTIONS_RUN_URL.search(self.details_url or "")
        return int(match["id"]) if match else None


def run_view(check_run: Mapping[str, Any]) -> RunView:
    """Read a coder check run as a run (pure)."""
    output = check_run.get("output") or {}
    text = output.get("text")
    artifact = parse_artifact_block(text) or {}
    request = parse_run_request(text)
    model = artifact.get("model") or (request.model if request is not None else None)
    if not model:
        named = MODEL_LINE.search(str(output.get("summary") or ""))
        model = named["model"] if named else None
    cost = artifact.get("costUsd")
    return RunView(
        run_id=str(check_run.get("external_id") or ""),
        workflow=str(check_run.get("name", "")).removeprefix(checks.CHECK_PREFIX),
        check_run_id=int(check_run["id"]),
        head_sha=str(check_run.get("head_sha", "")),
        status=str(check_run.get("status", "")),
        conclusion=check_run.get("conclusion"),
        html_url=str(check_run.get("html_url", "")),
        details_url=check_run.get("details_url"),
        title=str(output.get("title") or ""),
        model=model if isinstance(model, str) else None,
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        started_at=check_run.get("started_at"),
        text=text,
        summary=str(output.get("summary") or ""),
    )


def ours(check_runs: Iterable[Mapping[str, Any]], app_id: int) -> list[RunView]:
    """Keep this app's runs (any app may name a check run `coder/...`), oldest first (pure)."""
    seen: dict[str, RunView] = {}
    for check_run in sorted(check_runs, key=lambda run: int(run.get("id") or 0)):
        app = check_run.get("app") or {}
        if app.get("id") != app_id or check_run.get("name") in NOT_RUNS:
            continue
        if not check_run.get("external_id"):
            continue
        # A carried run has a copy on each head it moved to: the newest copy is the live one.
        view = run_view(check_run)
        seen.pop(view.run_id, None)
        seen[view.run_id] = view
    return list(seen.values())


def newest(runs: Iterable[RunView], *, active: bool | None = None) -> RunView | None:
    """Return the newest run (by check run id), optionally only active or only ended ones."""
    chosen = [run for run in runs if active is None or run.active == active]
    return max(chosen, key=lambda run: run.check_run_id, default=None)


async def runs_of_pull(gh: GitHubAPI, repo: str, head_sha: str, app_id: int) -> list[RunView]:
    """Return the runs on a pull request's head commit."""
    return ours(await check_runs_on(gh, repo, head_sha), app_id)


async def runs_of_pull_history(
    gh: GitHubAPI, repo: str, number: int, head_sha: str, app_id: int
) -> list[RunView]:
    """Return the runs on a pull request's head and on its commits that coder runs made."""
    commits = [
        commit
        async for commit in gh.getiter(PULL_COMMITS_URL, where(repo, number=number, per_page=100))
    ]
    shas = [
        str(commit["sha"])
        for commit in commits
        if TRAILER_RUN in parse_trailers(str((commit.get("commit") or {}).get("message", "")))
    ]
    found: list[Mapping[str, Any]] = []
    for sha in dict.fromkeys([*shas, head_sha]):
        found += await check_runs_on(gh, repo, sha)
    return ours(found, app_id)


async def runs_of_issue(gh: GitHubAPI, repo: str, number: int, app_id: int) -> list[RunView]:
    """Return the runs on an issue's run branches, oldest first."""
    branches = await run_branches(gh, repo, f"{BRANCH_PREFIX}{number}-")
    found: list[Mapping[str, Any]] = []
    for head in dict.fromkeys(branch.head_sha for branch in branches):
        found += await check_runs_on(gh, repo, head)
    return ours(found, app_id)


def issue_of_branch(branch: str | None) -> int | None:
    """Return the issue a run branch `coder/<issue>-<slug>` belongs to (pure)."""
    match = RUN_BRANCH.match(branch or "")
    return int(match["number"]) if match else None
