"""Value types and typed errors of devhub's git layer (re-exported by `devhub.git`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class GitPerson:
    """An author or committer: name, email and an ISO-8601 date ending in 'Z'."""

    name: str
    email: str
    date: str


@dataclass(frozen=True)
class GitCommit:
    """A parsed commit object."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    message: str
    author: GitPerson
    committer: GitPerson


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree listing; `size` is None for trees and submodules."""

    path: str
    mode: str
    type: str
    sha: str
    size: int | None


@dataclass(frozen=True)
class RefUpdate:
    """One ref moved by a push; `before`/`after` are ZERO_SHA for a create/delete."""

    ref: str
    before: str
    after: str


@dataclass(frozen=True)
class FileChange:
    """Paths a commit added, removed and modified relative to its first parent."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]


class GitError(Exception):
    """A git operation failed; the message carries git's stderr where there was one."""


class RepoNotFound(GitError):  # noqa: N818 - name is part of the GitStore interface
    """The repository does not exist on disk."""


class RepoExists(GitError):  # noqa: N818 - name is part of the GitStore interface
    """A repository with that owner and name already exists on disk."""


class RefExists(GitError):  # noqa: N818 - name is part of the GitStore interface
    """create_ref: the ref (or a ref it would collide with, like `a` for `a/b`) exists."""


class RefNotFound(GitError):  # noqa: N818 - name is part of the GitStore interface
    """The ref or branch does not exist."""


class NotFastForward(GitError):  # noqa: N818 - name is part of the GitStore interface
    """update_ref without force: the new sha does not descend from the current one."""


class ObjectNotFound(GitError):  # noqa: N818 - name is part of the GitStore interface
    """No object of the expected kind has that sha (or the rev names nothing)."""


class PathNotFound(GitError):  # noqa: N818 - name is part of the GitStore interface
    """No file or directory at that path in that revision."""


class BadObject(GitError):  # noqa: N818 - name is part of the GitStore interface
    """The request names objects, modes, types or paths that cannot form valid git objects."""


class BadRefName(BadObject):
    """The ref name is not a valid, fully qualified git ref under refs/."""


class ShaMismatch(GitError):  # noqa: N818 - name is part of the GitStore interface
    """Contents-API compare-and-swap failed for an existing file.

    `reason` is "missing" when the caller sent no sha for a file that exists (GitHub answers
    422), and "stale" when the sha it sent is not the file's current blob sha (GitHub: 409).
    The message is GitHub's own wording for each case.
    """

    def __init__(self, path: str, *, expected: str | None, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        self.reason: Literal["missing", "stale"] = "missing" if not expected else "stale"
        if self.reason == "missing":
            message = 'Invalid request.\n\n"sha" wasn\'t supplied.'
        else:
            message = f"{path} does not match {expected}"
        super().__init__(message)

    @property
    def missing(self) -> bool:
        """Tell whether the caller sent no sha at all."""
        return self.reason == "missing"

    @property
    def stale(self) -> bool:
        """Tell whether the caller sent a sha that is not the file's current one."""
        return self.reason == "stale"
