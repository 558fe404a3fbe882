"""Human in the loop: a run's question or plan, and the answer that resumes it (DESIGN §1.3).

A run that needs a person ends `action_required` (its job ends too, so waiting costs no Actions
minutes) and its runner posts a prompt comment on the pull request:
`<!-- coder:prompt id=<run> ask=question|plan check_run=<id> workflow=<w> resume_at=<step> ... -->`.
The prompt is open while that check run is `action_required`. `/coder answer <text>`, a reply
that quotes the question, or `/coder approve` for a plan starts a continuation: a new run of the
same workflow on the pull request, from the step that asked, with the question and the answer in
its briefing and the same model. The asking check run then says who answered and which run went
on, so a second answer finds nothing open.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from app import command_replies as say
from app import verbs
from app.command_session import Outcome
from app.develop import FailedRun
from app.gate import start_run
from app.markers import parse_markers, render_marker
from app.once import update_check_run, where
from app.subject_runs import runs_of_pull

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from app.command_parser import Command, ParsedComment
    from app.command_session import Session

log = logging.getLogger(__name__)

PROMPT = "prompt"
QUESTION = "question"
PLAN = "plan"
COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"
QUOTE_LINE = re.compile(r"^ {0,3}> ?(?P<text>.*)$")
MAX_ANSWER_CHARS = 10_000


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
    for marker in parse_markers(body):
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
    return "\n".join([*parts, "", "## The pull request", "", original or "(no description)"])


async def open_prompts(session: Session) -> list[Prompt]:
    """Return the pull request's prompts whose check run still waits, newest first."""
    pull = session.subject.pull
    if pull is None:
        return []
    gh, repo = session.gh, session.repo
    pages = gh.getiter(COMMENTS_PAGE_URL, where(repo, number=session.number, per_page=100))
    ours = [
        prompt
        async for comment in pages
        if _by(comment, session.bot_login) and (prompt := parse_prompt(comment)) is not None
    ]
    if not ours:
        return []
    waiting = {
        run.check_run_id
        for run in await runs_of_pull(gh, repo, pull.sha, session.app_id)
        if run.conclusion == "action_required"
    }
    return sorted(
        (p for p in ours if p.check_run in waiting), key=lambda p: p.comment_id, reverse=True
    )


def _by(comment: Mapping[str, Any], login: str) -> bool:
    user = comment.get("user") or {}
    return str(user.get("login", "")).casefold() == login.casefold()


async def answer(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """`/coder answer <text>`: resume the run whose question waits here."""
    del known, parsed
    if not command.argument.strip():
        why = "say the answer after the verb: `/coder answer <your answer>`."
        await session.reply(say.nothing_to_do(key, verbs.ANSWER, why))
        return Outcome.FAILED
    prompts = await open_prompts(session)
    if not prompts:
        why = "no run here is waiting for an answer."
        await session.reply(say.nothing_to_do(key, verbs.ANSWER, why))
        return Outcome.FAILED
    return await resume(session, prompts[0], command.argument, verb=verbs.ANSWER)


async def approve(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """`/coder approve`: go on with the plan that waits here."""
    del known, parsed
    plans = [prompt for prompt in await open_prompts(session) if prompt.kind == PLAN]
    if not plans:
        why = (
            "no plan here waits for approval. (Approving a run over its budget arrives with "
            "the budget work; for now raise `budget.per_run_usd` and `/coder retry`.)"
        )
        await session.reply(say.nothing_to_do(key, verbs.APPROVE, why))
        return Outcome.FAILED
    return await resume(session, plans[0], command.argument, verb=verbs.APPROVE)


async def revise_plan(session: Session, prompt: Prompt, changes: str) -> Outcome:
    """`/coder fix <changes>` while a plan waits: the architect plans again with the changes."""
    return await resume(session, prompt, changes, verb=verbs.FIX, revise=True)


async def resume(
    session: Session, prompt: Prompt, text: str, *, verb: str, revise: bool = False
) -> Outcome:
    """Start the continuation of a prompt's run, then close the prompt on its check run."""
    pull = session.subject.pull
    assert pull is not None
    body = continuation_body(
        prompt, answer=text, by=session.sender.login, original=session.subject.body, revise=revise
    )
    first_step = _first_step(session, prompt) if revise else prompt.resume_at
    request = session.request(
        prompt.workflow,
        _as_command(verb),
        subject=replace(session.subject, body=body),
        # One continuation per prompt and head: a second answer, or a redelivery, is the same
        # run; a writer who approves again after the branch moved makes a new one.
        trigger_key=f"{verb}:{prompt.prompt_id}:{pull.sha}",
        continues=FailedRun(prompt.prompt_id, prompt.model or "", "asked"),
        resume_at=first_step,
        input=None,
        input_errors=(),
        then=None,
    )
    if not prompt.model:
        request = replace(request, continues=None)
    if not await start_run(session.gh, request, session.config_result):
        return Outcome.FAILED
    said = "revised" if revise else ("approved" if prompt.kind == PLAN else "answered")
    update = {
        "conclusion": "neutral",
        "output": {
            "title": f"{said.capitalize()} by @{session.sender.login}",
            "summary": (
                f"@{session.sender.login} {said} with `/coder {verb}`; run `{request.run_id}` "
                f"goes on from `{first_step}`."
            ),
        },
        "actions": [],
    }
    await update_check_run(session.gh, session.repo, prompt.check_run, update)
    log.info("prompt %s in %s %s by %s", prompt.prompt_id, session.repo, said, session.sender.login)
    return Outcome.STARTED


def _first_step(session: Session, prompt: Prompt) -> str:
    workflow = session.config.workflows.get(prompt.workflow)
    return workflow.steps[0] if workflow is not None and workflow.steps else prompt.resume_at


def _as_command(verb: str) -> Command:
    from app.command_parser import Command  # noqa: PLC0415 - a type-only import elsewhere

    return Command(verb)


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
