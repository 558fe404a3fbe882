"""Hidden state markers, `<!-- coder:KIND key=value ... -->`: render, parse, and find again."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
# Values made only of these characters are written bare; anything else is a JSON string.
BARE_VALUE = re.compile(r"[A-Za-z0-9._~:/@+#,=-]+")
# A quoted value is a JSON string; `>` and `<` are always \u-escaped inside it, so no value can
# close the HTML comment early (`-->`, `--!>`) or open another one.
QUOTED_VALUE = r'"(?:[^"\\\n]|\\.)*"'
MARKER = re.compile(
    rf"<!--[ \t]*coder:(?P<kind>{KIND_PATTERN.pattern})"
    rf"(?P<fields>(?:[ \t]+{KEY_PATTERN.pattern}=(?:{QUOTED_VALUE}|{BARE_VALUE.pattern}))*)"
    r"[ \t]*-->"
)
FIELD = re.compile(
    rf"(?P<key>{KEY_PATTERN.pattern})=(?:(?P<quoted>{QUOTED_VALUE})|(?P<bare>{BARE_VALUE.pattern}))"
)


@dataclass(frozen=True)
class Marker:
    """One parsed marker: its kind and its key/value fields."""

    kind: str
    fields: dict[str, str] = field(default_factory=dict)

    def matches(self, kind: str, fields: Mapping[str, str]) -> bool:
        """Tell whether this marker has `kind` and every one of `fields`."""
        return self.kind == kind and all(self.fields.get(k) == v for k, v in fields.items())


def render_marker(kind: str, **fields: str | int) -> str:
    """Render a hidden marker; values are escaped so they cannot end the HTML comment."""
    if not KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"invalid marker kind: {kind!r}")
    parts = [f"<!-- coder:{kind}"]
    for key, raw in fields.items():
        if not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"invalid marker key: {key!r}")
        parts.append(f"{key}={_render_value(str(raw))}")
    return " ".join(parts) + " -->"


def _render_value(value: str) -> str:
    if BARE_VALUE.fullmatch(value):
        return value
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def parse_markers(body: str | None) -> list[Marker]:
    """Return every well-formed coder marker in `body`, in order."""
    markers = []
    for match in MARKER.finditer(body or ""):
        try:
            fields = {
                item["key"]: _parse_value(item["quoted"], item["bare"])
                for item in FIELD.finditer(match["fields"])
            }
        except (ValueError, TypeError):
            continue  # a hand-typed look-alike with a broken escape is not a marker
        markers.append(Marker(match["kind"], fields))
    return markers


def _parse_value(quoted: str | None, bare: str) -> str:
    if quoted is None:
        return bare
    value = json.loads(quoted)
    if not isinstance(value, str):
        raise TypeError("marker value is not a string")
    return value


def leading_marker(body: str | None) -> Marker | None:
    """Return the marker a body starts with, if any: the only one coder trusts.

    The app writes its marker as the first line of everything it posts; what follows may quote
    text others wrote (an agent's question, a fork's patch), which could carry a look-alike.
    """
    first = (body or "").lstrip().partition("\n")[0]
    found = parse_markers(first)
    return found[0] if found and MARKER.match(first) else None


def find_marked(
    comments: Iterable[Mapping[str, Any]],
    kind: str,
    *,
    author: str | None = None,
    **fields: str | int,
) -> Mapping[str, Any] | None:
    """Return the first comment carrying a `kind` marker with `fields`, written by `author`."""
    return next(iter(all_marked(comments, kind, author=author, **fields)), None)


def all_marked(
    comments: Iterable[Mapping[str, Any]],
    kind: str,
    *,
    author: str | None = None,
    **fields: str | int,
) -> list[Mapping[str, Any]]:
    """Return every comment carrying a `kind` marker with `fields`, written by `author`."""
    wanted = {key: str(value) for key, value in fields.items()}
    found = []
    for comment in comments:
        # Only the app's own comments are trusted when `author` is given: anyone can type a
        # marker into a comment, but nobody else can post as `<slug>[bot]`.
        if author is not None and not _written_by(comment, author):
            continue
        body = comment.get("body")
        if not isinstance(body, str):
            continue
        marker = leading_marker(body)
        if marker is not None and marker.matches(kind, wanted):
            found.append(comment)
    return found


def _written_by(comment: Mapping[str, Any], login: str) -> bool:
    user = comment.get("user")
    if not isinstance(user, Mapping):
        return False
    # GitHub logins are case-insensitive.
    return str(user.get("login", "")).casefold() == login.casefold()
