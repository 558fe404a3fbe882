"""BareRepo: the plumbing primitives GitStore builds GitHub's semantics from, for one repo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devhub.git_run import (
    GitResult,
    check_ref_name,
    checked,
    is_sha,
    parse_commit,
    parse_ls_tree,
    person_env,
    run_git,
)
from devhub.git_types import BadObject, BadRefName, FileChange, GitPerson, TreeEntry

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

# How often a writer decides again when other processes keep moving the ref it swaps.
MAX_CAS_ATTEMPTS = 50
BATCH_FIELDS = 3  # "<sha> <type> <size>" from cat-file --batch(-check); "<sha> missing" else


class BareRepo:
    """One bare repository on disk and the git environment its commands run with."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env

    async def run(
        self, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> GitResult:
        """Run git in this repository and return whatever happened."""
        return await run_git(self.path, args, env=env or self.env, stdin=stdin)

    async def git(self, *args: str, stdin: bytes | None = None) -> bytes:
        """Run git in this repository; raise GitError (with stderr) if it fails."""
        return checked(await self.run(*args, stdin=stdin), f"git {args[0]}")

    async def refs(self, prefix: str = "refs/", pattern: str | None = None) -> dict[str, str]:
        """Map refs whose name starts with prefix to the sha they point at."""
        # for-each-ref patterns match whole path components only ("refs/heads/co" matches
        # nothing), while GitHub matches plain prefixes, so filter by prefix ourselves.
        if pattern is None:
            pattern = prefix[: prefix.rfind("/") + 1]
        args = ["for-each-ref", "--format=%(objectname) %(refname)"]
        listing = await self.git(*args, *([pattern] if pattern else []))
        refs = {}
        for line in listing.decode().splitlines():
            sha, _, ref = line.partition(" ")
            if ref.startswith(prefix):
                refs[ref] = sha
        return refs

    async def read_ref(self, ref: str) -> str | None:
        """Return the sha of exactly this ref, or None."""
        try:
            check_ref_name(ref)
        except BadRefName:
            return None
        return (await self.refs(ref, pattern=ref)).get(ref)

    async def swap(self, ref: str, new: str, old: str) -> bool:
        """Set ref to new only if it is at old (ZERO_SHA: only if absent); tell if it did."""
        return (await self.run("update-ref", ref, new, old)).code == 0

    async def head_target(self) -> str:
        """Return the ref HEAD points at (the default branch), e.g. refs/heads/main."""
        return (await self.git("symbolic-ref", "HEAD")).decode().strip()

    async def ls_tree(
        self, tree: str, *, recursive: bool = False, prefix: str = ""
    ) -> list[TreeEntry]:
        """List a tree; recursive listings include the subtrees themselves, as GitHub's do."""
        flags = ["-r", "-t"] if recursive else []
        return parse_ls_tree(await self.git("ls-tree", "-z", "-l", *flags, tree), prefix)

    async def lookup(self, treeish: str, path: str) -> TreeEntry | None:
        """Return the entry at exactly path in treeish, or None."""
        listing = await self.git("ls-tree", "-z", "-l", treeish, "--", path)
        return next((entry for entry in parse_ls_tree(listing) if entry.path == path), None)

    async def hash_blob(self, content: bytes) -> str:
        """Write content as a blob and return its sha."""
        return (await self.git("hash-object", "-w", "--stdin", stdin=content)).decode().strip()

    async def commit(
        self,
        *,
        message: str,
        tree: str,
        parents: Sequence[str],
        author: GitPerson,
        committer: GitPerson,
    ) -> str:
        """Write a commit object with the message verbatim; BadObject for bad tree/parents."""
        if await self.object_type(tree) != "tree":
            raise BadObject("Tree SHA does not exist")
        for parent in parents:
            if not is_sha(parent):
                raise BadObject(
                    "Each SHA in the 'parents' parameter must be exactly 40 characters "
                    "and contain only [0-9a-f]."
                )
            if await self.object_type(parent) != "commit":
                raise BadObject(f"Parent SHA {parent} does not exist or is not a commit object")
        # Dates come from the request, never the clock, so equal input gives an equal sha.
        env = {**self.env, **person_env("AUTHOR", author), **person_env("COMMITTER", committer)}
        args = ["commit-tree", tree, *(arg for parent in parents for arg in ("-p", parent))]
        result = await self.run(*args, stdin=message.encode(), env=env)
        if result.code != 0:
            raise BadObject(f"cannot create commit: {result.stderr}")
        return result.stdout.decode().strip()

    async def object_types(self, shas: Iterable[str]) -> dict[str, str | None]:
        """Map each well-formed sha to its object type, or None when it is not here."""
        ordered = sorted({sha for sha in shas if is_sha(sha)})
        if not ordered:
            return {}
        stdin = "".join(f"{sha}\n" for sha in ordered).encode()
        listing = await self.git("cat-file", "--batch-check", stdin=stdin)
        types: dict[str, str | None] = {}
        for sha, line in zip(ordered, listing.decode().splitlines(), strict=True):
            fields = line.split()
            types[sha] = fields[1] if len(fields) == BATCH_FIELDS else None
        return types

    async def object_type(self, sha: str) -> str | None:
        """Return the type of the object sha, or None when it is malformed or absent."""
        return (await self.object_types([sha])).get(sha)

    async def read_object(self, sha: str) -> tuple[str, bytes] | None:
        """Return (type, raw content) of the object sha, or None."""
        if not is_sha(sha):
            return None
        raw = await self.git("cat-file", "--batch", stdin=f"{sha}\n".encode())
        header, _, rest = raw.partition(b"\n")
        fields = header.decode().split()
        if len(fields) != BATCH_FIELDS:
            return None
        return fields[1], rest[: int(fields[2])]

    async def peel(self, rev: str, kind: str) -> str | None:
        """Resolve rev and peel it to an object of kind (commit, tree), or None."""
        args = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{{kind}}}"]
        result = await self.run(*args)
        return result.stdout.decode().strip() if result.code == 0 else None

    async def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Tell whether ancestor is reachable from descendant."""
        return (await self.run("merge-base", "--is-ancestor", ancestor, descendant)).code == 0

    async def changes(self, sha: str) -> FileChange:
        """List the paths a commit added, removed and modified against its first parent."""
        commit = parse_commit(sha, await self.git("cat-file", "commit", sha))
        base = [commit.parents[0]] if commit.parents else ["--root"]
        args = ["diff-tree", "-r", "-z", "--no-renames", "--name-status", "--no-commit-id"]
        listing = (await self.git(*args, *base, sha)).decode(errors="surrogateescape")
        fields = listing.split("\0")
        changes: dict[str, list[str]] = {"A": [], "D": [], "M": []}
        for status, path in zip(fields[0::2], fields[1::2], strict=False):
            # Without rename detection only A, D, M and T (type change) occur; T is a change.
            changes[status if status in changes else "M"].append(path)
        return FileChange(tuple(changes["A"]), tuple(changes["D"]), tuple(changes["M"]))
