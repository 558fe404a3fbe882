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
from typing import TYPE_CHECKING, Any

import aiohttp
import gidgethub
from aiohttp import web

from app import replies
from app.briefing import parse_run_request
from app.conversation import Reaction, Source, react
from app.dispatched_runs import WORKFLOW_RUN_URL, run_id_from_title
from app.markers import render_marker
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
from app.reconcile import remove_running_label

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI

log = logging.getLogger(__name__)

RESULT_PATH = "/api/runs/result"
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
SUGGESTED_PATCH = "suggested-patch"
CONCLUSIONS = frozenset({"success", "neutral", "failure", "timed_out"})
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
    }
    await update_check_run(gh, repo, check_run_id, update)
    # What the runner would have done with a token that writes: the label, the reaction.
    await remove_running_label(gh, repo, request.issue_number)
    worked = body["conclusion"] in {"success", "neutral"}
    await react(
        gh, repo, Source.parse(request.asked_in), Reaction.ROCKET if worked else Reaction.CONFUSED
    )
    log.info("read-only run %s in %s reported %s", run_id, repo, body["conclusion"])


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
