"""GraphQL at `/api/graphql`: a small real schema (graphql-core), GitHub's auth and error shape.

Only what coder asks for is in the schema; anything else is a validation error exactly as GitHub
reports an unknown field. Errors come back with status 200 in `{"errors": [...]}`, and a missing
object carries `"type": "NOT_FOUND"`, like https://docs.github.com/graphql.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aiohttp import web
from graphql import GraphQLSchema, build_schema, graphql

from devhub import graphql_checks, graphql_labels, graphql_pulls
from devhub.git import GitError
from devhub.graphql_errors import ForbiddenError, NotFoundError, decode_node_id
from devhub.http import (
    GRAPHQL_PATH,
    NOT_ACCESSIBLE,
    Context,
    GitHubError,
    caller_role,
    context,
    json_response,
    principal,
)
from devhub.state import Issue, Repo, Role, node_id

if TYPE_CHECKING:
    from graphql.error import GraphQLError as _Error

    from devhub.rest_auth import Principal

ROUTES = web.RouteTableDef()

SCHEMA = """
scalar DateTime
scalar GitObjectID
scalar URI

type Query {
  viewer: User!
  rateLimit(dryRun: Boolean = false): RateLimit
  repository(owner: String!, name: String!): Repository
  node(id: ID!): Node
}

type User {
  id: ID!
  login: String!
  name: String
}

type RateLimit {
  cost: Int!
  limit: Int!
  nodeCount: Int!
  remaining: Int!
  resetAt: DateTime!
  used: Int!
}

type Repository {
  id: ID!
  name: String!
  nameWithOwner: String!
  isPrivate: Boolean!
  url: URI!
  defaultBranchRef: Ref
  issue(number: Int!): Issue
  label(name: String!): Label
  pullRequest(number: Int!): PullRequest
}

type Ref {
  id: ID!
  name: String!
  prefix: String!
  target: GitObject
}

interface GitObject {
  id: ID!
  oid: GitObjectID!
}

type Commit implements GitObject {
  id: ID!
  oid: GitObjectID!
  message: String!
}

enum IssueState {
  OPEN
  CLOSED
}

type Issue implements Labelable {
  id: ID!
  number: Int!
  title: String!
  body: String!
  state: IssueState!
  url: URI!
  labels(first: Int, after: String): LabelConnection
}
"""
NEEDS_AUTH = "This endpoint requires you to be authenticated."
AUTH_DOCS = (
    "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"
)


@cache
def schema() -> GraphQLSchema:
    """Build the schema once."""
    return build_schema(
        SCHEMA + graphql_pulls.SCHEMA + graphql_labels.SCHEMA + graphql_checks.SCHEMA
    )


@ROUTES.post(GRAPHQL_PATH)
async def query(request: web.Request) -> web.Response:
    """Execute one GraphQL request."""
    caller = principal(request)
    if caller.kind == "anonymous":
        raise GitHubError(401, NEEDS_AUTH, documentation_url=AUTH_DOCS)
    if caller.kind == "app":
        raise GitHubError(403, NOT_ACCESSIBLE)
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise GitHubError(400, "Problems parsing JSON") from None
    text = body.get("query") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return json_response(
            {"errors": [{"message": "A query attribute must be specified and must be a string."}]}
        )
    variables = body.get("variables") if isinstance(body.get("variables"), dict) else None
    result = await graphql(
        schema(),
        text,
        root_value=_root(context(request), caller),
        variable_values=variables,
        operation_name=body.get("operationName"),
    )
    answer: dict[str, Any] = {}
    if result.errors:
        answer["errors"] = [_error_json(error) for error in result.errors]
    if result.data is not None or not result.errors:
        answer["data"] = result.data
    return json_response(answer)


def _error_json(error: _Error) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    for kind, name in ((NotFoundError, "NOT_FOUND"), (ForbiddenError, "FORBIDDEN")):
        if isinstance(error.original_error, kind) or isinstance(error, kind):
            formatted["type"] = name
    return formatted


def _root(ctx: Context, caller: Principal) -> dict[str, Any]:
    def viewer(_info: Any) -> dict[str, Any]:
        account = caller.account
        assert account is not None
        return {"id": account.node_id, "login": account.login, "name": account.name}

    def rate_limit(_info: Any, dryRun: bool = False) -> dict[str, Any]:  # noqa: N803 - GraphQL's name
        bucket = ctx.limits.bucket(caller, "graphql")
        cost = 0 if dryRun else 1
        return {
            "cost": 1,
            "limit": bucket.limit,
            "nodeCount": 0,
            "remaining": max(0, bucket.remaining - cost),
            "resetAt": datetime.fromtimestamp(bucket.reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "used": bucket.used + cost,
        }

    def repository(_info: Any, owner: str, name: str) -> dict[str, Any]:
        repo = ctx.state.repo(owner, name)
        if repo is None or caller_role(ctx.state, caller, repo) < Role.READ:
            message = f"Could not resolve to a Repository with the name '{owner}/{name}'."
            raise NotFoundError(message)
        return _repository(ctx, caller, repo)

    return {
        "viewer": viewer,
        "rateLimit": rate_limit,
        "repository": repository,
        "node": _node_resolver(ctx, caller),
        "removeLabelsFromLabelable": _remove_labels(ctx, caller),
    } | graphql_pulls.mutations(ctx, caller)


def _node_resolver(ctx: Context, caller: Principal) -> Any:
    """Return the resolver of `node(id:)`: pull requests and check runs."""
    pulls = graphql_pulls.node_resolver(ctx, caller)

    def node(info: Any, id: str) -> dict[str, Any]:  # noqa: A002 - GraphQL's name
        decoded = decode_node_id(id)
        if decoded is not None and decoded[0] == "CR":
            return graphql_checks.find_run_by_node(ctx, caller, id)
        found: dict[str, Any] = pulls(info, id)
        return found

    return node


def _remove_labels(ctx: Context, caller: Principal) -> Any:
    def resolve(_info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002 - GraphQL's name
        repo, issue, labelable = _find_labelable(ctx, caller, str(input["labelableId"]))
        labels = []
        for value in input["labelIds"]:
            label = graphql_labels.find_label(repo, str(value))
            if label is None:
                raise NotFoundError(_unresolved(str(value)))
            labels.append(label)
        role = caller_role(ctx.state, caller, repo)
        if not graphql_labels.may_label(caller, role, issue, state=ctx.state, repo=repo):
            if caller.kind == "installation":
                raise ForbiddenError(NOT_ACCESSIBLE)
            login = caller.account.login if caller.account else "viewer"
            mutation = "RemoveLabelsFromLabelable"
            raise ForbiddenError(
                graphql_labels.CANNOT_EXECUTE.format(login=login, mutation=mutation)
            )
        sender = caller.account or ctx.admin
        graphql_labels.remove_labels(ctx, repo, issue, labels, sender)
        return {"clientMutationId": input.get("clientMutationId"), "labelable": labelable}

    return resolve


def _find_labelable(
    ctx: Context, caller: Principal, value: str
) -> tuple[Repo, Issue, dict[str, Any]]:
    """Find an issue or pull request the caller can see by its node id; NOT_FOUND otherwise."""
    decoded = decode_node_id(value)
    if decoded is not None and decoded[0] == "PR":
        repo, pull = graphql_pulls.find_pull_by_node(ctx, caller, value)
        return repo, pull.issue, graphql_pulls.pull_node(ctx, caller, repo, pull)
    if decoded is not None and decoded[0] == "I":
        for repo in ctx.state.repos.values():
            if caller_role(ctx.state, caller, repo) < Role.READ:
                continue
            for issue in repo.issues.values():
                if issue.id == decoded[1] and not issue.is_pull_request:
                    return repo, issue, _issue(ctx, repo, issue)
    raise NotFoundError(_unresolved(value))


def _unresolved(value: str) -> str:
    return f"Could not resolve to a node with the global id of '{value}'"


def _repository(ctx: Context, caller: Principal, repo: Repo) -> dict[str, Any]:
    async def default_branch_ref(_info: Any) -> dict[str, Any] | None:
        ref = f"refs/heads/{repo.default_branch}"
        try:
            sha = await ctx.git.get_ref(repo.owner.login, repo.name, ref)
        except GitError:
            return None
        return await graphql_checks.branch_ref(ctx, caller, repo, repo.default_branch, sha)

    def issue(_info: Any, number: int) -> dict[str, Any]:
        found = repo.issues.get(number)
        if found is None or found.is_pull_request:
            raise NotFoundError(f"Could not resolve to an Issue with the number of {number}.")
        return _issue(ctx, repo, found)

    def pull_request(_info: Any, number: int) -> dict[str, Any]:
        found = repo.pulls.get(number)
        if found is None:
            message = f"Could not resolve to a PullRequest with the number of {number}."
            raise NotFoundError(message)
        return graphql_pulls.pull_node(ctx, caller, repo, found)

    def label(_info: Any, name: str) -> dict[str, Any] | None:
        found = repo.label(name)  # by name, case-insensitively; a missing label is null
        return None if found is None else graphql_labels.label_node(found)

    return {
        "pullRequest": pull_request,
        "label": label,
        "id": node_id("R", repo.id),
        "name": repo.name,
        "nameWithOwner": repo.full_name,
        "isPrivate": repo.private,
        "url": f"{ctx.urls.web}/{repo.full_name}",
        "defaultBranchRef": default_branch_ref,
        "issue": issue,
    }


def _issue(ctx: Context, repo: Repo, issue: Issue) -> dict[str, Any]:
    return {
        "__typename": "Issue",
        "id": node_id("I", issue.id),
        "number": issue.number,
        "title": issue.title,
        "body": issue.body or "",
        "state": issue.state.upper(),
        "url": f"{ctx.urls.web}/{repo.full_name}/issues/{issue.number}",
        "labels": graphql_labels.labels_connection(issue),
    }
