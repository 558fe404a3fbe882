"""devhub's model of GitHub Actions: variables, workflow runs, jobs and steps (plain data).

Runs and jobs move through GitHub's statuses (`queued`, `in_progress`, `completed`, plus
`pending` while a concurrency group is busy) and end with one of GitHub's conclusions:
https://docs.github.com/rest/actions/workflow-runs
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from devhub.state import Account, Repo
    from devhub.state_checks import CheckRun


@dataclass(eq=False)
class Variable:
    """An Actions configuration variable (repository or organization)."""

    name: str
    value: str
    created_at: datetime
    updated_at: datetime
    visibility: str = "all"  # organization variables only: all, private or selected
    repository_ids: set[int] = field(default_factory=set)


@dataclass(eq=False)
class Step:
    """One step of a job, as the jobs API lists it."""

    number: int
    name: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(eq=False)
class Job:
    """One job of a workflow run."""

    id: int
    run: WorkflowRun
    key: str  # the job's id in the workflow file
    name: str
    labels: list[str]
    created_at: datetime
    status: str = "queued"
    conclusion: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runner_name: str | None = None
    pid: int | None = None  # the agent process while it runs on devhub's runner
    steps: list[Step] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    log_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    check_run: CheckRun | None = None
    # Set while the job runs: the secret the runner presents to get an OIDC token.
    id_token_request_token: str | None = None


@dataclass(eq=False)
class WorkflowRun:
    """One run of a workflow file."""

    id: int
    repo: Repo
    workflow_id: int
    workflow_path: str
    workflow_name: str
    run_number: int
    event: str
    display_title: str
    head_branch: str
    head_sha: str
    actor: Account
    created_at: datetime
    updated_at: datetime
    inputs: dict[str, Any] = field(default_factory=dict)
    head_commit: dict[str, Any] = field(default_factory=dict)
    check_suite_id: int | None = None
    run_attempt: int = 1
    status: str = "queued"
    conclusion: str | None = None
    run_started_at: datetime | None = None
    concurrency_group: str | None = None
    executes: bool = False  # True when devhub runs a job of it locally
    note: str = ""  # why devhub does not run it, when it does not
    cancel_requested: bool = False
    cancelled_by: str | None = None  # the login that asked (`POST .../cancel`), if a person did
    jobs: list[Job] = field(default_factory=list)
    head_repo: Repo | None = None  # the fork a pull request's run came from (None: `repo`)

    @property
    def ref(self) -> str:
        """Return the fully qualified ref the run was dispatched on."""
        return f"refs/heads/{self.head_branch}"
