"""The labels coder owns (DESIGN §4): names, colours and descriptions."""

from __future__ import annotations

from dataclasses import dataclass

DEVELOP = "coder:develop"
RESEARCH = "coder:research"
DESIGN = "coder:design"
REVIEW = "coder:review"
QUEUED = "coder:queued"
RUNNING = "coder:running"
MERGE = "coder:merge"
PINNED = "coder:pinned"
PRIORITY_PREFIX = "priority:"

# GitHub caps label descriptions at 100 characters.
MAX_DESCRIPTION = 100


@dataclass(frozen=True)
class Label:
    """A repository label as GitHub stores it (colour is six hex digits, no '#')."""

    name: str
    color: str
    description: str


CODER_LABELS: tuple[Label, ...] = (
    Label(DEVELOP, "1d76db", "coder: develop this issue into a tested pull request"),
    Label(RESEARCH, "5319e7", "coder: research this issue and report findings"),
    Label(DESIGN, "0e8a16", "coder: write a design for this issue"),
    Label(REVIEW, "fbca04", "coder: review this pull request"),
    Label(QUEUED, "c5def5", "coder: a fix waits for the run that is going"),
    Label(RUNNING, "0052cc", "coder: a run is in progress"),
    Label(MERGE, "006b75", "coder: land this pull request through the merge queue"),
    Label(PINNED, "b60205", "coder: run this before unpinned work"),
)

LABELS_BY_NAME: dict[str, Label] = {label.name: label for label in CODER_LABELS}
