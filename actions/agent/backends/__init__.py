"""Agent backends: each runs one agent session in the workspace and reports events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actions.agent.backends.base import (
    INHERITED,
    AgentEvent,
    AgentSession,
    Backend,
    Cost,
    Finished,
    Limits,
    Output,
    Status,
    StopReason,
    Stuck,
    secret_values,
)
from actions.agent.backends.claude import CLAUDE_ENV, ClaudeBackend
from actions.agent.backends.command import CommandBackend
from actions.agent.backends.script import ScriptBackend

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from app.config import Agent

__all__ = [
    "AgentEvent",
    "AgentSession",
    "Backend",
    "BackendError",
    "ClaudeBackend",
    "CommandBackend",
    "Cost",
    "Finished",
    "Limits",
    "Output",
    "ScriptBackend",
    "Status",
    "StopReason",
    "Stuck",
    "agent_secrets",
    "make_backend",
]


class BackendError(Exception):
    """The configured backend cannot run here; the message says what to change."""


def make_backend(agent: Agent, *, script_file: Path | None = None) -> Backend:
    """Return the backend `agent.backend` names; `script_file` is the script read from the base."""
    if agent.backend == "claude":
        return ClaudeBackend()
    if agent.backend == "command":
        if not agent.command:
            raise BackendError("agent.backend is command but agent.command is not set")
        return CommandBackend(agent.command)
    if agent.backend == "script":
        if not agent.script or script_file is None:
            raise BackendError("agent.backend is script but agent.script names no file")
        return ScriptBackend(script_file)
    raise BackendError(f"agent.backend {agent.backend} is not supported by this runner yet")


def agent_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Return every credential the runner may hand an agent (its model key, tokens), to mask.

    They are masked whichever backend runs: they are in the job, and an agent, its tests or a
    tool it starts could print them into a status, a question, a step artifact or a patch.
    """
    return secret_values(environ, dict.fromkeys((*INHERITED, *CLAUDE_ENV)))
