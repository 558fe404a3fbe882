"""The contents API's writes: one-file commits guarded by compare-and-swap on the branch.

https://docs.github.com/rest/repos/contents#create-or-update-file-contents: updating an
existing file needs its current blob sha (none sent: 422; a different one: 409); a sha sent
for a new file is ignored. Concurrent writers to other files of the same branch must not lose
each other's commits, so a moved branch means rebuilding on the new head, not failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devhub.git_repo import MAX_CAS_ATTEMPTS
from devhub.git_run import split_path
from devhub.git_trees import Leaf, TreeBuilder
from devhub.git_types import (
    ZERO_SHA,
    BadObject,
    GitError,
    GitPerson,
    PathNotFound,
    RefNotFound,
    ShaMismatch,
    TreeEntry,
)

if TYPE_CHECKING:
    import asyncio

    from devhub.git_repo import BareRepo

FILE_MODE = "100644"


@dataclass(frozen=True)
class FileCommit:
    """Where and as whom a one-file change is committed."""

    branch: str
    path: str
    message: str
    author: GitPerson
    committer: GitPerson


async def write_file(
    repo: BareRepo,
    lock: asyncio.Lock,
    change: FileCommit,
    content: bytes,
    expected_sha: str | None,
) -> tuple[str, str]:
    """Create or update one file and return (commit_sha, blob_sha)."""
    parts = split_path(change.path)
    if not parts:
        raise BadObject("path is required")
    clean = "/".join(parts)
    blob = await repo.hash_blob(content)
    for _attempt in range(MAX_CAS_ATTEMPTS):
        ref, head = await _branch_head(repo, change.branch, allow_unborn=True)
        current = await repo.lookup(head, clean) if head else None
        mode = FILE_MODE
        if current is not None:
            _require_file(current, clean)
            if expected_sha != current.sha:
                raise ShaMismatch(clean, expected=expected_sha, actual=current.sha)
            mode = current.mode  # keep an executable bit or a symlink as it was
        leaf = (mode, "blob", blob)
        if commit := await _commit_on(
            repo, lock, ref=ref, head=head, change=change, parts=parts, leaf=leaf
        ):
            return commit, blob
        # The branch moved: go round again, which rebuilds on the new head if the file still
        # has the sha the caller expects and raises ShaMismatch if it does not.
    raise GitError(f"branch {change.branch} kept changing; gave up after {MAX_CAS_ATTEMPTS} tries")


async def delete_file(
    repo: BareRepo, lock: asyncio.Lock, change: FileCommit, expected_sha: str
) -> str:
    """Delete one file and return the new commit sha."""
    parts = split_path(change.path)
    clean = "/".join(parts)
    for _attempt in range(MAX_CAS_ATTEMPTS):
        ref, head = await _branch_head(repo, change.branch, allow_unborn=False)
        assert head is not None
        current = await repo.lookup(head, clean) if parts else None
        if current is None:
            raise PathNotFound(f"{clean} not found on {change.branch}")
        _require_file(current, clean)
        if expected_sha != current.sha:
            raise ShaMismatch(clean, expected=expected_sha, actual=current.sha)
        if commit := await _commit_on(
            repo, lock, ref=ref, head=head, change=change, parts=parts, leaf=None
        ):
            return commit
    raise GitError(f"branch {change.branch} kept changing; gave up after {MAX_CAS_ATTEMPTS} tries")


async def _branch_head(
    repo: BareRepo, branch: str, *, allow_unborn: bool
) -> tuple[str, str | None]:
    ref = f"refs/heads/{branch}"
    head = await repo.read_ref(ref)
    if head is not None:
        return ref, head
    # GitHub lets the first file of an empty repository create its default branch.
    if allow_unborn and not await repo.refs() and await repo.head_target() == ref:
        return ref, None
    raise RefNotFound(f"Branch {branch} not found")


async def _commit_on(
    repo: BareRepo,
    lock: asyncio.Lock,
    *,
    ref: str,
    head: str | None,
    change: FileCommit,
    parts: tuple[str, ...],
    leaf: Leaf | None,
) -> str | None:
    """Commit leaf at parts (None deletes) on top of head; swap ref, or None if ref moved."""
    builder = TreeBuilder(repo.path, repo.env, await repo.peel(head, "tree") if head else None)
    if leaf is None:
        await builder.delete(parts)
    else:
        await builder.set(parts, leaf)
    commit = await repo.commit(
        message=change.message,
        tree=await builder.write(),
        parents=[head] if head else [],
        author=change.author,
        committer=change.committer,
    )
    async with lock:
        swapped = await repo.swap(ref, commit, head or ZERO_SHA)
    return commit if swapped else None


def _require_file(entry: TreeEntry, path: str) -> None:
    if entry.type != "blob":
        kind = "a directory" if entry.type == "tree" else "a submodule"
        raise BadObject(f"{path} is {kind}, not a file")
