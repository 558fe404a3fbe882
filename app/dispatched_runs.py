"""A coder run's workflow run: found among a repository's dispatched runs, read only as needed.

A run's job is the workflow run named `coder run <id>` (`run-name:` in coder's workflow). The
reconcile pass (`app.reconcile`) needs it to tell a live run from a dead one, and must never
fail a live run because it is older than the newest page of runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import gidgethub

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI

# `run-name: coder run ${{ inputs.run_id }}` in the workflow; run ids are 12 base32 characters.
# A run on a fork's pull request (`allow_fork_runs`) is dispatched `read_only` and titled
# `coder run <id> read-only`; only the app can dispatch, so only the app sets the title.
RUN_TITLE = re.compile(r"^coder run (?P<run_id>[a-z2-7]{12})(?P<read_only> read-only)?$")
READ_ONLY_SUFFIX = " read-only"
# Dispatched workflow runs are read newest first, a page at a time, only as far back as a run
# being looked for could be; a repository busier than this many pages is not read to its end,
# and a run not found in them is left open rather than failed (a later pass, or its events,
# decide it).
WORKFLOW_RUNS_PAGE = 100
MAX_WORKFLOW_RUN_PAGES = 10
# GitHub creates a check run before the app dispatches its job, so the job's workflow run was
# created after the check run started; this much earlier is still looked at (clock skew).
DISPATCH_SKEW_SECONDS = 5 * 60
ACTIONS_RUN_URL = re.compile(r"/actions/runs/(?P<id>[0-9]+)$")
WORKFLOW_RUNS_URL = "/repos/{owner}/{repo}/actions/runs{?event,per_page}"
WORKFLOW_RUN_URL = "/repos/{owner}/{repo}/actions/runs/{run_id}"


def run_id_from_title(title: str | None) -> str | None:
    """Return the run id in a workflow run's title `coder run <id>`, or None if not coder's."""
    match = RUN_TITLE.match(title or "")
    return match["run_id"] if match else None


def read_only_title(title: str | None) -> bool | None:
    """Tell whether a coder workflow run was dispatched read-only; None if it is not coder's."""
    match = RUN_TITLE.match(title or "")
    return None if match is None else match["read_only"] is not None


@dataclass(frozen=True)
class Lookup:
    """A check run's workflow run, or None; `decided` is False when absence is not proven."""

    workflow_run: Mapping[str, Any] | None
    decided: bool = True


class DispatchedRuns:
    """A repository's dispatched workflow runs by coder run id, read only as far as needed.

    The newest page usually holds every run a pass looks for (ETag-cached: free when nothing
    changed). An older run is found through its check run's `details_url` (the runner points it
    at its Actions run) or by reading further pages, newest first, back to when its check run was
    queued; runs are never failed for being outside the first page.
    """

    def __init__(self, gh: GitHubAPI, repo: str) -> None:
        self._gh = gh
        self._repo = repo
        owner, name = repo.split("/", 1)
        self._where = {"owner": owner, "repo": name}
        query: dict[str, str | int] = {
            **self._where,
            "event": "workflow_dispatch",
            "per_page": WORKFLOW_RUNS_PAGE,
        }
        self._pages = gh.getiter(WORKFLOW_RUNS_URL, query, iterable_key="workflow_runs")
        self._runs: dict[str, Mapping[str, Any]] = {}
        self._read = 0
        self._oldest: datetime | None = None
        self._exhausted = False

    async def newest(self) -> dict[str, Mapping[str, Any]]:
        """Return the runs found so far, reading the newest page first if it was not read."""
        if self._read == 0 and not self._exhausted:
            await self._read_page()
        return dict(self._runs)

    async def lookup(self, check_run: Mapping[str, Any]) -> Lookup:
        """Return the workflow run of a coder check run, or say whether it surely has none."""
        run_id = str(check_run.get("external_id"))
        await self.newest()  # the newest page: the common answer
        if run_id in self._runs:
            return Lookup(self._runs[run_id])
        linked = await self._linked(check_run, run_id)
        if linked is not None:
            return Lookup(linked)
        since = _queued_since(check_run)
        while run_id not in self._runs:
            if self._exhausted or (
                since is not None and self._oldest is not None and self._oldest < since
            ):
                return Lookup(None)  # read back past when it could have been dispatched
            if self._read >= MAX_WORKFLOW_RUN_PAGES * WORKFLOW_RUNS_PAGE:
                return Lookup(None, decided=False)
            await self._read_page()
        return Lookup(self._runs[run_id])

    async def close(self) -> None:
        """Stop reading pages."""
        await self._pages.aclose()

    async def _read_page(self) -> None:
        for _ in range(WORKFLOW_RUNS_PAGE):
            try:
                workflow_run = await anext(self._pages)
            except StopAsyncIteration:
                self._exhausted = True
                return
            self._read += 1
            self._keep(workflow_run)

    def _keep(self, workflow_run: Mapping[str, Any]) -> None:
        created = workflow_run.get("created_at")
        if isinstance(created, str):
            moment = datetime.fromisoformat(created)
            self._oldest = moment if self._oldest is None else min(self._oldest, moment)
        run_id = run_id_from_title(workflow_run.get("display_title"))
        # Newest first: keep the latest attempt of each run.
        if run_id is not None and run_id not in self._runs:
            self._runs[run_id] = workflow_run

    async def _linked(self, check_run: Mapping[str, Any], run_id: str) -> Mapping[str, Any] | None:
        match = ACTIONS_RUN_URL.search(str(check_run.get("details_url") or ""))
        if match is None:
            return None
        try:
            workflow_run = await self._gh.getitem(
                WORKFLOW_RUN_URL, {**self._where, "run_id": match["id"]}
            )
        except gidgethub.BadRequest:
            return None
        if run_id_from_title(workflow_run.get("display_title")) != run_id:
            return None
        self._runs[run_id] = workflow_run
        return dict(workflow_run)


def _queued_since(check_run: Mapping[str, Any]) -> datetime | None:
    """Return the earliest its workflow run can have been created, if the check run says."""
    # Only a queued check run's `started_at` is GitHub's own creation time: the runner
    # rewrites it when the job starts, which can be long after the workflow run was created.
    started = check_run.get("started_at")
    if check_run.get("status") != "queued" or not isinstance(started, str):
        return None
    return datetime.fromisoformat(started) - timedelta(seconds=DISPATCH_SKEW_SECONDS)
