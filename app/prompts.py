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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app import command_replies as say
from app import verbs
from app.command_session import Outcome
from app.develop import FailedRun
from app.gate import start_run
from app.once import update_check_run, where
from app.prompt_text import PLAN, Prompt, continuation_body, parse_prompt
from app.subject_runs import runs_of_pull

if TYPE_CHECKING:
    from collections.abc import Mapping

    from app.command_parser import Command, ParsedComment
    from app.command_session import Session

log = logging.getLogger(__name__)

COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"


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
