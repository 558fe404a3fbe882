"""GitHub's create-tree semantics on top of `git ls-tree` / `git mktree`.

https://docs.github.com/rest/git/trees#create-a-tree: entries carry a path that may contain
'/', a mode, a type, and either a sha or inline content; `sha: null` deletes the path (a file
or a whole directory) from `base_tree`; later entries win over earlier ones. Nested paths
produce nested trees, and directories left empty by deletions disappear, as they do in git.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devhub.git_run import TREE_MODES, checked, is_sha, parse_ls_tree, run_git, split_path
from devhub.git_types import BadObject

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

# mode, type, sha of one tree entry as git stores it
Leaf = tuple[str, str, str]
TREE_MODE = "040000"


@dataclass(frozen=True)
class EntrySpec:
    """One validated entry of a create-tree request."""

    path: str
    parts: tuple[str, ...]
    mode: str | None
    type: str | None
    sha: str | None
    content: bytes | None

    @property
    def deletes(self) -> bool:
        """Tell whether this entry removes its path (sha null, no content)."""
        return self.sha is None and self.content is None


def parse_tree_entries(entries: Sequence[Mapping[str, object]]) -> list[EntrySpec]:
    """Validate create-tree entries, raising BadObject with a message naming the problem."""
    return [_parse_entry(entry) for entry in entries]


def _parse_entry(entry: Mapping[str, object]) -> EntrySpec:
    if not isinstance(entry, Mapping):
        raise BadObject("each tree entry must be an object")
    path = entry.get("path")
    if not isinstance(path, str) or not path.strip("/"):
        raise BadObject("tree.path is required")
    parts = split_path(path)
    sha = entry.get("sha")
    content = _content_bytes(path, entry.get("content"))
    if sha is not None and content is not None:
        raise BadObject(f"tree.sha and tree.content cannot both be given (tree.path {path!r})")
    if sha is None and content is None:
        if "sha" not in entry:
            raise BadObject(f"Must supply either tree.sha or tree.content for tree.path {path!r}")
        # Deleting: GitHub ignores mode and type here.
        return EntrySpec(path, parts, None, None, None, None)
    mode, kind = _mode_and_type(path, entry.get("mode"), entry.get("type"))
    if content is not None and kind != "blob":
        raise BadObject(f"tree.content needs a blob mode, not {mode} (tree.path {path!r})")
    if sha is not None and not is_sha(sha):
        raise BadObject(f"tree.sha {sha!r} is not a valid {kind}: expected 40 hex characters")
    return EntrySpec(path, parts, mode, kind, sha if isinstance(sha, str) else None, content)


def _content_bytes(path: str, content: object) -> bytes | None:
    if content is None or isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode()
    raise BadObject(f"tree.content must be a string (tree.path {path!r})")


def _mode_and_type(path: str, mode: object, kind: object) -> tuple[str, str]:
    # git writes directory modes as "40000"; GitHub documents "040000". Accept both.
    normal = TREE_MODE if mode == "40000" else mode
    if not isinstance(normal, str) or normal not in TREE_MODES:
        allowed = ", ".join(TREE_MODES)
        raise BadObject(f"tree.mode {mode!r} is not one of {allowed} (tree.path {path!r})")
    expected = TREE_MODES[normal]
    if kind is None:
        return normal, expected
    if kind not in {"blob", "tree", "commit"}:
        raise BadObject(f"tree.type {kind!r} is not one of blob, tree, commit (tree.path {path!r})")
    if kind != expected:
        raise BadObject(
            f"tree.type {kind!r} does not match tree.mode {normal} (needs {expected!r}) "
            f"(tree.path {path!r})"
        )
    return normal, expected


class _Dir:
    """A directory being edited: name -> leaf entry or an already-expanded subdirectory."""

    __slots__ = ("entries",)

    def __init__(self, entries: dict[str, Leaf | _Dir]) -> None:
        self.entries = entries


class TreeBuilder:
    """Apply path edits to a base tree and write the resulting trees bottom-up."""

    def __init__(self, git_dir: Path, env: Mapping[str, str], base_tree: str | None) -> None:
        self._git_dir = git_dir
        self._env = env
        self._base_tree = base_tree
        self._root: _Dir | None = None

    async def set(self, parts: Sequence[str], leaf: Leaf) -> None:
        """Put leaf at the path, creating intermediate directories."""
        node = await self._root_dir()
        for depth in range(len(parts) - 1):
            child = await self._child(node, parts, depth, create=True)
            assert child is not None
            node = child
        node.entries[parts[-1]] = leaf

    async def delete(self, parts: Sequence[str]) -> None:
        """Remove the file or directory at the path; a path that is not there is a no-op."""
        node: _Dir | None = await self._root_dir()
        for depth in range(len(parts) - 1):
            assert node is not None
            node = await self._child(node, parts, depth, create=False)
            if node is None:
                return
        assert node is not None
        node.entries.pop(parts[-1], None)

    async def write(self) -> str:
        """Write every edited tree and return the root tree's sha."""
        root = await self._root_dir()
        sha = await self._write(root)
        return sha if sha is not None else await self._mktree([])

    async def _root_dir(self) -> _Dir:
        if self._root is None:
            self._root = await self._load(self._base_tree) if self._base_tree else _Dir({})
        return self._root

    async def _child(
        self, node: _Dir, parts: Sequence[str], depth: int, *, create: bool
    ) -> _Dir | None:
        name = parts[depth]
        child = node.entries.get(name)
        if child is None:
            if not create:
                return None
            child = node.entries[name] = _Dir({})
            return child
        if isinstance(child, _Dir):
            return child
        _mode, kind, sha = child
        if kind != "tree":
            if not create:
                return None
            inside = "/".join(parts[: depth + 1])
            raise BadObject(
                f"tree.path {'/'.join(parts)!r} goes through {inside!r}, which is a {kind}"
            )
        loaded = node.entries[name] = await self._load(sha)
        return loaded

    async def _load(self, tree_sha: str) -> _Dir:
        listing = checked(
            await run_git(self._git_dir, ["ls-tree", "-z", "-l", tree_sha], env=self._env),
            f"ls-tree {tree_sha}",
        )
        return _Dir(
            {entry.path: (entry.mode, entry.type, entry.sha) for entry in parse_ls_tree(listing)}
        )

    async def _write(self, node: _Dir) -> str | None:
        rows: list[tuple[str, str, str, str]] = []
        for name, child in node.entries.items():
            if isinstance(child, _Dir):
                sha = await self._write(child)
                if sha is not None:
                    rows.append((TREE_MODE, "tree", sha, name))
            else:
                rows.append((*child, name))
        if not rows:
            return None  # git has no empty directories
        return await self._mktree(rows)

    async def _mktree(self, rows: Sequence[tuple[str, str, str, str]]) -> str:
        # mktree sorts entries itself and accepts gitlinks whose commit is not in this repo.
        data = b"".join(
            f"{mode} {kind} {sha}\t{name}\0".encode(errors="surrogateescape")
            for mode, kind, sha, name in rows
        )
        result = await run_git(self._git_dir, ["mktree", "-z"], env=self._env, stdin=data)
        if result.code != 0:
            raise BadObject(f"cannot write tree: {result.stderr}")
        return result.stdout.decode().strip()
