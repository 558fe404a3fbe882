"""`/coder <verb> [args]` in a comment, and its ```` ```json coder-input ```` block.

Pure. A command is a line that starts with `/coder` (up to three spaces of indentation, as
markdown allows) outside quotes (`>`), fenced code blocks and indented code (four spaces or a
tab). Verbs are case-insensitive; a bare `/coder` asks for help. Which verbs exist, and what an
unknown one may have meant, is `app.verbs`'s to say: the parser keeps every command it sees. A
command's `body` is its line's words plus the lines after it up to the next command, so
`/coder fix` or `/coder answer` can carry a paragraph. A fenced block whose info string is
`json coder-input` is the request's input artifact (DESIGN §5).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

COMMAND_LINE = re.compile(r"^ {0,3}/coder(?=$|[ \t])(?:[ \t]+(?P<verb>\S+))?(?P<rest>.*)$")
VERB = re.compile(r"^[a-z][a-z0-9_-]*$")
HELP_VERB = "help"
# CommonMark fences: three or more backticks or tildes, up to three spaces of indentation.
FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
FENCE_CLOSE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*$")
QUOTE = re.compile(r"^ {0,3}>")
HTML_BLOCK = re.compile(r"^ {0,3}<!--(?P<rest>.*)$")
HTML_COMMENT_END = "-->"
INPUT_INFO = "json coder-input"
THEN_FLAG = "--then"
WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Command:
    """One `/coder` line: its verb, a `--then` workflow, the rest of its text, its problems."""

    verb: str
    then: str | None = None
    text: str = ""
    line: int = 1
    problems: tuple[str, ...] = ()
    body: str = ""  # `text`, then the lines after the command up to the next one

    @property
    def argument(self) -> str:
        """Return what follows the verb: the rest of its line and the lines after it."""
        return self.body or self.text


@dataclass(frozen=True)
class ParsedComment:
    """Every command in a comment, its input artifact, and what could not be read of it."""

    commands: tuple[Command, ...] = ()
    input: dict[str, object] | None = None
    input_problems: tuple[str, ...] = ()


def parse_comment(body: str | None) -> ParsedComment:
    """Find the `/coder` commands and the coder-input block in a comment (pure)."""
    commands: list[Command] = []
    following: list[list[str]] = []  # the lines after each command, up to the next one
    problems: list[str] = []  # about the input block
    blocks: list[str] = []
    fence: str | None = None
    collecting: list[str] | None = None
    in_quote = in_comment = False
    for number, line in enumerate((body or "").replace("\r\n", "\n").split("\n"), start=1):
        if fence is not None:
            if _closes(line, fence):
                if collecting is not None:
                    blocks.append("\n".join(collecting))
                elif following:
                    following[-1].append(line)
                fence, collecting = None, None
            elif collecting is not None:
                collecting.append(line)
            elif following:
                following[-1].append(line)
            continue
        opened = FENCE_OPEN.match(line)
        if opened is not None:
            in_quote = False  # a fence starts a block of its own, outside the quote
            fence = opened["fence"]
            collecting = [] if opened["info"] == INPUT_INFO else None
            if collecting is None and following:
                following[-1].append(line)
            continue
        if in_comment:
            in_comment = HTML_COMMENT_END not in line
            continue  # hidden from readers, so never a request
        opened_comment = HTML_BLOCK.match(line)
        if opened_comment is not None and HTML_COMMENT_END not in opened_comment["rest"]:
            in_comment = True  # CommonMark: an HTML block opens only at the start of a line
            continue
        if QUOTE.match(line):
            in_quote = True
            continue  # quoted text is someone else's words (a question being answered)
        if in_quote and line.strip():
            continue  # a lazy continuation: markdown shows it inside the quote above
        in_quote = False
        command = COMMAND_LINE.match(line)
        if command is None:
            if following:
                following[-1].append(line)
            continue
        commands.append(_command(command["verb"] or HELP_VERB, command["rest"], number))
        following.append([])
    if fence is not None and collecting is not None:
        problems.append("the coder-input block is not closed")
    artifact, input_problems = _input(blocks)
    with_bodies = tuple(
        replace(command, body=_body(command.text, lines))
        for command, lines in zip(commands, following, strict=True)
    )
    return ParsedComment(with_bodies, artifact, (*problems, *input_problems))


def _body(text: str, lines: list[str]) -> str:
    paragraphs = "\n".join(lines).strip("\n")
    return "\n".join(part for part in (text, paragraphs.rstrip()) if part.strip()).strip()


def _closes(line: str, fence: str) -> bool:
    # CommonMark: up to three spaces in, the fence's character at least as many times, nothing
    # after but spaces. Four spaces in, it is a line of the code block.
    closing = FENCE_CLOSE.match(line)
    return (
        closing is not None
        and closing["fence"][0] == fence[0]
        and len(closing["fence"]) >= len(fence)
    )


def _command(verb: str, rest: str, line: int) -> Command:
    verb = verb.casefold()  # `/coder Fix` is `/coder fix`; `app.verbs` judges what is known
    words = rest.split()
    then: str | None = None
    text: list[str] = []
    problem: str | None = None
    index = 0
    while index < len(words):
        word = words[index]
        if word == THEN_FLAG or word.startswith(f"{THEN_FLAG}="):
            value = word.partition("=")[2] or (words[index + 1] if index + 1 < len(words) else "")
            index += 1 if "=" in word else 2
            if WORKFLOW_NAME.match(value):
                then = value
            else:
                problem = f"line {line}: `{THEN_FLAG}` needs a workflow name"
            continue
        text.append(word)
        index += 1
    return Command(verb, then, " ".join(text), line, () if problem is None else (problem,))


def _input(blocks: list[str]) -> tuple[dict[str, object] | None, list[str]]:
    if not blocks:
        return None, []
    if len(blocks) > 1:
        return None, ["a comment may carry one coder-input block, not several"]
    try:
        value = json.loads(blocks[0])
    except json.JSONDecodeError as error:
        return None, [f"the coder-input block is not JSON (line {error.lineno}: {error.msg})"]
    if not isinstance(value, dict):
        return None, ["the coder-input block must be a JSON object"]
    return value, []


def render_command(verb: str, *, then: str | None = None, input_json: str | None = None) -> str:
    """Render the comment that asks for a run: the command line, then the input block if any."""
    line = f"/coder {verb}" + (f" {THEN_FLAG} {then}" if then else "")
    if input_json is None:
        return line + "\n"
    return f"{line}\n\n```{INPUT_INFO}\n{input_json.strip()}\n```\n"
