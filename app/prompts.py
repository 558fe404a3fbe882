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
from app.ids import run_id as make_run_id
from app.once import where
from app.prompt_text import PLAN, Prompt, continuation_body, parse_prompt
from app.subject_runs import newest, runs_of_pull, runs_of_pull_history

if TYPE_CHECKING:
    from collections.abc import Mapping

    from app.command_parser import Command, ParsedComment
    from app.command_session import Session

log = logging.getLogger(__name__)

COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"


async def all_prompts(session: Session) -> list[Prompt]:
    """Return every prompt the app posted on the pull request, oldest first."""
    if session.subject.pull is None:
        return []
    pages = session.gh.getiter(
        COMMENTS_PAGE_URL, where(session.repo, number=session.number, per_page=100)
    )
    return [
        prompt
        async for comment in pages
        if _by(comment, session.bot_login) and (prompt := parse_prompt(comment)) is not None
    ]


async def open_prompts(session: Session) -> list[Prompt]:
    """Return the pull request's prompts that still wait, newest first.

    A prompt waits while its check run (read by id: after a push it sits on an older commit) is
    `action_required`, until a newer run on the head ended well: work went on without it.
    """
    pull = session.subject.pull
    ours = await all_prompts(session)
    if pull is None or not ours:
        return []
    gh, repo = session.gh, session.repo
    head_runs = await runs_of_pull(gh, repo, pull.sha, session.app_id)
    settled = max(
        (run.check_run_id for run in head_runs if run.conclusion in {"success", "neutral"}),
        default=0,
    )
    waiting = []
    for prompt in ours:
        if prompt.check_run < settled:
            continue  # superseded: a later run finished the work
        check_run = await gh.getitem(CHECK_RUN_URL, where(repo, check_run_id=prompt.check_run))
        app = check_run.get("app") or {}
        if check_run.get("conclusion") == "action_required" and app.get("id") == session.app_id:
            waiting.append(prompt)
    return sorted(waiting, key=lambda p: p.comment_id, reverse=True)


async def answered_already(session: Session, verb: str) -> bool:
    """Tell whether this delivery's continuation exists (a redelivery after it started)."""
    pull = session.subject.pull
    if pull is None:
        return False
    runs = await runs_of_pull_history(
        session.gh, session.repo, session.number, pull.sha, session.app_id
    )
    ids = {run.run_id for run in runs}
    return any(
        make_run_id(
            session.repo, prompt.workflow, session.number, trigger_key(verb, prompt, session)
        )
        in ids
        for prompt in await all_prompts(session)
    )


def trigger_key(verb: str, prompt: Prompt, session: Session) -> str:
    """Return a continuation's trigger key: one run per prompt and asking delivery."""
    return f"{verb}:{prompt.prompt_id}:{session.delivery_id}"


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
    if not prompts and await answered_already(session, verbs.ANSWER):
        return Outcome.STARTED  # a redelivery: its continuation closed the question already
    if not prompts:
        why = "no run here is waiting for an answer."
        await session.reply(say.nothing_to_do(key, verbs.ANSWER, why))
        return Outcome.FAILED
    return await resume(session, prompts[0], command.argument, verb=verbs.ANSWER, key=key)


async def approve(
    session: Session, command: Command, known: verbs.Known, key: str, parsed: ParsedComment
) -> Outcome:
    """`/coder approve`: go on with the plan that waits here."""
    del known, parsed
    plans = [prompt for prompt in await open_prompts(session) if prompt.kind == PLAN]
    if not plans and await answered_already(session, verbs.APPROVE):
        return Outcome.STARTED  # a redelivery: its continuation closed the plan already
    if not plans:
        why = (
            "no plan here waits for approval. (Approving a run over its budget arrives with "
            "the budget work; for now raise `budget.per_run_usd` and `/coder retry`.)"
        )
        await session.reply(say.nothing_to_do(key, verbs.APPROVE, why))
        return Outcome.FAILED
    return await resume(session, plans[0], command.argument, verb=verbs.APPROVE, key=key)


async def revise_plan(session: Session, prompt: Prompt, changes: str, key: str) -> Outcome:
    """`/coder fix <changes>` while a plan waits: the architect plans again with the changes."""
    return await resume(session, prompt, changes, verb=verbs.FIX, key=key, revise=True)


async def resume(
    session: Session,
    prompt: Prompt,
    text: str,
    *,
    verb: str,
    key: str = "",
    revise: bool = False,
) -> Outcome:
    """Start the continuation of a prompt's run (once per prompt and head)."""
    pull = session.subject.pull
    assert pull is not None
    body = continuation_body(
        prompt, answer=text, by=session.sender.login, original=session.subject.body, revise=revise
    )
    first_step = _first_step(session, prompt) if revise else prompt.resume_at
    said = "revised" if revise else ("approved" if prompt.kind == PLAN else "answered")
    request = session.request(
        prompt.workflow,
        _as_command(verb),
        subject=replace(session.subject, body=body),
        # One continuation per prompt and asking delivery: a redelivery is the same run; a
        # writer who approves again after a refusal makes a new one.
        trigger_key=trigger_key(verb, prompt, session),
        continues=FailedRun(prompt.prompt_id, prompt.model or "", "asked"),
        resume_at=first_step,
        answers=f"{prompt.check_run}:{said}",
        input=None,
        input_errors=(),
        then=None,
    )
    if not prompt.model:
        request = replace(request, continues=None)
    runs = await runs_of_pull(session.gh, session.repo, pull.sha, session.app_id)
    if any(run.run_id == request.run_id for run in runs):
        return Outcome.STARTED  # a redelivery, or a second answer at the same head: one run
    going = newest(runs, active=True)
    if going is not None:
        why = f"run `{going.run_id}` ({going.workflow}) is going here; wait for it or cancel it."
        await session.reply(say.nothing_to_do(key, verb, why))
        return Outcome.FAILED
    if not await start_run(session.gh, request, session.config_result):
        return Outcome.FAILED
    # The prompt stays open until the continuation's job has checked the branch and starts:
    # a continuation refused because the branch moved leaves it for a writer to answer again.
    log.info("prompt %s in %s %s by %s", prompt.prompt_id, session.repo, said, session.sender.login)
    return Outcome.STARTED


def _first_step(session: Session, prompt: Prompt) -> str:
    workflow = session.config.workflows.get(prompt.workflow)
    return workflow.steps[0] if workflow is not None and workflow.steps else prompt.resume_at


def _as_command(verb: str) -> Command:
    from app.command_parser import Command  # noqa: PLC0415 - a type-only import elsewhere

    return Command(verb)
