"""The `claude` backend: Claude Code in print mode, its stream-json turned into events.

`claude -p --output-format stream-json --verbose` prints one JSON object per line
(https://docs.claude.com/en/docs/claude-code/headless): a `system`/`init` line, then `assistant`
messages (text and `tool_use` blocks) and `user` messages (`tool_result` blocks), and last a
`result` line with `total_cost_usd`, `usage`, `num_turns` and `is_error`.

The briefing asks every agent for the line protocol (`STATUS:`, `STUCK:`, `COST:`), and Claude
writes it in its text: a line of an assistant text block, or of the final `result`, that starts
with `STATUS:` or `STUCK:` is read exactly as the `command` backend reads stdout
(`protocol.parse_line`). Cost comes only from Claude Code's own `total_cost_usd`, never from a
`COST:` line the model writes.
"""

from __future__ import annotations

import json
import math
import shutil
from typing import TYPE_CHECKING, Any

from actions.agent.backends.base import Cost, Finished, Output, Status
from actions.agent.backends.process import ManagedProcess
from actions.agent.backends.protocol import parse_line

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from actions.agent.backends.base import AgentEvent, AgentSession

CLAUDE = "claude"
# Edits are accepted without a prompt (there is nobody to answer one in a job); shell commands
# outside Claude Code's safe set are still refused, and the job has no GitHub token to misuse.
PERMISSION_MODE = "acceptEdits"
# What Claude Code itself needs to reach its model; nothing else of the runner's env is passed.
CLAUDE_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
)
# Linux caps one argv string at 128 KiB (MAX_ARG_STRLEN); a longer briefing is read from its file.
MAX_PROMPT_BYTES = 100_000
USAGE_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
STATUS_CHARS = 200
TOOL_INPUT_KEYS = ("file_path", "path", "command", "pattern", "url")


class ClaudeStream:
    """Turn stream-json lines into events, remembering the final `result` line."""

    def __init__(self) -> None:
        self.result: dict[str, Any] | None = None

    def feed(self, line: str) -> list[AgentEvent]:
        """Return the events one stdout line carries."""
        try:
            message = json.loads(line)
        except ValueError:
            return [Output(line)] if line.strip() else []
        if not isinstance(message, dict):
            return [Output(line)]
        kind = message.get("type")
        if kind == "system" and message.get("subtype") == "init":
            return [Output(f"claude started: model {message.get('model', '?')}")]
        if kind == "assistant":
            return list(self._assistant(message))
        if kind == "user":
            return list(self._tool_results(message))
        if kind == "result":
            return self._result(message)
        return []

    def error(self) -> str | None:
        """Return why the session failed according to its result line, or None if it did not."""
        if self.result is None:
            return "claude ended without a result line"
        if self.result.get("is_error"):
            subtype = self.result.get("subtype", "error")
            return f"claude reported an error ({subtype})"
        return None

    def _assistant(self, message: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for block in _content(message):
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                events += _text_events(str(block["text"]).strip())
            elif block.get("type") == "tool_use":
                events.append(Output(f"claude -> {block.get('name', '?')} {_tool_input(block)}"))
        return events

    def _tool_results(self, message: dict[str, Any]) -> list[AgentEvent]:
        return [
            Output(f"tool error: {_first_line(_text(block.get('content')))}")
            for block in _content(message)
            if block.get("type") == "tool_result" and block.get("is_error")
        ]

    def _result(self, message: dict[str, Any]) -> list[AgentEvent]:
        self.result = message
        events: list[AgentEvent] = []
        cost = message.get("total_cost_usd")
        if isinstance(cost, int | float) and math.isfinite(cost) and cost >= 0:
            events.append(Cost(float(cost), _tokens(message.get("usage"))))
        text = message.get("result")
        if isinstance(text, str) and text.strip():
            # The final text repeats the last assistant block, whose lines were logged already.
            spoken = _text_events(text.strip())
            events += [event for event in spoken if not isinstance(event, Output)]
        turns = message.get("num_turns")
        events.append(Output(f"claude finished: {message.get('subtype', '?')}, {turns} turns"))
        return events


class ClaudeBackend:
    """Run Claude Code headless in the workspace with the briefing as its prompt."""

    name = "claude"

    def run(self, session: AgentSession) -> AsyncIterator[AgentEvent]:
        """Run one Claude Code session."""
        return self._events(session)

    async def _events(self, session: AgentSession) -> AsyncIterator[AgentEvent]:
        env = session.agent_env(CLAUDE_ENV)
        executable = shutil.which(CLAUDE, path=env.get("PATH"))
        if executable is None:
            yield Finished(None, error="claude CLI not found on PATH")
            return
        argv = [
            executable,
            "-p",
            prompt_for(session),
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            session.model,
            "--permission-mode",
            PERMISSION_MODE,
        ]
        if session.artifact_file is not None:
            # Claude Code's file tools only reach the working directory and the directories
            # added to it; the step artifact's directory is outside the workspace on purpose.
            argv += ["--add-dir", str(session.artifact_file.parent)]
        process = ManagedProcess(
            argv,
            cwd=session.workspace,
            env=env,
            clock=session.clock,
            limits=session.limits,
            stop=session.stop_requested,
        )
        stream = ClaudeStream()
        try:
            async for line in process.lines():
                if line.stream == "stdout":
                    for event in stream.feed(line.text):
                        yield event
                else:
                    yield Output(line.text, line.stream)
        except OSError as error:
            yield Finished(None, error=f"could not start claude: {error.strerror}")
            return
        failure = None if process.stopped else stream.error()
        yield Finished(process.returncode, process.stopped, failure)


def prompt_for(session: AgentSession) -> str:
    """Return the prompt: the briefing itself, or a pointer to its file when it is too long."""
    briefing = session.briefing_file.read_text(encoding="utf-8")
    if len(briefing.encode()) <= MAX_PROMPT_BYTES:
        return briefing
    return (
        f"Your briefing is too long to pass inline. Read {session.briefing_file} first, "
        "then do what it asks."
    )


def _text_events(text: str) -> list[AgentEvent]:
    """Turn Claude's text into events: its protocol lines, else its first line as the status."""
    events: list[AgentEvent] = []
    spoke = False  # a STATUS:/STUCK:/COST: line says what is going on; no first-line guess then
    for line in text.splitlines():
        event = parse_line(line)
        if isinstance(event, Output):
            events.append(Output(f"claude: {line}"))
        elif isinstance(event, Cost):
            # Claude Code reports what it spent (`total_cost_usd`); a `COST:` line in its text
            # is words the model wrote, and must not lower what the budget sees.
            events.append(Output(f"claude: {line}"))
        else:
            events.append(event)
            spoke = True
    if not spoke:
        events.insert(0, Status(_first_line(text)))
    return events


def _content(message: dict[str, Any]) -> list[dict[str, Any]]:
    inner = message.get("message")
    content = inner.get("content") if isinstance(inner, dict) else None
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= STATUS_CHARS else line[: STATUS_CHARS - 1] + "…"


def _tool_input(block: dict[str, Any]) -> str:
    arguments = block.get("input")
    if not isinstance(arguments, dict):
        return ""
    for key in TOOL_INPUT_KEYS:
        if isinstance(arguments.get(key), str):
            return _first_line(arguments[key])
    return ""


def _tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    counts = [usage.get(key) for key in USAGE_TOKENS]
    numbers = [count for count in counts if isinstance(count, int)]
    return sum(numbers) if numbers else None
