"""Safe YAML for config files: bounded loading into plain values, and where each value sits. Pure.

`app/config.py` turns what this finds into config errors; this module knows nothing of coder's
keys, only of YAML documents, their lines and columns, and how merged documents layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

if TYPE_CHECKING:
    from collections.abc import Sequence

NOT_A_MAPPING = "the file must be a mapping of keys (agent:, limits:, ...)"

Node = Annotated[Any, "a ruamel node: CommentedMap, CommentedSeq or a scalar"]


class YamlProblemError(Exception):
    """Why a file cannot be read as a mapping, and where (1-based line and column)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass(frozen=True)
class Document:
    """One YAML mapping: its tree (which knows every key's position) and its plain values."""

    tree: CommentedMap
    values: dict[str, Any]


def load_mapping(text: str | None, *, max_bytes: int, max_nodes: int) -> Document:
    """Load a YAML mapping (None or blank: an empty one); raise YamlProblemError if it is not.

    The bounds reject documents built to exhaust memory, e.g. nested aliases that expand
    exponentially, before anything walks them.
    """
    if text is None or not text.strip():
        return Document(CommentedMap(), {})
    if len(text.encode()) > max_bytes:
        raise YamlProblemError(1, 1, f"the file is larger than {max_bytes // 1024} KB")
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlProblemError(
            line, column, f"invalid YAML: {error.problem or error.context}"
        ) from None
    except YAMLError as error:
        raise YamlProblemError(1, 1, f"invalid YAML: {error}") from None
    if tree is None:
        return Document(CommentedMap(), {})
    if not isinstance(tree, CommentedMap):
        raise YamlProblemError(1, 1, NOT_A_MAPPING)
    try:
        values = _to_plain(tree, budget=[max_nodes])
    except _TooLargeError:
        message = f"the document expands to more than {max_nodes} nodes"
        raise YamlProblemError(1, 1, message) from None
    except _TaggedError as error:
        message = f"YAML tags are not allowed here (found {error.args[0]})"
        raise YamlProblemError(1, 1, message) from None
    return Document(tree, values)


def position(tree: CommentedMap, location: Sequence[Any]) -> tuple[int, int]:
    """Find the line and column of the deepest part of `location` that exists in the YAML."""
    node: Any = tree
    line, column = 1, 1
    for part in location:
        if isinstance(node, CommentedMap) and part in node:
            line, column = node.lc.key(part)
            line, column = line + 1, column + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            item_line, item_column = node.lc.item(part)
            line, column = item_line + 1, item_column + 1
            node = node[part]
        else:
            break
    return line, column


def holder(trees: Sequence[CommentedMap], location: Sequence[Any]) -> int:
    """Return the index of the tree the merged value at `location` comes from (later wins).

    Mappings merge key by key, so several trees can hold part of one; a list or scalar
    replaces, so then only the latest tree that sets it does.
    """
    holders = [(index, trees[index]) for index in reversed(range(len(trees)))]
    for part in location:
        found = [(index, child[0]) for index, node in holders if (child := _child(node, part))]
        if not found:
            break
        if isinstance(found[0][1], CommentedMap):
            found = [(index, node) for index, node in found if isinstance(node, CommentedMap)]
        else:
            found = found[:1]
        holders = found
    return holders[0][0]


def _child(node: Node, part: Any) -> tuple[Any] | tuple[()]:
    """Return `(node[part],)` if the node has that key or index, else `()`."""
    if isinstance(node, CommentedMap) and part in node:
        return (node[part],)
    if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
        return (node[part],)
    return ()


class _TooLargeError(Exception):
    pass


class _TaggedError(Exception):
    pass


def _explicit_tag(node: Node) -> str | None:
    # Safe loading never builds objects from tags, but a tag in a config file is always a
    # mistake or a probe; say so instead of silently reading the tagged value.
    tag = getattr(getattr(node, "tag", None), "value", None)
    return tag if isinstance(tag, str) else None


def _to_plain(node: Node, budget: list[int]) -> Any:
    """Copy ruamel's tree into plain containers, counting nodes (aliases count every time)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLargeError
    tag = _explicit_tag(node)
    if tag is not None or isinstance(node, TaggedScalar):
        raise _TaggedError(tag or "a tag")
    if isinstance(node, CommentedMap):
        return {str(key): _to_plain(value, budget) for key, value in node.items()}
    if isinstance(node, CommentedSeq):
        return [_to_plain(item, budget) for item in node]
    return node
