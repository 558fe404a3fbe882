"""The text of human-in-the-loop prompts: the comment a run posts, read back, and answered. Pure.

Shared by the runner (which posts a prompt when its run needs a person) and the app (which finds
it again and starts the continuation, `app.prompts`). The comment starts with a marker:
`<!-- coder:prompt id=<run> ask=question|plan check_run=<id> workflow=<w> resume_at=<step> ... -->`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.markers import leading_marker, render_marker

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

PROMPT = "prompt"
QUESTION = "question"
PLAN = "plan"
QUOTE_LINE = re.compile(r"^ {0,3}> ?(?P<text>.*)$")
MAX_ANSWER_CHARS = 10_000
# A continuation's briefing travels in its check run's run request (65535 characters in all).
MAX_SUBJECT_CHARS = 20_000


@dataclass(frozen=True)
class Prompt:
    """A question (or a plan) a run asked, as its prompt comment records it."""

    prompt_id: str  # the run that asked
    kind: str  # QUESTION or PLAN
    check_run: int
    workflow: str
    resume_at: str
    head_sha: str
    model: str
    question: str  # the question, or the plan in markdown
    comment_id: int = 0


def render_prompt(prompt: Prompt) -> str:
    """Render the prompt comment a runner posts: its marker, the question, how to answer."""
    marker = render_marker(
        PROMPT,
        id=prompt.prompt_id,
        ask=prompt.kind,
        check_run=prompt.check_run,
        workflow=prompt.workflow,
        resume_at=prompt.resume_at,
        sha=prompt.head_sha,
        model=prompt.model,
    )
    if prompt.kind == PLAN:
        lines = [
            (
                f"Run `{prompt.prompt_id}` ({prompt.workflow}) has a plan and waits for "
                f"approval before `{prompt.resume_at}` starts:"
            ),
            "",
            prompt.question.strip(),
            "",
            "`/coder approve` goes on with this plan; `/coder fix <changes>` revises it first.",
        ]
    else:
        lines = [
            f"Run `{prompt.prompt_id}` ({prompt.workflow}) stopped at `{prompt.resume_at}` to ask:",
            "",
            _quoted(prompt.question),
            "",
            (
                "Answer with `/coder answer <your answer>`, or reply quoting the question. The "
                "run goes on from there with your answer."
            ),
        ]
    return "\n".join([marker, *lines]) + "\n"


def parse_prompt(comment: Mapping[str, Any]) -> Prompt | None:
    """Read a prompt comment back (the caller checks it is the app's own); None if not one."""
    body = str(comment.get("body") or "")
    for marker in filter(None, [leading_marker(body)]):
        if marker.kind != PROMPT:
            continue
        fields = marker.fields
        if not fields.get("check_run", "").isdigit():
            return None
        return Prompt(
            prompt_id=fields.get("id", ""),
            kind=fields.get("ask", QUESTION),
            check_run=int(fields["check_run"]),
            workflow=fields.get("workflow", ""),
            resume_at=fields.get("resume_at", ""),
            head_sha=fields.get("sha", ""),
            model=fields.get("model", ""),
            question=_asked(body, fields.get("ask", QUESTION)),
            comment_id=int(comment.get("id") or 0),
        )
    return None


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())


def _asked(body: str, kind: str) -> str:
    """Return what the prompt asked: its quoted question, or its plan section."""
    if kind == PLAN:
        lines = body.strip().splitlines()[2:-1]  # between the first line and the how-to line
        return "\n".join(lines).strip()
    quoted = [m["text"] for line in body.splitlines() if (m := QUOTE_LINE.match(line))]
    return "\n".join(quoted).strip()


def quotes(body: str | None) -> bool:
    """Tell whether a comment quotes something (only such a comment can answer by quoting)."""
    return any(QUOTE_LINE.match(line) for line in (body or "").splitlines())


def quoted_answer(body: str | None, prompts: Iterable[Prompt]) -> tuple[Prompt, str] | None:
    """Tell whether a comment answers a question by quoting it; return the prompt and answer.

    GitHub's "Quote reply" puts `> ` before every line of the comment it quotes.
    """
    quoted: list[str] = []
    said: list[str] = []
    for line in (body or "").replace("\r\n", "\n").splitlines():
        match = QUOTE_LINE.match(line)
        (quoted if match else said).append(match["text"] if match else line)
    answer = "\n".join(said).strip()
    if not quoted or not answer:
        return None
    heard = _words(" ".join(quoted))
    for prompt in prompts:
        if prompt.kind == QUESTION and _words(prompt.question) and _words(prompt.question) in heard:
            return prompt, answer
    return None


def _words(text: str) -> str:
    return " ".join(text.replace(">", " ").split()).casefold()


def continuation_body(
    prompt: Prompt, *, answer: str, by: str, original: str | None, revise: bool = False
) -> str:
    """Render a continuation's briefing: what was asked, the answer, then the subject (pure)."""
    answer = answer.strip()[:MAX_ANSWER_CHARS]
    if prompt.kind == PLAN and revise:
        parts = [
            "## Revise the plan",
            "",
            f"@{by} asked for changes to the plan before it is approved:",
            "",
            answer,
            "",
            "## The plan so far",
            "",
            prompt.question,
        ]
    elif prompt.kind == PLAN:
        parts = [f"## The approved plan (approved by @{by})", "", prompt.question]
        if answer:
            parts += ["", f"@{by} added:", "", answer]
    else:
        parts = [
            f"## The question run `{prompt.prompt_id}` asked",
            "",
            _quoted(prompt.question),
            "",
            f"## The answer, from @{by}",
            "",
            answer,
        ]
    subject = (original or "(no description)")[:MAX_SUBJECT_CHARS]
    return "\n".join([*parts, "", "## The pull request", "", subject])


def plan_markdown(plan: Mapping[str, Any] | None, fallback: Sequence[str] = ()) -> str:
    """Render an architect's plan (its step artifact's fields) for the prompt comment (pure)."""
    if not plan:
        return "\n".join(fallback) or "(the architect left no plan)"
    lines = []
    summary = plan.get("summary")
    if summary:
        lines += [str(summary).strip(), ""]
    files = plan.get("files") or []
    if files:
        lines += ["Files it expects to touch:", ""] + [f"- `{path}`" for path in files] + [""]
    steps = plan.get("steps") or []
    if steps:
        lines += [f"{number}. {step}" for number, step in enumerate(steps, start=1)]
    return "\n".join(lines).strip() or "(the architect left an empty plan)"
