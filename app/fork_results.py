"""`POST /api/runs/result`: a read-only run hands its result to the app, which writes it.

A fix on a fork's pull request (`allow_fork_runs`) runs the fork's code, so its job holds only a
read-only token (`app.oidc.READ_ONLY_PERMISSIONS`): it cannot complete its own check run, and it
never pushes. It sends its result here instead, authenticated by a fresh OIDC token of the same
job. The app checks the token as the exchange does, that the job's workflow run is the read-only
one coder dispatched, and that the check run named is that run's own; then it completes the
check run and posts the patch on the pull request as a suggestion, once. The text is the
runner's; it is clipped, its conclusion is one of a fixed few, and the patch goes into a fenced
block, so a forged result can at worst suggest a bad patch for a person to read.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import gidgethub
from aiohttp import web

from app import labels, replies
from app.briefing import parse_run_request
from app.conversation import Reaction, Source, react
from app.dispatched_runs import WORKFLOW_RUN_URL, run_id_from_title
from app.issue_labels import remove_label
from app.markers import find_marked, render_marker
from app.oidc import (
    GITHUB_UNREACHABLE,
    ISSUER_UNREACHABLE,
    MISSING_BEARER,
    TOKEN_EXCHANGE_KEY,
    IssuerUnavailableError,
    TokenRefusedError,
    bearer_token,
    message_response,
)
from app.once import comment_once, update_check_run, where
from app.prompt_text import PLAN, PROMPT, QUESTION, Prompt, render_prompt
from app.reconcile import remove_running_label

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI

    from app.briefing import Snapshot

log = logging.getLogger(__name__)

RESULT_PATH = "/api/runs/result"
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
COMMENTS_URL = "/repos/{owner}/{repo}/issues/{number}/comments"
COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"
STEP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
SHA = re.compile(r"^[0-9a-f]{40}$")
SUGGESTED_PATCH = "suggested-patch"
CONCLUSIONS = frozenset({"success", "neutral", "failure", "timed_out", "action_required"})
MAX_PATCH_CHARS = 60_000
MAX_SUMMARY_CHARS = 30_000
MAX_BODY_BYTES = 256 * 1024
NOT_READ_ONLY = "only a read-only run reports its result here; other runs write it themselves"
NOT_ITS_RUN = "the check run is not this job's run"
BAD_RESULT = "the result is not {check_run, conclusion, title, summary[, patch]}"


async def handle_result(request: web.Request) -> web.Response:
    """Answer `POST /api/runs/result`: 200 once the result is written, 4xx saying why not."""
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        return _message(401, MISSING_BEARER)
    body = await _json(request)
    if body is None:
        return _message(422, BAD_RESULT)
    exchange = request.app[TOKEN_EXCHANGE_KEY]
    try:
        claims, installation_id = await exchange.verified(token)
        if not await exchange.read_only(claims, installation_id):
            return _message(403, NOT_READ_ONLY)
        gh = exchange.access.for_installation(installation_id)
        bot_login = await exchange.access.bot_login()
        await write_result(gh, claims.repository, int(claims.run_id or 0), body, bot_login)
    except TokenRefusedError as refused:
        return _message(401, refused.reason)
    except ResultRefusedError as refused:
        return _message(403, refused.reason)
    except IssuerUnavailableError as error:
        log.warning("run result: %s", error)
        return _message(503, ISSUER_UNREACHABLE)
    except (gidgethub.GitHubException, aiohttp.ClientError, OSError) as error:
        log.warning("run result: GitHub failed: %s", type(error).__name__)
        return _message(502, GITHUB_UNREACHABLE)
    return web.json_response({"status": "written"})


class ResultRefusedError(Exception):
    """The result does not belong to the job that sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def write_result(
    gh: GitHubAPI, repo: str, actions_run_id: int, body: Mapping[str, Any], bot_login: str
) -> None:
    """Complete the job's own check run with its result and post its patch, once."""
    workflow_run = await gh.getitem(WORKFLOW_RUN_URL, where(repo, run_id=actions_run_id))
    run_id = run_id_from_title(workflow_run.get("display_title"))
    check_run_id = int(body["check_run"])
    check_run = await gh.getitem(CHECK_RUN_URL, where(repo, check_run_id=check_run_id))
    request = parse_run_request((check_run.get("output") or {}).get("text"))
    if run_id is None or check_run.get("external_id") != run_id or request is None:
        raise ResultRefusedError(NOT_ITS_RUN)
    patch = str(body.get("patch") or "")[:MAX_PATCH_CHARS]
    summary = str(body["summary"])[:MAX_SUMMARY_CHARS]
    if patch:
        reply = suggested_patch(run_id=run_id, patch=patch, check_run_url=check_run["html_url"])
        await comment_once(gh, repo, request.issue_number, reply, bot_login)
        summary += (
            "\n\nThe patch is posted on the pull request as a suggestion; nothing was pushed."
        )
    update = {
        "status": "completed",
        "conclusion": str(body["conclusion"]),
        "output": {"title": str(body["title"])[:120], "summary": summary},
        # A fork's pull request is not in a check run's `pull_requests`: a person asks again
        # with `/coder fix` there, rather than through buttons.
        "actions": [],
    }
    await update_check_run(gh, repo, check_run_id, update)
    # What the runner would have done with a token that writes: the question it asks, the
    # question it answers, the labels, the reaction.
    if body["conclusion"] == "action_required":
        await ask_once(
            gh,
            repo,
            request.issue_number,
            run_id,
            request=request,
            check_run_id=check_run_id,
            body=body,
            bot_login=bot_login,
        )
    await close_answered(gh, repo, request.answers, by=request.labeled_by, run_id=run_id)
    await remove_running_label(gh, repo, request.issue_number)
    await remove_label(gh, repo, request.issue_number, labels.QUEUED)
    if body["conclusion"] != "action_required":  # a question is not an end
        worked = body["conclusion"] in {"success", "neutral"}
        reaction = Reaction.ROCKET if worked else Reaction.CONFUSED
        await react(gh, repo, Source.parse(request.asked_in), reaction)
    log.info("read-only run %s in %s reported %s", run_id, repo, body["conclusion"])


async def ask_once(
    gh: GitHubAPI,
    repo: str,
    number: int,
    run_id: str,
    *,
    request: Snapshot,
    check_run_id: int,
    body: Mapping[str, Any],
    bot_login: str,
) -> None:
    """Post a read-only run's question on its pull request, once (its token could not)."""
    asked = body.get("prompt") if isinstance(body.get("prompt"), dict) else {}
    assert isinstance(asked, dict)
    # The job ran a fork's code: what it says about the run is checked against what the app
    # wrote (the run request) and against plain shapes; only the question is its own words.
    step = str(asked.get("resume_at") or "")
    sha = str(asked.get("sha") or "")
    prompt = Prompt(
        prompt_id=run_id,
        kind=PLAN if asked.get("ask") == PLAN else QUESTION,
        check_run=check_run_id,
        workflow=request.workflow,
        resume_at=step if STEP_NAME.match(step) else "",
        head_sha=sha if SHA.match(sha) else "",
        model=request.model,
        question=str(asked.get("question") or "")[:MAX_SUMMARY_CHARS],
    )
    pages = gh.getiter(COMMENTS_PAGE_URL, where(repo, number=number, per_page=100))
    comments = [comment async for comment in pages]
    if find_marked(comments, PROMPT, author=bot_login, id=run_id) is None:
        data = {"body": render_prompt(prompt)}
        await gh.post(COMMENTS_URL, where(repo, number=number), data=data)


async def close_answered(
    gh: GitHubAPI, repo: str, answers: str | None, *, by: str, run_id: str
) -> None:
    """Close the question a read-only continuation answered (its token could not)."""
    check_run, _, how = (answers or "").partition(":")
    if not check_run.isdigit() or not how:
        return
    update = {
        "conclusion": "neutral",
        "output": {"title": f"{how.capitalize()} by @{by}", "summary": f"Run `{run_id}` went on."},
        "actions": [],
    }
    await update_check_run(gh, repo, int(check_run), update)


def suggested_patch(*, run_id: str, patch: str, check_run_url: str) -> replies.Reply:
    """Render the comment that suggests a read-only run's patch (pure)."""
    fence = "````" if "```" in patch else "```"
    lines = [
        render_marker(SUGGESTED_PATCH, run=run_id),
        (
            f"coder's fix run `{run_id}` worked on this fork's code with a read-only token, so it "
            "pushed nothing. Its change, as a patch to apply and review yourself "
            f"(`git apply`), and its check run: {check_run_url}"
        ),
        "",
        f"{fence}diff",
        patch.rstrip("\n"),
        fence,
    ]
    return replies.Reply(SUGGESTED_PATCH, run_id, "\n".join(lines))


async def _json(request: web.Request) -> dict[str, Any] | None:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    try:
        body = await request.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("conclusion") not in CONCLUSIONS:
        return None
    check_run = body.get("check_run")
    if isinstance(check_run, bool) or not isinstance(check_run, int) or check_run < 1:
        return None
    if not isinstance(body.get("title"), str) or not isinstance(body.get("summary"), str):
        return None
    if body.get("patch") is not None and not isinstance(body.get("patch"), str):
        return None
    return body


def _message(status: int, message: str) -> web.Response:
    log.warning("run result refused (%d): %s", status, message)
    return message_response(status, message)
