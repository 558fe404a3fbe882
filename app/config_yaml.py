"""Safe YAML for config files: bounded loading into plain values, and where each value sits. Pure.

`app/config.py` turns what this finds into config errors; this module knows nothing of coder's
keys, only of YAML documents, their lines and columns, and how merged documents layer.

The file is read as a stream of parser events (ruamel.yaml's safe, pure-Python parser, which is
a loop, not a recursion) and composed here, one event at a time, into plain dicts, lists and
scalars. Nothing is ever constructed from a tag: every explicit tag is refused, `!!int` as much
as `!!python/object`, because a config file has no use for one and the plain value says the same.
Composing it here, rather than with ruamel's recursive composer and constructor, is what lets
every bound (depth, nodes, tags, aliases) be checked as it is met, at the line it is on, before
anything walks a structure built to exhaust the stack or memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
)
from ruamel.yaml.nodes import ScalarNode

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ruamel.yaml.events import Event

NOT_A_MAPPING = "the file must be a mapping of keys (agent:, limits:, ...)"
TOO_DEEP = "the document nests more than {limit} levels deep"
TOO_MANY_NODES = "the document expands to more than {limit} nodes"
TAGGED = "YAML tags are not allowed (found {tag}); write the plain value"
NOT_A_KEY = "invalid YAML: a key must be plain text, not a list or mapping"
DUPLICATE_KEY = "invalid YAML: duplicate key {key!r} (first at line {line})"
UNKNOWN_ALIAS = "invalid YAML: the alias *{name} names no anchor before it"
SELF_ALIAS = "invalid YAML: the alias *{name} is inside the value it names"
BAD_MERGE = "invalid YAML: `<<` must merge a mapping or a list of mappings"
ONE_DOCUMENT = "invalid YAML: expected a single document in the stream"
# A config file nests about five levels (workflows.<name>.on.pull_request[0]); a little room for
# anchors and lists of mappings, and far below what any stack or validator would mind.
DEFAULT_MAX_DEPTH = 32
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
MERGE_TAG = f"{YAML_TAG_PREFIX}merge"
# Tags the resolver gives plain scalars that only mean something in special places (`<<` as a
# key, `=`); as values they are the text they are.
TEXT_TAGS = frozenset({MERGE_TAG, f"{YAML_TAG_PREFIX}value"})


class YamlProblemError(Exception):
    """Why a file cannot be read as a mapping, and where (1-based line and column)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass(frozen=True)
class Located:
    """Where a value starts (1-based), and for a mapping or list where each child sits.

    A mapping's children are keyed by key and sit at their key; a list's by index, at the item.
    """

    line: int
    column: int
    mapping: bool = False
    children: Mapping[Any, tuple[int, int, Located]] = field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    """One YAML mapping: where every key sits, and its plain values."""

    tree: Located
    values: dict[str, Any]


def load_mapping(
    text: str | None, *, max_bytes: int, max_nodes: int, max_depth: int = DEFAULT_MAX_DEPTH
) -> Document:
    """Load a YAML mapping (None or blank: an empty one); raise YamlProblemError if it is not.

    The bounds reject documents built to exhaust memory or the stack (nested aliases that expand
    exponentially, thousands of nested brackets) as soon as they are met.
    """
    if text is None or not text.strip():
        return Document(Located(1, 1, mapping=True), {})
    if len(text.encode()) > max_bytes:
        raise YamlProblemError(1, 1, f"the file is larger than {max_bytes // 1024} KB")
    yaml = YAML(typ="safe", pure=True)
    composer = _Composer(yaml, max_nodes=max_nodes, max_depth=max_depth)
    try:
        root = composer.compose(yaml.parse(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlProblemError(
            line, column, f"invalid YAML: {error.problem or error.context}"
        ) from None
    except YAMLError as error:
        raise YamlProblemError(1, 1, f"invalid YAML: {error}") from None
    if root is None or root.value is None:
        return Document(Located(1, 1, mapping=True), {})
    if not isinstance(root.value, dict):
        raise YamlProblemError(root.located.line, root.located.column, NOT_A_MAPPING)
    return Document(root.located, root.value)


def position(tree: Located, location: Sequence[Any]) -> tuple[int, int]:
    """Find the line and column of the deepest part of `location` that exists in the YAML."""
    node, line, column = tree, 1, 1
    for part in location:
        entry = node.children.get(part)
        if entry is None:
            break
        line, column, node = entry
    return line, column


def holder(trees: Sequence[Located], location: Sequence[Any]) -> int:
    """Return the index of the tree the merged value at `location` comes from (later wins).

    Mappings merge key by key, so several trees can hold part of one; a list or scalar
    replaces, so then only the latest tree that sets it does.
    """
    holders = [(index, trees[index]) for index in reversed(range(len(trees)))]
    for part in location:
        found = [(index, entry[2]) for index, node in holders if (entry := node.children.get(part))]
        if not found:
            break
        if found[0][1].mapping:
            found = [(index, node) for index, node in found if node.mapping]
        else:
            found = found[:1]
        holders = found
    return holders[0][0]


@dataclass(frozen=True)
class _Built:
    """A finished value: what it is, where it sits, its nodes, and its levels (a scalar: 0)."""

    value: Any
    located: Located
    size: int
    height: int


@dataclass
class _Open:
    """A mapping or list whose end event has not come yet."""

    event: CollectionStartEvent
    items: list[tuple[Any, int, int, _Built]] = field(default_factory=list)
    key: ScalarEvent | None = None  # a mapping's key, waiting for its value

    @property
    def mapping(self) -> bool:
        return isinstance(self.event, MappingStartEvent)


def _at(event: Event) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


def _shown(tag: str) -> str:
    return f"!!{tag.removeprefix(YAML_TAG_PREFIX)}" if tag.startswith(YAML_TAG_PREFIX) else tag


class _Composer:
    """Compose parser events into plain values, checking every bound as each event comes."""

    def __init__(self, yaml: YAML, *, max_nodes: int, max_depth: int) -> None:
        self._yaml = yaml
        self._budget = max_nodes
        self._max_nodes = max_nodes
        self._max_depth = max_depth
        self._anchors: dict[str, _Built] = {}
        self._stack: list[_Open] = []
        self._root: _Built | None = None

    def compose(self, events: Iterable[Event]) -> _Built | None:
        documents = 0
        for event in events:
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlProblemError(*_at(event), ONE_DOCUMENT)
            elif isinstance(event, (ScalarEvent, CollectionStartEvent)):
                self._untagged(event)
                if isinstance(event, ScalarEvent):
                    self._scalar(event)
                else:
                    self._start(event)
            elif isinstance(event, AliasEvent):
                self._alias(event)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                self._end()
        return self._root

    def _untagged(self, event: ScalarEvent | CollectionStartEvent) -> None:
        # The parser leaves `tag` empty unless the file wrote one (`!x`, `!!int`, `!<...>`).
        if event.tag is not None:
            raise YamlProblemError(*_at(event), TAGGED.format(tag=_shown(str(event.tag))))

    def _count(self, event: Event, nodes: int, height: int) -> None:
        self._budget -= nodes
        if self._budget < 0:
            raise YamlProblemError(*_at(event), TOO_MANY_NODES.format(limit=self._max_nodes))
        if len(self._stack) + height > self._max_depth:
            raise YamlProblemError(*_at(event), TOO_DEEP.format(limit=self._max_depth))

    def _scalar(self, event: ScalarEvent) -> None:
        self._count(event, 1, 0)
        top = self._stack[-1] if self._stack else None
        if top is not None and top.mapping and top.key is None:
            top.key = event
            return
        resolver, constructor = self._yaml.resolver, self._yaml.constructor
        tag = resolver.resolve(ScalarNode, event.value, event.implicit)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            value = event.value if tag in TEXT_TAGS else constructor.construct_object(node)
        except (YAMLError, ValueError, TypeError) as error:
            raise YamlProblemError(*_at(event), f"invalid YAML: {error}") from None
        self._add(event, _Built(value, Located(*_at(event)), 1, 0))

    def _start(self, event: CollectionStartEvent) -> None:
        self._key_expected_not(event)
        self._count(event, 1, 1)
        self._stack.append(_Open(event))

    def _alias(self, event: AliasEvent) -> None:
        self._key_expected_not(event)
        name = str(event.anchor)
        built = self._anchors.get(name)
        if built is None:
            opened = any(open_.event.anchor == name for open_ in self._stack)
            message = SELF_ALIAS if opened else UNKNOWN_ALIAS
            raise YamlProblemError(*_at(event), message.format(name=name))
        # An alias costs every node it stands for, each time: that is what bounds alias bombs.
        self._count(event, built.size, built.height)
        self._add(event, built)

    def _key_expected_not(self, event: Event) -> None:
        top = self._stack[-1] if self._stack else None
        if top is not None and top.mapping and top.key is None:
            raise YamlProblemError(*_at(event), NOT_A_KEY)

    def _end(self) -> None:
        open_ = self._stack.pop()
        start = _at(open_.event)
        size = 1 + sum(built.size for *_, built in open_.items)
        height = 1 + max((built.height for *_, built in open_.items), default=0)
        value: dict[str, Any] | list[Any]
        if open_.mapping:
            value, children = _mapping(open_)
            located = Located(*start, mapping=True, children=children)
        else:
            value = [built.value for *_, built in open_.items]
            children = {
                index: (built.located.line, built.located.column, built.located)
                for index, (*_, built) in enumerate(open_.items)
            }
            located = Located(*start, children=children)
        self._add(open_.event, _Built(value, located, size, height))

    def _add(self, event: Event, built: _Built) -> None:
        anchor = getattr(event, "anchor", None) if not isinstance(event, AliasEvent) else None
        if anchor is not None:
            self._anchors[str(anchor)] = built
        if not self._stack:
            self._root = built
            return
        top = self._stack[-1]
        if top.mapping:
            assert top.key is not None
            key_line, key_column = _at(top.key)
            top.items.append((top.key, key_line, key_column, built))
            top.key = None
        else:
            top.items.append((None, built.located.line, built.located.column, built))


def _mapping(open_: _Open) -> tuple[dict[str, Any], dict[Any, tuple[int, int, Located]]]:
    """Build a mapping's values and positions; `<<` merges, keys written out win, no duplicates."""
    values: dict[str, Any] = {}
    children: dict[Any, tuple[int, int, Located]] = {}
    merged: list[tuple[dict[str, Any], Mapping[Any, tuple[int, int, Located]]]] = []
    for key_event, line, column, built in open_.items:
        assert isinstance(key_event, ScalarEvent)
        key = str(key_event.value)
        if key == "<<" and key_event.implicit[0]:
            merged += _merge_sources(built, line, column)
            continue
        if key in values:
            first = children[key][0]
            raise YamlProblemError(line, column, DUPLICATE_KEY.format(key=key, line=first))
        values[key] = built.value
        children[key] = (line, column, built.located)
    # Earlier sources of a `<<` list win over later ones, and the keys written out over all.
    for source_values, source_children in merged:
        for key, value in source_values.items():
            if key not in values:
                values[key] = value
                children[key] = source_children[key]
    return values, children


def _merge_sources(
    built: _Built, line: int, column: int
) -> list[tuple[dict[str, Any], Mapping[Any, tuple[int, int, Located]]]]:
    if isinstance(built.value, dict):
        return [(built.value, built.located.children)]
    items = built.value if isinstance(built.value, list) else None
    if items is None or not all(isinstance(item, dict) for item in items):
        raise YamlProblemError(line, column, BAD_MERGE)
    return [(item, built.located.children[index][2].children) for index, item in enumerate(items)]
