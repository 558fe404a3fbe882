"""The runner's one GitHub client, and the handful of calls a run makes through it.

`RunnerGitHub` is the app's client (`app.github.GitHub`: the shared retry policy, rate-limit
pacing, GitHub's error handling) with a fixed token and a count of the requests it sent, so the
run can say how many REST calls it cost (DESIGN §8).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gidgethub

from app.github import GitHub, create_once

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import aiohttp

    from app.retry import RetryPolicy

# https://docs.github.com/en/graphql/reference/mutations#markpullrequestreadyforreview
MARK_READY = """
mutation($id: ID!) {
  markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } }
}
"""


@dataclass
class CallCount:
    """Requests one client sent, by API."""

    rest: int = 0
    graphql: int = 0


class RunnerGitHub(GitHub):
    """A GitHub client with one fixed Authorization value that counts what it sends."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        authorization: str,
        api_url: str,
        graphql_url: str,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        async def fixed() -> str:
            return authorization

        super().__init__(
            session,
            authorization=fixed,
            base_url=api_url,
            graphql_url=graphql_url,
            policy=policy,
            sleep=sleep,
            clock=clock,
        )
        self.calls = CallCount()

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        if url == self.graphql_url:
            self.calls.graphql += 1
        else:
            self.calls.rest += 1
        return await super()._request(method, url, headers, body)


def for_token(
    session: aiohttp.ClientSession, token: str, *, api_url: str, graphql_url: str, **kwargs: Any
) -> RunnerGitHub:
    """Return a client acting with an installation token."""
    return RunnerGitHub(
        session,
        authorization=f"token {token}",
        api_url=api_url,
        graphql_url=graphql_url,
        **kwargs,
    )


@dataclass(frozen=True)
class PullRequest:
    """The parts of a pull request the runner uses."""

    number: int
    node_id: str
    html_url: str
    head_ref: str
    head_sha: str
    base_ref: str
    draft: bool


def _split(repository: str) -> dict[str, str]:
    owner, name = repository.split("/", 1)
    return {"owner": owner, "repo": name}


# One GraphQL read instead of `GET /pulls/{n}`: GraphQL has its own budget, and DESIGN §8 keeps
# a whole develop run within 12 rate-limited REST calls.
# https://docs.github.com/en/graphql/reference/objects#pullrequest
PULL_QUERY = """
query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      id number url isDraft headRefName headRefOid baseRefName
    }
  }
}
"""


async def get_pull(gh: GitHub, repository: str, number: int) -> PullRequest:
    """Fetch a pull request (one GraphQL query)."""
    owner, name = repository.split("/", 1)
    data = await gh.graphql(PULL_QUERY, owner=owner, name=name, number=number)
    pull = (data.get("repository") or {}).get("pullRequest")
    if pull is None:
        raise LookupError(f"pull request #{number} does not exist in {repository}")
    return PullRequest(
        number=int(pull["number"]),
        node_id=str(pull["id"]),
        html_url=str(pull["url"]),
        head_ref=str(pull["headRefName"]),
        head_sha=str(pull["headRefOid"]),
        base_ref=str(pull["baseRefName"]),
        draft=bool(pull["isDraft"]),
    )


@dataclass(frozen=True)
class CheckRun:
    """The parts of a check run the runner reads: where it is and what its output says."""

    id: int
    name: str
    head_sha: str
    text: str | None


async def get_check_run(gh: GitHub, repository: str, check_run_id: int) -> CheckRun:
    """Fetch one check run (its `output.text` carries a run request or an artifact)."""
    check_run = await gh.getitem(
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        {**_split(repository), "check_run_id": check_run_id},
    )
    output = check_run.get("output") or {}
    return CheckRun(
        id=int(check_run["id"]),
        name=str(check_run.get("name", "")),
        head_sha=str(check_run["head_sha"]),
        text=output.get("text"),
    )


async def update_check_run(
    gh: GitHub, repository: str, check_run_id: int, fields: Mapping[str, Any]
) -> None:
    """Update a check run (status, conclusion, output, ...)."""
    await gh.patch(
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        {**_split(repository), "check_run_id": check_run_id},
        data=dict(fields),
    )


async def create_check_run(
    gh: GitHub,
    repository: str,
    *,
    name: str,
    head_sha: str,
    external_id: str,
    fields: Mapping[str, Any],
) -> int:
    """Create a check run once: after an ambiguous failure, look for it before creating again."""
    url_vars = _split(repository)

    async def create() -> int:
        created = await gh.post(
            "/repos/{owner}/{repo}/check-runs",
            url_vars,
            data={"name": name, "head_sha": head_sha, "external_id": external_id, **fields},
        )
        return int(created["id"])

    async def find() -> int | None:
        listing = await gh.getitem(
            "/repos/{owner}/{repo}/commits/{ref}/check-runs{?check_name}",
            {**url_vars, "ref": head_sha, "check_name": name},
        )
        for check_run in listing.get("check_runs", []):
            if check_run.get("external_id") == external_id:
                return int(check_run["id"])
        return None

    return await create_once(gh, create=create, find=find)


async def update_pull_body(gh: GitHub, repository: str, number: int, body: str) -> None:
    """Replace a pull request's body."""
    await gh.patch(
        "/repos/{owner}/{repo}/pulls/{number}",
        {**_split(repository), "number": number},
        data={"body": body},
    )


async def post_comment(gh: GitHub, repository: str, number: int, body: str) -> None:
    """Comment on an issue or pull request (a run posts its question this way, once)."""
    await gh.post(
        "/repos/{owner}/{repo}/issues/{number}/comments",
        {**_split(repository), "number": number},
        data={"body": body},
    )


async def mark_ready_for_review(gh: GitHub, node_id: str) -> None:
    """Take a pull request out of draft (GraphQL only: REST has no endpoint for it)."""
    await gh.graphql(MARK_READY, id=node_id)


async def remove_label(gh: GitHub, repository: str, issue: int, label: str) -> bool:
    """Remove a label from an issue; return False if it was not there (a 404 is fine)."""
    try:
        await gh.delete(
            "/repos/{owner}/{repo}/issues/{number}/labels/{name}",
            {**_split(repository), "number": issue, "name": label},
        )
    except gidgethub.BadRequest as error:
        if error.status_code == 404:
            return False
        raise
    return True
