"""The `/coder` verbs: what each means, who may use it, where, and what a typo meant. Pure.

Workflow verbs (`develop`, `research`, `design`, `review`, `release`, and a team's own) come from
`.github/coder.yml`'s `on.command`; the rest are built in (docs/commands.md). Access is the live
repository role the permission API reports (DESIGN §5): `status` and `help` are open to anyone
who can comment, `review` needs triage, everything that changes code or spends money needs write.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import CoderConfig


class Access(enum.Enum):
    """The least repository role a verb needs."""

    ANYONE = "anyone"
    TRIAGE = "triage"
    WRITE = "write"


class Where(enum.Enum):
    """Which subjects a verb works on."""

    ANY = "an issue or a pull request"
    ISSUE = "an issue"
    PULL = "a pull request"


@dataclass(frozen=True)
class Verb:
    """One built-in verb: its usage, one line of help, its access and its subjects."""

    name: str
    usage: str
    summary: str
    access: Access = Access.WRITE
    where: Where = Where.ANY


FIX = "fix"
RETRY = "retry"
CANCEL = "cancel"
STATUS = "status"
ANSWER = "answer"
APPROVE = "approve"
MERGE = "merge"
PIN = "pin"
UNPIN = "unpin"
SPLIT = "split"
HELP = "help"

BUILT_IN: dict[str, Verb] = {
    verb.name: verb
    for verb in (
        Verb(
            FIX,
            "/coder fix [guidance]",
            "New run on this pull request's branch, one model tier up; the guidance and the "
            "review threads go into its briefing.",
            where=Where.PULL,
        ),
        Verb(RETRY, "/coder retry", "Run the last failed run of this issue or pull request again."),
        Verb(CANCEL, "/coder cancel", "Cancel the active run: its job stops, its check run ends."),
        Verb(
            STATUS,
            "/coder status",
            "Reply with this subject's runs: state, model, cost.",
            Access.ANYONE,
        ),
        Verb(ANSWER, "/coder answer <text>", "Answer the question a stuck run asked; it resumes."),
        Verb(APPROVE, "/coder approve", "Approve the plan a run is waiting on; it goes on."),
        Verb(
            MERGE,
            "/coder merge",
            "Put this pull request in the merge queue (label `coder:merge`).",
            where=Where.PULL,
        ),
        Verb(PIN, "/coder pin", "Move this issue to the front of coder's queue."),
        Verb(UNPIN, "/coder unpin", "Take the pin off again."),
        Verb(
            SPLIT,
            "/coder split",
            "Open the architect's proposed split as sub-issues of this issue.",
            where=Where.ISSUE,
        ),
        Verb(HELP, "/coder help", "Reply with this list.", Access.ANYONE),
    )
}
# Close enough to be a typo (difflib's ratio); `fxi` → `fix`, `stauts` → `status`.
TYPO_CUTOFF = 0.6


@dataclass(frozen=True)
class Known:
    """A verb coder knows: a built-in one, or the verb of a workflow (`workflow` set)."""

    verb: str
    access: Access
    where: Where
    workflow: str | None = None


@dataclass(frozen=True)
class Unknown:
    """A verb coder does not know, and the known verb it most likely meant, if any."""

    verb: str
    suggestion: str | None


def workflow_verbs(config: CoderConfig) -> dict[str, str]:
    """Return each workflow verb of the config and the workflow it starts."""
    return {w.on.command: name for name, w in config.workflows.items() if w.on.command}


def resolve(verb: str, config: CoderConfig) -> Known | Unknown:
    """Say what a verb is under this config, or what it may have been meant as."""
    workflows = workflow_verbs(config)
    if verb in BUILT_IN:
        built_in = BUILT_IN[verb]
        if verb == FIX and FIX in workflows:
            return Known(verb, built_in.access, built_in.where, workflows[FIX])
        return Known(verb, built_in.access, built_in.where)
    if verb in workflows:
        workflow = config.workflows[workflows[verb]]
        # Review only reads code: triage (which may label, not push) may ask for it.
        access = Access.TRIAGE if workflow.produces == "review" else Access.WRITE
        where = Where.PULL if workflow.produces == "review" else Where.ANY
        return Known(verb, access, where, workflows[verb])
    candidates = sorted({*BUILT_IN, *workflows})
    close = difflib.get_close_matches(verb, candidates, n=1, cutoff=TYPO_CUTOFF)
    return Unknown(verb, close[0] if close else None)


def allows(access: Access, role: str, *, may_write: bool) -> bool:
    """Tell whether a live role (and whether it may write) meets a verb's access."""
    if access is Access.ANYONE or may_write:
        return True
    return access is Access.TRIAGE and role == "triage"


def help_lines(config: CoderConfig) -> list[str]:
    """Return the verbs, one markdown line each: workflows first, then the built-in ones."""
    lines = []
    for verb, name in sorted(workflow_verbs(config).items()):
        if verb in BUILT_IN:
            continue
        workflow = config.workflows[name]
        steps = ", ".join(workflow.steps)
        lines.append(f"- `/coder {verb}`: start the `{name}` workflow ({steps}).")
    lines += [f"- `{verb.usage}`: {verb.summary}" for verb in BUILT_IN.values()]
    return lines
