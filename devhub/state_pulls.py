"""devhub's model of pull requests and their reviews (plain data, like `devhub/state.py`).

A pull request is an `Issue` (it shares the repository's number sequence, labels and comments)
plus what only pull requests have: a head and a base branch, draft and merge state, reviews.
What git decides (commits, diff size, mergeability) is cached in `PullFacts` and refreshed by
`devhub/pulls.py` whenever the head or the base branch moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from devhub.state import Account, Issue, Reaction, Repo

ReviewState = Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "PENDING", "DISMISSED"]
Side = Literal["LEFT", "RIGHT"]


@dataclass
class PullFacts:
    """What git says about a pull request's branches, as of the last ref change."""

    base_sha: str
    commits: int = 0
    additions: int = 0
    deletions: int = 0
    changed_files: int = 0
    mergeable: bool | None = None


@dataclass(eq=False)
class Review:
    """A pull request review."""

    id: int
    user: Account
    body: str
    state: ReviewState
    commit_id: str
    submitted_at: datetime | None
    via_app: bool = False


@dataclass(frozen=True)
class DiffAnchor:
    """Where a review comment sits in a file's diff: its lines and its place in the patch."""

    path: str
    line: int
    side: Side
    start_line: int | None
    start_side: Side | None
    position: int  # lines below the file's first `@@` header, GitHub's legacy `position`
    diff_hunk: str  # the hunk's header and its lines up to the commented one


@dataclass(eq=False)
class ReviewComment:
    """A comment on a line of a pull request's diff; every one belongs to a review."""

    id: int
    review: Review
    user: Account
    body: str
    commit_id: str
    anchor: DiffAnchor
    created_at: datetime
    updated_at: datetime
    in_reply_to: ReviewComment | None = None  # the thread's first comment, for replies
    reactions: list[Reaction] = field(default_factory=list)

    @property
    def visible(self) -> bool:
        """Tell whether others see it (comments of a pending review are the author's draft)."""
        return self.review.state != "PENDING"


@dataclass(eq=False)
class PullRequest:
    """The pull-request half of an issue whose `is_pull_request` is true."""

    id: int
    issue: Issue
    head_repo: Repo  # the base repository itself, or a fork in its network
    head_ref: str
    head_sha: str
    base_ref: str
    facts: PullFacts
    draft: bool = False
    maintainer_can_modify: bool = False
    merged_at: datetime | None = None
    merged_by: Account | None = None
    merge_commit_sha: str | None = None
    reviews: list[Review] = field(default_factory=list)
    review_comments: list[ReviewComment] = field(default_factory=list)

    @property
    def number(self) -> int:
        """Return the number the pull request shares with its issue."""
        return self.issue.number

    @property
    def merged(self) -> bool:
        """Tell whether the pull request was merged."""
        return self.merged_at is not None

    @property
    def is_open(self) -> bool:
        """Tell whether the pull request is open."""
        return self.issue.state == "open"

    @property
    def hidden_ref(self) -> str:
        """Return the base repository's ref that keeps the head: `refs/pull/<number>/head`."""
        return f"refs/pull/{self.number}/head"
