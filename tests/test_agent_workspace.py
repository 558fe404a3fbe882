"""The run's git workspace: the token stays out of config and logs, hooks never run, pushes are
only to coder/ branches and never forced."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

from actions.agent.workspace import Author, GitError, PushRefusedError, Workspace

TOKEN = "ghs_workspaceTestToken0123456789abcdef"
BOT = Author("coder-test[bot]", "coder-test[bot]@users.noreply.github.com")
BRANCH = "coder/7-add-a-flag"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "alice",
    "GIT_AUTHOR_EMAIL": "alice@example.com",
    "GIT_COMMITTER_NAME": "alice",
    "GIT_COMMITTER_EMAIL": "alice@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(cwd, *args):
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()


@pytest.fixture
def remote(tmp_path):
    """A bare repository with main (one file) and a run branch (one empty snapshot commit)."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "--quiet", "--initial-branch=main")
    (seed / "README.md").write_text("widgets\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "--quiet", "-m", "initial")
    git(seed, "checkout", "--quiet", "-b", BRANCH)
    git(
        seed,
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "[coder] Add a flag\n\nbody\n\nCoder-Run: x",
    )
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


@pytest.fixture
async def workspace(tmp_path, remote):
    ws = Workspace(
        tmp_path / "work" / "coder-abcdefghijkl",
        server_url="http://127.0.0.1:1",
        remote_url=str(remote),
        token=TOKEN,
        environ=dict(os.environ),
    )
    await ws.clone(BRANCH)
    return ws


async def test_clone_reads_the_base_and_the_snapshot_commit(workspace, remote):
    base = await workspace.fetch_branch("main")
    assert base == "refs/remotes/origin/main"
    assert await workspace.read_file(base, "README.md") == "widgets\n"
    assert await workspace.read_file(base, ".github/coder.yml") is None
    first = await workspace.first_commit_after(base)
    assert first == await workspace.head()
    assert (await workspace.message(first)).startswith("[coder] Add a flag\n\nbody")
    assert await workspace.author(first) == Author("alice", "alice@example.com")


async def test_the_token_is_in_no_config_file_and_no_log_line(workspace, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    await workspace.fetch_branch("main")
    (workspace.path / "new.txt").write_text("x\n")
    start = git(workspace.path, "rev-parse", "HEAD")
    await workspace.commit_all(start, "Add new.txt\n\nCoder-Run: abcdefghijkl\n", BOT)
    await workspace.push(BRANCH)
    for config in [workspace.path / ".git" / "config", *tmp_path.rglob("config")]:
        if config.is_file():
            assert TOKEN not in config.read_text(errors="replace")
    assert "git fetch" in caplog.text
    assert "git push" in caplog.text
    assert TOKEN not in caplog.text
    assert "extraheader" not in caplog.text.lower()


async def test_one_commit_with_the_bot_as_author_is_pushed(workspace, remote):
    start = await workspace.head()
    (workspace.path / "new.txt").write_text("x\n")
    # An agent that committed on its own: its commits are folded into the run's one commit.
    git(workspace.path, "add", "new.txt")
    git(workspace.path, "commit", "--quiet", "-m", "agent's own commit")
    (workspace.path / "README.md").write_text("widgets, changed\n")
    sha = await workspace.commit_all(start, "Add new.txt\n\nCoder-Run: abcdefghijkl\n", BOT)
    assert sha is not None
    assert await workspace.changed_files(start) == ("README.md", "new.txt")
    await workspace.push(BRANCH)
    assert git(remote, "rev-parse", BRANCH) == sha
    assert git(remote, "rev-parse", f"{sha}^") == start
    assert git(remote, "log", "-1", "--format=%an <%ae>", sha) == f"{BOT.name} <{BOT.email}>"
    assert git(remote, "log", "-1", "--format=%cn", sha) == BOT.name


async def test_nothing_changed_means_no_commit(workspace):
    start = await workspace.head()
    assert await workspace.commit_all(start, "nothing\n", BOT) is None
    assert await workspace.head() == start


@pytest.mark.parametrize("branch", ["main", "feature/coder/x", "-f", "coderx/1", "refs/heads/main"])
async def test_pushing_outside_coder_branches_is_refused(workspace, remote, branch):
    before = git(remote, "for-each-ref")
    with pytest.raises(PushRefusedError, match="not a coder/ branch"):
        await workspace.push(branch)
    assert git(remote, "for-each-ref") == before


async def test_a_push_is_never_forced(workspace, remote, tmp_path):
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", "--branch", BRANCH, str(remote), str(other))
    (other / "theirs.txt").write_text("theirs\n")
    git(other, "add", "theirs.txt")
    git(other, "commit", "--quiet", "-m", "someone else pushed")
    git(other, "push", "--quiet", "origin", BRANCH)
    theirs = git(remote, "rev-parse", BRANCH)
    start = await workspace.head()
    (workspace.path / "mine.txt").write_text("mine\n")
    await workspace.commit_all(start, "mine\n", BOT)
    with pytest.raises(GitError, match="git push failed"):
        await workspace.push(BRANCH)
    assert git(remote, "rev-parse", BRANCH) == theirs


async def test_hooks_planted_by_the_agent_never_run(workspace, tmp_path):
    canary = tmp_path / "canary"
    hooks = workspace.path / ".git" / "hooks"
    for name in ("pre-commit", "commit-msg", "post-commit", "pre-push", "reference-transaction"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {canary}\nenv >> {canary}\n")
        hook.chmod(0o755)
    start = await workspace.head()
    (workspace.path / "new.txt").write_text("x\n")
    await workspace.commit_all(start, "new\n", BOT)
    await workspace.push(BRANCH)
    assert not canary.exists()


async def test_config_the_agent_writes_is_undone(workspace, tmp_path):
    workspace.seal()
    canary = tmp_path / "canary"
    git(workspace.path, "config", "core.hooksPath", str(tmp_path))
    git(workspace.path, "config", "url.http://evil.invalid/.insteadOf", "http://127.0.0.1:1/")
    git(workspace.path, "config", "core.fsmonitor", f"touch {canary}; false")
    workspace.unseal()
    config = (workspace.path / ".git" / "config").read_text()
    assert "evil" not in config
    assert "hooksPath" not in config
    assert "fsmonitor" not in config
    start = await workspace.head()
    (workspace.path / "new.txt").write_text("x\n")
    await workspace.commit_all(start, "new\n", BOT)
    assert not canary.exists()


async def test_a_failing_git_command_never_shows_the_token(tmp_path):
    ws = Workspace(
        tmp_path / "work",
        server_url="http://127.0.0.1:1",
        remote_url="http://127.0.0.1:1/acme/widgets.git",
        token=TOKEN,
        environ=dict(os.environ),
    )
    with pytest.raises(GitError) as caught:
        await ws.clone(BRANCH)
    assert TOKEN not in str(caught.value)
