"""GraphQL for labels: `Label`, the `Labelable` interface, and `removeLabelsFromLabelable`.

Issues and pull requests are both labelable. Taking a label off either through GraphQL records
the same `unlabeled` event and webhook as `DELETE .../issues/{n}/labels/{name}`:
https://docs.github.com/graphql/reference/mutations#removelabelsfromlabelable
A label the object does not carry is skipped without an error (GraphQL's removal is idempotent,
where REST answers 404); a label id that resolves to no label of the repository is NOT_FOUND.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devhub.rest_labels import issue_permissions, unlabel
from devhub.state import Role, node_id, permission_allows

if TYPE_CHECKING:
    from collections.abc import Callable

    from devhub.http import Context
    from devhub.rest_auth import Principal
    from devhub.state import Account, Issue, Label, Repo, State

MAX_CONNECTION = 100
# GitHub's words when a person lacks the role for a mutation (triage, for labels).
CANNOT_EXECUTE = "{login} does not have the correct permissions to execute `{mutation}`"

SCHEMA = """
type Label {
  id: ID!
  name: String!
  color: String!
  description: String
}

type LabelConnection {
  totalCount: Int!
  nodes: [Label]
}

interface Labelable {
  labels(first: Int, after: String): LabelConnection
}

input RemoveLabelsFromLabelableInput {
  clientMutationId: String
  labelIds: [ID!]!
  labelableId: ID!
}

type RemoveLabelsFromLabelablePayload {
  clientMutationId: String
  labelable: Labelable
}

extend type Mutation {
  removeLabelsFromLabelable(
    input: RemoveLabelsFromLabelableInput!
  ): RemoveLabelsFromLabelablePayload
}
"""


def label_node(label: Label) -> dict[str, Any]:
    """Resolve a label's GraphQL fields."""
    return {
        "id": node_id("LA", label.id),
        "name": label.name,
        "color": label.color,
        "description": label.description,
    }


def labels_connection(issue: Issue) -> Callable[..., dict[str, Any]]:
    """Return the resolver of an issue's (or pull request's) `labels` connection."""

    def labels(_info: Any, first: int | None = None, after: str | None = None) -> dict[str, Any]:
        del after  # one page is all devhub serves; totalCount says how many there are
        count = min(first if first is not None else MAX_CONNECTION, MAX_CONNECTION)
        nodes = [label_node(label) for label in issue.labels[:count]]
        return {"totalCount": len(issue.labels), "nodes": nodes}

    return labels


def find_label(repo: Repo, value: str) -> Label | None:
    """Return the repository's label with node id `value`, if there is one."""
    for label in repo.labels.values():
        if node_id("LA", label.id) == value:
            return label
    return None


def may_label(caller: Principal, role: Role, issue: Issue, *, state: State, repo: Repo) -> bool:
    """Tell whether a caller may change an issue's labels (triage; apps: issues or pulls write).

    An installation token writes only in the repositories it covers: it may read a public
    repository elsewhere, but never change one (GitHub's "Resource not accessible by
    integration").
    """
    if caller.kind == "admin":
        return True
    if caller.kind == "installation":
        if not caller.can_reach(state, repo):
            return False
        return any(
            permission_allows(caller.permissions, *need) for need in issue_permissions(issue)
        )
    return role >= Role.TRIAGE


def remove_labels(
    ctx: Context, repo: Repo, issue: Issue, labels: list[Label], sender: Account
) -> None:
    """Take labels off an issue or pull request; ones it does not carry are skipped."""
    for label in labels:
        if label in issue.labels:
            unlabel(ctx, repo, issue, label, sender)
