"""Read `.github/coder.yml` from a repository's default branch (ETag-cached) and parse it."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import gidgethub

from app.config import CONFIG_PATH, MAX_CONFIG_BYTES, ConfigError, ConfigResult, parse_config
from app.github import GitHub

if TYPE_CHECKING:
    from gidgethub.abc import GitHubAPI

CONTENTS_URL = "/repos/{owner}/{repo}/contents/{path}{?ref}"
NOT_A_FILE = "is not a file"
TOO_LARGE = f"the file is larger than {MAX_CONFIG_BYTES // 1024} KB"
NOT_UTF8 = "the file is not UTF-8 text"


async def fetch_config(gh: GitHubAPI, repo_full_name: str, default_branch: str) -> ConfigResult:
    """Fetch and parse the repository's config from its default branch; no file means defaults."""
    owner, repo = repo_full_name.split("/", 1)
    where = {"owner": owner, "repo": repo, "path": CONFIG_PATH, "ref": default_branch}
    try:
        # Always the default branch, never a pull request's head: a pull request must not be
        # able to change the rules it is judged by (DESIGN §4). The ETag cache makes a repeat
        # read a free 304.
        with _missing_is_an_answer(gh):
            answer = await gh.getitem(CONTENTS_URL, where)
    except gidgethub.BadRequest as error:
        if error.status_code == 404:
            return parse_config(None)
        raise
    return config_from_contents(answer)


def config_from_contents(answer: Any) -> ConfigResult:
    """Parse a contents-API answer for the config file (pure)."""
    if not isinstance(answer, Mapping) or answer.get("type") != "file":
        return _error(NOT_A_FILE)
    # Files over 1 MB come back with `encoding: none` and no content; ours are far smaller.
    # https://docs.github.com/en/rest/repos/contents#get-repository-content
    if answer.get("encoding") != "base64" or int(answer.get("size") or 0) > MAX_CONFIG_BYTES:
        return _error(TOO_LARGE)
    try:
        raw = base64.b64decode(str(answer.get("content") or ""))
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return _error(NOT_UTF8)
    return parse_config(text)


def _error(message: str) -> ConfigResult:
    return ConfigResult(None, (ConfigError(CONFIG_PATH, 1, 1, message),))


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
