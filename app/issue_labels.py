"""Adding and removing an issue's (or a pull request's) labels, as GitHub answers them.

Adding a label twice changes nothing on GitHub; removing one that is not there answers 404,
which is not an error here. https://docs.github.com/rest/issues/labels
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gidgethub

if TYPE_CHECKING:
    from gidgethub.abc import GitHubAPI

ISSUE_LABELS_URL = "/repos/{owner}/{repo}/issues/{number}/labels"
ISSUE_LABEL_URL = "/repos/{owner}/{repo}/issues/{number}/labels/{name}"


def _where(repo: str, number: int, **more: str) -> dict[str, str]:
    owner, name = repo.split("/", 1)
    return {"owner": owner, "repo": name, "number": str(number), **more}


async def add_label(gh: GitHubAPI, repo: str, number: int, name: str) -> None:
    """Label an issue or pull request."""
    await gh.post(ISSUE_LABELS_URL, _where(repo, number), data={"labels": [name]})


async def remove_label(gh: GitHubAPI, repo: str, number: int, name: str) -> None:
    """Take a label off an issue or pull request (not there is fine)."""
    try:
        await gh.delete(ISSUE_LABEL_URL, _where(repo, number, name=name))
    except gidgethub.BadRequest as error:
        if error.status_code != 404:
            raise
