"""The run's git workspace: clone, read the default branch, commit, push.

The token reaches git only as `-c http.<server>/.extraheader=...` on the command line of the
commands that talk to the server (clone, fetch, push): never in `.git/config`, never in the
remote URL, never in a log line, never in the agent's environment. The header is scoped to the
server's URL, so a rewritten URL (`url.*.insteadOf`) cannot carry it to another host.

The agent works in this directory and could plant git hooks or config that run during our own
git commands. So every git command runs with hooks disabled, and `.git/config` is restored from
the copy taken before the agent started.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.briefing import BRANCH_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

log = logging.getLogger(__name__)

SAFE_CONFIG = (
    "core.hooksPath=/dev/null",  # no hook planted in the workspace runs with the token around
    "credential.helper=",  # no helper stores or offers credentials
    "advice.detachedHead=false",
)
GIT_ENV_KEEP = ("PATH", "HOME", "LANG", "TMPDIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")


class GitError(Exception):
    """A git command failed; the message holds its (redacted) stderr."""


class PushRefusedError(Exception):
    """The runner refuses to push this branch."""


@dataclass(frozen=True)
class Author:
    """Who a commit is by."""

    name: str
    email: str


class Workspace:
    """A clone of the run branch, driven with git's command line."""

    def __init__(
        self,
        path: Path,
        *,
        server_url: str,
        remote_url: str,
        token: str,
        environ: Mapping[str, str],
    ) -> None:
        self.path = path
        self._remote_url = remote_url
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self._secrets = (token, basic)
        self._auth_config = f"http.{server_url.rstrip('/')}/.extraheader"
        self._auth_value = f"AUTHORIZATION: basic {basic}"
        self._env = {name: environ[name] for name in GIT_ENV_KEEP if name in environ}
        # The agent shares HOME and could write ~/.gitconfig: our git reads no global config.
        self._env |= {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_GLOBAL": "/dev/null"}
        self._saved_config: bytes | None = None

    async def clone(self, branch: str) -> None:
        """Clone only `branch` into the (fresh) workspace directory."""
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._git(
            "clone",
            "--quiet",
            "--no-tags",
            "--single-branch",
            "--branch",
            branch,
            "--",
            self._remote_url,
            str(self.path),
            authenticated=True,
            cwd=self.path.parent,
        )

    async def clone_pull(self, number: int) -> None:
        """Fetch a pull request's head (`refs/pull/<n>/head`) into a fresh workspace.

        A fork's branch lives in another repository; GitHub keeps its head in the base one, which
        is all a read-only run's token can read.
        """
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        ref = f"refs/remotes/pull/{int(number)}"
        refspec = f"+refs/pull/{int(number)}/head:{ref}"
        await self._git("init", "--quiet")
        await self._git(
            "fetch", "--quiet", "--no-tags", self._remote_url, refspec, authenticated=True
        )  # fmt: skip
        await self._git("checkout", "--quiet", "--detach", ref)

    async def patch(self, start: str) -> str:
        """Return what HEAD changed since `start`, as a patch `git apply` takes."""
        return await self._git("diff", "--binary", f"{start}..HEAD")

    async def fetch_branch(self, branch: str) -> str:
        """Fetch `branch` as `refs/remotes/origin/<branch>`; return that ref."""
        ref = f"refs/remotes/origin/{branch}"
        await self._git(
            "fetch", "--quiet", "--no-tags", self._remote_url, f"+refs/heads/{branch}:{ref}",
            authenticated=True,
        )  # fmt: skip
        return ref

    async def fetch_tags(self) -> None:
        """Fetch the repository's tags (a release reads them; the clone has none)."""
        await self._git(
            "fetch", "--quiet", self._remote_url, "+refs/tags/*:refs/tags/*", authenticated=True
        )

    async def checkout(self, sha: str) -> None:
        """Check out `sha` detached, fetching it first if the clone does not have it."""
        if not sha or sha.startswith("-"):
            raise GitError(f"not a commit: {sha!r}")
        try:
            await self._git("cat-file", "-e", f"{sha}^{{commit}}")
        except GitError:
            # The branch moved on without this commit (a force push); fetch it by its sha.
            await self._git("fetch", "--quiet", self._remote_url, sha, authenticated=True)
        await self._git("checkout", "--quiet", "--detach", sha)

    async def head(self) -> str:
        """Return the sha of HEAD."""
        return (await self._git("rev-parse", "HEAD")).strip()

    async def read_file(self, ref: str, path: str) -> str | None:
        """Return a file's text at `ref`, or None if it is not there."""
        try:
            return await self._git("cat-file", "blob", f"{ref}:{path}")
        except GitError:
            return None

    async def first_commit_after(self, base_ref: str) -> str | None:
        """Return the oldest commit on HEAD that `base_ref` does not have."""
        # First parents only: a base branch merged into the run branch later does not count.
        listing = await self._git("rev-list", "--reverse", "--first-parent", f"{base_ref}..HEAD")
        return listing.split()[0] if listing.split() else None

    async def message(self, sha: str) -> str:
        """Return a commit's full message."""
        return await self._git("log", "-1", "--format=%B", sha)

    async def author(self, sha: str) -> Author:
        """Return a commit's author."""
        name, _, email = (
            (await self._git("log", "-1", "--format=%an%x00%ae", sha)).strip().partition("\0")
        )
        return Author(name, email)

    def seal(self) -> None:
        """Remember `.git/config` before the agent runs, so `unseal()` can put it back."""
        self._saved_config = (self.path / ".git" / "config").read_bytes()

    def unseal(self) -> None:
        """Restore `.git/config` as it was before the agent ran."""
        if self._saved_config is not None:
            (self.path / ".git" / "config").write_bytes(self._saved_config)

    async def commit_all(self, start: str, message: str, author: Author) -> str | None:
        """Make one commit on `start` holding everything changed since; None if nothing was."""
        if (await self.head()) != start:
            # The agent committed on its own: fold its commits into the one run commit.
            await self._git("reset", "--quiet", "--soft", start)
        await self._git("add", "--all")
        changed = await self._git("diff", "--cached", "--name-only")
        if not changed.strip():
            return None
        identity = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": author.name,
            "GIT_COMMITTER_EMAIL": author.email,
        }
        await self._git("commit", "--quiet", "--no-verify", "--file=-", stdin=message, env=identity)
        return await self.head()

    async def changed_files(self, start: str) -> tuple[str, ...]:
        """Return the paths HEAD changed since `start`."""
        listing = await self._git("diff", "--name-only", f"{start}..HEAD")
        return tuple(line for line in listing.splitlines() if line)

    async def push(self, branch: str) -> None:
        """Push HEAD to `branch` (a `coder/` branch only, never forced)."""
        if not branch.startswith(BRANCH_PREFIX) or branch.startswith("-"):
            raise PushRefusedError(f"refusing to push to {branch!r}: not a {BRANCH_PREFIX} branch")
        await self._git(
            "push", "--quiet", "--no-verify", self._remote_url, f"HEAD:refs/heads/{branch}",
            authenticated=True,
        )  # fmt: skip

    async def _git(
        self,
        *args: str,
        authenticated: bool = False,
        cwd: Path | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        config = [*SAFE_CONFIG]
        if authenticated:
            config.append(f"{self._auth_config}={self._auth_value}")
        argv = ["git", *(part for item in config for part in ("-c", item)), *args]
        log.debug("git %s", " ".join(args))
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd or self.path,
            env={**self._env, **(env or {})},
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(None if stdin is None else stdin.encode())
        if process.returncode != 0:
            raise GitError(f"git {args[0]} failed: {self._redact(err.decode(errors='replace'))}")
        return out.decode("utf-8", errors="replace")

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text.strip()[-2000:]
