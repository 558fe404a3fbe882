"""One comment's `/coder` commands: where they were written, by whom, under which config.

Shared by the verb handlers (`app.commands`, `app.run_control`, `app.fix`, `app.prompts`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from app.conversation import react, reply_once
from app.develop import RunRequest, TriggerKind, usable
from app.permissions import check_sender

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from gidgethub.abc import GitHubAPI

    from app import verbs
    from app.command_parser import Command, ParsedComment
    from app.command_replies import CommandReply
    from app.config import CoderConfig, ConfigResult
    from app.conversation import Reaction, Source
    from app.develop import Subject
    from app.events import Repository, User
    from app.permissions import SenderCheck

    Handler = Callable[["Session", Command, verbs.Known, str, ParsedComment], Awaitable["Outcome"]]


class Outcome(enum.Enum):
    """How a command ended, for its reaction."""

    DONE = "done"  # 🚀 now
    STARTED = "started"  # 👀 now; the run adds 🚀 or 😕 when it ends
    FAILED = "failed"  # 😕 now
    REPLIED = "replied"  # the reply says it all (status, help)


@dataclass
class Session:
    """One comment's commands: where they were written, by whom, and under which config."""

    gh: GitHubAPI
    repository: Repository
    subject: Subject
    state: str
    sender: User
    delivery_id: str
    at: str
    source: Source
    config_result: ConfigResult
    bot_login: str
    app_id: int
    pull: Mapping[str, Any] | None = None  # the pull request (REST or webhook shape)
    _sender_check: SenderCheck | None = field(default=None, repr=False)

    @property
    def repo(self) -> str:
        """Return `owner/name`."""
        return self.repository.full_name

    @property
    def number(self) -> int:
        """Return the issue or pull request number."""
        return self.subject.number

    @property
    def config(self) -> CoderConfig:
        """Return the config, or the built-in one while the file is broken."""
        return usable(self.config_result)

    @property
    def is_pull(self) -> bool:
        """Tell whether the subject is a pull request."""
        return self.subject.pull is not None

    def relabel(self, labels: tuple[str, ...]) -> None:
        """Remember the subject's labels after a command changed them (later ones read them)."""
        self.subject = replace(self.subject, labels=tuple(dict.fromkeys(labels)))

    async def sender_check(self) -> SenderCheck:
        """Check the sender's live role once per comment."""
        if self._sender_check is None:
            allowed = self.config_result.config.allowed_bots if self.config_result.config else ()
            self._sender_check = await check_sender(
                self.gh,
                self.repo,
                login=self.sender.login,
                account_type=self.sender.type,
                allowed_bots=allowed,
            )
        return self._sender_check

    async def reply(self, reply: CommandReply) -> None:
        """Post (or edit) the reply to a command on the subject."""
        await reply_once(self.gh, self.repo, self.number, reply, self.bot_login)

    async def react(self, reaction: Reaction) -> None:
        """React to the comment the commands came from."""
        await react(self.gh, self.repo, self.source, reaction)

    def request(self, workflow: str, command: Command, **more: Any) -> RunRequest:
        """Return the run request a command makes for a workflow on this subject."""
        fields: dict[str, Any] = {
            "repo": self.repo,
            "default_branch": self.repository.default_branch,
            "workflow": workflow,
            "subject": self.subject,
            "requested_by": self.sender.login,
            "sender_type": self.sender.type,
            "kind": TriggerKind.COMMAND,
            "trigger": f"`/coder {command.verb}`",
            "trigger_key": self.delivery_id,
            "at": self.at,
            "then": command.then,
            "input_errors": command.problems,
            "asked_in": self.source.render(),
        }
        return RunRequest(**(fields | more))
