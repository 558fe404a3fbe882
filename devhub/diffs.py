"""What changed between two commits, as GitHub's `files` lists show it (`diff-entry`).

Used by `GET .../pulls/{n}/files`, `GET .../commits/{ref}` and `GET .../compare/{basehead}`.
The raw output comes from `GitStore.diff_tree`; this module only parses and renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from devhub.git import ZERO_SHA

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.rest_json import JSON, Urls
    from devhub.state import Repo

STATUSES = {"A": "added", "D": "removed", "M": "modified", "T": "changed"}
# GitHub stops listing files at 3000 and leaves the patch out of very large diffs.
MAX_FILES = 3000
MAX_PATCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DiffEntry:
    """One changed file."""

    filename: str
    status: str
    sha: str
    additions: int
    deletions: int
    patch: str | None

    @property
    def changes(self) -> int:
        """Return additions plus deletions."""
        return self.additions + self.deletions


def _raw_entries(raw: bytes) -> list[tuple[str, str, str]]:
    """Parse `diff-tree -z --raw` into (status, path, new blob sha)."""
    fields = raw.decode(errors="surrogateescape").split("\0")
    entries = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        parts = meta[1:].split()
        old_sha, new_sha, status = parts[2], parts[3], parts[4]
        entries.append((status[0], path, new_sha if new_sha != ZERO_SHA else old_sha))
    return entries


def _numstat(raw: bytes) -> dict[str, tuple[int, int]]:
    counts = {}
    for record in raw.decode(errors="surrogateescape").split("\0"):
        added, _, rest = record.partition("\t")
        deleted, _, path = rest.partition("\t")
        if path:
            # Binary files show "-"; GitHub counts them as zero lines.
            counts[path] = (
                int(added) if added.isdigit() else 0,
                int(deleted) if deleted.isdigit() else 0,
            )
    return counts


def _patches(raw: bytes) -> list[str | None]:
    """Split `diff-tree -p` into one hunk text per file (None for binary files), in order."""
    patches: list[str | None] = []
    chunk: list[str] | None = None
    for line in raw.decode(errors="replace").split("\n"):
        if line.startswith("diff --git "):
            if chunk is not None:
                patches.append(_hunks(chunk))
            chunk = []
        elif chunk is not None:
            chunk.append(line)
    if chunk is not None:
        patches.append(_hunks(chunk))
    return patches


def _hunks(lines: list[str]) -> str | None:
    start = next((i for i, line in enumerate(lines) if line.startswith("@@")), None)
    if start is None:
        return None
    return "\n".join(lines[start:]).rstrip("\n")


async def diff_entries(ctx: Context, repo: Repo, base: str, head: str) -> list[DiffEntry]:
    """List the files that differ between two commits (base first), as GitHub does."""
    owner, name = repo.owner.login, repo.name
    raw = _raw_entries(await ctx.git.diff_tree(owner, name, base, head, "raw"))
    counts = _numstat(await ctx.git.diff_tree(owner, name, base, head, "numstat"))
    patch_text = await ctx.git.diff_tree(owner, name, base, head, "patch")
    patches = _patches(patch_text) if len(patch_text) <= MAX_PATCH_BYTES else []
    entries = []
    for index, (status, path, sha) in enumerate(raw[:MAX_FILES]):
        added, deleted = counts.get(path, (0, 0))
        patch = patches[index] if index < len(patches) else None
        entries.append(
            DiffEntry(path, STATUSES.get(status, "modified"), sha, added, deleted, patch)
        )
    return entries


def diff_entry_json(urls: Urls, repo: Repo, ref: str, entry: DiffEntry) -> JSON:
    """Render a `diff-entry`."""
    quoted = quote(entry.filename)
    body: JSON = {
        "sha": entry.sha,
        "filename": entry.filename,
        "status": entry.status,
        "additions": entry.additions,
        "deletions": entry.deletions,
        "changes": entry.changes,
        "blob_url": f"{urls.web}/{repo.full_name}/blob/{ref}/{quoted}",
        "raw_url": f"{urls.web}/{repo.full_name}/raw/{ref}/{quoted}",
        "contents_url": f"{urls.api}/repos/{repo.full_name}/contents/{quoted}?ref={ref}",
    }
    if entry.patch is not None:
        body["patch"] = entry.patch
    return body
