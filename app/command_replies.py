"""What coder says back to a `/coder` command, when there is something to say. Pure.

A reply is posted only for a refusal, a status, help, a question or an error (docs/commands.md);
an accepted command gets a reaction instead. Every reply carries a `command-reply` marker keyed
by the comment and the command's line, so a redelivered event edits the reply it already posted
instead of posting a second one (DESIGN §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.markers import render_marker
from app.permissions import Refusal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.permissions import SenderCheck
    from app.subject_runs import RunView
    from app.verbs import Access, Where

COMMAND_REPLY = "command-reply"
KEY = "key"
DOCS = "docs/commands.md"
MAX_RUNS = 20


@dataclass(frozen=True)
class CommandReply:
    """A reply to one command: the key that finds it again, and its markdown."""

    key: str
    body: str

    @property
    def kind(self) -> str:
        """Return the marker kind every command reply carries."""
        return COMMAND_REPLY

    @property
    def fields(self) -> dict[str, str]:
        """Return the marker fields that find this reply again."""
        return {KEY: self.key}


def reply_key(source: str, source_id: int, line: int) -> str:
    """Return the key of the reply to the command on `line` of a comment (or review)."""
    return f"{source}-{source_id}-{line}"


def _reply(key: str, lines: Sequence[str]) -> CommandReply:
    return CommandReply(key, "\n".join([render_marker(COMMAND_REPLY, **{KEY: key}), *lines]))


def unknown_verb(key: str, verb: str, suggestion: str | None) -> CommandReply:
    """Say a verb is not one coder knows, and which one was probably meant."""
    first = f"`/coder {verb}` is not a coder command."
    if suggestion is not None:
        first += f" Did you mean `/coder {suggestion}`?"
    return _reply(key, [first, "", "`/coder help` lists the commands."])


def wrong_subject(key: str, verb: str, where: Where) -> CommandReply:
    """Say a verb works on the other kind of subject."""
    return _reply(key, [f"`/coder {verb}` works on {where.value}; nothing was done."])


def refused(key: str, verb: str, sender: SenderCheck, repo: str, needs: Access) -> CommandReply:
    """Explain why the sender may not use the verb."""
    if sender.refusal is Refusal.BOT_NOT_ALLOWED:
        reason = (
            f"@{sender.login} is a bot that is not listed in `allowed_bots` in `.github/coder.yml`."
        )
    else:
        reason = (
            f"@{sender.login} has `{sender.role}` access to {repo}; `/coder {verb}` needs "
            f"{needs.value} access or more."
        )
    return _reply(key, [f"coder did not run `/coder {verb}`: {reason}"])


def closed(key: str, verb: str) -> CommandReply:
    """Say the subject is closed, so the verb does nothing."""
    return _reply(key, [f"`/coder {verb}` does nothing here: this is closed. Reopen it first."])


def nothing_to_do(key: str, verb: str, why: str) -> CommandReply:
    """Say the verb found nothing to act on, and why."""
    return _reply(key, [f"`/coder {verb}`: {why}"])


def help_reply(key: str, verb_lines: Sequence[str]) -> CommandReply:
    """List the verbs, one line each."""
    lines = [
        "coder's commands, each at the start of a line of a new comment:",
        "",
        *verb_lines,
        "",
        f"Lines in quotes or code blocks are ignored. More in {DOCS}.",
    ]
    return _reply(key, lines)


def text_reply(key: str, lines: Sequence[str]) -> CommandReply:
    """A reply whose lines the caller composed (status, a question, an error)."""
    return _reply(key, lines)


def status_reply(
    key: str, *, subject: str, runs: Sequence[RunView], queued: bool, pinned: bool
) -> CommandReply:
    """Describe a subject's runs (newest first): state, model, cost, and where it stands."""
    if not runs:
        lines = [f"coder has no runs for {subject}."]
    else:
        lines = [
            f"coder's runs for {subject}, newest first:",
            "",
            "| run | workflow | state | model | cost |",
            "|---|---|---|---|---|",
        ]
        for run in sorted(runs, key=lambda view: view.check_run_id, reverse=True)[:MAX_RUNS]:
            cost = "" if run.cost_usd is None else f"${run.cost_usd:.2f}"
            state = f"[{run.state}]({run.html_url})" if run.html_url else run.state
            lines.append(
                f"| `{run.run_id}` | {run.workflow} | {state} | {run.model or ''} | {cost} |"
            )
        if len(runs) > MAX_RUNS:
            lines.append(f"| … | and {len(runs) - MAX_RUNS} older | | | |")
        spent = sum(run.cost_usd or 0.0 for run in runs)
        lines += ["", f"Spent so far: ${spent:.2f}."]
    if queued:
        lines += ["", "Queue: a fix waits for the run that is going (`coder:queued`)."]
    else:
        lines += ["", "Queue: nothing waiting."]
    if pinned:
        lines.append("Pinned (`coder:pinned`): runs start as soon as they are asked for today.")
    return _reply(key, lines)
