"""The line protocol agents speak on stdout: `STATUS: ...`, `STUCK: ...`, `COST: <usd> [tokens]`.

Any other line is plain output. A malformed `COST:` line is plain output too: a typo in an agent
must not turn into a made-up number in a check run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from actions.agent.backends.base import Cost, Finished, Output, Status, Stuck

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from actions.agent.backends.base import AgentEvent
    from actions.agent.backends.process import ManagedProcess

STATUS_PREFIX = "STATUS:"
STUCK_PREFIX = "STUCK:"
COST_PREFIX = "COST:"
MAX_TEXT = 500  # a status or a question is a sentence, not a document


def parse_line(line: str) -> AgentEvent:
    """Turn one stdout line into an event."""
    for prefix, kind in ((STATUS_PREFIX, Status), (STUCK_PREFIX, Stuck)):
        if line.startswith(prefix):
            text = line[len(prefix) :].strip()[:MAX_TEXT]
            return kind(text) if text else Output(line)
    if line.startswith(COST_PREFIX):
        cost = parse_cost(line[len(COST_PREFIX) :])
        return cost if cost is not None else Output(line)
    return Output(line)


def parse_cost(text: str) -> Cost | None:
    """Parse `<usd> [tokens]` (a leading `$` is allowed); None if it is not that."""
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        return None
    try:
        usd = float(parts[0].removeprefix("$"))
    except ValueError:
        return None
    if not math.isfinite(usd) or usd < 0:
        return None
    tokens = None
    if len(parts) == 2:
        if not parts[1].isascii() or not parts[1].isdigit():
            return None
        tokens = int(parts[1])
    return Cost(usd, tokens)


async def protocol_events(process: ManagedProcess) -> AsyncIterator[AgentEvent]:
    """Run a protocol-speaking process and yield its events; `Finished` comes last."""
    try:
        async for line in process.lines():
            if line.stream == "stdout":
                yield parse_line(line.text)
            else:
                yield Output(line.text, line.stream)
    except OSError as error:
        yield Finished(None, error=f"could not start {process.argv[0]}: {error.strerror}")
        return
    yield Finished(process.returncode, process.stopped)
