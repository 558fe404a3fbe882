"""Read `.github/coder.yml` and the base its `_extends` names (ETag-cached), and parse them.

Reading is the only I/O here; merging and validating are `app.config.parse_config`'s. The app
and the runner read config the same way, with `resolve_config`; what the runner's one-repository
token cannot read, the app hands it in the run's check run (`app.config_record`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import enum
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gidgethub

from app.config import (
    BASE_NOT_FOUND,
    CONFIG_PATH,
    MAX_CONFIG_BYTES,
    NOT_UTF8,
    BaseConfig,
    ConfigError,
    ConfigResult,
    Extends,
    extends_of,
    org_defaults,
    parse_config,
)
from app.github import GitHub

if TYPE_CHECKING:
    from gidgethub.abc import GitHubAPI

CONTENTS_URL = "/repos/{owner}/{repo}/contents/{path}{?ref}"
NOT_A_FILE = "is not a file"
TOO_LARGE = f"the file is larger than {MAX_CONFIG_BYTES // 1024} KB"
OWN_FILE = "it is this repository's own file"
FORBIDDEN = "coder's token may not read it (403)"


class Source(enum.Enum):
    """Where a repository's effective config came from."""

    FILE = "file"  # its own .github/coder.yml (maybe over an `_extends` base)
    ORG = "org"  # no file: the org's defaults in <owner>/.github
    DEFAULTS = "defaults"  # no file anywhere: the built-in defaults


@dataclass(frozen=True)
class FileText:
    """A config file as read from GitHub: its text, or why it cannot be used (neither: no file)."""

    text: str | None = None
    problem: str | None = None

    @property
    def missing(self) -> bool:
        """Whether there is no file at all."""
        return self.text is None and self.problem is None


# Reads `.github/coder.yml` of a repository (`owner/name`) at a ref (None: its default branch).
ReadFile = Callable[[str, "str | None"], Awaitable["FileText"]]


@dataclass(frozen=True)
class FetchedConfig:
    """A repository's config, parsed, and where it came from."""

    result: ConfigResult
    source: Source
    base: Extends | None = None


async def fetch_config(gh: GitHubAPI, repo_full_name: str, default_branch: str) -> ConfigResult:
    """Fetch and parse the repository's config from its default branch; no file means defaults.

    For a pull request, pass its base branch: never its head.
    """
    return (await fetch_config_at(gh, repo_full_name, default_branch)).result


async def fetch_config_at(gh: GitHubAPI, repo_full_name: str, ref: str) -> FetchedConfig:
    """Fetch and parse the config at `ref`, with its `_extends` base or the org's defaults."""
    # The caller picks the ref: the default branch (a pull request's base) for every decision,
    # never a pull request's head, so a pull request cannot change the rules it is judged by
    # (DESIGN §4). Only the coder/config check reads a pushed commit, to report on it.
    return await resolve_config(partial(read_config_file, gh), repo_full_name, ref)


async def resolve_config(read: ReadFile, repo_full_name: str, ref: str) -> FetchedConfig:
    """Read and parse a repository's config at `ref` with what it builds on, through `read`.

    The one way config is read, by the app (through the contents API) and by the runner (its
    own file from its checkout): the file, then the base `_extends` names or, with no file, the
    org's defaults (`base_needed`), each merged as `app.config.parse_config` documents.
    """
    own = await read(repo_full_name, ref)
    if own.problem is not None:
        return FetchedConfig(_error(CONFIG_PATH, own.problem), Source.FILE)
    target = base_needed(own.text, repo_full_name)
    if own.text is None:
        if target is None:
            return FetchedConfig(parse_config(None), Source.DEFAULTS)
        return await _org_defaults(read, target)
    if target is None:
        return FetchedConfig(parse_config(own.text), Source.FILE)
    if target.full_name.lower() == repo_full_name.lower():
        base = BaseConfig(target.path, None, OWN_FILE)
    else:
        # Bases are read from their default branch (no ref), whichever ref `own` came from.
        found = await read(target.full_name, None)
        base = BaseConfig(target.path, found.text, found.problem or BASE_NOT_FOUND)
    return FetchedConfig(parse_config(own.text, base=base), Source.FILE, target)


def base_needed(own_text: str | None, repo_full_name: str) -> Extends | None:
    """Return the other repository whose config file this config builds on, if any (pure).

    The file's `_extends` target; with no file, the org's defaults in `<owner>/.github` (unless
    this is that repository).
    """
    owner = repo_full_name.split("/", 1)[0]
    if own_text is not None:
        return extends_of(own_text, owner)
    org = org_defaults(owner)
    return None if org.full_name.lower() == repo_full_name.lower() else org


async def _org_defaults(read: ReadFile, org: Extends) -> FetchedConfig:
    found = await read(org.full_name, None)
    if found.missing:
        return FetchedConfig(parse_config(None), Source.DEFAULTS)
    if found.problem is not None:
        return FetchedConfig(_error(org.path, found.problem), Source.ORG, org)
    return FetchedConfig(parse_config(None, base=BaseConfig(org.path, found.text)), Source.ORG, org)


async def read_config_file(gh: GitHubAPI, repo_full_name: str, ref: str | None) -> FileText:
    """Read `.github/coder.yml` at `ref` (None: the default branch) through the ETag cache."""
    owner, repo = repo_full_name.split("/", 1)
    where = {"owner": owner, "repo": repo, "path": CONFIG_PATH}
    if ref is not None:
        where["ref"] = ref
    try:
        # The ETag cache makes a repeat read a free 304.
        with _missing_is_an_answer(gh):
            answer = await gh.getitem(CONTENTS_URL, where)
    except gidgethub.BadRequest as error:
        # 404 is no file, no repository, or a private one the installation cannot see: GitHub
        # answers 404 rather than reveal it. 403 is a token without `contents: read` there.
        if error.status_code == 404:
            return FileText()
        if error.status_code == 403:
            return FileText(problem=FORBIDDEN)
        raise
    return contents_text(answer)


def contents_text(answer: Any) -> FileText:
    """Return the text of a contents-API answer for the config file, or why it has none (pure)."""
    if not isinstance(answer, Mapping) or answer.get("type") != "file":
        return FileText(problem=NOT_A_FILE)
    # Files over 1 MB come back with `encoding: none` and no content; ours are far smaller.
    # https://docs.github.com/en/rest/repos/contents#get-repository-content
    if answer.get("encoding") != "base64" or int(answer.get("size") or 0) > MAX_CONFIG_BYTES:
        return FileText(problem=TOO_LARGE)
    try:
        raw = base64.b64decode(str(answer.get("content") or ""))
        return FileText(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        return FileText(problem=NOT_UTF8)


def config_from_contents(answer: Any) -> ConfigResult:
    """Parse a contents-API answer for the config file (pure; `_extends` is not followed)."""
    found = contents_text(answer)
    if found.problem is not None:
        return _error(CONFIG_PATH, found.problem)
    return parse_config(found.text or "")


def _error(path: str, message: str) -> ConfigResult:
    return ConfigResult(None, (ConfigError(path, 1, 1, message),))


@contextlib.contextmanager
def _missing_is_an_answer(gh: GitHubAPI) -> Iterator[None]:
    # The client retries a 404 seen right after a webhook, because GitHub's API can lag behind
    # its own events. A missing config file is not lag but the common case (defaults apply), so
    # retrying it would only spend two requests and two seconds on every run.
    if not isinstance(gh, GitHub):
        yield
        return
    policy = gh.policy
    gh.policy = dataclasses.replace(policy, fresh_404_retries=0)
    try:
        yield
    finally:
        gh.policy = policy
