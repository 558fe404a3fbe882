"""What every backend shares: the session it runs, the events it reports, the agent's env."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping
    from pathlib import Path

    from actions.agent.clock import Clock

# The only variables an agent inherits from the runner; everything else (the token above all)
# stays out. A backend may name a few more that its own tool needs (e.g. its API key).
INHERITED = ("PATH", "HOME", "LANG")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_GRACE_SECONDS = 10.0
# Variables handed to an agent whose values are credentials (`ANTHROPIC_API_KEY`, `..._TOKEN`).
SECRET_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
# `http://user:password@host` (a proxy, a model gateway): the password is a credential.
URL_SUFFIXES = ("_PROXY", "_URL")
# Shorter values (a flag such as `CLAUDE_CODE_USE_BEDROCK=1`) are no secret, and masking them
# would blank out every `1` in the job log.
MIN_SECRET_CHARS = 8


class StopReason(StrEnum):
    """Why the runner stopped an agent before it exited by itself."""

    IDLE = "idle"  # printed nothing for limits.idle_minutes
    RUN_LIMIT = "run_limit"  # the run reached limits.run_minutes
    REQUESTED = "requested"  # the runner asked (the agent is stuck, or over budget)


@dataclass(frozen=True)
class Status:
    """The agent says what it is doing (`STATUS: ...`)."""

    text: str


@dataclass(frozen=True)
class Stuck:
    """The agent needs a human's answer to go on (`STUCK: ...`)."""

    question: str


@dataclass(frozen=True)
class Cost:
    """What this session has spent so far (`COST: <usd> [tokens]`); the latest report wins."""

    usd: float
    tokens: int | None = None


@dataclass(frozen=True)
class Output:
    """A line the agent printed, for the job log."""

    line: str
    stream: str = "stdout"


@dataclass(frozen=True)
class Finished:
    """The session is over: how the process ended, and the backend's own error, if any."""

    exit_code: int | None
    stopped: StopReason | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Tell whether the agent finished its work by itself without an error."""
        return self.exit_code == 0 and self.stopped is None and self.error is None


AgentEvent = Status | Stuck | Cost | Output | Finished


@dataclass(frozen=True)
class Limits:
    """When to stop a process: a deadline and an idle allowance on the session's clock."""

    deadline: float | None = None
    idle_seconds: float | None = None
    grace_seconds: float = DEFAULT_GRACE_SECONDS  # real seconds between SIGTERM and SIGKILL


@dataclass
class AgentSession:
    """One role's turn: where it works, what it reads, and how long it may take."""

    role: str
    model: str
    run_id: str
    workspace: Path
    briefing_file: Path
    clock: Clock
    limits: Limits
    runner_environ: Mapping[str, str]
    artifact_file: Path | None = None  # where the session may leave its step artifact
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self) -> None:
        """Ask the backend to stop the agent now (its process group gets SIGTERM)."""
        self.stop_requested.set()

    def agent_env(self, extra: Iterable[str] = ()) -> dict[str, str]:
        """Return the agent's whole environment: PATH/HOME/LANG, `extra` names, CODER_*."""
        env = {
            name: self.runner_environ[name]
            for name in (*INHERITED, *extra)
            if name in self.runner_environ
        }
        env.setdefault("PATH", DEFAULT_PATH)
        env.update(
            {
                "CODER_BRIEFING_FILE": str(self.briefing_file),
                "CODER_ROLE": self.role,
                "CODER_MODEL": self.model,
                "CODER_RUN_ID": self.run_id,
                "CODER_WORKSPACE": str(self.workspace),
            }
        )
        if self.artifact_file is not None:
            env["CODER_ARTIFACT_FILE"] = str(self.artifact_file)
        return env


class Backend(Protocol):
    """An agent backend: runs one session and reports what happens, ending with `Finished`."""

    name: str

    def run(self, session: AgentSession) -> AsyncIterator[AgentEvent]:
        """Run the session; the last event is always `Finished`."""
        ...


def secret_values(environ: Mapping[str, str], names: Iterable[str]) -> tuple[str, ...]:
    """Return the credentials among `names` in `environ` (keys, tokens, URL passwords)."""
    found: list[str] = []
    for name in names:
        value = environ.get(name, "").strip()
        if name.endswith(SECRET_SUFFIXES):
            found.append(value)
        elif name.endswith(URL_SUFFIXES):
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            found += [password, unquote(password)] if password else []
    return tuple(dict.fromkeys(value for value in found if len(value) >= MIN_SECRET_CHARS))
