"""What a run is asked to do: the issue snapshot, branch names, the initial commit, the PR body.

Pure. The app writes the snapshot into the run branch's first commit message when the label is
added; commit messages are immutable, so the runner later reads exactly what the issue said at
that moment, not a later edit. Untrusted text is cleaned here before it reaches an agent.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from app.markers import render_marker

if TYPE_CHECKING:
    from collections.abc import Iterable

BRANCH_PREFIX = "coder/"
TITLE_PREFIX = "[coder] "
SLUG_MAX = 40
RUN_MARKER = "run"
TRAILER_RUN = "Coder-Run"
TRAILER_WORKFLOW = "Coder-Workflow"
TRAILER_ISSUE = "Coder-Issue"
TRAILER_MODEL = "Coder-Model"
TRAILER_LABELED_BY = "Coder-Labeled-By"
# Optional: why this model ran; the run whose artifact is this run's input (a `then:` chain or
# `coder run --input`); and a `then:` asked for this run only.
TRAILER_MODEL_REASON = "Coder-Model-Reason"
TRAILER_INPUT_RUN = "Coder-Input-Run"
TRAILER_INPUT_CHECK_RUN = "Coder-Input-Check-Run"
TRAILER_THEN = "Coder-Then"
# Where a command asked for the run (`issue-comment:<id>`), so its end can react there; and a
# fix loop's attempt number.
TRAILER_ASKED_IN = "Coder-Asked-In"
TRAILER_ATTEMPT = "Coder-Attempt"
TRAILER_RESUME_AT = "Coder-Resume-At"

HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# Zero-width and bidi-control characters can hide instructions from a human reviewer while an
# agent still reads them (https://trojansource.codes/). Category Cf covers them all.
INVISIBLE_CATEGORIES = frozenset({"Cf"})
TRAILER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (.*)$")


def sanitize(text: str) -> str:
    """Strip hidden HTML comments and invisible format characters from untrusted text."""
    without_comments = HTML_COMMENT.sub("", text.replace("\r\n", "\n"))
    return "".join(
        char for char in without_comments if unicodedata.category(char) not in INVISIBLE_CATEGORIES
    ).strip()


def slugify(title: str) -> str:
    """Return a branch-safe slug of an issue title: lowercase ASCII words joined by hyphens."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > SLUG_MAX:
            break
        slug = candidate
    return slug or "issue"


def branch_name(issue_number: int, title: str, attempt: int = 1) -> str:
    """Return `coder/<issue>-<slug>`, with `-<attempt>` from the second attempt on."""
    base = f"{BRANCH_PREFIX}{issue_number}-{slugify(title)}"
    return base if attempt == 1 else f"{base}-{attempt}"


def branch_attempt(branch: str, base: str) -> int | None:
    """Return which attempt `branch` is of `base` (`base` is 1, `base-<n>` is n), else None."""
    if branch == base:
        return 1
    suffix = branch.removeprefix(f"{base}-") if branch.startswith(f"{base}-") else ""
    return int(suffix) if suffix.isdigit() and int(suffix) >= 2 else None


@dataclass(frozen=True)
class RunBranch:
    """A run branch and the commit it points at."""

    name: str
    head_sha: str


def newest_attempt(branches: Iterable[RunBranch], base: str) -> tuple[RunBranch, int] | None:
    """Return the branch with the highest attempt number of `base`, and that number."""
    numbered = [
        (attempt, branch)
        for branch in branches
        if (attempt := branch_attempt(branch.name, base)) is not None
    ]
    if not numbered:
        return None
    attempt, branch = max(numbered, key=lambda pair: pair[0])
    return branch, attempt


@dataclass(frozen=True)
class Snapshot:
    """The issue as it was when the run was asked for, and who asked."""

    repo: str
    issue_number: int
    title: str
    body: str
    labeled_by: str
    run_id: str
    workflow: str
    model: str
    model_reason: str = ""
    input_run: str | None = None
    input_check_run: int | None = None
    then: str | None = None
    asked_in: str | None = None
    attempt: int | None = None
    resume_at: str | None = None  # a continuation starts at this step (after a question)
    read_only: bool = False  # a fork's pull request: a read-only token, a suggested patch
    answers: str | None = None  # `<check run>:<answered|approved|revised>`: the prompt it closes

    @classmethod
    def taken(
        cls,
        *,
        repo: str,
        issue_number: int,
        title: str,
        body: str | None,
        labeled_by: str,
        run_id: str,
        workflow: str,
        model: str,
        model_reason: str = "",
        input_run: str | None = None,
        input_check_run: int | None = None,
        then: str | None = None,
        asked_in: str | None = None,
        attempt: int | None = None,
        resume_at: str | None = None,
        read_only: bool = False,
        answers: str | None = None,
    ) -> Snapshot:
        """Take a snapshot, cleaning the untrusted title and body."""
        return cls(
            repo=repo,
            issue_number=issue_number,
            title=sanitize(title).replace("\n", " "),
            body=sanitize(body or ""),
            labeled_by=labeled_by,
            run_id=run_id,
            workflow=workflow,
            model=model,
            model_reason=model_reason,
            input_run=input_run,
            input_check_run=input_check_run,
            then=then,
            asked_in=asked_in,
            attempt=attempt,
            resume_at=resume_at,
            read_only=read_only,
            answers=answers,
        )


def initial_commit_message(snapshot: Snapshot) -> str:
    """Render the run branch's first commit: the title, the issue body, then the trailers."""
    body = snapshot.body or "(the issue has no description)"
    lines = [
        f"{TRAILER_RUN}: {snapshot.run_id}",
        f"{TRAILER_WORKFLOW}: {snapshot.workflow}",
        f"{TRAILER_ISSUE}: {snapshot.issue_number}",
        f"{TRAILER_MODEL}: {snapshot.model}",
        f"{TRAILER_LABELED_BY}: {snapshot.labeled_by}",
    ]
    optional = (
        (TRAILER_MODEL_REASON, snapshot.model_reason.replace("\n", " ")),
        (TRAILER_INPUT_RUN, snapshot.input_run),
        (TRAILER_INPUT_CHECK_RUN, snapshot.input_check_run),
        (TRAILER_THEN, snapshot.then),
        (TRAILER_ASKED_IN, snapshot.asked_in),
        (TRAILER_ATTEMPT, snapshot.attempt),
        (TRAILER_RESUME_AT, snapshot.resume_at),
    )
    lines += [f"{key}: {value}" for key, value in optional if value]
    trailers = "\n".join(lines)
    return f"{TITLE_PREFIX}{snapshot.title}\n\n{body}\n\n{trailers}\n"


def parse_trailers(message: str) -> dict[str, str]:
    """Return the trailers of a commit message's last paragraph (`Key: value` lines)."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    trailers: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = TRAILER_LINE.match(line)
        if match is None:
            return {}
        trailers[match.group(1)] = match.group(2).strip()
    return trailers


def snapshot_from_commit(repo: str, message: str) -> Snapshot | None:
    """Read a snapshot back from an initial commit message; None if it is not one of ours."""
    trailers = parse_trailers(message)
    needed = (TRAILER_RUN, TRAILER_WORKFLOW, TRAILER_ISSUE, TRAILER_MODEL, TRAILER_LABELED_BY)
    if not all(key in trailers for key in needed) or not trailers[TRAILER_ISSUE].isdigit():
        return None
    head, _, rest = message.strip().partition("\n\n")
    body, _, _ = rest.rpartition("\n\n")
    return Snapshot(
        repo=repo,
        issue_number=int(trailers[TRAILER_ISSUE]),
        title=head.removeprefix(TITLE_PREFIX),
        body=body.strip(),
        labeled_by=trailers[TRAILER_LABELED_BY],
        run_id=trailers[TRAILER_RUN],
        workflow=trailers[TRAILER_WORKFLOW],
        model=trailers[TRAILER_MODEL],
        model_reason=trailers.get(TRAILER_MODEL_REASON, ""),
        input_run=trailers.get(TRAILER_INPUT_RUN),
        input_check_run=_positive(trailers.get(TRAILER_INPUT_CHECK_RUN)),
        then=trailers.get(TRAILER_THEN),
        asked_in=trailers.get(TRAILER_ASKED_IN),
        attempt=_positive(trailers.get(TRAILER_ATTEMPT)),
        resume_at=trailers.get(TRAILER_RESUME_AT),
    )


def _positive(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and int(value) > 0 else None


RUN_REQUEST_FENCE = "json coder-run"
MAX_RUN_REQUEST_BYTES = 60_000
CUT = "\n(cut to fit the check run)"
RUN_REQUEST_BLOCK = re.compile(r"```json coder-run\n(.*?)\n```", re.DOTALL)


def render_run_request(snapshot: Snapshot) -> str:
    """Render a snapshot as the fenced block a pull-request run's check run carries.

    Runs on a pull request (review) have no branch of their own to hold an initial commit, so
    their snapshot lives in the check run the app creates; only the app can edit it.
    """
    fields = {name: getattr(snapshot, name) for name in Snapshot.__dataclass_fields__}
    rendered = _run_request_block(fields)
    # A check run's text holds 65535 bytes (GitHub: "exceeds a maximum bytesize"): a body that
    # does not fit is cut, never the JSON around it (a clipped block would not parse).
    body = str(fields["body"])
    while _size(rendered) > MAX_RUN_REQUEST_BYTES and body:
        # Escaping and UTF-8 make some characters longer: cut in proportion, then a bit more.
        keep = int(len(body) * MAX_RUN_REQUEST_BYTES / _size(rendered)) - len(CUT) - 100
        body = body[: max(0, keep)]
        fields["body"] = body + CUT
        rendered = _run_request_block(fields)
    return rendered


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _run_request_block(fields: dict[str, object]) -> str:
    # Not ASCII-escaped: GitHub counts characters, and `\uXXXX` would make a briefing in any other
    # script six times longer than it is.
    return f"```{RUN_REQUEST_FENCE}\n{json.dumps(fields, indent=2, ensure_ascii=False)}\n```"


def parse_run_request(text: str | None) -> Snapshot | None:
    """Read a snapshot back from a check run's text; None if there is none."""
    match = RUN_REQUEST_BLOCK.search(text or "")
    if match is None:
        return None
    try:
        fields = json.loads(match.group(1))
        return Snapshot(
            **{name: fields[name] for name in Snapshot.__dataclass_fields__ if name in fields}
        )
    except (json.JSONDecodeError, TypeError):
        return None


class StepState(StrEnum):
    """Where one step of a run stands, as the PR checklist shows it."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Step:
    """One line of the progress checklist."""

    name: str
    state: StepState = StepState.PENDING
    note: str = ""


@dataclass(frozen=True)
class Progress:
    """The checklist in the PR body: the workflow's roles, then tests and push."""

    steps: tuple[Step, ...] = field(default_factory=tuple)

    @classmethod
    def for_roles(cls, roles: tuple[str, ...]) -> Progress:
        """Return a fresh checklist for these roles."""
        return cls(tuple(Step(name) for name in (*roles, "tests", "push")))

    def with_step(self, name: str, state: StepState, note: str = "") -> Progress:
        """Return the checklist with one step moved to `state`."""
        return Progress(
            tuple(Step(s.name, state, note) if s.name == name else s for s in self.steps)
        )


CHECKBOX = {
    StepState.PENDING: "- [ ] {name}",
    StepState.RUNNING: "- [ ] **{name}** (running)",
    StepState.DONE: "- [x] {name}",
    StepState.FAILED: "- [ ] {name}: failed",
    StepState.SKIPPED: "- [ ] ~~{name}~~ (skipped)",
}


def render_checklist(progress: Progress) -> str:
    """Render the checklist as GitHub task-list markdown."""
    lines = []
    for step in progress.steps:
        line = CHECKBOX[step.state].format(name=step.name)
        lines.append(f"{line} — {step.note}" if step.note else line)
    return "\n".join(lines)


def render_pr_body(snapshot: Snapshot, progress: Progress, status: str = "") -> str:
    """Render the run's pull-request body: marker, Closes #N, status, checklist, briefing."""
    quoted = "\n".join(f"> {line}" if line else ">" for line in snapshot.body.splitlines())
    parts = [
        render_marker(RUN_MARKER, id=snapshot.run_id, workflow=snapshot.workflow),
        f"Closes #{snapshot.issue_number}",
        "",
        (
            f"coder is working on this in run `{snapshot.run_id}` ({snapshot.workflow}, "
            f"model {snapshot.model}), asked for by @{snapshot.labeled_by}."
        ),
    ]
    if status:
        parts += ["", f"**Status:** {status}"]
    parts += [
        "",
        "### Progress",
        "",
        render_checklist(progress),
        "",
        "### Briefing",
        "",
        f"**{snapshot.title}**",
        "",
        quoted or "> (the issue has no description)",
    ]
    return "\n".join(parts) + "\n"
