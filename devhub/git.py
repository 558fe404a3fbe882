"""GitStore: devhub's real bare repositories, with GitHub's git-data and contents semantics.

Every repository lives at `<root>/<owner>/<name>.git` and is driven by git's plumbing
(devhub/git_repo.py). Refs move only through `git update-ref <ref> <new> <old>`, git's own
compare-and-swap; a per-repository asyncio.Lock also serialises ref updates inside this process,
so check-then-swap steps (fast-forward checks, push snapshots) see a stable ref. Smart HTTP is
served by `git http-backend` (devhub/git_http.py).
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING

from devhub import git_contents, git_http
from devhub.git_contents import FILE_MODE, FileCommit
from devhub.git_repo import MAX_CAS_ATTEMPTS, BareRepo
from devhub.git_run import (
    OWNER_RE,
    REPO_NAME_RE,
    SHORT_SHA_RE,
    check_ref_name,
    checked,
    git_env,
    is_sha,
    now_iso,
    parse_commit,
    run_git,
    split_path,
)
from devhub.git_trees import TreeBuilder, parse_tree_entries
from devhub.git_types import (
    ZERO_SHA,
    BadObject,
    BadRefName,
    FileChange,
    GitCommit,
    GitError,
    GitPerson,
    NotFastForward,
    ObjectNotFound,
    PathNotFound,
    RefExists,
    RefNotFound,
    RefUpdate,
    RepoExists,
    RepoNotFound,
    ShaMismatch,
    TreeEntry,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from aiohttp import web

__all__ = [
    "ZERO_SHA",
    "BadObject",
    "BadRefName",
    "FileChange",
    "GitCommit",
    "GitError",
    "GitPerson",
    "GitStore",
    "NotFastForward",
    "ObjectNotFound",
    "PathNotFound",
    "RefExists",
    "RefNotFound",
    "RefUpdate",
    "RepoExists",
    "RepoNotFound",
    "ShaMismatch",
    "TreeEntry",
]

DEFAULT_AUTHOR_NAME = "devhub"
DEFAULT_AUTHOR_EMAIL = "devhub@users.noreply.localhost"
SUBMODULE_MODE = "160000"


class GitStore:
    """Bare repositories under one root directory, with GitHub's git-data semantics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._home = root / ".home"
        self._env = git_env(self._home)
        self._http_env = {
            allow: git_env(self._home, git_http.backend_config(allow_push=allow))
            for allow in (False, True)
        }
        self._locks: dict[Path, asyncio.Lock] = {}
        self._http_backend: str | None = None

    def repo_path(self, owner: str, name: str) -> Path:
        """Return root/owner/name.git; raise ValueError for names GitHub would not allow."""
        valid = OWNER_RE.fullmatch(owner) and REPO_NAME_RE.fullmatch(name)
        if not valid or name in {".", ".."}:
            raise ValueError(f"invalid repository name {owner}/{name}")
        return self.root / owner / f"{name}.git"

    # -- repositories --------------------------------------------------------------------

    async def init_repo(
        self,
        owner: str,
        name: str,
        *,
        default_branch: str = "main",
        initial_files: Mapping[str, bytes] | None = None,
        author: GitPerson | None = None,
        message: str = "Initial commit",
    ) -> str | None:
        """Create a bare repository; commit initial_files to the default branch if given."""
        path = self.repo_path(owner, name)
        check_ref_name(f"refs/heads/{default_branch}")
        self._home.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()  # claims the name atomically; `git init` would silently reinitialise
        except FileExistsError:
            raise RepoExists(f"repository {owner}/{name} already exists") from None
        init = ["init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path)]
        result = await run_git(None, init, env=self._env)
        if result.code != 0:
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
            raise GitError(f"git init failed: {result.stderr}")
        if not initial_files:
            return None
        entries = [{"path": p, "mode": FILE_MODE, "content": c} for p, c in initial_files.items()]
        tree = await self.create_tree(owner, name, entries, None)
        person = author or GitPerson(DEFAULT_AUTHOR_NAME, DEFAULT_AUTHOR_EMAIL, now_iso())
        commit = await self.create_commit(
            owner, name, message=message, tree=tree, parents=[], author=person, committer=person
        )
        await self.create_ref(owner, name, f"refs/heads/{default_branch}", commit)
        return commit

    async def fork_repo(
        self,
        parent: tuple[str, str],
        owner: str,
        name: str,
        *,
        default_branch: str,
        default_branch_only: bool = False,
    ) -> None:
        """Create owner/name as a fork: a new repository holding the parent's branches and tags.

        With `default_branch_only`, only that branch is copied. RepoExists if the name is taken.
        """
        source = self._repo(*parent)
        await self.init_repo(owner, name, default_branch=default_branch)
        fork = self._repo(owner, name)
        if default_branch_only:
            ref = f"refs/heads/{default_branch}"
            refspecs = [f"+{ref}:{ref}"] if await source.read_ref(ref) is not None else []
        else:
            refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        if refspecs and await source.refs():
            await fork.git(
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                str(source.path),
                *refspecs,
            )

    async def fetch_commit(self, owner: str, name: str, source: tuple[str, str], sha: str) -> None:
        """Copy a commit and its history from another repository, as a fork's shared objects are.

        On GitHub a fork network shares one object store, so a fork's commits are readable in
        its parent; devhub's repositories are separate and copy what a pull request brings.
        """
        repo = self._repo(owner, name)
        other = self._repo(*source)
        if not is_sha(sha) or await other.object_type(sha) != "commit":
            raise ObjectNotFound(f"No commit found for SHA: {sha}")
        if await repo.object_type(sha) == "commit":
            return
        fetch = ("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(other.path), sha)
        # A sha is not an advertised ref; the local upload-pack must be told to serve it.
        await repo.git("-c", "uploadpack.allowAnySHA1InWant=true", *fetch)

    async def write_hidden_ref(self, owner: str, name: str, ref: str, sha: str) -> None:
        """Point a ref outside refs/heads and refs/tags (`refs/pull/N/head`) at sha.

        Only devhub writes these: pushes cannot (receive-pack hides them), and push snapshots
        ignore them, so no lock is needed and none is taken (a push may be holding it).
        """
        if ref.startswith(git_http.PUSHABLE_PREFIXES):
            raise BadRefName(f"{ref} is not a hidden ref")
        check_ref_name(ref)
        repo = self._repo(owner, name)
        if await repo.object_type(sha) is None:
            raise ObjectNotFound(f"Object does not exist: {sha}")
        await repo.git("update-ref", ref, sha)

    async def delete_repo(self, owner: str, name: str) -> None:
        """Delete the repository from disk (a missing repository is not an error)."""
        path = self.repo_path(owner, name)
        self._locks.pop(path, None)
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path)

    async def is_empty(self, owner: str, name: str) -> bool:
        """Tell whether the repository has no refs (GitHub: 409 "Git Repository is empty.")."""
        return not await self._repo(owner, name).refs()

    async def set_default_branch(self, owner: str, name: str, branch: str) -> None:
        """Point HEAD at refs/heads/<branch>, which is what clones check out."""
        ref = f"refs/heads/{branch}"
        check_ref_name(ref)
        await self._repo(owner, name).git("symbolic-ref", "HEAD", ref)

    # -- refs ----------------------------------------------------------------------------

    async def list_refs(self, owner: str, name: str, prefix: str = "refs/") -> dict[str, str]:
        """Map every ref starting with prefix (a plain string prefix, like GitHub) to its sha."""
        return await self._repo(owner, name).refs(prefix)

    async def get_ref(self, owner: str, name: str, ref: str) -> str:
        """Return the sha a fully qualified ref points at; RefNotFound if there is none."""
        sha = await self._repo(owner, name).read_ref(ref)
        if sha is None:
            raise RefNotFound(f"{ref} does not exist")
        return sha

    async def create_ref(self, owner: str, name: str, ref: str, sha: str) -> None:
        """Create ref at sha atomically; RefExists if it exists, ObjectNotFound if sha does not."""
        repo = self._repo(owner, name)
        check_ref_name(ref)
        if await repo.object_type(sha) is None:
            raise ObjectNotFound(f"Object does not exist: {sha}")
        async with self._lock(repo):
            result = await repo.run("update-ref", ref, sha, ZERO_SHA)
        if result.code != 0:
            # Either the ref exists or a ref it collides with does (refs/heads/a vs a/b).
            raise RefExists(f"Reference already exists: {result.stderr}")

    async def update_ref(self, owner: str, name: str, ref: str, sha: str, *, force: bool) -> str:
        """Move ref to sha and return the previous sha; NotFastForward unless force."""
        repo = self._repo(owner, name)
        if await repo.object_type(sha) is None:
            raise ObjectNotFound(f"Object does not exist: {sha}")
        for _attempt in range(MAX_CAS_ATTEMPTS):
            async with self._lock(repo):
                current = await repo.read_ref(ref)
                if current is None:
                    raise RefNotFound(f"Reference does not exist: {ref}")
                if not force and not await repo.is_ancestor(current, sha):
                    raise NotFastForward(f"Update is not a fast forward: {ref} is at {current}")
                if await repo.swap(ref, sha, current):
                    return current
            # Another process moved the ref between our read and our swap: decide again.
        raise GitError(f"{ref} kept changing; gave up after {MAX_CAS_ATTEMPTS} attempts")

    async def delete_ref(self, owner: str, name: str, ref: str) -> str:
        """Delete ref and return the sha it pointed at; RefNotFound if there is none."""
        repo = self._repo(owner, name)
        for _attempt in range(MAX_CAS_ATTEMPTS):
            async with self._lock(repo):
                current = await repo.read_ref(ref)
                if current is None:
                    raise RefNotFound(f"Reference does not exist: {ref}")
                if (await repo.run("update-ref", "-d", ref, current)).code == 0:
                    return current
        raise GitError(f"{ref} kept changing; gave up after {MAX_CAS_ATTEMPTS} attempts")

    # -- objects -------------------------------------------------------------------------

    async def create_blob(self, owner: str, name: str, content: bytes) -> str:
        """Store content as a blob and return its sha."""
        return await self._repo(owner, name).hash_blob(content)

    async def get_blob(self, owner: str, name: str, sha: str) -> bytes:
        """Return a blob's content; ObjectNotFound if sha is not a blob here."""
        found = await self._repo(owner, name).read_object(sha)
        if found is None or found[0] != "blob":
            raise ObjectNotFound(f"No blob found for SHA: {sha}")
        return found[1]

    async def create_tree(
        self,
        owner: str,
        name: str,
        entries: Sequence[Mapping[str, object]],
        base_tree: str | None,
    ) -> str:
        """Create a tree with GitHub's create-tree semantics and return its sha."""
        repo = self._repo(owner, name)
        specs = parse_tree_entries(entries)
        if base_tree is not None and await repo.object_type(base_tree) != "tree":
            raise BadObject(f"base_tree {base_tree} is not a valid tree oid")
        # Submodule commits live in another repository, so only other shas must exist here.
        types = await repo.object_types(
            spec.sha for spec in specs if spec.sha and spec.mode != SUBMODULE_MODE
        )
        builder = TreeBuilder(repo.path, repo.env, base_tree)
        for spec in specs:
            if spec.deletes:
                await builder.delete(spec.parts)
                continue
            assert spec.mode is not None
            assert spec.type is not None
            if spec.content is not None:
                sha = await repo.hash_blob(spec.content)
            else:
                assert spec.sha is not None
                sha = spec.sha
                if spec.mode != SUBMODULE_MODE and types.get(sha) != spec.type:
                    raise BadObject(f"tree.sha {sha} is not a valid {spec.type}")
            await builder.set(spec.parts, (spec.mode, spec.type, sha))
        return await builder.write()

    async def get_tree(
        self, owner: str, name: str, sha: str, *, recursive: bool
    ) -> list[TreeEntry]:
        """List a tree given its sha, or anything that peels to one (commit, tag, branch)."""
        repo = self._repo(owner, name)
        treeish = sha if is_sha(sha) else await self.resolve(owner, name, sha)
        tree = await repo.peel(treeish, "tree")
        if tree is None:
            raise ObjectNotFound(f"No tree found for {sha}")
        return await repo.ls_tree(tree, recursive=recursive)

    async def create_commit(
        self,
        owner: str,
        name: str,
        *,
        message: str,
        tree: str,
        parents: Sequence[str],
        author: GitPerson,
        committer: GitPerson,
    ) -> str:
        """Write a commit object (message stored verbatim) and return its sha."""
        return await self._repo(owner, name).commit(
            message=message, tree=tree, parents=parents, author=author, committer=committer
        )

    async def get_commit(self, owner: str, name: str, sha: str) -> GitCommit:
        """Read and parse a commit; ObjectNotFound if sha is not a commit here."""
        found = await self._repo(owner, name).read_object(sha)
        if found is None or found[0] != "commit":
            raise ObjectNotFound(f"No commit found for SHA: {sha}")
        return parse_commit(sha, found[1])

    async def resolve(self, owner: str, name: str, rev: str) -> str:
        """Turn a branch name, full ref, tag name or (short) sha into a commit sha."""
        repo = self._repo(owner, name)
        refs = [rev] if rev.startswith("refs/") else [f"refs/heads/{rev}", f"refs/tags/{rev}"]
        for ref in refs:
            target = await repo.read_ref(ref)
            if target is not None and (commit := await repo.peel(target, "commit")):
                return commit
        # Only hex reaches rev-parse, so no revision syntax (a..b, x:path, @{u}) slips in.
        if SHORT_SHA_RE.fullmatch(rev) and (commit := await repo.peel(rev, "commit")):
            return commit
        raise ObjectNotFound(f"No commit found for the ref {rev}")

    # -- contents ------------------------------------------------------------------------

    async def read_path(
        self, owner: str, name: str, rev: str, path: str
    ) -> tuple[str, bytes | list[TreeEntry], str]:
        """Return ("file", content, blob_sha) or ("dir", entries, tree_sha) at rev:path.

        Directory entries carry paths from the repository root (like the contents API's
        `path`; the name is the last component). Symlinks read as files whose content is the
        link target. Submodules and missing paths raise PathNotFound; an unknown rev raises
        ObjectNotFound.
        """
        repo = self._repo(owner, name)
        commit = await self.resolve(owner, name, rev)
        try:
            parts = split_path(path)
        except BadObject:
            raise PathNotFound(f"{path} not found in {rev}") from None
        if not parts:
            tree = await repo.peel(commit, "tree")
            assert tree is not None
            return "dir", await repo.ls_tree(tree), tree
        clean = "/".join(parts)
        entry = await repo.lookup(commit, clean)
        if entry is None or entry.type == "commit":
            raise PathNotFound(f"{clean} not found in {rev}")
        if entry.type == "tree":
            return "dir", await repo.ls_tree(entry.sha, prefix=clean), entry.sha
        return "file", await self.get_blob(owner, name, entry.sha), entry.sha

    async def write_file(
        self,
        owner: str,
        name: str,
        *,
        branch: str,
        path: str,
        content: bytes,
        message: str,
        expected_sha: str | None,
        author: GitPerson,
        committer: GitPerson,
    ) -> tuple[str, str]:
        """Create or update one file on a branch, contents-API style; return (commit, blob)."""
        repo = self._repo(owner, name)
        change = FileCommit(branch, path, message, author, committer)
        return await git_contents.write_file(repo, self._lock(repo), change, content, expected_sha)

    async def delete_file(
        self,
        owner: str,
        name: str,
        *,
        branch: str,
        path: str,
        message: str,
        expected_sha: str,
        author: GitPerson,
        committer: GitPerson,
    ) -> str:
        """Delete one file on a branch, contents-API style; return the new commit sha."""
        repo = self._repo(owner, name)
        change = FileCommit(branch, path, message, author, committer)
        return await git_contents.delete_file(repo, self._lock(repo), change, expected_sha)

    # -- history -------------------------------------------------------------------------

    async def is_ancestor(self, owner: str, name: str, ancestor: str, descendant: str) -> bool:
        """Tell whether ancestor is reachable from descendant (a commit is its own ancestor)."""
        repo = self._repo(owner, name)
        for sha in (ancestor, descendant):
            if not is_sha(sha) or await repo.peel(sha, "commit") is None:
                raise ObjectNotFound(f"No commit found for SHA: {sha}")
        return await repo.is_ancestor(ancestor, descendant)

    async def commits_between(
        self,
        owner: str,
        name: str,
        before: str,
        after: str,
        limit: int = 20,
        *,
        exclude: Sequence[str] = (),
    ) -> list[tuple[GitCommit, FileChange]]:
        """List the newest `limit` commits reachable from after but not before, oldest first.

        For a new branch (before == ZERO_SHA) pass the other branch heads as `exclude` so
        only the commits the push brought are listed, as in a push event.
        """
        repo = self._repo(owner, name)
        if after == ZERO_SHA or limit <= 0:
            return []
        hidden = [sha for sha in (before, *exclude) if sha != ZERO_SHA]
        types = await repo.object_types([after, *hidden])
        for sha in (after, *hidden):
            if types.get(sha) is None:
                raise ObjectNotFound(f"No commit found for SHA: {sha}")
        args = ["rev-list", "--topo-order", f"--max-count={limit}", after, "--not", *hidden]
        shas = (await repo.git(*args, "--")).decode().split()[::-1]
        return [(await self.get_commit(owner, name, sha), await repo.changes(sha)) for sha in shas]

    async def merge_base(self, owner: str, name: str, one: str, other: str) -> str | None:
        """Return the best common ancestor of two commits, or None when they share none."""
        repo = self._repo(owner, name)
        for sha in (one, other):
            if not is_sha(sha):
                raise ObjectNotFound(f"No commit found for SHA: {sha}")
        result = await repo.run("merge-base", one, other)
        if result.code != 0:
            return None  # unrelated histories
        return result.stdout.decode().strip() or None

    async def merge_trees(self, owner: str, name: str, ours: str, theirs: str) -> str | None:
        """Merge two commits in memory (`git merge-tree --write-tree`); None on conflicts.

        The merge base is the one git finds; pass a synthetic `ours` whose parent is the base
        you want to cherry-pick with an explicit base.
        """
        repo = self._repo(owner, name)
        for sha in (ours, theirs):
            if not is_sha(sha):
                raise ObjectNotFound(f"No commit found for SHA: {sha}")
        args = ("merge-tree", "--write-tree", "--no-messages", "--allow-unrelated-histories")
        result = await repo.run(*args, ours, theirs)
        if result.code == 0:
            return result.stdout.decode().split("\n", 1)[0].strip()
        if result.code == 1:
            return None  # conflicts
        raise GitError(f"git merge-tree failed: {result.stderr}")

    async def diff_tree(self, owner: str, name: str, base: str, head: str, mode: str) -> bytes:
        """Return `git diff-tree -r --no-renames` between two commits: `raw`, `numstat`, `patch`."""
        flags = {"raw": ["-z", "--raw"], "numstat": ["-z", "--numstat"], "patch": ["-p"]}[mode]
        repo = self._repo(owner, name)
        for sha in (base, head):
            if not is_sha(sha):
                raise ObjectNotFound(f"No commit found for SHA: {sha}")
        return await repo.git(
            "diff-tree", "-r", "--no-renames", "--no-commit-id", *flags, base, head
        )

    # -- smart HTTP ----------------------------------------------------------------------

    async def serve_smart_http(
        self,
        request: web.Request,
        owner: str,
        name: str,
        *,
        remote_user: str,
        allow_push: bool,
        on_updates: Callable[[list[RefUpdate]], Awaitable[None]] | None = None,
    ) -> tuple[web.StreamResponse, list[RefUpdate]]:
        """Answer a smart-HTTP git request and list the refs a push moved.

        `on_updates` runs with the moved refs before git's report reaches the client, so its
        effects are in place when `git push` returns.
        """
        tail = request.match_info.get("tail", "")
        try:
            repo = self._repo(owner, name)
        except (ValueError, RepoNotFound):
            return git_http.text_response(404, "Repository not found."), []
        service = git_http.requested_service(tail, request.query)
        if service is None:
            return git_http.text_response(404, "Not Found"), []
        if service == git_http.RECEIVE_PACK and not allow_push:
            # GitHub's wording; git shows it as "remote: Permission to o/r.git denied to u."
            message = f"Permission to {owner}/{name}.git denied to {remote_user}."
            return git_http.text_response(403, message), []
        argv = [await self._http_backend_path()]
        env = git_http.cgi_env(
            self._http_env[allow_push],
            request,
            project_root=self.root,
            path_info=f"/{owner}/{name}.git/{tail}",
            remote_user=remote_user,
        )
        if service == git_http.UPLOAD_PACK or tail == "info/refs":
            return await git_http.run_cgi(request, argv, env), []
        # A push: hold the ref lock so the before/after snapshots see only this push.
        updates: list[RefUpdate] = []

        async def record_updates() -> None:
            updates.extend(git_http.ref_updates(before, await repo.refs()))
            if updates and on_updates is not None:
                await on_updates(list(updates))

        async with self._lock(repo):
            before = await repo.refs()
            response = await git_http.run_cgi(request, argv, env, before_eof=record_updates)
        return response, updates

    # -- internals -----------------------------------------------------------------------

    def _repo(self, owner: str, name: str) -> BareRepo:
        path = self.repo_path(owner, name)
        if not path.is_dir():
            raise RepoNotFound(f"repository {owner}/{name} does not exist")
        return BareRepo(path, self._env)

    def _lock(self, repo: BareRepo) -> asyncio.Lock:
        return self._locks.setdefault(repo.path, asyncio.Lock())

    async def _http_backend_path(self) -> str:
        if self._http_backend is None:
            exec_path = checked(await run_git(None, ["--exec-path"], env=self._env), "git")
            self._http_backend = f"{exec_path.decode().strip()}/git-http-backend"
        return self._http_backend
