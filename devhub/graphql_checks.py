"""GraphQL for checks: `Commit.checkSuites`, `CheckSuite.checkRuns`, and `CheckRun` nodes.

The types and arguments are GitHub's (https://docs.github.com/graphql/reference/objects#checkrun,
#checksuite, input objects `CheckRunFilter` and `CheckSuiteFilter`), cut down to the fields
coder reads. Statuses and conclusions are the upper-case enum values of `CheckStatusState` and
`CheckConclusionState`. An installation token needs `checks: read` to see them, as in REST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devhub.git import GitError
from devhub.graphql_errors import ForbiddenError, NotFoundError, decode_node_id
from devhub.http import NOT_ACCESSIBLE, caller_role
from devhub.state import Role, iso, node_id, permission_allows

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.rest_auth import Principal
    from devhub.state import App, Repo
    from devhub.state_checks import CheckRun, CheckSuite
    from devhub.state_pulls import PullRequest

MAX_CONNECTION = 100

SCHEMA = """
enum CheckStatusState {
  COMPLETED
  IN_PROGRESS
  PENDING
  QUEUED
  REQUESTED
  WAITING
}

enum CheckConclusionState {
  ACTION_REQUIRED
  CANCELLED
  FAILURE
  NEUTRAL
  SKIPPED
  STALE
  STARTUP_FAILURE
  SUCCESS
  TIMED_OUT
}

enum CheckRunType {
  ALL
  LATEST
}

input CheckRunFilter {
  appId: Int
  checkName: String
  checkType: CheckRunType
  conclusions: [CheckConclusionState!]
  status: CheckStatusState
  statuses: [CheckStatusState!]
}

input CheckSuiteFilter {
  appId: Int
  checkName: String
}

type App implements Node {
  id: ID!
  databaseId: Int
  name: String!
  slug: String!
}

type CheckRun implements Node {
  id: ID!
  databaseId: Int
  name: String!
  status: CheckStatusState!
  conclusion: CheckConclusionState
  externalId: String
  title: String
  summary: String
  text: String
  detailsUrl: URI
  startedAt: DateTime
  completedAt: DateTime
  url: URI!
  checkSuite: CheckSuite!
}

type CheckRunConnection {
  totalCount: Int!
  nodes: [CheckRun]
}

type CheckSuite implements Node {
  id: ID!
  databaseId: Int
  status: CheckStatusState!
  conclusion: CheckConclusionState
  app: App
  checkRuns(first: Int, after: String, filterBy: CheckRunFilter): CheckRunConnection
}

type CheckSuiteConnection {
  totalCount: Int!
  nodes: [CheckSuite]
}

extend type Commit {
  checkSuites(first: Int, after: String, filterBy: CheckSuiteFilter): CheckSuiteConnection
}
"""


def _may_read_checks(ctx: Context, caller: Principal, repo: Repo) -> bool:
    if caller_role(ctx.state, caller, repo) < Role.READ:
        return False
    return caller.kind != "installation" or permission_allows(caller.permissions, "checks", "read")


def check_suites(ctx: Context, caller: Principal, repo: Repo, sha: str) -> Any:
    """Return the resolver of a commit's `checkSuites` connection."""

    def resolve(
        _info: Any,
        first: int | None = None,
        after: str | None = None,
        filterBy: dict[str, Any] | None = None,  # noqa: N803 - GraphQL's name
    ) -> dict[str, Any]:
        del after  # one page is all devhub serves; totalCount says how many there are
        if not _may_read_checks(ctx, caller, repo):
            raise ForbiddenError(NOT_ACCESSIBLE)
        wanted = filterBy or {}
        suites = [
            suite
            for suite in repo.check_suites.values()
            if suite.head_sha == sha
            and wanted.get("appId") in {None, suite.app.id}
            and wanted.get("checkName") in {None, *(run.name for run in suite.runs)}
        ]
        nodes = [suite_node(ctx, repo, suite) for suite in suites[: _count(first)]]
        return {"totalCount": len(suites), "nodes": nodes}

    return resolve


async def branch_ref(
    ctx: Context, caller: Principal, repo: Repo, branch: str, sha: str
) -> dict[str, Any]:
    """Resolve a branch's `Ref`; its target is the commit it points at, with its check suites."""
    commit = await ctx.git.get_commit(repo.owner.login, repo.name, sha)
    target = {
        "__typename": "Commit",
        "id": node_id("C", int(sha[:12], 16)),
        "oid": sha,
        "message": commit.message,
        "checkSuites": check_suites(ctx, caller, repo, sha),
    }
    return {
        "id": node_id("REF", repo.id),
        "name": branch,
        "prefix": "refs/heads/",
        "target": target,
    }


def head_ref(ctx: Context, caller: Principal, pull: PullRequest) -> Any:
    """Return the resolver of a pull request's `headRef`: null once the branch is deleted."""

    async def resolve(_info: Any) -> dict[str, Any] | None:
        head = pull.head_repo  # the base repository, or a fork whose branch lives there
        try:
            sha = await ctx.git.get_ref(head.owner.login, head.name, f"refs/heads/{pull.head_ref}")
        except GitError:
            return None
        return await branch_ref(ctx, caller, head, pull.head_ref, sha)

    return resolve


def suite_node(ctx: Context, repo: Repo, suite: CheckSuite) -> dict[str, Any]:
    """Resolve a check suite's GraphQL fields."""

    def check_runs(
        _info: Any,
        first: int | None = None,
        after: str | None = None,
        filterBy: dict[str, Any] | None = None,  # noqa: N803 - GraphQL's name
    ) -> dict[str, Any]:
        del after
        runs = _filtered(suite, filterBy or {})
        nodes = [run_node(ctx, repo, run) for run in runs[: _count(first)]]
        return {"totalCount": len(runs), "nodes": nodes}

    return {
        "__typename": "CheckSuite",
        "id": node_id("CS", suite.id),
        "databaseId": suite.id,
        "status": suite.status.upper(),
        "conclusion": _enum(suite.conclusion),
        "app": _app_node(suite.app),
        "checkRuns": check_runs,
    }


def run_node(ctx: Context, repo: Repo, run: CheckRun) -> dict[str, Any]:
    """Resolve a check run's GraphQL fields."""
    return {
        "__typename": "CheckRun",
        "id": node_id("CR", run.id),
        "databaseId": run.id,
        "name": run.name,
        "status": run.status.upper(),
        "conclusion": _enum(run.conclusion),
        "externalId": run.external_id,
        "title": run.output.get("title"),
        "summary": run.output.get("summary"),
        "text": run.output.get("text"),
        "detailsUrl": run.details_url or run.app.external_url,
        "startedAt": iso(run.started_at),
        "completedAt": iso(run.completed_at),
        "url": f"{ctx.urls.web}/{repo.full_name}/runs/{run.id}",
        "checkSuite": lambda _info: suite_node(ctx, repo, run.suite),
    }


def find_run_by_node(ctx: Context, caller: Principal, value: str) -> dict[str, Any]:
    """Resolve `node(id:)` for a check run the caller may read; NOT_FOUND otherwise."""
    decoded = decode_node_id(value)
    if decoded is not None and decoded[0] == "CR":
        for repo in ctx.state.repos.values():
            run = repo.check_runs.get(decoded[1])
            if run is not None and _may_read_checks(ctx, caller, repo):
                return run_node(ctx, repo, run)
    raise NotFoundError(f"Could not resolve to a node with the global id of '{value}'")


def _filtered(suite: CheckSuite, wanted: dict[str, Any]) -> list[CheckRun]:
    runs = [
        run
        for run in suite.runs
        if wanted.get("appId") in {None, suite.app.id}
        and wanted.get("checkName") in {None, run.name}
    ]
    statuses = wanted.get("statuses") or ([wanted["status"]] if wanted.get("status") else [])
    if statuses:
        runs = [run for run in runs if run.status.upper() in statuses]
    if wanted.get("conclusions"):
        runs = [run for run in runs if _enum(run.conclusion) in wanted["conclusions"]]
    if (wanted.get("checkType") or "LATEST") == "LATEST":
        # GitHub's default: the newest run of each name (a re-run replaces the older one).
        newest: dict[str, CheckRun] = {}
        for run in runs:
            if run.name not in newest or run.id > newest[run.name].id:
                newest[run.name] = run
        runs = [run for run in runs if newest[run.name] is run]
    return runs


def _app_node(app: App) -> dict[str, Any]:
    return {
        "__typename": "App",
        "id": app.node_id,
        "databaseId": app.id,
        "name": app.name,
        "slug": app.slug,
    }


def _enum(value: str | None) -> str | None:
    return None if value is None else value.upper()


def _count(first: int | None) -> int:
    return min(first if first is not None else MAX_CONNECTION, MAX_CONNECTION)
