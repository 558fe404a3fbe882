"""The pure `/coder` parser: workflow verbs, `--then`, and the coder-input block."""

import json

import pytest

from app.commands import Command, parse_comment, render_command


def verbs(body):
    return [(c.verb, c.then, c.text) for c in parse_comment(body).commands]


def test_a_command_is_a_line_that_starts_with_slash_coder():
    assert verbs("/coder develop") == [("develop", None, "")]
    assert verbs("Please look.\n/coder research the login flow\nthanks") == [
        ("research", None, "the login flow")
    ]
    assert verbs("   /coder design") == [("design", None, "")]
    # Not at the start of a line, indented like code, or without a verb: not a command.
    assert verbs("try /coder develop") == []
    assert verbs("    /coder develop") == []
    assert verbs("/coder") == []
    assert verbs("/coderdevelop") == []
    assert verbs("/coder Develop") == []


def test_quotes_and_code_blocks_are_ignored():
    body = "> /coder develop\n```\n/coder develop\n```\n~~~sh\n/coder research\n~~~\n/coder design"
    assert verbs(body) == [("design", None, "")]


def test_then_names_the_next_workflow_anywhere_on_the_line():
    assert verbs("/coder research --then develop") == [("research", "develop", "")]
    assert verbs("/coder research --then=design the auth bug") == [
        ("research", "design", "the auth bug")
    ]
    [command] = parse_comment("/coder research --then").commands
    assert command.then is None
    assert command.problems == ("line 1: `--then` needs a workflow name",)
    [command] = parse_comment("\n/coder research --then ../x").commands
    assert command.problems == ("line 2: `--then` needs a workflow name",)


def test_every_command_in_a_comment_counts():
    parsed = parse_comment("/coder research\r\n/coder develop --then review\r\n")
    assert parsed.commands == (
        Command("research", None, "", 1),
        Command("develop", "review", "", 2),
    )


def test_the_input_block_is_the_input_artifact():
    body = (
        '/coder develop\n\n```json coder-input\n{"kind": "issue", "repo": "a/b", "number": 3}\n```'
    )
    parsed = parse_comment(body)
    assert parsed.input == {"kind": "issue", "repo": "a/b", "number": 3}
    assert parsed.input_problems == ()
    # A command inside the block is JSON, not a command.
    assert verbs('```json coder-input\n{"note": "x"}\n/coder design\n```') == []


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("```json coder-input\n[1, 2]\n```", "the coder-input block must be a JSON object"),
        ("```json coder-input\n{nope}\n```", "the coder-input block is not JSON (line 1:"),
        ("```json coder-input\n{}\n", "the coder-input block is not closed"),
        (
            "```json coder-input\n{}\n```\n```json coder-input\n{}\n```",
            "a comment may carry one coder-input block, not several",
        ),
    ],
)
def test_a_broken_input_block_is_a_problem_not_an_input(block, problem):
    parsed = parse_comment(f"/coder develop\n{block}")
    assert parsed.input is None
    assert len(parsed.input_problems) == 1
    assert parsed.input_problems[0].startswith(problem)


def test_other_fenced_json_is_not_input():
    parsed = parse_comment('/coder develop\n```json\n{"kind": "issue"}\n```')
    assert parsed.input is None
    assert parsed.input_problems == ()


def test_a_rendered_command_parses_back():
    artifact = json.dumps({"kind": "issue", "repo": "a/b", "number": 1})
    body = render_command("develop", then="review", input_json=artifact)
    parsed = parse_comment(body)
    assert parsed.commands == (Command("develop", "review", "", 1),)
    assert parsed.input == json.loads(artifact)
    assert render_command("research") == "/coder research\n"
