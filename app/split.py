"""Split proposals become sub-issues of the run's issue, each created and linked once.

With `auto_split: true`, a successful run whose plan proposes a split gets one sub-issue per
proposal, labelled with the develop workflow's label and linked to the parent through GitHub's
sub-issues API (https://docs.github.com/rest/issues/sub-issues). Each sub-issue carries a marker
`<!-- coder:split parent=<n> run=<id> index=<i> -->`, so a redelivery finds it instead of
opening it again, even when the app died between opening it and linking it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gidgethub

from app.artifacts import PlanArtifact, SplitProposal
from app.develop import DEVELOP
from app.github import create_once
from app.markers import find_marked, render_marker
from app.once import where

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from gidgethub.abc import GitHubAPI
    from pydantic import BaseModel

    from app.config import CoderConfig

log = logging.getLogger(__name__)

SPLIT = "split"
ISSUES_URL = "/repos/{owner}/{repo}/issues"
OWN_ISSUES_URL = "/repos/{owner}/{repo}/issues{?creator,state,sort,direction,per_page}"
SUB_ISSUES_URL = "/repos/{owner}/{repo}/issues/{number}/sub_issues"
SUB_ISSUES_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/sub_issues{?per_page}"
DUPLICATE_SUB_ISSUE = "duplicate sub-issues"


def proposals_of(artifact: BaseModel | None) -> tuple[SplitProposal, ...]:
    """Return the split a run's artifact proposes (its architect's plan), if any."""
    plan = getattr(artifact, "plan", None)
    return plan.split if isinstance(plan, PlanArtifact) else ()


def develop_label(config: CoderConfig) -> str | None:
    """Return the label that asks for a develop run, which sub-issues get."""
    develop = config.workflows.get(DEVELOP)
    return develop.on.label if develop is not None else None


def sub_issue_body(*, parent: int, run_id: str, index: int, proposal: SplitProposal) -> str:
    """Render a sub-issue's body: its marker, the proposal, and where it came from."""
    marker = render_marker(SPLIT, parent=parent, run=run_id, index=index)
    text = proposal.body.strip() or "(no description proposed)"
    return f"{marker}\n{text}\n\nSplit from #{parent} by run `{run_id}`.\n"


async def create_sub_issues(
    gh: GitHubAPI,
    repo: str,
    *,
    parent: int,
    proposals: Sequence[SplitProposal],
    run_id: str,
    label: str | None,
    bot_login: str,
) -> list[int]:
    """Open and link one sub-issue per proposal, once each; return their numbers in order."""
    pages = gh.getiter(SUB_ISSUES_PAGE_URL, where(repo, number=parent, per_page=100))
    linked = [issue async for issue in pages]
    numbers = []
    for index, proposal in enumerate(proposals, start=1):
        marker: dict[str, str | int] = {"parent": parent, "run": run_id, "index": index}
        issue = find_marked(linked, SPLIT, author=bot_login, **marker)
        if issue is None:
            issue = await _open(
                gh, repo, proposal=proposal, marker=marker, label=label, bot_login=bot_login
            )
            await _link(gh, repo, parent, int(issue["id"]))
        numbers.append(int(issue["number"]))
    log.info("run %s split #%d into %s in %s", run_id, parent, numbers, repo)
    return numbers


async def _open(
    gh: GitHubAPI,
    repo: str,
    *,
    proposal: SplitProposal,
    marker: dict[str, str | int],
    label: str | None,
    bot_login: str,
) -> Mapping[str, Any]:
    async def find() -> Mapping[str, Any] | None:
        # Opened but not linked (the app died in between): it is among the app's newest issues.
        query = {"creator": bot_login, "state": "all", "sort": "created", "direction": "desc"}
        answer = await gh.getitem(OWN_ISSUES_URL, {**where(repo), **query, "per_page": 100})
        return find_marked(answer, SPLIT, author=bot_login, **marker)

    found = await find()
    if found is not None:
        return found
    data: dict[str, Any] = {
        "title": proposal.title,
        "body": sub_issue_body(
            parent=int(marker["parent"]),
            run_id=str(marker["run"]),
            index=int(marker["index"]),
            proposal=proposal,
        ),
    }
    if label:
        data["labels"] = [label]
    return await create_once(
        gh, create=lambda: gh.post(ISSUES_URL, where(repo), data=data), find=find
    )


async def _link(gh: GitHubAPI, repo: str, parent: int, sub_issue_id: int) -> None:
    try:
        await gh.post(
            SUB_ISSUES_URL, where(repo, number=parent), data={"sub_issue_id": sub_issue_id}
        )
    except gidgethub.BadRequest as error:
        # Linked already (a redelivery after the link went through): nothing to do.
        if error.status_code == 422 and DUPLICATE_SUB_ISSUE in str(error).lower():
            return
        raise
