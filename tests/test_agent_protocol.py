"""The agents' output: the STATUS:/STUCK:/COST: line protocol and Claude Code's stream-json."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.agent.backends import Cost, Output, Status, Stuck
from actions.agent.backends.claude import ClaudeStream
from actions.agent.backends.protocol import parse_line

FIXTURES = Path(__file__).parent / "fixtures" / "agent"


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ("STATUS: reading the parser", Status("reading the parser")),
        ("STATUS:   padded  ", Status("padded")),
        ("STUCK: which flag name do you want?", Stuck("which flag name do you want?")),
        ("COST: 0.42", Cost(0.42)),
        ("COST: $1.5 12345", Cost(1.5, 12345)),
        ("COST: 0 0", Cost(0.0, 0)),
        ("plain output", Output("plain output")),
        ("status: lower case is plain output", Output("status: lower case is plain output")),
        ("  STATUS: indented is plain output", Output("  STATUS: indented is plain output")),
        ("STATUS:", Output("STATUS:")),
        ("COST: lots", Output("COST: lots")),
        ("COST: -1", Output("COST: -1")),
        ("COST: nan", Output("COST: nan")),
        ("COST: inf", Output("COST: inf")),
        ("COST: 1 2 3", Output("COST: 1 2 3")),
        ("COST: 1 2.5", Output("COST: 1 2.5")),
        ("COST: 1 -2", Output("COST: 1 -2")),
    ],
)
def test_protocol_lines(line, event):
    assert parse_line(line) == event


def test_a_status_is_a_sentence_not_a_document():
    event = parse_line("STATUS: " + "x" * 5000)
    assert isinstance(event, Status)
    assert len(event.text) == 500


def replay(name):
    stream = ClaudeStream()
    events = []
    for line in (FIXTURES / name).read_text().splitlines():
        events.extend(stream.feed(line))
    return stream, events


def test_a_successful_claude_session_becomes_status_and_cost():
    stream, events = replay("claude-success.jsonl")
    statuses = [event.text for event in events if isinstance(event, Status)]
    assert statuses == [
        "I'll start by looking at how the CLI parses its arguments.",
        "Added a `--verbose` flag to the CLI parser; coder will run the tests.",
        "Added a `--verbose` flag to the CLI parser; coder will run the tests.",
    ]
    costs = [event for event in events if isinstance(event, Cost)]
    # total_cost_usd, and every token the usage reports (input, output, cache writes and reads).
    assert costs == [Cost(0.0873213, 26 + 402 + 5942 + 64334)]
    lines = [event.line for event in events if isinstance(event, Output)]
    assert "claude started: model claude-sonnet-4-5-20250929" in lines
    assert any(line.startswith("claude -> Read ") and line.endswith("cli.py") for line in lines)
    assert any(line.startswith("claude -> Edit ") for line in lines)
    assert "claude -> Bash python -m pytest -q tests/test_cli.py" in lines
    assert "tool error: This command requires approval" in lines
    assert "claude finished: success, 7 turns" in lines
    assert stream.error() is None


def test_a_claude_session_that_hit_max_turns_is_an_error():
    stream, events = replay("claude-max-turns.jsonl")
    assert [event for event in events if isinstance(event, Cost)] == [
        Cost(0.0041, 9 + 140 + 4800 + 4700)
    ]
    assert stream.error() == "claude reported an error (error_max_turns)"


def test_a_claude_session_without_a_result_is_an_error():
    stream, _events = replay("claude-success.jsonl")
    fresh = ClaudeStream()
    for line in (FIXTURES / "claude-success.jsonl").read_text().splitlines()[:-1]:
        fresh.feed(line)
    assert stream.error() is None
    assert fresh.error() == "claude ended without a result line"


@pytest.mark.parametrize(
    "line",
    [
        "not json at all",
        "[1, 2]",
        '{"type": "assistant", "message": "not an object"}',
        '{"type": "assistant", "message": {"content": "text"}}',
        '{"type": "result", "total_cost_usd": "free"}',
        '{"type": "rate_limit_event"}',
    ],
)
def test_odd_stream_lines_never_break_the_parser(line):
    events = ClaudeStream().feed(line)
    assert not any(isinstance(event, Cost) for event in events)
