"""The `script` backend: not an AI. A Python script from the repository, for demos and tests.

It is deterministic by design: `make demo` and the test suite use it to drive a whole run
without a model. It speaks the same STATUS:/STUCK:/COST: protocol as `command`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from actions.agent.backends.process import ManagedProcess
from actions.agent.backends.protocol import protocol_events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from actions.agent.backends.base import AgentEvent, AgentSession


class ScriptBackend:
    """Run a script (read from the default branch, copied outside the workspace) with Python."""

    name = "script (deterministic, not an AI)"

    def __init__(self, script_file: Path) -> None:
        self.script_file = script_file

    def run(self, session: AgentSession) -> AsyncIterator[AgentEvent]:
        """Run the script for one session with the runner's own interpreter."""
        process = ManagedProcess(
            [sys.executable, str(self.script_file)],
            cwd=session.workspace,
            env=session.agent_env(),
            clock=session.clock,
            limits=session.limits,
            stop=session.stop_requested,
        )
        return protocol_events(process)
