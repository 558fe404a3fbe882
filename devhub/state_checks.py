"""devhub's model of check runs and check suites (plain data, like `devhub/state.py`).

GitHub keeps one check suite per app and head commit; every check run belongs to one suite:
https://docs.github.com/rest/guides/using-the-rest-api-to-interact-with-checks
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from devhub.state import App

CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CHECK_CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)


@dataclass(eq=False)
class CheckSuite:
    """The suite of one app's check runs on one commit."""

    id: int
    app: App
    head_sha: str
    head_branch: str | None
    created_at: datetime
    updated_at: datetime
    head_commit: dict[str, Any] = field(default_factory=dict)
    completed_announced: bool = False
    runs: list[CheckRun] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Return `completed` once every run is, `in_progress` when one started, else `queued`."""
        if self.runs and all(run.status == "completed" for run in self.runs):
            return "completed"
        if any(run.status != "queued" for run in self.runs):
            return "in_progress"
        return "queued"

    @property
    def conclusion(self) -> str | None:
        """Return the worst conclusion of the runs once the suite is completed."""
        if self.status != "completed":
            return None
        order = ("action_required", "cancelled", "timed_out", "failure", "neutral", "skipped")
        found = {run.conclusion for run in self.runs}
        for conclusion in order:
            if conclusion in found:
                return conclusion
        return "success"


@dataclass(eq=False)
class CheckRun:
    """One check run: a named status an app reports on a commit."""

    id: int
    suite: CheckSuite
    name: str
    status: str
    conclusion: str | None
    external_id: str
    details_url: str | None
    started_at: datetime | None
    completed_at: datetime | None
    output: dict[str, str | None] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)

    @property
    def app(self) -> App:
        """Return the app that owns the run (and alone may update it)."""
        return self.suite.app

    @property
    def head_sha(self) -> str:
        """Return the commit the run reports on."""
        return self.suite.head_sha
