"""Running the git CLI with a clean environment, and the pure parsing/validation around it."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from devhub.git_types import BadObject, BadRefName, GitCommit, GitError, GitPerson, TreeEntry

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

GIT = "git"
SHA_RE = re.compile(r"[0-9a-f]{40}")
SHORT_SHA_RE = re.compile(r"[0-9a-f]{4,40}")
OWNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
REPO_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
# Characters git forbids anywhere in a ref name (git-check-ref-format(1), rules 3-5).
REF_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
PERSON_RE = re.compile(r"(?P<name>.*) <(?P<email>.*)> (?P<ts>-?\d+) (?P<tz>[+-]\d{4})")
# Config every git process gets: no background gc racing tests, no signing prompts.
BASE_CONFIG: tuple[tuple[str, str], ...] = (
    ("gc.auto", "0"),
    ("receive.autogc", "false"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("core.logAllRefUpdates", "false"),
)
TREE_MODES = {
    "100644": "blob",
    "100755": "blob",
    "120000": "blob",
    "040000": "tree",
    "160000": "commit",
}


@dataclass(frozen=True)
class GitResult:
    """Exit code and output of one git process."""

    code: int
    stdout: bytes
    stderr: str


def git_env(home: Path, config: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """Build an environment that ignores every user and system git config."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        # Paths we pass are literal file names, never globs.
        "GIT_LITERAL_PATHSPECS": "1",
    }
    pairs = [*BASE_CONFIG, *config]
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for index, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


async def run_git(
    git_dir: Path | None,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes | None = None,
) -> GitResult:
    """Run one git command (argument list, no shell) and collect its output."""
    argv = [GIT] if git_dir is None else [GIT, f"--git-dir={git_dir}"]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    stdout, stderr = await proc.communicate(stdin)
    assert proc.returncode is not None
    return GitResult(proc.returncode, stdout, stderr.decode(errors="replace").strip())


def checked(result: GitResult, what: str) -> bytes:
    """Return stdout, or raise GitError with git's stderr when the command failed."""
    if result.code != 0:
        raise GitError(f"{what} failed: {result.stderr}")
    return result.stdout


def is_sha(value: object) -> bool:
    """Tell whether value is a full, lowercase hex object id."""
    return isinstance(value, str) and SHA_RE.fullmatch(value) is not None


def check_ref_name(ref: str) -> None:
    """Raise BadRefName unless ref is a valid, fully qualified ref like refs/heads/x."""
    # GitHub: "If it doesn't start with 'refs' and have at least two slashes, it will be
    # rejected." https://docs.github.com/rest/git/refs#create-a-reference
    parts = ref.split("/")
    problem = None
    if parts[0] != "refs" or len(parts) < 3:
        problem = "must start with 'refs/' and contain at least two slashes"
    elif REF_FORBIDDEN_RE.search(ref) or ".." in ref or "@{" in ref:
        problem = "contains a character or sequence git does not allow"
    elif any(not part or part.startswith(".") or part.endswith(".lock") for part in parts):
        problem = "has an empty component, or one starting with '.' or ending with '.lock'"
    elif ref.endswith("."):
        problem = "ends with '.'"
    if problem is not None:
        raise BadRefName(f"{ref!r} is not a valid ref name: it {problem}")


def split_path(path: str) -> tuple[str, ...]:
    """Split a repository path into components; raise BadObject for malformed ones."""
    trimmed = path.strip("/")
    if not trimmed:
        return ()
    parts = tuple(trimmed.split("/"))
    for part in parts:
        if part in {"", ".", ".."} or part.lower() == ".git" or "\x00" in part or "\n" in part:
            raise BadObject(f"tree.path {path!r} contains a malformed path component")
    return parts


def git_date(iso: str) -> str:
    """Convert an ISO-8601 date into git's raw '@<epoch> <+hhmm>' form."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise BadObject(f"{iso!r} is not an ISO-8601 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset() or timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"@{int(moment.timestamp())} {sign}{hours:02d}{mins:02d}"


def iso_date(epoch: int) -> str:
    """Format a unix time as ISO-8601 in UTC with 'Z', the way GitHub's git API does."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    """Return the current time as an ISO-8601 UTC date."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def person_env(role: str, person: GitPerson) -> dict[str, str]:
    """Return GIT_<ROLE>_NAME/EMAIL/DATE for commit-tree."""
    return {
        f"GIT_{role}_NAME": person.name,
        f"GIT_{role}_EMAIL": person.email,
        f"GIT_{role}_DATE": git_date(person.date),
    }


def parse_person(line: str) -> GitPerson:
    """Parse 'Name <email> 1700000000 +0000' from a commit header."""
    match = PERSON_RE.fullmatch(line)
    if match is None:
        raise GitError(f"malformed ident line in commit: {line!r}")
    return GitPerson(match["name"], match["email"], iso_date(int(match["ts"])))


def parse_commit(sha: str, raw: bytes) -> GitCommit:
    """Parse a raw commit object (as printed by cat-file) into a GitCommit."""
    header, _, body = raw.partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in header.decode(errors="replace").split("\n"):
        if line.startswith(" "):
            continue  # continuation of a multi-line header such as gpgsig
        key, _, value = line.partition(" ")
        fields.setdefault(key, []).append(value)
    try:
        return GitCommit(
            sha=sha,
            tree=fields["tree"][0],
            parents=tuple(fields.get("parent", ())),
            message=body.decode(errors="replace"),
            author=parse_person(fields["author"][0]),
            committer=parse_person(fields["committer"][0]),
        )
    except KeyError as missing:
        raise GitError(f"commit {sha} has no {missing} header") from None


def parse_ls_tree(output: bytes, prefix: str = "") -> list[TreeEntry]:
    """Parse `ls-tree -z -l` output, prefixing each path with prefix/ when given."""
    entries = []
    for record in output.decode(errors="surrogateescape").split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha, size = meta.split()
        entries.append(
            TreeEntry(
                path=f"{prefix}/{path}" if prefix else path,
                mode=mode,
                type=kind,
                sha=sha,
                size=None if size == "-" else int(size),
            )
        )
    return entries
