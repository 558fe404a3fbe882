"""POST <WEBHOOK_PATH>: verify the signature, drop repeats, acknowledge at once, queue the work."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cachetools import TTLCache
from gidgethub import BadRequest, ValidationFailure
from gidgethub.sansio import Event

from app.dispatch import QueueClosedError, SubjectQueue
from app.ids import subject_key

if TYPE_CHECKING:
    from gidgethub.routing import Router

    from app.github import GitHubAccess

log = logging.getLogger(__name__)

SIGNATURE_256 = "X-Hub-Signature-256"
SIGNATURE_SHA1 = "X-Hub-Signature"
SHA1_ONLY = "X-Hub-Signature-256 is required; sha1 signatures are not accepted"
MISSING_SIGNATURE = "X-Hub-Signature-256 is required"
BAD_SIGNATURE = "X-Hub-Signature-256 does not match the payload and webhook secret"
MALFORMED_SIGNATURE = "X-Hub-Signature-256 is malformed"
BAD_CONTENT_TYPE = "Content-Type must be application/json"
BAD_JSON = "the body is not a JSON object"
DEDUPE_MAX_DELIVERIES = 100_000
# Events the app handles even when it caused them itself: the jobs it dispatched (how a dead job
# is noticed), and check runs its runners complete with its token (how a `then:` chain, a split
# and a research summary follow a finished run; docs/workflows-as-code.md).
OWN_EVENTS_HANDLED = frozenset({"workflow_run", "workflow_job", "check_run"})
# GitHub sends either, depending on the webhook's configured content type.
JSON_CONTENT_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})


class WebhookReceiver:
    """The webhook endpoint and the background work each accepted delivery turns into."""

    def __init__(
        self,
        *,
        secret: str,
        router: Router,
        queue: SubjectQueue,
        access: GitHubAccess,
        delivery_ttl_seconds: float,
        max_body_bytes: int,
    ) -> None:
        self._secret = secret
        self._router = router
        self._queue = queue
        self._access = access
        self._max_body_bytes = max_body_bytes
        # An optimisation, not a guarantee: every effect is idempotent on its own (DESIGN §2).
        self._seen: TTLCache[str, bool] = TTLCache(DEDUPE_MAX_DELIVERIES, delivery_ttl_seconds)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one delivery within milliseconds; the work happens on the queue."""
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # GitHub never sends more than 25 MB (it drops larger payloads), so this is not GitHub.
            reason = f"the body exceeds {self._max_body_bytes} bytes"
            return _reject(request, 413, reason)
        headers = request.headers
        if SIGNATURE_256 not in headers:
            reason = SHA1_ONLY if SIGNATURE_SHA1 in headers else MISSING_SIGNATURE
            return _reject(request, 401, reason)
        try:
            # Verifies the HMAC over the raw body in constant time before decoding anything.
            event = Event.from_http(headers, body, secret=self._secret)
        except ValidationFailure:
            return _reject(request, 401, BAD_SIGNATURE)
        except TypeError:
            # hmac.compare_digest refuses non-ASCII strings: a garbled header, not a signature.
            return _reject(request, 401, MALFORMED_SIGNATURE)
        except BadRequest:
            # gidgethub reports undecodable JSON and an unknown content type alike.
            known = request.content_type in JSON_CONTENT_TYPES
            return _reject(request, 400, BAD_JSON if known else BAD_CONTENT_TYPE)
        except KeyError as missing:
            return _reject(request, 400, f"the {missing.args[0]} header is required")
        except ValueError:
            return _reject(request, 400, BAD_JSON)
        if not isinstance(event.data, Mapping):
            return _reject(request, 400, BAD_JSON)
        return self._accept(event)

    def _accept(self, event: Event) -> web.Response:
        delivery_id = event.delivery_id
        if delivery_id in self._seen:
            _log_delivery(event, "duplicate")
            return _reply(200, "duplicate")
        self._seen[delivery_id] = True
        if event.event == "ping":
            _log_delivery(event, "pong")
            return _reply(200, "pong")
        if not self._router.fetch(event):
            _log_delivery(event, "ignored: no handler")
            return _reply(200, "ignored")
        bot_login = self._access.known_bot_login
        if bot_login is not None and _ignores_own(event) and _sender(event) == bot_login:
            _log_delivery(event, "ignored: sent by the app")
            return _reply(200, "ignored")
        try:
            self._queue.submit(subject_key(event), delivery_id, lambda: self._process(event))
        except QueueClosedError:
            del self._seen[delivery_id]  # let GitHub's redelivery through once we are back
            _log_delivery(event, "refused: shutting down")
            return _reply(503, "unavailable")
        return _reply(202, "accepted")

    async def _process(self, event: Event) -> str:
        started = time.perf_counter()
        outcome = "error"
        try:
            outcome = await self._dispatch(event)
            return outcome
        except asyncio.CancelledError:
            outcome = "cancelled"
            self._forget(event.delivery_id)
            raise
        except Exception as error:
            outcome = f"error: {type(error).__name__}"
            self._forget(event.delivery_id)
            raise
        finally:
            _log_delivery(event, outcome, (time.perf_counter() - started) * 1000)

    def _forget(self, delivery_id: str) -> None:
        # Work that failed or was abandoned must not turn GitHub's (or an operator's) redelivery
        # into a "duplicate": handlers are idempotent, so running the delivery again is safe.
        self._seen.pop(delivery_id, None)

    async def _dispatch(self, event: Event) -> str:
        # The "404 right after the event" window opens when the work starts, not at the ack: time
        # spent queued behind other deliveries must not use it up.
        work_started_at = self._access.clock()
        sender = _sender(event)
        # Only bots can be the app; avoid the one-time GET /app for everyone else.
        if (
            _ignores_own(event)
            and sender.endswith("[bot]")
            and sender == await self._access.bot_login()
        ):
            return "ignored: sent by the app"
        installation = event.data.get("installation")
        installation_id = installation.get("id") if isinstance(installation, Mapping) else None
        if isinstance(installation_id, int):
            gh = self._access.for_installation(installation_id, event_received_at=work_started_at)
        else:
            gh = self._access.app_client()
        await self._router.dispatch(event, gh)
        return "ok"


def _ignores_own(event: Event) -> bool:
    """Whether an event the app itself caused is dropped (it would otherwise loop back)."""
    # The sender of workflow_run / workflow_job is whoever dispatched the workflow, and of
    # check_run.completed whoever completed it: for coder's runs that is the app, and those
    # events are how the app learns a run ended, so they count.
    return event.event not in OWN_EVENTS_HANDLED


def _sender(event: Event) -> str:
    sender = event.data.get("sender")
    return str(sender.get("login", "")) if isinstance(sender, Mapping) else ""


def _reply(status: int, outcome: str, reason: str | None = None) -> web.Response:
    body: dict[str, Any] = {"status": outcome}
    if reason is not None:
        body["reason"] = reason
    return web.json_response(body, status=status)


def _reject(request: web.Request, status: int, reason: str) -> web.Response:
    log.warning(
        "webhook rejected (%d): %s; delivery %s",
        status,
        reason,
        request.headers.get("X-GitHub-Delivery", "-"),
        extra={"delivery_id": request.headers.get("X-GitHub-Delivery"), "outcome": "rejected"},
    )
    return _reply(status, "rejected", reason)


def _log_delivery(event: Event, outcome: str, ms: float | None = None) -> None:
    action = event.data.get("action")
    repository = event.data.get("repository")
    repo = repository.get("full_name") if isinstance(repository, Mapping) else None
    name = f"{event.event}.{action}" if isinstance(action, str) else event.event
    log.info(
        "delivery %s %s %s: %s%s",
        event.delivery_id,
        name,
        repo or "-",
        outcome,
        "" if ms is None else f" ({ms:.0f} ms)",
        extra={
            "event": event.event,
            "action": action,
            "delivery_id": event.delivery_id,
            "repo": repo,
            "outcome": outcome,
            "ms": None if ms is None else round(ms, 1),
        },
    )
