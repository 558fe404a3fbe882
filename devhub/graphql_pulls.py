"""GraphQL for pull requests: `node(id:)`, `repository.pullRequest`, and their mutations.

`markPullRequestReadyForReview` and `convertPullRequestToDraft` exist only in GraphQL (REST cannot
change `draft`), and emit `pull_request.ready_for_review` / `converted_to_draft`:
https://docs.github.com/graphql/reference/mutations#markpullrequestreadyforreview
`updatePullRequest` edits the body as `PATCH /pulls/{n}` does, with the same `edited` webhook:
https://docs.github.com/graphql/reference/mutations#updatepullrequest
Node ids are the REST `node_id`s, so either API can find what the other returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devhub import graphql_checks, pulls
from devhub.graphql_errors import ForbiddenError, NotFoundError, decode_node_id
from devhub.graphql_labels import labels_connection
from devhub.http import NOT_ACCESSIBLE, Context, RepoAccess, caller_role
from devhub.rest_issues import edit_issue_text
from devhub.state import Role, permission_allows

if TYPE_CHECKING:
    from devhub.rest_auth import Principal
    from devhub.state import Repo
    from devhub.state_pulls import PullRequest

SCHEMA = """
interface Node {
  id: ID!
}

enum PullRequestState {
  OPEN
  CLOSED
  MERGED
}

enum MergeableState {
  MERGEABLE
  CONFLICTING
  UNKNOWN
}

type PullRequest implements Node & Labelable {
  id: ID!
  number: Int!
  title: String!
  body: String!
  state: PullRequestState!
  isDraft: Boolean!
  merged: Boolean!
  mergeable: MergeableState!
  url: URI!
  headRefName: String!
  headRefOid: GitObjectID!
  baseRefName: String!
  headRef: Ref
  labels(first: Int, after: String): LabelConnection
}

input MarkPullRequestReadyForReviewInput {
  pullRequestId: ID!
  clientMutationId: String
}

type MarkPullRequestReadyForReviewPayload {
  clientMutationId: String
  pullRequest: PullRequest
}

input ConvertPullRequestToDraftInput {
  pullRequestId: ID!
  clientMutationId: String
}

type ConvertPullRequestToDraftPayload {
  clientMutationId: String
  pullRequest: PullRequest
}

input UpdatePullRequestInput {
  body: String
  clientMutationId: String
  pullRequestId: ID!
}

type UpdatePullRequestPayload {
  clientMutationId: String
  pullRequest: PullRequest
}

type Mutation {
  markPullRequestReadyForReview(
    input: MarkPullRequestReadyForReviewInput!
  ): MarkPullRequestReadyForReviewPayload
  convertPullRequestToDraft(
    input: ConvertPullRequestToDraftInput!
  ): ConvertPullRequestToDraftPayload
  updatePullRequest(input: UpdatePullRequestInput!): UpdatePullRequestPayload
}
"""


def find_pull_by_node(ctx: Context, caller: Principal, value: str) -> tuple[Repo, PullRequest]:
    """Find a pull request the caller can see by its node id; NOT_FOUND otherwise."""
    decoded = decode_node_id(value)
    if decoded is not None and decoded[0] == "PR":
        for repo in ctx.state.repos.values():
            if caller_role(ctx.state, caller, repo) < Role.READ:
                continue
            for pull in repo.pulls.values():
                if pull.id == decoded[1]:
                    return repo, pull
    raise NotFoundError(f"Could not resolve to a node with the global id of '{value}'")


def pull_node(ctx: Context, caller: Principal, repo: Repo, pull: PullRequest) -> dict[str, Any]:
    """Resolve a pull request's GraphQL fields."""
    state = "MERGED" if pull.merged else pull.issue.state.upper()
    mergeable = {True: "MERGEABLE", False: "CONFLICTING", None: "UNKNOWN"}[pull.facts.mergeable]
    return {
        "__typename": "PullRequest",
        "id": pulls.pull_node_id(pull),
        "number": pull.number,
        "title": pull.issue.title,
        "body": pull.issue.body or "",
        "state": state,
        "isDraft": pull.draft,
        "merged": pull.merged,
        "mergeable": mergeable,
        "url": f"{ctx.urls.web}/{repo.full_name}/pull/{pull.number}",
        "headRefName": pull.head_ref,
        "headRefOid": pull.head_sha,
        "baseRefName": pull.base_ref,
        "headRef": graphql_checks.head_ref(ctx, caller, pull),
        "labels": labels_connection(pull.issue),
    }


def _require_write(ctx: Context, caller: Principal, repo: Repo, pull: PullRequest) -> None:
    if caller.kind == "installation":
        allowed = permission_allows(caller.permissions, "pull_requests", "write")
        if not allowed or not caller.can_reach(ctx.state, repo):
            raise ForbiddenError(NOT_ACCESSIBLE)
        return
    is_author = caller.account is pull.issue.user
    if not is_author and caller_role(ctx.state, caller, repo) < Role.WRITE:
        login = caller.account.login if caller.account else "viewer"
        raise ForbiddenError(f"{login} does not have permission to update this pull request.")


def mutations(ctx: Context, caller: Principal) -> dict[str, Any]:
    """Return the root resolvers of the pull-request mutations."""

    def change_draft(*, draft: bool, action: str) -> Any:
        def resolve(_info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002 - GraphQL's name
            repo, pull = find_pull_by_node(ctx, caller, str(input["pullRequestId"]))
            _require_write(ctx, caller, repo, pull)
            if pull.draft != draft and pull.is_open:
                pull.draft = draft
                sender = caller.account or ctx.admin
                pulls.emit_pull(ctx, action, repo, pull, sender)
            return {
                "clientMutationId": input.get("clientMutationId"),
                "pullRequest": pull_node(ctx, caller, repo, pull),
            }

        return resolve

    def update(_info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002 - GraphQL's name
        repo, pull = find_pull_by_node(ctx, caller, str(input["pullRequestId"]))
        _require_write(ctx, caller, repo, pull)
        if input.get("body") is not None:
            access = RepoAccess(repo, caller, caller_role(ctx.state, caller, repo))
            sender = caller.account or ctx.admin
            edit_issue_text(ctx, access, pull.issue, {"body": input["body"]}, sender)
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequest": pull_node(ctx, caller, repo, pull),
        }

    return {
        "markPullRequestReadyForReview": change_draft(draft=False, action="ready_for_review"),
        "convertPullRequestToDraft": change_draft(draft=True, action="converted_to_draft"),
        "updatePullRequest": update,
    }


def node_resolver(ctx: Context, caller: Principal) -> Any:
    """Return the resolver of `node(id:)` (pull requests)."""

    def node(_info: Any, id: str) -> dict[str, Any]:  # noqa: A002 - GraphQL's name
        repo, pull = find_pull_by_node(ctx, caller, id)
        return pull_node(ctx, caller, repo, pull)

    return node
