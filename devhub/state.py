"""devhub's in-memory model of GitHub: accounts, tokens, repos, issues, installations, logs.

Everything here is forgotten on restart except what `hub.py` persists (the app's credentials) and
what lives in git (`devhub/git.py`). The model is plain data plus the permission rules that GitHub
applies to it; HTTP lives in `http.py` and the `rest_*` modules.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import string
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from devhub.state_actions import Variable, WorkflowRun
    from devhub.state_checks import CheckRun, CheckSuite
    from devhub.state_pulls import PullRequest

AccountType = Literal["User", "Organization", "Bot"]
TokenKind = Literal["user", "installation"]
OrgRole = Literal["admin", "member"]

ISSUE_STATES = ("open", "closed")
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
APP_PERMISSION_LEVELS = {"read": 1, "write": 2, "admin": 3}
# GitHub's token format: a prefix, 30 random base62 characters and a 6-character base62 CRC32 of
# them (https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/).
TOKEN_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
TOKEN_ENTROPY_CHARS = 30
TOKEN_CHECKSUM_CHARS = 6


class Role(IntEnum):
    """A repository role, ordered so that a higher role includes the lower ones."""

    NONE = 0
    READ = 1
    TRIAGE = 2
    WRITE = 3
    MAINTAIN = 4
    ADMIN = 5

    @classmethod
    def from_api(cls, name: str) -> Role | None:
        """Parse a permission as the collaborators API spells it (pull/push or read/write)."""
        return _ROLE_NAMES.get(name)

    @property
    def api_name(self) -> str:
        """Name the role the way `role_name` does (read, triage, write, maintain, admin)."""
        return self.name.lower()

    @property
    def legacy_name(self) -> str:
        """Name the role the way the `permission` field does: maintain->write, triage->read."""
        return {Role.MAINTAIN: "write", Role.TRIAGE: "read"}.get(self, self.name.lower())


_ROLE_NAMES = {
    "pull": Role.READ,
    "read": Role.READ,
    "triage": Role.TRIAGE,
    "push": Role.WRITE,
    "write": Role.WRITE,
    "maintain": Role.MAINTAIN,
    "admin": Role.ADMIN,
}

NODE_PREFIXES = {"User": "U", "Organization": "O", "Bot": "BOT"}


def utcnow() -> datetime:
    """Return the current time in UTC, truncated to the second like GitHub's timestamps."""
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    """Format a timestamp as GitHub does: ISO-8601 with a `Z`."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def mint_token(prefix: str) -> str:
    """Return a new token in GitHub's format: `prefix` + 36 base62 characters, checksum last."""
    entropy = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_ENTROPY_CHARS))
    checksum = zlib.crc32(entropy.encode())
    digits = []
    for _ in range(TOKEN_CHECKSUM_CHARS):
        checksum, digit = divmod(checksum, len(TOKEN_ALPHABET))
        digits.append(TOKEN_ALPHABET[digit])
    return prefix + entropy + "".join(reversed(digits))


def node_id(prefix: str, number: int) -> str:
    """Make a GraphQL-style global id such as `R_kgDOAAAAAQ`."""
    return f"{prefix}_kgDO{base64.urlsafe_b64encode(number.to_bytes(6, 'big')).decode()}"


@dataclass(eq=False)
class Account:
    """A user, an organization or a bot."""

    id: int
    login: str
    type: AccountType
    created_at: datetime
    name: str | None = None
    email: str | None = None
    site_admin: bool = False
    description: str | None = None

    @property
    def node_id(self) -> str:
        """Return the account's global id."""
        return node_id(NODE_PREFIXES[self.type], self.id)


@dataclass(eq=False)
class Label:
    """A repository label."""

    id: int
    name: str
    color: str
    description: str | None
    default: bool = False


@dataclass(eq=False)
class Reaction:
    """An emoji reaction on an issue or a comment."""

    id: int
    user: Account
    content: str
    created_at: datetime


@dataclass(eq=False)
class Comment:
    """A comment on an issue (or on a pull request's conversation)."""

    id: int
    issue_number: int
    user: Account
    body: str
    created_at: datetime
    updated_at: datetime
    via_app: bool = False
    reactions: list[Reaction] = field(default_factory=list)


@dataclass(eq=False)
class IssueEvent:
    """One entry of an issue's event list (labeled, closed, ...)."""

    id: int
    actor: Account
    event: str
    created_at: datetime
    label: Label | None = None
    state_reason: str | None = None


@dataclass(eq=False)
class Issue:
    """An issue. Pull requests are issues too and share the repository's number sequence."""

    id: int
    number: int
    title: str
    body: str | None
    user: Account
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: Account | None = None
    locked: bool = False
    via_app: bool = False
    is_pull_request: bool = False
    labels: list[Label] = field(default_factory=list)
    assignees: list[Account] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    events: list[IssueEvent] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    # Sub-issues (https://docs.github.com/rest/issues/sub-issues): ordered, one parent at most.
    parent: Issue | None = None
    sub_issues: list[Issue] = field(default_factory=list)


@dataclass(eq=False)
class Repo:
    """A repository; its git data lives in GitStore under `owner.login/name`."""

    id: int
    owner: Account
    name: str
    private: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime | None = None
    default_branch: str = "main"
    homepage: str | None = None
    has_issues: bool = True
    has_projects: bool = True
    has_wiki: bool = True
    collaborators: dict[int, Role] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    last_number: int = 0
    pulls: dict[int, PullRequest] = field(default_factory=dict)  # by number
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    check_suites: dict[int, CheckSuite] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)  # by upper-cased name
    secrets: dict[str, str] = field(default_factory=dict)  # by upper-cased name
    workflow_ids: dict[str, int] = field(default_factory=dict)  # by workflow file path
    workflow_runs: dict[int, WorkflowRun] = field(default_factory=dict)
    # Forks: the repository this one was forked from, and the forks made of this one.
    parent: Repo | None = None
    forks: list[Repo] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        """Return `owner/name`."""
        return f"{self.owner.login}/{self.name}"

    @property
    def source(self) -> Repo:
        """Return the root of the fork network (the repository itself when it is no fork)."""
        root = self
        while root.parent is not None:
            root = root.parent
        return root

    def network(self) -> list[Repo]:
        """List every repository of the fork network, the source first, oldest forks first."""
        found, pending = [], [self.source]
        while pending:
            repo = pending.pop(0)
            found.append(repo)
            pending.extend(repo.forks)
        return found

    def next_number(self) -> int:
        """Allocate the next issue/pull-request number (one sequence for both, like GitHub)."""
        self.last_number += 1
        return self.last_number

    def label(self, name: str) -> Label | None:
        """Find a label by name, case-insensitively as GitHub does."""
        return self.labels.get(name.casefold())


@dataclass(eq=False)
class Installation:
    """The seeded app installed on one account."""

    id: int
    account: Account
    repository_selection: Literal["all", "selected"]
    repository_ids: set[int]
    permissions: dict[str, str]
    events: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(eq=False)
class App:
    """The seeded GitHub App (devhub hosts exactly one)."""

    id: int
    slug: str
    name: str
    owner: Account
    bot: Account
    permissions: dict[str, str]
    events: list[str]
    created_at: datetime
    public_key_pem: bytes
    description: str = ""
    external_url: str = "https://example.invalid"

    @property
    def node_id(self) -> str:
        """Return the app's global id."""
        return node_id("A", self.id)


@dataclass(eq=False)
class Token:
    """A credential: a personal token of a user/bot, or an installation access token."""

    value: str
    kind: TokenKind
    account: Account
    installation: Installation | None = None
    expires_at: datetime | None = None
    repository_ids: frozenset[int] | None = None
    permissions: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class Delivery:
    """One webhook delivery attempt, as recorded for `GET /_devhub/deliveries`."""

    id: int
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    url: str
    request_headers: dict[str, str]
    body: bytes
    redelivery: bool = False
    delivered_at: datetime | None = None
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None
    response_body: str | None = None

    @property
    def completed(self) -> bool:
        """Tell whether the attempt has finished (answered or failed)."""
        return self.status_code is not None or self.error is not None


@dataclass
class RequestRecord:
    """One API request, as listed by `GET /_devhub/requests`."""

    id: int
    method: str
    path: str
    query: str
    status: int
    token_owner: str | None
    ms: float
    at: datetime
    # For installation tokens narrowed to some repositories (as the runner's is), their ids:
    # how the request log tells the app's calls from a runner's.
    token_repository_ids: tuple[int, ...] | None = None
    unimplemented: bool = False
    counted: bool = False
    fault: str | None = None


class State:
    """All of devhub's mutable state, with lookups and GitHub's permission rules."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.accounts: dict[str, Account] = {}  # by lower-cased login
        self.tokens: dict[str, Token] = {}
        self.org_members: dict[int, dict[int, OrgRole]] = {}  # org id -> user id -> role
        self.repos: dict[str, Repo] = {}  # by lower-cased full name
        self.installations: dict[int, Installation] = {}
        self.deliveries: list[Delivery] = []
        self.requests: list[RequestRecord] = []
        self.org_variables: dict[int, dict[str, Variable]] = {}  # org id -> name -> variable
        self.org_secrets: dict[int, dict[str, str]] = {}  # org id -> name -> value

    def next_id(self) -> int:
        """Allocate a fresh id; one sequence is enough for devhub."""
        return next(self._ids)

    # accounts

    def add_account(
        self, login: str, account_type: AccountType, *, name: str | None = None
    ) -> Account:
        """Create an account; the caller checks that the login is free."""
        account = Account(self.next_id(), login, account_type, utcnow(), name=name)
        self.accounts[login.casefold()] = account
        if account_type == "Organization":
            self.org_members[account.id] = {}
        return account

    def account(self, login: str) -> Account | None:
        """Find an account by login, case-insensitively."""
        return self.accounts.get(login.casefold())

    def account_by_id(self, account_id: int) -> Account | None:
        """Find an account by id."""
        return next((a for a in self.accounts.values() if a.id == account_id), None)

    def issue_user_token(self, account: Account) -> Token:
        """Mint a personal token (`ghp_...`) for a user or bot."""
        token = Token(mint_token("ghp_"), "user", account)
        self.tokens[token.value] = token
        return token

    def issue_installation_token(
        self,
        installation: Installation,
        bot: Account,
        *,
        expires_at: datetime,
        repository_ids: frozenset[int] | None,
        permissions: dict[str, str],
    ) -> Token:
        """Mint an installation access token (`ghs_...`) acting as the app's bot."""
        token = Token(
            mint_token("ghs_"),
            "installation",
            bot,
            installation=installation,
            expires_at=expires_at,
            repository_ids=repository_ids,
            permissions=permissions,
        )
        self.tokens[token.value] = token
        return token

    def org_role(self, org: Account, user: Account) -> OrgRole | None:
        """Return the user's role in an organization, if they are a member."""
        return self.org_members.get(org.id, {}).get(user.id)

    def add_repo(
        self, owner: Account, name: str, *, private: bool, description: str | None
    ) -> Repo:
        """Create a repository record; the caller creates the git repository."""
        now = utcnow()
        repo = Repo(self.next_id(), owner, name, private, description, now, now)
        self.repos[repo.full_name.casefold()] = repo
        return repo

    def repo(self, owner: str, name: str) -> Repo | None:
        """Find a repository by owner and name, case-insensitively."""
        return self.repos.get(f"{owner}/{name}".casefold())

    def repos_of(self, owner: Account) -> list[Repo]:
        """List an account's repositories, oldest first."""
        return [r for r in self.repos.values() if r.owner is owner]

    def role(self, user: Account, repo: Repo, *, include_public: bool = True) -> Role:
        """Return a person's role on a repository as GitHub computes it."""
        if user.site_admin or user is repo.owner:
            return Role.ADMIN
        role = repo.collaborators.get(user.id, Role.NONE)
        if repo.owner.type == "Organization":
            org_role = self.org_role(repo.owner, user)
            if org_role == "admin":
                return Role.ADMIN
            # Organization members get the base permission, GitHub's default is "read".
            if org_role == "member":
                role = max(role, Role.READ)
        if repo.private and repo.parent is not None:
            # "Private forks inherit the permissions structure of the upstream or parent
            # repository": https://docs.github.com/pull-requests/collaborating-with-pull-requests/working-with-forks/about-permissions-and-visibility-of-forks
            role = max(role, self.role(user, repo.parent, include_public=False))
        if include_public and not repo.private:
            role = max(role, Role.READ)
        return role

    # installations

    def installation_for(self, account: Account) -> Installation | None:
        """Find the app's installation on an account."""
        return next((i for i in self.installations.values() if i.account is account), None)

    def installation_repos(self, installation: Installation) -> list[Repo]:
        """List the repositories an installation can reach."""
        if installation.repository_selection == "all":
            return self.repos_of(installation.account)
        return [
            r for r in self.repos_of(installation.account) if r.id in installation.repository_ids
        ]

    def installation_covers(self, installation: Installation, repo: Repo) -> bool:
        """Tell whether an installation can reach a repository."""
        return any(r is repo for r in self.installation_repos(installation))


def permission_allows(granted: dict[str, str], name: str, level: str) -> bool:
    """Tell whether a permission set grants `name` at `level` (write implies read)."""
    have = APP_PERMISSION_LEVELS.get(granted.get(name, ""), 0)
    return have >= APP_PERMISSION_LEVELS[level]
