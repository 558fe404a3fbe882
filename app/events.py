"""Small models of the webhook payloads coder handles, parsing only the fields it uses.

Field meanings follow GitHub's webhook reference
(https://docs.github.com/en/webhooks/webhook-events-and-payloads); unknown fields are ignored so
GitHub can add to a payload without breaking us.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Base for payload models: frozen, and tolerant of fields we do not use."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def from_payload(cls, payload: Any) -> Self:
        """Validate a decoded webhook payload (`gidgethub.sansio.Event.data`)."""
        return cls.model_validate(payload)


class User(Model):
    """A GitHub account: a person, an organization or a bot (`login` ends in `[bot]`)."""

    login: str
    id: int
    type: str = "User"


class Repository(Model):
    """The repository an event happened in."""

    id: int
    name: str
    full_name: str
    owner: User
    private: bool = False
    default_branch: str = "main"


class RepositoryRef(Model):
    """A repository as listed in installation events (no owner, no default branch)."""

    id: int
    name: str
    full_name: str
    private: bool = False


class Installation(Model):
    """The app installation an event was delivered for; `account` only on installation events."""

    id: int
    account: User | None = None
    repository_selection: Literal["all", "selected"] | None = None


class Label(Model):
    """A label on an issue or pull request."""

    name: str
    color: str = ""
    description: str | None = None


class Issue(Model):
    """An issue (or the issue side of a pull request, when `pull_request` is set)."""

    number: int
    title: str
    body: str | None = None
    state: str = "open"
    user: User
    labels: list[Label] = Field(default_factory=list)
    pull_request: dict[str, Any] | None = None

    @property
    def is_pull_request(self) -> bool:
        """Tell whether this issue is a pull request's conversation."""
        return self.pull_request is not None


class Comment(Model):
    """An issue or pull-request comment."""

    id: int
    body: str = ""
    user: User
    author_association: str = "NONE"


class BranchRef(Model):
    """One side of a pull request: branch name, commit, and the repository it lives in."""

    ref: str
    sha: str
    repo: RepositoryRef | None = None  # null when the fork was deleted


class PullRequest(Model):
    """A pull request."""

    number: int
    title: str
    body: str | None = None
    state: str = "open"
    draft: bool = False
    user: User
    head: BranchRef
    base: BranchRef
    labels: list[Label] = Field(default_factory=list)


class PullRequestLink(Model):
    """A pull request as a check run lists it: number and branches only."""

    number: int


class CheckRun(Model):
    """A check run; coder's own carry the run id in `external_id`."""

    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None = None
    external_id: str | None = None
    pull_requests: list[PullRequestLink] = Field(default_factory=list)


class RequestedAction(Model):
    """The button a user pressed on a check run."""

    identifier: str


class IssuesLabeled(Model):
    """`issues.labeled`: someone added a label to an issue."""

    action: Literal["labeled"]
    issue: Issue
    label: Label
    repository: Repository
    sender: User
    installation: Installation | None = None


class IssueCommentCreated(Model):
    """`issue_comment.created`: a new comment on an issue or pull request."""

    action: Literal["created"]
    issue: Issue
    comment: Comment
    repository: Repository
    sender: User
    installation: Installation | None = None


class PullRequestOpened(Model):
    """`pull_request.opened`: a pull request was opened."""

    action: Literal["opened"]
    number: int
    pull_request: PullRequest
    repository: Repository
    sender: User
    installation: Installation | None = None


class CheckRunRequestedAction(Model):
    """`check_run.requested_action`: a user pressed one of a check run's buttons."""

    action: Literal["requested_action"]
    check_run: CheckRun
    requested_action: RequestedAction
    repository: Repository
    sender: User
    installation: Installation | None = None


class InstallationCreated(Model):
    """`installation.created`: the app was installed on an account."""

    action: Literal["created"]
    installation: Installation
    repositories: list[RepositoryRef] = Field(default_factory=list)
    sender: User


class InstallationRepositoriesAdded(Model):
    """`installation_repositories.added`: repositories were added to an installation."""

    action: Literal["added"]
    installation: Installation
    repository_selection: Literal["all", "selected"]
    repositories_added: list[RepositoryRef]
    sender: User
