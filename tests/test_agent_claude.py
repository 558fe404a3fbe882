"""The `claude` backend speaks the line protocol: `STATUS:`, `STUCK:` and `COST:` lines in
Claude's text (an assistant text block or the final `result`) are read as the `command` backend
reads them, from recorded stream-json (tests/fixtures/agent)."""

from __future__ import annotations

import json
import sys

from actions.agent.backends import ClaudeBackend, Cost, Finished, Output, Status, StopReason, Stuck
from actions.agent.backends.claude import ClaudeStream
from tests.test_agent_backends import FIXTURES, session

QUESTION = "Which database should the migration target, Postgres or SQLite?"


def recorded(name):
    return (FIXTURES / name).read_text().splitlines()


def feed(lines):
    stream = ClaudeStream()
    return [event for line in lines for event in stream.feed(line)]


def test_a_stuck_line_in_claude_s_text_is_a_question():
    events = feed(recorded("claude-stuck.jsonl"))
    assert Status("reading the database settings") in events
    assert Stuck(QUESTION) in events
    # Neither line is shown as a status of its own, nor guessed from the text's first line.
    statuses = [event.text for event in events if isinstance(event, Status)]
    assert statuses == ["reading the database settings"]
    assert Output("claude: The migration has to know which database it runs on.") in events
    assert Cost(0.0312, 29123) in events


def test_the_final_result_speaks_the_protocol_too():
    [*_, result] = recorded("claude-stuck.jsonl")
    assert feed([result])[:2] == [Cost(0.0312, 29123), Stuck(QUESTION)]


def test_status_lines_count_and_the_models_own_cost_lines_do_not():
    text = "STATUS: adding the flag\nCOST: 0.01 1200\nCOST: lots\nDone for now."
    line = json.dumps(
        {"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}}
    )
    # What Claude Code spent comes from its `total_cost_usd`; text the model writes (perhaps
    # told to by a hostile issue) cannot lower what the budget sees.
    assert feed([line]) == [
        Status("adding the flag"),
        Output("claude: COST: 0.01 1200"),
        Output("claude: COST: lots"),
        Output("claude: Done for now."),
    ]


def test_text_without_protocol_lines_still_reports_its_first_line():
    events = feed(recorded("claude-success.jsonl"))
    assert Status("I'll start by looking at how the CLI parses its arguments.") in events
    assert not [event for event in events if isinstance(event, Stuck)]


async def test_a_claude_that_asks_is_stopped_like_any_agent(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stream = [line for line in recorded("claude-stuck.jsonl") if '"type":"result"' not in line]
    fake = bin_dir / "claude"
    # It asks, then would go on thinking forever: only the runner's stop ends it.
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        f"sys.stdout.write({chr(10).join(stream) + chr(10)!r})\n"
        "sys.stdout.flush()\n"
        "time.sleep(1000)\n"
    )
    fake.chmod(0o755)
    agent_session = session(tmp_path, environ={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    events = []
    async for event in ClaudeBackend().run(agent_session):
        events.append(event)
        if isinstance(event, Stuck):
            agent_session.request_stop()
    assert Stuck(QUESTION) in events
    assert events[-1] == Finished(-15, StopReason.REQUESTED)
