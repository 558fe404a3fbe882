"""Placing a review comment in a file's diff: GitHub's `line`/`side`, `position` and `diff_hunk`.

A comment names a line of the new file (`side: RIGHT`, an added or unchanged line) or of the old
one (`LEFT`, a deleted or unchanged line), optionally with a `start_line` for a range in the same
hunk. The legacy `position` counts lines below the file's first `@@` header, later headers
included. `diff_hunk` is the hunk's header and its lines up to the commented one:
https://docs.github.com/rest/pulls/comments#create-a-review-comment-for-a-pull-request
Pure functions over the patch text of `diff-entry`; `review_comments.py` fetches the patch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devhub.state_pulls import DiffAnchor, Side

HUNK_HEADER = re.compile(r"^@@ -(?P<old>[0-9]+)(?:,[0-9]+)? \+(?P<new>[0-9]+)(?:,[0-9]+)? @@")
SIDES: tuple[Side, ...] = ("LEFT", "RIGHT")


@dataclass(frozen=True)
class AnchorProblem:
    """Why GitHub cannot place a comment: one entry of its 422 answer.

    `field` and `code` fill the `errors` objects of `POST .../pulls/{n}/comments` (with
    `message` when GitHub sends one); `sentence` is how `POST .../reviews` says the same.
    """

    field: str
    code: str
    message: str | None
    sentence: str


DIFF_HUNK_BLANK = AnchorProblem(
    "diff_hunk", "missing_field", None, "Pull request review thread diff hunk can't be blank"
)
PATH_UNRESOLVED = (
    AnchorProblem("path", "invalid", None, "Path could not be resolved"),
    DIFF_HUNK_BLANK,
)
LINE_OUTSIDE = (
    AnchorProblem(
        "line",
        "custom",
        "pull_request_review_thread.line must be part of the diff",
        "Pull request review thread line must be part of the diff",
    ),
    DIFF_HUNK_BLANK,
)
START_OUTSIDE_HUNK = (
    AnchorProblem(
        "start_line",
        "custom",
        "pull_request_review_thread.start_line must be part of the same hunk as the line.",
        "Pull request review thread start line must be part of the same hunk as the line.",
    ),
)
START_AFTER_END = (
    AnchorProblem(
        "start_line",
        "custom",
        "pull_request_review_thread.start_line must precede the end line.",
        "Pull request review thread start line must precede the end line.",
    ),
)


@dataclass(frozen=True)
class DiffLine:
    """One line of a file's patch, numbered as GitHub counts them."""

    index: int  # its index in the patch; the first `@@` header is 0, so this is `position`
    kind: str  # "@" header, " " context, "+" added, "-" deleted, "\\" no-newline marker
    old: int | None  # its number in the old file (context and deleted lines)
    new: int | None  # its number in the new file (context and added lines)
    hunk: int  # the index of its hunk's header


def diff_lines(patch: str) -> list[DiffLine]:
    """Number every line of a patch (the `patch` of a `diff-entry`)."""
    lines: list[DiffLine] = []
    old = new = hunk = 0
    for index, text in enumerate(patch.split("\n")):
        header = HUNK_HEADER.match(text)
        if header is not None:
            old, new, hunk = int(header["old"]), int(header["new"]), index
            lines.append(DiffLine(index, "@", None, None, hunk))
            continue
        kind = text[:1] or " "
        line = DiffLine(
            index,
            kind,
            old if kind in " -" else None,
            new if kind in " +" else None,
            hunk,
        )
        lines.append(line)
        old += kind in " -"
        new += kind in " +"
    return lines


def _find(lines: list[DiffLine], number: int, side: Side) -> DiffLine | None:
    for line in lines:
        if (line.new if side == "RIGHT" else line.old) == number and line.kind in " +-":
            return line
    return None


def _hunk_text(patch: str, end: DiffLine) -> str:
    return "\n".join(patch.split("\n")[end.hunk : end.index + 1])


@dataclass(frozen=True)
class Placement:
    """Where a request asks to comment: a path and a line (or range), or a legacy position."""

    path: str
    line: int | None
    side: Side
    start_line: int | None = None
    start_side: Side | None = None
    position: int | None = None


def place(placement: Placement, patch: str | None) -> DiffAnchor | tuple[AnchorProblem, ...]:
    """Place a comment in its file's patch (None: the file is not in the diff, or binary)."""
    if patch is None:
        return PATH_UNRESOLVED
    if placement.position is not None and placement.line is None:
        return _at_position(placement.path, patch, placement.position)
    return _at_line(placement, patch)


def _at_line(placement: Placement, patch: str) -> DiffAnchor | tuple[AnchorProblem, ...]:
    lines = diff_lines(patch)
    line, side = placement.line, placement.side
    end = _find(lines, line, side) if line is not None else None
    if line is None or end is None:
        return LINE_OUTSIDE
    first_side = placement.start_side or side
    start_line = placement.start_line
    if start_line is not None:
        start = _find(lines, start_line, first_side)
        if start is None or start.hunk != end.hunk:
            return START_OUTSIDE_HUNK
        if start.index >= end.index:
            return START_AFTER_END
    return DiffAnchor(
        path=placement.path,
        line=line,
        side=side,
        start_line=start_line,
        start_side=first_side if start_line is not None else None,
        position=end.index,
        diff_hunk=_hunk_text(patch, end),
    )


def _at_position(path: str, patch: str, position: int) -> DiffAnchor | tuple[AnchorProblem, ...]:
    found = next((x for x in diff_lines(patch) if x.index == position), None)
    if found is None or found.kind not in " +-":
        return LINE_OUTSIDE
    side: Side = "LEFT" if found.kind == "-" else "RIGHT"
    number = found.old if side == "LEFT" else found.new
    return DiffAnchor(
        path=path,
        line=number or 0,
        side=side,
        start_line=None,
        start_side=None,
        position=position,
        diff_hunk=_hunk_text(patch, found),
    )


def to_sentence(parts: list[str]) -> str:
    """Join messages as GitHub's review errors do: "a and b", "a, b, and c"."""
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]
