"""The pure `/coder` parser: verbs, arguments, `--then`, quotes and code, the coder-input block."""

import json

import pytest

from app.command_parser import Command, parse_comment, render_command


def verbs(body):
    return [(c.verb, c.then, c.text) for c in parse_comment(body).commands]


def test_a_command_is_a_line_that_starts_with_slash_coder():
    assert verbs("/coder develop") == [("develop", None, "")]
    assert verbs("Please look.\n/coder research the login flow\nthanks") == [
        ("research", None, "the login flow")
    ]
    assert verbs("   /coder design") == [("design", None, "")]
    # Not at the start of a line, or indented like code: not a command.
    assert verbs("try /coder develop") == []
    assert verbs("    /coder develop") == []
    assert verbs("\t/coder develop") == []
    assert verbs("/coderdevelop") == []
    # Verbs are case-insensitive; a bare `/coder` asks for help; unknown verbs are kept (for
    # the "did you mean" reply).
    assert verbs("/coder Develop") == [("develop", None, "")]
    assert verbs("/coder") == [("help", None, "")]
    assert verbs("/coder fxi it") == [("fxi", None, "it")]


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


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Quoted lines are someone else's words, wherever they are.
        ("> /coder fix\n>\n> /coder cancel", []),
        ("> quoted\n\n/coder status", ["status"]),
        # Right under a quote, a line continues it (markdown's lazy continuation).
        ("> quoted\n/coder status", []),
        # Inside an HTML comment nobody sees it.
        ("<!--\n/coder fix\n-->\n/coder help", ["help"]),
        # Four spaces in, a fence line is a line of the code block, not its end.
        ("```\n    ```\n/coder fix\n```\n/coder help", ["help"]),
        # A shorter fence does not close a longer one.
        ("````\n```\n/coder fix\n````\n/coder pin", ["pin"]),
        # Fenced and indented code are examples, not requests.
        ("```\n/coder fix\n```\n/coder help", ["help"]),
        ("~~~~\n/coder fix\n~~~\n/coder retry\n~~~~\n/coder help", ["help"]),
        ("Example:\n\n    /coder fix\n\n/coder pin", ["pin"]),
        # Several commands run in order.
        ("/coder pin\n/coder status\n/coder help", ["pin", "status", "help"]),
        # Up to three spaces is still a command, as markdown has it.
        ("   /coder retry", ["retry"]),
    ],
)
def test_quotes_code_and_order(body, expected):
    assert [c.verb for c in parse_comment(body).commands] == expected


def test_a_commands_argument_runs_to_the_next_command():
    body = (
        "/coder fix handle the empty list\n"
        "and keep the old behaviour for None.\n"
        "\n"
        "```python\nassert f([]) == 0\n```\n"
        "> an earlier remark\n"
        "\n"
        "/coder status\n"
    )
    fix, status = parse_comment(body).commands
    assert fix.text == "handle the empty list"
    assert fix.argument == (
        "handle the empty list\nand keep the old behaviour for None.\n\n"
        "```python\nassert f([]) == 0\n```"
    )
    assert (status.verb, status.argument) == ("status", "")


def test_an_answer_quoting_the_question_keeps_only_the_answer():
    body = "> Which database should the cache use?\n\n/coder answer Redis, the one in prod."
    [answer] = parse_comment(body).commands
    assert (answer.verb, answer.argument) == ("answer", "Redis, the one in prod.")
