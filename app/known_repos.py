"""What this process has learned about repositories from signed webhooks and its own dispatches.

The token exchange (`app.oidc`) checks a job's claims against these facts before it mints a
token, so the usual exchange costs no lookup at all (DESIGN §8, docs/develop-run.md "The API
budget"): every webhook names its installation and repository (id, name, default branch), and
the app knows which workflow file it dispatched, and on which branch. Nothing here is trusted
more than GitHub: it comes only from verified deliveries and the app's own dispatches, a miss or
a disagreement sends the exchange to GitHub for the answer, and a replica that has seen nothing
simply pays those lookups.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from app.dispatched_runs import read_only_title

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_REPOSITORIES = 4096


@dataclass(frozen=True)
class KnownRepository:
    """A repository as the last signed webhook about it described it."""

    repository_id: int
    full_name: str
    installation_id: int
    default_branch: str


@dataclass(frozen=True)
class Dispatched:
    """The workflow file the app last dispatched in a repository, and the branch it ran on."""

    workflow_file: str
    branch: str


class KnownRepositories:
    """Repositories by id (from webhooks) and the app's last dispatch in each (by name)."""

    def __init__(self, size: int = MAX_REPOSITORIES) -> None:
        self._by_id: LRUCache[int, KnownRepository] = LRUCache(size)
        self._dispatched: LRUCache[str, Dispatched] = LRUCache(size)
        # Actions run id -> whether coder dispatched it read-only (a fork's pull request).
        self._read_only: LRUCache[int, bool] = LRUCache(size)

    def learn(self, payload: Mapping[str, Any]) -> None:
        """Remember the installation and repository a verified webhook payload names."""
        installation = payload.get("installation")
        repository = payload.get("repository")
        if not isinstance(installation, dict) or not isinstance(repository, dict):
            return
        installation_id, repository_id = installation.get("id"), repository.get("id")
        full_name, default_branch = repository.get("full_name"), repository.get("default_branch")
        if not (isinstance(installation_id, int) and isinstance(repository_id, int)):
            return
        if not (isinstance(full_name, str) and isinstance(default_branch, str)):
            return
        self.remember(KnownRepository(repository_id, full_name, installation_id, default_branch))
        workflow_run = payload.get("workflow_run")
        if isinstance(workflow_run, dict) and isinstance(workflow_run.get("id"), int):
            read_only = read_only_title(workflow_run.get("display_title"))
            if read_only is not None:
                self._read_only[int(workflow_run["id"])] = read_only

    def read_only(self, actions_run_id: int) -> bool | None:
        """Tell whether a coder job's workflow run is read-only, if a webhook said so."""
        return self._read_only.get(actions_run_id)

    def remember(self, repository: KnownRepository) -> None:
        """Record what GitHub said about a repository."""
        self._by_id[repository.repository_id] = repository

    def get(self, repository_id: int) -> KnownRepository | None:
        """Return what is known about the repository with this id, if anything."""
        return self._by_id.get(repository_id)

    def dispatched(self, full_name: str, workflow_file: str, branch: str) -> None:
        """Record that the app dispatched `workflow_file` on `branch` in `full_name`."""
        self._dispatched[full_name.casefold()] = Dispatched(workflow_file, branch)

    def dispatch_in(self, full_name: str) -> Dispatched | None:
        """Return the app's last dispatch in `full_name`, if this process made one."""
        return self._dispatched.get(full_name.casefold())


# Handlers are called as (event, gh); the process's facts reach the dispatch code this way,
# set by the server's router around every delivery (like `app.develop.APP_ACCESS`).
KNOWN_REPOSITORIES: ContextVar[KnownRepositories | None] = ContextVar(
    "known_repositories", default=None
)


def remember_dispatch(full_name: str, workflow_file: str, branch: str) -> None:
    """Note a dispatch for the token exchange, when running inside the app's router."""
    known = KNOWN_REPOSITORIES.get()
    if known is not None:
        known.dispatched(full_name, workflow_file, branch)
