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
from app.labels import QUEUED, RUNNING
from app.markers import find_marked

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from app.retry import RetryPolicy

log = logging.getLogger(__name__)

COMMENTS_URL = "/repos/{owner}/{repo}/issues/{number}/comments"
COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"

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
class CheckRunState:
    """Where the run's check run stands: done (by this job or anyone else) or still open."""

    node_id: str
    status: str  # REST's words: `queued`, `in_progress`, `completed`, ...
    conclusion: str | None = None
    app_slug: str | None = None  # the app that owns it; its bot is `<slug>[bot]`

    @property
    def completed(self) -> bool:
        """Tell whether the check run is over (cancelled, or ended by an earlier attempt)."""
        return self.status == "completed"

    @property
    def bot_login(self) -> str | None:
        """Return the login of the app's bot, which writes the run's comments."""
        return f"{self.app_slug}[bot]" if self.app_slug else None


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
    # An issue subject's check run, read from the head commit's check suites (None: not there).
    check_run: CheckRunState | None = None
    # `coder:queued` in the repository: the end takes it off the pull request, where a fix may
    # have waited for this run (taking off a label it does not carry changes nothing).
    queued_label_id: str | None = None


def _split(repository: str) -> dict[str, str]:
    owner, name = repository.split("/", 1)
    return {"owner": owner, "repo": name}


# One GraphQL read instead of `GET /pulls/{n}`: GraphQL has its own budget, and DESIGN §8 keeps
# a whole develop run within 12 rate-limited REST calls. It also reads the node ids the run's
# end needs (`end_run`). `issue(number:)` does not resolve a pull request's number, so it is
# skipped when the pull request is the run's issue. An issue subject's check run sits on its
# branch's head (the claim commit the app put it on), so its state comes with the same query
# instead of a `GET check-runs/{id}`; a pull-request subject reads its check run in REST anyway.
# https://docs.github.com/en/graphql/reference/objects#pullrequest (`headRef`)
# https://docs.github.com/en/graphql/reference/objects#commit (`checkSuites`)
# https://docs.github.com/en/graphql/reference/objects#checksuite (`app`, `checkRuns`)
# https://docs.github.com/en/graphql/reference/objects#repository (`issue`, `label`)
PULL_QUERY = """
query(
  $owner: String!, $name: String!, $number: Int!, $issue: Int!, $issueIsPull: Boolean!,
  $running: String!, $queued: String!
) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      id number url isDraft headRefName headRefOid baseRefName
      headRef @skip(if: $issueIsPull) {
        target {
          ... on Commit {
            checkSuites(first: 20) {
              nodes {
                app { slug }
                checkRuns(first: 50, filterBy: {checkType: ALL}) {
                  nodes { id databaseId status conclusion }
                }
              }
            }
          }
        }
      }
    }
    issue(number: $issue) @skip(if: $issueIsPull) { id }
    label(name: $running) { id }
    queued: label(name: $queued) { id }
  }
}
"""
# https://docs.github.com/en/graphql/reference/queries#node
CHECK_RUN_QUERY = """
query($id: ID!) {
  node(id: $id) {
    ... on CheckRun { id status conclusion checkSuite { app { slug } } }
  }
}
"""


async def get_pull(
    gh: GitHub, repository: str, number: int, *, issue: int, check_run: int | None = None
) -> PullRequest:
    """Fetch a pull request, its issue's and label's ids and an issue run's check run."""
    owner, name = repository.split("/", 1)
    variables: dict[str, Any] = {"number": number, "issue": issue, "issueIsPull": issue == number}
    try:
        data = await gh.graphql(
            PULL_QUERY, owner=owner, name=name, running=RUNNING, queued=QUEUED, **variables
        )
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
        check_run=_check_run_on_head(pull, check_run),
        queued_label_id=(found.get("queued") or {}).get("id"),
    )


def _check_run_on_head(pull: Mapping[str, Any], check_run: int | None) -> CheckRunState | None:
    target = (pull.get("headRef") or {}).get("target") or {}
    suites = (target.get("checkSuites") or {}).get("nodes") or []
    for suite in filter(None, suites):
        for run in filter(None, (suite.get("checkRuns") or {}).get("nodes") or []):
            if check_run is not None and run.get("databaseId") == check_run:
                return _check_run_state(run, (suite.get("app") or {}).get("slug"))
    return None


def _check_run_state(run: Mapping[str, Any], app_slug: str | None) -> CheckRunState:
    conclusion = run.get("conclusion")
    return CheckRunState(
        node_id=str(run["id"]),
        status=str(run["status"]).lower(),
        conclusion=str(conclusion).lower() if conclusion else None,
        app_slug=app_slug,
    )


async def check_run_state(gh: GitHub, node_id: str) -> CheckRunState | None:
    """Read a check run's state by its node id (GraphQL, so no REST call); None if unreadable."""
    try:
        data = await gh.graphql(CHECK_RUN_QUERY, id=node_id)
    except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError) as error:
        log.warning("could not read the check run's state: %s", error)
        return None
    node = data.get("node") or {}
    if "status" not in node:
        return None
    app = ((node.get("checkSuite") or {}).get("app") or {}).get("slug")
    return _check_run_state(node, app)


@dataclass(frozen=True)
class CheckRun:
    """The parts of a check run the runner reads: where it is and what its output says."""

    id: int
    name: str
    head_sha: str
    text: str | None
    state: CheckRunState | None = None


async def get_check_run(gh: GitHub, repository: str, check_run_id: int) -> CheckRun:
    """Fetch one check run (its `output.text` carries a run request or an artifact)."""
    check_run = await gh.getitem(
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        {**_split(repository), "check_run_id": check_run_id},
    )
    output = check_run.get("output") or {}
    state = CheckRunState(
        node_id=str(check_run.get("node_id", "")),
        status=str(check_run.get("status", "")),
        conclusion=check_run.get("conclusion"),
        app_slug=(check_run.get("app") or {}).get("slug"),
    )
    return CheckRun(
        id=int(check_run["id"]),
        name=str(check_run.get("name", "")),
        head_sha=str(check_run["head_sha"]),
        text=output.get("text"),
        state=state,
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
    """Comment on an issue or pull request."""
    await gh.post(COMMENTS_URL, {**_split(repository), "number": number}, data={"body": body})


async def post_marked_once(
    gh: GitHub,
    repository: str,
    number: int,
    body: str,
    *,
    kind: str,
    author: str,
    **fields: str | int,
) -> bool:
    """Post a comment that starts with a `kind` marker unless `author` already posted it.

    The comment is found again by its marker fields and its author (anyone can type a marker,
    nobody else can post as the app's bot), so a re-run of the same job, or a retry after an
    ambiguous failure, does not post it twice. Return whether it was posted now.
    """
    on_issue: dict[str, str | int] = {**_split(repository), "number": number}

    async def find() -> Mapping[str, Any] | None:
        pages = gh.getiter(COMMENTS_PAGE_URL, {**on_issue, "per_page": 100})
        comments = [comment async for comment in pages]
        return find_marked(comments, kind, author=author, **fields)

    existing = await find()
    if existing is not None:
        log.info("%s comment %s is already on #%d", kind, existing.get("id"), number)
        return False

    async def create() -> Mapping[str, Any]:
        created: Mapping[str, Any] = await gh.post(COMMENTS_URL, on_issue, data={"body": body})
        return created

    await create_once(gh, create=create, find=find)
    return True


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
# The pull request's `coder:queued` comes off last: its `unlabeled` event makes the app start the
# fix that waited for this run (app/fix.py `fix_what_waited`).
END_DEQUEUE = (
    "dequeue: removeLabelsFromLabelable(input: {labelableId: $pull, labelIds: [$queued]}) "
    "{ clientMutationId }"
)
END_FIELDS = {"body": END_BODY, "ready": END_READY, "unlabel": END_UNLABEL, "dequeue": END_DEQUEUE}
END_VARIABLES = {
    "pull": "ID!",
    "body": "String!",
    "labelable": "ID!",
    "label": "ID!",
    "queued": "ID!",
}


@dataclass(frozen=True)
class RunEnd:
    """What the end of a run writes to the pull request and its issue."""

    pull_node_id: str
    body: str | None  # None: the run leaves the body alone
    ready: bool
    labelable_id: str | None  # the issue that carries `coder:running`
    label_id: str | None  # `coder:running`; None: nothing carries it
    queued_label_id: str | None = None  # `coder:queued`, to take off the pull request

    @property
    def parts(self) -> tuple[str, ...]:
        """Name what is due: `body`, `ready`, `unlabel`, `dequeue`, in the order written."""
        unlabel = self.labelable_id is not None and self.label_id is not None
        due = {
            "body": self.body is not None,
            "ready": self.ready,
            "unlabel": unlabel,
            "dequeue": self.queued_label_id is not None,
        }
        return tuple(part for part, wanted in due.items() if wanted)


def end_request(end: RunEnd) -> tuple[str, dict[str, Any]] | None:
    """Return the end's mutation document and variables, or None if nothing is due (pure)."""
    parts = end.parts
    if not parts:
        return None
    variables: dict[str, Any] = {}
    if "body" in parts or "ready" in parts or "dequeue" in parts:
        variables["pull"] = end.pull_node_id
    if "body" in parts:
        variables["body"] = end.body
    if "unlabel" in parts:
        variables |= {"labelable": end.labelable_id, "label": end.label_id}
    if "dequeue" in parts:
        variables["queued"] = end.queued_label_id
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
