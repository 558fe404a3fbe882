"""The `command` backend: any program that speaks the STATUS:/STUCK:/COST: line protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actions.agent.backends.process import ManagedProcess
from actions.agent.backends.protocol import protocol_events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from actions.agent.backends.base import AgentEvent, AgentSession


class CommandBackend:
    """Run `agent.command` with `bash -c` in the workspace.

    The command comes from `.github/coder.yml` on the default branch, which the repository's
    writers control, so it is trusted like a CI script; issue text never reaches it (the agent
    reads the briefing file).
    """

    name = "command"

    def __init__(self, command: str) -> None:
        self.command = command

    def run(self, session: AgentSession) -> AsyncIterator[AgentEvent]:
        """Run the command for one session."""
        process = ManagedProcess(
            ["bash", "-c", self.command],
            cwd=session.workspace,
            env=session.agent_env(),
            clock=session.clock,
            limits=session.limits,
            stop=session.stop_requested,
        )
        return protocol_events(process)
