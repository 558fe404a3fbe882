"""The runner's one GitHub client, and the handful of calls a run makes through it.

`RunnerGitHub` is the app's client (`app.github.GitHub`: the shared retry policy, rate-limit
pacing, GitHub's error handling) with a fixed token and a count of the requests it sent, so the
run can say how many REST calls it cost (DESIGN §8).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import gidgethub

from app.github import GitHub, create_once
from app.labels import RUNNING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from app.retry import RetryPolicy

log = logging.getLogger(__name__)

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
    """The parts of a pull request the runner uses, and the ids its run ends with."""

    number: int
    node_id: str
    html_url: str
    head_ref: str
    head_sha: str
    base_ref: str
    draft: bool
    # The run's issue, which carries `coder:running`: the pull request itself when it is the
    # run's subject (a review, a fix).
    issue_node_id: str | None = None
    # `coder:running` in the repository; None if it does not exist (so nothing carries it).
    running_label_id: str | None = None


def _split(repository: str) -> dict[str, str]:
    owner, name = repository.split("/", 1)
    return {"owner": owner, "repo": name}


# One GraphQL read instead of `GET /pulls/{n}`: GraphQL has its own budget, and DESIGN §8 keeps
# a whole develop run within 12 rate-limited REST calls. It also reads the node ids the run's
# end needs (`end_run`). `issue(number:)` does not resolve a pull request's number, so it is
# skipped when the pull request is the run's issue.
# https://docs.github.com/en/graphql/reference/objects#pullrequest
# https://docs.github.com/en/graphql/reference/objects#repository (`issue`, `label`)
PULL_QUERY = """
query(
  $owner: String!, $name: String!, $number: Int!, $issue: Int!, $issueIsPull: Boolean!,
  $running: String!
) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      id number url isDraft headRefName headRefOid baseRefName
    }
    issue(number: $issue) @skip(if: $issueIsPull) { id }
    label(name: $running) { id }
  }
}
"""


async def get_pull(gh: GitHub, repository: str, number: int, *, issue: int) -> PullRequest:
    """Fetch a pull request and the ids of the run's issue and `coder:running` (one query)."""
    owner, name = repository.split("/", 1)
    variables: dict[str, Any] = {"number": number, "issue": issue, "issueIsPull": issue == number}
    try:
        data = await gh.graphql(PULL_QUERY, owner=owner, name=name, running=RUNNING, **variables)
    except gidgethub.QueryError as error:
        # The issue may be gone (deleted, transferred): the run goes on without its id.
        data = error.response.get("data") or {}
        if not (data.get("repository") or {}).get("pullRequest"):
            raise
        log.warning("GraphQL: %s", error)
    found = data.get("repository") or {}
    pull = found.get("pullRequest")
    if pull is None:
        raise LookupError(f"pull request #{number} does not exist in {repository}")
    subject = pull if issue == number else found.get("issue") or {}
    return PullRequest(
        number=int(pull["number"]),
        node_id=str(pull["id"]),
        html_url=str(pull["url"]),
        head_ref=str(pull["headRefName"]),
        head_sha=str(pull["headRefOid"]),
        base_ref=str(pull["baseRefName"]),
        draft=bool(pull["isDraft"]),
        issue_node_id=subject.get("id"),
        running_label_id=(found.get("label") or {}).get("id"),
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


# The end of a run in one GraphQL request: the final PR body, out of draft, `coder:running` off.
# A document may hold several mutations; they run one after another, in order, and one that
# fails leaves the others standing (its field is null, with an error).
# https://docs.github.com/en/graphql/reference/mutations#updatepullrequest
# https://docs.github.com/en/graphql/reference/mutations#removelabelsfromlabelable
END_BODY = (
    "body: updatePullRequest(input: {pullRequestId: $pull, body: $body}) { clientMutationId }"
)
END_READY = (
    "ready: markPullRequestReadyForReview(input: {pullRequestId: $pull}) { clientMutationId }"
)
END_UNLABEL = (
    "unlabel: removeLabelsFromLabelable(input: {labelableId: $labelable, labelIds: [$label]}) "
    "{ clientMutationId }"
)
END_FIELDS = {"body": END_BODY, "ready": END_READY, "unlabel": END_UNLABEL}
END_VARIABLES = {"pull": "ID!", "body": "String!", "labelable": "ID!", "label": "ID!"}


@dataclass(frozen=True)
class RunEnd:
    """What the end of a run writes to the pull request and its issue."""

    pull_node_id: str
    body: str | None  # None: the run leaves the body alone
    ready: bool
    labelable_id: str | None  # the issue that carries `coder:running`
    label_id: str | None  # `coder:running`; None: nothing carries it

    @property
    def parts(self) -> tuple[str, ...]:
        """Name what is due: `body`, `ready`, `unlabel`, in the order they are written."""
        unlabel = self.labelable_id is not None and self.label_id is not None
        due = {"body": self.body is not None, "ready": self.ready, "unlabel": unlabel}
        return tuple(part for part, wanted in due.items() if wanted)


def end_request(end: RunEnd) -> tuple[str, dict[str, Any]] | None:
    """Return the end's mutation document and variables, or None if nothing is due (pure)."""
    parts = end.parts
    if not parts:
        return None
    variables: dict[str, Any] = {}
    if "body" in parts or "ready" in parts:
        variables["pull"] = end.pull_node_id
    if "body" in parts:
        variables["body"] = end.body
    if "unlabel" in parts:
        variables |= {"labelable": end.labelable_id, "label": end.label_id}
    signature = ", ".join(f"${name}: {END_VARIABLES[name]}" for name in variables)
    fields = "\n  ".join(END_FIELDS[part] for part in parts)
    return f"mutation({signature}) {{\n  {fields}\n}}", variables


async def end_run(gh: GitHub, end: RunEnd) -> tuple[str, ...]:
    """Write the run's end in one GraphQL request; return the parts that did not land."""
    request = end_request(end)
    if request is None:
        return ()
    document, variables = request
    try:
        data = await gh.graphql(document, **variables)
    except gidgethub.QueryError as error:  # some mutations failed; the others took effect
        log.warning("GraphQL end of run: %s", error)
        data = error.response.get("data") or {}
    except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError) as error:
        log.warning("GraphQL end of run failed: %s", error)
        return end.parts
    # A mutation that failed has a null field; one that ran has its payload, even if empty.
    return tuple(part for part in end.parts if data.get(part) is None)


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
