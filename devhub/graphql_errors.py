"""GraphQL errors as GitHub tags them, and the node ids devhub hands out."""

from __future__ import annotations

import base64
import binascii

from graphql import GraphQLError

NODE_MARKER = "_kgDO"


class NotFoundError(GraphQLError):
    """A missing object; GitHub tags these errors with `type: NOT_FOUND`."""


class ForbiddenError(GraphQLError):
    """A refused write; GitHub tags these errors with `type: FORBIDDEN`."""


def decode_node_id(value: str) -> tuple[str, int] | None:
    """Split a node id such as `PR_kgDOAAAAAQ` into its prefix and database id."""
    prefix, marker, encoded = value.partition(NODE_MARKER)
    if not marker:
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded.encode())
    except (binascii.Error, ValueError):
        return None
    return prefix, int.from_bytes(raw, "big")
