"""devhub's git layer against real git: refs, objects, contents CAS, history, smart HTTP."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import re
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from devhub.git import (
    ZERO_SHA,
    BadObject,
    BadRefName,
    FileChange,
    GitPerson,
    GitStore,
    NotFastForward,
    ObjectNotFound,
    PathNotFound,
    RefExists,
    RefNotFound,
    RefUpdate,
    RepoExists,
    ShaMismatch,
    TreeEntry,
)

if TYPE_CHECKING:
    from pathlib import Path

OWNER = "octo-org"
REPO = "hello"
ALICE = GitPerson("Alice", "alice@example.com", "2024-05-01T12:00:00Z")
BOB = GitPerson("Bob", "bob@example.com", "2024-05-02T08:30:00Z")
TOKEN = "ghs_test_token"
PUSHER = "octocat"
# `echo 'hello world' | git hash-object --stdin`, the same on every git and on GitHub
HELLO_WORLD_BLOB = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
MISSING_SHA = "1" * 40


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    return GitStore(tmp_path / "git")


@pytest.fixture
async def base(store: GitStore) -> str:
    """A repository whose main branch holds README.md and src/app.py."""
    sha = await store.init_repo(
        OWNER,
        REPO,
        initial_files={"README.md": b"# hello\n", "src/app.py": b"print('hi')\n"},
        author=ALICE,
    )
    assert sha is not None
    return sha


async def commit_files(
    store: GitStore, parent: str, files: dict[str, bytes | None], message: str
) -> str:
    """Commit on top of parent via the git-data API (None deletes a path)."""
    parent_commit = await store.get_commit(OWNER, REPO, parent)
    entries: list[dict[str, object]] = [
        {"path": path, "sha": None}
        if content is None
        else {"path": path, "mode": "100644", "type": "blob", "content": content}
        for path, content in files.items()
    ]
    tree = await store.create_tree(OWNER, REPO, entries, parent_commit.tree)
    return await store.create_commit(
        OWNER, REPO, message=message, tree=tree, parents=[parent], author=ALICE, committer=ALICE
    )


async def paths(store: GitStore, tree: str) -> dict[str, TreeEntry]:
    return {entry.path: entry for entry in await store.get_tree(OWNER, REPO, tree, recursive=True)}


# -- repositories and refs --------------------------------------------------------------------


async def test_init_repo_creates_bare_repo_with_default_branch(store: GitStore, base: str):
    path = store.repo_path(OWNER, REPO)
    assert path == store.root / OWNER / f"{REPO}.git"
    assert (path / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert await store.list_refs(OWNER, REPO) == {"refs/heads/main": base}
    commit = await store.get_commit(OWNER, REPO, base)
    assert commit.parents == ()
    assert commit.message == "Initial commit"
    assert commit.author == ALICE
    with pytest.raises(RepoExists):
        await store.init_repo(OWNER, REPO)


async def test_init_repo_without_files_is_empty(store: GitStore):
    assert await store.init_repo(OWNER, "empty", default_branch="trunk") is None
    assert await store.is_empty(OWNER, "empty")
    assert await store.list_refs(OWNER, "empty") == {}


async def test_repo_path_rejects_traversal(store: GitStore):
    for owner, name in [("..", "x"), ("o", ".."), ("o/x", "y"), ("o", "a/b"), ("", "x")]:
        with pytest.raises(ValueError, match="invalid repository name"):
            store.repo_path(owner, name)


async def test_delete_repo_removes_it(store: GitStore, base: str):
    await store.delete_repo(OWNER, REPO)
    assert not store.repo_path(OWNER, REPO).exists()
    await store.delete_repo(OWNER, REPO)  # already gone: no error


async def test_create_ref_is_atomic_and_checks_objects(store: GitStore, base: str):
    await store.create_ref(OWNER, REPO, "refs/heads/coder/42-fix", base)
    assert await store.get_ref(OWNER, REPO, "refs/heads/coder/42-fix") == base
    with pytest.raises(RefExists):
        await store.create_ref(OWNER, REPO, "refs/heads/coder/42-fix", base)
    with pytest.raises(RefExists):  # collides with the directory refs/heads/coder/
        await store.create_ref(OWNER, REPO, "refs/heads/coder", base)
    with pytest.raises(ObjectNotFound):
        await store.create_ref(OWNER, REPO, "refs/heads/other", MISSING_SHA)
    for bad in ["heads/x", "refs/x", "refs/heads/a..b", "refs/heads/x.lock", "refs/heads/a b"]:
        with pytest.raises(BadRefName):
            await store.create_ref(OWNER, REPO, bad, base)


async def test_create_ref_race_between_processes_has_one_winner(store: GitStore, base: str):
    other = GitStore(store.root)  # shares the disk but not the in-process lock
    results = await asyncio.gather(
        *(s.create_ref(OWNER, REPO, "refs/heads/lock", base) for s in (store, other, store)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "RefExists", "RefExists"]


async def test_list_refs_matches_plain_prefixes(store: GitStore, base: str):
    for ref in ["refs/heads/coder/1-a", "refs/heads/coder/2-b", "refs/heads/codex", "refs/tags/v1"]:
        await store.create_ref(OWNER, REPO, ref, base)
    assert list(await store.list_refs(OWNER, REPO, "refs/heads/coder/")) == [
        "refs/heads/coder/1-a",
        "refs/heads/coder/2-b",
    ]
    assert list(await store.list_refs(OWNER, REPO, "refs/heads/code")) == [
        "refs/heads/coder/1-a",
        "refs/heads/coder/2-b",
        "refs/heads/codex",
    ]
    assert list(await store.list_refs(OWNER, REPO, "refs/tags/")) == ["refs/tags/v1"]


async def test_update_ref_fast_forward_force_and_delete(store: GitStore, base: str):
    child = await commit_files(store, base, {"a.txt": b"a"}, "child")
    sibling = await commit_files(store, base, {"b.txt": b"b"}, "sibling")
    ref = "refs/heads/main"
    assert await store.update_ref(OWNER, REPO, ref, child, force=False) == base
    with pytest.raises(NotFastForward):
        await store.update_ref(OWNER, REPO, ref, sibling, force=False)
    assert await store.get_ref(OWNER, REPO, ref) == child
    assert await store.update_ref(OWNER, REPO, ref, sibling, force=True) == child
    assert await store.get_ref(OWNER, REPO, ref) == sibling
    with pytest.raises(RefNotFound):
        await store.update_ref(OWNER, REPO, "refs/heads/nope", child, force=True)
    with pytest.raises(ObjectNotFound):
        await store.update_ref(OWNER, REPO, ref, MISSING_SHA, force=True)
    assert await store.delete_ref(OWNER, REPO, ref) == sibling
    with pytest.raises(RefNotFound):
        await store.get_ref(OWNER, REPO, ref)
    with pytest.raises(RefNotFound):
        await store.delete_ref(OWNER, REPO, ref)


@pytest.mark.parametrize("separate_processes", [False, True])
async def test_update_ref_race_from_same_old_value_has_one_winner(
    store: GitStore, base: str, separate_processes: bool
):
    left = await commit_files(store, base, {"left.txt": b"l"}, "left")
    right = await commit_files(store, base, {"right.txt": b"r"}, "right")
    other = GitStore(store.root) if separate_processes else store
    results = await asyncio.gather(
        store.update_ref(OWNER, REPO, "refs/heads/main", left, force=False),
        other.update_ref(OWNER, REPO, "refs/heads/main", right, force=False),
        return_exceptions=True,
    )
    winners = [i for i, r in enumerate(results) if r == base]
    losers = [i for i, r in enumerate(results) if isinstance(r, NotFastForward)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert await store.get_ref(OWNER, REPO, "refs/heads/main") == [left, right][winners[0]]


# -- blobs, trees, commits --------------------------------------------------------------------


async def test_blobs_round_trip_with_git_shas(store: GitStore, base: str):
    sha = await store.create_blob(OWNER, REPO, b"hello world\n")
    assert sha == HELLO_WORLD_BLOB
    assert await store.get_blob(OWNER, REPO, sha) == b"hello world\n"
    binary = bytes(range(256)) * 4
    assert await store.get_blob(OWNER, REPO, await store.create_blob(OWNER, REPO, binary)) == binary
    with pytest.raises(ObjectNotFound):
        await store.get_blob(OWNER, REPO, MISSING_SHA)
    with pytest.raises(ObjectNotFound):  # a commit is not a blob
        await store.get_blob(OWNER, REPO, base)


async def test_create_tree_builds_nested_trees(store: GitStore, base: str):
    blob = await store.create_blob(OWNER, REPO, b"hello world\n")
    tree = await store.create_tree(
        OWNER,
        REPO,
        [
            {"path": "a/b/c.txt", "mode": "100644", "type": "blob", "content": "deep\n"},
            {"path": "a/run.sh", "mode": "100755", "type": "blob", "sha": blob},
            {"path": "top.txt", "mode": "100644", "type": "blob", "sha": blob},
            {"path": "vendor/lib", "mode": "160000", "type": "commit", "sha": MISSING_SHA},
        ],
        None,
    )
    listing = await paths(store, tree)
    assert sorted(listing) == [
        "a",
        "a/b",
        "a/b/c.txt",
        "a/run.sh",
        "top.txt",
        "vendor",
        "vendor/lib",
    ]
    assert listing["a/b"].type == "tree"
    assert listing["a/b"].mode == "040000"
    assert listing["a/b"].size is None
    assert listing["a/run.sh"] == TreeEntry("a/run.sh", "100755", "blob", blob, 12)
    assert listing["vendor/lib"] == TreeEntry("vendor/lib", "160000", "commit", MISSING_SHA, None)
    top = await store.get_tree(OWNER, REPO, tree, recursive=False)
    assert [e.path for e in top] == ["a", "top.txt", "vendor"]
    nested = await store.get_tree(OWNER, REPO, listing["a"].sha, recursive=False)
    assert [(e.path, e.type) for e in nested] == [("b", "tree"), ("run.sh", "blob")]
    for not_a_tree in [MISSING_SHA, blob, "no-such-branch"]:
        with pytest.raises(ObjectNotFound):
            await store.get_tree(OWNER, REPO, not_a_tree, recursive=False)


async def test_create_tree_with_base_tree_edits_and_deletes(store: GitStore, base: str):
    base_tree = (await store.get_commit(OWNER, REPO, base)).tree
    tree = await store.create_tree(
        OWNER,
        REPO,
        [
            {"path": "src/app.py", "sha": None},  # leaves src/ empty, so src/ disappears
            {"path": "docs/guide.md", "mode": "100644", "type": "blob", "content": "guide"},
        ],
        base_tree,
    )
    assert sorted(await paths(store, tree)) == ["README.md", "docs", "docs/guide.md"]
    # Without base_tree the tree holds only the entries given.
    alone = await store.create_tree(
        OWNER, REPO, [{"path": "only.txt", "mode": "100644", "content": "x"}], None
    )
    assert sorted(await paths(store, alone)) == ["only.txt"]
    # Deleting a whole directory, and a path that is not there, work like GitHub.
    pruned = await store.create_tree(
        OWNER, REPO, [{"path": "src", "sha": None}, {"path": "nope/x", "sha": None}], base_tree
    )
    assert sorted(await paths(store, pruned)) == ["README.md"]
    emptied = await store.create_tree(
        OWNER, REPO, [{"path": "README.md", "sha": None}, {"path": "src", "sha": None}], base_tree
    )
    assert emptied == EMPTY_TREE


async def test_create_tree_later_entries_win_and_edit_inside_given_subtrees(
    store: GitStore, base: str
):
    base_tree = (await store.get_commit(OWNER, REPO, base)).tree
    src_tree = (await paths(store, base_tree))["src"].sha
    tree = await store.create_tree(
        OWNER,
        REPO,
        [
            {"path": "lib", "mode": "040000", "type": "tree", "sha": src_tree},
            {"path": "lib/extra.py", "mode": "100644", "type": "blob", "content": "x = 1\n"},
            {"path": "x.txt", "mode": "100644", "type": "blob", "content": "first"},
            {"path": "x.txt", "mode": "100644", "type": "blob", "content": "second"},
        ],
        None,
    )
    listing = await paths(store, tree)
    assert sorted(listing) == ["lib", "lib/app.py", "lib/extra.py", "x.txt"]
    assert await store.get_blob(OWNER, REPO, listing["x.txt"].sha) == b"second"


async def test_create_tree_is_deterministic(store: GitStore, base: str):
    entries = [{"path": "a/b.txt", "mode": "100644", "type": "blob", "content": "hello world\n"}]
    first = await store.create_tree(OWNER, REPO, entries, None)
    assert first == await store.create_tree(OWNER, REPO, list(reversed(entries)), None)
    # The same tree `git` itself would write: tree a -> blob b.txt.
    listing = await paths(store, first)
    assert listing["a/b.txt"].sha == HELLO_WORLD_BLOB


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "x", "mode": "100600", "type": "blob", "content": "x"}, "tree.mode '100600'"),
        ({"path": "x", "mode": "100644", "type": "tree", "content": "x"}, "does not match"),
        ({"path": "x", "mode": "100644", "type": "wat", "content": "x"}, "tree.type 'wat'"),
        ({"path": "x", "mode": "040000", "type": "tree", "content": "x"}, "tree.content"),
        ({"path": "x", "mode": "100644", "type": "blob"}, "either tree.sha or tree.content"),
        ({"path": "x", "mode": "100644", "sha": "abc"}, "40 hex"),
        ({"path": "x", "mode": "100644", "sha": MISSING_SHA}, f"tree.sha {MISSING_SHA}"),
        ({"path": "a//b", "mode": "100644", "content": "x"}, "malformed path"),
        ({"path": "../x", "mode": "100644", "content": "x"}, "malformed path"),
        ({"path": ".git/config", "mode": "100644", "content": "x"}, "malformed path"),
        ({"path": "", "mode": "100644", "content": "x"}, "tree.path is required"),
        ({"path": "README.md/x", "mode": "100644", "content": "x"}, "which is a blob"),
    ],
)
async def test_create_tree_rejects_bad_entries(
    store: GitStore, base: str, entry: dict[str, object], message: str
):
    base_tree = (await store.get_commit(OWNER, REPO, base)).tree
    with pytest.raises(BadObject, match=re.escape(message)):
        await store.create_tree(OWNER, REPO, [entry], base_tree)


async def test_create_tree_rejects_objects_of_the_wrong_type(store: GitStore, base: str):
    base_tree = (await store.get_commit(OWNER, REPO, base)).tree
    with pytest.raises(BadObject, match=f"tree.sha {base_tree} is not a valid blob"):
        await store.create_tree(
            OWNER, REPO, [{"path": "x", "mode": "100644", "type": "blob", "sha": base_tree}], None
        )
    with pytest.raises(BadObject, match=r"base_tree \w+ is not a valid tree oid"):
        await store.create_tree(OWNER, REPO, [], base)
    with pytest.raises(BadObject, match=r"tree\.sha and tree\.content"):
        await store.create_tree(
            OWNER,
            REPO,
            [{"path": "x", "mode": "100644", "sha": HELLO_WORLD_BLOB, "content": "x"}],
            None,
        )


async def test_commits_round_trip_and_are_deterministic(store: GitStore, base: str):
    tree = (await store.get_commit(OWNER, REPO, base)).tree
    author = GitPerson("Alice", "alice@example.com", "2024-05-01T14:00:00+02:00")
    message = "Subject line\n\nBody.\n\nCoder-Run: r1\nCoder-Model: sonnet"
    sha = await store.create_commit(
        OWNER, REPO, message=message, tree=tree, parents=[base], author=author, committer=BOB
    )
    commit = await store.get_commit(OWNER, REPO, sha)
    assert commit.sha == sha
    assert commit.tree == tree
    assert commit.parents == (base,)
    assert commit.message == message  # verbatim: no trailing newline added
    assert commit.author == GitPerson("Alice", "alice@example.com", "2024-05-01T12:00:00Z")
    assert commit.committer == BOB
    again = await store.create_commit(
        OWNER, REPO, message=message, tree=tree, parents=[base], author=author, committer=BOB
    )
    assert again == sha
    merge = await store.create_commit(
        OWNER, REPO, message="m", tree=tree, parents=[base, sha], author=ALICE, committer=ALICE
    )
    assert (await store.get_commit(OWNER, REPO, merge)).parents == (base, sha)


async def test_create_commit_validates_tree_and_parents(store: GitStore, base: str):
    tree = (await store.get_commit(OWNER, REPO, base)).tree
    with pytest.raises(BadObject, match="Tree SHA does not exist"):
        await store.create_commit(
            OWNER, REPO, message="m", tree=MISSING_SHA, parents=[], author=ALICE, committer=ALICE
        )
    with pytest.raises(BadObject, match="not a commit object"):
        await store.create_commit(
            OWNER, REPO, message="m", tree=tree, parents=[tree], author=ALICE, committer=ALICE
        )
    with pytest.raises(BadObject, match="exactly 40 characters"):
        await store.create_commit(
            OWNER, REPO, message="m", tree=tree, parents=["main"], author=ALICE, committer=ALICE
        )
    bad_date = GitPerson("A", "a@example.com", "yesterday")
    with pytest.raises(BadObject, match="ISO-8601"):
        await store.create_commit(
            OWNER, REPO, message="m", tree=tree, parents=[], author=bad_date, committer=ALICE
        )
    with pytest.raises(ObjectNotFound):
        await store.get_commit(OWNER, REPO, tree)


async def test_resolve_branches_refs_tags_and_shas(store: GitStore, base: str):
    child = await commit_files(store, base, {"a.txt": b"a"}, "child")
    await store.create_ref(OWNER, REPO, "refs/heads/feature", child)
    await store.create_ref(OWNER, REPO, "refs/tags/v1.0", base)
    assert await store.resolve(OWNER, REPO, "main") == base
    assert await store.resolve(OWNER, REPO, "feature") == child
    assert await store.resolve(OWNER, REPO, "refs/heads/feature") == child
    assert await store.resolve(OWNER, REPO, "v1.0") == base
    assert await store.resolve(OWNER, REPO, child) == child
    assert await store.resolve(OWNER, REPO, child[:10]) == child
    for unknown in ["nope", MISSING_SHA, "main~1", "main:README.md", "--all"]:
        with pytest.raises(ObjectNotFound):
            await store.resolve(OWNER, REPO, unknown)
    assert [e.path for e in await store.get_tree(OWNER, REPO, "feature", recursive=False)] == [
        "README.md",
        "a.txt",
        "src",
    ]


async def test_read_path_files_and_directories(store: GitStore, base: str):
    kind, content, sha = await store.read_path(OWNER, REPO, "main", "README.md")
    assert (kind, content) == ("file", b"# hello\n")
    assert sha == await store.create_blob(OWNER, REPO, b"# hello\n")
    kind, entries, _tree = await store.read_path(OWNER, REPO, "main", "/src/")
    assert kind == "dir"
    assert isinstance(entries, list)
    assert [(e.path, e.type) for e in entries] == [("src/app.py", "blob")]
    kind, entries, tree = await store.read_path(OWNER, REPO, base, "")
    assert kind == "dir"
    assert tree == (await store.get_commit(OWNER, REPO, base)).tree
    assert isinstance(entries, list)
    assert [e.path for e in entries] == ["README.md", "src"]
    for missing in ["nope.txt", "src/nope.py", "README.md/x", "a//b"]:
        with pytest.raises(PathNotFound):
            await store.read_path(OWNER, REPO, "main", missing)
    with pytest.raises(ObjectNotFound):
        await store.read_path(OWNER, REPO, "no-such-branch", "README.md")


# -- contents API: write_file / delete_file -----------------------------------------------


async def write(
    store: GitStore, path: str, content: bytes, expected: str | None, branch: str = "main"
) -> tuple[str, str]:
    return await store.write_file(
        OWNER,
        REPO,
        branch=branch,
        path=path,
        content=content,
        message=f"write {path}",
        expected_sha=expected,
        author=ALICE,
        committer=BOB,
    )


async def test_write_file_creates_and_updates_with_cas(store: GitStore, base: str):
    commit, blob = await write(store, "docs/new.md", b"new\n", None)
    assert await store.get_ref(OWNER, REPO, "refs/heads/main") == commit
    assert (await store.get_commit(OWNER, REPO, commit)).parents == (base,)
    assert await store.read_path(OWNER, REPO, "main", "docs/new.md") == ("file", b"new\n", blob)
    commit2, blob2 = await write(store, "docs/new.md", b"newer\n", blob)
    assert (await store.get_commit(OWNER, REPO, commit2)).parents == (commit,)
    with pytest.raises(ShaMismatch) as stale:
        await write(store, "docs/new.md", b"lost\n", blob)
    assert stale.value.reason == "stale"
    assert stale.value.stale
    assert stale.value.actual == blob2
    assert str(stale.value) == f"docs/new.md does not match {blob}"
    with pytest.raises(ShaMismatch) as missing:
        await write(store, "docs/new.md", b"lost\n", None)
    assert missing.value.reason == "missing"
    assert missing.value.missing
    assert await store.get_ref(OWNER, REPO, "refs/heads/main") == commit2


async def test_write_file_branch_rules(store: GitStore, base: str):
    with pytest.raises(RefNotFound):
        await write(store, "x.txt", b"x", None, branch="no-such-branch")
    with pytest.raises(BadObject, match="is a directory"):
        await write(store, "src", b"x", None)
    # A sha sent for a file that does not exist yet is ignored, as on GitHub.
    await write(store, "fresh.txt", b"x", MISSING_SHA)
    # The first file of an empty repository creates its default branch.
    await store.init_repo(OWNER, "empty", default_branch="trunk")
    commit, _blob = await store.write_file(
        OWNER,
        "empty",
        branch="trunk",
        path="README.md",
        content=b"hi",
        message="first",
        expected_sha=None,
        author=ALICE,
        committer=ALICE,
    )
    assert await store.list_refs(OWNER, "empty") == {"refs/heads/trunk": commit}
    assert (await store.get_commit(OWNER, "empty", commit)).parents == ()


async def test_write_file_keeps_the_executable_bit(store: GitStore, base: str):
    tree = await store.create_tree(
        OWNER, REPO, [{"path": "run.sh", "mode": "100755", "content": "#!/bin/sh\n"}], None
    )
    commit = await store.create_commit(
        OWNER, REPO, message="m", tree=tree, parents=[base], author=ALICE, committer=ALICE
    )
    await store.update_ref(OWNER, REPO, "refs/heads/main", commit, force=False)
    _kind, _content, sha = await store.read_path(OWNER, REPO, "main", "run.sh")
    new_commit, _blob = await write(store, "run.sh", b"#!/bin/sh\necho hi\n", sha)
    new_tree = (await store.get_commit(OWNER, REPO, new_commit)).tree
    assert (await paths(store, new_tree))["run.sh"].mode == "100755"


@pytest.mark.parametrize("separate_processes", [False, True])
async def test_concurrent_writes_to_different_files_all_land(
    store: GitStore, base: str, separate_processes: bool
):
    other = GitStore(store.root) if separate_processes else store
    writers = [
        (store if i % 2 else other).write_file(
            OWNER,
            REPO,
            branch="main",
            path=f"notes/{i}.txt",
            content=f"{i}\n".encode(),
            message=f"note {i}",
            expected_sha=None,
            author=ALICE,
            committer=ALICE,
        )
        for i in range(6)
    ]
    results = await asyncio.gather(*writers)
    head = await store.get_ref(OWNER, REPO, "refs/heads/main")
    for i in range(6):
        assert await store.read_path(OWNER, REPO, "main", f"notes/{i}.txt") == (
            "file",
            f"{i}\n".encode(),
            results[i][1],
        )
    history = await store.commits_between(OWNER, REPO, base, head)
    assert len(history) == 6  # a straight line: every write landed on top of another
    assert {c.sha for c, _ in history} == {commit for commit, _ in results}


async def test_concurrent_writes_to_one_file_with_the_same_sha_have_one_winner(
    store: GitStore, base: str
):
    _kind, _content, sha = await store.read_path(OWNER, REPO, "main", "README.md")
    results = await asyncio.gather(
        write(store, "README.md", b"one\n", sha),
        write(store, "README.md", b"two\n", sha),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, tuple)]
    lost = [r for r in results if isinstance(r, ShaMismatch)]
    assert len(won) == 1
    assert len(lost) == 1
    assert lost[0].reason == "stale"
    _kind, content, _sha = await store.read_path(OWNER, REPO, "main", "README.md")
    assert content in {b"one\n", b"two\n"}


async def test_delete_file_with_cas(store: GitStore, base: str):
    _kind, _content, sha = await store.read_path(OWNER, REPO, "main", "src/app.py")
    delete = {"branch": "main", "message": "rm", "author": ALICE, "committer": ALICE}
    with pytest.raises(ShaMismatch) as stale:
        await store.delete_file(OWNER, REPO, path="src/app.py", expected_sha=MISSING_SHA, **delete)
    assert stale.value.reason == "stale"
    with pytest.raises(PathNotFound):
        await store.delete_file(OWNER, REPO, path="src/nope.py", expected_sha=sha, **delete)
    with pytest.raises(RefNotFound):
        await store.delete_file(
            OWNER, REPO, path="src/app.py", expected_sha=sha, **{**delete, "branch": "nope"}
        )
    commit = await store.delete_file(OWNER, REPO, path="src/app.py", expected_sha=sha, **delete)
    assert await store.get_ref(OWNER, REPO, "refs/heads/main") == commit
    tree = (await store.get_commit(OWNER, REPO, commit)).tree
    assert sorted(await paths(store, tree)) == ["README.md"]  # src/ went with its last file


# -- history ------------------------------------------------------------------------------


async def test_commits_between_lists_changes_oldest_first(store: GitStore, base: str):
    first = await commit_files(store, base, {"README.md": b"changed", "new.txt": b"n"}, "first")
    second = await commit_files(store, first, {"src/app.py": None}, "second")
    history = await store.commits_between(OWNER, REPO, base, second)
    assert [c.sha for c, _ in history] == [first, second]
    assert history[0][1] == FileChange(added=("new.txt",), removed=(), modified=("README.md",))
    assert history[1][1] == FileChange(added=(), removed=("src/app.py",), modified=())
    assert history[1][0].message == "second"
    newest = await store.commits_between(OWNER, REPO, base, second, limit=1)
    assert [c.sha for c, _ in newest] == [second]
    everything = await store.commits_between(OWNER, REPO, ZERO_SHA, second)
    assert [c.sha for c, _ in everything] == [base, first, second]
    assert everything[0][1] == FileChange(("README.md", "src/app.py"), (), ())
    only_new = await store.commits_between(OWNER, REPO, ZERO_SHA, second, exclude=[first])
    assert [c.sha for c, _ in only_new] == [second]
    assert await store.commits_between(OWNER, REPO, second, ZERO_SHA) == []
    assert await store.is_ancestor(OWNER, REPO, base, second)
    assert not await store.is_ancestor(OWNER, REPO, second, base)
    with pytest.raises(ObjectNotFound):
        await store.is_ancestor(OWNER, REPO, MISSING_SHA, base)


# -- smart HTTP -----------------------------------------------------------------------------


class GitServer:
    """A tiny aiohttp app that authenticates like devhub and hands git traffic to GitStore."""

    def __init__(self, store: GitStore) -> None:
        self.store = store
        self.allow_push = True
        self.protocols: list[str | None] = []
        self.pushes: asyncio.Queue[list[RefUpdate]] = asyncio.Queue()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="GitHub"'})
        self.protocols.append(request.headers.get("Git-Protocol"))
        response, updates = await self.store.serve_smart_http(
            request,
            request.match_info["owner"],
            request.match_info["name"],
            remote_user=PUSHER,
            allow_push=self.allow_push,
        )
        if request.match_info["tail"] == "git-receive-pack":
            await self.pushes.put(updates)
        return response

    async def next_push(self) -> list[RefUpdate]:
        return await asyncio.wait_for(self.pushes.get(), timeout=30)


@pytest.fixture
async def server(store: GitStore, base: str, aiohttp_server) -> GitServer:
    return await start_server(store, aiohttp_server)


async def start_server(store: GitStore, aiohttp_server, **server_options: object) -> GitServer:
    git_server = GitServer(store)
    app = web.Application()
    app.router.add_route("*", "/{owner}/{name}.git/{tail:.*}", git_server.handle)
    running = await aiohttp_server(app, host="127.0.0.1", port=0, **server_options)
    git_server.url = str(running.make_url(f"/{OWNER}/{REPO}.git"))
    return git_server


def client_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "client-home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Octo Cat",
        "GIT_AUTHOR_EMAIL": "octocat@example.com",
        "GIT_COMMITTER_NAME": "Octo Cat",
        "GIT_COMMITTER_EMAIL": "octocat@example.com",
    }


async def git_client(tmp_path: Path, *args: str, cwd: Path | None = None, ok: bool = True) -> str:
    """Run the real git client (asynchronously, so the in-loop server keeps serving)."""
    auth = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    proc = await asyncio.create_subprocess_exec(
        "git",
        "-c",
        f"http.extraheader=Authorization: Basic {auth}",
        *args,
        cwd=cwd or tmp_path,
        env=client_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    assert (proc.returncode == 0) == ok, f"git {' '.join(args)} -> {proc.returncode}:\n{text}"
    return text


async def test_clone_commit_push_reports_ref_updates(
    server: GitServer, store: GitStore, base: str, tmp_path: Path
):
    work = tmp_path / "work"
    await git_client(tmp_path, "clone", server.url, str(work))
    assert (work / "README.md").read_bytes() == b"# hello\n"
    (work / "feature.txt").write_text("feature\n")
    await git_client(tmp_path, "add", "feature.txt", cwd=work)
    await git_client(tmp_path, "commit", "-q", "-m", "Add feature", cwd=work)
    head = (await git_client(tmp_path, "rev-parse", "HEAD", cwd=work)).strip()

    await git_client(tmp_path, "push", "origin", "main", cwd=work)
    assert await server.next_push() == [RefUpdate("refs/heads/main", base, head)]
    assert await store.get_ref(OWNER, REPO, "refs/heads/main") == head
    assert (await store.get_commit(OWNER, REPO, head)).message == "Add feature\n"

    await git_client(tmp_path, "push", "origin", "HEAD:refs/heads/coder/1-x", cwd=work)
    assert await server.next_push() == [RefUpdate("refs/heads/coder/1-x", ZERO_SHA, head)]
    await git_client(tmp_path, "push", "origin", ":refs/heads/coder/1-x", cwd=work)
    assert await server.next_push() == [RefUpdate("refs/heads/coder/1-x", head, ZERO_SHA)]
    assert await store.list_refs(OWNER, REPO, "refs/heads/coder/") == {}


async def test_push_outside_heads_and_tags_is_rejected(
    server: GitServer, store: GitStore, base: str, tmp_path: Path
):
    work = tmp_path / "work"
    await git_client(tmp_path, "clone", "-q", server.url, str(work))
    output = await git_client(
        tmp_path, "push", "origin", "HEAD:refs/pull/1/head", cwd=work, ok=False
    )
    assert "deny updating a hidden ref" in output
    assert await server.next_push() == []
    await git_client(tmp_path, "tag", "v1", cwd=work)
    await git_client(tmp_path, "push", "origin", "v1", cwd=work)
    assert await server.next_push() == [RefUpdate("refs/tags/v1", ZERO_SHA, base)]
    assert set(await store.list_refs(OWNER, REPO)) == {"refs/heads/main", "refs/tags/v1"}


async def test_push_without_permission_is_refused(
    server: GitServer, store: GitStore, base: str, tmp_path: Path
):
    server.allow_push = False
    work = tmp_path / "work"
    await git_client(tmp_path, "clone", "-q", server.url, str(work))  # reading is still fine
    (work / "x.txt").write_text("x")
    await git_client(tmp_path, "add", "x.txt", cwd=work)
    await git_client(tmp_path, "commit", "-q", "-m", "x", cwd=work)
    output = await git_client(tmp_path, "push", "origin", "main", cwd=work, ok=False)
    assert f"Permission to {OWNER}/{REPO}.git denied to {PUSHER}." in output
    assert "403" in output
    assert await store.get_ref(OWNER, REPO, "refs/heads/main") == base


async def test_protocol_v2_fetch(server: GitServer, store: GitStore, base: str, tmp_path: Path):
    work = tmp_path / "work"
    await git_client(tmp_path, "-c", "protocol.version=2", "clone", "-q", server.url, str(work))
    child = await commit_files(store, base, {"later.txt": b"later\n"}, "later")
    await store.update_ref(OWNER, REPO, "refs/heads/main", child, force=False)
    await git_client(tmp_path, "-c", "protocol.version=2", "fetch", "-q", "origin", cwd=work)
    fetched = await git_client(tmp_path, "rev-parse", "origin/main", cwd=work)
    assert fetched.strip() == child
    assert "version=2" in server.protocols
    # Fetching one sha by id, as actions/checkout does.
    await git_client(tmp_path, "-c", "protocol.version=2", "fetch", "-q", "origin", base, cwd=work)


def pkt_line(text: str) -> bytes:
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


@pytest.mark.parametrize("auto_decompress", [True, False])
async def test_gzipped_protocol_v2_request(
    store: GitStore, base: str, aiohttp_server, auto_decompress: bool
):
    # aiohttp inflates request bodies itself unless told not to; both setups must work.
    server = await start_server(store, aiohttp_server, auto_decompress=auto_decompress)
    auth = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    body = gzip.compress(pkt_line("command=ls-refs\n") + b"0001" + pkt_line("peel\n") + b"0000")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/git-upload-pack",
            data=body,
            headers={
                "Authorization": auth,
                "Content-Type": "application/x-git-upload-pack-request",
                "Content-Encoding": "gzip",
                "Git-Protocol": "version=2",
            },
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/x-git-upload-pack-result"
        payload = await response.read()
    assert f"{base} refs/heads/main".encode() in payload


async def test_unknown_repos_and_dumb_http_get_404(server: GitServer, tmp_path: Path):
    auth = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    async with aiohttp.ClientSession() as session:
        missing = server.url.replace(f"/{REPO}.git", "/nope.git")
        async with session.get(
            f"{missing}/info/refs?service=git-upload-pack", headers={"Authorization": auth}
        ) as r:
            assert r.status == 404
            assert await r.text() == "Repository not found.\n"
        async with session.get(f"{server.url}/HEAD", headers={"Authorization": auth}) as r:
            assert r.status == 404
        async with session.get(f"{server.url}/info/refs", headers={"Authorization": auth}) as r:
            assert r.status == 404
